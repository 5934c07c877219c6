import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import { perTable, TELEMETRY_TABLES, type Origin, type TelemetryTable } from './spool.ts';

const writev = promisify(fs.writev);
const fdatasync = promisify(fs.fdatasync);

const FORMAT = 'pylee-wal/1';
const SEGMENT = /^(\d{12})\.wal$/;
/** Length (u32 LE) and CRC-32 (u32 LE) of the payload, before every record. */
const FRAME_BYTES = 8;

/** The log is at its size bound: nothing was appended; answer 503 with Retry-After. */
export class WalFullError extends Error {
  constructor(bytes: number, maxBytes: number) {
    super(`the write-ahead log holds ${bytes} bytes and its limit is ${maxBytes}`);
    this.name = 'WalFullError';
  }
}

export interface WalOptions {
  logger?: Logger | undefined;
  /** Largest total size of the segments; an append past it throws {@link WalFullError}. @defaultValue 512 MiB */
  maxBytes?: number | undefined;
  /** A segment past this size is closed and a new one begun. @defaultValue 8 MiB */
  segmentBytes?: number | undefined;
  /** Rows per batch formed at recovery from rows that were never in a batch. @defaultValue 10000 */
  batchSize?: number | undefined;
}

/** A batch rebuilt from the log of an earlier process, with the token every earlier attempt used. */
export interface RecoveredBatch {
  table: TelemetryTable;
  token: string;
  lines: string[];
  origins: Origin[];
}

/** Where rows were appended: their positions `[from, from + rows)` in their table's sequence. */
export interface WalRange {
  from: number;
  to: number;
}

interface Segment {
  file: string;
  bytes: number;
  /** One past the highest row position per table in this segment (0: none). */
  end: Record<TelemetryTable, number>;
}

interface Group {
  buffers: Buffer[];
  bytes: number;
  /** Whether a waiter needs it on disk (done records alone are written without a sync). */
  sync: boolean;
  rows: { table: TelemetryTable; to: number }[];
  onDurable: (() => void)[];
  waiters: { resolve(): void; reject(error: unknown): void }[];
}

type Header =
  | { t: 'rows'; table: TelemetryTable; pos: number; rows: number; origin: string }
  | { t: 'batch'; table: TelemetryTable; token: string; from: number; to: number }
  | { t: 'done'; token: string };

/**
 * The collector's write-ahead log: every accepted request's rows are appended here and on disk
 * (fdatasync) before the request is answered, so a kill -9 loses nothing that was acknowledged.
 *
 * - Group commit: appends made while a write is in flight share the next write and its one
 *   `fdatasync`, so the cost per request falls as load rises.
 * - Rows get positions in their table's sequence. Before a batch of them is inserted or spooled
 *   its formation (token and position range) is logged too, so after a crash the same rows are
 *   retried with the same `insert_deduplication_token` and ClickHouse stores them once.
 * - A batch that is in ClickHouse or the spool is released; a segment whose rows are all released
 *   is deleted. The log therefore holds about what the writer holds in memory, plus one segment.
 * - At start, {@link WriteAheadLog.open} reads what an earlier process left (stopping at a torn
 *   tail: a write that never finished was never acknowledged) and returns it as batches; the caller
 *   moves them to the spool and then calls {@link WriteAheadLog.discardRecovered}.
 */
export class WriteAheadLog {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #segmentBytes: number;
  readonly #logger: Logger | undefined;
  readonly #generation = newId();
  readonly #segments: Segment[] = [];
  /** Segments left by an earlier process, deleted once their batches are spooled. */
  #recoveredFiles: string[] = [];
  #recovered: RecoveredBatch[] = [];
  #fd = -1;
  #size = 0;
  #nextSegment = 1;
  readonly #next = perTable(() => 0);
  /** All rows below this position are released. */
  readonly #released = perTable(() => 0);
  /** Released ranges above the watermark: from → to. */
  readonly #releasedAhead = perTable(() => new Map<number, number>());
  #queue: Group = emptyGroup();
  #writing = false;
  #closed = false;
  #bytes = 0;

