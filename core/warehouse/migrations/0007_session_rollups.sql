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
  -- Keyed hashes of the sessions' clients (users): exact up to a few hundred, then a HyperLogLog of
  -- 4,096 cells (about 1.6 % error), so a week of hours merges in bounded time whatever the traffic.
  users AggregateFunction(uniqCombined64(12), String),
  -- Sessions that ended (healthy, errored, crashed), and their lifetimes (ms) as a t-digest.
  timed SimpleAggregateFunction(sum, UInt64),
  durations AggregateFunction(quantilesTDigest(0.5, 0.9), Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, environment, time, version, status)
TTL time + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- The same per hour, for long windows: a week reads 168 rows per version and status, not 10,080.
-- Queries read whole hours here and the minutes at a window's edges from session_rollups. A chunk
-- the settle job adds again is dropped by its token in session_rollups, and so never reaches here.
CREATE TABLE IF NOT EXISTS session_rollups_1h (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  time DateTime('UTC'),
  status LowCardinality(String),
  sessions SimpleAggregateFunction(sum, UInt64),
  users AggregateFunction(uniqCombined64(12), String),
  timed SimpleAggregateFunction(sum, UInt64),
  durations AggregateFunction(quantilesTDigest(0.5, 0.9), Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, server, environment, time, version, status)
TTL time + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS session_rollups_1h_mv TO session_rollups_1h AS
SELECT org_id, server, environment, version, toStartOfHour(time) AS time, status,
  sum(sessions) AS sessions,
  uniqCombined64MergeState(12)(users) AS users,
  sum(timed) AS timed,
  quantilesTDigestMergeState(0.5, 0.9)(durations) AS durations
FROM session_rollups
GROUP BY org_id, server, environment, version, time, status;

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

-- What the settle job carries over a chunk's end (`at`): for each session still going on then, its
-- rows before `at` merged into one (same columns as session_states). The next chunk, and the queries
-- of the unsettled tail, merge these with the rows from `at` on instead of reading a day back.
CREATE TABLE IF NOT EXISTS session_carry (
  at DateTime64(3, 'UTC'),
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  session_id String,
  first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
  last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
  requests SimpleAggregateFunction(sum, UInt64),
  errors SimpleAggregateFunction(sum, UInt64),
  crashes SimpleAggregateFunction(sum, UInt64),
  ended SimpleAggregateFunction(max, UInt8),
  end_reason AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
  moved SimpleAggregateFunction(max, UInt8),
  client_key SimpleAggregateFunction(max, String)
) ENGINE = MergeTree
PARTITION BY toDate(at)
ORDER BY (at, org_id, server, environment, version, session_id)
TTL toDateTime(at) + INTERVAL 2 DAY
SETTINGS non_replicated_deduplication_window = 10000;
