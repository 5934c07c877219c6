import path from 'node:path';
import { lockDataDir, type DataDirLock } from '../data-dir.ts';
import { AppError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import { insertIsolating, type RefusedRow } from './batch-insert.ts';
import type { Warehouse } from './client.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from './rows.ts';
import { encodeRow, lineAsObject, orgOfLine } from './row-encoding.ts';
import { sanitizeRow } from './sanitize.ts';
import {
  perTable,
  Spool,
  SpoolFileError,
  TELEMETRY_TABLES,
  SpoolFullError,
  type Batch,
  type Origin,
  type TelemetryTable,
} from './spool.ts';
import { WalFullError, WriteAheadLog, type WalRange } from './wal.ts';
import { countRows, forgetWriter, instruments, watchWriter } from './writer-metrics.ts';

export { TELEMETRY_TABLES, type TelemetryTable } from './spool.ts';

/**
 * The writer cannot take more rows now: the caller answers with `status` and a `Retry-After` of
 * `retryAfterSeconds`, as the OTLP specification asks. 503 when ClickHouse is failing or the
 * write-ahead log cannot take more, 429 when ClickHouse answers but the writer is behind. Nothing
 * of the refused call was kept.
 */
export class WriterOverloadedError extends AppError {
  declare readonly status: 429 | 503;
  readonly retryAfterSeconds: number;

  constructor(status: 429 | 503, retryAfterSeconds: number, detail: string, options: ErrorOptions = {}) {
    super(
      status,
      status === 503 ? 'telemetry-store-unavailable' : 'telemetry-overloaded',
      status === 503 ? 'Service unavailable' : 'Too many requests',
      detail,
      { retryAfterSeconds },
    );
    this.retryAfterSeconds = retryAfterSeconds;
    if (options.cause !== undefined) this.cause = options.cause;
  }
}

export interface TelemetryWriterOptions {
  /** Spool directory is `<dataDir>/spool` and the write-ahead log `<dataDir>/wal` unless given. */
  dataDir: string;
  /** @defaultValue `<dataDir>/spool` */
  spoolDir?: string;
  /**
   * The write-ahead log: `false` answers once rows are in memory (a crash loses what is not yet
   * inserted or spooled). @defaultValue `{ dir: <dataDir>/wal }`
   */
  wal?: false | { dir?: string; maxBytes?: number; segmentBytes?: number };
  logger?: Logger;
  /** Rows per insert; a table's buffer reaching it is flushed at once. @defaultValue {@link DEFAULT_BATCH_SIZE} */
  batchSize?: number;
  /** Longest a row waits in memory before its batch is formed and inserted. @defaultValue 1000 */
  flushIntervalMs?: number;
  /** Rows held in memory (buffered, waiting or being inserted); past it batches go to the spool. @defaultValue 200000 */
  maxBufferedRows?: number;
  /** Bytes the spool may hold; past it `write*` throws {@link WriterOverloadedError}. @defaultValue 1 GiB */
  maxSpoolBytes?: number;
  /** First retry delay after a failed insert; it doubles up to {@link maxRetryDelayMs}. @defaultValue 500 */
  minRetryDelayMs?: number;
  /** @defaultValue 30000 */
  maxRetryDelayMs?: number;
}

/** What the writer holds, for readiness checks, logs and tests. */
export interface TelemetryWriterStats {
  /** Rows in memory: buffered, in formed batches, or being inserted or spooled. */
  bufferedRows: number;
  spoolFiles: number;
  spoolBytes: number;
  /** Size of the write-ahead log (0 without one). */
  walBytes: number;
  /** False after a failed insert, until one succeeds. */
  storeUp: boolean;
}

/** A batch formed in memory: its rows as lines, their origins, and where they are in the log. */
interface MemoryBatch {
  table: TelemetryTable;
  token: string;
  lines: string[];
  origins: Origin[];
  range: WalRange | undefined;
  /** Resolves once the batch's formation is in the write-ahead log (before any insert or spool). */
  logged: Promise<void> | undefined;
}

/** Rows not yet in a batch: `lines[i]` is at position `start + i` of the table's log sequence. */
interface OpenRows {
  start: number;
  lines: string[];
  origins: Origin[];
}

/**
 * Rows per insert unless the options say otherwise. Every insert pays for a part in each table it
 * reaches (four rollups behind `requests`) and for the merges those parts cause: bench:ingest
 * measured chDB's CPU per stored row about a third lower with 50,000 than with 10,000. Below it,
 * batches form on the flush interval as before.
 */
export const DEFAULT_BATCH_SIZE = 50_000;

/** Retry-After when ClickHouse answers but the writer is behind. */
const BEHIND_RETRY_AFTER_SECONDS = 5;
const MAX_RETRY_AFTER_SECONDS = 60;

/**
 * Buffers request rows, metric points and session events and inserts them into ClickHouse in
 * batches, by size or after {@link TelemetryWriterOptions.flushIntervalMs}. `write*` resolves once
 * the rows are on disk in the write-ahead log (or durably spooled); after that they are stored
 * exactly once:
 *
 * - every value is made valid for its column first (`sanitize.ts`), so one client's bad data
 *   cannot make ClickHouse refuse a batch that holds other clients' rows; if ClickHouse still
 *   refuses a batch for its data, it is split until the refused rows are alone, and only those go
 *   to `<spool>/rejected/` (with the org and request they came from);
 * - every batch gets a UUIDv7 `insert_deduplication_token` when it is formed and keeps it through
 *   every retry, the spool and a restart (its formation is logged in the write-ahead log before
 *   use), and the tables keep a deduplication window, so nothing is counted twice;
 * - memory is bounded: past `maxBufferedRows` the oldest formed batches are written to
 *   `<dataDir>/spool/` while ClickHouse is down, and `write*` answers 429 while it is merely behind;
 * - past `maxSpoolBytes` or the log's bound, or when either cannot be written, `write*` throws
 *   {@link WriterOverloadedError} and keeps nothing of that call;
 * - a background loop inserts spool files oldest first with exponential backoff while ClickHouse
 *   fails; files and log segments left by an earlier process are replayed at start;
 * - `close()` inserts (or spools) everything in memory.
 */
export class TelemetryWriter {
  readonly #warehouse: Warehouse;
  readonly #logger: Logger | undefined;
  readonly #spool: Spool;
  readonly #wal: WriteAheadLog | undefined;
  /** The log belongs to one process: a second writer on it would replay and truncate the first's rows. */
  readonly #walLock: DataDirLock | undefined;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxBufferedRows: number;
  readonly #minRetryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #timer: NodeJS.Timeout;

  readonly #open = perTable((): OpenRows => ({ start: 0, lines: [], origins: [] }));
  /** Formed batches waiting for their insert, oldest first (the one being inserted is not here). */
  readonly #pending: MemoryBatch[] = [];
  /** Rows in memory, wherever they are, and rows whose log write is in flight; the bound applies to this. */
  #memoryRows = 0;

  #storeUp = true;
  #failures = 0;
  #nextAttemptAt = 0;
  #retryTimer: NodeJS.Timeout | undefined;

  #pumping: Promise<void> | undefined;
  #pumpAgain = false;
  /** Serializes the slow path of `write*` (moving batches to the spool to make room). */
  #roomLock: Promise<void> = Promise.resolve();
  /** Moving what an earlier process left in the log to the spool. */
  readonly #recovering: Promise<void>;
  /** Log writes of accepted rows in flight: close waits for them. */
  readonly #appending = new Set<Promise<void>>();
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(warehouse: Warehouse, options: TelemetryWriterOptions) {
    this.#warehouse = warehouse;
    this.#logger = options.logger;
    this.#batchSize = positive('batchSize', options.batchSize ?? DEFAULT_BATCH_SIZE);
    this.#flushIntervalMs = positive('flushIntervalMs', options.flushIntervalMs ?? 1000);
    this.#maxBufferedRows = positive('maxBufferedRows', options.maxBufferedRows ?? 200_000);
    this.#minRetryDelayMs = positive('minRetryDelayMs', options.minRetryDelayMs ?? 500);
    this.#maxRetryDelayMs = Math.max(this.#minRetryDelayMs, options.maxRetryDelayMs ?? 30_000);
    this.#spool = new Spool(options.spoolDir ?? path.join(options.dataDir, 'spool'), {
      maxBytes: positive('maxSpoolBytes', options.maxSpoolBytes ?? 1024 ** 3),
    });
    if (options.wal !== false) {
      const wal = options.wal ?? {};
      const dir = wal.dir ?? path.join(options.dataDir, 'wal');
      this.#walLock = lockDataDir(dir);
      try {
        this.#wal = WriteAheadLog.open(dir, {
          logger: options.logger,
          maxBytes: wal.maxBytes,
          segmentBytes: wal.segmentBytes,
          batchSize: this.#batchSize,
        });
      } catch (error) {
        this.#walLock.release();
        throw error;
      }
    }
    this.#timer = setInterval(() => {
      // While ClickHouse fails, rows gather into full batches: fewer, larger spool files and inserts.
      this.#formBatches(this.#storeUp);
      this.#kick();
    }, this.#flushIntervalMs);
    this.#timer.unref();
    watchWriter(this);
    this.#recovering = this.#spoolRecovered();
    if (this.#spool.files > 0) {
      this.#logger?.info(
        { files: this.#spool.files, bytes: this.#spool.bytes, dir: this.#spool.dir },
        'telemetry spool holds batches from an earlier run; replaying them',
      );
    }
  }

  /**
   * Accepts request rows: resolves once they are in the write-ahead log (or spooled), not
   * necessarily inserted. Values are repaired in place to fit their columns. `origin` (the request
   * id) is kept with the rows to name it should ClickHouse refuse one. Throws
   * {@link WriterOverloadedError} (and keeps none of them) when they cannot be accepted.
   */
  writeRequests(rows: readonly RequestRow[], origin = ''): Promise<void> {
    return this.#accept('requests', rows, origin);
  }

  /** Accepts metric points, as {@link writeRequests} accepts request rows. */
  writeMetricPoints(rows: readonly MetricPointRow[], origin = ''): Promise<void> {
    return this.#accept('metric_points', rows, origin);
  }

  /** Accepts the gateway's session events, as {@link writeRequests} accepts request rows. */
  writeSessionEvents(rows: readonly SessionEventRow[], origin = ''): Promise<void> {
    return this.#accept('session_events', rows, origin);
  }

  /**
   * Inserts everything in memory and then the spool, now, even while backing off after a failure.
   * Resolves when there is nothing left or an insert failed (the rows stay queued).
   */
  async flush(): Promise<void> {
    await this.#recovering;
    await Promise.allSettled(this.#appending);
    this.#formBatches(true);
    this.#nextAttemptAt = 0;
    this.#kick();
    while (this.#pumping) await this.#pumping;
  }

  stats(): TelemetryWriterStats {
    return { ...this.gauges(), storeUp: this.#storeUp };
  }

  /** @internal for the self-telemetry gauges */
  gauges() {
    return {
      bufferedRows: this.#memoryRows,
      spoolFiles: this.#spool.files,
      spoolBytes: this.#spool.bytes,
      walBytes: this.#wal?.bytes ?? 0,
    };
  }

  /**
   * Stops accepting rows (later `write*` calls throw a 503 {@link WriterOverloadedError}) and
   * inserts what memory holds, or spools it when ClickHouse fails. Spool files stay for the next
   * start; so does the log if anything could be neither inserted nor spooled. Without a log that
   * case rejects.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retryTimer);
    await this.#recovering;
    await Promise.allSettled(this.#appending);
    while (this.#pumping) await this.#pumping;
    await this.#roomLock;
    this.#formBatches(true);
    let lost = 0;
    let lastError: unknown;
    for (let batch = this.#pending.shift(); batch; batch = this.#pending.shift()) {
      if (this.#storeUp && (await this.#insertFromMemory(batch))) continue;
      try {
        await this.#spoolBatch(batch, true);
      } catch (error) {
        lost += batch.lines.length;
        lastError = error;
        this.#memoryRows -= batch.lines.length;
      }
    }
    forgetWriter(this);
    await this.#wal?.close(lost === 0);
    this.#walLock?.release();
    if (lost > 0) {
      const kept = this.#wal ? `; they stay in the write-ahead log ${this.#wal.dir} for the next start` : '';
      this.#logger?.error(
        { err: lastError, rows: lost },
        `telemetry rows could be neither inserted nor spooled at shutdown${kept}`,
      );
      if (!this.#wal) {
        throw new Error(`${lost} telemetry rows could be neither inserted nor spooled`, { cause: lastError });
      }
    }
  }

  async #accept(table: TelemetryTable, rows: readonly object[], origin: string): Promise<void> {
    if (this.#closing) {
      countRows('rejected', table, rows.length, 503);
      throw new WriterOverloadedError(
        503,
        1,
        'the collector is shutting down; retry against another instance or after it restarts',
      );
    }
    if (rows.length === 0) return;
    const lines = this.#encode(table, rows);
    try {
      if (this.#memoryRows + lines.length <= this.#maxBufferedRows) {
        await this.#log(table, lines, origin, (range) => this.#buffer(table, lines, origin, range));
      } else if (this.#storeUp) {
        // ClickHouse answers but is behind: push back rather than grow the spool, which is for outages.
        throw new WriterOverloadedError(
          429,
          BEHIND_RETRY_AFTER_SECONDS,
          `the collector is behind ClickHouse (${this.#memoryRows} rows waiting to be inserted); retry later`,
        );
      } else {
        await this.#withRoomLock(() => this.#makeRoomFor(table, lines, origin));
      }
    } catch (error) {
      const overload = error instanceof WriterOverloadedError ? error : this.#overloaded(error);
      countRows('rejected', table, rows.length, overload.status);
      throw overload;
    }
    countRows('accepted', table, rows.length);
  }

  /** Repairs each row for its columns and turns it into a line (row-encoding.ts: JSONCompactEachRow). */
  #encode(table: TelemetryTable, rows: readonly object[]): string[] {
    const lines = new Array<string>(rows.length);
    let repaired = 0;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as object;
      repaired += sanitizeRow(table, row);
      lines[i] = encodeRow(table, row);
    }
    if (repaired > 0) instruments().repaired.add(repaired, { 'pylee.table': table });
    return lines;
  }

  /**
   * Puts rows in the log and runs `use` once they are durable (at once without a log). The rows
   * count against the memory bound from now on; `use` takes them over.
   */
  async #log(
    table: TelemetryTable,
    lines: string[],
    origin: string,
    use: (range: WalRange | undefined) => void,
  ): Promise<void> {
    if (!this.#wal) {
      this.#memoryRows += lines.length;
      use(undefined);
      return;
    }
    this.#memoryRows += lines.length;
    let durable: Promise<void>;
    try {
      durable = this.#wal.appendRows(table, lines, origin, use);
    } catch (error) {
      this.#memoryRows -= lines.length;
      throw error;
    }
    this.#appending.add(durable);
    try {
      await durable;
    } catch (error) {
      this.#memoryRows -= lines.length;
      throw error;
    } finally {
      this.#appending.delete(durable);
    }
  }

  #buffer(table: TelemetryTable, lines: string[], origin: string, range: WalRange | undefined): void {
    const open = this.#open[table];
    // A batch never spans a gap in the log's positions (left by a failed log write).
    if (range && open.lines.length > 0 && range.from !== open.start + open.lines.length) {
      this.#formTable(table, true);
    }
    if (open.lines.length === 0) open.start = range?.from ?? 0;
    for (const line of lines) open.lines.push(line);
    addOrigin(open.origins, origin, lines.length);
    if (open.lines.length >= this.#batchSize) {
      this.#formBatches(false);
      this.#kick();
    }
  }

  /** Moves the oldest waiting batches to the spool until `lines` fit in memory, then buffers them. */
  async #makeRoomFor(table: TelemetryTable, lines: string[], origin: string): Promise<void> {
    if (this.#closing) throw new WriterOverloadedError(503, 1, 'the collector is shutting down');
    while (this.#memoryRows + lines.length > this.#maxBufferedRows) {
      if (this.#pending.length === 0) this.#formBatches(true);
      const batch = this.#pending.shift();
      if (!batch) break; // only the batch being inserted is left in memory
      try {
        await this.#spoolBatch(batch, true);
      } catch (error) {
        this.#pending.unshift(batch);
        throw error;
      }
    }
    if (this.#memoryRows + lines.length <= this.#maxBufferedRows) {
      await this.#log(table, lines, origin, (range) => this.#buffer(table, lines, origin, range));
      this.#kick(); // replays the spool once memory is drained, if ClickHouse answers
      return;
    }
    // More rows than memory can hold next to the insert in flight: they go to the spool as one batch.
    let batch: MemoryBatch | undefined;
    await this.#log(table, lines, origin, (range) => {
      this.#formTable(table, true); // the rows logged before these form their own batches
      batch = this.#newBatch(table, lines, [{ requestId: origin, rows: lines.length }], range);
    });
    await this.#spoolBatch(batch as MemoryBatch, true);
    this.#kick();
  }

  async #withRoomLock<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#roomLock;
    let release!: () => void;
    this.#roomLock = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Writes a batch to the spool; `inMemory` says its rows were counted in memory until now. */
  async #spoolBatch(batch: MemoryBatch, inMemory: boolean): Promise<void> {
    await this.#ensureLogged(batch);
    await this.#spool.write(toBatch(batch));
    if (inMemory) this.#memoryRows -= batch.lines.length;
    this.#release(batch);
    countRows('spooled', batch.table, batch.lines.length);
  }

  /** Moves batches an earlier process left in the log to the spool, then forgets them there. */
  async #spoolRecovered(): Promise<void> {
    const wal = this.#wal;
    if (wal && wal.recovered.length > 0) {
      try {
        for (const recovered of wal.recovered) {
          const { table, token, lines, origins } = recovered;
          await this.#spool.write(toBatch({ table, token, lines, origins }), { force: true });
        }
        wal.discardRecovered();
      } catch (error) {
        this.#logger?.error(
          { err: error, dir: wal.dir },
          'telemetry from an earlier run could not be moved from the write-ahead log to the spool; it stays in the log for the next start',
        );
      }
    }
    this.#kick();
  }

  #overloaded(cause: unknown): WriterOverloadedError {
    if (cause instanceof WalFullError) {
      return new WriterOverloadedError(
        503,
        this.#storeUp ? BEHIND_RETRY_AFTER_SECONDS : this.#retryAfter(),
        `the collector's write-ahead log is full (${cause.message}); retry later`,
        { cause },
      );
    }
    const status = this.#storeUp ? 429 : 503;
    const retryAfter = this.#storeUp ? BEHIND_RETRY_AFTER_SECONDS : this.#retryAfter();
    const why =
      cause instanceof SpoolFullError
        ? `the telemetry spool is full (${cause.message})`
        : `the collector cannot write to disk (${(cause as Error).message})`;
    const detail = this.#storeUp
      ? `the collector is behind ClickHouse and ${why}; retry later`
      : `ClickHouse is not accepting inserts and ${why}; retry later`;
    // A disk that cannot be written is an outage whatever ClickHouse does.
    const diskFailed = !(cause instanceof SpoolFullError);
    return new WriterOverloadedError(diskFailed ? 503 : status, retryAfter, detail, { cause });
  }

  #retryAfter(): number {
    return clamp(Math.ceil((this.#nextAttemptAt - Date.now()) / 1000), 1, MAX_RETRY_AFTER_SECONDS);
  }

  /** Cuts buffered rows into batches of at most `batchSize`; only full ones unless `all`. */
  #formBatches(all: boolean): void {
    for (const table of TELEMETRY_TABLES) this.#formTable(table, all);
  }

  #formTable(table: TelemetryTable, all: boolean): void {
    const open = this.#open[table];
    while (open.lines.length > 0 && (all || open.lines.length >= this.#batchSize)) {
      const lines = open.lines.splice(0, this.#batchSize);
      const range = this.#wal ? { from: open.start, to: open.start + lines.length } : undefined;
      open.start += lines.length;
      this.#pending.push(this.#newBatch(table, lines, takeOrigins(open.origins, lines.length), range));
    }
  }

  #newBatch(
    table: TelemetryTable,
    lines: string[],
    origins: Origin[],
    range: WalRange | undefined,
  ): MemoryBatch {
    const token = newId();
    const batch: MemoryBatch = { table, token, lines, origins, range, logged: undefined };
    if (this.#wal && range) batch.logged = this.#logBatch(batch, range);
    return batch;
  }

  /** Logs a batch's formation (token and rows); the batch is used only once that is on disk. */
  #logBatch(batch: MemoryBatch, range: WalRange): Promise<void> {
    const wal = this.#wal as WriteAheadLog;
    const logged = (async () => wal.appendBatch(batch.table, batch.token, range))();
    logged.catch(() => {}); // awaited where the batch is used
    return logged;
  }

  /** Waits for the batch's formation to be logged; a failed log write is tried again next time. */
  async #ensureLogged(batch: MemoryBatch): Promise<void> {
    if (!batch.logged || !batch.range) return;
    try {
      await batch.logged;
    } catch (error) {
      batch.logged = this.#logBatch(batch, batch.range);
      throw error;
    }
  }

  #release(batch: MemoryBatch): void {
    if (batch.range) this.#wal?.release(batch.table, batch.token, batch.range);
  }

  /** Runs the insert loop unless it is running (then it runs once more when done). */
  #kick(): void {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = this.#pump()
      .catch((error: unknown) => this.#logger?.error({ err: error }, 'telemetry insert loop failed'))
      .finally(() => {
        this.#pumping = undefined;
        if (this.#pumpAgain && !this.#closing) {
          this.#pumpAgain = false;
          this.#kick();
        }
      });
  }

  /** Inserts waiting batches, newest data in memory first, then spool files oldest first. */
  async #pump(): Promise<void> {
    while (!this.#closing) {
      if (!this.#storeUp && Date.now() < this.#nextAttemptAt) return;
      const batch = this.#pending.shift();
      if (batch) {
        if (await this.#insertFromMemory(batch)) continue;
        this.#pending.unshift(batch);
        return;
      }
      const entry = this.#spool.oldest();
      if (!entry) return;
      if (!(await this.#replay(entry))) return;
    }
  }

  /** One insert of a batch from memory; false when it failed and the batch is still to store. */
  async #insertFromMemory(batch: MemoryBatch): Promise<boolean> {
    try {
      await this.#ensureLogged(batch);
      const { table, token, lines } = batch;
      const refused = await this.#insert(table, token, lines.length, lines.join(''), () => lines);
      if (refused.length > 0) await this.#keepRefused(toBatch(batch), refused);
    } catch (error) {
      this.#failed(error);
      return false;
    }
    this.#memoryRows -= batch.lines.length;
    this.#release(batch);
    return true;
  }

  async #replay(entry: { name: string; bytes: number }): Promise<boolean> {
    let batch: Batch;
    try {
      batch = await this.#spool.read(entry);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.#spool.remove(entry); // removed by hand meanwhile
        return true;
      }
      if (!(error instanceof SpoolFileError)) {
        this.#failed(error);
        return false;
      }
      this.#logger?.error(
        { err: error, file: entry.name },
        'telemetry spool file is damaged; moved to rejected/',
      );
      await this.#spool.reject(entry, error.message);
      return true;
    }
    try {
      const { table, token, rows, body } = batch;
      const refused = await this.#insert(table, token, rows, body, () => linesOf(body));
      if (refused.length > 0) await this.#keepRefused(batch, refused);
    } catch (error) {
      this.#failed(error);
      return false;
    }
    // Deleting can fail after the insert succeeded: the file is then replayed and deduplicated.
    await this.#spool.remove(entry);
    return true;
  }

  /**
   * Keeps rows ClickHouse refused in the spool's rejected/ directory, each with its org, request
   * and reason, and counts them. Not being able to keep them is logged; they are dropped then.
   */
  async #keepRefused(batch: Batch, refused: RefusedRow[]): Promise<void> {
    const requestIds = requestIdsOf(batch.origins, batch.rows);
    const rows = refused.map((r) => ({
      orgId: orgOfLine(r.line),
      requestId: requestIds?.[r.index] ?? '',
      reason: r.reason,
      line: lineAsObject(batch.table, r.line),
    }));
    const counter = instruments().invalid;
    for (const row of rows) counter.add(1, { 'pylee.table': batch.table, 'pylee.org': row.orgId });
    this.#logger?.error(
      {
        table: batch.table,
        token: batch.token,
        rows: rows.length,
        of: batch.rows,
        orgs: [...new Set(rows.map((r) => r.orgId))],
        requests: [...new Set(rows.map((r) => r.requestId))].slice(0, 20),
        reason: rows[0]?.reason,
        dir: this.#spool.rejectedDir,
      },
      'ClickHouse refused telemetry rows for their values; kept them in the spool rejected/ directory and stored the rest of the batch',
    );
    try {
      await this.#spool.writeRejectedRows(batch.table, batch.token, rows);
    } catch (error) {
      this.#logger?.error(
        { err: error, rows: rows.length, table: batch.table },
        'refused telemetry rows could not be kept on disk; dropped',
      );
    }
  }

  /** Inserts a batch (isolating rows ClickHouse refuses) and records the outcome. */
  async #insert(
    table: TelemetryTable,
    token: string,
    rows: number,
    body: string,
    lines: () => readonly string[],
  ): Promise<RefusedRow[]> {
    const started = performance.now();
    let outcome = 'ok';
    try {
      const refused = await insertIsolating(this.#warehouse, table, token, body, lines);
      countRows('inserted', table, rows - refused.length);
      instruments().batchSize.record(rows, { 'pylee.table': table });
      if (!this.#storeUp) {
        this.#logger?.info({ failures: this.#failures }, 'ClickHouse accepts telemetry inserts again');
      }
      this.#storeUp = true;
      this.#failures = 0;
      return refused;
    } catch (error) {
      outcome = 'error';
      throw error;
    } finally {
      instruments().insertDuration.record((performance.now() - started) / 1000, {
        'pylee.table': table,
        'pylee.outcome': outcome,
      });
    }
  }

  #failed(error: unknown): void {
    this.#failures++;
    const delay = Math.min(this.#maxRetryDelayMs, this.#minRetryDelayMs * 2 ** (this.#failures - 1));
    this.#nextAttemptAt = Date.now() + delay;
    if (this.#storeUp || this.#failures % 10 === 0) {
      this.#logger?.warn(
        { err: error, failures: this.#failures, retryInMs: delay, ...this.stats() },
        'telemetry insert failed; rows stay queued and are retried',
      );
    }
    this.#storeUp = false;
    clearTimeout(this.#retryTimer);
    if (this.#closing) return;
    this.#retryTimer = setTimeout(() => this.#kick(), delay);
    this.#retryTimer.unref();
  }
}

function toBatch(batch: Pick<MemoryBatch, 'table' | 'token' | 'lines' | 'origins'>): Batch {
  const { table, token, lines, origins } = batch;
  return { table, token, rows: lines.length, body: lines.join(''), origins };
}

function addOrigin(origins: Origin[], requestId: string, rows: number): void {
  const last = origins[origins.length - 1];
  if (last?.requestId === requestId) last.rows += rows;
  else origins.push({ requestId, rows });
}

/** Removes the first `rows` rows' origins from `origins` and returns them. */
function takeOrigins(origins: Origin[], rows: number): Origin[] {
  const taken: Origin[] = [];
  let left = rows;
  while (left > 0 && origins.length > 0) {
    const first = origins[0] as Origin;
    if (first.rows <= left) {
      taken.push(origins.shift() as Origin);
      left -= first.rows;
    } else {
      taken.push({ requestId: first.requestId, rows: left });
      first.rows -= left;
      left = 0;
    }
  }
  return taken;
}

/** The request id of each row, when the origins account for every one. */
function requestIdsOf(origins: Origin[] | undefined, rows: number): string[] | undefined {
  if (!origins) return undefined;
  const ids: string[] = [];
  for (const origin of origins) for (let i = 0; i < origin.rows; i++) ids.push(origin.requestId);
  return ids.length === rows ? ids : undefined;
}

function linesOf(body: string): string[] {
  const lines = body.split('\n');
  lines.pop();
  return lines.map((line) => `${line}\n`);
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
