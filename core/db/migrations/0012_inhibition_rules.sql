-- Alertmanager's inhibit_rules as an org resource: while an alert matching the source matchers fires,
-- notifications of alerts matching the target matchers (with the same values of the `equal` labels)
-- are kept back, recorded in the alert's history, and sent once nothing inhibits them any more.
CREATE TABLE alert_inhibition_rules (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  name text,
  -- [{name, op, value}], at least one each
  source_matchers jsonb NOT NULL,
  target_matchers jsonb NOT NULL,
  equal_labels text[] NOT NULL DEFAULT '{}',
  comment text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_inhibition_rules_org_idx ON alert_inhibition_rules (org_id, created_at);
CREATE UNIQUE INDEX alert_inhibition_rules_name_idx ON alert_inhibition_rules (org_id, name) WHERE name IS NOT NULL;

-- Why a firing alert of a group is left out of its notifications, while it is:
-- { kind: 'inhibition', inhibitionId, source: { alertId, fingerprint, alertname, labels }, since }.
ALTER TABLE alert_group_alerts ADD COLUMN muted_by jsonb;

-- On the history rows that record a mute starting or ending (from_state = to_state = 'firing'):
-- { kind, state: 'muted' | 'released', inhibitionId, source: { ... } }.
ALTER TABLE alert_history ADD COLUMN muted_by jsonb;
