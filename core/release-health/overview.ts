/**
 * Release health for the on-call overview: crash-free sessions and users per server × environment ×
 * version, and pooled per server × environment (the average the Releases view compares with), for
 * the whole fleet in one ClickHouse query, so the overview keeps its fixed number of queries.
 *
 * The merge of session rows is that of sql.ts (`mergedSessionsSql`) over many servers at once, from
 * the raw states (an overview window is short), and the status rules are sql.ts's `STATUS_SQL`;
 * test/api/overview.int.test.ts checks that a row gives what `releaseHealth` gives for that server
 * and environment.
 */
import type { Warehouse } from '../warehouse/client.ts';
import { rates, type HealthFigures, type StatusCounts } from './model.ts';
import { STATUS_SQL } from './sql.ts';

/** One version's sessions, or every version's pooled (`version` null), in one server × environment. */
export interface FleetSessionFigures extends Pick<HealthFigures, 'crashFreeSessions' | 'crashFreeUsers'> {
  server: string;
  environment: string;
  version: string | null;
  sessions: StatusCounts;
  users: number;
}

interface Row {
  server: string;
  environment: string;
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
}

// Parts are read from one day before {from}: a gateway session lives at most that long, so every
// row of a session seen in the window is merged (as in sql.ts).
const MERGED = `SELECT server, environment, version, session_id,
    min(first_seen) AS first_at, max(last_seen) AS last_at,
    sum(errors) AS error_count, sum(crashes) AS crash_count,
    max(ended) AS was_ended, argMaxMerge(end_reason) AS why, max(moved) AS was_moved,
    max(client_key) AS client
  FROM session_states
  WHERE org_id = {org:String} AND server IN {servers:Array(String)}
    AND environment IN {environments:Array(String)}
    AND last_seen >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') - INTERVAL 1 DAY
  GROUP BY server, environment, version, session_id
  HAVING last_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
    AND first_at <= fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;

/**
 * Sessions by status, users and crash-free rates of every version seen in [from, to] in each
 * server × environment given, and of all of them pooled per server × environment.
 */
export async function fleetSessions(
  warehouse: Warehouse,
  scope: {
    orgId: string;
    servers: string[];
    environments: string[];
    from: number;
    to: number;
    now: number;
    idleMs: number;
  },
): Promise<FleetSessionFigures[]> {
  if (scope.servers.length === 0 || scope.environments.length === 0) return [];
  const result = await warehouse.client.query({
    query: `SELECT server, environment, target.1 AS bucket, target.2 AS pooled,
        count() AS total,
        countIf(status = 'healthy') AS healthy,
        countIf(status = 'errored') AS errored,
        countIf(status = 'crashed') AS crashed,
        countIf(status = 'abnormal') AS abnormal,
        countIf(status = 'moved-by-rollout') AS moved,
        countIf(status = 'active') AS active,
        uniqExactIf(client, client != '') AS users,
        uniqExactIf(client, client != '' AND status NOT IN ('moved-by-rollout', 'active')) AS decided_users,
        uniqExactIf(client, client != '' AND status = 'crashed') AS crashed_users
      FROM (
        SELECT server, environment, client, ${STATUS_SQL} AS status,
          arrayJoin([(toString(version), toUInt8(0)), ('', toUInt8(1))]) AS target
        FROM (${MERGED})
      )
      GROUP BY server, environment, bucket, pooled`,
    query_params: {
      org: scope.orgId,
      servers: scope.servers,
      environments: scope.environments,
      from: scope.from,
      to: scope.to,
      now: scope.now,
      idle: scope.idleMs,
    },
    format: 'JSONEachRow',
  });
  return (await result.json<Row>()).map((r) => {
    const sessions: StatusCounts = {
      total: Number(r.total),
      healthy: Number(r.healthy),
      errored: Number(r.errored),
      crashed: Number(r.crashed),
      abnormal: Number(r.abnormal),
      'moved-by-rollout': Number(r.moved),
      active: Number(r.active),
    };
    const { crashFreeSessions, crashFreeUsers } = rates({
      sessions,
      decidedUsers: Number(r.decided_users),
      crashedUsers: Number(r.crashed_users),
    });
    return {
      server: r.server,
      environment: r.environment,
      version: Number(r.pooled) === 1 ? null : r.bucket,
      sessions,
      users: Number(r.users),
      crashFreeSessions,
      crashFreeUsers,
    };
  });
}
