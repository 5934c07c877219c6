import type { Warehouse } from './client.ts';
import { readFrom, windowFilter, type Filter, type Params, type Resolution } from './telemetry-sources.ts';

/**
 * Release-health queries over the telemetry tables (migrations 0002, 0003 and 0005). Only rows
 * with `counted = 1` reach a figure, so a request the gateway and OTLP both saw counts once. Every
 * value is a typed query parameter; the only text chosen in code is which table and aggregate
 * functions a resolution reads.
 *
 * Latency percentiles are t-digest estimates at every resolution (`quantilesTDigest` on raw rows,
 * `quantilesTDigestMerge` on the rollups' states), so a chart does not jump when a longer window
 * switches to a rollup. ClickHouse's t-digest keeps up to 2048 centroids with compression 0.01: a
 * window of up to about 2000 requests is interpolated between the exact values, and beyond that
 * the estimate is off by about 1 % of rank at the median and less at p95 / p99 (the tails are kept
 * finer). Results are Float32 (about 7 significant digits). Memory per group is bounded,
 * unlike `quantilesExact`, which holds every value of a six-hour raw window.
 */

export type { Resolution };

/** Retention of each resolution, in days. */
export interface RetentionDays {
  rawDays: number;
  minuteDays: number;
  hourDays: number;
}

/** The retention the migrations create. */
export const DEFAULT_RETENTION: RetentionDays = { rawDays: 7, minuteDays: 90, hourDays: 400 };

/** Longest window read from raw rows. */
export const RAW_MAX_WINDOW_MS = 6 * 3_600_000;
/** Longest window read from per-minute rollups; longer ones read per-hour rollups. */
export const MINUTE_MAX_WINDOW_MS = 30 * 86_400_000;
/** Most points a series returns; a smaller step is widened to stay below it. */
export const MAX_SERIES_POINTS = 1500;

const DAY_MS = 86_400_000;

export type Instant = Date | number;

export interface TimeWindow {
  from: Instant;
  to: Instant;
}

/**
 * The resolution for a window: raw rows up to 6 hours, per-minute rollups up to 30 days, else
 * per-hour rollups; a window that starts before a resolution's retention uses the next coarser one.
 */
export function resolution(
  window: TimeWindow,
  options: { now?: number; retention?: RetentionDays } = {},
): Resolution {
  const { from, to } = millis(window);
  const now = options.now ?? Date.now();
  const retention = options.retention ?? DEFAULT_RETENTION;
  const length = to - from;
  if (length <= RAW_MAX_WINDOW_MS && from >= now - retention.rawDays * DAY_MS) return 'raw';
  if (length <= MINUTE_MAX_WINDOW_MS && from >= now - retention.minuteDays * DAY_MS) return 'minute';
  return 'hour';
}

/** Seconds per bucket of a resolution (raw rows: one second, the smallest series step). */
export function bucketSeconds(res: Resolution): number {
  return res === 'hour' ? 3600 : res === 'minute' ? 60 : 1;
}

/**
 * `seconds` widened to whole buckets of `res`, and a step over a minute to whole minutes, over an
 * hour to whole hours: such steps read their buckets from the coarser rollups (see
 * telemetry-sources.ts), which no bucket then straddles.
 */
function wholeStep(res: Resolution, seconds: number): number {
  const bucket = bucketSeconds(res);
  const step = Math.ceil(Math.max(seconds, bucket) / bucket) * bucket;
  const unit = step > 3600 ? 3600 : step > 60 ? 60 : 1;
  return Math.ceil(step / unit) * unit;
}

