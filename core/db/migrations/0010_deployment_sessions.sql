-- What a deployment does to the live MCP sessions of a version that loses all its weight (issue 14,
-- carried out by the gateway): migrate (the default: the session's next request opens a new upstream
-- session on the remaining version), terminate (its next request is 404, the client initializes
-- again) or drain (it stays on its version until idle). A promotion to 100 % always drains.
ALTER TABLE deployments
  ADD COLUMN sessions text NOT NULL DEFAULT 'migrate'
  CHECK (sessions IN ('migrate', 'terminate', 'drain'));
