import { assertServerAccess, type Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { sortDescending } from '../registry/semver-policy.ts';
import { compareSessions } from '../release-health/compare.ts';
import type { Warehouse } from '../warehouse/client.ts';
import {
  compareVersions,
  errorTypes,
  operationStats,
  series,
  versionStats,
  versionsWithTraffic,
  type TimeWindow,
} from '../warehouse/telemetry-queries.ts';
import { statsDeltas } from './compare.ts';

/**
 * What the registry knows of a server's versions. Telemetry is kept for servers and versions the
 * registry does not know (shown as unregistered), so a missing server is not an error here.
 */
async function registryStatus(db: Queryable, principal: Principal, server: string) {
  const rows = await db.query<{ version: string; status: string }>(
    `SELECT v.version, v.status FROM versions v JOIN servers s ON s.id = v.server_id
      WHERE s.org_id = $1 AND s.slug = $2`,
    [principal.orgId, server],
  );
  const [known] = await db.query('SELECT 1 FROM servers WHERE org_id = $1 AND slug = $2', [
    principal.orgId,
    server,
  ]);
  return { serverRegistered: known !== undefined, versions: new Map(rows.map((r) => [r.version, r.status])) };
}

export interface HealthScope extends TimeWindow {
  server: string;
  environment?: string | undefined;
}

/** A window from `from`/`to` (RFC 3339) or `window` (a duration ending now); 1 hour by default. */
export function parseWindow(
  input: { from?: string; to?: string; windowMs?: number },
  now = Date.now(),
): TimeWindow {
  const to = input.to ? Date.parse(input.to) : now;
  const from = input.from ? Date.parse(input.from) : to - (input.windowMs ?? 3_600_000);
  if (Number.isNaN(from) || Number.isNaN(to)) {
    throw new BadRequestError(
      'from and to must be RFC 3339 times (e.g. 2026-11-24T10:00:00Z)',
      'invalid-window',
    );
  }
  if (from >= to) throw new BadRequestError('from must be before to', 'invalid-window');
  return { from, to };
}

/** Throughput, error rate, latency percentiles and resources per step. */
export async function metricSeries(
  warehouse: Warehouse,
  principal: Principal,
  scope: HealthScope & {
    version?: string | undefined;
    operation?: string | undefined;
    stepSeconds?: number | undefined;
  },
) {
  assertServerAccess(principal, scope.server);
  const seconds = (Number(scope.to) - Number(scope.from)) / 1000;
  return series(warehouse, {
    ...scope,
    orgId: principal.orgId,
    stepSeconds: scope.stepSeconds ?? Math.max(1, seconds / 60),
  });
}

/** One version's health in a window: overall, per operation, and its most frequent error types. */
export async function versionSummary(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  scope: HealthScope & { version: string },
) {
  assertServerAccess(principal, scope.server);
  const query = { ...scope, orgId: principal.orgId };
  const [stats, operations, errors, registry] = await Promise.all([
    versionStats(warehouse, query),
    operationStats(warehouse, query),
    errorTypes(warehouse, { ...query, versions: [scope.version] }),
    registryStatus(db, principal, scope.server),
  ]);
  return {
    server: scope.server,
    environment: scope.environment ?? null,
    window: windowView(scope),
    registered: registry.versions.has(scope.version),
    status: registry.versions.get(scope.version) ?? null,
    ...stats,
    operations,
    errorTypes: errors.map(({ errorType, errors: count }) => ({ errorType, errors: count })),
  };
}

/**
 * Candidate against baseline over the same window, with absolute and relative deltas overall and
 * per operation, and the error types new in the candidate. Without `baseline`, the newest stable
 * version that served traffic in that environment in the window is the baseline.
 */
export async function compareReport(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  scope: HealthScope & { candidate: string; baseline?: string | undefined },
) {
  assertServerAccess(principal, scope.server);
  const registry = await registryStatus(db, principal, scope.server);
  const baseline = scope.baseline ?? (await defaultBaseline(warehouse, principal, scope, registry.versions));
  const comparison = await compareVersions(warehouse, { ...scope, orgId: principal.orgId, baseline });
  // Sessions belong to an environment: without one there is no release health to set beside.
  const sessions = scope.environment
    ? await compareSessions(
        warehouse,
        { ...scope, environment: scope.environment, orgId: principal.orgId },
        { baseline, candidate: scope.candidate },
      )
    : null;
  return {
    server: scope.server,
    environment: scope.environment ?? null,
    window: windowView(scope),
    registered: {
      server: registry.serverRegistered,
      baseline: registry.versions.has(baseline),
      candidate: registry.versions.has(scope.candidate),
    },
    baseline: comparison.baseline,
    candidate: comparison.candidate,
    deltas: statsDeltas(comparison.baseline, comparison.candidate),
    operations: comparison.operations.map((o) => ({ ...o, deltas: statsDeltas(o.baseline, o.candidate) })),
    newErrorTypes: comparison.newErrorTypes,
    sessions,
  };
}

/** The baseline {@link compareReport} compares against: `baseline` when given, else its default. */
export async function compareBaseline(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  scope: HealthScope & { candidate: string; baseline?: string | undefined },
): Promise<string> {
  assertServerAccess(principal, scope.server);
  if (scope.baseline) return scope.baseline;
  return defaultBaseline(
    warehouse,
    principal,
    scope,
    (await registryStatus(db, principal, scope.server)).versions,
  );
}

async function defaultBaseline(
  warehouse: Warehouse,
  principal: Principal,
  scope: HealthScope & { candidate: string },
  statuses: Map<string, string>,
): Promise<string> {
  if (!scope.environment) {
    throw new BadRequestError(
      'pass baseline=, or environment= so the stable version running there can be chosen',
      'baseline-required',
    );
  }
  const traffic = await versionsWithTraffic(warehouse, {
    ...scope,
    environment: scope.environment,
    orgId: principal.orgId,
  });
  const stable = traffic.filter((t) => statuses.get(t.version) === 'stable' && t.version !== scope.candidate);
  const [newest] = sortDescending(stable, (t) => t.version);
  if (!newest) {
    throw new NotFoundError(
      `no stable version of ${scope.server} served traffic in ${scope.environment} in this window; pass baseline=`,
      'no-baseline',
    );
  }
  return newest.version;
}

const windowView = (w: TimeWindow) => ({
  from: new Date(Number(w.from)).toISOString(),
  to: new Date(Number(w.to)).toISOString(),
});
