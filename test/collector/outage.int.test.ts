import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCollector, type CollectorDeps } from '#collector/app.ts';
import { RpcStatus } from '#collector/otlp/protobuf.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { injectWarehouseFaults, type WarehouseFaults } from './warehouse-faults.ts';
import { kv, metrics, metricsProtobuf, resource, span, traceProtobuf, traces } from './fixtures/otlp.ts';

// The real collector over real chDB, fed real protobuf bodies over real HTTP. ClickHouse "fails"
// by fault injection at the client boundary (./warehouse-faults.ts): inserts throw what an
// unreachable server throws, wait at a gate (a slow server), or run and lose their answer.

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
let api: TestApi;
const admin = bearer(BOOTSTRAP_TOKEN);
const VERSION = '1.0.0';
const ENVIRONMENT = 'production';

let faults: WarehouseFaults;
const setStore: WarehouseFaults['set'] = (mode, options) => faults.set(mode, options);

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  faults = injectWarehouseFaults(stores.warehouse);
});

const collectors: FastifyInstance[] = [];

afterEach(async () => {
  setStore('up');
  for (const app of collectors.splice(0)) await app.close().catch(() => {});
});

afterAll(async () => {
  faults?.remove();
  await api?.app.close();
  await stores?.close();
});

/** A registered server with an ingest key bound to it; each test sends as a server of its own. */
async function server(slug: string): Promise<string> {
  await api.app.inject({ method: 'POST', url: '/api/v1/servers', headers: admin, payload: { slug } });
  await api.app.inject({
    method: 'POST',
    url: `/api/v1/servers/${slug}/versions`,
    headers: admin,
    payload: { version: VERSION, status: 'stable' },
  });
  const key = await api.app.inject({
    method: 'POST',
    url: '/api/v1/ingest-keys',
    headers: admin,
    payload: { name: slug, server: slug },
  });
  expect(key.statusCode).toBe(201);
  return key.json().key as string;
}

/** Small bounds so an outage reaches the spool, and the spool its limit, within a few requests. */
const WRITER: CollectorDeps['writer'] = {
  batchSize: 40,
  flushIntervalMs: 50,
  maxBufferedRows: 80,
  maxSpoolBytes: 48 * 1024,
  minRetryDelayMs: 20,
  maxRetryDelayMs: 100,
};

async function startCollector(
  dataDir: string,
  writer: CollectorDeps['writer'] = WRITER,
  setup?: (app: FastifyInstance) => void,
) {
  const app = await buildCollector({
    stores,
    secretBox: testSecretBox,
    logger: silentLogger,
    dataDir,
    writer,
  });
  collectors.push(app);
  setup?.(app);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url };
}

const PER_BODY = 10;
const BASE_NANOS = BigInt(Date.now() - 10 * 60_000) * 1_000_000n;

/**
 * Numbered protobuf bodies: trace bodies of {@link PER_BODY} SERVER spans with unique ids, metric
 * bodies of {@link PER_BODY} delta `process.cpu.time` points whose value is their unique number,
 * so what is stored can be matched against what was acknowledged, item by item.
 */
class Traffic {
  readonly slug: string;
  readonly key: string;
  readonly url: string;
  #next = 1;
  readonly acked = { spans: new Set<string>(), points: new Set<number>() };
  readonly refused = { spans: new Set<string>(), points: new Set<number>() };
  readonly statuses: number[] = [];

  constructor(slug: string, key: string, url: string) {
    this.slug = slug;
    this.key = key;
    this.url = url;
  }

