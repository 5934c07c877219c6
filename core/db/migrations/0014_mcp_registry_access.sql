-- Whether the org's MCP sub-registry (/v0, /v0.1) answers requests without a token (issue 19).
-- Off by default: an admin turns it on, audited as org.mcp-registry.access.
ALTER TABLE orgs ADD COLUMN IF NOT EXISTS registry_public boolean NOT NULL DEFAULT false;
