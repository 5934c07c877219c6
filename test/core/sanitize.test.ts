import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isoTime } from '#collector/mapping.ts';
import { DEFAULT_MAX_ATTRIBUTE_LENGTH } from '#core/telemetry/naming.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import {
  MAX_LOWCARD_LENGTH,
  MAX_STRING_LENGTH,
  MAX_TIME,
  MAX_UINT64,
  METRIC_POINT_SPEC,
  MIN_TIME,
  REQUEST_SPEC,
  SESSION_EVENT_SPEC,
  sanitizeMetricPointRow,
  sanitizeRequestRow,
  sanitizeRow,
  sanitizeSessionEventRow,
  TABLE_SPECS,
  type ColumnSpec,
} from '#core/warehouse/sanitize.ts';
import { rowsOf } from './sanitize-arbitraries.ts';

// Rows as the tests hand them to the sanitizer: any value in any column.
type Loose = Record<string, unknown>;

function makeRequestRow(overrides: Partial<RequestRow> = {}): RequestRow {
  return {
    org_id: 'org-1',
    server: 'weather',
    environment: 'production',
    version: '1.2.0',
    operation: 'tools/call forecast',
    time: '2026-03-01T10:00:00.123Z',
    duration_ms: 12.5,
    error: 1,
    error_type: 'tool_error',
    http_status: 200,
    mcp_method: 'tools/call',
    tool: 'forecast',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    span_id: '00f067aa0ba902b7',
    session_id: 'sess-1',
    source: 'otlp',
    client_key: '',
    counted: 1,
    ...overrides,
  };
}

function makeSessionEventRow(overrides: Partial<SessionEventRow> = {}): SessionEventRow {
  return {
    org_id: 'org-1',
    server: 'weather',
    environment: 'production',
    version: '1.2.0',
    session_id: 'sess-1',
    time: '2026-03-01T10:00:00.123Z',
    event: 'end',
    reason: 'idle',
    client_key: 'c1',
    source: 'gateway',
    ...overrides,
  };
}

function makeMetricPointRow(overrides: Partial<MetricPointRow> = {}): MetricPointRow {
  return {
    org_id: 'org-1',
    server: 'weather',
    environment: 'production',
    version: '1.2.0',
    operation: 'GET /items/{id}',
    metric: 'http.server.request.duration',
    unit: 's',
    kind: 'histogram',
    start_time: '2026-03-01T10:00:00.000Z',
    time: '2026-03-01T10:01:00.000Z',
    count: 6,
    sum: 1.25,
    value: 0,
    bounds: [0.005, 0.01, 0.1],
    bucket_counts: [1, 2, 3, 0],
    ...overrides,
  };
}

const request = (overrides: Loose) => makeRequestRow(overrides as Partial<RequestRow>);
const point = (overrides: Loose) => makeMetricPointRow(overrides as Partial<MetricPointRow>);

afterEach(() => {
  vi.useRealTimers();
});

const NOW = '2026-06-15T12:34:56.789Z';
function freezeClock(): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(NOW));
}

