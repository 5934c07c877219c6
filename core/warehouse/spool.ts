import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/** The tables the telemetry writer inserts into (and the only ones a spool file may name). */
export const TELEMETRY_TABLES = ['requests', 'metric_points', 'session_events'] as const;
export type TelemetryTable = (typeof TELEMETRY_TABLES)[number];

/** A record with one fresh value per telemetry table. */
export function perTable<T>(make: (table: TelemetryTable) => T): Record<TelemetryTable, T> {
  return Object.fromEntries(TELEMETRY_TABLES.map((table) => [table, make(table)])) as Record<
    TelemetryTable,
    T
  >;
}

/** Consecutive rows that came in one request: who to name when ClickHouse refuses one of them. */
export interface Origin {
  requestId: string;
  rows: number;
}

/** One insert: its rows as text (row-encoding.ts) and the deduplication token every attempt reuses. */
export interface Batch {
  table: TelemetryTable;
  /** UUIDv7 chosen when the batch was formed; the `insert_deduplication_token` of every attempt. */
  token: string;
  rows: number;
  /** One row per line, each line ending with `\n`: JSONCompactEachRow arrays, or JSONEachRow objects from an earlier version (row-encoding.ts). */
  body: string;
  /** The requests the rows came in, in row order (run lengths summing to `rows`); unknown if absent. */
  origins?: Origin[] | undefined;
}

/** A batch file in the spool directory, oldest first by name (the token is time-ordered). */
export interface SpoolEntry {
  readonly name: string;
  readonly bytes: number;
}

/** The spool is at its size bound; nothing was written. */
export class SpoolFullError extends Error {
  constructor(bytes: number, maxBytes: number) {
    super(`the spool holds ${bytes} bytes and its limit is ${maxBytes}`);
    this.name = 'SpoolFullError';
  }
}

/** A spool file that cannot be a batch (damaged, or not written by Pylee). */
export class SpoolFileError extends Error {
  constructor(file: string, why: string) {
    super(`spool file ${file} ${why}`);
    this.name = 'SpoolFileError';
  }
}

const FORMAT = 'pylee-spool/1';
const TOKEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SUFFIX = '.jsonl';
const TEMP_SUFFIX = '.tmp';

export interface SpoolOptions {
  /** Largest total size of the batch files; a write past it throws {@link SpoolFullError}. @defaultValue 1 GiB */
  maxBytes?: number;
}

/**
 * Batches that could not be inserted yet, one file per batch in `dir`, so they outlive the
 * process. A file is written to a temporary name, fsynced, renamed and the directory fsynced: it
 * is either complete or absent. Its first line is a header (format, table, token, row count); the
 * rest is the body (one row per line, row-encoding.ts), sent to ClickHouse as it is. Files ClickHouse refuses for their
 * content go to `dir/rejected/`, kept for an operator rather than deleted.
 */
export class Spool {
  readonly dir: string;
  readonly rejectedDir: string;
  readonly maxBytes: number;
  /** Sorted oldest first. */
  #entries: SpoolEntry[] = [];
  #bytes = 0;
  /** Bytes of writes in progress, counted against the bound before they land. */
  #reserved = 0;

