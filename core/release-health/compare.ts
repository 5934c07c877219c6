/**
 * The `sessions` block of a comparison: the two versions' release health over the comparison's
 * window, beside their latency and error figures, so a candidate whose sessions crash shows it
 * even when its calls look fine.
 */
import type { Warehouse } from '../warehouse/client.ts';
import type { TimeWindow } from '../warehouse/telemetry-queries.ts';
import { rates, SESSION_IDLE_LIMIT_MS, type HealthFigures, type StatusCounts } from './model.ts';
import { sessionFigures } from './queries.ts';

export type SessionSummary = Pick<
  HealthFigures,
  'users' | 'crashFreeSessions' | 'crashFreeUsers' | 'erroredRate'
> & {
  sessions: StatusCounts;
};

const none = (): SessionSummary => ({
  sessions: { total: 0, healthy: 0, errored: 0, crashed: 0, abnormal: 0, 'moved-by-rollout': 0, active: 0 },
  users: 0,
  crashFreeSessions: null,
  crashFreeUsers: null,
  erroredRate: null,
});

export async function compareSessions(
  warehouse: Warehouse,
  scope: TimeWindow & { orgId: string; server: string; environment: string },
  versions: { baseline: string; candidate: string },
): Promise<{ baseline: SessionSummary; candidate: SessionSummary }> {
  const figures = await sessionFigures(warehouse, {
    orgId: scope.orgId,
    server: scope.server,
    environment: scope.environment,
    from: Number(scope.from),
    to: Number(scope.to),
    now: Date.now(),
    idleMs: SESSION_IDLE_LIMIT_MS,
  });
  const of = (version: string): SessionSummary => {
    const f = figures.find((row) => row.version === version);
    return f ? { sessions: f.sessions, users: f.users, ...rates(f) } : none();
  };
  return { baseline: of(versions.baseline), candidate: of(versions.candidate) };
}
