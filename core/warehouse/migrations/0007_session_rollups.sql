-- Per-minute rollups of settled sessions, for release health over long windows and many sessions
-- (core/release-health/rollups.ts). A session's status is known only once it can no longer change:
-- it ended, or no row came for longer than the idle limit. The settle job reads the merged states
-- of the sessions last seen in a closed span of time (a chunk), computes each one's status once, and
-- adds them here by the minute they were last seen and their status. Queries read these rows for
-- settled time and the merged raw states (0006) only after it, so each session counts once.
CREATE TABLE IF NOT EXISTS session_rollups (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  -- The minute the session was last seen.
  time DateTime('UTC'),
  status LowCardinality(String),
  sessions SimpleAggregateFunction(sum, UInt64),
  -- Keyed hashes of the sessions' clients (users); exact, so users of many minutes merge exactly.
  users AggregateFunction(uniqExact, String),
  -- Sessions that ended (healthy, errored, crashed), and their lifetimes (ms) as a t-digest.
  timed SimpleAggregateFunction(sum, UInt64),
  durations AggregateFunction(quantilesTDigest(0.5, 0.9), Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, environment, time, version, status)
TTL time + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- The chunks the settle job planned and finished: [from_time, to_time) of sessions' last_seen. A
-- chunk is written here before its rollup rows (done = 0) and again after (done = 1), so a job killed
-- in between redoes exactly that chunk, under the same insert deduplication token, and the rows are
-- added once. Queries read the rollups up to the end of the last finished chunk.
CREATE TABLE IF NOT EXISTS session_rollup_chunks (
  from_time DateTime64(3, 'UTC'),
  to_time DateTime64(3, 'UTC'),
  done UInt8,
  written DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY to_time
TTL toDateTime(to_time) + INTERVAL 90 DAY;
