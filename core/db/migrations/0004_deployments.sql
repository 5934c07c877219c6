-- NULL: the token may deploy to every environment; otherwise only to these environment names.
ALTER TABLE tokens ADD COLUMN environments text[];

-- An org's environments in pipeline order (position ascending).
CREATE TABLE environments (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  name text NOT NULL,
  position integer NOT NULL,
  description text NOT NULL DEFAULT '',
  -- a protected environment takes no pre-release versions
  protected boolean NOT NULL DEFAULT false,
  -- promotion gates: [{ type: 'soak', environment, duration } | { type: 'no-prerelease' } | …]
  gates jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);

-- Every org starts with the four environments of a gradual rollout; production takes no pre-releases.
INSERT INTO environments (id, org_id, name, position, description, protected)
SELECT gen_random_uuid(), o.id, d.name, d.position, d.description, d.protected
FROM orgs o
CROSS JOIN (
  VALUES
    ('development', 1, 'Deploy and test a new version', false),
    ('staging', 2, 'Validate in a production-like environment', false),
    ('canary', 3, 'A small subset of production', false),
    ('production', 4, 'Full production', true)
) AS d (name, position, description, protected);

CREATE TABLE deployments (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  version_id uuid NOT NULL REFERENCES versions (id),
  version text NOT NULL,
  -- where the rollout ends (for `staged`, the last environment of its path)
  environment_id uuid NOT NULL REFERENCES environments (id),
  -- where it is now: moves along the path for `staged`, equals environment_id otherwise
  current_environment_id uuid NOT NULL REFERENCES environments (id),
  strategy text NOT NULL,
  -- deploy, or rollback (an earlier version deployed again, or a rollback request)
  kind text NOT NULL,
  steps jsonb NOT NULL,
  -- -1 before the first step (pending, verifying)
  current_step integer NOT NULL DEFAULT -1,
  weight integer NOT NULL DEFAULT 0,
  status text NOT NULL,
  -- { kind: timer, until } | { kind: approval } | { kind: manual, remainingMs } while paused
  pause jsonb,
  -- verification | analysis | gates: what a progressing rollout waits for
  awaiting text,
  -- { rollbackOnFailure, verification: { required, passes, timeoutMs } }
  policy jsonb NOT NULL,
  -- { passes, deadline, detail } while and after verifying
  verification jsonb,
  -- the version that ran at 100 % in the environment when this one started (what traffic falls back to)
  previous_version text,
  rollback_of uuid REFERENCES deployments (id),
  reason text,
  status_reason text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  CHECK (weight BETWEEN 0 AND 100),
  CHECK (status IN ('pending', 'verifying', 'progressing', 'paused', 'succeeded', 'failed', 'aborted', 'rolled-back'))
);
-- One active rollout per server and environment: of two concurrent deploys, exactly one insert wins.
CREATE UNIQUE INDEX deployments_one_active_idx ON deployments (server_id, current_environment_id)
  WHERE status IN ('pending', 'verifying', 'progressing', 'paused');
CREATE INDEX deployments_server_idx ON deployments (server_id, created_at);

-- The timeline: every transition and action of a deployment.
CREATE TABLE deployment_events (
  id uuid PRIMARY KEY,
  deployment_id uuid NOT NULL REFERENCES deployments (id),
  at timestamptz NOT NULL DEFAULT now(),
  action text NOT NULL,
  from_status text,
  to_status text NOT NULL,
  step integer NOT NULL,
  weight integer NOT NULL,
  environment text NOT NULL,
  actor text NOT NULL,
  reason text,
  detail jsonb
);
CREATE INDEX deployment_events_deployment_idx ON deployment_events (deployment_id, at);

-- What ran at 100 % where: one row per version landing in an environment. The open row
-- (replaced_at NULL) is the stable version; rows not rolled back are the known-good history.
CREATE TABLE environment_releases (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  environment_id uuid NOT NULL REFERENCES environments (id),
  version_id uuid NOT NULL REFERENCES versions (id),
  version text NOT NULL,
  deployment_id uuid NOT NULL REFERENCES deployments (id),
  released_at timestamptz NOT NULL DEFAULT now(),
  released_by text NOT NULL,
  replaced_at timestamptz,
  rolled_back_at timestamptz,
  rolled_back_by text
);
CREATE UNIQUE INDEX environment_releases_current_idx ON environment_releases (server_id, environment_id)
  WHERE replaced_at IS NULL;
CREATE INDEX environment_releases_history_idx ON environment_releases (server_id, environment_id, released_at);
