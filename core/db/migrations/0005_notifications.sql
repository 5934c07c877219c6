-- Where events go: a Slack incoming webhook or a signed generic webhook, per org.
CREATE TABLE notification_channels (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('slack', 'webhook')),
  -- the URL is a credential (Slack's carries its token): AES-256-GCM sealed, bound to the channel id
  url_ciphertext text NOT NULL,
  url_iv text NOT NULL,
  url_tag text NOT NULL,
  url_key_id text NOT NULL,
  -- what read APIs show instead of the URL
  url_host text NOT NULL,
  url_fingerprint text NOT NULL,
  -- Standard Webhooks signing secret (webhook channels), sealed; the previous one keeps signing until it expires
  secret_ciphertext text,
  secret_iv text,
  secret_tag text,
  secret_key_id text,
  secret_version integer NOT NULL DEFAULT 0,
  previous_secret_ciphertext text,
  previous_secret_iv text,
  previous_secret_tag text,
  previous_secret_key_id text,
  previous_secret_expires_at timestamptz,
  -- event-type patterns (deployment.*, alert.firing) and label matchers [{name, op, value}]
  events text[] NOT NULL,
  matchers jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);

-- Events whose labels match an active silence are recorded as suppressed, not delivered.
CREATE TABLE notification_silences (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  matchers jsonb NOT NULL,
  starts_at timestamptz NOT NULL,
  ends_at timestamptz NOT NULL,
  created_by text NOT NULL,
  comment text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expired_at timestamptz
);
CREATE INDEX notification_silences_active_idx ON notification_silences (org_id, ends_at);

-- One row per (event, channel). The id is the Standard Webhooks `webhook-id` and the BullMQ job id,
-- so a receiver can drop duplicates and re-enqueueing is idempotent.
CREATE TABLE notification_deliveries (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  channel_id uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
  event_id uuid NOT NULL,
  event_type text NOT NULL,
  -- the event as published (type, server, environment, version, labels, summary, data, occurredAt)
  event jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed')),
  silence_id uuid,
  attempts integer NOT NULL DEFAULT 0,
  last_status_code integer,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz,
  delivered_at timestamptz
);
CREATE INDEX notification_deliveries_org_idx ON notification_deliveries (org_id, status, created_at);
CREATE INDEX notification_deliveries_pending_idx ON notification_deliveries (updated_at) WHERE status = 'pending';
