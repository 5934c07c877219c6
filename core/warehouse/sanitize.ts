import { DEFAULT_MAX_ATTRIBUTE_LENGTH } from '../telemetry/naming.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from './rows.ts';
import type { TelemetryTable } from './spool.ts';

/**
 * Makes every value of a telemetry row valid for its ClickHouse column before the row is batched,
 * so that one bad value cannot make ClickHouse refuse (or silently wrap) a whole JSONEachRow insert.
 * Rows are repaired in place and the number of repaired values is returned (0 for a valid row, which
 * is left exactly as it was). Each table is described once, by a column spec ({@link REQUEST_SPEC},
 * {@link METRIC_POINT_SPEC}, {@link SESSION_EVENT_SPEC}); the rules per kind of column are:
 *
 * - `string`, `lowcard`: made well-formed UTF-16 (a lone surrogate becomes U+FFFD, as OpenTelemetry
 *   SDKs do), so the UTF-8 sent is valid; cut to the column's `maxLength` UTF-16 code units without
 *   splitting a surrogate pair. A value that is not a string becomes ''. NUL and other control
 *   characters are kept: JSON escapes them and ClickHouse Strings hold any byte.
 * - `uint8`, `uint16`, `uint64`: a fraction is truncated toward zero (as ClickHouse's `toUInt*`
 *   does); a value outside the column's range (NaN and ±Infinity included) is stored as absent, 0 —
 *   or, for a column with `outOfRange: 'clamp'`, as the nearest bound. 0 is always valid.
 * - `float64`: NaN and ±Infinity become 0 (a Float64 column has no NULL, and 0 is what ClickHouse
 *   makes of the `null` JSON.stringify writes for them); a value below the column's `min` becomes `min`.
 * - `datetime64`: `YYYY-MM-DDTHH:MM:SS.sssZ` between {@link MIN_TIME} and {@link MAX_TIME}. Another
 *   RFC 3339 time in that range is rewritten in that form; anything else falls back to the column's
 *   `fallback`: another time column of the row, else the current time.
 * - `float64[]`, `uint64[]`: element by element as `float64` and `uint64`; a value that is not an array
 *   becomes []. Arrays are replaced, never changed, since rows may share them (the collector shares a
 *   histogram's bounds between its points).
 * - histograms ({@link TableSpec.histogram}): bounds must be finite and strictly increasing, and there
 *   must be no bucket counts (none recorded, as OTLP allows) or exactly one more than bounds;
 *   otherwise the buckets cannot be read as a distribution and both arrays are emptied (count and
 *   sum are kept).
 *
 * Pure apart from reading the clock for a time that has to fall back to now; allocation-free for
 * valid rows.
 */

/**
 * Longest value of a LowCardinality(String) column, in UTF-16 code units: the collector's cap on
 * attribute values (`DEFAULT_MAX_ATTRIBUTE_LENGTH`, core/telemetry/naming.ts), so nothing the collector
 * made is cut again. Each distinct value lives in the dictionary of every part it occurs in, hence
 * the shorter cap than {@link MAX_STRING_LENGTH}.
 */
export const MAX_LOWCARD_LENGTH = DEFAULT_MAX_ATTRIBUTE_LENGTH;

/** Longest value of a plain String column (ids), in UTF-16 code units: a bound on enormous values. */
export const MAX_STRING_LENGTH = 16_384;

/**
 * The earliest time stored. Times are DateTime64(3), but the rollups store `toStartOfMinute(time)` in
 * DateTime columns and the TTLs use `toDateTime(time)`: outside DateTime's range (1970 to
 * 2106-02-07T06:28:15Z) ClickHouse wraps them silently (a span of 1899-12-31 lands in a rollup bucket of
 * 2036).
 */
export const MIN_TIME = '1970-01-01T00:00:00.000Z';
/** The latest time stored: the end of ClickHouse's DateTime range (see {@link MIN_TIME}). */
export const MAX_TIME = '2106-02-07T06:28:15.999Z';

