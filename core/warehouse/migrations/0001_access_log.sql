-- Every API request, for "who used this token, from where, and what did it get back".
CREATE TABLE IF NOT EXISTS access_log (
  org_id LowCardinality(String),
  time DateTime64(3, 'UTC'),
  request_id String,
  role LowCardinality(String),
  method LowCardinality(String),
  route LowCardinality(String),
  path String,
  status UInt16,
  duration_ms Float64,
  token_id String,
  client_address String,
  user_agent String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (org_id, time)
TTL toDateTime(time) + INTERVAL 90 DAY;
