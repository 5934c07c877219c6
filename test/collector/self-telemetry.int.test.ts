import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { SpanKind } from '@opentelemetry/api';
import { AggregationTemporalityPreference } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCollector } from '#collector/app.ts';
import { startSelfTelemetry, type SelfTelemetry } from '#core/telemetry/self-telemetry.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { kv, span, traceProtobuf, traces, resource } from './fixtures/otlp.ts';
import { injectWarehouseFaults, type WarehouseFaults } from './warehouse-faults.ts';

// The collector's own metrics, read from its real `/metrics` endpoint (Prometheus text from the
// OpenTelemetry SDK) after known traffic through the official exporters and real HTTP. Counters
// are cumulative over the process, so each test compares a scrape after its traffic with one before.

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let telemetry: SelfTelemetry;
let stores: Stores;
let api: TestApi;
let faults: WarehouseFaults;
let collector: FastifyInstance;
let url: string;
let key: string;
let dataDir: string;
const SERVER = 'selftel-mcp';
const BODY_LIMIT = 256 * 1024;
const WRITER = {
  batchSize: 1000,
  flushIntervalMs: 50,
  maxBufferedRows: 40,
  maxSpoolBytes: 24 * 1024,
  minRetryDelayMs: 20,
  maxRetryDelayMs: 100,
};

beforeAll(async () => {
  // First, as at `pylee start`: instruments made before the meter provider is registered stay no-ops.
  telemetry = startSelfTelemetry('0.0.0-test');
  stores = await openTestStores();
  api = await buildTestApi(stores);
  const admin = bearer(BOOTSTRAP_TOKEN);
  await api.app.inject({ method: 'POST', url: '/api/v1/servers', headers: admin, payload: { slug: SERVER } });
  const created = await api.app.inject({
    method: 'POST',
    url: '/api/v1/ingest-keys',
    headers: admin,
    payload: { name: 'self-telemetry', server: SERVER },
  });
  key = created.json().key;
  faults = injectWarehouseFaults(stores.warehouse);
  dataDir = tempDir('pylee-self-telemetry');
  collector = await buildCollector({
    stores,
    secretBox: testSecretBox,
    logger: silentLogger,
    dataDir,
    bodyLimit: BODY_LIMIT,
    writer: WRITER,
  });
  url = await collector.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  faults?.set('up');
  await collector?.close();
  faults?.remove();
  await api?.app.close();
  await stores?.close();
  await telemetry?.shutdown();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  samples: Sample[];
  /** `# TYPE` of each metric family. */
  types: Map<string, string>;
  /** Sum of the samples named `name` whose labels include `labels`; 0 when there are none. */
  value(name: string, labels?: Record<string, string>): number;
  has(name: string): boolean;
}

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of (await res.text()).split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = l[2] as string;
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  const matching = (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    types,
    value: (name, labels = {}) => matching(name, labels).reduce((sum, s) => sum + s.value, 0),
    has: (name) => samples.some((s) => s.name === name),
  };
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

const REQUESTS = { pylee_table: 'requests' };
const POINTS = { pylee_table: 'metric_points' };
const ACCEPTED = 'pylee_collector_rows_accepted_total';
const INSERTED = 'pylee_collector_rows_inserted_total';
const SPOOLED = 'pylee_collector_rows_spooled_total';
const REJECTED_ROWS = 'pylee_collector_rows_rejected_total';
const REJECTED_REQUESTS = 'pylee_collector_requests_rejected_total';
const REJECTED_ITEMS = 'pylee_collector_items_rejected_total';
const BATCH = 'pylee_collector_batch_size';
const INSERT = 'pylee_collector_insert_duration';
const QUEUE = 'pylee_collector_queue_depth';
const SPOOL_BYTES = 'pylee_collector_spool_bytes';
const SPOOL_FILES = 'pylee_collector_spool_files';

/** Counter and histogram moves between two scrapes. */
function moved(before: Scrape, after: Scrape) {
  return (name: string, labels: Record<string, string> = {}) =>
    after.value(name, labels) - before.value(name, labels);
}

const RESOURCE = resourceFromAttributes({
  'service.name': SERVER,
  'service.version': '1.0.0',
  'deployment.environment.name': 'production',
});

async function exportSpans(count: number): Promise<void> {
  const provider = new BasicTracerProvider({
    resource: RESOURCE,
    spanProcessors: [
      new BatchSpanProcessor(
        new OTLPTraceExporter({ url: `${url}/v1/traces`, headers: { authorization: `Bearer ${key}` } }),
      ),
    ],
  });
  const tracer = provider.getTracer('self-telemetry-test');
  for (let i = 0; i < count; i++) {
    tracer
      .startSpan('tools/call forecast', {
        kind: SpanKind.SERVER,
        attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'forecast' },
      })
      .end();
  }
  await provider.forceFlush();
  await provider.shutdown();
}