  private constructor(dir: string, options: WalOptions) {
    this.dir = dir;
    this.maxBytes = options.maxBytes ?? 512 * 1024 ** 2;
    this.#segmentBytes = options.segmentBytes ?? 8 * 1024 ** 2;
    this.#logger = options.logger;
  }

  /** Opens the log in `dir`, reading what an earlier process left; see {@link recovered}. */
  static open(dir: string, options: WalOptions = {}): WriteAheadLog {
    fs.mkdirSync(dir, { recursive: true });
    const wal = new WriteAheadLog(dir, options);
    wal.#recover(options.batchSize ?? 10_000);
    wal.#openSegment();
    return wal;
  }

  /** Batches an earlier process logged but may not have stored, oldest first. */
  get recovered(): readonly RecoveredBatch[] {
    return this.#recovered;
  }

  /** Total size of the segments on disk, in bytes. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Appends rows (lines of row-encoding.ts, each ending with `\n`). Resolves once they are on disk; then,
   * and before any later append's `onDurable`, `onDurable` runs with their position range. Rejects
   * (and `onDurable` never runs) when the write fails; throws {@link WalFullError} at the bound.
   */
  appendRows(
    table: TelemetryTable,
    lines: readonly string[],
    origin: string,
    onDurable: (range: WalRange) => void,
  ): Promise<void> {
    if (this.#bytes + this.#queue.bytes > this.maxBytes) {
      throw new WalFullError(this.#bytes + this.#queue.bytes, this.maxBytes);
    }
    const from = this.#next[table];
    const to = from + lines.length;
    this.#next[table] = to;
    const header: Header = { t: 'rows', table, pos: from, rows: lines.length, origin };
    const group = this.#enqueue(header, lines.join(''), true);
    group.rows.push({ table, to });
    group.onDurable.push(() => onDurable({ from, to }));
    return this.#wait(group);
  }

  /** Logs that rows `[from, to)` of `table` form the batch `token`; resolves once that is on disk. */
  appendBatch(table: TelemetryTable, token: string, range: WalRange): Promise<void> {
    return this.#wait(this.#enqueue({ t: 'batch', table, token, ...range }, '', true));
  }

  /**
   * The batch `token` of rows `[from, to)` is in ClickHouse, the spool or rejected/: its rows are
   * no longer needed here. Logged without waiting for a sync (a lost record only means a replay
   * that ClickHouse deduplicates).
   */
  release(table: TelemetryTable, token: string, range: WalRange): void {
    if (this.#closed) return;
    this.#enqueue({ t: 'done', token }, '', false);
    this.#kick();
    if (range.to <= range.from) return;
    const ahead = this.#releasedAhead[table];
    ahead.set(range.from, range.to);
    let mark = this.#released[table];
    for (let to = ahead.get(mark); to !== undefined; to = ahead.get(mark)) {
      ahead.delete(mark);
      mark = to;
    }
    this.#released[table] = mark;
    this.#dropReleasedSegments();
  }

  /** Deletes the segments an earlier process left, once their batches are safe elsewhere. */
  discardRecovered(): void {
    for (const file of this.#recoveredFiles) fs.rmSync(path.join(this.dir, file), { force: true });
    if (this.#recoveredFiles.length > 0) syncDir(this.dir);
    this.#recoveredFiles = [];
    this.#recovered = [];
  }

  /**
   * Waits for appends in flight and closes the file. With `discard`, everything was stored: the
   * segments are deleted.
   */
  async close(discard: boolean): Promise<void> {
    while (this.#writing) await new Promise((resolve) => setImmediate(resolve));
    this.#closed = true;
    if (this.#fd >= 0) fs.closeSync(this.#fd);
    this.#fd = -1;
    if (!discard) return;
    for (const segment of this.#segments) fs.rmSync(path.join(this.dir, segment.file), { force: true });
    this.#segments.length = 0;
    this.#bytes = 0;
    syncDir(this.dir);
  }

  #enqueue(header: Header, body: string, sync: boolean): Group {
    if (this.#closed) throw new Error('the write-ahead log is closed');
    const [head, payload] = frame(header, body);
    const group = this.#queue;
    group.buffers.push(head, payload);
    group.bytes += FRAME_BYTES + payload.length;
    if (sync) group.sync = true;
    return group;
  }

  #wait(group: Group): Promise<void> {
    const done = new Promise<void>((resolve, reject) => group.waiters.push({ resolve, reject }));
    this.#kick();
    return done;
  }

  #kick(): void {
    if (this.#writing) return;
    this.#writing = true;
    // setImmediate: appends made in this turn of the event loop join the same write.
    setImmediate(() => void this.#drain());
  }

  async #drain(): Promise<void> {
    while (this.#queue.buffers.length > 0) {
      const group = this.#queue;
      this.#queue = emptyGroup();
      if (this.#fd < 0) {
        try {
          this.#openSegment();
        } catch (error) {
          for (const waiter of group.waiters) waiter.reject(error);
          continue;
        }
      }
      const segment = this.#segments[this.#segments.length - 1] as Segment;
      try {
        await writev(this.#fd, group.buffers, this.#size);
        if (group.sync) await fdatasync(this.#fd);
      } catch (error) {
        this.#writeFailed(error);
        for (const waiter of group.waiters) waiter.reject(error);
        continue;
      }
      this.#size += group.bytes;
      segment.bytes += group.bytes;
      this.#bytes += group.bytes;
      for (const { table, to } of group.rows) segment.end[table] = Math.max(segment.end[table], to);
      for (const onDurable of group.onDurable) {
        try {
          onDurable();
        } catch (error) {
          this.#logger?.error({ err: error }, 'write-ahead log callback failed');
        }
      }
      for (const waiter of group.waiters) waiter.resolve();
      if (this.#size >= this.#segmentBytes) this.#rotate();
    }
    this.#writing = false;
  }

  /** A failed write may have left part of a group on disk: cut it off, or go on in a new segment. */
  #writeFailed(error: unknown): void {
    this.#logger?.error({ err: error, dir: this.dir }, 'write-ahead log write failed');
    try {
      fs.ftruncateSync(this.#fd, this.#size);
    } catch {
      this.#rotate();
    }
  }

  #openSegment(): void {
    const file = `${String(this.#nextSegment++).padStart(12, '0')}.wal`;
    const header = Buffer.from(
      `${JSON.stringify({ format: FORMAT, generation: this.#generation, next: this.#next })}\n`,
    );
    const fd = fs.openSync(path.join(this.dir, file), 'wx');
    fs.writeSync(fd, header, 0, header.length, 0);
    fs.fdatasyncSync(fd);
    syncDir(this.dir);
    this.#fd = fd;
    this.#size = header.length;
    this.#bytes += header.length;
    this.#segments.push({ file, bytes: header.length, end: perTable(() => 0) });
  }

  /** Writes a whole closed segment of batch records for `generation`; returns its file name. */
  #writeSegment(generation: string, batches: LoggedBatch[]): string {
    const file = `${String(this.#nextSegment++).padStart(12, '0')}.wal`;
    const buffers: Buffer[] = [Buffer.from(`${JSON.stringify({ format: FORMAT, generation })}\n`)];
    for (const { table, token, from, to } of batches) {
      buffers.push(...frame({ t: 'batch', table, token, from, to }, ''));
    }
    const fd = fs.openSync(path.join(this.dir, file), 'wx');
    try {
      fs.writevSync(fd, buffers);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    syncDir(this.dir);
    return file;
  }

  #rotate(): void {
    try {
      fs.closeSync(this.#fd);
    } catch {
      // already unusable
    }
    this.#fd = -1;
    try {
      this.#openSegment();
    } catch (error) {
      this.#logger?.error({ err: error, dir: this.dir }, 'write-ahead log cannot begin a new segment');
    }
    this.#dropReleasedSegments();
  }

  /** Deletes the oldest closed segments whose rows are all released (oldest first, so a suffix stays). */
  #dropReleasedSegments(): void {
    let dropped = false;
    while (this.#segments.length > 1) {
      const oldest = this.#segments[0] as Segment;
      if (TELEMETRY_TABLES.some((t) => oldest.end[t] > this.#released[t])) break;
      fs.rmSync(path.join(this.dir, oldest.file), { force: true });
      this.#segments.shift();
      this.#bytes -= oldest.bytes;
      dropped = true;
    }
    if (dropped) syncDir(this.dir);
  }

  #recover(batchSize: number): void {
    const files = fs
      .readdirSync(this.dir)
      .filter((f) => SEGMENT.test(f))
      .sort();
    if (files.length === 0) return;
    this.#nextSegment = Number(SEGMENT.exec(files[files.length - 1] as string)?.[1]) + 1;
    const generations = new Map<string, GenerationLog>();
    let torn = 0;
    for (const file of files) {
      const read = readSegment(path.join(this.dir, file));
      torn += read.tornBytes;
      if (read.generation) {
        let log = generations.get(read.generation);
        if (!log) generations.set(read.generation, (log = { rows: [], batches: [], done: new Set() }));
        log.rows.push(...read.rows);
        log.batches.push(...read.batches);
        for (const token of read.done) log.done.add(token);
      }
    }
    this.#recoveredFiles = files;
    for (const [generation, log] of generations) {
      const fresh: LoggedBatch[] = [];
      this.#recovered.push(...rebuild(log, batchSize, fresh));
      // Rows that were never in a batch get their batches logged (in their generation) before they
      // are used, so a crash during recovery rebuilds the same batches with the same tokens.
      if (fresh.length > 0) this.#recoveredFiles.push(this.#writeSegment(generation, fresh));
    }
    this.#logger?.info(
      {
        dir: this.dir,
        segments: files.length,
        batches: this.#recovered.length,
        rows: this.#recovered.reduce((n, b) => n + b.lines.length, 0),
        tornBytes: torn,
      },
      'write-ahead log holds telemetry from an earlier run; moving it to the spool',
    );
  }
}

interface LoggedRows {
  table: TelemetryTable;
  pos: number;
  origin: string;
  lines: string[];
}

interface LoggedBatch {
  table: TelemetryTable;
  token: string;
  from: number;
  to: number;
}

interface GenerationLog {
  rows: LoggedRows[];
  batches: LoggedBatch[];
  done: Set<string>;
}

interface SegmentRead {
  generation: string | undefined;
  rows: LoggedRows[];
  batches: LoggedBatch[];
  done: string[];
  tornBytes: number;
}

/** Reads one segment up to its first incomplete or damaged record. */
function readSegment(file: string): SegmentRead {
  const data = fs.readFileSync(file);
  const read: SegmentRead = { generation: undefined, rows: [], batches: [], done: [], tornBytes: 0 };
  const newline = data.indexOf(10);
  if (newline < 0) return { ...read, tornBytes: data.length };
  try {
    const header = JSON.parse(data.subarray(0, newline).toString('utf8')) as {
      format?: unknown;
      generation?: unknown;
    };
    if (header.format !== FORMAT || typeof header.generation !== 'string') return read;
    read.generation = header.generation;
  } catch {
    return { ...read, tornBytes: data.length };
  }
  let offset = newline + 1;
  while (offset + FRAME_BYTES <= data.length) {
    const length = data.readUInt32LE(offset);
    const end = offset + FRAME_BYTES + length;
    if (end > data.length) break;
    const payload = data.subarray(offset + FRAME_BYTES, end);
    if (crc32(payload) !== data.readUInt32LE(offset + 4)) break;
    const split = payload.indexOf(10);
    const header = JSON.parse(payload.subarray(0, split).toString('utf8')) as Header;
    if (header.t === 'rows') {
      const body = payload.subarray(split + 1).toString('utf8');
      const lines = body.split('\n');
      lines.pop(); // after the last newline
      read.rows.push({
        table: header.table,
        pos: header.pos,
        origin: header.origin,
        lines: lines.map((line) => `${line}\n`),
      });
    } else if (header.t === 'batch') {
      read.batches.push(header);
    } else {
      read.done.push(header.token);
    }
    offset = end;
  }
  read.tornBytes = data.length - offset;
  return read;
}

/**
 * The batches of one generation: each logged batch whose rows are all present and that was not
 * released, with its token; then the rows no batch covers, cut into new batches (added to `fresh`
 * so their formation is logged before use). A logged batch with rows missing was released: its
 * segment went away.
 */
function rebuild(log: GenerationLog, batchSize: number, fresh: LoggedBatch[]): RecoveredBatch[] {
  const out: RecoveredBatch[] = [];
  for (const table of TELEMETRY_TABLES) {
    const rows = log.rows.filter((r) => r.table === table).sort((a, b) => a.pos - b.pos);
    const at = new Map<number, { line: string; origin: string }>();
    for (const record of rows) {
      record.lines.forEach((line, i) => at.set(record.pos + i, { line, origin: record.origin }));
    }
    const covered = new Set<number>();
    const take = (token: string, from: number, to: number) => {
      const lines: string[] = [];
      const origins: Origin[] = [];
      for (let pos = from; pos < to; pos++) {
        const row = at.get(pos) as { line: string; origin: string };
        lines.push(row.line);
        const last = origins[origins.length - 1];
        if (last?.requestId === row.origin) last.rows++;
        else origins.push({ requestId: row.origin, rows: 1 });
        covered.add(pos);
      }
      out.push({ table, token, lines, origins });
    };
    for (const batch of log.batches) {
      if (batch.table !== table || batch.to <= batch.from) continue;
      let present = true;
      for (let pos = batch.from; pos < batch.to && present; pos++) present = at.has(pos);
      if (!present) {
        // Released (its rows' segment was deleted); rows of it that are left are covered.
        for (let pos = batch.from; pos < batch.to; pos++) covered.add(pos);
        continue;
      }
      if (log.done.has(batch.token)) {
        for (let pos = batch.from; pos < batch.to; pos++) covered.add(pos);
        continue;
      }
      take(batch.token, batch.from, batch.to);
    }
    let run: number[] = [];
    const flushRun = () => {
      for (let i = 0; i < run.length; i += batchSize) {
        const from = run[i] as number;
        const to = (run[Math.min(i + batchSize, run.length) - 1] as number) + 1;
        const token = newId();
        fresh.push({ table, token, from, to });
        take(token, from, to);
      }
      run = [];
    };
    for (const pos of [...at.keys()].sort((a, b) => a - b)) {
      if (covered.has(pos)) continue;
      if (run.length > 0 && pos !== (run[run.length - 1] as number) + 1) flushRun();
      run.push(pos);
    }
    flushRun();
  }
  return out;
}

/** A record: its frame (payload length and CRC-32) and its payload (header line, then body). */
function frame(header: Header, body: string): [Buffer, Buffer] {
  const payload = Buffer.from(`${JSON.stringify(header)}\n${body}`);
  const head = Buffer.allocUnsafe(FRAME_BYTES);
  head.writeUInt32LE(payload.length, 0);
  head.writeUInt32LE(crc32(payload), 4);
  return [head, payload];
}

function emptyGroup(): Group {
  return { buffers: [], bytes: 0, sync: false, rows: [], onDurable: [], waiters: [] };
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
