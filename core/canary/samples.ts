/**
 * Per-interval samples for a canary analysis, read from the warehouse: for the baseline and the
 * candidate in one environment and window, one value per interval (1 minute by default) of request
 * count, error rate, p50 / p95 / p99 latency, CPU, memory and health-check failures, and request
 * count, error rate and p95 latency per operation (MCP tool). Windows inside the raw retention read
 * raw rows (exact per-interval t-digests); older ones read the per-minute rollups, so their
 * interval must be whole minutes.
 */
import { BadRequestError } from '../errors.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { resolution, type RetentionDays } from '../warehouse/telemetry-queries.ts';
import { readFrom, windowFilter } from '../warehouse/telemetry-sources.ts';
import { sessionSeries } from '../release-health/series.ts';
import type { EventCounts, MetricConfig, MetricSeries, Traffic } from './judge.ts';
import { operationMetrics, SERVER_METRICS } from './metric-presets.ts';

export interface SampleScope {
  orgId: string;
  server: string;
  environment: string;
  baseline: string;
  candidate: string;
  /** epoch ms; the window is [from, to) */
  from: number;
  to: number;
  intervalSeconds: number;
  retention?: RetentionDays | undefined;
  /** Most operations judged separately (busiest in the candidate first). @defaultValue 20 */
  maxOperations?: number | undefined;
}

/** One side's values per interval, aligned with {@link Samples.buckets}. */
export interface SideValues {
  requests: number[];
  errorRate: (number | null)[];
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
  cpu: (number | null)[];
  memory: (number | null)[];
  healthFailures: (number | null)[];
}

export interface OperationValues {
  operation: string;
  canary: Pick<SideValues, 'requests' | 'errorRate' | 'p95'>;
  baseline: Pick<SideValues, 'requests' | 'errorRate' | 'p95'>;
}

export interface Samples {
  /** Interval starts, epoch seconds. */
  buckets: number[];
  intervalSeconds: number;
  resolution: 'raw' | 'minute';
  canary: SideValues;
  baseline: SideValues;
  operations: OperationValues[];
  /**
   * Crashed of finished sessions (sessions − moved-by-rollout − active, at the end of the window)
   * seen in the window, per side; absent counts as none.
   */
  sessions?: { canary: EventCounts; baseline: EventCounts };
}

const FROM = "fromUnixTimestamp64Milli({from:Int64}, 'UTC')";
const TO = "fromUnixTimestamp64Milli({to:Int64}, 'UTC')";
const BUCKET = 'toUnixTimestamp(toStartOfInterval(time, INTERVAL {step:UInt32} SECOND))';

