-- Server templates: a versioned configuration (remotes, packages, declared variables with defaults,
-- secrets to be provided) that servers and their versions are created from.
CREATE TABLE templates (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  slug text NOT NULL,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  owners text[] NOT NULL DEFAULT '{}',
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  archived_at timestamptz,
  UNIQUE (org_id, slug)
);

CREATE TABLE template_versions (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  template_id uuid NOT NULL REFERENCES templates (id),
  version text NOT NULL,
  -- without build metadata, as versions.version_key
  version_key text NOT NULL,
  prerelease boolean NOT NULL,
  -- the lifecycle of server versions: development, release-candidate, stable, deprecated, retired
  status text NOT NULL,
  -- the server.json fields the template fixes (remotes, packages, title, …)
  config jsonb NOT NULL,
  -- [{ name, description, default }]: set on a server created from the template
  variables jsonb NOT NULL DEFAULT '[]',
  -- [{ name, description }]: secrets every server from the template must provide
  secrets jsonb NOT NULL DEFAULT '[]',
  release_notes text NOT NULL DEFAULT '',
  deprecation jsonb,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (template_id, version_key)
);

-- The template version a server (and each of its versions) came from.
ALTER TABLE servers ADD COLUMN template_version_id uuid REFERENCES template_versions (id);
ALTER TABLE versions ADD COLUMN template_version_id uuid REFERENCES template_versions (id);
CREATE INDEX servers_template_version_idx ON servers (template_version_id);

-- The org's catalogue of shared packages: which versions are allowed, who owns them, which are
-- deprecated. Versions referencing a package outside `allowed` or inside a deprecation get a warning,
-- and the `allowed-packages` gate can refuse to deploy them.
CREATE TABLE package_catalog (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  registry_type text NOT NULL,
  identifier text NOT NULL,
  description text NOT NULL DEFAULT '',
  owners text[] NOT NULL DEFAULT '{}',
  -- the ecosystem's range syntax (npm: a semver range; pypi: a PEP 440 specifier); NULL: any version
  allowed text,
  -- [{ versions, message, replacement }]
  deprecations jsonb NOT NULL DEFAULT '[]',
  updated_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, registry_type, identifier)
);