/** One SERVER span per number, as a protobuf body; ids are unique per number. */
function spansBody(numbers: number[]): Buffer {
  const start = BigInt(Date.now() - 60_000) * 1_000_000n;
  return traceProtobuf(
    traces(
      numbers.map((n) =>
        span({
          traceId: n.toString(16).padStart(32, 'b'),
          spanId: n.toString(16).padStart(16, '0'),
          start: start + BigInt(n),
          attributes: [kv('http.request.method', 'GET'), kv('http.route', '/items/{id}')],
        }),
      ),
      resource({ 'service.name': SERVER, 'service.version': '1.0.0' }),
    ),
  );
}

function post(signal: 'traces' | 'metrics', body: Buffer, headers: Record<string, string> = {}) {
  return fetch(`${url}/v1/${signal}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-protobuf', authorization: `Bearer ${key}`, ...headers },
    body: new Uint8Array(body),
  });
}

async function storedRows(table: 'requests' | 'metric_points'): Promise<number> {
  const result = await stores.warehouse.client.query({
    query: `SELECT count() AS n FROM ${table} WHERE server = {server:String}`,
    query_params: { server: SERVER },
    format: 'JSONEachRow',
  });
  return Number((await result.json<{ n: string }>())[0]?.n);
}

describe('collector self-telemetry on /metrics', () => {
  it('exposes the queue and spool gauges from the start, before any traffic', async () => {
    const s = await scrape();
    // Gauges are observed on every scrape; counters and histograms appear with their first data.
    for (const gauge of [QUEUE, SPOOL_BYTES, SPOOL_FILES]) {
      expect(s.types.get(gauge)).toBe('gauge');
      expect(s.has(gauge)).toBe(true);
      expect(s.value(gauge)).toBe(0);
    }
    expect(s.value('target_info', { service_name: 'pylee' })).toBe(1);
  });

  it('counts the spans and points the official exporters sent, and the batches that stored them', async () => {
    const before = await scrape();
    const rowsBefore = { requests: await storedRows('requests'), points: await storedRows('metric_points') };

    await exportSpans(30);
    const exporter = new OTLPMetricExporter({
      url: `${url}/v1/metrics`,
      headers: { authorization: `Bearer ${key}` },
      temporalityPreference: AggregationTemporalityPreference.DELTA,
    });
    const provider = new MeterProvider({
      resource: RESOURCE,
      readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
    });
    const meter = provider.getMeter('self-telemetry-test');
    const duration = meter.createHistogram('http.server.request.duration', { unit: 's' });
    for (const route of ['/a', '/b', '/c', '/d']) {
      for (const v of [0.01, 0.2]) duration.record(v, { 'http.request.method': 'GET', 'http.route': route });
    }
    meter.createCounter('app.unrelated').add(5); // not a metric Pylee stores: not counted
    await provider.forceFlush();
    await provider.shutdown();

    // Accepted as soon as the collector answers 200; inserted by the writer shortly after.
    const accepted = await scrape();
    expect(accepted.types.get(ACCEPTED)).toBe('counter');
    const acceptedBy = moved(before, accepted);
    expect(acceptedBy(ACCEPTED, REQUESTS)).toBe(30);
    expect(acceptedBy(ACCEPTED, POINTS)).toBe(4);
    await until(async () => moved(before, await scrape())(INSERTED) === 34);
    const after = await scrape();
    const by = moved(before, after);
    expect(after.types.get(INSERTED)).toBe('counter');
    expect(after.types.get(BATCH)).toBe('histogram');
    expect(after.types.get(INSERT)).toBe('histogram');

    expect(by(ACCEPTED, REQUESTS)).toBe(30);
    expect(by(ACCEPTED, POINTS)).toBe(4);
    expect(by(INSERTED, REQUESTS)).toBe(30);
    expect(by(INSERTED, POINTS)).toBe(4);
    expect(await storedRows('requests')).toBe(rowsBefore.requests + 30);
    expect(await storedRows('metric_points')).toBe(rowsBefore.points + 4);
    expect(after.has(REJECTED_ROWS)).toBe(false); // nothing refused yet in this process
    expect(after.has(REJECTED_REQUESTS)).toBe(false);
    expect(by(SPOOLED)).toBe(0);

    // Batch sizes: one observation per insert, summing to the rows inserted; buckets are cumulative.
    const inserts = by(`${BATCH}_count`);
    expect(inserts).toBeGreaterThanOrEqual(2); // at least one insert per table
    expect(by(`${BATCH}_sum`, REQUESTS)).toBe(30);
    expect(by(`${BATCH}_sum`, POINTS)).toBe(4);
    expect(after.value(`${BATCH}_bucket`, { ...REQUESTS, le: '+Inf' })).toBe(
      after.value(`${BATCH}_count`, REQUESTS),
    );
    const buckets = after.samples
      .filter((s) => s.name === `${BATCH}_bucket` && s.labels.pylee_table === 'requests')
      .map((s) => s.value);
    expect(buckets.length).toBeGreaterThan(2);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));

    // Insert latency: one observation per insert, all successful; durations are finite and positive.
    expect(by(`${INSERT}_count`, { pylee_outcome: 'ok' })).toBe(inserts);
    expect(by(`${INSERT}_count`, { pylee_outcome: 'error' })).toBe(0);
    const seconds = by(`${INSERT}_sum`, { pylee_outcome: 'ok' });
    expect(Number.isFinite(seconds) && seconds > 0).toBe(true);
    expect(after.value(`${INSERT}_bucket`, { pylee_outcome: 'ok', le: '+Inf' })).toBe(
      after.value(`${INSERT}_count`, { pylee_outcome: 'ok' }),
    );

    // Everything is stored: nothing waits in memory or on disk.
    expect(after.value(QUEUE)).toBe(0);
    expect(after.value(SPOOL_BYTES)).toBe(0);
    expect(after.value(SPOOL_FILES)).toBe(0);
  });

  it('counts refused requests by signal and status on bad input, and accepts nothing from them', async () => {
    const before = await scrape();
    const good = spansBody([1]);

    expect((await post('traces', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]))).status).toBe(400);
    expect(
      (
        await post('metrics', Buffer.from('{"resourceMetrics": [', 'utf8'), {
          'content-type': 'application/json',
        })
      ).status,
    ).toBe(400);
    expect((await post('traces', good, { authorization: 'Bearer pyli_wrong' })).status).toBe(401);
    expect((await post('metrics', good, { authorization: '' })).status).toBe(401);
    expect((await post('traces', good, { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post('traces', Buffer.from('not gzip'), { 'content-encoding': 'gzip' })).status).toBe(400);
    expect((await post('traces', Buffer.alloc(BODY_LIMIT + 1))).status).toBe(413);
    expect(
      (await post('traces', gzipSync(Buffer.alloc(BODY_LIMIT * 4)), { 'content-encoding': 'gzip' })).status,
    ).toBe(413);

    const refused = await scrape();
    expect(refused.types.get(REJECTED_REQUESTS)).toBe('counter');
    const by = moved(before, refused);
    expect(by(REJECTED_REQUESTS, { pylee_signal: 'traces', http_response_status_code: '400' })).toBe(2);
    expect(by(REJECTED_REQUESTS, { pylee_signal: 'metrics', http_response_status_code: '400' })).toBe(1);
    expect(by(REJECTED_REQUESTS, { pylee_signal: 'traces', http_response_status_code: '401' })).toBe(1);
    expect(by(REJECTED_REQUESTS, { pylee_signal: 'metrics', http_response_status_code: '401' })).toBe(1);
    expect(by(REJECTED_REQUESTS, { pylee_signal: 'traces', http_response_status_code: '415' })).toBe(1);
    expect(by(REJECTED_REQUESTS, { pylee_signal: 'traces', http_response_status_code: '413' })).toBe(2);
    expect(by(REJECTED_REQUESTS)).toBe(8);
    expect(by(ACCEPTED)).toBe(0);
    // The HTTP server histogram sees the same refusals per route.
    expect(
      by('http_server_request_duration_count', {
        pylee_server: 'collector',
        http_route: '/v1/traces',
        http_response_status_code: '401',
      }),
    ).toBe(1);

    // A good body with the right key is still accepted, and moves no refusal counter.
    expect((await post('traces', good)).status).toBe(200);
    await until(async () => (await scrape()).value(QUEUE) === 0); // inserted
    const next = moved(before, await scrape());
    expect(next(ACCEPTED, REQUESTS)).toBe(1);
    expect(next(INSERTED, REQUESTS)).toBe(1);
    expect(next(REJECTED_REQUESTS)).toBe(8);
  });

  it('counts spans refused inside an accepted request (partial success) and stores the rest', async () => {
    const before = await scrape();
    const start = BigInt(Date.now() - 60_000) * 1_000_000n;
    const body = traceProtobuf(
      traces(
        [
          span({ traceId: 'c'.repeat(32), spanId: '1'.repeat(16), start }),
          // An all-zero span id is invalid: that span is refused, the request is not.
          span({ traceId: 'c'.repeat(32), spanId: '0'.repeat(16), start }),
        ],
        resource({ 'service.name': SERVER, 'service.version': '1.0.0' }),
      ),
    );

    expect((await post('traces', body)).status).toBe(200);
    await until(async () => (await scrape()).value(QUEUE) === 0);
    const by = moved(before, await scrape());
    expect(by(REJECTED_ITEMS, { pylee_signal: 'traces' })).toBe(1);
    expect(by(ACCEPTED, REQUESTS)).toBe(1);
    expect(by(REJECTED_REQUESTS)).toBe(0);
  });

  it('reports queue depth, spool size and refused rows through a ClickHouse outage, and back to zero after it', async () => {
    await until(async () => (await scrape()).value(QUEUE) === 0);
    const before = await scrape();
    const rowsBefore = await storedRows('requests');
    const spoolDir = path.join(dataDir, 'spool');
    const spoolOnDisk = () =>
      fs
        .readdirSync(spoolDir)
        .filter((f) => f.endsWith('.jsonl'))
        .reduce((bytes, f) => bytes + fs.statSync(path.join(spoolDir, f)).size, 0);
    let n = 1000;
    const next = (count: number) => Array.from({ length: count }, () => n++);

    faults.set('down');
    expect((await post('traces', spansBody(next(20)))).status).toBe(200);
    // The writer's failed insert is itself visible: an insert observed with outcome "error".
    await until(async () => moved(before, await scrape())(`${INSERT}_count`, { pylee_outcome: 'error' }) > 0);
    const down = await scrape();
    expect(down.value(QUEUE)).toBe(20); // in memory, waiting for ClickHouse
    expect(down.value(SPOOL_FILES)).toBe(0);

    // Past the memory bound (40 rows) acknowledged rows go to the spool.
    expect((await post('traces', spansBody(next(20)))).status).toBe(200);
    expect((await post('traces', spansBody(next(20)))).status).toBe(200);
    const spooling = await scrape();
    const spooledBy = moved(before, spooling);
    expect(spooledBy(ACCEPTED, REQUESTS)).toBe(60);
    expect(spooling.value(QUEUE)).toBeGreaterThan(0);
    expect(spooling.value(QUEUE)).toBeLessThanOrEqual(WRITER.maxBufferedRows);
    expect(spooling.value(QUEUE) + spooledBy(SPOOLED, REQUESTS)).toBe(60);
    expect(spooling.value(SPOOL_FILES)).toBeGreaterThan(0);
    expect(spooling.value(SPOOL_BYTES)).toBe(spoolOnDisk());
    expect(spooling.value(SPOOL_BYTES)).toBeGreaterThan(0);

    // Until the spool is full too: then requests are refused with 503 and their rows counted as rejected.
    let accepted = 60;
    let refusedRows = 0;
    let refusedRequests = 0;
    for (let i = 0; i < 100 && refusedRequests < 2; i++) {
      const res = await post('traces', spansBody(next(20)));
      if (res.status === 200) accepted += 20;
      else {
        expect(res.status).toBe(503);
        refusedRows += 20;
        refusedRequests++;
      }
    }
    expect(refusedRequests).toBe(2);
    const full = await scrape();
    const fullBy = moved(before, full);
    expect(fullBy(REJECTED_ROWS, { ...REQUESTS, http_response_status_code: '503' })).toBe(refusedRows);
    expect(fullBy(REJECTED_REQUESTS, { pylee_signal: 'traces', http_response_status_code: '503' })).toBe(2);
    expect(fullBy(ACCEPTED, REQUESTS)).toBe(accepted);
    expect(full.value(SPOOL_BYTES)).toBeLessThanOrEqual(WRITER.maxSpoolBytes);
    expect(full.value(SPOOL_BYTES)).toBe(spoolOnDisk());
    expect(full.value(QUEUE) + fullBy(SPOOLED, REQUESTS)).toBe(accepted);

    // ClickHouse returns: memory and spool drain, every accepted row is inserted once.
    faults.set('up');
    await until(async () => {
      const s = await scrape();
      return s.value(QUEUE) === 0 && s.value(SPOOL_FILES) === 0;
    });
    const after = await scrape();
    const by = moved(before, after);
    expect(by(INSERTED, REQUESTS)).toBe(accepted);
    expect(after.value(SPOOL_BYTES)).toBe(0);
    expect(spoolOnDisk()).toBe(0);
    expect(await storedRows('requests')).toBe(rowsBefore + accepted);
  });
});
