-- One row per health-check run. `status_code` is the HTTP status (0 when there was none); the
-- protocol version, tool count and tool-schema hash are filled by MCP checks only.
CREATE TABLE IF NOT EXISTS health_results (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  check_id String,
  check_name String,
  kind LowCardinality(String),
  phase LowCardinality(String),
  time DateTime64(3, 'UTC'),
  ok UInt8,
  latency_ms Float64,
  status_code UInt16,
  error String,
  protocol_version LowCardinality(String),
  tool_count UInt32,
  tools_hash String,
  deployment_id String,
  run_id String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, check_id, time)
TTL toDateTime(time) + INTERVAL 90 DAY;