export interface Latency {
  /** Milliseconds; null without requests. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** Request health of one version in a window. */
export interface VersionStats {
  version: string;
  requests: number;
  errors: number;
  /** errors / requests, 0..1; 0 without requests. */
  errorRate: number;
  /** Requests per second over the window. */
  throughput: number;
  latency: Latency;
}

export interface OperationStats extends Omit<VersionStats, 'version'> {
  operation: string;
}

export interface Scope extends TimeWindow {
  orgId: string;
  server: string;
  /** All environments when absent. */
  environment?: string | undefined;
  /** Forces a resolution instead of {@link resolution}'s choice. */
  resolution?: Resolution | undefined;
  /** Retention used to choose the resolution. @defaultValue {@link DEFAULT_RETENTION} */
  retention?: RetentionDays | undefined;
}

/**
 * The scope conditions shared by every query, and their parameters, over the window. `resources:
 * true` is for the process resources, which have no operation.
 */
function filter(
  scope: Scope & {
    version?: string | undefined;
    versions?: string[] | undefined;
    operation?: string | undefined;
  },
  options: { resources?: boolean } = {},
): Filter {
  const { from, to } = millis(scope);
  const conditions = ['org_id = {org:String}', 'server = {server:String}'];
  const params: Params = { org: scope.orgId, server: scope.server };
  if (scope.environment !== undefined) {
    conditions.push('environment = {environment:String}');
    params.environment = scope.environment;
  }
  if (scope.version !== undefined) {
    conditions.push('version = {version:String}');
    params.version = scope.version;
  }
  if (scope.versions !== undefined) {
    conditions.push('version IN {versions:Array(String)}');
    params.versions = scope.versions;
  }
  if (scope.operation !== undefined && !options.resources) {
    conditions.push('operation = {operation:String}');
    params.operation = scope.operation;
  }
  return windowFilter(conditions, params, from, to);
}

function pick(scope: Scope): Resolution {
  return scope.resolution ?? resolution(scope, { retention: scope.retention });
}

async function select<T>(warehouse: Warehouse, query: string, params: Params): Promise<T[]> {
  const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

interface HealthRow {
  requests: number;
  errors: number;
  q: (number | null)[];
}

function health(row: HealthRow | undefined, seconds: number): Omit<VersionStats, 'version'> {
  const requests = Number(row?.requests ?? 0);
  const errors = Number(row?.errors ?? 0);
  const q = requests > 0 ? (row?.q ?? []) : [];
  return {
    requests,
    errors,
    errorRate: requests > 0 ? errors / requests : 0,
    throughput: seconds > 0 ? requests / seconds : 0,
    latency: { p50: q[0] ?? null, p95: q[1] ?? null, p99: q[2] ?? null },
  };
}

function windowSeconds(window: TimeWindow): number {
  const { from, to } = millis(window);
  return (to - from) / 1000;
}

/**
 * Requests, errors, error rate, throughput (requests / window seconds) and latency percentiles of
 * one version. Rollup resolutions count whole buckets: from the minute (or hour) holding `from` to
 * the last one starting before `to`.
 */
export async function versionStats(
  warehouse: Warehouse,
  scope: Scope & { version: string },
): Promise<VersionStats> {
  const f = filter(scope);
  const { from, aggregates: a } = readFrom(pick(scope), 'requests', f);
  const [row] = await select<HealthRow>(
    warehouse,
    `SELECT ${a.count} AS requests, ${a.errors} AS errors, ${a.quantiles} AS q FROM ${from}`,
    f.params,
  );
  return { version: scope.version, ...health(row, windowSeconds(scope)) };
}

/** {@link versionStats} per operation of one version, busiest first. */
export async function operationStats(
  warehouse: Warehouse,
  scope: Scope & { version: string },
): Promise<OperationStats[]> {
  const f = filter(scope);
  const { from, aggregates: a } = readFrom(pick(scope), 'requests', f);
  const rows = await select<HealthRow & { operation: string }>(
    warehouse,
    `SELECT operation, ${a.count} AS requests, ${a.errors} AS errors, ${a.quantiles} AS q
     FROM ${from}
     GROUP BY operation ORDER BY requests DESC, operation`,
    f.params,
  );
  const seconds = windowSeconds(scope);
  return rows.map((row) => ({ operation: row.operation, ...health(row, seconds) }));
}

/**
 * {@link versionStats} and {@link operationStats} of several versions in ONE scan of the rows
 * (`GROUPING SETS`; the per-version totals come with a NULL operation).
 */
async function statsByVersion(
  warehouse: Warehouse,
  scope: Scope & { versions: string[] },
): Promise<Map<string, { total: VersionStats; operations: OperationStats[] }>> {
  const f = filter(scope);
  const { from, aggregates: a } = readFrom(pick(scope), 'requests', f);
  const rows = await select<HealthRow & { version: string; operation: string | null }>(
    warehouse,
    `SELECT version, operation, ${a.count} AS requests, ${a.errors} AS errors, ${a.quantiles} AS q
     FROM ${from}
     GROUP BY GROUPING SETS ((version), (version, operation))
     ORDER BY requests DESC, operation
     SETTINGS group_by_use_nulls = 1`,
    f.params,
  );
  const seconds = windowSeconds(scope);
  const out = new Map<string, { total: VersionStats; operations: OperationStats[] }>();
  for (const version of scope.versions) {
    out.set(version, { total: { version, ...health(undefined, seconds) }, operations: [] });
  }
  for (const row of rows) {
    const entry = out.get(row.version);
    if (!entry) continue;
    if (row.operation === null) entry.total = { version: row.version, ...health(row, seconds) };
    else entry.operations.push({ operation: row.operation, ...health(row, seconds) });
  }
  return out;
}

export interface Comparison {
  baseline: VersionStats;
  candidate: VersionStats;
  /** Every operation either version served, busiest (in the candidate, then the baseline) first. */
  operations: { operation: string; baseline: OperationStats; candidate: OperationStats }[];
  /** Error types the candidate had and the baseline never had in its window. */
  newErrorTypes: ErrorTypeCount[];
}

/**
 * Baseline against candidate over the same window, or the baseline over `baselineWindow` (the time
 * before a rollout, say).
 */
export async function compareVersions(
  warehouse: Warehouse,
  scope: Scope & { baseline: string; candidate: string; baselineWindow?: TimeWindow | undefined },
): Promise<Comparison> {
  const versions = [scope.baseline, scope.candidate];
  // One scan for both versions over one window; two when the baseline has its own window.
  const [stats, baselineStats, newErrors] = await Promise.all([
    statsByVersion(warehouse, { ...scope, versions: scope.baselineWindow ? [scope.candidate] : versions }),
    scope.baselineWindow
      ? statsByVersion(warehouse, { ...scope, ...scope.baselineWindow, versions: [scope.baseline] })
      : undefined,
    newErrorTypes(warehouse, scope),
  ]);
  const side = (version: string) =>
    (baselineStats && version === scope.baseline ? baselineStats : stats).get(version) ?? {
      total: { version, ...health(undefined, 0) },
      operations: [],
    };
  const { total: baseline, operations: baselineOps } = side(scope.baseline);
  const { total: candidate, operations: candidateOps } = side(scope.candidate);
  const empty = (operation: string): OperationStats => ({ operation, ...health(undefined, 0) });
  const byName = new Map(baselineOps.map((o) => [o.operation, o]));
  const operations = candidateOps.map((c) => ({
    operation: c.operation,
    baseline: byName.get(c.operation) ?? empty(c.operation),
    candidate: c,
  }));
  const seen = new Set(candidateOps.map((c) => c.operation));
  for (const b of baselineOps) {
    if (!seen.has(b.operation))
      operations.push({ operation: b.operation, baseline: b, candidate: empty(b.operation) });
  }
  return { baseline, candidate, operations, newErrorTypes: newErrors };
}

export interface SeriesPoint {
  /** Start of the step, RFC 3339. */
  time: string;
  requests: number;
  /** Requests per second over the part of the step inside the window. */
  throughput: number;
  /** errors / requests, 0..1; null without requests (no requests, no error rate: a gap, not 0 %). */
  errorRate: number | null;
  /** Milliseconds; null without requests. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Average `process.cpu.utilization` (0..1, as OpenTelemetry defines it); null when not reported. */
  cpu: number | null;
  /** CPU seconds used in the step: the sum of `process.cpu.time` deltas; null when not reported. */
  cpuSeconds: number | null;
  /** Average `process.memory.usage`, bytes; null when not reported. */
  memory: number | null;
  /** Largest `process.memory.usage`, bytes. */
  memoryMax: number | null;
}

export interface Series {
  resolution: Resolution;
  /** The step used: the one asked for, widened to a whole number of buckets and at most {@link MAX_SERIES_POINTS} points. */
  stepSeconds: number;
  points: SeriesPoint[];
}

/**
 * Throughput, error rate, latency percentiles and process resources per step, every step of the
 * window present (empty ones with zero requests, and null error rate and latency). Steps start at
 * multiples of `stepSeconds` since the Unix epoch. Resources are per process, so an `operation`
 * filter leaves them unfiltered.
 */
export async function series(
  warehouse: Warehouse,
  scope: Scope & { version?: string; operation?: string; stepSeconds: number },
): Promise<Series> {
  const res = pick(scope);
  const { from, to } = millis(scope);
  const asked = Math.max(1, Math.ceil(scope.stepSeconds));
  const fewest = Math.ceil((to - from) / 1000 / MAX_SERIES_POINTS);
  const step = wholeStep(res, Math.max(asked, fewest));

  const requests = filter(scope);
  const resources = filter(scope, { resources: true });
  const r = readFrom(res, 'requests', requests, step);
  const m = readFrom(res, 'resources', resources, step);
  const stepExpr = 'toUnixTimestamp(toStartOfInterval(time, INTERVAL {step:UInt32} SECOND))';
  const [requestRows, resourceRows] = await Promise.all([
    select<HealthRow & { bucket: number }>(
      warehouse,
      `SELECT ${stepExpr} AS bucket, ${r.aggregates.count} AS requests, ${r.aggregates.errors} AS errors,
         ${r.aggregates.quantiles} AS q
       FROM ${r.from}
       GROUP BY bucket ORDER BY bucket`,
      { ...requests.params, step },
    ),
    select<{
      bucket: number;
      cpu: number | null;
      cpuSeconds: number | null;
      memory: number | null;
      memoryMax: number | null;
    }>(
      warehouse,
      `SELECT bucket, if(isNaN(cpu_), NULL, cpu_) AS cpu, cpuSeconds, if(isNaN(memory_), NULL, memory_) AS memory, memoryMax
       FROM (
         SELECT ${stepExpr} AS bucket, ${m.aggregates.cpu} AS cpu_, ${m.aggregates.cpuSeconds} AS cpuSeconds,
                ${m.aggregates.memory} AS memory_, ${m.aggregates.memoryMax} AS memoryMax
         FROM ${m.from}
         GROUP BY bucket
       ) ORDER BY bucket`,
      { ...resources.params, step },
    ),
  ]);

  const byBucket = new Map(requestRows.map((r) => [Number(r.bucket), r]));
  const resourcesByBucket = new Map(resourceRows.map((r) => [Number(r.bucket), r]));
  const points: SeriesPoint[] = [];
  for (let start = Math.floor(from / 1000 / step) * step; start * 1000 < to; start += step) {
    const covered = (Math.min((start + step) * 1000, to) - Math.max(start * 1000, from)) / 1000;
    const h = health(byBucket.get(start), covered);
    const r = resourcesByBucket.get(start);
    points.push({
      time: new Date(start * 1000).toISOString(),
      requests: h.requests,
      throughput: h.throughput,
      errorRate: h.requests > 0 ? h.errorRate : null,
      ...h.latency,
      cpu: r?.cpu ?? null,
      cpuSeconds: r?.cpuSeconds ?? null,
      memory: r?.memory ?? null,
      memoryMax: r?.memoryMax ?? null,
    });
  }
  return { resolution: res, stepSeconds: step, points };
}

export interface ErrorTypeCount {
  version: string;
  /** `error.type`, the HTTP status class, or `tool_error` (see RequestRow). */
  errorType: string;
  errors: number;
}

/** The most frequent error types per version (all versions, or those given), most frequent first. */
export async function errorTypes(
  warehouse: Warehouse,
  scope: Scope & { versions?: string[]; operation?: string; limit?: number },
): Promise<ErrorTypeCount[]> {
  if (scope.versions?.length === 0) return [];
  const res = pick(scope);
  const f = filter(scope);
  const { from, aggregates: a } = readFrom(res, 'errors', f);
  return (
    await select<ErrorTypeCount>(
      warehouse,
      `SELECT version, error_type AS errorType, ${a.errorCount} AS errors
       FROM ${from}
       GROUP BY version, error_type
       ORDER BY version, errors DESC, errorType
       LIMIT {limit:UInt32} BY version`,
      { ...f.params, limit: scope.limit ?? 10 },
    )
  ).map((r) => ({ ...r, errors: Number(r.errors) }));
}

/**
 * Error types the candidate had in the window and the baseline did not have at all (in
 * `baselineWindow` when given), most frequent first.
 */
export async function newErrorTypes(
  warehouse: Warehouse,
  scope: Scope & { baseline: string; candidate: string; baselineWindow?: TimeWindow | undefined },
): Promise<ErrorTypeCount[]> {
  const everything = 1_000_000;
  const [both, baselineOwn] = await Promise.all([
    errorTypes(warehouse, {
      ...scope,
      versions: scope.baselineWindow ? [scope.candidate] : [scope.candidate, scope.baseline],
      limit: everything,
    }),
    scope.baselineWindow
      ? errorTypes(warehouse, {
          ...scope,
          ...scope.baselineWindow,
          versions: [scope.baseline],
          limit: everything,
        })
      : [],
  ]);
  const of = (version: string) => [...both, ...baselineOwn].filter((e) => e.version === version);
  const known = new Set(of(scope.baseline).map((e) => e.errorType));
  return of(scope.candidate).filter((e) => !known.has(e.errorType));
}

export interface VersionTraffic {
  version: string;
  requests: number;
  /** First and last request seen in the window (bucket starts on rollups), RFC 3339. */
  firstSeen: string;
  lastSeen: string;
}

/**
 * Versions that served requests in an environment, most recently seen first (then busiest first:
 * on rollups, versions seen in the same last bucket tie): the candidates for a baseline.
 */
export async function versionsWithTraffic(
  warehouse: Warehouse,
  scope: Scope & { environment: string },
): Promise<VersionTraffic[]> {
  const res = pick(scope);
  const f = filter(scope);
  // A step of 1 s reads each resolution's own table, so first and last are exact on raw rows.
  const { from, aggregates: a } = readFrom(res, 'requests', f, 1);
  const ms = res === 'raw' ? 'toUnixTimestamp64Milli' : '1000 * toUnixTimestamp';
  const rows = await select<{ version: string; requests: number; first: number; last: number }>(
    warehouse,
    `SELECT version, ${a.count} AS requests, ${ms}(min(time)) AS first, ${ms}(max(time)) AS last
     FROM ${from}
     GROUP BY version ORDER BY last DESC, requests DESC, version`,
    f.params,
  );
  return rows.map((r) => ({
    version: r.version,
    requests: Number(r.requests),
    firstSeen: new Date(Number(r.first)).toISOString(),
    lastSeen: new Date(Number(r.last)).toISOString(),
  }));
}

const RETENTION_TABLES: { table: string; tier: keyof RetentionDays; column: string }[] = [
  { table: 'requests', tier: 'rawDays', column: 'toDateTime(time)' },
  { table: 'metric_points', tier: 'rawDays', column: 'toDateTime(time)' },
  { table: 'session_events', tier: 'rawDays', column: 'toDateTime(time)' },
  { table: 'session_states', tier: 'rawDays', column: 'toDateTime(last_seen)' },
  { table: 'requests_1m', tier: 'minuteDays', column: 'time' },
  { table: 'request_errors_1m', tier: 'minuteDays', column: 'time' },
  { table: 'resources_1m', tier: 'minuteDays', column: 'time' },
  { table: 'session_rollups', tier: 'minuteDays', column: 'time' },
  { table: 'requests_1h', tier: 'hourDays', column: 'time' },
  { table: 'request_errors_1h', tier: 'hourDays', column: 'time' },
  { table: 'resources_1h', tier: 'hourDays', column: 'time' },
  { table: 'session_rollups_1h', tier: 'hourDays', column: 'time' },
];

/**
 * Sets the TTL of the telemetry tables to `retention` (raw rows and session events, minute and hour
 * rollups), altering only tables whose TTL differs, so running it at every start costs nothing once
 * applied. Returns the tables it altered. Existing parts are rewritten by ClickHouse in the
 * background to the new TTL. The day counts are checked whole numbers written into the DDL: TTL
 * clauses take no query parameters on the ClickHouse servers Pylee supports.
 */
export async function applyRetention(warehouse: Warehouse, retention: RetentionDays): Promise<string[]> {
  for (const tier of ['rawDays', 'minuteDays', 'hourDays'] as const) {
    const days = retention[tier];
    if (!Number.isSafeInteger(days) || days < 1 || days > 36_500) {
      throw new RangeError(`${tier} must be a whole number of days from 1 to 36500, got ${days}`);
    }
  }
  const tables = await select<{ name: string; engine_full: string }>(
    warehouse,
    `SELECT name, engine_full FROM system.tables
     WHERE database = currentDatabase() AND name IN {tables:Array(String)}`,
    { tables: RETENTION_TABLES.map((t) => t.table) },
  );
  const current = new Map(tables.map((t) => [t.name, ttlDays(t.engine_full)]));
  const altered: string[] = [];
  for (const { table, tier, column } of RETENTION_TABLES) {
    if (!current.has(table)) {
      throw new Error(
        `table ${table} does not exist; run the warehouse migrations before applying retention`,
      );
    }
    const days = retention[tier];
    if (current.get(table) === days) continue;
    await warehouse.client.command({
      query: `ALTER TABLE ${table} MODIFY TTL ${column} + INTERVAL ${days} DAY`,
    });
    altered.push(table);
  }
  return altered;
}

/** The days of a `TTL … + toIntervalDay(N)` clause in `engine_full`, if there is one. */
export function ttlDays(engineFull: string): number | undefined {
  const match = /\bTTL\b.*?toIntervalDay\((?:_CAST\()?(\d+)/.exec(engineFull);
  return match ? Number(match[1]) : undefined;
}

function millis(window: TimeWindow): { from: number; to: number } {
  const from = typeof window.from === 'number' ? window.from : window.from.getTime();
  const to = typeof window.to === 'number' ? window.to : window.to.getTime();
  if (!Number.isFinite(from) || !Number.isFinite(to))
    throw new RangeError('the window needs valid from and to times');
  return { from, to };
}

/** Totals and a short series of one server × environment × version: one group of {@link fleetStats}. */
export interface FleetGroup extends VersionStats {
  server: string;
  environment: string;
  /**
   * One value per step of {@link FleetStats.times}; empty steps have zero requests, and null error
   * rate and latency.
   */
  series: {
    requests: number[];
    errorRate: (number | null)[];
    throughput: number[];
    p50: (number | null)[];
    p95: (number | null)[];
  };
}

export interface FleetStats {
  resolution: Resolution;
  stepSeconds: number;
  /** Start of each step, RFC 3339, shared by every group's series. */
  times: string[];
  groups: FleetGroup[];
}

/**
 * {@link versionStats} and a {@link series} of request health for every server × environment ×
 * version with traffic in the window, across many servers in ONE query: `GROUPING SETS` returns the
 * whole-window group (bucket 0, which no real step starts at) and the per-step groups together, so
 * an overview of the fleet costs one ClickHouse round trip whatever the number of servers.
 */
export async function fleetStats(
  warehouse: Warehouse,
  scope: TimeWindow & {
    orgId: string;
    servers: readonly string[];
    environments?: readonly string[] | undefined;
    /** Steps the window is cut into (the step is widened to whole buckets, so maybe fewer). */
    points: number;
    resolution?: Resolution | undefined;
    retention?: RetentionDays | undefined;
  },
): Promise<FleetStats> {
  const res = scope.resolution ?? resolution(scope, { retention: scope.retention });
  const { from, to } = millis(scope);
  if (!(to > from)) throw new RangeError('the window must end after it starts');
  const asked = Math.ceil((to - from) / 1000 / Math.max(1, Math.floor(scope.points)));
  const step = wholeStep(res, asked);
  const times: string[] = [];
  const starts: number[] = [];
  for (let start = Math.floor(from / 1000 / step) * step; start * 1000 < to; start += step) {
    starts.push(start);
    times.push(new Date(start * 1000).toISOString());
  }
  if (scope.servers.length === 0 || scope.environments?.length === 0) {
    return { resolution: res, stepSeconds: step, times, groups: [] };
  }

  const conditions = ['org_id = {org:String}', 'server IN {servers:Array(String)}'];
  const params: Params = { org: scope.orgId, servers: [...scope.servers], step };
  if (scope.environments !== undefined) {
    conditions.push('environment IN {environments:Array(String)}');
    params.environments = [...scope.environments];
  }
  const f = windowFilter(conditions, params, from, to);
  const read = readFrom(res, 'requests', f, step);
  const a = read.aggregates;
  const rows = await select<
    HealthRow & { server: string; environment: string; version: string; bucket: number }
  >(
    warehouse,
    `SELECT server, environment, version,
            toUnixTimestamp(toStartOfInterval(time, INTERVAL {step:UInt32} SECOND)) AS bucket,
            ${a.count} AS requests, ${a.errors} AS errors, ${a.quantiles} AS q
     FROM ${read.from}
     GROUP BY GROUPING SETS ((server, environment, version), (server, environment, version, bucket))
     SETTINGS group_by_use_nulls = 0`,
    f.params,
  );

  const key = (r: { server: string; environment: string; version: string }) =>
    `${r.server}\u0000${r.environment}\u0000${r.version}`;
  const totals = new Map<string, (typeof rows)[number]>();
  const steps = new Map<string, Map<number, (typeof rows)[number]>>();
  for (const row of rows) {
    const k = key(row);
    if (Number(row.bucket) === 0) totals.set(k, row);
    else {
      let byStep = steps.get(k);
      if (!byStep) steps.set(k, (byStep = new Map()));
      byStep.set(Number(row.bucket), row);
    }
  }
  const seconds = (to - from) / 1000;
  const groups: FleetGroup[] = [];
  for (const [k, total] of totals) {
    const byStep = steps.get(k) ?? new Map();
    const series: FleetGroup['series'] = { requests: [], errorRate: [], throughput: [], p50: [], p95: [] };
    for (const start of starts) {
      const covered = (Math.min((start + step) * 1000, to) - Math.max(start * 1000, from)) / 1000;
      const h = health(byStep.get(start), covered);
      series.requests.push(h.requests);
      series.errorRate.push(h.requests > 0 ? h.errorRate : null);
      series.throughput.push(h.throughput);
      series.p50.push(h.latency.p50);
      series.p95.push(h.latency.p95);
    }
    groups.push({
      server: total.server,
      environment: total.environment,
      version: total.version,
      ...health(total, seconds),
      series,
    });
  }
  groups.sort((a, b) => key(a).localeCompare(key(b)));
  return { resolution: res, stepSeconds: step, times, groups };
}
