-- Health checks per server (optionally one environment and a version selector). Runtime and
-- dependency checks run on a BullMQ job scheduler each; startup checks run after a deployment until
-- they pass `required_passes` times in a row or `startup_timeout_ms` passes. Results live in
-- ClickHouse (health_results).
CREATE TABLE health_checks (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('http', 'mcp', 'dependency')),
  phase text NOT NULL CHECK (phase IN ('startup', 'runtime', 'dependency')),
  -- NULL: every environment
  environment text,
  -- NULL: every version; else an exact version or a semver range (">=1.2.0 <2")
  version_selector text,
  -- kind-specific: { url, method, expectedStatus, bodyContains, bodyMatches, transport }
  target jsonb NOT NULL,
  interval_ms integer NOT NULL,
  timeout_ms integer NOT NULL,
  required_passes integer NOT NULL,
  startup_timeout_ms integer NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (server_id, name)
);
CREATE INDEX health_checks_org_idx ON health_checks (org_id, server_id);

-- The latest `tools/list` an MCP check saw per server, environment and version ('' when unknown),
-- so a contract diff between two versions needs no live server.
CREATE TABLE mcp_tool_snapshots (
  org_id uuid NOT NULL REFERENCES orgs (id),
  server text NOT NULL,
  environment text NOT NULL,
  version text NOT NULL,
  check_id uuid,
  protocol_version text NOT NULL,
  server_info jsonb,
  tools jsonb NOT NULL,
  tools_hash text NOT NULL,
  tool_count integer NOT NULL,
  observed_at timestamptz NOT NULL,
  PRIMARY KEY (org_id, server, environment, version)
);

-- Deployments whose startup verification the health workers have taken up, so each starts once.
CREATE TABLE startup_verifications (
  deployment_id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  started_at timestamptz NOT NULL DEFAULT now(),
  -- false: no startup check applied, nothing was started (the deployment's own timeout decides)
  queued boolean NOT NULL
);
