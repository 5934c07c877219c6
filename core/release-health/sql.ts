/**
 * SQL shared by the release-health queries (queries.ts) and the settle job (rollups.ts): the merged
 * state of each session and its status, with the rules of {@link sessionStatus} (model.ts).
 */

/** A millisecond query parameter as a DateTime64. */
export const at = (param: string) => `fromUnixTimestamp64Milli({${param}:Int64}, 'UTC')`;

/** The scope of some servers × environments of one org (one of each, or a fleet for the overview). */
export const SCOPE_SQL = `org_id = {org:String} AND server IN {servers:Array(String)} AND environment IN {environments:Array(String)}`;

/** The columns of `session_states` and `session_carry`, in one order. */
const STATE_COLUMNS = `org_id, server, environment, version, session_id, first_seen, last_seen, requests,
  errors, crashes, ended, end_reason, moved, client_key`;

const MERGED_COLUMNS = `org_id, server, environment, version, session_id,
    min(first_seen) AS first_at, max(last_seen) AS last_at,
    sum(requests) AS request_count, sum(errors) AS error_count, sum(crashes) AS crash_count,
    max(ended) AS was_ended, argMaxMerge(end_reason) AS why, max(moved) AS was_moved,
    max(client_key) AS client`;

/**
 * Where a session's rows are merged from:
 * - `lookback`: `session_states` only, reaching one day before `{since}` (a gateway session lives at
 *   most that long, SESSION_MAX_AGE_MS), so every row of a session is merged, its earlier errors and
 *   first time too; only the sessions with a row since `{since}` are merged.
 * - `carry`: the settle job's carried states at `{carry_at}` (the merged rows before it of every
 *   session still going on then, rollups.ts) and the rows of `session_states` last seen since then.
 *   Reading from the last settled time on, it needs no day of lookback: the cheap way to the tail.
 */
export type MergeSource = 'lookback' | 'carry';

/**
 * One row per session and version last seen in [`{since}`, `{until}`) and first seen by `{to}`,
 * merged from all its rows (so rows written by two gateways, or twice, fold into one session).
 * `scoped` limits it to `{org}`, `{servers}` and `{environments}`; the settle job merges every org at
 * once. `org_id`, `server` and `environment` are kept for it.
 */
export function mergedSessionsSql(options: { scoped: boolean; source: MergeSource }): string {
  const scope = options.scoped ? `${SCOPE_SQL} AND ` : '';
  const having = `HAVING last_at >= ${at('since')} AND last_at < ${at('until')} AND first_at <= ${at('to')}`;
  if (options.source === 'carry') {
    return `SELECT ${MERGED_COLUMNS}
    FROM (
      SELECT ${STATE_COLUMNS} FROM session_carry WHERE ${scope}at = ${at('carry_at')}
      UNION ALL
      SELECT ${STATE_COLUMNS} FROM session_states WHERE ${scope}last_seen >= ${at('carry_at')}
    )
    GROUP BY org_id, server, environment, version, session_id
    ${having}`;
  }
  return `SELECT ${MERGED_COLUMNS}
  FROM session_states
  WHERE ${scope}last_seen >= ${at('since')} - INTERVAL 1 DAY
    AND session_id IN (
      SELECT session_id FROM session_states
      WHERE ${scope}last_seen >= ${at('since')} AND last_seen < ${at('until')})
  GROUP BY org_id, server, environment, version, session_id
  ${having}`;
}

/**
 * The carried states at `{until}` of the sessions still going on then: each session with a row
 * last seen from `{until}` on, merged over its rows before `{until}` (the carry at `{carry_at}` and
 * the rows since). What the next chunk and the queries of the tail start from.
 */
export const CARRY_SQL = (() => {
  const before = `c_last < ${at('until')}`;
  // The rows' columns renamed, so the aggregates below may take their names.
  const renamed = `org_id, server, environment, version, session_id, first_seen AS c_first, last_seen AS c_last,
    requests AS c_requests, errors AS c_errors, crashes AS c_crashes, ended AS c_ended,
    end_reason AS c_reason, moved AS c_moved, client_key AS c_client`;
  return `SELECT ${at('until')} AS at, org_id, server, environment, version, session_id,
    minIf(c_first, ${before}) AS first_seen,
    maxIf(c_last, ${before}) AS last_seen,
    sumIf(c_requests, ${before}) AS requests,
    sumIf(c_errors, ${before}) AS errors,
    sumIf(c_crashes, ${before}) AS crashes,
    maxIf(c_ended, ${before}) AS ended,
    argMaxMergeStateIf(c_reason, ${before}) AS end_reason,
    maxIf(c_moved, ${before}) AS moved,
    maxIf(c_client, ${before}) AS client_key
  FROM (
    SELECT ${renamed} FROM session_carry WHERE at = ${at('carry_at')}
    UNION ALL
    SELECT ${renamed} FROM session_states WHERE last_seen >= ${at('carry_at')}
  )
  GROUP BY org_id, server, environment, version, session_id
  HAVING max(c_last) >= ${at('until')} AND countIf(${before}) > 0`;
})();

/**
 * The status of a merged session, in the order of {@link sessionStatus}; `{now:Int64}` and
 * `{idle:Int64}` are milliseconds.
 */
export const STATUS_SQL = `multiIf(
    was_moved = 1 OR (was_ended = 1 AND why = 'rollback'), 'moved-by-rollout',
    crash_count > 0 OR (was_ended = 1 AND why = 'upstream-failure'), 'crashed',
    error_count > 0, 'errored',
    was_ended = 1, 'healthy',
    toUnixTimestamp64Milli(last_at) >= {now:Int64} - {idle:Int64}, 'active',
    'abnormal')`;

/** Milliseconds from a merged session's first to last row. */
export const LIFETIME_SQL = `toFloat64(greatest(0, toUnixTimestamp64Milli(last_at) - toUnixTimestamp64Milli(first_at)))`;

/** Whether a session's lifetime is a duration: it ended, and not by a rollback (`status` in scope). */
export const TIMED_SQL = `was_ended = 1 AND status IN ('healthy', 'errored', 'crashed')`;

/** Far in the future, for an open end of `[since, until)`. */
export const NO_END = 253_402_300_799_000;

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

/**
 * The rollup rows of settled sessions last seen in [`{from}`, `{settled}`) of one server ×
 * environment, with `columns` (of both rollup tables): the whole hours from `session_rollups_1h`,
 * the minutes at either edge from `session_rollups`. Parameters from {@link rollupBounds}.
 */
export function rollupRowsSql(columns: string): string {
  return `SELECT ${columns} FROM session_rollups
    WHERE ${SCOPE_SQL} AND time >= toStartOfMinute(${at('from')}) AND time < ${at('settled')}
      AND (time < ${at('hours_from')} OR time >= ${at('hours_to')})
    UNION ALL
    SELECT ${columns} FROM session_rollups_1h
    WHERE ${SCOPE_SQL} AND time >= ${at('hours_from')} AND time < ${at('hours_to')}`;
}

/** The whole hours of [from, settled) that {@link rollupRowsSql} reads per hour. */
export function rollupBounds(from: number, settled: number): { hours_from: number; hours_to: number } {
  const start = Math.floor(from / MINUTE_MS) * MINUTE_MS;
  return {
    hours_from: Math.ceil(start / HOUR_MS) * HOUR_MS,
    hours_to: Math.floor(settled / HOUR_MS) * HOUR_MS,
  };
}
