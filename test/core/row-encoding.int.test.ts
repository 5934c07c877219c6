import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertIsolating, insertRows } from '#core/warehouse/batch-insert.ts';
import { openWarehouse, type Warehouse } from '#core/warehouse/client.ts';
import { migrateWarehouse } from '#core/warehouse/migrate.ts';
import { COLUMNS, encodeRow, formatOf, lineAsObject, orgOfLine } from '#core/warehouse/row-encoding.ts';
import { MAX_TIME, MAX_UINT64, MIN_TIME, sanitizeRow } from '#core/warehouse/sanitize.ts';
import type { TelemetryTable } from '#core/warehouse/spool.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// chDB binds one data directory per process: one warehouse for the whole file.
let dir: string;
let warehouse: Warehouse;

beforeAll(async () => {
  dir = tempDir('pylee-row-encoding');
  warehouse = await openWarehouse({ dataDir: dir });
  await migrateWarehouse(warehouse);
});

afterAll(async () => {
  await warehouse?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Loose = Record<string, unknown>;

/** The insert Pylee made before row-encoding.ts: JSONEachRow objects, verbatim. */
async function insertJsonEachRow(table: TelemetryTable, rows: readonly Loose[]): Promise<void> {
  const result = await warehouse.client.exec({
    query: `INSERT INTO ${table} SETTINGS insert_deduplication_token = {token:String}, date_time_input_format = 'best_effort' FORMAT JSONEachRow`,
    query_params: { token: randomUUID() },
    values: Readable.from([rows.map((row) => `${JSON.stringify(row)}\n`).join('')]),
  });
  result.stream.resume();
  await finished(result.stream);
}

const lines = (table: TelemetryTable, rows: readonly Loose[]) => rows.map((row) => encodeRow(table, row));

/** Every column of `org`'s rows, times also as text with their milliseconds, in a fixed order. */
async function stored(table: TelemetryTable, org: string): Promise<Loose[]> {
  const times = table === 'metric_points' ? ['start_time', 'time'] : ['time'];
  const result = await warehouse.client.query({
    query: `SELECT * EXCEPT (org_id), ${times.map((t) => `toUnixTimestamp64Milli(${t}) AS ${t}_ms`).join(', ')}
      FROM ${table} WHERE org_id = {org:String} ORDER BY ${COLUMNS[table].filter((c) => c !== 'org_id').join(', ')}`,
    query_params: { org },
    format: 'JSONEachRow',
  });
  return result.json<Loose>();
}

const recent = (offsetMs = 0) => new Date(Date.now() - 60_000 + offsetMs).toISOString();
// Times within the 7-day TTL: MAX_TIME itself would wrap in `toDateTime(time) + INTERVAL 7 DAY` and
// be dropped at insert (by either format), so it is a start_time only. One insert spans few days.
const FAR = '2105-12-31T23:59:59.999Z';
const LEAP = '2028-02-29T00:00:00.001Z';

// Strings that need escaping in one text format or another, or look like syntax.
const STRINGS = [
  '',
  'tab\there',
  'line\nbreak\r\nand CR\r',
  'back\\slash \\t \\n \\N \\\\',
  `quotes " ' \` "" ''`,
  '["looks", "like", "an array"]',
  '{"org_id":"not the org"}',
  '{token:String} {0} $1 ?',
  'NUL\u0000 BEL\u0007 ESC\u001b DEL\u007f',
  'unicode: 日本語 ½ é (e\u0301) 😀 \u2028\u2029 \ufeff \ufffd',
  ',;|',
  ' leading and trailing ',
];

function requestRows(org: string): Loose[] {
  return STRINGS.map((s, i) => ({
    org_id: org,
    server: s,
    environment: 'production',
    version: `1.${i}.0`,
    operation: `tools/call ${s}`,
    time: [recent(), FAR, LEAP, recent(1).slice(0, 20) + '000Z'][i % 4],
    duration_ms: [0, 5e-324, 0.1 + 0.2, 1e300, 123456.789][i % 5],
    error: i % 2,
    error_type: s,
    http_status: [0, 100, 599, 200][i % 4],
    mcp_method: 'tools/call',
    tool: s,
    trace_id: s,
    span_id: `${i}`,
    session_id: s,
    source: i % 3 === 0 ? 'gateway' : 'otlp',
    client_key: s,
    counted: (i + 1) % 2,
  }));
}

function metricPointRows(org: string): Loose[] {
  return STRINGS.map((s, i) => ({
    org_id: org,
    server: 'weather',
    environment: s,
    version: '1.2.0',
    operation: s,
    metric: `metric.${i}`,
    unit: s,
    kind: ['histogram', 'gauge', 'sum'][i % 3],
    start_time: [MIN_TIME, recent(-1), MAX_TIME][i % 3],
    time: [recent(), recent(), FAR][i % 3],
    count: [0, 1, 2 ** 53, MAX_UINT64][i % 4],
    sum: [-1.5, 0, 1e-300, -1e300][i % 4],
    value: [-0, 42, -7.25e-10][i % 3],
    bounds: [[], [0.005], [-1e300, -1, 0, 1e-7, 2.5, 1e300]][i % 3],
    bucket_counts: [[], [0, MAX_UINT64], [1, 2, 3, 4, 5, 6, 2 ** 53]][i % 3],
  }));
}

function sessionEventRows(org: string): Loose[] {
  return STRINGS.map((s, i) => ({
    org_id: org,
    server: s,
    environment: 'production',
    version: s,
    session_id: s,
    time: [recent(), LEAP][i % 2],
    event: ['start', 'end', 'migrate'][i % 3],
    reason: s,
    client_key: s,
    source: i % 2 ? 'otlp' : 'gateway',
  }));
}

const ROWS: Record<TelemetryTable, (org: string) => Loose[]> = {
  requests: requestRows,
  metric_points: metricPointRows,
  session_events: sessionEventRows,
};

describe('JSONCompactEachRow lines (the writer) against JSONEachRow (as before)', () => {
  it.each(Object.keys(ROWS) as TelemetryTable[])(
    '%s: every column of every row is stored exactly as before, also from a legacy body and through the server branch',
    async (table) => {
      const base = ROWS[table]('');
      for (const row of base) expect(sanitizeRow(table, row)).toBe(0); // valid rows: nothing repaired
      const make = (org: string) => base.map((row) => ({ ...row, org_id: org }));
      const [before, writer, legacy, server] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      await insertJsonEachRow(table, make(before));
      const encoded = lines(table, make(writer));
      for (const line of encoded) {
        expect(line.indexOf('\n')).toBe(line.length - 1); // one row, one line: the log and spool split on \n
        expect(formatOf(line)).toBe('JSONCompactEachRow');
      }
      await insertRows(warehouse, table, randomUUID(), encoded.join(''));
      // A spool file or log an earlier version left: JSONEachRow objects, inserted as they are.
      const old = make(legacy).map((row) => `${JSON.stringify(row)}\n`);
      expect(formatOf(old[0]!)).toBe('JSONEachRow');
      await insertRows(warehouse, table, randomUUID(), old.join(''));
      // The ClickHouse server branch (settings in the request rather than the statement), on chDB.
      const asServer: Warehouse = { ...warehouse, driver: 'clickhouse' };
      try {
        await insertRows(asServer, table, randomUUID(), lines(table, make(server)).join(''));
      } finally {
        // chDB applies request settings session-wide: drop the token it kept.
        await warehouse.client.command({ query: "SET insert_deduplication_token = ''" });
      }

      const expected = await stored(table, before);
      expect(expected).toHaveLength(STRINGS.length);
      expect(await stored(table, writer)).toEqual(expected);
      expect(await stored(table, legacy)).toEqual(expected);
      expect(await stored(table, server)).toEqual(expected);
      // And what came back is what was sent.
      const sent = make(before).map((row) => {
        const { org_id: _, ...rest } = row;
        return JSON.parse(JSON.stringify(rest)) as Loose;
      });
      const times = table === 'metric_points' ? ['start_time', 'time'] : ['time'];
      const back = expected.map((row) => {
        const copy = { ...row };
        for (const t of times) {
          copy[t] = new Date(Number(copy[`${t}_ms`])).toISOString();
          delete copy[`${t}_ms`];
        }
        return copy;
      });
      const key = (row: Loose) =>
        JSON.stringify(
          Object.keys(row)
            .sort()
            .map((k) => [k, row[k]]),
        );
      expect(back.map(key).sort()).toEqual(sent.map(key).sort());
    },
  );

  it('keeps the deduplication token: the same batch inserted twice is stored once', async () => {
    const org = randomUUID();
    const token = randomUUID();
    const body = lines('requests', requestRows(org)).join('');
    await insertRows(warehouse, 'requests', token, body);
    await insertRows(warehouse, 'requests', token, body);
    expect(await stored('requests', org)).toHaveLength(STRINGS.length);
  });

  it('isolates a row ClickHouse refuses, with its org and its columns named for rejected/', async () => {
    const org = randomUUID();
    const rows = requestRows(org);
    const encoded = lines('requests', rows);
    const bad = encodeRow('requests', { ...rows[3], time: 'not a time' }); // unsanitized
    const batch = [...encoded.slice(0, 3), bad, ...encoded.slice(3)];
    const refused = await insertIsolating(warehouse, 'requests', randomUUID(), batch.join(''), () => batch);
    expect(refused).toEqual([{ index: 3, line: bad, reason: expect.stringMatching(/^ClickHouse code \d+/) }]);
    expect(await stored('requests', org)).toHaveLength(STRINGS.length);
    expect(orgOfLine(bad)).toBe(org);
    expect(JSON.parse(lineAsObject('requests', bad))).toEqual(
      JSON.parse(JSON.stringify({ ...rows[3], time: 'not a time' })),
    );
    // A JSONEachRow line (an older spool's) is kept as it is; a line that is not JSON as a string.
    const object = `${JSON.stringify(rows[0])}\n`;
    expect(lineAsObject('requests', object)).toBe(object.trimEnd());
    expect(orgOfLine(object)).toBe(org);
    expect(lineAsObject('requests', 'garbage\n')).toBe('"garbage"');
    expect(orgOfLine('garbage\n')).toBe('');
  });

  it('names the columns of every table in the order of their sanitizer spec, org_id first', () => {
    expect(COLUMNS.requests[0]).toBe('org_id');
    expect(COLUMNS.metric_points[0]).toBe('org_id');
    expect(COLUMNS.session_events[0]).toBe('org_id');
    const row = requestRows('o')[1]!;
    expect(JSON.parse(encodeRow('requests', { ...row, extra: 'not a column' }))).toEqual(
      COLUMNS.requests.map((c) => row[c]),
    );
  });
});
