-- Who may connect MCP clients through the gateway, per server and environment. No row means
-- `pylee` (a Pylee token with the connect permission, stripped before the upstream's own headers
-- are added); `passthrough`: the client's Authorization goes to the upstream untouched (servers that
-- do their own OAuth); `public`: anyone, only ever set explicitly (and audited, as every change).
CREATE TABLE gateway_access (
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  environment text NOT NULL,
  access text NOT NULL CHECK (access IN ('pylee', 'passthrough', 'public')),
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL,
  PRIMARY KEY (server_id, environment),
  -- A removed environment takes its settings along, so one created later under the same name
  -- starts at `pylee` instead of inheriting, say, `public`.
  FOREIGN KEY (org_id, environment) REFERENCES environments (org_id, name) ON DELETE CASCADE
);
