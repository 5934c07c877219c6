-- Who measured a request, and whether it counts. `source` is "otlp" (the collector, from a SERVER
-- span) or "gateway" (an MCP exchange through the Pylee gateway); `client_key` is a keyed hash of
-- the client, written by the gateway (empty for OTLP). A server behind the gateway is measured by
-- the gateway: the collector keeps the OTLP rows of its MCP calls with `counted = 0`, and only
-- `counted = 1` rows reach any figure. Rows written before this migration take the defaults.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT 'otlp';
ALTER TABLE requests ADD COLUMN IF NOT EXISTS client_key String DEFAULT '';
ALTER TABLE requests ADD COLUMN IF NOT EXISTS counted UInt8 DEFAULT 1;

-- The rollups aggregate counted rows only. A view cannot be altered on every ClickHouse Pylee
-- supports, so each is dropped and created again (both idempotent): rows inserted in the moment
-- between the two statements reach the raw table but not the rollups.
DROP VIEW IF EXISTS requests_1m_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS requests_1m_mv TO requests_1m AS
SELECT org_id, server, environment, version, operation,
  toStartOfMinute(time) AS time,
  countState() AS requests,
  sumState(error) AS errors,
  quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS duration_ms
FROM requests
WHERE counted = 1
GROUP BY org_id, server, environment, version, operation, time;

DROP VIEW IF EXISTS requests_1h_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS requests_1h_mv TO requests_1h AS
SELECT org_id, server, environment, version, operation,
  toStartOfHour(time) AS time,
  countState() AS requests,
  sumState(error) AS errors,
  quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS duration_ms
FROM requests
WHERE counted = 1
GROUP BY org_id, server, environment, version, operation, time;

DROP VIEW IF EXISTS request_errors_1m_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS request_errors_1m_mv TO request_errors_1m AS
SELECT org_id, server, environment, version, operation, error_type,
  toStartOfMinute(time) AS time,
  count() AS errors
FROM requests
WHERE error = 1 AND counted = 1
GROUP BY org_id, server, environment, version, operation, error_type, time;

DROP VIEW IF EXISTS request_errors_1h_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS request_errors_1h_mv TO request_errors_1h AS
SELECT org_id, server, environment, version, operation, error_type,
  toStartOfHour(time) AS time,
  count() AS errors
FROM requests
WHERE error = 1 AND counted = 1
GROUP BY org_id, server, environment, version, operation, error_type, time;

-- Session records of the gateway, for release health (crash-free sessions and users, adoption).
-- `event` is "start", "end" or "migrate"; `reason` says why a session ended ("delete", "idle",
-- "upstream-failure", "rollback", "terminated") or, for "migrate", the version it moved from.
-- Retention and deduplication as for the raw requests (0002).
CREATE TABLE IF NOT EXISTS session_events (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  session_id String,
  time DateTime64(3, 'UTC'),
  event LowCardinality(String),
  reason LowCardinality(String),
  client_key String,
  source LowCardinality(String) DEFAULT 'gateway'
) ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (org_id, server, environment, version, time)
TTL toDateTime(time) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;