describe('valid rows', () => {
  it('leaves a valid request row untouched and reports no repair', () => {
    const row = makeRequestRow();
    const before = structuredClone(row);
    expect(sanitizeRequestRow(row)).toBe(0);
    expect(row).toStrictEqual(before);
  });

  it('leaves a valid metric point untouched, arrays included (the same arrays, not copies)', () => {
    const row = makeMetricPointRow();
    const { bounds, bucket_counts } = row;
    expect(sanitizeMetricPointRow(row)).toBe(0);
    expect(row.bounds).toBe(bounds);
    expect(row.bucket_counts).toBe(bucket_counts);
    expect(row).toStrictEqual(makeMetricPointRow());
  });

  it('accepts the edges of every range', () => {
    const edges = [
      request({ http_status: 0, error: 0, duration_ms: 0, time: MIN_TIME }),
      request({ http_status: 100, duration_ms: -0, time: MAX_TIME }),
      request({ http_status: 599, duration_ms: Number.MAX_VALUE, time: '2024-02-29T23:59:59.999Z' }),
      request({ operation: 'x'.repeat(MAX_LOWCARD_LENGTH), session_id: 'y'.repeat(MAX_STRING_LENGTH) }),
      request({ tool: '\u0000nul\u0000', error_type: '😀 ok', mcp_method: '' }),
    ];
    for (const row of edges) expect(sanitizeRequestRow(row)).toBe(0);
    const points = [
      point({ count: MAX_UINT64, bucket_counts: [0, MAX_UINT64, 0, 0], sum: -1e308, value: 5e-324 }),
      point({ kind: 'gauge', bounds: [], bucket_counts: [], value: -3 }),
      point({ bounds: [], bucket_counts: [7] }),
      // OTLP allows a histogram point without buckets; the collector keeps its bounds.
      point({ bucket_counts: [] }),
    ];
    for (const row of points) expect(sanitizeMetricPointRow(row)).toBe(0);
  });

  it('leaves every time the collector writes alone', () => {
    for (const nanos of [1n, 1_700_000_000_123_456_789n, 4_294_967_295_999_000_000n]) {
      expect(sanitizeRequestRow(request({ time: isoTime(nanos) }))).toBe(0);
    }
  });
});

describe('strings', () => {
  it('replaces lone surrogates with U+FFFD and keeps surrogate pairs', () => {
    const row = request({
      error_type: '\ud800',
      tool: 'a\udc00b',
      session_id: '\udbff\ud800\udc00',
      server: 'ok 😀',
    });
    expect(sanitizeRequestRow(row)).toBe(3);
    expect(row.error_type).toBe('\ufffd');
    expect(row.tool).toBe('a\ufffdb');
    expect(row.session_id).toBe('\ufffd\ud800\udc00');
    expect(row.server).toBe('ok 😀');
  });

  it('repairs a lone surrogate in every string column of both tables', () => {
    for (const spec of [REQUEST_SPEC, METRIC_POINT_SPEC]) {
      const names = Object.entries(spec.columns as Record<string, ColumnSpec>)
        .filter(([, c]) => c.kind === 'string' || c.kind === 'lowcard')
        .map(([name]) => name);
      const poison = Object.fromEntries(names.map((name) => [name, `${name}\udfff`]));
      const row = spec === REQUEST_SPEC ? request(poison) : point(poison);
      const repaired =
        spec === REQUEST_SPEC
          ? sanitizeRequestRow(row as RequestRow)
          : sanitizeMetricPointRow(row as MetricPointRow);
      expect(repaired).toBe(names.length);
      for (const name of names) expect((row as unknown as Loose)[name]).toBe(`${name}\ufffd`);
    }
  });

  it('cuts LowCardinality columns at the collector’s attribute cap and String columns at a longer one', () => {
    expect(MAX_STRING_LENGTH).toBeGreaterThan(MAX_LOWCARD_LENGTH);
    const row = request({ operation: 'o'.repeat(10_000), session_id: 's'.repeat(10_000_000) });
    expect(sanitizeRequestRow(row)).toBe(2);
    expect(row.operation).toBe('o'.repeat(DEFAULT_MAX_ATTRIBUTE_LENGTH));
    expect(row.session_id).toBe('s'.repeat(MAX_STRING_LENGTH));
  });

  it('does not split a surrogate pair at the cut', () => {
    const row = request({ tool: `${'a'.repeat(MAX_LOWCARD_LENGTH - 1)}😀tail` });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.tool).toBe('a'.repeat(MAX_LOWCARD_LENGTH - 1));
    const whole = request({ tool: `${'a'.repeat(MAX_LOWCARD_LENGTH - 2)}😀tail` });
    sanitizeRequestRow(whole);
    expect(whole.tool).toBe(`${'a'.repeat(MAX_LOWCARD_LENGTH - 2)}😀`);
  });

  it('counts a value both too long and not well-formed once', () => {
    const row = request({ operation: `\ud800${'x'.repeat(MAX_LOWCARD_LENGTH)}` });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.operation).toBe(`\ufffd${'x'.repeat(MAX_LOWCARD_LENGTH - 1)}`);
  });

  it('keeps NUL and control characters, which ClickHouse Strings hold', () => {
    const row = request({ tool: 'a\u0000b\u0001\n\u007f' });
    expect(sanitizeRequestRow(row)).toBe(0);
    expect(row.tool).toBe('a\u0000b\u0001\n\u007f');
  });

  it('turns a value that is not a string into the empty string', () => {
    const row = request({ tool: 42, mcp_method: null, session_id: undefined, error_type: { a: 1 } });
    expect(sanitizeRequestRow(row)).toBe(4);
    expect([row.tool, row.mcp_method, row.session_id, row.error_type]).toEqual(['', '', '', '']);
  });
});

