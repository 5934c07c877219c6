-- OSV advisories (public data, shared by every org), the findings they make on versions, and the
-- orgs' ignore rules.

CREATE TABLE advisories (
  id text PRIMARY KEY,
  modified timestamptz NOT NULL,
  published timestamptz,
  aliases text[] NOT NULL DEFAULT '{}',
  summary text NOT NULL,
  -- low | medium | high | critical | unknown, from the CVSS vector (v4, else v3) or database_specific
  severity text NOT NULL,
  score double precision,
  vector text,
  -- the record as imported, with only the affected entries of supported ecosystems
  record jsonb NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX advisories_aliases_idx ON advisories USING gin (aliases);

-- One row per advisory and package it affects; name normalised per ecosystem (PyPI: PEP 503).
CREATE TABLE advisory_packages (
  advisory_id text NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
  ecosystem text NOT NULL CHECK (ecosystem IN ('npm', 'pypi', 'nuget')),
  name text NOT NULL,
  -- the record's affected[] entries for this package
  affected jsonb NOT NULL,
  PRIMARY KEY (advisory_id, ecosystem, name)
);
CREATE INDEX advisory_packages_lookup_idx ON advisory_packages (ecosystem, name);

CREATE TABLE advisory_imports (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  source text NOT NULL,
  imported_by text NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  duration_ms double precision NOT NULL,
  -- { records, imported, unchanged, withdrawn, skipped, perEcosystem: { npm: n, … } }
  stats jsonb NOT NULL
);

-- What the last scan of a version found, before ignore rules (applied when read, so expiry counts).
CREATE TABLE version_findings (
  version_id uuid NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id),
  registry_type text NOT NULL,
  identifier text NOT NULL,
  package_version text NOT NULL,
  advisory_id text NOT NULL,
  -- fixed versions in this package's ecosystem only, lowest first
  fixed jsonb NOT NULL,
  PRIMARY KEY (version_id, registry_type, identifier, package_version, advisory_id)
);
CREATE INDEX version_findings_org_idx ON version_findings (org_id, advisory_id);

-- When a version was last scanned and what could not be (OCI without SBOM, Homebrew).
CREATE TABLE version_scans (
  version_id uuid PRIMARY KEY REFERENCES versions (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id),
  scanned_at timestamptz NOT NULL,
  -- [{ registryType, identifier, version, status: scanned | not-scanned | not-covered, reason? }]
  coverage jsonb NOT NULL
);

CREATE TABLE vulnerability_ignores (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  -- an advisory id or one of its aliases (CVE-…), stored upper-case
  advisory text NOT NULL,
  -- NULL: any package / any server
  package text,
  server text,
  reason text NOT NULL CHECK (length(reason) > 0),
  expires_at timestamptz,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vulnerability_ignores_org_idx ON vulnerability_ignores (org_id);

-- SBOMs attached to a version's OCI images (CycloneDX or SPDX JSON): their components are scanned
-- in place of the image, which has no OSV ecosystem of its own.
CREATE TABLE version_sboms (
  version_id uuid NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id),
  -- the OCI package identifier the SBOM describes
  image text NOT NULL,
  format text NOT NULL CHECK (format IN ('cyclonedx', 'spdx')),
  -- [{ ecosystem, name, version, purl }] of the components in supported ecosystems
  components jsonb NOT NULL,
  -- components with a purl of another type (deb, golang, …): listed as not covered
  other_components integer NOT NULL,
  uploaded_by text NOT NULL,
  uploaded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (version_id, image)
);
