-- Requests (SERVER spans), one row each, and the rollups that answer windows longer than six hours.
-- Raw rows live 7 days, minute rollups 90 days, hour rollups 400 days: the defaults of
-- applyRetention in telemetry-queries.ts, which changes these TTLs to the configured ones.
-- non_replicated_deduplication_window keeps the ids of the last inserted blocks, so a batch retried
-- with the same insert_deduplication_token is stored once. The rollup tables need the window too:
-- ClickHouse still runs the materialized views for a block deduplicated in the source table and
-- relies on the targets to drop it (deduplicate_blocks_in_dependent_materialized_views). Their block
-- ids derive from the source block, not from the aggregated rows, so two different inserts that
-- aggregate to identical rollup rows are both kept (checked in telemetry-writer.int.test.ts).
CREATE TABLE IF NOT EXISTS requests (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  operation LowCardinality(String),
  time DateTime64(3, 'UTC'),
  duration_ms Float64,
  error UInt8,
  error_type LowCardinality(String),
  http_status UInt16,
  mcp_method LowCardinality(String),
  tool LowCardinality(String),
  trace_id String,
  span_id String,
  session_id String
) ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (org_id, server, environment, version, operation, time)
TTL toDateTime(time) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS requests_1m (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  operation LowCardinality(String),
  time DateTime('UTC'),
  requests AggregateFunction(count),
  errors AggregateFunction(sum, UInt8),
  duration_ms AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(time)
ORDER BY (org_id, server, environment, version, operation, time)
TTL time + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS requests_1m_mv TO requests_1m AS
SELECT org_id, server, environment, version, operation,
  toStartOfMinute(time) AS time,
  countState() AS requests,
  sumState(error) AS errors,
  quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS duration_ms
FROM requests
GROUP BY org_id, server, environment, version, operation, time;

CREATE TABLE IF NOT EXISTS requests_1h (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  operation LowCardinality(String),
  time DateTime('UTC'),
  requests AggregateFunction(count),
  errors AggregateFunction(sum, UInt8),
  duration_ms AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, environment, version, operation, time)
TTL time + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS requests_1h_mv TO requests_1h AS
SELECT org_id, server, environment, version, operation,
  toStartOfHour(time) AS time,
  countState() AS requests,
  sumState(error) AS errors,
  quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS duration_ms
FROM requests
GROUP BY org_id, server, environment, version, operation, time;

-- Failed requests by error type, so "top errors" and "errors new in this version" work past the
-- raw retention too. Only failed requests reach these tables.
CREATE TABLE IF NOT EXISTS request_errors_1m (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  operation LowCardinality(String),
  error_type LowCardinality(String),
  time DateTime('UTC'),
  errors SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(time)
ORDER BY (org_id, server, environment, version, operation, error_type, time)
TTL time + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS request_errors_1m_mv TO request_errors_1m AS
SELECT org_id, server, environment, version, operation, error_type,
  toStartOfMinute(time) AS time,
  count() AS errors
FROM requests
WHERE error = 1
GROUP BY org_id, server, environment, version, operation, error_type, time;

CREATE TABLE IF NOT EXISTS request_errors_1h (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  operation LowCardinality(String),
  error_type LowCardinality(String),
  time DateTime('UTC'),
  errors SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, environment, version, operation, error_type, time)
TTL time + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS request_errors_1h_mv TO request_errors_1h AS
SELECT org_id, server, environment, version, operation, error_type,
  toStartOfHour(time) AS time,
  count() AS errors
FROM requests
WHERE error = 1
GROUP BY org_id, server, environment, version, operation, error_type, time;