describe('integers', () => {
  it.each([
    [-1, 0],
    [70_000, 0],
    [65_536, 0],
    [99, 0],
    [600, 0],
    [1e21, 0],
    [NaN, 0],
    [Infinity, 0],
    [-Infinity, 0],
    [200.9, 200],
    [404.0001, 404],
    [599.5, 599],
  ])('stores http_status %s as %s (outside 100–599 is absent)', (value, expected) => {
    const row = request({ http_status: value });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.http_status).toBe(expected);
  });

  it.each([
    [2, 1],
    [256, 1],
    [Infinity, 1],
    [-1, 0],
    [-Infinity, 0],
    [0.7, 0],
    [1.5, 1],
    [NaN, 0],
  ])('clamps the error flag %s to %s', (value, expected) => {
    const row = request({ error: value });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.error).toBe(expected);
  });

  it.each([
    [-1, 0],
    [-0.5, 0],
    [1.5, 1],
    [2 ** 64, 0],
    [1e21, 0],
    [NaN, 0],
    [Infinity, 0],
    [7n, 7],
    ['3', 0],
  ])('stores the count %s as %s (negative or past UInt64 is absent)', (value, expected) => {
    const row = point({ count: value });
    expect(sanitizeMetricPointRow(row)).toBe(1);
    expect(Object.is(row.count, expected)).toBe(true);
  });

  it('repairs bucket counts element by element in a new array, leaving the shared one alone', () => {
    const shared = [1, -2, 2.5, 2 ** 64];
    const row = point({ bucket_counts: shared });
    expect(sanitizeMetricPointRow(row)).toBe(1);
    expect(row.bucket_counts).toEqual([1, 0, 2, 0]);
    expect(shared).toEqual([1, -2, 2.5, 2 ** 64]);
  });
});

describe('floats', () => {
  it.each([NaN, Infinity, -Infinity, -5, -Number.MIN_VALUE])('stores duration_ms %s as 0', (value) => {
    const row = request({ duration_ms: value });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.duration_ms).toBe(0);
  });

  it('stores non-finite sums and values as 0 and keeps negative ones', () => {
    const row = point({ sum: -Infinity, value: NaN });
    expect(sanitizeMetricPointRow(row)).toBe(2);
    expect([row.sum, row.value]).toEqual([0, 0]);
    const negative = point({ kind: 'gauge', sum: -2, value: -2, bounds: [], bucket_counts: [] });
    expect(sanitizeMetricPointRow(negative)).toBe(0);
  });

  it('turns a bigint into a number, which JSON.stringify can write', () => {
    const row = point({ sum: 5n, value: 10n ** 400n });
    expect(sanitizeMetricPointRow(row)).toBe(2);
    expect([row.sum, row.value]).toEqual([5, 0]);
    expect(() => JSON.stringify(row)).not.toThrow();
  });
});

