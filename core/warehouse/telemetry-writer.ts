import path from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { metrics, type Counter, type Histogram, type MeterProvider } from '@opentelemetry/api';
import { AppError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import { isClickHouseError, type Warehouse } from './client.ts';
import type { MetricPointRow, RequestRow } from './rows.ts';
import { Spool, SpoolFileError, SpoolFullError, type Batch, type TelemetryTable } from './spool.ts';

export { TELEMETRY_TABLES, type TelemetryTable } from './spool.ts';

/**
 * The writer cannot take more rows now: the caller answers with `status` and a `Retry-After` of
 * `retryAfterSeconds`, as the OTLP specification asks. 503 when ClickHouse is failing, 429 when
 * it answers but the writer is behind. Nothing of the refused call was kept.
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
  /** Spool directory is `<dataDir>/spool` unless {@link spoolDir} is given. */
  dataDir: string;
  /** @defaultValue `<dataDir>/spool` */
  spoolDir?: string;
  logger?: Logger;
  /** Rows per insert; a table's buffer reaching it is flushed at once. @defaultValue 10000 */
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
  /** False after a failed insert, until one succeeds. */
  storeUp: boolean;
}

/** ClickHouse codes that say the rows themselves are wrong: retrying the same batch cannot succeed. */
const DATA_ERROR_CODES = new Set([
  '6', // CANNOT_PARSE_TEXT
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
]);

/** Retry-After when ClickHouse answers but the writer is behind. */
const BEHIND_RETRY_AFTER_SECONDS = 5;
const MAX_RETRY_AFTER_SECONDS = 60;

/**
 * Buffers request rows and metric points and inserts them into ClickHouse in batches, by size or
 * after {@link TelemetryWriterOptions.flushIntervalMs}. `write*` resolves once the rows are
 * accepted, in memory or durably spooled; after that they are stored exactly once:
 *
 * - every batch gets a UUIDv7 `insert_deduplication_token` when it is formed and keeps it through
 *   every retry and the spool, and the tables keep a deduplication window, so an insert that
 *   succeeded but whose answer was lost is not counted twice on retry;
 * - memory is bounded: past `maxBufferedRows` the oldest formed batches are written to
 *   `<dataDir>/spool/` (one file per batch: token, table and JSONEachRow rows, fsynced);
 * - past `maxSpoolBytes`, or when the spool cannot be written, `write*` throws
 *   {@link WriterOverloadedError} and keeps nothing of that call;
 * - a background loop inserts spool files oldest first with exponential backoff while ClickHouse
 *   fails, deleting each after its insert; files left by an earlier process are replayed at start;
 * - `close()` inserts (or spools) everything in memory.
 */
export class TelemetryWriter {
  readonly #warehouse: Warehouse;
  readonly #logger: Logger | undefined;
  readonly #spool: Spool;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #maxBufferedRows: number;
  readonly #minRetryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #timer: NodeJS.Timeout;

  /** Rows not yet in a batch, per table. */
  readonly #open: Record<TelemetryTable, object[]> = { requests: [], metric_points: [] };
  /** Formed batches waiting for their insert, oldest first (the one being inserted is not here). */
  readonly #pending: Batch[] = [];
  /** Rows in memory, wherever they are; the bound applies to this. */
  #memoryRows = 0;

  #storeUp = true;
  #failures = 0;
  #nextAttemptAt = 0;
  #retryTimer: NodeJS.Timeout | undefined;

