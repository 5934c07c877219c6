-- Maintenance lines of a server (`1.4.x`, `2.x`) with an end of support, and version retention
-- policies (per server, or the org's default when server_id is NULL).
CREATE TABLE server_lines (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  pattern text NOT NULL,
  end_of_support date,
  description text NOT NULL DEFAULT '',
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (server_id, pattern)
);

CREATE TABLE retention_policies (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  -- NULL: the org's default for servers without their own
  server_id uuid REFERENCES servers (id),
  -- keep the newest N versions of each line
  keep_per_line integer NOT NULL CHECK (keep_per_line >= 1),
  -- and anything deployed anywhere in the last D days
  keep_deployed_days integer NOT NULL CHECK (keep_deployed_days >= 0),
  enabled boolean NOT NULL DEFAULT true,
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX retention_policies_scope_idx
  ON retention_policies (org_id, COALESCE(server_id, '00000000-0000-0000-0000-000000000000'::uuid));
