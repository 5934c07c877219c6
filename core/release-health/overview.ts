/**
 * Release health for the on-call overview: crash-free sessions and users per server × environment ×
 * version, and pooled per server × environment (the average the Releases view compares with), for
 * the whole fleet in one ClickHouse query, so the overview keeps its fixed number of queries.
 * test/api/overview.int.test.ts checks that a row gives what `releaseHealth` gives for that server
 * and environment.
 */
import type { Warehouse } from '../warehouse/client.ts';
import { rates, type HealthFigures, type StatusCounts } from './model.ts';
import { fleetFigures, type FleetScope } from './queries.ts';

/** One version's sessions, or every version's pooled (`version` null), in one server × environment. */
export interface FleetSessionFigures extends Pick<HealthFigures, 'crashFreeSessions' | 'crashFreeUsers'> {
  server: string;
  environment: string;
  version: string | null;
  sessions: StatusCounts;
  users: number;
}

/**
 * Sessions by status, users and crash-free rates of every version seen in [from, to] in each
 * server × environment given, and of all of them pooled per server × environment: the figures of
 * {@link fleetFigures}, one query for the fleet.
 */
export async function fleetSessions(
  warehouse: Warehouse,
  scope: FleetScope & { now: number; idleMs: number },
): Promise<FleetSessionFigures[]> {
  return (await fleetFigures(warehouse, scope)).map((f) => {
    const { crashFreeSessions, crashFreeUsers } = rates(f);
    return {
      server: f.server,
      environment: f.environment,
      version: f.version,
      sessions: f.sessions,
      users: f.users,
      crashFreeSessions,
      crashFreeUsers,
    };
  });
}
