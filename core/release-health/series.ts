import type { Warehouse } from '../warehouse/client.ts';
import { rates, SESSION_IDLE_LIMIT_MS } from './model.ts';
import { sessionFigures } from './queries.ts';

/** Session figures of one environment × version over a window, as alert rules and canary analysis read them. */
export interface SessionSeries {
  environment: string;
  version: string;
  /** Sessions seen in the window (every status). */
  sessions: number;
  /** Sessions whose fate is known: sessions − moved-by-rollout − active (the crash-free denominator). */
  finished: number;
  crashed: number;
  /** Users with a finished session, and of those the users with a crashed one. */
  decidedUsers: number;
  crashedUsers: number;
  /** 1 − crashed / finished; null without a finished session. */
  crashFreeSessions: number | null;
  /** 1 − crashed users / decided users; null without a decided user. */
  crashFreeUsers: number | null;
  /** The version's share of the environment's sessions seen in the window; null when it had none. */
  adoption: number | null;
}

/**
 * Per environment × version, the release-health figures of the sessions seen in [from, to], with the
 * status rules and SQL of {@link sessionFigures} (one query per environment that had sessions, plus
 * one listing them when `environment` is not given). Adoption here is over the same window, not the
 * release-health page's 24 hours.
 */
export async function sessionSeries(
  warehouse: Warehouse,
  scope: {
    orgId: string;
    server: string;
    environment?: string | null;
    versions?: readonly string[];
    from: number;
    to: number;
    now?: number;
    idleMs?: number;
  },
): Promise<SessionSeries[]> {
  let environments: string[];
  if (scope.environment) environments = [scope.environment];
  else {
    const result = await warehouse.client.query({
      query: `SELECT DISTINCT environment FROM session_states
        WHERE org_id = {org:String} AND server = {server:String}
          AND last_seen >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
          AND first_seen <= fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
      query_params: { org: scope.orgId, server: scope.server, from: scope.from, to: scope.to },
      format: 'JSONEachRow',
    });
    environments = (await result.json<{ environment: string }>()).map((r) => r.environment).sort();
  }
  const perEnvironment = await Promise.all(
    environments.map(async (environment) => {
      const figures = await sessionFigures(warehouse, {
        orgId: scope.orgId,
        server: scope.server,
        environment,
        from: scope.from,
        to: scope.to,
        now: scope.now ?? scope.to,
        idleMs: scope.idleMs ?? SESSION_IDLE_LIMIT_MS,
      });
      const pooled = figures.find((f) => f.version === null)?.sessions.total ?? 0;
      return figures
        .filter((f): f is typeof f & { version: string } => f.version !== null)
        .filter((f) => !scope.versions || scope.versions.includes(f.version))
        .map((f): SessionSeries => {
          const s = f.sessions;
          const r = rates(f);
          return {
            environment,
            version: f.version,
            sessions: s.total,
            finished: s.total - s['moved-by-rollout'] - s.active,
            crashed: s.crashed,
            decidedUsers: f.decidedUsers,
            crashedUsers: f.crashedUsers,
            crashFreeSessions: r.crashFreeSessions,
            crashFreeUsers: r.crashFreeUsers,
            adoption: pooled > 0 ? s.total / pooled : null,
          };
        });
    }),
  );
  return perEnvironment.flat();
}