const MIN_TIME_MS = Date.parse(MIN_TIME);
const MAX_TIME_MS = Date.parse(MAX_TIME);

/** The largest double below 2^64: larger numbers do not fit a UInt64 column (ClickHouse wraps them). */
export const MAX_UINT64 = 2 ** 64 - 2048;

/** One column: its kind and the parameters of its rule (see the module's rules). */
export type ColumnSpec =
  | { readonly kind: 'string' | 'lowcard'; readonly maxLength: number }
  | {
      readonly kind: 'uint8' | 'uint16' | 'uint64';
      /** The valid range, bounds included; 0 (absent) is valid too. */
      readonly min: number;
      readonly max: number;
      /** What an out-of-range value becomes: 0 (absent), or the nearest bound. */
      readonly outOfRange: 'absent' | 'clamp';
    }
  | { readonly kind: 'float64'; readonly min?: number }
  | {
      readonly kind: 'datetime64';
      /** The column whose time (repaired first) an invalid one takes. @defaultValue now */
      readonly fallback?: string;
    }
  | { readonly kind: 'float64[]' }
  /** Elements from 0 to {@link MAX_UINT64}; any other is 0, as for a count. */
  | { readonly kind: 'uint64[]' };

/**
 * The columns of a table, one spec for each property of its row type, in the table's column order
 * (a time that falls back to another column is repaired after that column).
 */
export interface TableSpec<Row> {
  readonly table: TelemetryTable;
  readonly columns: { readonly [K in keyof Row]-?: ColumnSpec };
  /** A histogram's bounds and bucket counts columns, checked together before the columns. */
  readonly histogram?: { readonly bounds: keyof Row & string; readonly counts: keyof Row & string };
}

const lowcard = { kind: 'lowcard', maxLength: MAX_LOWCARD_LENGTH } as const;
const plain = { kind: 'string', maxLength: MAX_STRING_LENGTH } as const;
const count = { kind: 'uint64', min: 0, max: MAX_UINT64, outOfRange: 'absent' } as const;
const float = { kind: 'float64' } as const;

/** The `requests` table (migrations/0002_requests.sql, with the columns 0005 adds). */
export const REQUEST_SPEC: TableSpec<RequestRow> = {
  table: 'requests',
  columns: {
    org_id: lowcard,
    server: lowcard,
    environment: lowcard,
    version: lowcard,
    operation: lowcard,
    /** An unparsable span start is placed at the time it is received. */
    time: { kind: 'datetime64' },
    /** A duration is never negative: a negative one becomes 0, like a non-finite one. */
    duration_ms: { kind: 'float64', min: 0 },
    /** A flag: a value above 1 is 1, one below 0 is 0. */
    error: { kind: 'uint8', min: 0, max: 1, outOfRange: 'clamp' },
    error_type: lowcard,
    /** A status code outside 100–599 is no HTTP status: stored as absent, 0. */
    http_status: { kind: 'uint16', min: 100, max: 599, outOfRange: 'absent' },
    mcp_method: lowcard,
    tool: lowcard,
    trace_id: plain,
    span_id: plain,
    session_id: plain,
    /** 'otlp' or 'gateway'; any other text is stored as it is, like every other LowCardinality value. */
    source: lowcard,
    client_key: plain,
    /** A flag, as `error` is. */
    counted: { kind: 'uint8', min: 0, max: 1, outOfRange: 'clamp' },
  },
};