describe('times', () => {
  it.each([
    ['2026-03-01T12:00:00+02:00', '2026-03-01T10:00:00.000Z'],
    ['2026-03-01T10:00:00Z', '2026-03-01T10:00:00.000Z'],
    ['2026-03-01t10:00:00.5z', '2026-03-01T10:00:00.500Z'],
    ['2026-03-01 10:00:00.123456789Z', '2026-03-01T10:00:00.123Z'],
    ['1969-12-31T23:30:00-01:00', '1970-01-01T00:30:00.000Z'],
    ['2026-03-01T00:00:00.000-00:30', '2026-03-01T00:30:00.000Z'],
  ])('rewrites the RFC 3339 time %s as %s', (time, expected) => {
    const row = request({ time });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.time).toBe(expected);
  });

  it.each([
    'not a time',
    '',
    '1',
    '1714557600000',
    '2026-02-29T00:00:00.000Z',
    '2026-13-01T00:00:00.000Z',
    '2026-04-31T00:00:00.000Z',
    '2026-03-01T24:00:00.000Z',
    '2026-03-01T10:00:60.000Z',
    '2026-03-01T10:00:00.000+24:00',
    '1969-12-31T23:59:59.999Z',
    '1899-12-31T23:59:59.999Z',
    '0075-01-01T00:00:00.000Z',
    '2106-02-07T06:28:16.000Z',
    '2300-01-01T00:00:00.000Z',
    '+275760-09-13T00:00:00.000Z',
    '2026-03-01',
    '2026-03-01T10:00:00.000Z ',
  ])('places the unusable time %j at now', (time) => {
    freezeClock();
    const row = request({ time });
    expect(sanitizeRequestRow(row)).toBe(1);
    expect(row.time).toBe(NOW);
  });

  it('places a time that is not a string at now', () => {
    freezeClock();
    for (const time of [1_714_557_600_000, null, undefined, new Date()]) {
      const row = request({ time });
      expect(sanitizeRequestRow(row)).toBe(1);
      expect(row.time).toBe(NOW);
    }
  });

  it('starts a metric point without a usable start at its time', () => {
    freezeClock();
    const row = point({ start_time: 'garbage' });
    expect(sanitizeMetricPointRow(row)).toBe(1);
    expect(row.start_time).toBe(row.time);
    const both = point({ start_time: '1800-01-01T00:00:00.000Z', time: '2026-03-01T12:00:00+01:00' });
    expect(sanitizeMetricPointRow(both)).toBe(2);
    expect([both.start_time, both.time]).toEqual(['2026-03-01T11:00:00.000Z', '2026-03-01T11:00:00.000Z']);
    const neither = point({ start_time: '', time: 'x' });
    expect(sanitizeMetricPointRow(neither)).toBe(2);
    expect([neither.start_time, neither.time]).toEqual([NOW, NOW]);
  });
});

describe('histograms', () => {
  it.each([
    ['a NaN bound', [0.1, NaN], [1, 2, 3]],
    ['an infinite bound', [0.1, Infinity], [1, 2, 3]],
    ['bounds that are not increasing', [0.1, 0.1], [1, 2, 3]],
    ['decreasing bounds', [1, 0.5], [1, 2, 3]],
    ['too few counts', [0.1, 0.2], [1, 2]],
    ['too many counts', [0.1], [1, 2, 3, 4]],
    ['counts without bounds', [], [1, 2]],
    ['a bound that is not a number', [0.1, '0.2'], [1, 2, 3]],
  ])('empties bounds and counts with %s', (_why, bounds, counts) => {
    const row = point({ bounds, bucket_counts: counts });
    expect(sanitizeMetricPointRow(row)).toBe(bounds.length > 0 ? 2 : 1);
    expect(row.bounds).toEqual([]);
    expect(row.bucket_counts).toEqual([]);
    expect([row.count, row.sum]).toEqual([6, 1.25]);
  });

  it('turns arrays that are not arrays into empty ones', () => {
    const row = point({ bounds: null, bucket_counts: 'x' });
    expect(sanitizeMetricPointRow(row)).toBe(2);
    expect([row.bounds, row.bucket_counts]).toEqual([[], []]);
  });

  it('keeps a valid shape and repairs only the counts in it', () => {
    const row = point({ bounds: [1, 2], bucket_counts: [NaN, -1, 3] });
    expect(sanitizeMetricPointRow(row)).toBe(1);
    expect(row.bounds).toEqual([1, 2]);
    expect(row.bucket_counts).toEqual([0, 0, 3]);
  });
});

