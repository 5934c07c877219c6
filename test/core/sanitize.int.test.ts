import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertRows } from '#core/warehouse/batch-insert.ts';
import { openWarehouse, type Warehouse } from '#core/warehouse/client.ts';
import { migrateWarehouse } from '#core/warehouse/migrate.ts';
import { encodeRow } from '#core/warehouse/row-encoding.ts';
import type { MetricPointRow, RequestRow } from '#core/warehouse/rows.ts';
import {
  MAX_LOWCARD_LENGTH,
  MAX_STRING_LENGTH,
  MAX_TIME,
  MAX_UINT64,
  METRIC_POINT_SPEC,
  REQUEST_SPEC,
  SESSION_EVENT_SPEC,
  sanitizeMetricPointRow,
  sanitizeRequestRow,
  sanitizeRow,
} from '#core/warehouse/sanitize.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { rowsOf } from './sanitize-arbitraries.ts';

// chDB binds one data directory per process: one warehouse for the whole file.
let dir: string;
let warehouse: Warehouse;

beforeAll(async () => {
  dir = tempDir('pylee-sanitize');
  warehouse = await openWarehouse({ dataDir: dir });
  await migrateWarehouse(warehouse);
});

afterAll(async () => {
  await warehouse?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Table = 'requests' | 'metric_points' | 'session_events';
type Format = 'JSONEachRow' | 'writer';
const FORMATS: readonly Format[] = ['JSONEachRow', 'writer'];
type Loose = Record<string, unknown>;

/**
 * An insert of JSONEachRow objects (as Pylee wrote before row-encoding.ts, and still replays from an
 * older spool), a dedup token, best-effort times; with `format: 'writer'`, exactly as the telemetry
 * writer inserts now (JSONCompactEachRow lines through batch-insert.ts).
 */
async function insert(table: Table, rows: readonly object[], format: Format = 'JSONEachRow'): Promise<void> {
  if (format === 'writer') {
    await insertRows(warehouse, table, randomUUID(), rows.map((row) => encodeRow(table, row)).join(''));
    return;
  }
  let body = '';
  for (const row of rows) body += `${JSON.stringify(row)}\n`;
  const result = await warehouse.client.exec({
    query: `INSERT INTO ${table} SETTINGS insert_deduplication_token = {token:String}, date_time_input_format = 'best_effort' FORMAT JSONEachRow`,
    query_params: { token: randomUUID() },
    values: Readable.from([body]),
  });
  result.stream.resume();
  await finished(result.stream);
}

/** `{ code, type }` of the ClickHouse error an insert fails with, or undefined when it succeeds. */
async function refusal(
  table: Table,
  rows: readonly object[],
  format: Format = 'JSONEachRow',
): Promise<{ code: string; type: string } | undefined> {
  try {
    await insert(table, rows, format);
    return undefined;
  } catch (error) {
    const { code, type } = error as { code?: unknown; type?: unknown };
    return { code: String(code), type: String(type) };
  }
}

async function select<T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

// Recent times: rows older than the 7-day TTL are dropped as they are inserted.
const recent = () => new Date(Date.now() - 60_000).toISOString();

function requestRow(org: string, overrides: Loose = {}): Loose {
  return {
    org_id: org,
    server: 'weather',
    environment: 'production',
    version: '1.2.0',
    operation: 'tools/call forecast',
    time: recent(),
    duration_ms: 12.5,
    error: 0,
    error_type: '',
    http_status: 200,
    mcp_method: 'tools/call',
    tool: 'forecast',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    span_id: '00f067aa0ba902b7',
    session_id: '',
    source: 'otlp',
    client_key: '',
    counted: 1,
    ...overrides,
  };
}

function metricPointRow(org: string, overrides: Loose = {}): Loose {
  return {
    org_id: org,
    server: 'weather',
    environment: 'production',
    version: '1.2.0',
    operation: 'GET /items/{id}',
    metric: 'http.server.request.duration',
    unit: 's',
    kind: 'histogram',
    start_time: recent(),
    time: recent(),
    count: 3,
    sum: 0.5,
    value: 0,
    bounds: [0.1],
    bucket_counts: [2, 1],
    ...overrides,
  };
}

interface PoisonCase {
  name: string;
  table: Table;
  overrides: Loose;
  /** ClickHouse refuses the insert with this error. */
  refused?: { code: string; type: string };
  /** ClickHouse accepts it and stores this (an expression over the row's table, or a rollup's). */
  stored?: { from?: string; expr: string; value: unknown };
}

const refused = (code: string, type: string) => ({ code, type });

const POISON: PoisonCase[] = [
  {
    name: 'lone high surrogate, LowCardinality',
    table: 'requests',
    overrides: { error_type: '\ud800' },
    refused: refused('25', 'CANNOT_PARSE_ESCAPE_SEQUENCE'),
  },
  {
    name: 'lone high surrogate, String',
    table: 'requests',
    overrides: { session_id: 'x\udbff' },
    refused: refused('25', 'CANNOT_PARSE_ESCAPE_SEQUENCE'),
  },
  {
    name: 'reversed surrogate pair',
    table: 'requests',
    overrides: { tool: '\udc00\ud800' },
    refused: refused('25', 'CANNOT_PARSE_ESCAPE_SEQUENCE'),
  },
  {
    name: 'lone low surrogate (stored as invalid UTF-8)',
    table: 'requests',
    overrides: { tool: 'a\udc00b' },
    stored: { expr: 'hex(tool)', value: '61EDB08062' },
  },
  {
    name: 'http_status -1',
    table: 'requests',
    overrides: { http_status: -1 },
    refused: refused('72', 'CANNOT_PARSE_NUMBER'),
  },
  {
    name: 'http_status 200.5',
    table: 'requests',
    overrides: { http_status: 200.5 },
    refused: refused('27', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'),
  },
  {
    name: 'http_status 1e21 (JSON exponent)',
    table: 'requests',
    overrides: { http_status: 1e21 },
    refused: refused('27', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'),
  },
  {
    name: 'http_status 70000 (wraps)',
    table: 'requests',
    overrides: { http_status: 70_000 },
    stored: { expr: 'http_status', value: 70_000 - 65_536 },
  },
  {
    name: 'error -1',
    table: 'requests',
    overrides: { error: -1 },
    refused: refused('72', 'CANNOT_PARSE_NUMBER'),
  },
  { name: 'error 2', table: 'requests', overrides: { error: 2 }, stored: { expr: 'error', value: 2 } },
  {
    name: 'duration_ms NaN (JSON null)',
    table: 'requests',
    overrides: { duration_ms: NaN },
    stored: { expr: 'duration_ms', value: 0 },
  },
  {
    name: 'duration_ms Infinity (JSON null)',
    table: 'requests',
    overrides: { duration_ms: Infinity },
    stored: { expr: 'duration_ms', value: 0 },
  },
  {
    name: 'time unparsable',
    table: 'requests',
    overrides: { time: 'not a time' },
    refused: refused('41', 'CANNOT_PARSE_DATETIME'),
  },
  {
    name: 'time empty',
    table: 'requests',
    overrides: { time: '' },
    refused: refused('41', 'CANNOT_PARSE_DATETIME'),
  },
  {
    name: 'time 2026-02-30',
    table: 'requests',
    overrides: { time: '2026-02-30T00:00:00.000Z' },
    refused: refused('41', 'CANNOT_PARSE_DATETIME'),
  },
  {
    name: 'time with a six-digit year (toISOString past 9999)',
    table: 'requests',
    overrides: { time: '+275760-09-13T00:00:00.000Z' },
    refused: refused('41', 'CANNOT_PARSE_DATETIME'),
  },
  {
    name: 'time 1899 (rollup bucket wraps)',
    table: 'requests',
    overrides: { time: '1899-12-31T23:59:59.999Z' },
    stored: { from: 'requests_1m', expr: 'toString(time)', value: '2036-02-07 06:28:16' },
  },
  {
    name: 'string of 10 MB',
    table: 'requests',
    overrides: { session_id: 's'.repeat(10_000_000) },
    stored: { expr: 'length(session_id)', value: 10_000_000 },
  },
  {
    name: 'count -1',
    table: 'metric_points',
    overrides: { count: -1 },
    refused: refused('72', 'CANNOT_PARSE_NUMBER'),
  },
  {
    name: 'count 1.5',
    table: 'metric_points',
    overrides: { count: 1.5 },
    refused: refused('27', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'),
  },
  {
    name: 'count 1e21 (JSON exponent)',
    table: 'metric_points',
    overrides: { count: 1e21 },
    refused: refused('27', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'),
  },
  {
    name: 'count 2^64 (wraps)',
    table: 'metric_points',
    overrides: { count: 2 ** 64 },
    stored: { expr: 'toString(count)', value: '384' },
  },
  {
    name: 'count NaN (JSON null)',
    table: 'metric_points',
    overrides: { count: NaN },
    stored: { expr: 'count', value: 0 },
  },
  {
    name: 'bucket_counts [-1, 0]',
    table: 'metric_points',
    overrides: { bucket_counts: [-1, 0] },
    refused: refused('72', 'CANNOT_PARSE_NUMBER'),
  },
  {
    name: 'bucket_counts [1.5, 0]',
    table: 'metric_points',
    overrides: { bucket_counts: [1.5, 0] },
    refused: refused('130', 'CANNOT_READ_ARRAY_FROM_TEXT'),
  },
  {
    name: 'bucket_counts [NaN, 0] (JSON null)',
    table: 'metric_points',
    overrides: { bucket_counts: [NaN, 0] },
    stored: { expr: 'bucket_counts', value: [0, 0] },
  },
  {
    name: 'bounds [NaN] (JSON null)',
    table: 'metric_points',
    overrides: { bounds: [NaN] },
    stored: { expr: 'bounds', value: [0] },
  },
  {
    name: 'value -Infinity (JSON null)',
    table: 'metric_points',
    overrides: { value: -Infinity },
    stored: { expr: 'value', value: 0 },
  },
  {
    name: 'bucket_counts not bounds + 1 long',
    table: 'metric_points',
    overrides: { bucket_counts: [1, 2, 3, 4] },
    stored: { expr: 'length(bucket_counts)', value: 4 },
  },
  {
    name: 'start_time unparsable',
    table: 'metric_points',
    overrides: { start_time: 'garbage' },
    refused: refused('41', 'CANNOT_PARSE_DATETIME'),
  },
];

const makeRow = (c: PoisonCase, org: string) =>
  c.table === 'requests' ? requestRow(org, c.overrides) : metricPointRow(org, c.overrides);

const sanitize = (table: Table, row: Loose) =>
  table === 'requests'
    ? sanitizeRequestRow(row as unknown as RequestRow)
    : table === 'metric_points'
      ? sanitizeMetricPointRow(row as unknown as MetricPointRow)
      : sanitizeRow(table, row);

const report: string[] = [];

afterAll(() => {
  if (report.length > 0)
    process.stdout.write(`\nchDB on unsanitized one-row batches:\n${report.join('\n')}\n`);
});

describe('what chDB does with poison values, unsanitized', () => {
  for (const [i, c] of POISON.entries()) {
    const outcome = c.refused
      ? `refuses it: ${c.refused.code} ${c.refused.type}`
      : 'accepts it and stores it altered';
    it(`${c.name}: ${outcome}`, async () => {
      const org = `poison-${i}`;
      const result = await refusal(c.table, [makeRow(c, org)]);
      if (c.refused) {
        expect(result).toEqual(c.refused);
        report.push(`  ${c.name.padEnd(52)} refused  ${result!.code} ${result!.type}`);
        return;
      }
      expect(result).toBeUndefined();
      const rows = await select<{ v: unknown }>(
        `SELECT ${c.stored!.expr} AS v FROM ${c.stored!.from ?? c.table} WHERE org_id = {org:String}`,
        { org },
      );
      expect(rows.map((r) => r.v)).toEqual([c.stored!.value]);
      report.push(
        `  ${c.name.padEnd(52)} accepted, stored ${c.stored!.expr} = ${JSON.stringify(c.stored!.value)}`,
      );
    });
  }

  it('stores NUL and other control characters as sent, so the sanitizer keeps them', async () => {
    const row = requestRow('nul', { tool: 'a\u0000b', session_id: '\u0000\u0001\n\t\u001f\u007f' });
    expect(sanitize('requests', row)).toBe(0);
    await insert('requests', [row]);
    const [back] = await select<Loose>(
      'SELECT tool, session_id, length(session_id) AS bytes FROM requests WHERE org_id = {org:String}',
      { org: 'nul' },
    );
    expect(back).toEqual({ tool: 'a\u0000b', session_id: '\u0000\u0001\n\t\u001f\u007f', bytes: 6 });
    report.push(`  ${'NUL and control characters'.padEnd(52)} accepted and stored as sent`);
  });

  it('JSON.stringify throws on a bigint before anything reaches chDB', () => {
    expect(() => JSON.stringify(requestRow('x', { http_status: 200n }))).toThrow(TypeError);
    report.push(`  ${'bigint in any column'.padEnd(52)} JSON.stringify throws TypeError`);
  });

  it('refuses a batch spanning more than 100 days whatever its values: 252 TOO_MANY_PARTS', async () => {
    const rows = Array.from({ length: 101 }, (_, d) =>
      requestRow('poison-days', { time: new Date(Date.now() - d * 86_400_000).toISOString() }),
    );
    for (const row of rows) expect(sanitize('requests', row)).toBe(0);
    expect(await refusal('requests', rows)).toEqual(refused('252', 'TOO_MANY_PARTS'));
    report.push(`  ${'valid rows over 101 days in one batch'.padEnd(52)} refused  252 TOO_MANY_PARTS`);
  });

  it('accepts every poison row once sanitized, with the repaired values, in either format', async () => {
    for (const [i, c] of POISON.entries()) {
      const row = makeRow(c, '');
      expect(sanitize(c.table, row), c.name).toBeGreaterThan(0);
      for (const format of FORMATS) {
        const org = `sanitized-${format}-${i}`;
        const each = { ...row, org_id: org };
        expect(await refusal(c.table, [each], format), `${c.name} (${format})`).toBeUndefined();
        expect(await stored(c.table, org), `${c.name} (${format})`).toEqual([normalized(each)]);
      }
    }
  });
});

/** The rows of `table` for `org` (all of them when undefined), times as RFC 3339 text. */
async function stored(table: Table, org?: string): Promise<Loose[]> {
  const times = table === 'metric_points' ? ['start_time', 'time'] : ['time'];
  const rows = await select<Loose>(
    `SELECT *, ${times.map((t) => `toUnixTimestamp64Milli(${t}) AS ${t}_ms`).join(', ')} FROM ${table}
     ${org === undefined ? '' : 'WHERE org_id = {org:String}'}`,
    { org },
  );
  return rows.map((row) => {
    for (const t of times) {
      row[t] = new Date(Number(row[`${t}_ms`])).toISOString();
      delete row[`${t}_ms`];
    }
    return row;
  });
}

/** A row as JSON makes it (-0 is 0), to compare with what ClickHouse gives back. */
function normalized(row: Loose): Loose {
  return JSON.parse(JSON.stringify(row)) as Loose;
}

// ---- Generated poison ----------------------------------------------------------------------------

const char = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)) },
);
const shortString = fc.string({ unit: char, maxLength: 20 });
const longString = fc
  .tuple(
    fc.constantFrom(MAX_LOWCARD_LENGTH, MAX_STRING_LENGTH),
    fc.integer({ min: -2, max: 2 }),
    fc.constantFrom('😀', '\ud800', '\udc00'),
  )
  .map(([cap, delta, middle]) => `${'a'.repeat(cap + delta)}${middle}tail`);
const anyString = fc.oneof(
  { weight: 10, arbitrary: shortString },
  { weight: 1, arbitrary: longString },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(null, undefined, 7, {}) },
);
const anyNumber = fc.oneof(
  fc.double(),
  fc.integer({ min: -1000, max: 100_000 }),
  fc.integer({ min: -(2 ** 30), max: 2 ** 30 }).map((n) => n / 7),
  fc.constantFrom(-0, 2 ** 53, MAX_UINT64, 2 ** 64, 1e21, NaN, Infinity, -Infinity, Number.MIN_VALUE, 5n),
);
// Valid times are kept within a day of now: older rows fall to the TTL, and one insert may touch at
// most 100 daily partitions. Invalid ones fall back to now.
const DAY = 86_400_000;
const MAX_TIME_MS = Date.parse(MAX_TIME);
const nearMs = fc.integer({ min: -DAY, max: DAY }).map((d) => Date.now() + d);
const anyTime = fc.oneof(
  nearMs.map((ms) => new Date(ms).toISOString()),
  fc
    .tuple(nearMs, fc.constantFrom('+02:00', '-11:30', 'Z'))
    .map(([ms, zone]) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}.987654${zone}`),
  fc
    .integer({ min: -8.64e15, max: 8.64e15 })
    .filter((ms) => ms < 0 || ms > MAX_TIME_MS)
    .map((ms) => new Date(ms).toISOString()),
  fc.constantFrom('1899-12-31T23:59:59.999Z', '2300-01-01T00:00:00.000Z', '2026-02-29T00:00:00.000Z', '1'),
  fc.string({ unit: char, maxLength: 24 }),
);
const sortedBounds = fc
  .uniqueArray(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 5 })
  .map((b) => b.sort((x, y) => x - y));
const histogram = fc.oneof(
  sortedBounds.chain((bounds) =>
    fc.tuple(
      fc.constant(bounds),
      fc.array(anyNumber, { minLength: bounds.length + 1, maxLength: bounds.length + 1 }),
    ),
  ),
  fc.tuple(fc.array(anyNumber, { maxLength: 5 }), fc.array(anyNumber, { maxLength: 6 })),
);

const requestRows = rowsOf(REQUEST_SPEC, { string: anyString, number: anyNumber, time: anyTime });
const sessionEventRows = rowsOf(SESSION_EVENT_SPEC, { string: anyString, number: anyNumber, time: anyTime });
const metricPointRows = rowsOf(METRIC_POINT_SPEC, {
  string: anyString,
  number: anyNumber,
  time: anyTime,
  histogram,
});

const ROWS = 400;
const BATCH = 100;

describe('generated poison rows, sanitized', () => {
  for (const [table, rows] of [
    ['requests', requestRows],
    ['metric_points', metricPointRows],
    ['session_events', sessionEventRows],
  ] as const) {
    it.each(FORMATS)(
      `are all accepted into ${table} and read back with the repaired values (%s)`,
      async (format) => {
        await warehouse.client.command({ query: `TRUNCATE TABLE ${table}` });
        const generated = fc.sample(rows as fc.Arbitrary<Loose>, { numRuns: ROWS, seed: 20_260_301 });
        let repaired = 0;
        for (const row of generated) repaired += sanitize(table, row);
        expect(repaired).toBeGreaterThan(ROWS);
        for (let i = 0; i < generated.length; i += BATCH) {
          expect(await refusal(table, generated.slice(i, i + BATCH), format)).toBeUndefined();
        }
        const key = (row: Loose) => JSON.stringify(row);
        const back = (await stored(table)).map(key).sort();
        const expected = generated.map((row) => key(normalized(row))).sort();
        expect(back.length).toBe(expected.length);
        for (let i = 0; i < back.length; i++) expect(back[i]).toBe(expected[i]);
      },
    );
  }
});
