-- Release health: one aggregate state per MCP session and version, folded from the gateway's and the
-- collector's request rows (0002, 0005) and the gateway's session events (0005). Rows of one session
-- arrive in many inserts (every request, its start and end, from any gateway replica); the
-- AggregatingMergeTree merges them by (org, server, environment, version, session) and queries merge
-- what is not merged yet with GROUP BY session_id, so a session counts once however many parts or
-- replicas wrote it. A batch replayed from the spool is dropped by the insert deduplication token
-- (the window below, as in 0002). Statuses are computed from the merged state at query time
-- (core/release-health/model.ts): the state holds facts, not a status, because "active" and
-- "abnormal" depend on when one looks.
-- Retention as for the raw requests (7 days; applyRetention in telemetry-queries.ts changes it).
CREATE TABLE IF NOT EXISTS session_states (
  org_id LowCardinality(String),
  server LowCardinality(String),
  environment LowCardinality(String),
  version LowCardinality(String),
  session_id String,
  first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
  last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
  requests SimpleAggregateFunction(sum, UInt64),
  errors SimpleAggregateFunction(sum, UInt64),
  -- Requests the upstream failed: 502/503/504 from the gateway, or a stream cut before the answer.
  crashes SimpleAggregateFunction(sum, UInt64),
  ended SimpleAggregateFunction(max, UInt8),
  end_reason AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
  -- A 'migrate' event left this version: the session continues under the version it moved to.
  moved SimpleAggregateFunction(max, UInt8),
  -- The keyed hash of the client; max() keeps a non-empty one when any row has it.
  client_key SimpleAggregateFunction(max, String)
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(last_seen)
ORDER BY (org_id, server, environment, version, session_id)
TTL toDateTime(last_seen) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 10000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS session_states_requests_mv TO session_states AS
SELECT org_id, server, environment, version, session_id,
  min(time) AS first_seen,
  max(addMilliseconds(time, toInt64(duration_ms))) AS last_seen,
  toUInt64(count()) AS requests,
  toUInt64(sum(error)) AS errors,
  toUInt64(countIf(error_type IN ('502', '503', '504', 'upstream_disconnected'))) AS crashes,
  toUInt8(0) AS ended,
  argMaxStateIf(toString(''), time, 0) AS end_reason,
  toUInt8(0) AS moved,
  max(client_key) AS client_key
FROM requests
WHERE session_id != '' AND counted = 1
GROUP BY org_id, server, environment, version, session_id;

-- A 'migrate' event (written under the version the session moved TO, reason = the version it left)
-- yields two states: the new version's (the session continues there) and the old version's, marked
-- moved.
CREATE MATERIALIZED VIEW IF NOT EXISTS session_states_events_mv TO session_states AS
SELECT org_id, server, environment, target.1 AS version, session_id,
  min(time) AS first_seen,
  max(time) AS last_seen,
  toUInt64(0) AS requests,
  toUInt64(0) AS errors,
  toUInt64(0) AS crashes,
  toUInt8(max(event = 'end')) AS ended,
  argMaxStateIf(toString(reason), time, event = 'end') AS end_reason,
  toUInt8(max(target.2)) AS moved,
  max(client_key) AS client_key
FROM (
  SELECT org_id, server, environment, session_id, time, event, reason, client_key,
    arrayJoin(
      if(event = 'migrate' AND reason != '',
        [(toString(version), toUInt8(0)), (toString(reason), toUInt8(1))],
        [(toString(version), toUInt8(0))])
    ) AS target
  FROM session_events
  WHERE session_id != ''
)
GROUP BY org_id, server, environment, version, session_id;
