/**
 * Which rows a telemetry query reads for a window, and the aggregate expressions over them.
 *
 * Each resolution has its table (raw rows, per-minute and per-hour rollups, migrations 0002 / 0003),
 * but a window is read from the coarsest table that holds it exactly: its whole hours from the hour
 * rollups, the whole minutes left from the minute rollups, and only the seconds left at the edges
 * from raw rows (turned into minute states as the materialized views do). The figures are the
 * same, the work is not: a five-hour raw window of 10 M requests merges a few thousand states and
 * about a minute of raw rows instead of scanning 10 M rows, and a busy minute's t-digest state
 * holds every value uncompressed (ClickHouse compresses at 2048 centroids) where an hour's is
 * compressed, so hours are read from the hour table. A series bucket must not straddle a coarser
 * row: minute rows only for steps of whole minutes, hour rows only for steps of whole hours.
 */

/** Which table a window reads: raw rows, per-minute or per-hour rollups. */
export type Resolution = 'raw' | 'minute' | 'hour';

export type Params = Record<string, unknown>;

/** What a query aggregates: request health, error counts, process resources. */
export type Table = 'requests' | 'errors' | 'resources';

/** The aggregate expressions over what {@link readFrom} returns. */
export interface Aggregates {
  count: string;
  errors: string;
  quantiles: string;
  errorCount: string;
  cpu: string;
  cpuSeconds: string;
  memory: string;
  memoryMax: string;
}

const RAW_AGGREGATES: Aggregates = {
  count: 'count()',
  errors: 'sum(error)',
  quantiles: 'quantilesTDigest(0.5, 0.95, 0.99)(duration_ms)',
  errorCount: 'count()',
  cpu: "avgIf(value, metric = 'process.cpu.utilization')",
  cpuSeconds: "sumOrNullIf(value, metric = 'process.cpu.time')",
  memory: "avgIf(value, metric = 'process.memory.usage')",
  memoryMax: "maxOrNullIf(value, metric = 'process.memory.usage')",
};

const ROLLUP_AGGREGATES: Aggregates = {
  count: 'countMerge(requests)',
  errors: 'sumMerge(errors)',
  quantiles: 'quantilesTDigestMerge(0.5, 0.95, 0.99)(duration_ms)',
  errorCount: 'sum(errors)',
  cpu: 'avgMerge(cpu_utilization)',
  cpuSeconds: 'sumOrNullMerge(cpu_seconds)',
  memory: 'avgMerge(memory_avg)',
  memoryMax: 'maxOrNullMerge(memory_max)',
};

const TABLES: Record<Resolution, Record<Table, string>> = {
  raw: { requests: 'requests', errors: 'requests', resources: 'metric_points' },
  minute: { requests: 'requests_1m', errors: 'request_errors_1m', resources: 'resources_1m' },
  hour: { requests: 'requests_1h', errors: 'request_errors_1h', resources: 'resources_1h' },
};

const FROM = "fromUnixTimestamp64Milli({from:Int64}, 'UTC')";
const TO = "fromUnixTimestamp64Milli({to:Int64}, 'UTC')";
const RESOURCE_METRICS = "metric IN ('process.cpu.utilization', 'process.cpu.time', 'process.memory.usage')";
/** Rows of the raw table that count (see core/telemetry/fronted.ts); the rollups hold only these. */
const COUNTED = 'counted = 1';
const seconds = (name: string) => `toDateTime({${name}:UInt32}, 'UTC')`;
const HOURS = `time >= ${seconds('hourFrom')} AND time < ${seconds('hourTo')}`;
const MINUTES = `time >= ${seconds('minuteFrom')} AND time < ${seconds('minuteTo')}`;

/** The window of each resolution: raw rows exactly, rollup buckets from the one holding `from`. */
const WINDOW: Record<Resolution, string> = {
  raw: `time >= ${FROM} AND time < ${TO}`,
  minute: `time >= toStartOfMinute(${FROM}) AND time < ${TO}`,
  hour: `time >= toStartOfHour(${FROM}) AND time < ${TO}`,
};

