-- Alert rules, their instances (rule + label set) with state, every state change, and the
-- Alertmanager-style notification groups with an outbox of notifications to publish.

CREATE TABLE alert_rules (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  name text NOT NULL,
  server text NOT NULL,
  -- NULL: every environment, one instance per environment
  environment text,
  -- '*', an exact version, a semver range, 'stable' or 'canary'
  version_selector text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('threshold', 'relative', 'absence', 'health')),
  -- metric, operation, comparator, threshold, factor, offset, baseline, minRequests, check: per kind
  condition jsonb NOT NULL,
  interval_ms integer NOT NULL CHECK (interval_ms >= 1000),
  window_ms integer NOT NULL CHECK (window_ms >= 1000),
  for_ms integer NOT NULL CHECK (for_ms >= 0),
  keep_firing_for_ms integer NOT NULL CHECK (keep_firing_for_ms >= 0),
  severity text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
  labels jsonb NOT NULL DEFAULT '{}',
  annotations jsonb NOT NULL DEFAULT '{}',
  no_data_state text NOT NULL CHECK (no_data_state IN ('NoData', 'Alerting', 'OK', 'KeepLast')),
  exec_err_state text NOT NULL CHECK (exec_err_state IN ('Error', 'Alerting', 'KeepLast')),
  group_by jsonb NOT NULL,
  group_wait_ms integer NOT NULL CHECK (group_wait_ms >= 0),
  group_interval_ms integer NOT NULL CHECK (group_interval_ms >= 1000),
  repeat_interval_ms integer NOT NULL CHECK (repeat_interval_ms >= 1000),
  enabled boolean NOT NULL DEFAULT true,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- the evaluation whose result is stored; an older one arriving late changes nothing
  last_evaluated_at timestamptz,
  last_eval_duration_ms double precision,
  last_error text,
  evaluations bigint NOT NULL DEFAULT 0,
  UNIQUE (org_id, name)
);
CREATE INDEX alert_rules_server_idx ON alert_rules (org_id, server);

CREATE TABLE alert_instances (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  rule_id uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
  -- stable per rule + label set
  fingerprint text NOT NULL,
  server text NOT NULL,
  environment text,
  version text,
  operation text,
  labels jsonb NOT NULL,
  state text NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved', 'nodata', 'error')),
  value double precision,
  threshold double precision,
  baseline_version text,
  active_at timestamptz,
  fired_at timestamptz,
  resolved_at timestamptz,
  last_true_at timestamptz,
  last_evaluated_at timestamptz,
  state_changed_at timestamptz NOT NULL,
  last_error text,
  acknowledged_at timestamptz,
  acknowledged_by text,
  ack_comment text,
  -- bumped by every change: writers update only the row version they read
  row_version integer NOT NULL DEFAULT 0,
  UNIQUE (rule_id, fingerprint)
);
CREATE INDEX alert_instances_state_idx ON alert_instances (org_id, state);

-- Kept when a rule is deleted: history per server and per version outlives the rule.
CREATE TABLE alert_history (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  instance_id uuid NOT NULL,
  rule_id uuid NOT NULL,
  rule_name text NOT NULL,
  fingerprint text NOT NULL,
  server text NOT NULL,
  environment text,
  version text,
  operation text,
  from_state text NOT NULL,
  to_state text NOT NULL,
  value double precision,
  threshold double precision,
  reason text NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX alert_history_server_idx ON alert_history (org_id, server, at DESC);
CREATE INDEX alert_history_instance_idx ON alert_history (instance_id, at DESC);

-- One Alertmanager aggregation group: alerts sharing the values of the group-by labels.
CREATE TABLE alert_groups (
  org_id uuid NOT NULL REFERENCES orgs (id),
  group_key text NOT NULL,
  labels jsonb NOT NULL,
  group_wait_ms integer NOT NULL,
  group_interval_ms integer NOT NULL,
  repeat_interval_ms integer NOT NULL,
  -- when the next notification is due: group_wait, group_interval or repeat_interval from now
  next_flush_at timestamptz,
  last_flush_at timestamptz,
  -- the firing set last notified, to tell a change from a repeat
  last_notified text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, group_key)
);
CREATE INDEX alert_groups_due_idx ON alert_groups (next_flush_at);

CREATE TABLE alert_group_alerts (
  org_id uuid NOT NULL,
  group_key text NOT NULL,
  fingerprint text NOT NULL,
  status text NOT NULL CHECK (status IN ('firing', 'resolved')),
  -- the AlertNotice as last evaluated
  notice jsonb NOT NULL,
  notified_firing boolean NOT NULL DEFAULT false,
  acknowledged boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, group_key, fingerprint),
  FOREIGN KEY (org_id, group_key) REFERENCES alert_groups (org_id, group_key) ON DELETE CASCADE
);

-- Notifications decided but maybe not yet handed to the publisher: published at least once.
CREATE TABLE alert_notifications (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  group_key text NOT NULL,
  event jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  published_at timestamptz
);
CREATE INDEX alert_notifications_pending_idx ON alert_notifications (created_at) WHERE published_at IS NULL;
