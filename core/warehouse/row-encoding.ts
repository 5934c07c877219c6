import { TABLE_SPECS } from './sanitize.ts';
import { perTable, type TelemetryTable } from './spool.ts';

/**
 * How the telemetry writer's rows travel to ClickHouse (and sit in the write-ahead log and the
 * spool): one line per row, each ending with `\n`.
 *
 * - `JSONCompactEachRow` (what the writer encodes): a JSON array of the row's values in
 *   {@link COLUMNS} order, inserted with that column list. Every value is written by
 *   `JSON.stringify` exactly as in a JSONEachRow object, so ClickHouse reads the same text per
 *   column; it only skips the keys, which spares most of its JSON parsing (bench:ingest measures
 *   every format `@clickhouse/client` can send chDB side by side).
 * - `JSONEachRow`: one JSON object per row, as Pylee wrote before; spool files and write-ahead logs
 *   an earlier version left are still inserted as they are.
 *
 * A line says its format by its first character (`[` or `{`), so a batch needs no format field
 * and an older spool file or log needs no conversion.
 */
export type RowFormat = 'JSONCompactEachRow' | 'JSONEachRow';

/** Each table's columns in the order of the sanitizer's spec, which is the table's column order. */
export const COLUMNS: Record<TelemetryTable, readonly string[]> = perTable((table) =>
  Object.keys(TABLE_SPECS[table].columns),
);

const COLUMN_LISTS = perTable((table) => COLUMNS[table].join(', '));

type Values = (row: Record<string, unknown>) => unknown[];

// Each table's values as one array literal, which V8 builds faster than a loop over COLUMNS (about
// 0.6 against 0.9 µs per request row); checked against COLUMNS when the module loads.
const VALUES: Record<TelemetryTable, Values> = {
  requests: (r) => [
    r.org_id,
    r.server,
    r.environment,
    r.version,
    r.operation,
    r.time,
    r.duration_ms,
    r.error,
    r.error_type,
    r.http_status,
    r.mcp_method,
    r.tool,
    r.trace_id,
    r.span_id,
    r.session_id,
    r.source,
    r.client_key,
    r.counted,
  ],
  metric_points: (r) => [
    r.org_id,
    r.server,
    r.environment,
    r.version,
    r.operation,
    r.metric,
    r.unit,
    r.kind,
    r.start_time,
    r.time,
    r.count,
    r.sum,
    r.value,
    r.bounds,
    r.bucket_counts,
  ],
  session_events: (r) => [
    r.org_id,
    r.server,
    r.environment,
    r.version,
    r.session_id,
    r.time,
    r.event,
    r.reason,
    r.client_key,
    r.source,
  ],
};

for (const table of Object.keys(VALUES) as TelemetryTable[]) {
  const names = COLUMNS[table];
  const probe = VALUES[table](Object.fromEntries(names.map((c) => [c, c])));
  if (probe.join() !== names.join()) {
    throw new Error(`row-encoding: ${table} encodes [${probe.join()}], its columns are [${names.join()}]`);
  }
}

/**
 * One sanitized row (every column present and valid, `sanitize.ts`) as a JSONCompactEachRow line.
 * Properties that are not columns are left out, as ClickHouse skips unknown JSONEachRow keys.
 */
export function encodeRow(table: TelemetryTable, row: object): string {
  return `${JSON.stringify(VALUES[table](row as Record<string, unknown>))}\n`;
}

/** The format of a batch body (or line): by its first character; JSONEachRow for anything else. */
export function formatOf(body: string): RowFormat {
  return body.charCodeAt(0) === 91 /* [ */ ? 'JSONCompactEachRow' : 'JSONEachRow';
}

/** What follows `INSERT INTO` for a body in `format`: the table, with its column list for arrays. */
export function insertInto(table: TelemetryTable, format: RowFormat): string {
  return format === 'JSONCompactEachRow' ? `${table} (${COLUMN_LISTS[table]})` : table;
}

/**
 * A line of either format as a JSON object text (column → value), for the rows kept in rejected/:
 * an operator reads named columns whichever format the row travelled in. A line that is not JSON
 * (or an array of another length) is returned as a JSON string.
 */
export function lineAsObject(table: TelemetryTable, line: string): string {
  const text = line.endsWith('\n') ? line.slice(0, -1) : line;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return JSON.stringify(text);
  }
  if (!Array.isArray(value)) return text;
  const columns = COLUMNS[table];
  if (value.length !== columns.length) return text;
  const row: Record<string, unknown> = {};
  for (let i = 0; i < columns.length; i++) row[columns[i] as string] = value[i];
  return JSON.stringify(row);
}

/** The org of a line of either format, '' when it names none. */
export function orgOfLine(line: string): string {
  try {
    const value = JSON.parse(line) as unknown;
    const orgId = Array.isArray(value) ? value[0] : (value as { org_id?: unknown } | null)?.org_id;
    return typeof orgId === 'string' ? orgId : '';
  } catch {
    return '';
  }
}
