import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { findEnvironment } from '../deploy/environments.ts';
import { BadRequestError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import { sortDescending } from '../registry/semver-policy.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { DEFAULT_RETENTION, ttlDays } from '../warehouse/telemetry-queries.ts';
import {
  ADOPTION_WINDOW_MS,
  adoption,
  adoptionStage,
  healthFigures,
  SESSION_IDLE_LIMIT_MS,
  type AdoptionStage,
  type HealthFigures,
  type SessionState,
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

/**
 * The merged state of every session of one server × environment seen in [from, to]. The
 * aggregation (GROUP BY session over `session_states`) runs in ClickHouse; statuses are computed in
 * TypeScript from these rows (model.ts), one row per session and version.
 */
export async function sessionStates(
  warehouse: Warehouse,
  scope: { orgId: string; server: string; environment: string; from: number; to: number },
): Promise<SessionState[]> {
  const result = await warehouse.client.query({
    query: `SELECT version, session_id,
        min(first_seen) AS first_at, max(last_seen) AS last_at,
        sum(requests) AS request_count, sum(errors) AS error_count, sum(crashes) AS crash_count,
        max(ended) AS was_ended, argMaxMerge(end_reason) AS why, max(moved) AS was_moved,
        max(client_key) AS client
      FROM session_states
      WHERE org_id = {org:String} AND server = {server:String} AND environment = {environment:String}
        AND last_seen >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
      GROUP BY version, session_id
      HAVING last_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
        AND first_at <= fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
    query_params: {
      org: scope.orgId,
      server: scope.server,
      environment: scope.environment,
      from: scope.from,
      to: scope.to,
    },
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

/** Days the raw session states are kept (the TTL of `session_states`). */
export async function sessionRetentionDays(warehouse: Warehouse): Promise<number> {
  const result = await warehouse.client.query({
    query: `SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'session_states'`,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ engine_full: string }>();
  return (row && ttlDays(row.engine_full)) ?? DEFAULT_RETENTION.rawDays;
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
  const days = await sessionRetentionDays(warehouse);
  if (!(input.windowMs > 0) || input.windowMs > days * DAY_MS) {
    throw new BadRequestError(
      `the window must be longer than 0 and at most ${days}d, the retention of session data`,
      'invalid-window',
    );
  }
  const to = input.now ?? Date.now();
  const from = to - input.windowMs;
  const idleMs = input.idleMs ?? SESSION_IDLE_LIMIT_MS;
  // Adoption looks 24 hours back, and the stage at earlier 6-hour windows, whatever the window.
  const since = Math.min(from, to - ADOPTION_WINDOW_MS);
  const all = await sessionStates(warehouse, {
    orgId: principal.orgId,
    server: input.server,
    environment: input.environment,
    from: since,
    to,
  });
  const inWindow = all.filter((s) => s.lastSeen >= from && s.firstSeen <= to);
  const byVersion = new Map<string, SessionState[]>();
  for (const s of inWindow) {
    const list = byVersion.get(s.version) ?? [];
    list.push(s);
    byVersion.set(s.version, list);
  }
  const versions = [...byVersion.entries()].map(([version, sessions]): VersionHealth => {
    const f = healthFigures(sessions, to, idleMs);
    const { 'moved-by-rollout': movedByRollout, ...counts } = f.sessions;
    return {
      version,
      sessions: { ...counts, movedByRollout },
      users: f.users,
      crashFreeSessions: f.crashFreeSessions,
      crashFreeUsers: f.crashFreeUsers,
      erroredRate: f.erroredRate,
      duration: f.duration,
      adoption: adoption(all, version, to - ADOPTION_WINDOW_MS, to),
      stage: adoptionStage(all, version, to, since),
    };
  });
  const average = healthFigures(inWindow, to, idleMs);
  return {
    server: input.server,
    environment: input.environment,
    window: { from, to },
    versions: newestFirst(versions),
    average: {
      crashFreeSessions: average.crashFreeSessions,
      crashFreeUsers: average.crashFreeUsers,
      erroredRate: average.erroredRate,
    },
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
