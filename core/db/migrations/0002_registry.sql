CREATE TABLE servers (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  slug text NOT NULL,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  repository_url text,
  owners text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  archived_at timestamptz,
  UNIQUE (org_id, slug)
);

CREATE TABLE versions (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  version text NOT NULL,
  -- the version without build metadata: 1.2.0+a and 1.2.0+b have the same precedence, so one number
  version_key text NOT NULL,
  prerelease boolean NOT NULL,
  status text NOT NULL,
  release_notes text NOT NULL DEFAULT '',
  breaking boolean NOT NULL DEFAULT false,
  migration_guide text NOT NULL DEFAULT '',
  -- why a breaking version without the semver bump was let through (acknowledged by its creator)
  semver_violation text,
  -- remotes, packages and the rest of the server.json fields Pylee keeps per version
  config jsonb NOT NULL,
  -- { date, message, replacement } once deprecated
  deprecation jsonb,
  created_from text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  released_at timestamptz,
  UNIQUE (server_id, version_key)
);

CREATE TABLE version_transitions (
  id uuid PRIMARY KEY,
  version_id uuid NOT NULL REFERENCES versions (id),
  from_status text,
  to_status text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  reason text
);
CREATE INDEX version_transitions_version_idx ON version_transitions (version_id, at);

-- Packages each version references, for "where is this package used".
CREATE TABLE version_packages (
  version_id uuid NOT NULL REFERENCES versions (id),
  org_id uuid NOT NULL REFERENCES orgs (id),
  registry_type text NOT NULL,
  identifier text NOT NULL,
  package_version text NOT NULL,
  PRIMARY KEY (version_id, registry_type, identifier, package_version)
);
CREATE INDEX version_packages_lookup_idx ON version_packages (org_id, registry_type, identifier, package_version);

-- Variables and secrets. Scope: org (no server, version or environment), environment (org-wide),
-- server, version, or server + environment. Secret values live only in secret_revisions, encrypted.
CREATE TABLE variables (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid REFERENCES servers (id),
  version_id uuid REFERENCES versions (id),
  environment text,
  name text NOT NULL,
  secret boolean NOT NULL,
  value text,
  revision integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL,
  CHECK (version_id IS NULL OR server_id IS NOT NULL),
  CHECK (version_id IS NULL OR environment IS NULL),
  CHECK (secret = (value IS NULL))
);
CREATE UNIQUE INDEX variables_scope_name_idx ON variables (
  org_id,
  coalesce(server_id, '00000000-0000-0000-0000-000000000000'),
  coalesce(version_id, '00000000-0000-0000-0000-000000000000'),
  coalesce(environment, ''),
  name
);

CREATE TABLE secret_revisions (
  variable_id uuid NOT NULL REFERENCES variables (id),
  revision integer NOT NULL,
  -- AES-256-GCM: base64 ciphertext, IV and tag; key_id names the key that sealed it
  ciphertext text NOT NULL,
  iv text NOT NULL,
  tag text NOT NULL,
  key_id text NOT NULL,
  fingerprint text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  PRIMARY KEY (variable_id, revision)
);
