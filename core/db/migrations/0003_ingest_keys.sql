-- Credentials for the OTLP collector: they can only send telemetry into their org (or one server).
CREATE TABLE ingest_keys (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  name text NOT NULL,
  prefix text NOT NULL,
  hash text NOT NULL UNIQUE,
  -- NULL: any server of the org; otherwise telemetry must name this server (service.name)
  server text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  last_used_at timestamptz
);
CREATE INDEX ingest_keys_org_idx ON ingest_keys (org_id, created_at);
