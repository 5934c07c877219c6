CREATE TABLE orgs (
  id uuid PRIMARY KEY,
  slug text NOT NULL UNIQUE,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  name text NOT NULL,
  -- the first characters of the token, shown so a person can tell tokens apart
  prefix text NOT NULL,
  -- SHA-256 of the whole token: tokens are 256-bit random, so a fast hash is enough
  hash text NOT NULL UNIQUE,
  permissions text[] NOT NULL,
  -- NULL: every server of the org; otherwise only these server slugs
  servers text[],
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz
);
CREATE INDEX tokens_org_idx ON tokens (org_id, created_at);

CREATE TABLE audit_events (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  seq bigint NOT NULL,
  at timestamptz NOT NULL,
  actor_type text NOT NULL,
  actor_id text,
  actor_name text NOT NULL,
  action text NOT NULL,
  target_type text NOT NULL,
  target_id text,
  target_name text,
  before jsonb,
  after jsonb,
  request_id text,
  client_address text,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  UNIQUE (org_id, seq)
);
CREATE INDEX audit_events_org_at_idx ON audit_events (org_id, at);

-- The head of each org's hash chain; locking its row serialises appends to that chain.
CREATE TABLE audit_heads (
  org_id uuid PRIMARY KEY REFERENCES orgs (id),
  seq bigint NOT NULL,
  hash text NOT NULL
);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit events are append-only';
END;
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