  /** Posts the `i`-th body: even ones carry spans, odd ones metric points. */
  async post(i: number, url = this.url): Promise<Response> {
    const first = this.#next;
    this.#next += PER_BODY;
    const numbers = Array.from({ length: PER_BODY }, (_, k) => first + k);
    const res = resource({
      'service.name': this.slug,
      'service.version': VERSION,
      'deployment.environment.name': ENVIRONMENT,
    });
    const isTraces = i % 2 === 0;
    const ids = numbers.map((n) => n.toString(16).padStart(16, '0'));
    const body = isTraces
      ? traceProtobuf(
          traces(
            numbers.map((n, k) =>
              span({
                traceId: n.toString(16).padStart(32, 'a'),
                spanId: ids[k],
                name: 'tools/call forecast',
                start: BASE_NANOS + BigInt(n) * 1_000_000n,
                durationNanos: 5_000_000n,
                attributes: [kv('mcp.method.name', 'tools/call'), kv('gen_ai.tool.name', 'forecast')],
              }),
            ),
            res,
          ),
        )
      : metricsProtobuf(
          metrics(
            [
              {
                name: 'process.cpu.time',
                unit: 's',
                sum: {
                  aggregationTemporality: 1, // DELTA
                  isMonotonic: true,
                  dataPoints: numbers.map((n) => ({
                    attributes: [kv('cpu.mode', `mode-${n}`)],
                    startTimeUnixNano: (BASE_NANOS + BigInt(n) * 1_000_000n).toString(),
                    timeUnixNano: (BASE_NANOS + BigInt(n + 1) * 1_000_000n).toString(),
                    asDouble: n,
                  })),
                },
              },
            ],
            res,
          ),
        );
    const response = await fetch(`${url}/v1/${isTraces ? 'traces' : 'metrics'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf', authorization: `Bearer ${this.key}` },
      body: new Uint8Array(body),
    });
    await response.clone().arrayBuffer();
    this.statuses.push(response.status);
    const into = response.status === 200 ? this.acked : this.refused;
    if (isTraces) for (const id of ids) into.spans.add(id);
    else for (const n of numbers) into.points.add(n);
    return response;
  }

  get ackedPointSum(): number {
    let sum = 0;
    for (const n of this.acked.points) sum += n;
    return sum;
  }
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

/** What ClickHouse holds for a server: every stored span id and point value, duplicates included. */
async function stored(slug: string): Promise<{ spans: string[]; points: number[]; rollup: number }> {
  const result = await stores.warehouse.client.query({
    query: `SELECT
              (SELECT groupArray(span_id) FROM requests WHERE server = {server:String}) AS spans,
              (SELECT groupArray(toUInt64(value)) FROM metric_points WHERE server = {server:String}) AS points,
              (SELECT countMerge(requests) FROM requests_1m WHERE server = {server:String}) AS rollup`,
    query_params: { server: slug },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{
    spans: string[];
    points: (number | string)[];
    rollup: number | string;
  }>();
  return {
    spans: [...(row?.spans ?? [])].sort(),
    points: (row?.points ?? []).map(Number).sort((a, b) => a - b),
    rollup: Number(row?.rollup ?? 0),
  };
}

const spoolFiles = (dataDir: string): string[] => {
  const dir = path.join(dataDir, 'spool');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')) : [];
};

/** Rows the spool holds, from the files' header lines. */
const spooledRows = (dataDir: string): number =>
  spoolFiles(dataDir).reduce((sum, f) => {
    const header = fs.readFileSync(path.join(dataDir, 'spool', f), 'utf8').split('\n', 1)[0] as string;
    return sum + (JSON.parse(header) as { rows: number }).rows;
  }, 0);

/** Waits until ClickHouse holds as many rows as were acknowledged and the spool is empty. */
async function drained(traffic: Traffic, dataDir: string): Promise<void> {
  await until(async () => {
    const s = await stored(traffic.slug);
    return (
      s.spans.length >= traffic.acked.spans.size &&
      s.points.length >= traffic.acked.points.size &&
      spoolFiles(dataDir).length === 0
    );
  });
}

/** Every acknowledged item is stored exactly once, and nothing else; the query API agrees. */
async function expectExactlyOnce(traffic: Traffic): Promise<void> {
  const s = await stored(traffic.slug);
  expect(s.spans).toEqual([...traffic.acked.spans].sort());
  expect(s.points).toEqual([...traffic.acked.points].sort((a, b) => a - b));
  expect(s.rollup).toBe(traffic.acked.spans.size);

  const summary = await api.app.inject({
    method: 'GET',
    url: `/api/v1/servers/${traffic.slug}/versions/${VERSION}/summary?environment=${ENVIRONMENT}&window=1h`,
    headers: admin,
  });
  expect(summary.statusCode).toBe(200);
  expect(summary.json()).toMatchObject({ requests: traffic.acked.spans.size });

  const series = await api.app.inject({
    method: 'GET',
    url: `/api/v1/servers/${traffic.slug}/metrics?version=${VERSION}&environment=${ENVIRONMENT}&window=1h&step=3600`,
    headers: admin,
  });
  expect(series.statusCode).toBe(200);
  const points = series.json().points as { requests: number; cpuSeconds: number | null }[];
  expect(points.reduce((n, p) => n + p.requests, 0)).toBe(traffic.acked.spans.size);
  expect(points.reduce((n, p) => n + (p.cpuSeconds ?? 0), 0)).toBe(traffic.ackedPointSum);
}

function rpcStatus(body: ArrayBuffer): { code: number; message: string } {
  return RpcStatus.toObject(RpcStatus.decode(new Uint8Array(body))) as { code: number; message: string };
}

/**
 * Takes the store down, waits until the writer has seen an insert fail (so a full memory spools
 * rather than pushes back with 429), then posts until the spool is full and the collector answers 503.
 */
async function fillUntilRefused(traffic: Traffic): Promise<{ first503: Response; body: ArrayBuffer }> {
  setStore('down');
  const refusedBefore = faults.counts.refused;
  expect((await traffic.post(0)).status).toBe(200);
  await until(() => faults.counts.refused > refusedBefore);
  for (let i = 1; i < 200; i++) {
    const response = await traffic.post(i);
    if (response.status === 503) return { first503: response, body: await response.arrayBuffer() };
    expect(response.status).toBe(200);
  }
  throw new Error('the collector never refused while ClickHouse was down and the spool full');
}

describe('collector while ClickHouse is down', () => {
  it('acknowledges into memory and the spool, then answers 503 with Retry-After; after recovery stores every acknowledged item exactly once', async () => {
    const slug = 'outage-mcp';
    const dataDir = tempDir('pylee-outage');
    const { url } = await startCollector(dataDir);
    const traffic = new Traffic(slug, await server(slug), url);

    const { first503, body } = await fillUntilRefused(traffic);

    // Acknowledged data was taken into memory and, past its bound, durably into the spool.
    expect(traffic.acked.spans.size).toBeGreaterThan(0);
    expect(traffic.acked.points.size).toBeGreaterThan(0);
    expect(traffic.acked.spans.size + traffic.acked.points.size).toBeGreaterThan(WRITER!.maxBufferedRows!);
    expect(spoolFiles(dataDir).length).toBeGreaterThan(0);
    expect(spooledRows(dataDir)).toBeLessThanOrEqual(traffic.acked.spans.size + traffic.acked.points.size);
    // The refusal follows the OTLP specification: 503, Retry-After, a google.rpc.Status UNAVAILABLE.
    const retryAfter = first503.headers.get('retry-after');
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    expect(first503.headers.get('content-type')).toMatch(/^application\/x-protobuf/);
    expect(rpcStatus(body)).toMatchObject({
      code: 14,
      message: expect.stringMatching(/ClickHouse is not accepting inserts and the telemetry spool is full/),
    });

    // As long as the store stays down, both signals keep being refused, and nothing is stored.
    for (const i of [1000, 1001]) {
      const response = await traffic.post(i);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    }
    expect(traffic.refused.spans.size).toBeGreaterThan(0);
    expect(traffic.refused.points.size).toBeGreaterThan(0);
    expect(traffic.statuses.every((s) => s === 200 || s === 503)).toBe(true);
    expect(await stored(slug)).toEqual({ spans: [], points: [], rollup: 0 });

    setStore('up');
    await drained(traffic, dataDir);
    await expectExactlyOnce(traffic);

    // New data is accepted again, and closing the collector (which flushes) adds nothing twice.
    for (const i of [2000, 2001]) expect((await traffic.post(i)).status).toBe(200);
    await collectors.pop()!.close();
    await expectExactlyOnce(traffic);
    expect(spoolFiles(dataDir)).toEqual([]);
  });

  it('the official OTLP exporter honours Retry-After and its retry after recovery is stored once', async () => {
    const slug = 'exporter-mcp';
    const dataDir = tempDir('pylee-outage-exporter');
    // The store comes back as soon as the exporter has been refused once.
    let armed = false;
    const exporterStatuses: number[] = [];
    const { url } = await startCollector(dataDir, WRITER, (app) =>
      app.addHook('onResponse', async (req, reply) => {
        if (!armed || req.url !== '/v1/traces') return;
        exporterStatuses.push(reply.statusCode);
        if (reply.statusCode === 503) setStore('up');
      }),
    );
    const traffic = new Traffic(slug, await server(slug), url);
    await fillUntilRefused(traffic);
    armed = true;

    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': slug,
        'service.version': VERSION,
        'deployment.environment.name': ENVIRONMENT,
      }),
      spanProcessors: [
        new BatchSpanProcessor(
          new OTLPTraceExporter({
            url: `${url}/v1/traces`,
            headers: { authorization: `Bearer ${traffic.key}` },
          }),
          { maxExportBatchSize: 100 },
        ),
      ],
    });
    const tracer = provider.getTracer('outage-test');
    const exported: string[] = [];
    for (let i = 0; i < 25; i++) {
      const s = tracer.startSpan('tools/call forecast', {
        kind: SpanKind.SERVER,
        attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'forecast' },
      });
      exported.push(s.spanContext().spanId);
      s.end();
    }
    await provider.forceFlush();
    await provider.shutdown();

    expect(exporterStatuses[0]).toBe(503);
    expect(exporterStatuses.at(-1)).toBe(200);
    for (const id of exported) traffic.acked.spans.add(id);
    await drained(traffic, dataDir);
    await expectExactlyOnce(traffic);
  });
});

describe('collector while ClickHouse is slow', () => {
  it('pushes back with 429 and Retry-After instead of spooling, and stores what it acknowledged once', async () => {
    const slug = 'slow-mcp';
    const dataDir = tempDir('pylee-slow');
    const { url } = await startCollector(dataDir);
    const traffic = new Traffic(slug, await server(slug), url);
    let open!: () => void;
    setStore('slow', { gate: new Promise<void>((resolve) => (open = resolve)) });
    const gatedBefore = faults.counts.gated;

    expect((await traffic.post(0)).status).toBe(200);
    await until(() => faults.counts.gated > gatedBefore); // an insert is in flight, ClickHouse has not answered
    let refused: Response | undefined;
    for (let i = 1; i < 100 && !refused; i++) {
      const response = await traffic.post(i);
      if (response.status !== 200) refused = response;
    }

    expect(refused?.status).toBe(429);
    expect(refused?.headers.get('retry-after')).toBe('5');
    expect(rpcStatus(await refused!.arrayBuffer())).toMatchObject({ code: 8 }); // RESOURCE_EXHAUSTED
    expect((await traffic.post(100)).status).toBe(429); // the other signal too
    expect(spoolFiles(dataDir)).toEqual([]); // the spool is for outages, not for a slow store
    expect(traffic.refused.spans.size + traffic.refused.points.size).toBeGreaterThan(0);

    open();
    setStore('up');
    await drained(traffic, dataDir);
    await expectExactlyOnce(traffic);
  });
});

describe('collector restart during an outage', () => {
  it('keeps acknowledged data in the spool across a restart and writes it once, even when an insert answer is lost', async () => {
    const slug = 'restart-mcp';
    const dataDir = tempDir('pylee-restart');
    const writer = { ...WRITER, maxSpoolBytes: 1024 * 1024 };
    const first = await startCollector(dataDir, writer);
    const traffic = new Traffic(slug, await server(slug), first.url);
    setStore('down');
    const refusedBefore = faults.counts.refused;
    expect((await traffic.post(0)).status).toBe(200);
    await until(() => faults.counts.refused > refusedBefore);
    for (let i = 1; i < 12; i++) expect((await traffic.post(i)).status).toBe(200);
    const acknowledged = traffic.acked.spans.size + traffic.acked.points.size;
    expect(acknowledged).toBe(120);
    expect(spoolFiles(dataDir).length).toBeGreaterThan(0); // past the memory bound already

    // Closing while ClickHouse is down spools what memory held: everything acknowledged is on disk.
    await collectors.pop()!.close();
    expect(spooledRows(dataDir)).toBe(acknowledged);
    expect(await stored(slug)).toEqual({ spans: [], points: [], rollup: 0 });

    // ClickHouse is back, but the first insert's answer is lost: its retry must not count twice.
    setStore('answer-lost');
    const lostBefore = faults.counts.answersLost;
    const second = await startCollector(dataDir, writer);
    await drained(traffic, dataDir);
    expect(faults.counts.answersLost).toBe(lostBefore + 1);
    await expectExactlyOnce(traffic);

    // And the restarted collector takes new data.
    expect((await traffic.post(12, second.url)).status).toBe(200);
    await collectors.pop()!.close();
    await expectExactlyOnce(traffic);
  });
});