describe('the column specs', () => {
  const kindOf: Record<string, ColumnSpec['kind']> = {
    'LowCardinality(String)': 'lowcard',
    String: 'string',
    UInt8: 'uint8',
    UInt16: 'uint16',
    UInt64: 'uint64',
    Float64: 'float64',
    "DateTime64(3, 'UTC')": 'datetime64',
    'Array(Float64)': 'float64[]',
    'Array(UInt64)': 'uint64[]',
  };

  const migrations = fs
    .readdirSync(path.join(import.meta.dirname, '../../core/warehouse/migrations'))
    .sort()
    .map((file) =>
      fs.readFileSync(path.join(import.meta.dirname, '../../core/warehouse/migrations', file), 'utf8'),
    );

  /** A table's columns as the migrations leave it: created, then added to (defaults left out). */
  function migrationColumns(table: string): [string, ColumnSpec['kind'] | undefined][] {
    const column = (line: string) => {
      const [, name, type] = line.trim().match(/^(\w+) (.+?)(?: DEFAULT .*)?$/)!;
      return [name!, kindOf[type!]] as [string, ColumnSpec['kind'] | undefined];
    };
    const columns: [string, ColumnSpec['kind'] | undefined][] = [];
    for (const sql of migrations) {
      const created = sql.split(`CREATE TABLE IF NOT EXISTS ${table} (`)[1]?.split(') ENGINE')[0];
      if (created) columns.push(...created.split(',\n').map(column));
      const added = new RegExp(`^ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS (.+);$`, 'gm');
      for (const [, line] of sql.matchAll(added)) columns.push(column(line!));
    }
    return columns;
  }

  it('names every column of the tables, in order, with the kind of its ClickHouse type', () => {
    for (const spec of Object.values(TABLE_SPECS)) {
      const columns = Object.entries(spec.columns as Record<string, ColumnSpec>).map(
        ([name, c]) => [name, c.kind] as const,
      );
      expect(columns).toEqual(migrationColumns(spec.table));
    }
  });

  it('sanitizes by table name too', () => {
    const row = request({ http_status: -1 });
    expect(TABLE_SPECS.requests).toBe(REQUEST_SPEC);
    expect(sanitizeRow('requests', row)).toBe(1);
    expect(sanitizeRow('metric_points', point({ count: -1 }))).toBe(1);
    expect(sanitizeRow('metric_points', makeMetricPointRow())).toBe(0);
    expect(TABLE_SPECS.session_events).toBe(SESSION_EVENT_SPEC);
    expect(sanitizeRow('session_events', makeSessionEventRow({ time: 'soon' } as never))).toBe(1);
    expect(sanitizeRow('session_events', makeSessionEventRow())).toBe(0);
  });

  it('covers exactly the properties of the row types', () => {
    expect(Object.keys(REQUEST_SPEC.columns)).toEqual(Object.keys(makeRequestRow()));
    expect(Object.keys(METRIC_POINT_SPEC.columns)).toEqual(Object.keys(makeMetricPointRow()));
    expect(Object.keys(SESSION_EVENT_SPEC.columns)).toEqual(Object.keys(makeSessionEventRow()));
  });

  it('keeps counted a flag and the source as written', () => {
    const row = request({ counted: 2, source: 'gateway', client_key: 'k'.repeat(MAX_STRING_LENGTH + 1) });
    expect(sanitizeRequestRow(row)).toBe(2);
    expect([row.counted, row.source, row.client_key.length]).toEqual([1, 'gateway', MAX_STRING_LENGTH]);
    expect(sanitizeRequestRow(request({ counted: -1 }))).toBe(1);
  });
});

// ---- Properties --------------------------------------------------------------------------------

