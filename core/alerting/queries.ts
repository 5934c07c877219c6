import type { Warehouse } from '../warehouse/client.ts';
import { resolution } from '../warehouse/telemetry-queries.ts';

/**
 * What rule evaluations read from ClickHouse: request health (or process resources) of every
 * environment × version (× operation) of a set of servers in the window, in ONE grouped query
 * for all the rules of a batch that share org, window and shape (reader.ts plans them). The
 * aggregates are those of `telemetry-queries.ts` (versionStats, operationStats): t-digest
 * percentiles on raw rows for
 * windows up to six hours (its `resolution()` decides), per-minute rollups beyond; error rate 0
 * and percentiles null without requests; throughput = requests / window seconds. Only counted
 * request rows (`counted = 1`, as the rollups hold) are read: a request is never counted twice.
 */
export interface SeriesStats {
  environment: string;
  version: string;
  /** null unless the query was per operation. */
  operation: string | null;
  requests: number;
  errors: number;
  errorRate: number;
  throughput: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface ResourceStats {
  environment: string;
  version: string;
  /** Average `process.cpu.utilization` (0..1); null when not reported. */
  cpu: number | null;
  /** Average `process.memory.usage`, bytes; null when not reported. */
  memory: number | null;
}

export interface SeriesScope {
  orgId: string;
  server: string;
  environment?: string | null;
  /** Exactly this operation; with `perOperation`, one row per operation. */
  operation?: string | null;
  perOperation?: boolean;
  from: number;
  to: number;
}

const FROM = "fromUnixTimestamp64Milli({from:Int64}, 'UTC')";
const TO = "fromUnixTimestamp64Milli({to:Int64}, 'UTC')";

/**
 * Many rules' scopes in one read, as Prometheus evaluates a rule group: every server of `servers`
 * in the org over one window, grouped by server and environment × version (× operation). Each
 * rule then takes its own rows (`pickRows`): the groups hold exactly the rows a query filtered to
 * one server, environment or operation would aggregate.
 */
export interface BatchScope {
  orgId: string;
  servers: readonly string[];
  /** One row per operation. */
  byOperation?: boolean;
  from: number;
  to: number;
}

export type Batched<T> = T & { server: string };

function where(scope: BatchScope, rollup: boolean) {
  const conditions = ['org_id = {org:String}', 'server IN {servers:Array(String)}'];
  const params: Record<string, unknown> = {
    org: scope.orgId,
    servers: [...scope.servers],
    from: scope.from,
    to: scope.to,
  };
  conditions.push(
    rollup ? `time >= toStartOfMinute(${FROM}) AND time < ${TO}` : `time >= ${FROM} AND time < ${TO}`,
  );
  return { where: conditions.join(' AND '), params };
}

const usesRollup = (scope: { from: number; to: number }) =>
  resolution({ from: scope.from, to: scope.to }) !== 'raw';

export async function requestSeriesBatch(
  warehouse: Warehouse,
  scope: BatchScope,
): Promise<Batched<SeriesStats>[]> {
  const rollup = usesRollup(scope);
  const { where: condition, params } = where(scope, rollup);
  const byOperation = scope.byOperation === true;
  const dims = `server, environment, version${byOperation ? ', operation' : ''}`;
  const query = rollup
    ? `SELECT ${dims}, countMerge(requests) AS requests, sumMerge(errors) AS errors,
         quantilesTDigestMerge(0.5, 0.95, 0.99)(duration_ms) AS q
       FROM requests_1m WHERE ${condition} GROUP BY ${dims}`
    : `SELECT ${dims}, count() AS requests, sum(error) AS errors,
         quantilesTDigest(0.5, 0.95, 0.99)(duration_ms) AS q
       FROM requests WHERE ${condition} AND counted = 1 GROUP BY ${dims}`;
  const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
  const rows = await result.json<{
    server: string;
    environment: string;
    version: string;
    operation?: string;
    requests: number | string;
    errors: number | string;
    q: (number | null)[];
  }>();
  const seconds = (scope.to - scope.from) / 1000;
  return rows.map((row) => {
    const requests = Number(row.requests);
    const errors = Number(row.errors);
    const q = requests > 0 ? row.q : [];
    return {
      server: row.server,
      environment: row.environment,
      version: row.version,
      operation: byOperation ? (row.operation ?? '') : null,
      requests,
      errors,
      errorRate: requests > 0 ? errors / requests : 0,
      throughput: seconds > 0 ? requests / seconds : 0,
      p50: q[0] ?? null,
      p95: q[1] ?? null,
      p99: q[2] ?? null,
    };
  });
}

export async function resourceSeriesBatch(
  warehouse: Warehouse,
  scope: BatchScope,
): Promise<Batched<ResourceStats>[]> {
  const rollup = usesRollup(scope);
  const { where: condition, params } = where(scope, rollup);
  const query = rollup
    ? `SELECT server, environment, version, avgMerge(cpu_utilization) AS cpu, avgMerge(memory_avg) AS memory
       FROM resources_1m WHERE ${condition} GROUP BY server, environment, version`
    : `SELECT server, environment, version, avgIf(value, metric = 'process.cpu.utilization') AS cpu,
         avgIf(value, metric = 'process.memory.usage') AS memory
       FROM metric_points WHERE ${condition}
         AND metric IN ('process.cpu.utilization', 'process.memory.usage')
       GROUP BY server, environment, version`;
  const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
  const rows = await result.json<{
    server: string;
    environment: string;
    version: string;
    cpu: unknown;
    memory: unknown;
  }>();
  // avg of nothing is nan; JSON output renders it as a string or null depending on settings.
  const num = (v: unknown) => {
    const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    return Number.isFinite(n) ? n : null;
  };
  return rows.map((r) => ({
    server: r.server,
    environment: r.environment,
    version: r.version,
    cpu: num(r.cpu),
    memory: num(r.memory),
  }));
}

/** One rule's rows out of a batch: its server, environment and operation, shaped as its own query's. */
export function pickRows<T extends { environment: string; operation?: string | null }>(
  rows: readonly Batched<T>[],
  scope: SeriesScope,
): T[] {
  const out: T[] = [];
  for (const { server, ...row } of rows) {
    if (server !== scope.server) continue;
    if (scope.environment && row.environment !== scope.environment) continue;
    if (scope.operation && row.operation !== undefined && row.operation !== scope.operation) continue;
    out.push(row as unknown as T);
  }
  return out;
}

/** The batch shape a request scope reads: per operation for `*` and for one operation. */
export const requestsByOperation = (scope: SeriesScope) =>
  scope.perOperation === true || Boolean(scope.operation);

export async function requestSeries(warehouse: Warehouse, scope: SeriesScope): Promise<SeriesStats[]> {
  const byOperation = requestsByOperation(scope);
  const rows = await requestSeriesBatch(warehouse, { ...scope, servers: [scope.server], byOperation });
  return pickRows(rows, scope);
}

export async function resourceSeries(warehouse: Warehouse, scope: SeriesScope): Promise<ResourceStats[]> {
  const rows = await resourceSeriesBatch(warehouse, { ...scope, servers: [scope.server] });
  return pickRows(rows, { ...scope, operation: null });
}