/** The `metric_points` table (migrations/0003_metric_points.sql). */
export const METRIC_POINT_SPEC: TableSpec<MetricPointRow> = {
  table: 'metric_points',
  columns: {
    org_id: lowcard,
    server: lowcard,
    environment: lowcard,
    version: lowcard,
    operation: lowcard,
    metric: lowcard,
    unit: lowcard,
    kind: lowcard,
    /** A point without a valid start starts at its time, as the collector does for a missing start. */
    start_time: { kind: 'datetime64', fallback: 'time' },
    time: { kind: 'datetime64' },
    /** A negative count, or one past UInt64, is absent (0): clamped to UInt64's top it would overflow every sum. */
    count,
    sum: float,
    /** A gauge or delta of NaN or ±Infinity is stored as 0 (the collector already rejects such points). */
    value: float,
    bounds: { kind: 'float64[]' },
    bucket_counts: { kind: 'uint64[]' },
  },
  histogram: { bounds: 'bounds', counts: 'bucket_counts' },
};

// Compiled specs: one small record per column, in the order they are repaired.
const STRING = 0;
const INT = 1;
const FLOAT = 2;
const TIME = 3;
const FLOATS = 4;
const COUNTS = 5;

interface Step {
  readonly name: string;
  readonly op: number;
  readonly maxLength: number;
  readonly min: number;
  readonly max: number;
  readonly clamp: boolean;
  /** For TIME: the column to fall back to, or '' for now. */
  readonly fallback: string;
}

interface Plan {
  readonly steps: readonly Step[];
  readonly bounds: string;
  readonly counts: string;
}

function compile<Row>(spec: TableSpec<Row>): Plan {
  const steps: Step[] = [];
  const later: Step[] = [];
  for (const [name, column] of Object.entries(spec.columns) as [string, ColumnSpec][]) {
    const step = compileColumn(name, column);
    // A time falling back to another column is repaired after that column.
    (step.fallback ? later : steps).push(step);
  }
  for (const step of later) {
    const target = (spec.columns as Record<string, ColumnSpec | undefined>)[step.fallback];
    if (target?.kind !== 'datetime64' || target.fallback) {
      throw new Error(
        `${spec.table}.${step.name} falls back to ${step.fallback}, which is not a datetime64 column without a fallback`,
      );
    }
  }
  return {
    steps: [...steps, ...later],
    bounds: spec.histogram?.bounds ?? '',
    counts: spec.histogram?.counts ?? '',
  };
}

function compileColumn(name: string, column: ColumnSpec): Step {
  const step = { name, op: STRING, maxLength: 0, min: -Infinity, max: Infinity, clamp: false, fallback: '' };
  switch (column.kind) {
    case 'string':
    case 'lowcard':
      return { ...step, maxLength: column.maxLength };
    case 'uint8':
    case 'uint16':
    case 'uint64':
      return { ...step, op: INT, min: column.min, max: column.max, clamp: column.outOfRange === 'clamp' };
    case 'float64':
      return { ...step, op: FLOAT, min: column.min ?? -Infinity };
    case 'datetime64':
      return { ...step, op: TIME, fallback: column.fallback ?? '' };
    case 'float64[]':
      return { ...step, op: FLOATS };
    case 'uint64[]':
      return { ...step, op: COUNTS, min: 0, max: MAX_UINT64 };
  }
}

/** The `session_events` table (migrations/0005_request_source.sql). */
export const SESSION_EVENT_SPEC: TableSpec<SessionEventRow> = {
  table: 'session_events',
  columns: {
    org_id: lowcard,
    server: lowcard,
    environment: lowcard,
    version: lowcard,
    session_id: plain,
    time: { kind: 'datetime64' },
    event: lowcard,
    reason: lowcard,
    client_key: plain,
    source: lowcard,
  },
};

/** Every table's spec, by table name. */
export const TABLE_SPECS = {
  requests: REQUEST_SPEC,
  metric_points: METRIC_POINT_SPEC,
  session_events: SESSION_EVENT_SPEC,
} as const;

const PLANS: Record<TelemetryTable, Plan> = {
  requests: compile(REQUEST_SPEC),
  metric_points: compile(METRIC_POINT_SPEC),
  session_events: compile(SESSION_EVENT_SPEC),
};