  #pumping: Promise<void> | undefined;
  #pumpAgain = false;
  /** Serializes the slow path of `write*` (moving batches to the spool to make room). */
  #roomLock: Promise<void> = Promise.resolve();
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(warehouse: Warehouse, options: TelemetryWriterOptions) {
    this.#warehouse = warehouse;
    this.#logger = options.logger;
    this.#batchSize = positive('batchSize', options.batchSize ?? 10_000);
    this.#flushIntervalMs = positive('flushIntervalMs', options.flushIntervalMs ?? 1000);
    this.#maxBufferedRows = positive('maxBufferedRows', options.maxBufferedRows ?? 200_000);
    this.#minRetryDelayMs = positive('minRetryDelayMs', options.minRetryDelayMs ?? 500);
    this.#maxRetryDelayMs = Math.max(this.#minRetryDelayMs, options.maxRetryDelayMs ?? 30_000);
    this.#spool = new Spool(options.spoolDir ?? path.join(options.dataDir, 'spool'), {
      maxBytes: positive('maxSpoolBytes', options.maxSpoolBytes ?? 1024 ** 3),
    });
    this.#timer = setInterval(() => {
      // While ClickHouse fails, rows gather into full batches: fewer, larger spool files and inserts.
      this.#formBatches(this.#storeUp);
      this.#kick();
    }, this.#flushIntervalMs);
    this.#timer.unref();
    live.add(this);
    instruments();
    if (this.#spool.files > 0) {
      this.#logger?.info(
        { files: this.#spool.files, bytes: this.#spool.bytes, dir: this.#spool.dir },
        'telemetry spool holds batches from an earlier run; replaying them',
      );
      this.#kick();
    }
  }

  /**
   * Accepts request rows: resolves once they are buffered or spooled, not necessarily inserted.
   * The rows are kept by reference until their batch is formed: do not change them afterwards.
   * Throws {@link WriterOverloadedError} (and keeps none of them) when they cannot be accepted.
   */
  writeRequests(rows: readonly RequestRow[]): Promise<void> {
    return this.#accept('requests', rows);
  }

  /** Accepts metric points, as {@link writeRequests} accepts request rows. */
  writeMetricPoints(rows: readonly MetricPointRow[]): Promise<void> {
    return this.#accept('metric_points', rows);
  }

  /**
   * Inserts everything in memory and then the spool, now, even while backing off after a failure.
   * Resolves when there is nothing left or an insert failed (the rows stay queued).
   */
  async flush(): Promise<void> {
    this.#formBatches(true);
    this.#nextAttemptAt = 0;
    this.#kick();
    while (this.#pumping) await this.#pumping;
  }

  stats(): TelemetryWriterStats {
    return {
      bufferedRows: this.#memoryRows,
      spoolFiles: this.#spool.files,
      spoolBytes: this.#spool.bytes,
      storeUp: this.#storeUp,
    };
  }

  /**
   * Stops accepting rows (later `write*` calls throw a 503 {@link WriterOverloadedError}) and
   * inserts what memory holds, or spools it when ClickHouse fails. Spool files stay for the next
   * start. Rejects only when some rows could be neither inserted nor spooled.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retryTimer);
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
        lost += batch.rows;
        lastError = error;
        this.#memoryRows -= batch.rows;
      }
    }
    live.delete(this);
    if (lost > 0) {
      this.#logger?.error(
        { err: lastError, rows: lost },
        'telemetry rows could be neither inserted nor spooled at shutdown',
      );
      throw new Error(`${lost} telemetry rows could be neither inserted nor spooled`, { cause: lastError });
    }
  }

  async #accept(table: TelemetryTable, rows: readonly object[]): Promise<void> {
    if (this.#closing) {
      this.#count('rejected', table, rows.length, 503);
      throw new WriterOverloadedError(
        503,
        1,
        'the collector is shutting down; retry against another instance or after it restarts',
      );
    }
    if (rows.length === 0) return;
    if (this.#memoryRows + rows.length <= this.#maxBufferedRows) {
      this.#buffer(table, rows);
    } else if (this.#storeUp) {
      // ClickHouse answers but is behind: push back rather than grow the spool, which is for outages.
      this.#count('rejected', table, rows.length, 429);
      throw new WriterOverloadedError(
        429,
        BEHIND_RETRY_AFTER_SECONDS,
        `the collector is behind ClickHouse (${this.#memoryRows} rows waiting to be inserted); retry later`,
      );
    } else {
      try {
        await this.#withRoomLock(() => this.#makeRoomFor(table, rows));
      } catch (error) {
        const overload = error instanceof WriterOverloadedError ? error : this.#overloaded(error);
        this.#count('rejected', table, rows.length, overload.status);
        throw overload;
      }
    }
    this.#count('accepted', table, rows.length);
  }

  #buffer(table: TelemetryTable, rows: readonly object[]): void {
    const open = this.#open[table];
    for (const row of rows) open.push(row);
    this.#memoryRows += rows.length;
    if (open.length >= this.#batchSize) {
      this.#formBatches(false);
      this.#kick();
    }
  }

  /** Moves the oldest waiting batches to the spool until `rows` fit in memory, then buffers them. */
  async #makeRoomFor(table: TelemetryTable, rows: readonly object[]): Promise<void> {
    if (this.#closing) throw new WriterOverloadedError(503, 1, 'the collector is shutting down');
    while (this.#memoryRows + rows.length > this.#maxBufferedRows) {
      if (this.#pending.length === 0) this.#formBatches(true);
      const batch = this.#pending.shift();
      if (!batch) break; // only the batch being inserted is left in memory
      try {
        await this.#spoolBatch(batch, true);
      } catch (error) {
        this.#pending.unshift(batch);
        throw this.#overloaded(error);
      }
    }
    if (this.#memoryRows + rows.length <= this.#maxBufferedRows) {
      this.#buffer(table, rows);
      this.#kick(); // replays the spool once memory is drained, if ClickHouse answers
      return;
    }
    // More rows than memory can hold next to the insert in flight: they go to the spool as one batch.
    try {
      await this.#spoolBatch(this.#newBatch(table, rows), false);
    } catch (error) {
      throw this.#overloaded(error);
    }
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
  async #spoolBatch(batch: Batch, inMemory: boolean): Promise<void> {
    await this.#spool.write(batch);
    if (inMemory) this.#memoryRows -= batch.rows;
    this.#count('spooled', batch.table, batch.rows);
  }

  #overloaded(cause: unknown): WriterOverloadedError {
    const status = this.#storeUp ? 429 : 503;
    const retryAfter = this.#storeUp
      ? BEHIND_RETRY_AFTER_SECONDS
      : clamp(Math.ceil((this.#nextAttemptAt - Date.now()) / 1000), 1, MAX_RETRY_AFTER_SECONDS);
    const why =
      cause instanceof SpoolFullError
        ? `the telemetry spool is full (${cause.message})`
        : `the telemetry spool cannot be written (${(cause as Error).message})`;
    const detail = this.#storeUp
      ? `the collector is behind ClickHouse and ${why}; retry later`
      : `ClickHouse is not accepting inserts and ${why}; retry later`;
    return new WriterOverloadedError(status, retryAfter, detail, { cause });
  }

  /** Cuts buffered rows into batches of at most `batchSize`; only full ones unless `all`. */
  #formBatches(all: boolean): void {
    for (const table of ['requests', 'metric_points'] as const) {
      const open = this.#open[table];
      while (open.length > 0 && (all || open.length >= this.#batchSize)) {
        this.#pending.push(this.#newBatch(table, open.splice(0, this.#batchSize)));
      }
    }
  }

  #newBatch(table: TelemetryTable, rows: readonly object[]): Batch {
    let body = '';
    for (const row of rows) body += `${JSON.stringify(row)}\n`;
    return { table, token: newId(), rows: rows.length, body };
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

  /** One insert of a batch from memory; false when ClickHouse failed and the batch is still to store. */
  async #insertFromMemory(batch: Batch): Promise<boolean> {
    try {
      await this.#insert(batch);
      this.#memoryRows -= batch.rows;
      return true;
    } catch (error) {
      if (isRefusedData(error)) {
        this.#memoryRows -= batch.rows;
        await this.#park(batch, error);
        return true;
      }
      this.#failed(error);
      return false;
    }
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
      await this.#insert(batch);
    } catch (error) {
      if (!isRefusedData(error)) {
        this.#failed(error);
        return false;
      }
      this.#logger?.error(
        { err: error, file: entry.name, rows: batch.rows },
        'ClickHouse refused a spooled telemetry batch; moved to rejected/',
      );
      await this.#spool.reject(entry, (error as Error).message);
      return true;
    }
    // Deleting can fail after the insert succeeded: the file is then replayed and deduplicated.
    await this.#spool.remove(entry);
    return true;
  }

  /** Keeps a batch ClickHouse refused for its content in the spool's rejected/ directory. */
  async #park(batch: Batch, error: unknown): Promise<void> {
    try {
      await this.#spool.writeRejected(batch, (error as Error).message);
      this.#logger?.error(
        {
          err: error,
          rows: batch.rows,
          table: batch.table,
          token: batch.token,
          dir: this.#spool.rejectedDir,
        },
        'ClickHouse refused a telemetry batch; kept in the spool rejected/ directory',
      );
    } catch (writeError) {
      this.#logger?.error(
        { err: error, writeError, rows: batch.rows, table: batch.table },
        'ClickHouse refused a telemetry batch and it could not be kept on disk; dropped',
      );
    }
  }

  async #insert(batch: Batch): Promise<void> {
    const started = performance.now();
    let outcome = 'ok';
    try {
      await insertBatch(this.#warehouse, batch);
      this.#count('inserted', batch.table, batch.rows);
      instruments().batchSize.record(batch.rows, { 'pylee.table': batch.table });
      if (!this.#storeUp) {
        this.#logger?.info({ failures: this.#failures }, 'ClickHouse accepts telemetry inserts again');
      }
      this.#storeUp = true;
      this.#failures = 0;
    } catch (error) {
      outcome = 'error';
      throw error;
    } finally {
      instruments().insertDuration.record((performance.now() - started) / 1000, {
        'pylee.table': batch.table,
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

  #count(
    what: 'accepted' | 'rejected' | 'spooled' | 'inserted',
    table: TelemetryTable,
    rows: number,
    status?: number,
  ) {
    const i = instruments();
    const attributes = { 'pylee.table': table };
    if (what === 'accepted') i.accepted.add(rows, attributes);
    else if (what === 'spooled') i.spooled.add(rows, attributes);
    else if (what === 'inserted') i.inserted.add(rows, attributes);
    else i.rejected.add(rows, { ...attributes, 'http.response.status_code': status ?? 503 });
  }
}

/**
 * One insert with its deduplication token. On a ClickHouse server the token goes in the request's
 * settings; on chDB in the statement's SETTINGS clause, because the chDB connection applies
 * `clickhouse_settings` with session-wide `SET`s, and a token left behind in the session would
 * deduplicate the next, unrelated insert.
 */
async function insertBatch(warehouse: Warehouse, batch: Batch): Promise<void> {
  const values = Readable.from([batch.body]);
  const result =
    warehouse.driver === 'chdb'
      ? await warehouse.client.exec({
          query: `INSERT INTO ${batch.table} SETTINGS insert_deduplication_token = {token:String}, date_time_input_format = 'best_effort' FORMAT JSONEachRow`,
          query_params: { token: batch.token },
          values,
        })
      : await warehouse.client.exec({
          query: `INSERT INTO ${batch.table} FORMAT JSONEachRow`,
          values,
          clickhouse_settings: {
            insert_deduplication_token: batch.token,
            date_time_input_format: 'best_effort',
          },
        });
  result.stream.resume();
  await finished(result.stream);
}

function isRefusedData(error: unknown): boolean {
  return isClickHouseError(error) && DATA_ERROR_CODES.has(String((error as { code?: unknown }).code));
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

// Self-telemetry. Instruments are made from the meter provider registered when they are first
// needed, and again when another one is registered (self-telemetry starts after the writer, or
// restarts in tests); the gauges report over every open writer.
interface WriterInstruments {
  provider: MeterProvider;
  accepted: Counter;
  rejected: Counter;
  spooled: Counter;
  inserted: Counter;
  batchSize: Histogram;
  insertDuration: Histogram;
}

const live = new Set<TelemetryWriter>();
let current: WriterInstruments | undefined;

function instruments(): WriterInstruments {
  const provider = metrics.getMeterProvider();
  if (current?.provider === provider) return current;
  const meter = provider.getMeter('pylee');
  const rows = (name: string, description: string) =>
    meter.createCounter(name, { description, unit: '{row}' });
  current = {
    provider,
    accepted: rows(
      'pylee.collector.rows.accepted',
      'Spans (request rows) and metric points the writer accepted',
    ),
    rejected: rows(
      'pylee.collector.rows.rejected',
      'Rows refused with 429 or 503 because the writer was overloaded',
    ),
    spooled: rows(
      'pylee.collector.rows.spooled',
      'Rows written to the on-disk spool while ClickHouse was slow or down',
    ),
    inserted: rows('pylee.collector.rows.inserted', 'Rows inserted into ClickHouse'),
    batchSize: meter.createHistogram('pylee.collector.batch.size', {
      description: 'Rows per ClickHouse insert',
      unit: '{row}',
      advice: {
        explicitBucketBoundaries: [1, 10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000],
      },
    }),
    insertDuration: meter.createHistogram('pylee.collector.insert.duration', {
      description: 'Duration of ClickHouse inserts of telemetry batches',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
    }),
  };
  meter
    .createObservableGauge('pylee.collector.queue.depth', {
      description: 'Rows held in memory by the telemetry writer',
      unit: '{row}',
    })
    .addCallback((result) => result.observe(sum((s) => s.bufferedRows)));
  meter
    .createObservableGauge('pylee.collector.spool.bytes', {
      description: 'Size of the telemetry spool on disk',
      unit: 'By',
    })
    .addCallback((result) => result.observe(sum((s) => s.spoolBytes)));
  meter
    .createObservableGauge('pylee.collector.spool.files', {
      description: 'Batches waiting in the telemetry spool',
      unit: '{file}',
    })
    .addCallback((result) => result.observe(sum((s) => s.spoolFiles)));
  return current;
}

function sum(pick: (stats: TelemetryWriterStats) => number): number {
  let total = 0;
  for (const writer of live) total += pick(writer.stats());
  return total;
}