/** An independent definition of "ClickHouse stores this value as it is" for each column kind. */
function validValue(spec: ColumnSpec, value: unknown): boolean {
  switch (spec.kind) {
    case 'string':
    case 'lowcard':
      // Only well-formed UTF-16 survives a round trip through UTF-8.
      return (
        typeof value === 'string' &&
        value.length <= spec.maxLength &&
        Buffer.from(value, 'utf8').toString('utf8') === value
      );
    case 'uint8':
    case 'uint16':
    case 'uint64': {
      if (typeof value !== 'number' || !Number.isInteger(value)) return false;
      const text = JSON.stringify(value);
      if (!/^\d+$/.test(text)) return false; // ClickHouse parses neither a sign nor an exponent here
      const n = BigInt(text);
      const top = { uint8: 255n, uint16: 65_535n, uint64: 2n ** 64n - 1n }[spec.kind];
      return n <= top && (value === 0 || (value >= spec.min && value <= spec.max));
    }
    case 'float64':
      return typeof value === 'number' && Number.isFinite(value) && value >= (spec.min ?? -Infinity);
    case 'datetime64': {
      if (typeof value !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(value)) return false;
      const ms = new Date(value).getTime();
      return (
        new Date(ms).toISOString() === value &&
        ms >= Date.UTC(1970, 0, 1) &&
        ms <= Date.UTC(2106, 1, 7, 6, 28, 15, 999)
      );
    }
    case 'float64[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v));
    case 'uint64[]':
      return (
        Array.isArray(value) &&
        value.every((v) => validValue({ kind: 'uint64', min: 0, max: 2 ** 64, outOfRange: 'absent' }, v))
      );
  }
}

function validRow(spec: (typeof TABLE_SPECS)[keyof typeof TABLE_SPECS], row: Loose): boolean {
  for (const [name, column] of Object.entries(spec.columns as Record<string, ColumnSpec>)) {
    if (!validValue(column, row[name])) return false;
  }
  if (spec === METRIC_POINT_SPEC) {
    const bounds = row.bounds as number[];
    const counts = row.bucket_counts as number[];
    if (counts.length !== 0 && counts.length !== bounds.length + 1) return false;
    if (bounds.some((b, i) => i > 0 && !(b > bounds[i - 1]!))) return false;
  }
  return !/\\ud[89a-f]/i.test(JSON.stringify(row));
}

/** Columns whose value changed, arrays element by element. */
function changedColumns(before: Loose, after: Loose): number {
  let changed = 0;
  for (const key of Object.keys(after)) {
    const a = before[key];
    const b = after[key];
    if (Array.isArray(a) && Array.isArray(b)) {
      if (a.length !== b.length || a.some((v, i) => !Object.is(v, b[i]))) changed++;
    } else if (!Object.is(a, b)) {
      changed++;
    }
  }
  return changed;
}

const char = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)) },
);
const shortString = fc.string({ unit: char, maxLength: 24 });
/** Strings around the caps, with a pair or a lone surrogate near the cut. */
const longString = fc
  .tuple(
    fc.constantFrom(MAX_LOWCARD_LENGTH, MAX_STRING_LENGTH),
    fc.integer({ min: -3, max: 3 }),
    fc.constantFrom('😀', '\ud800', '\udc00', 'x'),
    shortString,
  )
  .map(([cap, delta, middle, tail]) => `${'a'.repeat(cap + delta)}${middle}${tail}`);
/** Anything at all: what a buggy caller might put in a column. */
const junk = fc.constantFrom<unknown>(
  null,
  undefined,
  true,
  {},
  [],
  12n,
  -3n,
  2n ** 80n,
  'text',
  Symbol.for('s'),
);
const anyString = fc.oneof(
  { weight: 8, arbitrary: shortString },
  { weight: 1, arbitrary: longString },
  { weight: 1, arbitrary: junk },
);

const anyNumber = fc.oneof(
  { weight: 4, arbitrary: fc.double() },
  { weight: 4, arbitrary: fc.integer({ min: -1000, max: 100_000 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      -0,
      0,
      1,
      200,
      599,
      600,
      65_535,
      65_536,
      2 ** 53,
      2 ** 64 - 2048,
      2 ** 64,
      1e21,
      NaN,
      Infinity,
      -Infinity,
      Number.MIN_VALUE,
      -1,
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: -(2 ** 30), max: 2 ** 30 }).map((n) => n / 7) },
  { weight: 1, arbitrary: junk },
);

