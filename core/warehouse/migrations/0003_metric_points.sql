-- Metric data points as deltas, one row each, and per-minute / per-hour process resources per
-- version: CPU utilization (average of process.cpu.utilization), CPU seconds (sum of the
-- process.cpu.time deltas) and memory (average and maximum of process.memory.usage). Each is
-- NULL (avg: nan) for a bucket where the service did not report that metric.
-- Retention and deduplication as for requests (0002).
CREATE TABLE IF NOT EXISTS metric_points (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  operation LowCardinality(String),
  metric LowCardinality(String),
  unit LowCardinality(String),
  kind LowCardinality(String),
  start_time DateTime64(3, 'UTC'),
  time DateTime64(3, 'UTC'),
  count UInt64,
  sum Float64,
  value Float64,
  bounds Array(Float64),
  bucket_counts Array(UInt64)
) ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (org_id, server, environment, version, operation, metric, time)
TTL toDateTime(time) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS resources_1m (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  time DateTime('UTC'),
  cpu_utilization AggregateFunction(avg, Float64),
  cpu_seconds AggregateFunction(sumOrNull, Float64),
  memory_avg AggregateFunction(avg, Float64),
  memory_max AggregateFunction(maxOrNull, Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(time)
ORDER BY (org_id, server, environment, version, time)
TTL time + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS resources_1m_mv TO resources_1m AS
SELECT org_id, server, environment, version,
  toStartOfMinute(time) AS time,
  avgStateIf(value, metric = 'process.cpu.utilization') AS cpu_utilization,
  sumOrNullStateIf(value, metric = 'process.cpu.time') AS cpu_seconds,
  avgStateIf(value, metric = 'process.memory.usage') AS memory_avg,
  maxOrNullStateIf(value, metric = 'process.memory.usage') AS memory_max
FROM metric_points
WHERE metric IN ('process.cpu.utilization', 'process.cpu.time', 'process.memory.usage')
GROUP BY org_id, server, environment, version, time;

CREATE TABLE IF NOT EXISTS resources_1h (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  time DateTime('UTC'),
  cpu_utilization AggregateFunction(avg, Float64),
  cpu_seconds AggregateFunction(sumOrNull, Float64),
  memory_avg AggregateFunction(avg, Float64),
  memory_max AggregateFunction(maxOrNull, Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, environment, version, time)
TTL time + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS resources_1h_mv TO resources_1h AS
SELECT org_id, server, environment, version,
  toStartOfHour(time) AS time,
  avgStateIf(value, metric = 'process.cpu.utilization') AS cpu_utilization,
  sumOrNullStateIf(value, metric = 'process.cpu.time') AS cpu_seconds,
  avgStateIf(value, metric = 'process.memory.usage') AS memory_avg,
  maxOrNullStateIf(value, metric = 'process.memory.usage') AS memory_max
FROM metric_points
WHERE metric IN ('process.cpu.utilization', 'process.cpu.time', 'process.memory.usage')
GROUP BY org_id, server, environment, version, time;