  constructor(dir: string, options: SpoolOptions = {}) {
    this.dir = dir;
    this.rejectedDir = path.join(dir, 'rejected');
    this.maxBytes = options.maxBytes ?? 1024 ** 3;
    fs.mkdirSync(dir, { recursive: true });
    for (const name of fs.readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      // A temporary file is a write that never finished: its batch was never reported as spooled.
      if (name.endsWith(TEMP_SUFFIX)) {
        fs.rmSync(file, { force: true });
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue;
      const bytes = fs.statSync(file).size;
      this.#entries.push({ name, bytes });
      this.#bytes += bytes;
    }
  }

  /** Total size of the batch files, in bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Number of batch files waiting. */
  get files(): number {
    return this.#entries.length;
  }

  /** The oldest batch file, if any. */
  oldest(): SpoolEntry | undefined {
    return this.#entries[0];
  }

  /**
   * Writes `batch` durably; it is in the spool once this resolves. `force` ignores the size bound,
   * for rows that were already acknowledged (recovered from the write-ahead log).
   */
  async write(batch: Batch, options: { force?: boolean } = {}): Promise<void> {
    const name = `${batch.token}.${batch.table}${SUFFIX}`;
    const text = `${headerOf(batch)}\n${batch.body}`;
    const size = Buffer.byteLength(text);
    if (!options.force && this.#bytes + this.#reserved + size > this.maxBytes) {
      throw new SpoolFullError(this.#bytes + this.#reserved, this.maxBytes);
    }
    this.#reserved += size;
    try {
      await writeDurably(this.dir, name, text);
    } finally {
      this.#reserved -= size;
    }
    this.#insertEntry({ name, bytes: size });
    this.#bytes += size;
  }

  /** Reads a batch file back; throws {@link SpoolFileError} when it is not a whole batch. */
  async read(entry: SpoolEntry): Promise<Batch> {
    const text = await fsp.readFile(path.join(this.dir, entry.name), 'utf8');
    const newline = text.indexOf('\n');
    let header: { format?: unknown; table?: unknown; token?: unknown; rows?: unknown; origins?: unknown };
    try {
      header = JSON.parse(newline < 0 ? text : text.slice(0, newline)) as typeof header;
    } catch {
      throw new SpoolFileError(entry.name, 'has no header line');
    }
    const { format, table, token, rows, origins } = header;
    if (format !== FORMAT) throw new SpoolFileError(entry.name, `is not in format ${FORMAT}`);
    if (!TELEMETRY_TABLES.includes(table as TelemetryTable)) {
      throw new SpoolFileError(
        entry.name,
        `names table ${String(table)}, not one of ${TELEMETRY_TABLES.join(', ')}`,
      );
    }
    if (typeof token !== 'string' || !TOKEN.test(token))
      throw new SpoolFileError(entry.name, 'has no valid token');
    const body = newline < 0 ? '' : text.slice(newline + 1);
    const lines = countLines(body);
    if (typeof rows !== 'number' || rows !== lines || (body.length > 0 && !body.endsWith('\n'))) {
      throw new SpoolFileError(entry.name, `should hold ${String(rows)} rows but holds ${lines}`);
    }
    return { table: table as TelemetryTable, token, rows, body, origins: originsOf(origins, rows) };
  }

  /** Deletes a batch file whose insert succeeded. */
  async remove(entry: SpoolEntry): Promise<void> {
    await fsp.rm(path.join(this.dir, entry.name), { force: true });
    this.#forget(entry);
  }

  /** Moves a batch file ClickHouse refused for its content to `rejected/`, with the reason beside it. */
  async reject(entry: SpoolEntry, reason: string): Promise<void> {
    await fsp.mkdir(this.rejectedDir, { recursive: true });
    await fsp.writeFile(path.join(this.rejectedDir, `${entry.name}.reason.txt`), `${reason}\n`);
    await fsp.rename(path.join(this.dir, entry.name), path.join(this.rejectedDir, entry.name));
    this.#forget(entry);
  }

  /**
   * Keeps rows ClickHouse refused, out of batch `token`, in `rejected/<token>.<table>.rows.jsonl`:
   * one JSON line per row with the org and request it came from, ClickHouse's reason, and the row.
   */
  async writeRejectedRows(
    table: TelemetryTable,
    token: string,
    rows: readonly { orgId: string; requestId: string; reason: string; line: string }[],
  ): Promise<void> {
    await fsp.mkdir(this.rejectedDir, { recursive: true });
    let text = '';
    for (const { orgId, requestId, reason, line } of rows) {
      text += `{"table":${JSON.stringify(table)},"orgId":${JSON.stringify(orgId)},"requestId":${JSON.stringify(requestId)},"reason":${JSON.stringify(reason)},"row":${line.trimEnd()}}\n`;
    }
    await writeDurably(this.rejectedDir, `${token}.${table}.rows${SUFFIX}`, text);
  }

  #insertEntry(entry: SpoolEntry): void {
    let i = this.#entries.length;
    while (i > 0 && (this.#entries[i - 1] as SpoolEntry).name > entry.name) i--;
    this.#entries.splice(i, 0, entry);
  }

  #forget(entry: SpoolEntry): void {
    const i = this.#entries.findIndex((e) => e.name === entry.name);
    if (i < 0) return;
    this.#entries.splice(i, 1);
    this.#bytes -= entry.bytes;
  }
}

function headerOf(batch: Batch): string {
  const { table, token, rows, origins } = batch;
  return JSON.stringify(
    origins ? { format: FORMAT, table, token, rows, origins } : { format: FORMAT, table, token, rows },
  );
}

/** Origins from a spool header, when they are well formed and account for every row. */
function originsOf(value: unknown, rows: number): Origin[] | undefined {
  if (!Array.isArray(value)) return undefined;
  let total = 0;
  for (const o of value as { requestId?: unknown; rows?: unknown }[]) {
    if (typeof o?.requestId !== 'string' || !Number.isInteger(o.rows)) return undefined;
    total += o.rows as number;
  }
  return total === rows ? (value as Origin[]) : undefined;
}

/** Write to a temporary name, fsync, rename, fsync the directory: the file is whole or absent. */
async function writeDurably(dir: string, name: string, text: string): Promise<void> {
  const temp = path.join(dir, `${name}${TEMP_SUFFIX}`);
  try {
    const handle = await fsp.open(temp, 'w');
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, path.join(dir, name));
  } catch (error) {
    await fsp.rm(temp, { force: true }).catch(() => {});
    throw error;
  }
  const dirHandle = await fsp.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

function countLines(body: string): number {
  let n = 0;
  for (let i = body.indexOf('\n'); i >= 0; i = body.indexOf('\n', i + 1)) n++;
  return n;
}
