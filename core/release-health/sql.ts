/**
 * SQL shared by the release-health queries (queries.ts) and the settle job (rollups.ts): the merged
 * state of each session and its status, with the rules of {@link sessionStatus} (model.ts).
 */

/** A millisecond query parameter as a DateTime64. */
export const at = (param: string) => `fromUnixTimestamp64Milli({${param}:Int64}, 'UTC')`;

/** The scope of one server × environment of one org, on a table with these columns. */
export const SCOPE_SQL = `org_id = {org:String} AND server = {server:String} AND environment = {environment:String}`;

/**
 * One row per session and version last seen in [`{since}`, `{until}`) and first seen by `{to}`,
 * merged from every part of `session_states` (so rows written by two gateways, or twice, fold into
 * one session). The parts read reach one day before `{since}`: a gateway session lives at most that
 * long (SESSION_MAX_AGE_MS), so every row of a session is merged, its earlier errors and first time
 * too; only the sessions that have a row since `{since}` are merged, which keeps a short tail of a
 * long table cheap. `scoped` limits it to `{org}`, `{server}` and `{environment}`; the settle job
 * merges every org at once. `org_id`, `server` and `environment` are kept for it.
 */
export function mergedSessionsSql(options: { scoped: boolean }): string {
  const scope = options.scoped ? `${SCOPE_SQL} AND ` : '';
  return `SELECT org_id, server, environment, version, session_id,
    min(first_seen) AS first_at, max(last_seen) AS last_at,
    sum(requests) AS request_count, sum(errors) AS error_count, sum(crashes) AS crash_count,
    max(ended) AS was_ended, argMaxMerge(end_reason) AS why, max(moved) AS was_moved,
    max(client_key) AS client
  FROM session_states
  WHERE ${scope}last_seen >= ${at('since')} - INTERVAL 1 DAY
    AND session_id IN (
      SELECT session_id FROM session_states
      WHERE ${scope}last_seen >= ${at('since')} AND last_seen < ${at('until')})
  GROUP BY org_id, server, environment, version, session_id
  HAVING last_at >= ${at('since')} AND last_at < ${at('until')} AND first_at <= ${at('to')}`;
}

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