/**
 * Repairs a request row in place so that ClickHouse accepts every value (by {@link REQUEST_SPEC}
 * and the rules at the top of this module); returns how many values were repaired, 0 when the row
 * was valid.
 */
export function sanitizeRequestRow(row: RequestRow): number {
  return run(PLANS.requests, row as unknown as Record<string, unknown>);
}

/**
 * Repairs a metric point row in place so that ClickHouse accepts every value (by
 * {@link METRIC_POINT_SPEC} and the rules at the top of this module); returns how many values were
 * repaired, 0 when the row was valid.
 */
export function sanitizeMetricPointRow(row: MetricPointRow): number {
  return run(PLANS.metric_points, row as unknown as Record<string, unknown>);
}

/**
 * Repairs a session event row in place (by {@link SESSION_EVENT_SPEC}); returns how many values were
 * repaired, 0 when the row was valid.
 */
export function sanitizeSessionEventRow(row: SessionEventRow): number {
  return run(PLANS.session_events, row as unknown as Record<string, unknown>);
}

/** Repairs a row of any telemetry table in place, by the table's spec. */
export function sanitizeRow(table: TelemetryTable, row: object): number {
  return run(PLANS[table], row as Record<string, unknown>);
}

function run(plan: Plan, row: Record<string, unknown>): number {
  let repaired = plan.bounds ? histogramShape(plan, row) : 0;
  const steps = plan.steps;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    const value = row[step.name];
    switch (step.op) {
      case STRING:
        if (typeof value === 'string' && value.length <= step.maxLength && value.isWellFormed()) continue;
        row[step.name] = repairString(value, step.maxLength);
        break;
      case INT:
        if (typeof value === 'number' && validInt(value, step.min, step.max)) continue;
        row[step.name] = repairInt(value, step);
        break;
      case FLOAT:
        if (typeof value === 'number' && value - value === 0 && value >= step.min) continue;
        row[step.name] = repairFloat(value, step.min);
        break;
      case TIME:
        if (typeof value === 'string' && validTime(value)) continue;
        row[step.name] = repairTime(value, step.fallback ? row[step.fallback] : undefined);
        break;
      case FLOATS:
      case COUNTS: {
        // histogramShape left the bounds, if an array, finite: no need to walk them again.
        if (step.name === plan.bounds && Array.isArray(value)) continue;
        const next = repairArray(value, step);
        if (next === value) continue;
        row[step.name] = next;
        break;
      }
    }
    repaired++;
  }
  return repaired;
}

/** Empties a histogram's bounds and counts unless they describe a distribution. */
function histogramShape(plan: Plan, row: Record<string, unknown>): number {
  const bounds = row[plan.bounds];
  const counts = row[plan.counts];
  const b = Array.isArray(bounds) ? (bounds as unknown[]) : EMPTY;
  const c = Array.isArray(counts) ? (counts as unknown[]) : EMPTY;
  let ok = c.length === 0 || c.length === b.length + 1;
  let previous = -Infinity;
  for (let i = 0; ok && i < b.length; i++) {
    const bound = b[i];
    ok = typeof bound === 'number' && bound > previous && bound < Infinity;
    previous = bound as number;
  }
  if (ok) return 0;
  let repaired = 0;
  if (b.length > 0) {
    row[plan.bounds] = [];
    repaired++;
  }
  if (c.length > 0) {
    row[plan.counts] = [];
    repaired++;
  }
  return repaired;
}

const EMPTY: readonly unknown[] = [];

function repairString(value: unknown, maxLength: number): string {
  if (typeof value !== 'string') return '';
  let s = value;
  if (s.length > maxLength) {
    let end = maxLength;
    const last = s.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--; // keep a pair whole: drop its first half
    s = s.slice(0, end);
  }
  return s.isWellFormed() ? s : s.toWellFormed();
}

function validInt(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && ((value >= min && value <= max) || value === 0);
}

