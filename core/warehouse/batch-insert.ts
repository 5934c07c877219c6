import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { isClickHouseError, type Warehouse } from './client.ts';
import { formatOf, insertInto } from './row-encoding.ts';
import type { TelemetryTable } from './spool.ts';

/**
 * ClickHouse codes that say the rows themselves are wrong: retrying the same rows cannot succeed,
 * so the batch is split to find them. Any other failure is the store's, and the batch is retried.
 */
const DATA_ERROR_CODES = new Set([
  '6', // CANNOT_PARSE_TEXT
  '25', // CANNOT_PARSE_ESCAPE_SEQUENCE (a lone surrogate such as \ud800)
  '26', // CANNOT_PARSE_QUOTED_STRING
  '27', // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  '38', // CANNOT_PARSE_DATE
  '41', // CANNOT_PARSE_DATETIME
  '53', // TYPE_MISMATCH
  '69', // ARGUMENT_OUT_OF_BOUND
  '70', // CANNOT_CONVERT_TYPE
  '72', // CANNOT_PARSE_NUMBER
  '117', // INCORRECT_DATA
  '130', // CANNOT_READ_ARRAY_FROM_TEXT
  '131', // TOO_LARGE_STRING_SIZE
  '190', // SIZES_OF_ARRAYS_DONT_MATCH
  '321', // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  '407', // DECIMAL_OVERFLOW
]);

/**
 * TOO_MANY_PARTS (252) is about the rows when one block holds more partitions (days) than
 * `max_partitions_per_insert_block`: halves of it fit. The same code for "merges are behind" is the
 * store's.
 */
const TOO_MANY_PARTITIONS = /partitions for (a )?single insert block/i;

/** Whether ClickHouse refused an insert for its data rather than failing itself. */
export function isRefusedData(error: unknown): boolean {
  if (!isClickHouseError(error)) return false;
  const code = String((error as { code?: unknown }).code);
  return DATA_ERROR_CODES.has(code) || (code === '252' && TOO_MANY_PARTITIONS.test(error.message));
}

/** A row ClickHouse refused: its index in the batch, its line (row-encoding.ts) and ClickHouse's reason. */
export interface RefusedRow {
  index: number;
  line: string;
  reason: string;
}

/**
 * One insert with its deduplication token, in the format the body's lines are in (row-encoding.ts:
 * JSONCompactEachRow as the writer encodes, JSONEachRow from an earlier version's spool or log).
 * On a ClickHouse server the token goes in the request's settings; on chDB in the statement's
 * SETTINGS clause, because the chDB connection applies `clickhouse_settings` with session-wide
 * `SET`s, and a token left behind in the session would deduplicate the next, unrelated insert.
 */
export async function insertRows(
  warehouse: Warehouse,
  table: TelemetryTable,
  token: string,
  body: string,
): Promise<void> {
  const values = Readable.from([body]);
  const format = formatOf(body);
  const into = insertInto(table, format);
  const result =
    warehouse.driver === 'chdb'
      ? await warehouse.client.exec({
          query: `INSERT INTO ${into} SETTINGS insert_deduplication_token = {token:String}, date_time_input_format = 'best_effort' FORMAT ${format}`,
          query_params: { token },
          values,
        })
      : await warehouse.client.exec({
          query: `INSERT INTO ${into} FORMAT ${format}`,
          values,
          clickhouse_settings: { insert_deduplication_token: token, date_time_input_format: 'best_effort' },
        });
  result.stream.resume();
  await finished(result.stream);
}

/**
 * Inserts a batch; when ClickHouse refuses it for its data, halves it until the refused rows are
 * alone, inserts every other row, and returns the refused ones (k bad rows in n cost about
 * 2k·log₂n inserts). Each part's token derives from the batch's token and the part's place, so a
 * retry after a crash or a store failure in the middle splits the same way and ClickHouse drops
 * the parts it already has. A failure that is not about the data is thrown, to retry the batch.
 */
export async function insertIsolating(
  warehouse: Warehouse,
  table: TelemetryTable,
  token: string,
  body: string,
  lines: () => readonly string[],
): Promise<RefusedRow[]> {
  try {
    await insertRows(warehouse, table, token, body);
    return [];
  } catch (error) {
    if (!isRefusedData(error)) throw error;
    const all = lines();
    if (all.length === 1) return [{ index: 0, line: all[0] as string, reason: reasonOf(error) }];
    const refused: RefusedRow[] = [];
    await split(warehouse, table, token, all, 0, all.length, refused);
    return refused;
  }
}

async function split(
  warehouse: Warehouse,
  table: TelemetryTable,
  token: string,
  lines: readonly string[],
  from: number,
  to: number,
  refused: RefusedRow[],
): Promise<void> {
  const mid = from + Math.ceil((to - from) / 2);
  for (const [a, b] of [
    [from, mid],
    [mid, to],
  ] as const) {
    if (a === b) continue;
    try {
      await insertRows(warehouse, table, `${token}/${a}+${b - a}`, lines.slice(a, b).join(''));
    } catch (error) {
      if (!isRefusedData(error)) throw error;
      if (b - a === 1) refused.push({ index: a, line: lines[a] as string, reason: reasonOf(error) });
      else await split(warehouse, table, token, lines, a, b, refused);
    }
  }
}

function reasonOf(error: unknown): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return `ClickHouse code ${String(code)}: ${String(message).slice(0, 500)}`;
}
