import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#core/logger.ts';
import { openWarehouse, type Warehouse } from '#core/warehouse/client.ts';
import { migrateWarehouse } from '#core/warehouse/migrate.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import {
  TelemetryWriter,
  WriterOverloadedError,
  type TelemetryWriterOptions,
} from '#core/warehouse/telemetry-writer.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';

// chDB binds one data directory per process: this file opens one warehouse for all its tests,
// and each test writes rows of an org of its own into a spool dir of its own.
let dir: string;
let warehouse: Warehouse;
const realExec = (): Warehouse['client']['exec'] => Object.getPrototypeOf(warehouse.client).exec;

beforeAll(async () => {
  dir = tempDir('pylee-telemetry-writer');
  warehouse = await openWarehouse({ dataDir: dir });
  await migrateWarehouse(warehouse);
});

afterAll(async () => {
  await warehouse?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const writers: TelemetryWriter[] = [];

afterEach(async () => {
  restoreStore();
  for (const writer of writers.splice(0)) await writer.close().catch(() => {});
});

/**
 * Fault injection at the client boundary: inserts (the writer's `exec` calls) fail the way an
 * unreachable server does, or run and then lose their answer, or wait at a gate.
 */
type StoreMode = 'up' | 'down' | 'answer-lost' | 'slow';
let mode: StoreMode = 'up';
let gate: Promise<void> = Promise.resolve();
/** Inserts that still pass before the mode applies. */
let passing = 0;
let execCalls = 0;

function connectionRefused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
}

function setStore(next: StoreMode, options: { gate?: Promise<void>; after?: number } = {}): void {
  mode = next;
  gate = options.gate ?? Promise.resolve();
  passing = options.after ?? 0;
  const exec = realExec().bind(warehouse.client);
  warehouse.client.exec = (async (params: Parameters<typeof exec>[0]) => {
    execCalls++;
    if (passing > 0) {
      passing--;
      return exec(params);
    }
    if (mode === 'down') throw connectionRefused();
    if (mode === 'slow') await gate;
    const result = await exec(params);
    if (mode === 'answer-lost') {
      mode = 'up'; // once: the insert ran, the caller never heard
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    }
    return result;
  }) as typeof warehouse.client.exec;
}

function restoreStore(): void {
  mode = 'up';
  if (Object.hasOwn(warehouse.client, 'exec')) delete (warehouse.client as { exec?: unknown }).exec;
}

const silent = createLogger('silent');

/** Tests flush by hand unless they say otherwise; retries are quick. */
function writer(options: Partial<TelemetryWriterOptions> = {}): TelemetryWriter {
  const w = new TelemetryWriter(warehouse, {
    dataDir: tempDir('pylee-writer-data'),
    logger: silent,
    batchSize: 1_000_000,
    flushIntervalMs: 3_600_000,
    minRetryDelayMs: 10,
    maxRetryDelayMs: 50,
    ...options,
  });
  writers.push(w);
  return w;
}

const BASE = Date.now() - 3_600_000;

function requests(org: string, n: number, first = 0): RequestRow[] {
  return Array.from({ length: n }, (_, k) => {
    const i = first + k;
    return {
      org_id: org,
      server: 'weather',
      environment: 'production',
      version: '1.2.0',
      operation: 'tools/call forecast',
      time: new Date(BASE + i * 10).toISOString(),
      duration_ms: 5 + (i % 50),
      error: 0,
      error_type: '',
      http_status: 200,
      mcp_method: 'tools/call',
      tool: 'forecast',
      trace_id: randomUUID().replaceAll('-', ''),
      span_id: `span-${i}`,
      session_id: 'session-1',
      source: 'otlp',
      client_key: '',
      counted: 1,
    };
  });
}

async function stored(org: string): Promise<{ rows: number; spans: number; rollup: number }> {
  const result = await warehouse.client.query({
    query: `SELECT
              (SELECT count() FROM requests WHERE org_id = {org:String}) AS rows,
              (SELECT uniqExact(span_id) FROM requests WHERE org_id = {org:String}) AS spans,
              (SELECT countMerge(requests) FROM requests_1m WHERE org_id = {org:String}) AS rollup`,
    query_params: { org },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ rows: number; spans: number; rollup: number }>();
  return row as { rows: number; spans: number; rollup: number };
}

/** A writer and its spool directory, for tests that look into the spool. */
function spooledWriter(options: Partial<TelemetryWriterOptions> = {}) {
  const spoolDir = path.join(tempDir('pylee-writer-spool'), 'spool');
  const w = writer({ spoolDir, ...options });
  const files = (sub = '') => {
    const d = path.join(spoolDir, sub);
    return fs.existsSync(d)
      ? fs
          .readdirSync(d)
          .filter((f) => f.endsWith('.jsonl'))
          .sort()
      : [];
  };
  /** Rows in the spool files, from their headers. */
  const spooledRows = () =>
    files().reduce((sum, f) => {
      const header = fs.readFileSync(path.join(spoolDir, f), 'utf8').split('\n', 1)[0] as string;
      return sum + (JSON.parse(header) as { rows: number }).rows;
    }, 0);
  return { writer: w, spoolDir, files, spooledRows };
}

describe('TelemetryWriter batching', () => {
  it('resolves when rows are accepted, before they are inserted', async () => {
    const org = randomUUID();
    const w = writer();

    await w.writeRequests(requests(org, 10));

    expect(await stored(org)).toEqual({ rows: 0, spans: 0, rollup: 0 });
    expect(w.stats()).toMatchObject({ bufferedRows: 10, spoolFiles: 0, storeUp: true });
    await w.flush();
    expect(await stored(org)).toEqual({ rows: 10, spans: 10, rollup: 10 });
    expect(w.stats().bufferedRows).toBe(0);
  });

  it('inserts full batches as soon as batchSize rows are buffered and keeps the rest', async () => {
    const org = randomUUID();
    const w = writer({ batchSize: 100 });

    await w.writeRequests(requests(org, 150));
    await w.writeRequests(requests(org, 100, 150));

    await until(async () => (await stored(org)).rows === 200);
    expect(w.stats().bufferedRows).toBe(50);
    await w.flush();
    expect(await stored(org)).toEqual({ rows: 250, spans: 250, rollup: 250 });
  });

  it('inserts what is buffered after flushIntervalMs without a flush call', async () => {
    const org = randomUUID();
    const w = writer({ flushIntervalMs: 50 });

    await w.writeRequests(requests(org, 7));

    await until(async () => (await stored(org)).rows === 7);
    expect(w.stats().bufferedRows).toBe(0);
  });

  it('stores metric points with their histogram buckets', async () => {
    const org = randomUUID();
    const w = writer();
    const point: MetricPointRow = {
      org_id: org,
      server: 'weather',
      environment: 'production',
      version: '1.2.0',
      operation: 'GET /items/{id}',
      metric: 'http.server.request.duration',
      unit: 's',
      kind: 'histogram',
      start_time: new Date(BASE).toISOString(),
      time: new Date(BASE + 60_000).toISOString(),
      count: 6,
      sum: 0.75,
      value: 0,
      bounds: [0.05, 0.1, 0.5],
      bucket_counts: [1, 2, 3, 0],
    };

    await w.writeMetricPoints([point]);
    await w.close();

    const result = await warehouse.client.query({
      query: `SELECT operation, metric, count, sum, bounds, bucket_counts,
                     toUnixTimestamp64Milli(time) - toUnixTimestamp64Milli(start_time) AS span_ms
              FROM metric_points WHERE org_id = {org:String}`,
      query_params: { org },
      format: 'JSONEachRow',
    });
    expect(await result.json()).toEqual([
      {
        operation: 'GET /items/{id}',
        metric: 'http.server.request.duration',
        count: 6,
        sum: 0.75,
        bounds: [0.05, 0.1, 0.5],
        bucket_counts: [1, 2, 3, 0],
        span_ms: 60_000,
      },
    ]);
  });

  it('stores session events once, through the spool and a restart, with invalid values repaired', async () => {
    const org = randomUUID();
    const spoolDir = path.join(tempDir('pylee-writer-sessions'), 'spool');
    const events: SessionEventRow[] = (['start', 'migrate', 'end'] as const).map((event, i) => ({
      org_id: org,
      server: 'weather',
      environment: 'production',
      version: event === 'start' ? '1.2.0' : '1.3.0',
      session_id: 'session-1',
      time: new Date(BASE + i * 1000).toISOString(),
      event,
      reason: event === 'migrate' ? '1.2.0' : event === 'end' ? 'rollback' : '',
      client_key: 'client-1',
      source: 'gateway',
    }));
    (events[2] as { reason: unknown }).reason = 42; // repaired to ''
    const first = writer({ spoolDir });
    setStore('down');
    await first.writeSessionEvents(events, 'req-sessions');
    await first.close();
    expect(fs.readdirSync(spoolDir).filter((f) => f.endsWith('.session_events.jsonl'))).toHaveLength(1);

    setStore('up');
    const second = writer({ spoolDir });
    await second.flush();
    const result = await warehouse.client.query({
      query: `SELECT version, session_id, toUnixTimestamp64Milli(time) AS ms, event, reason, client_key, source
              FROM session_events WHERE org_id = {org:String} ORDER BY time`,
      query_params: { org },
      format: 'JSONEachRow',
    });
    expect(await result.json()).toEqual(
      events.map((e, i) => ({
        version: e.version,
        session_id: 'session-1',
        ms: BASE + i * 1000,
        event: e.event,
        reason: i === 2 ? '' : e.reason,
        client_key: 'client-1',
        source: 'gateway',
      })),
    );
  });

  it('keeps two batches whose rollup rows are identical: rollup deduplication follows the source block', async () => {
    const org = randomUUID();
    const w = writer();
    const [a, b] = requests(org, 2).map((r) => ({
      ...r,
      time: new Date(BASE).toISOString(),
      duration_ms: 7,
    }));

    await w.writeRequests([a as RequestRow]);
    await w.flush();
    await w.writeRequests([b as RequestRow]);
    await w.flush();

    expect(await stored(org)).toEqual({ rows: 2, spans: 2, rollup: 2 });
  });

  it('leaves no deduplication token behind for later inserts on the same chDB session', async () => {
    const org = randomUUID();
    const w = writer();
    await w.writeRequests(requests(org, 3));
    await w.flush();

    // An insert without a token right after: a token left in the session would drop it as a duplicate.
    await warehouse.client.insert({
      table: 'requests',
      values: requests(org, 2, 100),
      format: 'JSONEachRow',
    });

    expect((await stored(org)).rows).toBe(5);
  });

  it('refuses a write-ahead log another live process holds, and takes over one a dead process left', () => {
    const dataDir = tempDir('pylee-writer-wal-lock');
    const walDir = path.join(dataDir, 'wal');
    fs.mkdirSync(walDir, { recursive: true });
    // The parent of this test process is alive: a lock naming it (with its real start time) is held.
    const startTime = fs.readFileSync(`/proc/${process.ppid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19];
    fs.writeFileSync(path.join(walDir, 'pylee.pid'), `${process.ppid}\nstart-time ${startTime}\n`);
    expect(() => writer({ dataDir })).toThrow(`is in use by another Pylee process (pid ${process.ppid})`);

    fs.writeFileSync(path.join(walDir, 'pylee.pid'), '2147483646\n');
    expect(writer({ dataDir }).stats().walBytes).toBeGreaterThan(0);
  });

  it('flushes what is buffered on close and then refuses writes with a 503', async () => {
    const org = randomUUID();
    const w = writer();
    await w.writeRequests(requests(org, 20));

    await w.close();

    expect((await stored(org)).rows).toBe(20);
    const refused = await w.writeRequests(requests(org, 1, 20)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WriterOverloadedError);
    expect(refused).toMatchObject({ status: 503, retryAfterSeconds: 1 });
  });
});

describe('TelemetryWriter when ClickHouse fails', () => {
  it('keeps accepting into memory, then into the spool, and stores every row once after recovery', async () => {
    const org = randomUUID();
    const { writer: w, files, spooledRows } = spooledWriter({ batchSize: 25, maxBufferedRows: 100 });
    setStore('down');

    await w.writeRequests(requests(org, 60)); // two full batches go to ClickHouse, which fails
    await until(() => !w.stats().storeUp);
    expect(w.stats()).toMatchObject({ bufferedRows: 60, spoolFiles: 0 });
    expect(files()).toEqual([]);

    for (let i = 60; i < 300; i += 30) await w.writeRequests(requests(org, 30, i));

    const stats = w.stats();
    expect(stats.bufferedRows).toBeLessThanOrEqual(100);
    expect(stats.spoolFiles).toBeGreaterThan(0);
    expect(files()).toHaveLength(stats.spoolFiles);
    expect(stats.bufferedRows + spooledRows()).toBe(300);
    expect(await stored(org)).toEqual({ rows: 0, spans: 0, rollup: 0 });

    setStore('up');
    await w.flush();

    expect(await stored(org)).toEqual({ rows: 300, spans: 300, rollup: 300 });
    expect(w.stats()).toMatchObject({ bufferedRows: 0, spoolFiles: 0, spoolBytes: 0, storeUp: true });
    expect(files()).toEqual([]);
  });

  it('retries on its own with backoff once ClickHouse answers again', async () => {
    const org = randomUUID();
    const w = writer({ flushIntervalMs: 20 });
    setStore('down');
    await w.writeRequests(requests(org, 40));
    await until(() => !w.stats().storeUp);
    const failedCalls = execCalls;

    await sleep(200);
    expect(execCalls).toBeGreaterThan(failedCalls); // still trying, not given up
    setStore('up');

    await until(async () => (await stored(org)).rows === 40);
    expect(w.stats()).toMatchObject({ bufferedRows: 0, storeUp: true });
  });

  it('throws WriterOverloadedError 503 with Retry-After when the spool is full and keeps every accepted row', async () => {
    const org = randomUUID();
    const { writer: w, files } = spooledWriter({ batchSize: 20, maxBufferedRows: 40, maxSpoolBytes: 40_000 });
    setStore('down');
    await w.writeRequests(requests(org, 20));
    await w.flush(); // fails: the writer knows ClickHouse is down

    let accepted = 20;
    let refused: unknown;
    for (let i = 20; i < 10_000 && !refused; i += 20) {
      try {
        await w.writeRequests(requests(org, 20, i));
        accepted += 20;
      } catch (error) {
        refused = error;
      }
    }

    expect(refused).toBeInstanceOf(WriterOverloadedError);
    const overload = refused as WriterOverloadedError;
    expect(overload.status).toBe(503);
    expect(overload.code).toBe('telemetry-store-unavailable');
    expect(overload.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(overload.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(overload.message).toMatch(/ClickHouse is not accepting inserts and the telemetry spool is full/);
    expect(w.stats().spoolBytes).toBeLessThanOrEqual(40_000);
    expect(files().length).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThan(40);

    setStore('up');
    await w.flush();

    expect(await stored(org)).toEqual({ rows: accepted, spans: accepted, rollup: accepted });
  });

  it('answers 429 when ClickHouse answers but the writer is behind and the spool is full', async () => {
    const org = randomUUID();
    let open!: () => void;
    const { writer: w } = spooledWriter({ batchSize: 20, maxBufferedRows: 40, maxSpoolBytes: 20_000 });
    setStore('slow', { gate: new Promise<void>((resolve) => (open = resolve)) });
    await w.writeRequests(requests(org, 20));
    void w.flush(); // the insert waits at the gate: ClickHouse is slow, not failing

    let accepted = 20;
    let refused: unknown;
    for (let i = 20; i < 10_000 && !refused; i += 20) {
      try {
        await w.writeRequests(requests(org, 20, i));
        accepted += 20;
      } catch (error) {
        refused = error;
      }
    }

    expect(refused).toMatchObject({ status: 429, code: 'telemetry-overloaded', retryAfterSeconds: 5 });
    open();
    await w.flush();
    expect(await stored(org)).toEqual({ rows: accepted, spans: accepted, rollup: accepted });
  });

  it('does not count a batch twice when its insert succeeded but the answer was lost', async () => {
    const org = randomUUID();
    const w = writer({ minRetryDelayMs: 60_000 }); // only flush() retries
    await w.writeRequests(requests(org, 30));
    setStore('answer-lost');

    await w.flush(); // the rows are stored, but the writer saw a failure and keeps the batch
    expect(w.stats()).toMatchObject({ bufferedRows: 30, storeUp: false });
    expect((await stored(org)).rows).toBe(30);

    await w.flush(); // the same batch again, with the same deduplication token
    expect(w.stats()).toMatchObject({ bufferedRows: 0, storeUp: true });
    expect(await stored(org)).toEqual({ rows: 30, spans: 30, rollup: 30 });
  });

  it('does not count a spooled batch twice when its replay succeeded but the answer was lost', async () => {
    const org = randomUUID();
    const { writer: w, files } = spooledWriter({
      batchSize: 100,
      maxBufferedRows: 10,
      minRetryDelayMs: 60_000,
    });
    setStore('answer-lost'); // the next insert runs, and its answer is lost
    await w.writeRequests(requests(org, 10));
    await w.flush().catch(() => {}); // so the writer believes ClickHouse is down
    await until(() => !w.stats().storeUp);
    // Memory holds 10 and ClickHouse looks down: the first batch goes to the spool.
    await w.writeRequests(requests(org, 10, 10));

    expect(files()).toHaveLength(1); // stored, but the writer never heard
    expect((await stored(org)).rows).toBe(10);

    await w.flush(); // the second batch, then the spool file again with its token
    expect(files()).toEqual([]);
    expect(await stored(org)).toEqual({ rows: 20, spans: 20, rollup: 20 });
  });

  it('spools what it cannot insert at close, and a new writer on the same spool replays it', async () => {
    const org = randomUUID();
    const spoolDir = path.join(tempDir('pylee-writer-restart'), 'spool');
    const first = writer({ spoolDir, batchSize: 40 });
    setStore('down');
    await first.writeRequests(requests(org, 100), 'req-1');

    await first.close();

    const names = fs.readdirSync(spoolDir).filter((f) => f.endsWith('.jsonl'));
    expect(names).toHaveLength(3); // 40 + 40 + 20
    const [header, ...lines] = fs
      .readFileSync(path.join(spoolDir, names.sort()[0] as string), 'utf8')
      .trimEnd()
      .split('\n');
    expect(JSON.parse(header as string)).toEqual({
      format: 'pylee-spool/1',
      table: 'requests',
      token: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/),
      rows: 40,
      origins: [{ requestId: 'req-1', rows: 40 }],
    });
    expect(lines).toHaveLength(40);
    expect(await stored(org)).toEqual({ rows: 0, spans: 0, rollup: 0 });

    setStore('up');
    const second = writer({ spoolDir });
    expect(second.stats().spoolFiles).toBe(3);

    await until(async () => (await stored(org)).rows === 100);
    await until(() => second.stats().spoolFiles === 0);
    expect(await stored(org)).toEqual({ rows: 100, spans: 100, rollup: 100 });
    expect(fs.readdirSync(spoolDir).filter((f) => f.endsWith('.jsonl'))).toEqual([]);
  });

  it('removes half-written spool files at start: their rows were never accepted', async () => {
    const spoolDir = path.join(tempDir('pylee-writer-tmp'), 'spool');
    fs.mkdirSync(spoolDir, { recursive: true });
    fs.writeFileSync(path.join(spoolDir, 'x.requests.jsonl.tmp'), '{"format":"pylee-spool/1"');

    const w = writer({ spoolDir });

    expect(w.stats().spoolFiles).toBe(0);
    expect(fs.readdirSync(spoolDir)).toEqual([]);
  });

  it('repairs values that do not fit their columns before batching, so the batch is stored whole', async () => {
    const org = randomUUID();
    const w = writer({ batchSize: 5 });
    const [bad] = requests(org, 1);

    await w.writeRequests([
      { ...(bad as RequestRow), time: 'not a time', http_status: -1, error_type: 'x\ud800y' },
      ...requests(org, 9, 1),
    ]);
    await w.flush();

    expect((await stored(org)).rows).toBe(10);
    expect(w.stats()).toMatchObject({ bufferedRows: 0, storeUp: true });
  });

  it('stores a batch whose rows span more days than one insert may hold partitions, in parts', async () => {
    const org = randomUUID();
    const w = writer();
    const day = 86_400_000;
    // 150 days ahead (the raw TTL would drop days in the past): 150 partitions, ClickHouse takes 100.
    const rows = requests(org, 150).map((r, i) => ({
      ...r,
      time: new Date(Date.now() + i * day).toISOString(),
    }));

    await w.writeRequests(rows);
    await w.flush();

    expect((await stored(org)).rows).toBe(150);
    expect(w.stats()).toMatchObject({ bufferedRows: 0, storeUp: true });
  });

  it('splits a batch ClickHouse refuses for its data: only the refused rows go to rejected/, named by org and request', async () => {
    const org = randomUUID();
    const spoolDir = path.join(tempDir('pylee-writer-refused'), 'spool');
    fs.mkdirSync(spoolDir, { recursive: true });
    // A spool file (as an older Pylee, or a hand, may have left) holding two rows ClickHouse refuses.
    const good = requests(org, 98).map((r) => `${JSON.stringify(r)}\n`);
    const badTime = JSON.stringify({ ...requests(org, 1, 500)[0], time: 'not a time' });
    const badStatus = JSON.stringify({ ...requests(org, 1, 501)[0], http_status: -1 });
    const lines = [
      ...good.slice(0, 30),
      `${badTime}\n`,
      ...good.slice(30, 77),
      `${badStatus}\n`,
      ...good.slice(77),
    ];
    const token = '01900000-0000-7000-8000-000000000001';
    const spoolFile = `${JSON.stringify({
      format: 'pylee-spool/1',
      table: 'requests',
      token,
      rows: 100,
      origins: [
        { requestId: 'req-a', rows: 50 },
        { requestId: 'req-b', rows: 50 },
      ],
    })}\n${lines.join('')}`;
    fs.writeFileSync(path.join(spoolDir, `${token}.requests.jsonl`), spoolFile);

    const w = writer({ spoolDir });
    await w.flush();

    expect(await stored(org)).toEqual({ rows: 98, spans: 98, rollup: 98 });
    expect(w.stats()).toMatchObject({ spoolFiles: 0, storeUp: true });
    const rejected = fs.readdirSync(path.join(spoolDir, 'rejected'));
    expect(rejected).toEqual([`${token}.requests.rows.jsonl`]);
    const kept = fs
      .readFileSync(path.join(spoolDir, 'rejected', rejected[0] as string), 'utf8')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(kept).toEqual([
      {
        table: 'requests',
        orgId: org,
        requestId: 'req-a',
        reason: expect.stringMatching(/^ClickHouse code \d+/),
        row: JSON.parse(badTime),
      },
      {
        table: 'requests',
        orgId: org,
        requestId: 'req-b',
        reason: expect.stringMatching(/^ClickHouse code \d+/),
        row: JSON.parse(badStatus),
      },
    ]);

    // Replaying the same file again (a crash before it was deleted) stores nothing twice.
    fs.writeFileSync(path.join(spoolDir, `${token}.requests.jsonl`), spoolFile);
    const again = writer({ spoolDir });
    await again.flush();
    expect(await stored(org)).toEqual({ rows: 98, spans: 98, rollup: 98 });
  });

  it('moves a damaged spool file to rejected/ instead of blocking the ones behind it', async () => {
    const org = randomUUID();
    const spoolDir = path.join(tempDir('pylee-writer-damaged'), 'spool');
    const first = writer({ spoolDir });
    setStore('down');
    await first.writeRequests(requests(org, 10));
    await first.close();
    setStore('up');
    fs.writeFileSync(path.join(spoolDir, '00000000-0000-7000-8000-000000000000.requests.jsonl'), 'garbage\n');

    const second = writer({ spoolDir });
    await second.flush();

    expect((await stored(org)).rows).toBe(10);
    expect(fs.readdirSync(path.join(spoolDir, 'rejected')).sort()).toEqual([
      '00000000-0000-7000-8000-000000000000.requests.jsonl',
      '00000000-0000-7000-8000-000000000000.requests.jsonl.reason.txt',
    ]);
  });
});

class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

function metricValues(collected: ResourceMetrics): Map<string, number> {
  const values = new Map<string, number>();
  for (const scope of collected.scopeMetrics) {
    for (const metric of scope.metrics) {
      let total = 0;
      for (const point of metric.dataPoints) {
        const value = point.value as number | { count: number };
        total += typeof value === 'number' ? value : value.count;
      }
      values.set(metric.descriptor.name, total);
    }
  }
  return values;
}

describe('TelemetryWriter self-telemetry', () => {
  it('pushes back with 429 instead of spooling when ClickHouse answers but the writer is behind', async () => {
    const org = randomUUID();
    const w = writer({ batchSize: 100, maxBufferedRows: 10, minRetryDelayMs: 60_000 });
    await w.writeRequests(requests(org, 10));
    const refused = await w.writeRequests(requests(org, 5, 10)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(WriterOverloadedError);
    expect(refused).toMatchObject({ status: 429, retryAfterSeconds: expect.any(Number) });
    expect(w.stats()).toMatchObject({ spoolFiles: 0, bufferedRows: 10 });
    await w.flush();
    expect((await stored(org)).rows).toBe(10);
    await w.close();
  });

  it('reports accepted, spooled and inserted rows, batch sizes, insert durations, queue depth and spool size', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    metrics.setGlobalMeterProvider(provider);
    try {
      const org = randomUUID();
      const w = writer({ batchSize: 100, maxBufferedRows: 10, minRetryDelayMs: 60_000 });
      setStore('down');
      await w.writeRequests(requests(org, 10));
      await w.flush().catch(() => {}); // the insert fails once: the writer learns ClickHouse is down
      await until(() => !w.stats().storeUp);
      await w.writeRequests(requests(org, 5, 10)); // memory holds 10: the first 10 go to the spool

      const during = metricValues((await reader.collect()).resourceMetrics);
      expect(during.get('pylee.collector.rows.accepted')).toBe(15);
      expect(during.get('pylee.collector.rows.spooled')).toBe(10);
      expect(during.get('pylee.collector.queue.depth')).toBe(5);
      expect(during.get('pylee.collector.spool.bytes')).toBe(w.stats().spoolBytes);
      expect(during.get('pylee.collector.spool.bytes')).toBeGreaterThan(0);

      setStore('up');
      await w.flush();

      const after = metricValues((await reader.collect()).resourceMetrics);
      expect(after.get('pylee.collector.rows.inserted')).toBe(15);
      expect(after.get('pylee.collector.batch.size')).toBe(2); // histogram: two inserts
      expect(after.get('pylee.collector.insert.duration')).toBe(3); // one failed, two succeeded
      expect(after.get('pylee.collector.queue.depth')).toBe(0);
      expect(after.get('pylee.collector.spool.bytes')).toBe(0);
    } finally {
      metrics.disable();
      await provider.shutdown();
    }
  });
});