function repairInt(value: unknown, step: Step): number {
  const n = toNumber(value);
  if (Number.isNaN(n)) return 0;
  const int = Math.trunc(n) || 0; // -0.5 → 0, not -0
  if ((int >= step.min && int <= step.max) || int === 0) return int;
  if (!step.clamp) return 0;
  return int < step.min ? step.min : step.max;
}

function repairFloat(value: unknown, min: number): number {
  const n = toNumber(value);
  if (!Number.isFinite(n)) return 0;
  return n < min ? min : n;
}

function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value); // JSON.stringify would throw on it
  return NaN;
}

/** The array itself when every element is valid, else a repaired copy. */
function repairArray(value: unknown, step: Step): unknown[] {
  if (!Array.isArray(value)) return [];
  const a = value as unknown[];
  const counts = step.op === COUNTS;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (typeof v === 'number' && (counts ? validInt(v, 0, MAX_UINT64) : v - v === 0)) continue;
    const copy = a.slice();
    for (let j = i; j < copy.length; j++) {
      const w = copy[j];
      if (counts) {
        if (!(typeof w === 'number' && validInt(w, 0, MAX_UINT64))) copy[j] = repairInt(w, step);
      } else if (!(typeof w === 'number' && w - w === 0)) {
        copy[j] = repairFloat(w, -Infinity);
      }
    }
    return copy;
  }
  return a;
}

// Times. The collector writes `toISOString` text; anything else takes the slow path.
const DAYS_IN_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const DIGIT_POSITIONS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];

function digits(s: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + s.charCodeAt(i) - 48;
  return n;
}

/** `YYYY-MM-DDTHH:MM:SS.sssZ`, a real calendar time, in [MIN_TIME, MAX_TIME]. */
function validTime(s: string): boolean {
  if (s.length !== 24 || s < MIN_TIME || s > MAX_TIME) return false;
  if (
    s.charCodeAt(4) !== 45 || // -
    s.charCodeAt(7) !== 45 ||
    s.charCodeAt(10) !== 84 || // T
    s.charCodeAt(13) !== 58 || // :
    s.charCodeAt(16) !== 58 ||
    s.charCodeAt(19) !== 46 || // .
    s.charCodeAt(23) !== 90 // Z
  ) {
    return false;
  }
  for (let i = 0; i < DIGIT_POSITIONS.length; i++) {
    const c = s.charCodeAt(DIGIT_POSITIONS[i]!);
    if (c < 48 || c > 57) return false;
  }
  const month = digits(s, 5, 7);
  const day = digits(s, 8, 10);
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month]!) return false;
  if (month === 2 && day === 29 && !leapYear(digits(s, 0, 4))) return false;
  return digits(s, 11, 13) <= 23 && digits(s, 14, 16) <= 59 && digits(s, 17, 19) <= 59;
}

function leapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Milliseconds since the epoch of an RFC 3339 time in range (fraction truncated), else undefined. */
function parseTime(value: unknown): number | undefined {
  if (typeof value !== 'string' || value.length > 40) return undefined;
  const m = RFC3339.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // Years outside DateTime's (offsets move a time by less than a day) also keep Date.UTC's 0–99 → 1900s away.
  if (year < 1969 || year > 2106) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month]!) return undefined;
  if (month === 2 && day === 29 && !leapYear(year)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (m[9]) {
    const offsetHours = Number(m[10]);
    const offsetMins = Number(m[11]);
    if (offsetHours > 23 || offsetMins > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMins);
  }
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
  return ms >= MIN_TIME_MS && ms <= MAX_TIME_MS ? ms : undefined;
}

function repairTime(value: unknown, fallback: unknown): string {
  const ms = parseTime(value);
  if (ms !== undefined) return new Date(ms).toISOString();
  if (typeof fallback === 'string' && validTime(fallback)) return fallback;
  const fallbackMs = parseTime(fallback);
  return new Date(fallbackMs ?? Date.now()).toISOString();
}