const MIN_MS = Date.UTC(1970, 0, 1);
const MAX_MS = Date.UTC(2106, 1, 7, 6, 28, 15, 999);
const inRangeMs = fc.integer({ min: MIN_MS, max: MAX_MS });
const anyTime = fc.oneof(
  { weight: 3, arbitrary: inRangeMs.map((ms) => new Date(ms).toISOString()) },
  // Outside DateTime's range, up to JavaScript's own limits (six-digit and negative years).
  {
    weight: 2,
    arbitrary: fc.integer({ min: -8.64e15, max: 8.64e15 }).map((ms) => new Date(ms).toISOString()),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(inRangeMs, fc.constantFrom('Z', '+02:00', '-11:30', 'z'), fc.constantFrom('T', ' ', 't'))
      .map(
        ([ms, zone, sep]) =>
          new Date(ms).toISOString().replace('T', sep).replace('.', '.123').slice(0, -1) + zone,
      ),
  },
  { weight: 2, arbitrary: fc.string({ unit: char, maxLength: 30 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 0, max: 9999 }),
        fc.integer({ min: 0, max: 99 }),
        fc.integer({ min: 0, max: 99 }),
        fc.integer({ min: 0, max: 99 }),
      )
      .map(
        ([y, mo, d, h]) =>
          `${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:00:00.000Z`,
      ),
  },
  { weight: 1, arbitrary: junk },
);

const validBounds = fc
  .uniqueArray(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 6 })
  .map((b) => b.sort((x, y) => x - y));
const histogramArrays = fc.oneof(
  validBounds.chain((bounds) =>
    fc.tuple(
      fc.constant(bounds),
      fc.array(anyNumber, { minLength: bounds.length + 1, maxLength: bounds.length + 1 }),
    ),
  ),
  fc.tuple(fc.array(anyNumber, { maxLength: 6 }), fc.array(anyNumber, { maxLength: 7 })),
  fc.tuple(fc.oneof(junk, validBounds), fc.oneof(junk, fc.constant([]))),
);

const poisonRequestRow = rowsOf(REQUEST_SPEC, { string: anyString, number: anyNumber, time: anyTime });
const poisonSessionEventRow = rowsOf(SESSION_EVENT_SPEC, {
  string: anyString,
  number: anyNumber,
  time: anyTime,
});
const poisonMetricPointRow = rowsOf(METRIC_POINT_SPEC, {
  string: anyString,
  number: anyNumber,
  time: anyTime,
  histogram: histogramArrays,
  columns: { kind: fc.oneof(fc.constantFrom('histogram', 'gauge', 'sum'), anyString) },
});

describe('properties', () => {
  const tables = [
    ['request rows', REQUEST_SPEC, poisonRequestRow, (row: Loose) => sanitizeRequestRow(row as never)],
    [
      'metric points',
      METRIC_POINT_SPEC,
      poisonMetricPointRow,
      (row: Loose) => sanitizeMetricPointRow(row as never),
    ],
    [
      'session events',
      SESSION_EVENT_SPEC,
      poisonSessionEventRow,
      (row: Loose) => sanitizeSessionEventRow(row as never),
    ],
  ] as const;

  for (const [label, spec, rows, sanitize] of tables) {
    it(`makes any of the ${label} valid, counting each changed value once, and is idempotent`, () => {
      fc.assert(
        fc.property(rows, (row) => {
          const before = { ...row };
          const repaired = sanitize(row);
          expect(validRow(spec, row)).toBe(true);
          expect(repaired).toBe(changedColumns(before, row));
          const again = { ...row };
          expect(sanitize(row)).toBe(0);
          expect(changedColumns(again, row)).toBe(0);
        }),
        { numRuns: 2000 },
      );
    });

    it(`leaves ${label} that are already valid untouched`, () => {
      fc.assert(
        fc.property(rows, (row) => {
          sanitize(row);
          // A fresh copy (fc.record's rows have no prototype): nothing is shared with the first pass.
          const valid = structuredClone(row);
          expect(sanitize(valid)).toBe(0);
          expect(valid).toEqual(row);
        }),
        { numRuns: 500 },
      );
    });
  }
});