async function select<T>(warehouse: Warehouse, query: string, params: Record<string, unknown>): Promise<T[]> {
  const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

interface RequestBucket {
  version: string;
  operation: string | null;
  bucket: number;
  requests: number;
  errors: number;
  q: (number | null)[];
}

const emptySide = (n: number): SideValues => ({
  requests: Array<number>(n).fill(0),
  errorRate: Array<number | null>(n).fill(null),
  p50: Array<number | null>(n).fill(null),
  p95: Array<number | null>(n).fill(null),
  p99: Array<number | null>(n).fill(null),
  cpu: Array<number | null>(n).fill(null),
  memory: Array<number | null>(n).fill(null),
  healthFailures: Array<number | null>(n).fill(null),
});

const num = (v: unknown): number | null => {
  const n = typeof v === 'number' ? v : v === null || v === undefined ? NaN : Number(v);
  return Number.isFinite(n) ? n : null;
};

function fill(
  side: Pick<SideValues, 'requests' | 'errorRate' | 'p50' | 'p95' | 'p99'>,
  i: number,
  row: RequestBucket,
) {
  const requests = Number(row.requests);
  side.requests[i] = requests;
  if (requests > 0) {
    side.errorRate[i] = Number(row.errors) / requests;
    side.p50[i] = num(row.q[0]);
    side.p95[i] = num(row.q[1]);
    side.p99[i] = num(row.q[2]);
  }
}

/** Reads the samples of both versions; versions absent from the window give empty (idle) samples. */
export async function readSamples(warehouse: Warehouse, scope: SampleScope): Promise<Samples> {
  const step = scope.intervalSeconds;
  if (!Number.isInteger(step) || step < 1 || step > 3600)
    throw new BadRequestError('interval must be from 1s to 1h, e.g. 1m', 'invalid-interval');
  if (!(scope.to > scope.from))
    throw new BadRequestError('the window must end after it starts', 'invalid-window');
  const res = resolution({ from: scope.from, to: scope.to }, { retention: scope.retention });
  if (res === 'hour')
    throw new BadRequestError(
      'the analysis window is too long or too old for per-interval samples (at most 30 days, inside the per-minute retention)',
      'invalid-window',
    );
  if (res === 'minute' && step % 60 !== 0)
    throw new BadRequestError(
      'this window is older than the raw retention and is read from per-minute rollups: use an interval of whole minutes',
      'invalid-interval',
    );
  const first = Math.floor(scope.from / 1000 / step) * step;
  const buckets: number[] = [];
  for (let b = first; b * 1000 < scope.to; b += step) buckets.push(b);
  if (buckets.length > 10_000)
    throw new BadRequestError(
      `the window has ${buckets.length} intervals; at most 10000 (use a longer interval)`,
      'invalid-window',
    );
  const index = new Map(buckets.map((b, i) => [b, i]));
  const n = buckets.length;
  const params = {
    org: scope.orgId,
    server: scope.server,
    environment: scope.environment,
    versions: [scope.baseline, scope.candidate],
    from: scope.from,
    to: scope.to,
    step,
  };
  const where = `org_id = {org:String} AND server = {server:String} AND environment = {environment:String}
    AND version IN {versions:Array(String)}`;
  // The same rows as the comparison and the charts read (whole minutes from the rollups).
  const scoped = () => windowFilter([where], { ...params }, scope.from, scope.to);
  const requests = scoped();
  const r = readFrom(res, 'requests', requests, step);
  const resources = scoped();
  const m = readFrom(res, 'resources', resources, step);
  const [requestRows, resourceRows, healthRows, sessionRows] = await Promise.all([
    // The whole server and each operation in one scan; the server's rows have a NULL operation.
    select<RequestBucket>(
      warehouse,
      `SELECT version, operation, ${BUCKET} AS bucket, ${r.aggregates.count} AS requests,
         ${r.aggregates.errors} AS errors, ${r.aggregates.quantiles} AS q
       FROM ${r.from}
       GROUP BY GROUPING SETS ((version, bucket), (version, operation, bucket))
       SETTINGS group_by_use_nulls = 1`,
      requests.params,
    ),
    select<{ version: string; bucket: number; cpu: number | null; memory: number | null }>(
      warehouse,
      `SELECT version, ${BUCKET} AS bucket, ${m.aggregates.cpu} AS cpu, ${m.aggregates.memory} AS memory
       FROM ${m.from} GROUP BY version, bucket`,
      resources.params,
    ),
    select<{ version: string; bucket: number; failures: number }>(
      warehouse,
      `SELECT version, ${BUCKET} AS bucket, countIf(ok = 0) AS failures FROM health_results
       WHERE ${where} AND time >= ${FROM} AND time < ${TO} GROUP BY version, bucket`,
      params,
    ),
    sessionSeries(warehouse, {
      orgId: scope.orgId,
      server: scope.server,
      environment: scope.environment,
      versions: [scope.baseline, scope.candidate],
      from: scope.from,
      to: scope.to,
    }),
  ]);
  const sessionsOf = (version: string): EventCounts => {
    const row = sessionRows.find((r) => r.version === version);
    return { events: row?.crashed ?? 0, total: row?.finished ?? 0 };
  };
  const sessions = { canary: sessionsOf(scope.candidate), baseline: sessionsOf(scope.baseline) };
  const server = requestRows.filter((r) => r.operation === null);
  const perOperation = requestRows.filter((r) => r.operation !== null);

  const canary = emptySide(n);
  const baseline = emptySide(n);
  const sideOf = (version: string) =>
    version === scope.candidate ? canary : version === scope.baseline ? baseline : undefined;
  for (const row of server) {
    const i = index.get(Number(row.bucket));
    const side = sideOf(row.version);
    if (i !== undefined && side) fill(side, i, row);
  }
  for (const row of resourceRows) {
    const i = index.get(Number(row.bucket));
    const side = sideOf(row.version);
    if (i === undefined || !side) continue;
    side.cpu[i] = num(row.cpu);
    side.memory[i] = num(row.memory);
  }
  for (const row of healthRows) {
    const i = index.get(Number(row.bucket));
    const side = sideOf(row.version);
    if (i !== undefined && side) side.healthFailures[i] = Number(row.failures);
  }

  const ops = new Map<string, OperationValues>();
  const opSide = () => {
    const s = emptySide(n);
    return { requests: s.requests, errorRate: s.errorRate, p95: s.p95, p50: s.p50, p99: s.p99 };
  };
  for (const row of perOperation) {
    const i = index.get(Number(row.bucket));
    const operation = row.operation ?? '';
    if (
      i === undefined ||
      operation === '' ||
      (row.version !== scope.candidate && row.version !== scope.baseline)
    )
      continue;
    let op = ops.get(operation);
    if (!op) {
      op = { operation, canary: opSide(), baseline: opSide() };
      ops.set(operation, op);
    }
    fill((row.version === scope.candidate ? op.canary : op.baseline) as SideValues, i, row);
  }
  const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const operations = [...ops.values()]
    .sort(
      (a, b) =>
        total(b.canary.requests) - total(a.canary.requests) ||
        total(b.baseline.requests) - total(a.baseline.requests) ||
        (a.operation < b.operation ? -1 : 1),
    )
    .slice(0, scope.maxOperations ?? 20)
    .map((o) => ({
      operation: o.operation,
      canary: { requests: o.canary.requests, errorRate: o.canary.errorRate, p95: o.canary.p95 },
      baseline: { requests: o.baseline.requests, errorRate: o.baseline.errorRate, p95: o.baseline.p95 },
    }));
  return { buckets, intervalSeconds: step, resolution: res, canary, baseline, operations, sessions };
}

const SERVER_VALUES: Record<string, keyof SideValues> = {
  error_rate: 'errorRate',
  latency_p50: 'p50',
  latency_p95: 'p95',
  latency_p99: 'p99',
  cpu: 'cpu',
  memory: 'memory',
  health_check_failures: 'healthFailures',
};
const OPERATION_VALUES: Record<string, 'errorRate' | 'p95'> = { error_rate: 'errorRate', latency_p95: 'p95' };

/** Judged on counts over the window rather than per-interval values. */
const COUNT_METRICS = ['session_crash_rate'];

/** The metric names an analysis can judge for the whole server, and per operation. */
export const KNOWN_METRICS = [...Object.keys(SERVER_VALUES), ...COUNT_METRICS];
export const KNOWN_OPERATION_METRICS = Object.keys(OPERATION_VALUES);

/**
 * Overrides merged into the presets by name: `{ name: 'latency_p95', allowedIncrease: 1.3 }` changes
 * only that setting; `{ name: 'cpu', weight: 0 }` reports it without scoring it. Unknown names are refused.
 */
export function mergeMetricConfigs(
  presets: readonly MetricConfig[],
  overrides: readonly Partial<MetricConfig>[] | undefined,
  known: readonly string[],
  label: string,
): MetricConfig[] {
  const out = presets.map((p) => ({ ...p }));
  for (const o of overrides ?? []) {
    if (!o || typeof o.name !== 'string' || !known.includes(o.name)) {
      throw new BadRequestError(
        `${label} metric ${JSON.stringify(o?.name)} is not one Pylee samples; known: ${known.join(', ')}`,
        'invalid-canary-config',
      );
    }
    const i = out.findIndex((p) => p.name === o.name);
    if (i >= 0) out[i] = { ...out[i], ...o } as MetricConfig;
    else out.push(o as MetricConfig);
  }
  return out;
}

export interface MetricSelection {
  /** Overrides of {@link SERVER_METRICS}, by name. */
  metrics?: Partial<MetricConfig>[] | undefined;
  /** Overrides of the per-operation metrics; `false` judges no operations. */
  operationMetrics?: Partial<MetricConfig>[] | false | undefined;
}

/** The judge's input from the samples: the server metrics, then each operation's on its own traffic. */
export function toJudgeSeries(
  samples: Samples,
  selection: MetricSelection = {},
): { metrics: MetricSeries[]; traffic: Traffic } {
  const server = mergeMetricConfigs(SERVER_METRICS, selection.metrics, KNOWN_METRICS, 'server');
  const none = { events: 0, total: 0 };
  const metrics: MetricSeries[] = server.map((config) => {
    if (COUNT_METRICS.includes(config.name)) {
      const counts = samples.sessions ?? { canary: none, baseline: none };
      return { config, canary: [], baseline: [], counts };
    }
    const key = SERVER_VALUES[config.name] as keyof SideValues;
    return { config, canary: samples.canary[key], baseline: samples.baseline[key] };
  });
  if (selection.operationMetrics !== false) {
    const perOp = mergeMetricConfigs(
      operationMetrics(),
      selection.operationMetrics,
      KNOWN_OPERATION_METRICS,
      'operation',
    );
    for (const op of samples.operations) {
      for (const config of perOp) {
        const key = OPERATION_VALUES[config.name] as 'errorRate' | 'p95';
        metrics.push({
          config,
          operation: op.operation,
          canary: op.canary[key],
          baseline: op.baseline[key],
          traffic: { canary: op.canary.requests, baseline: op.baseline.requests },
        });
      }
    }
  }
  return { metrics, traffic: { canary: samples.canary.requests, baseline: samples.baseline.requests } };
}
