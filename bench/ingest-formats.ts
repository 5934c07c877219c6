// bench:ingest's raw-insert comparison: the same mapped rows inserted straight into chDB in each
// text format `@clickhouse/client` can send it, the way the writer inserts (batches of STORE_BATCH
// rows, one deduplication token each, one insert at a time), formats interleaved round by round so
// that other load on the machine falls on all of them alike.
//
// RowBinary and Native are not here: chDB's @clickhouse/client connection (chdb/connection)
// decodes an insert body as UTF-8 text before handing it to the engine, and its raw-insert escape
// hatch accepts text formats only, so binary bodies cannot reach chDB through the client.
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { newId } from '#core/ids.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { COLUMNS, encodeRow } from '#core/warehouse/row-encoding.ts';
import type { TelemetryTable } from '#core/warehouse/spool.ts';

export const FORMATS = ['JSONEachRow', 'JSONCompactEachRow', 'TabSeparated', 'CSV'] as const;
export type Format = (typeof FORMATS)[number];

// TabSeparated and CSV encoders for the comparison only; the writer sends JSONCompactEachRow
// (core/warehouse/row-encoding.ts). Exact for sanitized rows: strings escaped, arrays as ClickHouse
// array literals, numbers as JSON writes them.
const TSV_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\\0',
};
const tsvString = (s: string) =>
  /[\\\t\n\r\0]/.test(s) ? s.replace(/[\\\t\n\r\0]/g, (c) => TSV_ESCAPES[c]!) : s;
const quoted = (s: string) => `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;
const literal = (v: unknown): string =>
  typeof v === 'string' ? quoted(v) : Array.isArray(v) ? `[${v.map(literal).join(',')}]` : String(v);
const tsvValue = (v: unknown) =>
  typeof v === 'string' ? tsvString(v) : Array.isArray(v) ? tsvString(literal(v)) : String(v);
const csvValue = (v: unknown) =>
  typeof v === 'string'
    ? `"${v.replace(/"/g, '""')}"`
    : Array.isArray(v)
      ? `"${literal(v).replace(/"/g, '""')}"`
      : String(v);

function encoder(table: TelemetryTable, format: Format): (row: object) => string {
  const columns = COLUMNS[table];
  const values = (row: object) => columns.map((c) => (row as Record<string, unknown>)[c]);
  switch (format) {
    case 'JSONEachRow':
      return (row) => `${JSON.stringify(row)}\n`;
    case 'JSONCompactEachRow':
      return (row) => encodeRow(table, row);
    case 'TabSeparated':
      return (row) => `${values(row).map(tsvValue).join('\t')}\n`;
    case 'CSV':
      return (row) => `${values(row).map(csvValue).join(',')}\n`;
  }
}

async function insert(warehouse: Warehouse, table: TelemetryTable, format: Format, body: string) {
  const into = format === 'JSONEachRow' ? table : `${table} (${COLUMNS[table].join(', ')})`;
  const result = await warehouse.client.exec({
    query: `INSERT INTO ${into} SETTINGS insert_deduplication_token = {token:String}, date_time_input_format = 'best_effort' FORMAT ${format}`,
    query_params: { token: newId() },
    values: Readable.from([body]),
  });
  await finished(result.stream.resume());
}

export interface FormatFigures {
  /** Rows per second, encoding in JavaScript included: best and median over the rounds. */
  rate: { best: number; median: number };
  /** Rows per second of the insert alone. */
  insertOnlyRate: { best: number; median: number };
  /** Rows per CPU-second of the whole process (encoding, chDB and its background merges). */
  itemsPerCpuSecond: { best: number; median: number };
  /** JavaScript encoding, µs per row (median). */
  encodeMicrosPerRow: number;
  bytesPerRow: number;
  rows: number;
}

/**
 * Inserts `perRound` rows of `rows` (cycled) in each format, `rounds` times round-robin, under the
 * org `<orgPrefix><format>` (each row's org_id is replaced). Returns each format's figures.
 */
export async function formatLimits(
  warehouse: Warehouse,
  table: TelemetryTable,
  rows: readonly object[],
  options: { perRound: number; rounds: number; batch: number; orgPrefix: string },
): Promise<Record<Format, FormatFigures>> {
  const samples = Object.fromEntries(
    FORMATS.map((f) => [f, { rate: [], insert: [], cpu: [], encode: [], bytes: 0, rows: 0 }]),
  ) as unknown as Record<
    Format,
    { rate: number[]; insert: number[]; cpu: number[]; encode: number[]; bytes: number; rows: number }
  >;
  const byFormat = Object.fromEntries(
    FORMATS.map((f) => [f, rows.map((row) => ({ ...row, org_id: `${options.orgPrefix}${f}` }))]),
  ) as unknown as Record<Format, object[]>;
  for (let round = 0; round < options.rounds; round++) {
    for (const format of FORMATS) {
      const encode = encoder(table, format);
      const source = byFormat[format];
      const s = samples[format];
      let encodeMs = 0;
      let insertMs = 0;
      const cpu0 = process.cpuUsage();
      for (let done = 0; done < options.perRound; done += options.batch) {
        const size = Math.min(options.batch, options.perRound - done);
        const e0 = performance.now();
        let body = '';
        for (let i = 0; i < size; i++) body += encode(source[(s.rows + i) % source.length]!);
        const e1 = performance.now();
        await insert(warehouse, table, format, body);
        encodeMs += e1 - e0;
        insertMs += performance.now() - e1;
        s.bytes += body.length;
        s.rows += size;
      }
      const cpu = process.cpuUsage(cpu0);
      s.rate.push((options.perRound / (encodeMs + insertMs)) * 1000);
      s.insert.push((options.perRound / insertMs) * 1000);
      s.cpu.push(options.perRound / ((cpu.user + cpu.system) / 1e6));
      s.encode.push((encodeMs * 1000) / options.perRound);
    }
  }
  const stat = (xs: number[]) => ({ best: Math.round(Math.max(...xs)), median: Math.round(median(xs)) });
  return Object.fromEntries(
    FORMATS.map((f) => {
      const s = samples[f];
      return [
        f,
        {
          rate: stat(s.rate),
          insertOnlyRate: stat(s.insert),
          itemsPerCpuSecond: stat(s.cpu),
          encodeMicrosPerRow: Math.round(median(s.encode) * 100) / 100,
          bytesPerRow: Math.round(s.bytes / s.rows),
          rows: s.rows,
        },
      ];
    }),
  ) as Record<Format, FormatFigures>;
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** The format with the highest median rate: the store's limit for these rows. */
export function bestFormat(figures: Record<Format, FormatFigures>) {
  const format = FORMATS.reduce((a, b) => (figures[b].rate.median > figures[a].rate.median ? b : a));
  const x = figures[format];
  return {
    format,
    rate: x.rate.median,
    insertOnlyRate: x.insertOnlyRate.median,
    itemsPerCpuSecond: x.itemsPerCpuSecond.median,
  };
}
