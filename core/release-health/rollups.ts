import type { Warehouse } from '../warehouse/client.ts';
import { SESSION_IDLE_LIMIT_MS } from './model.ts';
import { CARRY_SQL, LIFETIME_SQL, mergedSessionsSql, NO_END, STATUS_SQL, TIMED_SQL } from './sql.ts';

/**
 * Settling sessions into per-minute rollups (migration 0007). A session last seen before
 * `now − SETTLE_LAG_MS` cannot change any more: it ended, or it has been idle past the limit
 * (abnormal). The job adds such sessions to `session_rollups` once, by status and the minute they
 * were last seen, in chunks of last-seen time; queries read the rollups up to the end of the last
 * finished chunk ({@link settledUntil}) and the raw merged states after it. A session that comes
 * back after it settled counts again, as a new session (as an idle-expired session would).
 */

const MINUTE_MS = 60_000;

/**
 * How far behind now sessions settle: the idle limit, and 30 minutes more for rows that arrive late
 * (a gateway or collector replaying its write-ahead log after a warehouse outage). Rows of a session
 * that arrive later than that are kept in the raw table but miss the figures.
 */
export const SETTLE_LAG_MS = SESSION_IDLE_LIMIT_MS + 30 * MINUTE_MS;
/** The longest chunk one step settles, so catching up after downtime is done in bounded steps. */
export const MAX_CHUNK_MS = 6 * 3_600_000;

interface Chunk {
  from: number;
  to: number;
  done: boolean;
}

const ms = (value: string) => Date.parse(`${value.replace(' ', 'T')}Z`);

/** The last chunk planned, finished or not; undefined before the first. */
async function lastChunk(warehouse: Warehouse): Promise<Chunk | undefined> {
  const result = await warehouse.client.query({
    query: `SELECT toString(from_time) AS f, toString(to_time) AS t, max(done) AS d FROM session_rollup_chunks
      GROUP BY from_time, to_time ORDER BY to_time DESC, from_time DESC LIMIT 1`,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ f: string; t: string; d: number }>();
  return row && { from: ms(row.f), to: ms(row.t), done: Number(row.d) === 1 };
}

/** Epoch ms up to which sessions are in the rollups (by last seen); 0 before anything settled. */
export async function settledUntil(warehouse: Warehouse): Promise<number> {
  const result = await warehouse.client.query({
    query: `SELECT toUnixTimestamp64Milli(max(to_time)) AS t, count() AS n FROM session_rollup_chunks WHERE done = 1`,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ t: string | number; n: string | number }>();
  return row && Number(row.n) > 0 ? Number(row.t) : 0;
}

async function mark(warehouse: Warehouse, chunk: Chunk): Promise<void> {
  await warehouse.client.insert({
    table: 'session_rollup_chunks',
    values: [
      {
        from_time: new Date(chunk.from).toISOString(),
        to_time: new Date(chunk.to).toISOString(),
        done: chunk.done ? 1 : 0,
      },
    ],
    format: 'JSONEachRow',
    clickhouse_settings: { date_time_input_format: 'best_effort' },
  });
}

/**
 * Adds the sessions last seen in [from, to) to the rollups, and carries the states of the sessions
 * still going on at `to` over to the next chunk (sql.ts CARRY_SQL). Each insert carries a token named
 * after the chunk, so running it again (a job killed before it marked the chunk done) adds nothing.
 */
async function rollUp(warehouse: Warehouse, chunk: Chunk, idleMs: number): Promise<void> {
  if (chunk.to <= chunk.from) return;
  const params = { carry_at: chunk.from, since: chunk.from, until: chunk.to, to: NO_END };
  await warehouse.client.command({
    query: `INSERT INTO session_rollups
      SELECT org_id, server, environment, version, toStartOfMinute(last_at) AS time, status,
        count() AS sessions,
        uniqCombined64StateIf(12)(client, client != '') AS users,
        countIf(is_timed) AS timed,
        quantilesTDigestStateIf(0.5, 0.9)(lifetime, is_timed) AS durations
      FROM (
        SELECT *, ${STATUS_SQL} AS status, ${LIFETIME_SQL} AS lifetime, ${TIMED_SQL} AS is_timed
        FROM (${mergedSessionsSql({ scoped: false, source: 'carry' })})
      )
      GROUP BY org_id, server, environment, version, time, status`,
    query_params: { ...params, now: chunk.to + idleMs, idle: idleMs },
    clickhouse_settings: { insert_deduplication_token: `session-rollup:${chunk.from}:${chunk.to}` },
  });
  await warehouse.client.command({
    query: `INSERT INTO session_carry ${CARRY_SQL}`,
    query_params: params,
    clickhouse_settings: { insert_deduplication_token: `session-carry:${chunk.from}:${chunk.to}` },
  });
}

/** Earliest last-seen time of any session state, floored to the minute; undefined when there is none. */
async function earliestSession(warehouse: Warehouse): Promise<number | undefined> {
  const result = await warehouse.client.query({
    query: `SELECT toUnixTimestamp64Milli(min(last_seen)) AS t, count() AS n FROM session_states`,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ t: string | number; n: string | number }>();
  if (!row || Number(row.n) === 0) return undefined;
  return Math.floor(Number(row.t) / MINUTE_MS) * MINUTE_MS;
}

export interface SettleResult {
  /** Chunks finished by this call, oldest first. */
  chunks: { from: number; to: number }[];
  /** Epoch ms up to which sessions are settled now. */
  settledUntil: number;
}

/**
 * Settles every session last seen before `now − lagMs` (minute-aligned) that is not settled yet:
 * first finishes a chunk a killed run left planned, then plans and finishes chunks of at most
 * `maxChunkMs` until it is caught up. Run by one job at a time (the caller holds a lock); a run killed
 * at any point is finished by the next.
 */
export async function settleSessions(
  warehouse: Warehouse,
  options: { now?: number; lagMs?: number; idleMs?: number; maxChunkMs?: number } = {},
): Promise<SettleResult> {
  const idleMs = options.idleMs ?? SESSION_IDLE_LIMIT_MS;
  const lagMs = Math.max(options.lagMs ?? SETTLE_LAG_MS, idleMs);
  const horizon = Math.floor(((options.now ?? Date.now()) - lagMs) / MINUTE_MS) * MINUTE_MS;
  const maxChunkMs = options.maxChunkMs ?? MAX_CHUNK_MS;
  const chunks: { from: number; to: number }[] = [];
  let last = await lastChunk(warehouse);
  if (last && !last.done) {
    await rollUp(warehouse, last, idleMs);
    await mark(warehouse, { ...last, done: true });
    chunks.push({ from: last.from, to: last.to });
  }
  let from = last?.to ?? (await earliestSession(warehouse)) ?? horizon;
  while (from < horizon || !last) {
    const chunk = { from, to: Math.min(horizon, from + maxChunkMs), done: false };
    if (chunk.to < chunk.from) chunk.to = chunk.from;
    await mark(warehouse, chunk);
    await rollUp(warehouse, chunk, idleMs);
    await mark(warehouse, { ...chunk, done: true });
    chunks.push({ from: chunk.from, to: chunk.to });
    last = { ...chunk, done: true };
    from = chunk.to;
  }
  return { chunks, settledUntil: last.to };
}
