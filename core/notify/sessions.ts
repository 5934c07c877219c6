/**
 * The crash-free sessions a verdict or an alert notification carries: the version's (and its
 * baseline's) release health in the environment over the window judged, so the person paged sees
 * how many users' sessions went wrong, not only the metric that fired.
 */
import { SESSION_IDLE_LIMIT_MS, rates } from '../release-health/model.ts';
import { sessionFigures } from '../release-health/queries.ts';
import type { Warehouse } from '../warehouse/client.ts';
import type { SessionsNotice, VersionSessionsNotice } from './events.ts';

/**
 * Release health of `version` (and `baseline`) in `environment` over [from, to]; null when neither
 * had a session there (a server without sessions says nothing about them).
 */
export async function sessionsNotice(
  warehouse: Warehouse,
  scope: {
    orgId: string;
    server: string;
    environment: string;
    version: string;
    baseline: string | null;
    from: number;
    to: number;
  },
): Promise<SessionsNotice | null> {
  const figures = await sessionFigures(warehouse, {
    orgId: scope.orgId,
    server: scope.server,
    environment: scope.environment,
    from: scope.from,
    to: scope.to,
    now: scope.to,
    idleMs: SESSION_IDLE_LIMIT_MS,
  });
  const of = (version: string): VersionSessionsNotice => {
    const f = figures.find((row) => row.version === version);
    const { crashFreeSessions, crashFreeUsers } = f
      ? rates(f)
      : { crashFreeSessions: null, crashFreeUsers: null };
    return {
      version,
      sessions: f?.sessions.total ?? 0,
      crashed: f?.sessions.crashed ?? 0,
      crashFreeSessions,
      crashFreeUsers,
    };
  };
  const mine = of(scope.version);
  const baseline = scope.baseline === null ? null : of(scope.baseline);
  if (mine.sessions === 0 && (baseline?.sessions ?? 0) === 0) return null;
  return {
    environment: scope.environment,
    window: { from: new Date(scope.from).toISOString(), to: new Date(scope.to).toISOString() },
    version: mine,
    baseline,
  };
}
