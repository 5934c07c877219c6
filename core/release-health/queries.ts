import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { findEnvironment } from '../deploy/environments.ts';
import { BadRequestError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import { findVersion } from '../registry/versions.ts';
import { sortDescending } from '../registry/semver-policy.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { DEFAULT_RETENTION, ttlDays } from '../warehouse/telemetry-queries.ts';
import { settledUntil } from './rollups.ts';
import {
  LIFETIME_SQL,
  mergedSessionsSql,
  NO_END,
  rollupBounds,
  rollupRowsSql,
  STATUS_SQL,
  TIMED_SQL,
} from './sql.ts';
import {
  ADOPTION_STAGE_WINDOW_MS,
  ADOPTION_WINDOW_MS,
  rates,
  SESSION_IDLE_LIMIT_MS,
  stageOf,
  stageWindowEnds,
  type AdoptionStage,
  type CountedSessions,
  type HealthFigures,
  type SessionState,
  type SessionStatus,
  type StatusCounts,
} from './model.ts';

const DAY_MS = 86_400_000;

/** Release health of one version in a window. */
export interface VersionHealth extends Omit<HealthFigures, 'sessions'> {
  version: string;
  sessions: {
    total: number;
    healthy: number;
    errored: number;
    crashed: number;
    abnormal: number;
    movedByRollout: number;
    active: number;
  };
  /** Share of the environment's sessions and users over the 24 hours before `to`; null without any. */
  adoption: { sessions: number | null; users: number | null };
  stage: AdoptionStage;
}

export interface ReleaseHealth {
  server: string;
  environment: string;
  window: { from: number; to: number };
  /** Newest first by semver (versions that are not semver after them, by name). */
  versions: VersionHealth[];
  /** The same rates over all the environment's sessions in the window (every version pooled). */
  average: Pick<HealthFigures, 'crashFreeSessions' | 'crashFreeUsers' | 'erroredRate'>;
}

interface StateRow {
  version: string;
  session_id: string;
  first_at: string;
  last_at: string;
  request_count: string | number;
  error_count: string | number;
  crash_count: string | number;
  was_ended: number;
  why: string;
  was_moved: number;
  client: string;
}

const instant = (value: string) => Date.parse(`${value.replace(' ', 'T')}Z`);

/** Scope of the session queries: one server × environment, sessions seen in [from, to]. */
interface SessionScope {
  orgId: string;
  server: string;
  environment: string;
  from: number;
  to: number;
}

/** The same over several servers and environments (every pair of them), as the overview reads. */
export interface FleetScope {
  orgId: string;
  servers: readonly string[];
  environments: readonly string[];
  from: number;
  to: number;
}

const fleetOf = (scope: SessionScope): FleetScope => ({
  orgId: scope.orgId,
  servers: [scope.server],
  environments: [scope.environment],
  from: scope.from,
  to: scope.to,
});

/** The merged sessions of one server × environment (sql.ts), from a day of rows or from the carry. */
const MERGED_SESSIONS = mergedSessionsSql({ scoped: true, source: 'lookback' });
const MERGED_TAIL = mergedSessionsSql({ scoped: true, source: 'carry' });

const scopeParams = (scope: FleetScope, since = scope.from, carryAt = 0) => ({
  org: scope.orgId,
  servers: scope.servers,
  environments: scope.environments,
  from: scope.from,
  to: scope.to,
  since,
  until: NO_END,
  carry_at: carryAt,
});

/**
 * How a window's sessions are read. Once sessions have settled (rollups.ts), the rollups hold those
 * last seen before `settled` and the tail after it is merged from the settle job's carry (cheap
 * whatever the table's size). Before anything settled, or for a window that ends before the
 * settled time (the rollups know when sessions were last seen, not whether they overlapped an
 * earlier window's end), the raw states are merged with a day of lookback.
 */
function plan(scope: FleetScope, settled: number) {
  if (settled <= 0 || scope.to < settled) {
    return { rollups: false, merged: MERGED_SESSIONS, params: scopeParams(scope), settled: scope.from };
  }
  const since = Math.max(scope.from, settled);
  return {
    rollups: scope.from < settled,
    merged: MERGED_TAIL,
    params: { ...scopeParams(scope, since, settled), ...rollupBounds(scope.from, settled), settled },
    settled,
  };
}

/** The merged state of every session of one server × environment seen in [from, to], one row per session and version. */
export async function sessionStates(warehouse: Warehouse, scope: SessionScope): Promise<SessionState[]> {
  const result = await warehouse.client.query({
    query: MERGED_SESSIONS,
    query_params: scopeParams(fleetOf(scope)),
    format: 'JSONEachRow',
  });
  return (await result.json<StateRow>()).map((r) => ({
    version: r.version,
    sessionId: r.session_id,
    firstSeen: instant(r.first_at),
    lastSeen: instant(r.last_at),
    requests: Number(r.request_count),
    errors: Number(r.error_count),
    crashes: Number(r.crash_count),
    ended: Number(r.was_ended) === 1,
    endReason: r.why,
    moved: Number(r.was_moved) === 1,
    clientKey: r.client,
  }));
}

/** Figures of one version, or of every version pooled (`version` null). */
export interface CountedFigures extends CountedSessions {
  version: string | null;
  users: number;
  duration: { p50: number | null; p90: number | null };
}

interface FiguresRow {
  bucket: string;
  pooled: number;
  total: string | number;
  healthy: string | number;
  errored: string | number;
  crashed: string | number;
  abnormal: string | number;
  moved: string | number;
  active: string | number;
  users: string | number;
  decided_users: string | number;
  crashed_users: string | number;
  durations: string | number;
  duration: number[];
}

/** Figures of one version (or every version pooled) of one server × environment. */
export interface FleetFigures extends CountedFigures {
  server: string;
  environment: string;
}

/**
 * Sessions by status, users and durations per version in [from, to] of each server × environment
 * in scope, and pooled over its versions (the row with `version: null`), computed in ClickHouse: the
 * settled sessions from the rollups (rollups.ts) and the rest from the merged raw states, both as
 * aggregate states per version and status, merged together. One scan whatever the number of
 * sessions, and only one row per version leaves the warehouse. Durations are t-digest estimates (as
 * latency is everywhere in Pylee): interpolated between exact values up to about 2,000 sessions,
 * within about 1 % of rank beyond. `settled` defaults to {@link settledUntil}.
 */
export async function fleetFigures(
  warehouse: Warehouse,
  scope: FleetScope & { now: number; idleMs: number; settled?: number },
): Promise<FleetFigures[]> {
  if (scope.servers.length === 0 || scope.environments.length === 0) return [];
  const { rollups, merged, params } = plan(scope, scope.settled ?? (await settledUntil(warehouse)));
  // Rollup rows go straight into the one aggregation (their states merged once); the raw sessions
  // are folded into the same states per version and status first.
  const fromRollups = rollupRowsSql(
    'server, environment, version, status, sessions AS n, users AS u, timed AS timed_n, durations AS d',
  );
  const fromRaw = `SELECT server, environment, version, status, count() AS n,
      uniqCombined64StateIf(12)(client, client != '') AS u,
      countIf(timed) AS timed_n, quantilesTDigestStateIf(0.5, 0.9)(lifetime, timed) AS d
    FROM (
      SELECT server, environment, version, client, ${STATUS_SQL} AS status, ${LIFETIME_SQL} AS lifetime,
        ${TIMED_SQL} AS timed
      FROM (${merged})
    )
    GROUP BY server, environment, version, status`;
  const result = await warehouse.client.query({
    query: `SELECT server, environment, version AS bucket, grouping(version) AS pooled,
        sum(n) AS total,
        sumIf(n, status = 'healthy') AS healthy,
        sumIf(n, status = 'errored') AS errored,
        sumIf(n, status = 'crashed') AS crashed,
        sumIf(n, status = 'abnormal') AS abnormal,
        sumIf(n, status = 'moved-by-rollout') AS moved,
        sumIf(n, status = 'active') AS active,
        uniqCombined64Merge(12)(u) AS users,
        uniqCombined64MergeIf(12)(u, status NOT IN ('moved-by-rollout', 'active')) AS decided_users,
        uniqCombined64MergeIf(12)(u, status = 'crashed') AS crashed_users,
        sum(timed_n) AS durations,
        quantilesTDigestMerge(0.5, 0.9)(d) AS duration
      FROM (${rollups ? `${fromRollups} UNION ALL ` : ''}${fromRaw})
      GROUP BY GROUPING SETS ((server, environment, version), (server, environment))`,
    query_params: { ...params, now: scope.now, idle: scope.idleMs },
    format: 'JSONEachRow',
  });
  return (await result.json<FiguresRow & { server: string; environment: string }>()).map((r) => {
    const timed = Number(r.durations) > 0;
    return {
      server: r.server,
      environment: r.environment,
      version: Number(r.pooled) === 1 ? null : r.bucket,
      sessions: {
        total: Number(r.total),
        healthy: Number(r.healthy),
        errored: Number(r.errored),
        crashed: Number(r.crashed),
        abnormal: Number(r.abnormal),
        'moved-by-rollout': Number(r.moved),
        active: Number(r.active),
      },
      users: Number(r.users),
      decidedUsers: Number(r.decided_users),
      crashedUsers: Number(r.crashed_users),
      duration: { p50: timed ? (r.duration[0] ?? null) : null, p90: timed ? (r.duration[1] ?? null) : null },
    };
  });
}

/** {@link fleetFigures} of one server × environment. */
export async function sessionFigures(
  warehouse: Warehouse,
  scope: SessionScope & { now: number; idleMs: number; settled?: number },
): Promise<CountedFigures[]> {
  const rows = await fleetFigures(warehouse, { ...scope, ...fleetOf(scope) });
  return rows.map(({ server: _server, environment: _environment, ...figures }) => figures);
}

/** Sessions in each of several windows, and users in the first, per version and pooled (`version` null). */
export interface WindowCounts {
  version: string | null;
  /** Sessions seen in each window given, in their order. */
  sessions: number[];
  /** Distinct non-empty client keys of the sessions seen in the first window. */
  users: number;
}

/**
 * For each window [from, to], the sessions seen in it, and the users of the first, per version and
 * pooled over every version: what adoption (the first window) and the stage are computed from. The
 * settled sessions (rollups.ts) count in a window when they were last seen in it.
 */
export async function windowCounts(
  warehouse: Warehouse,
  scope: SessionScope & { windows: { from: number; to: number }[]; settled?: number },
): Promise<WindowCounts[]> {
  const { rollups, merged, params } = plan(fleetOf(scope), scope.settled ?? (await settledUntil(warehouse)));
  const windows = `range(1, length({ends:Array(Int64)}) + 1)`;
  // Per version, an array of sessions per window (summed element-wise: no row per window) and the
  // users of the first window as an aggregate state.
  const minute = `toUnixTimestamp64Milli(toDateTime64(time, 3))`;
  const inWindow = (j: string) =>
    `${minute} >= intDiv({starts:Array(Int64)}[${j}], 60000) * 60000 AND ${minute} <= {ends:Array(Int64)}[${j}]`;
  const fromRollups = `SELECT version,
      sumForEach(arrayMap(j -> if(${inWindow('j')}, sessions, 0), ${windows})) AS hits,
      uniqCombined64MergeStateIf(12)(users, ${inWindow('1')}) AS u
    FROM (${rollupRowsSql('version, time, sessions, users')})
    GROUP BY version`;
  const fromRaw = `SELECT version, sumForEach(seen) AS hits, uniqCombined64StateIf(12)(client, client != '' AND seen[1] = 1) AS u
    FROM (
      SELECT version, client,
        arrayMap(j -> toUInt64(toUnixTimestamp64Milli(last_at) >= {starts:Array(Int64)}[j]
          AND toUnixTimestamp64Milli(first_at) <= {ends:Array(Int64)}[j]), ${windows}) AS seen
      FROM (${merged})
    )
    GROUP BY version`;
  const result = await warehouse.client.query({
    query: `SELECT version AS bucket, grouping(version) AS pooled, sumForEach(hits) AS sessions,
        uniqCombined64Merge(12)(u) AS users
      FROM (${rollups ? `${fromRollups} UNION ALL ` : ''}${fromRaw})
      GROUP BY GROUPING SETS ((version), ())`,
    query_params: {
      ...params,
      starts: scope.windows.map((w) => w.from),
      ends: scope.windows.map((w) => w.to),
    },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    bucket: string;
    pooled: number;
    sessions: (string | number)[];
    users: string | number;
  }>();
  return rows.map((r) => ({
    version: Number(r.pooled) === 1 ? null : r.bucket,
    sessions: scope.windows.map((_, i) => Number(r.sessions[i] ?? 0)),
    users: Number(r.users),
  }));
}

/**
 * Days session data is kept: the TTL of the raw `session_states` (what the sessions list reads), or
 * of `session_rollups` (what the figures read for settled sessions), whichever is longer.
 */
export async function sessionRetentionDays(
  warehouse: Warehouse,
  reads: 'raw' | 'figures' = 'figures',
): Promise<number> {
  const result = await warehouse.client.query({
    query: `SELECT name, engine_full FROM system.tables
      WHERE database = currentDatabase() AND name IN ('session_states', 'session_rollups')`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ name: string; engine_full: string }>();
  const days = (name: string, fallback: number) =>
    ttlDays(rows.find((r) => r.name === name)?.engine_full ?? '') ?? fallback;
  const raw = days('session_states', DEFAULT_RETENTION.rawDays);
  return reads === 'raw' ? raw : Math.max(raw, days('session_rollups', DEFAULT_RETENTION.minuteDays));
}

/** A 400 unless the window is longer than 0 and within the retention of the session data it reads. */
async function checkWindow(warehouse: Warehouse, windowMs: number, reads: 'raw' | 'figures'): Promise<void> {
  const days = await sessionRetentionDays(warehouse, reads);
  if (!(windowMs > 0) || windowMs > days * DAY_MS) {
    throw new BadRequestError(
      `the window must be longer than 0 and at most ${days}d, the retention of ${reads === 'raw' ? 'raw session data' : 'session data'}`,
      'invalid-window',
    );
  }
}

/**
 * The release health of every version of `server` in `environment` over the `windowMs` before
 * `now`. Unknown server or environment → 404; a window longer than the sessions' retention → 400.
 */
export async function releaseHealth(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  input: { server: string; environment: string; windowMs: number; now?: number; idleMs?: number },
): Promise<ReleaseHealth> {
  await findServer(db, principal, input.server);
  await findEnvironment(db, principal, input.environment);
  await checkWindow(warehouse, input.windowMs, 'figures');
  const to = input.now ?? Date.now();
  const from = to - input.windowMs;
  const idleMs = input.idleMs ?? SESSION_IDLE_LIMIT_MS;
  // Adoption looks 24 hours back, and the stage at earlier 6-hour windows, whatever the window.
  const since = Math.min(from, to - ADOPTION_WINDOW_MS);
  const scope = { orgId: principal.orgId, server: input.server, environment: input.environment };
  // Adoption's 24 hours, read on its own so its edges are exact to the minute on the rollups; the
  // 6-hour windows of the stage, the latest first (whole hours on the rollups, a share is enough).
  const adoptionWindow = { from: to - ADOPTION_WINDOW_MS, to };
  const stageWindows = stageWindowEnds(to, since).map((end) => ({
    from: end - ADOPTION_STAGE_WINDOW_MS,
    to: end,
  }));
  const settled = await settledUntil(warehouse);
  // Over a 24-hour window (the default) adoption's sessions and users are the window's own.
  const sameWindow = from === adoptionWindow.from;
  const [figures, counted, staged] = await Promise.all([
    sessionFigures(warehouse, { ...scope, from, to, now: to, idleMs, settled }),
    sameWindow
      ? undefined
      : windowCounts(warehouse, { ...scope, ...adoptionWindow, windows: [adoptionWindow], settled }),
    windowCounts(warehouse, { ...scope, from: since, to, windows: stageWindows, settled }),
  ]);
  const adopted =
    counted ?? figures.map((f) => ({ version: f.version, sessions: [f.sessions.total], users: f.users }));
  const pooledAdopted = adopted.find((c) => c.version === null);
  const pooledStaged = staged.find((c) => c.version === null);
  const share = (part: number | undefined, whole: number | undefined) => (whole ? (part ?? 0) / whole : null);
  const versions = figures
    .filter((f): f is CountedFigures & { version: string } => f.version !== null)
    .map((f): VersionHealth => {
      const mine = adopted.find((c) => c.version === f.version);
      const mineStaged = staged.find((c) => c.version === f.version);
      const { 'moved-by-rollout': movedByRollout, ...byStatus } = f.sessions;
      return {
        version: f.version,
        sessions: { ...byStatus, movedByRollout },
        users: f.users,
        ...rates(f),
        duration: f.duration,
        adoption: {
          sessions: share(mine?.sessions[0], pooledAdopted?.sessions[0]),
          users: share(mine?.users, pooledAdopted?.users),
        },
        stage: stageOf(stageWindows.map((_, i) => share(mineStaged?.sessions[i], pooledStaged?.sessions[i]))),
      };
    });
  const pooled = figures.find((f) => f.version === null);
  const empty = {
    total: 0,
    healthy: 0,
    errored: 0,
    crashed: 0,
    abnormal: 0,
    'moved-by-rollout': 0,
    active: 0,
  };
  return {
    server: input.server,
    environment: input.environment,
    window: { from, to },
    versions: newestFirst(versions),
    average: rates(pooled ?? { sessions: empty, decidedUsers: 0, crashedUsers: 0 }),
  };
}

function newestFirst(versions: VersionHealth[]): VersionHealth[] {
  const semverLike = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
  const valid = versions.filter((v) => semverLike.test(v.version));
  const other = versions
    .filter((v) => !semverLike.test(v.version))
    .sort((a, b) => a.version.localeCompare(b.version));
  return [...sortDescending(valid, (v) => v.version), ...other];
}

/** One session of a version, as the sessions list shows it. */
export interface SessionView {
  /** The keyed hash of the gateway session (or the OTLP `mcp.session.id`). */
  id: string;
  status: SessionStatus;
  /** Why it ended (delete, client-closed, upstream-failure, rollback); null while not ended. */
  endReason: string | null;
  firstSeen: number;
  lastSeen: number;
  /** Milliseconds from first to last seen; null while not ended. */
  durationMs: number | null;
  requests: number;
  errors: number;
  crashes: number;
  /** The keyed hash of the client; null when nothing identified it. */
  user: string | null;
}

export interface VersionSessions {
  server: string;
  environment: string;
  version: string;
  window: { from: number; to: number };
  stepSeconds: number;
  /** Sessions first seen in each step, by their status now; every step of the window, oldest first. */
  series: ({ time: number } & StatusCounts)[];
  /** The sessions seen last, latest first. */
  sessions: SessionView[];
}

/** Steps of a sessions series: about 60 per window, whole minutes. */
export const sessionStepSeconds = (windowMs: number) => Math.max(60, Math.ceil(windowMs / 60 / 60_000) * 60);

/**
 * The sessions of one version in an environment: a series of sessions by status and the `limit`
 * sessions seen last, with why they ended. Unknown server, version or environment → 404.
 */
export async function versionSessions(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  input: {
    server: string;
    version: string;
    environment: string;
    windowMs: number;
    limit: number;
    now?: number;
    idleMs?: number;
  },
): Promise<VersionSessions> {
  const server = await findServer(db, principal, input.server);
  await findVersion(db, server, input.version);
  await findEnvironment(db, principal, input.environment);
  await checkWindow(warehouse, input.windowMs, 'raw');
  const to = input.now ?? Date.now();
  const from = to - input.windowMs;
  const step = sessionStepSeconds(input.windowMs);
  const params = {
    ...scopeParams({
      orgId: principal.orgId,
      servers: [input.server],
      environments: [input.environment],
      from,
      to,
    }),
    version: input.version,
    now: to,
    idle: input.idleMs ?? SESSION_IDLE_LIMIT_MS,
  };
  const perSession = `SELECT *, ${STATUS_SQL} AS status FROM (${MERGED_SESSIONS}) WHERE version = {version:String}`;
  const [seriesResult, latestResult] = await Promise.all([
    warehouse.client.query({
      query: `SELECT toUnixTimestamp(toStartOfInterval(greatest(first_at, fromUnixTimestamp64Milli({from:Int64}, 'UTC')),
            INTERVAL {step:UInt32} SECOND)) * 1000 AS bucket, status, count() AS sessions
        FROM (${perSession}) GROUP BY bucket, status`,
      query_params: { ...params, step },
      format: 'JSONEachRow',
    }),
    warehouse.client.query({
      query: `${perSession} ORDER BY last_at DESC, session_id LIMIT {limit:UInt32}`,
      query_params: { ...params, limit: input.limit },
      format: 'JSONEachRow',
    }),
  ]);
  const empty = (): StatusCounts => ({
    total: 0,
    healthy: 0,
    errored: 0,
    crashed: 0,
    abnormal: 0,
    'moved-by-rollout': 0,
    active: 0,
  });
  const stepMs = step * 1000;
  const first = Math.floor(from / stepMs) * stepMs;
  const series: ({ time: number } & StatusCounts)[] = [];
  for (let time = first; time <= to; time += stepMs) series.push({ time, ...empty() });
  for (const r of await seriesResult.json<{
    bucket: string | number;
    status: SessionStatus;
    sessions: string | number;
  }>()) {
    const point = series[Math.round((Number(r.bucket) - first) / stepMs)];
    if (!point) continue;
    point[r.status] += Number(r.sessions);
    point.total += Number(r.sessions);
  }
  const sessions = (await latestResult.json<StateRow & { status: SessionStatus }>()).map((r): SessionView => {
    const firstSeen = instant(r.first_at);
    const lastSeen = instant(r.last_at);
    const ended = Number(r.was_ended) === 1;
    return {
      id: r.session_id,
      status: r.status,
      endReason: ended ? r.why : null,
      firstSeen,
      lastSeen,
      durationMs: ended ? Math.max(0, lastSeen - firstSeen) : null,
      requests: Number(r.request_count),
      errors: Number(r.error_count),
      crashes: Number(r.crash_count),
      user: r.client || null,
    };
  });
  return {
    server: input.server,
    environment: input.environment,
    version: input.version,
    window: { from, to },
    stepSeconds: step,
    series,
    sessions,
  };
}