/** Raw rows as minute-rollup rows: the materialized views' own SELECT (migration 0005). */
const AS_MINUTES: Partial<Record<Table, (where: string) => string>> = {
  requests: (where) =>
    `SELECT org_id, server, environment, version, operation, toDateTime(toStartOfMinute(time), 'UTC') AS minute,
       countState() AS requests, sumState(error) AS errors,
       quantilesTDigestState(0.5, 0.95, 0.99)(duration_ms) AS duration_ms
     FROM requests WHERE ${where}
     GROUP BY org_id, server, environment, version, operation, minute`,
  errors: (where) =>
    `SELECT org_id, server, environment, version, operation, error_type,
       toDateTime(toStartOfMinute(time), 'UTC') AS minute, CAST(count() AS SimpleAggregateFunction(sum, UInt64)) AS errors
     FROM requests WHERE error = 1 AND ${where}
     GROUP BY org_id, server, environment, version, operation, error_type, minute`,
};

/** A query's scope (org, server, …: no window, no `counted`) and the window. */
export interface Filter {
  conditions: string[];
  params: Params;
  from: number;
  to: number;
}

/** `conditions` (the scope) over the window `from`–`to` (ms). */
export function windowFilter(conditions: string[], params: Params, from: number, to: number): Filter {
  if (!(to > from)) throw new RangeError('the window must end after it starts');
  Object.assign(params, { from, to });
  return { conditions, params, from, to };
}

/**
 * The text after `FROM` for `table` at resolution `res` over the filter's window, and the aggregate
 * expressions to use on it. `step` is the series step in seconds (0: one whole-window aggregate).
 */
export function readFrom(
  res: Resolution,
  table: Table,
  f: Filter,
  step = 0,
): { from: string; aggregates: Aggregates } {
  const scope = f.conditions.join(' AND ');
  // Raw request rows count once (see core/telemetry/fronted.ts); the rollups hold only those.
  const raw = [scope, ...(table === 'resources' ? [RESOURCE_METRICS] : [COUNTED]), WINDOW.raw].join(' AND ');
  const plain = {
    from:
      res === 'raw'
        ? `${TABLES.raw[table]} WHERE ${raw}${table === 'errors' ? ' AND error = 1' : ''}`
        : `${TABLES[res][table]} WHERE ${scope} AND ${WINDOW[res]}`,
    aggregates: res === 'raw' ? RAW_AGGREGATES : ROLLUP_AGGREGATES,
  };
  if (res === 'hour') return plain;
  // Whole minutes of the window (on minute rollups: its buckets), and the whole hours among them.
  const minuteFrom = (res === 'raw' ? Math.ceil(f.from / 60_000) : Math.floor(f.from / 60_000)) * 60;
  const minuteTo = (res === 'raw' ? Math.floor(f.to / 60_000) : Math.ceil(f.to / 60_000)) * 60;
  const hourFrom = Math.ceil(minuteFrom / 3600) * 3600;
  const hourTo = Math.floor(minuteTo / 3600) * 3600;
  const hours = step % 3600 === 0 && hourTo > hourFrom;
  if (res === 'minute' && !hours) return plain;
  if (res === 'raw' && (table === 'resources' || step % 60 !== 0 || !(minuteTo > minuteFrom))) return plain;
  Object.assign(f.params, { minuteFrom, minuteTo, hourFrom, hourTo });

  const parts: string[] = [];
  if (hours) parts.push(`SELECT * FROM ${TABLES.hour[table]} WHERE ${scope} AND ${HOURS}`);
  const notHours = hours ? ` AND NOT (${HOURS})` : '';
  if (res === 'minute') {
    parts.push(`SELECT * FROM ${TABLES.minute[table]} WHERE ${scope} AND ${WINDOW.minute}${notHours}`);
  } else {
    parts.push(`SELECT * FROM ${TABLES.minute[table]} WHERE ${scope} AND ${MINUTES}${notHours}`);
    const asMinutes = AS_MINUTES[table] as (where: string) => string;
    parts.push(asMinutes(`${raw} AND NOT (${MINUTES})`));
  }
  return { from: `(${parts.join('\n    UNION ALL ')})`, aggregates: ROLLUP_AGGREGATES };
}
