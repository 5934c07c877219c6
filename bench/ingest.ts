// OTLP ingest throughput of the collector: protobuf traces and metrics, serialized by the
// OpenTelemetry JS SDK's own serializers, posted by concurrent clients to the real collector
// (fastify, ingest-key auth, decode, mapping, TelemetryWriter → chDB), next to two references
// measured in the same run: (a) the same mapped rows inserted straight into chDB in every text
// format @clickhouse/client can send it (bench/ingest-formats.ts; the best is the store's limit)
// and (b) a no-op fastify route taking the same bodies (the HTTP limit). Query latency over the
// stored rows is bench/queries.ts.
//
// Everything shares this machine's cores: the collector's event loop, chDB's threads and the
// client (a worker thread), so "per core" is the rate divided by os.availableParallelism().
//
// Run: npm run bench:ingest   (prints a table, writes bench/results/ingest.json)
//   BENCH_SECONDS (15) posting time per phase, BENCH_CONCURRENCY (8) concurrent clients,
//   BENCH_BATCH (the writer's default) rows per
//   insert for the collector and the references, BENCH_FORMAT_ROUNDS (3) rounds of each format.
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import Fastify from 'fastify';
import { buildCollector } from '#collector/app.ts';
import { DeltaTracker } from '#collector/delta.ts';
import { mapMetrics, mapSpans } from '#collector/mapping.ts';
import { decodeMetrics, decodeTraces } from '#collector/otlp/decode.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { encodeRow } from '#core/warehouse/row-encoding.ts';
import type { MetricPointRow, RequestRow } from '#core/warehouse/rows.ts';
import type { TelemetryTable } from '#core/warehouse/spool.ts';
import { DEFAULT_BATCH_SIZE } from '#core/warehouse/telemetry-writer.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { bestFormat, FORMATS, formatLimits } from './ingest-formats.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const CORES = os.availableParallelism();
const BODIES = 50;
const SPANS_PER_BODY = 1000;
/** Rows per insert, the collector's and the references': the writer's unless BENCH_BATCH says. */
const STORE_BATCH = Number(process.env.BENCH_BATCH ?? DEFAULT_BATCH_SIZE);
const FORMAT_ROUNDS = Number(process.env.BENCH_FORMAT_ROUNDS ?? 3);
/** Spans/s and points/s the collector should store on this machine, write-ahead log on (issue 17). */
const TARGET_RATE = 100_000;
/** The format the writer sends (core/warehouse/row-encoding.ts). */
const WRITER_FORMAT = 'JSONCompactEachRow';
const SERVER = 'weather-mcp';
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0'];
const TOOLS = Array.from({ length: 25 }, (_, i) => `tool_${i}`);
const PROTOBUF = 'application/x-protobuf';

const resourceOf = (version: string) =>
  resourceFromAttributes({
    'service.name': SERVER,
    'service.version': version,
    'deployment.environment.name': 'production',
    'service.instance.id': `instance-${version}`,
  });

/** 50 bodies of 1,000 MCP `tools/call` SERVER spans (2 % failed), one version per body. */
async function traceBodies(): Promise<Uint8Array[]> {
  const exporter = new InMemorySpanExporter();
  const providers = VERSIONS.map(
    (version) =>
      new BasicTracerProvider({
        resource: resourceOf(version),
        spanProcessors: [new SimpleSpanProcessor(exporter)],
      }),
  );
  const bodies: Uint8Array[] = [];
  const start = Date.now() - 10 * 60_000;
  for (let b = 0; b < BODIES; b++) {
    const provider = providers[b % VERSIONS.length]!;
    const tracer = provider.getTracer('@modelcontextprotocol/sdk', '1.17.0');
    for (let i = 0; i < SPANS_PER_BODY; i++) {
      const n = b * SPANS_PER_BODY + i;
      const tool = TOOLS[n % TOOLS.length]!;
      const began = start + n * 5;
      const span = tracer.startSpan(`tools/call ${tool}`, {
        kind: SpanKind.SERVER,
        startTime: began,
        attributes: {
          'mcp.method.name': 'tools/call',
          'gen_ai.tool.name': tool,
          'gen_ai.operation.name': 'execute_tool',
          'mcp.session.id': `session-${n % 400}`,
          'mcp.protocol.version': '2025-06-18',
          'jsonrpc.request.id': String(n),
          'network.transport': 'tcp',
          'client.address': `10.0.${n % 7}.${n % 250}`,
        },
      });
      if (n % 50 === 7) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timeout' });
        span.setAttribute('error.type', n % 100 === 7 ? 'timeout' : 'tool_error');
      }
      span.end(began + 3 + (n % 97));
    }
    await provider.forceFlush();
    const body = ProtobufTraceSerializer.serializeRequest(exporter.getFinishedSpans());
    if (!body) throw new Error('the trace serializer produced no body');
    bodies.push(body);
    exporter.reset();
  }
  await Promise.all(providers.map((p) => p.shutdown()));
  return bodies;
}

/** Collects on demand; delta temporality, so each collection holds what was recorded since the last. */
class ManualReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.DELTA });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const DURATION_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/**
 * 50 bodies of 1,000 histogram points each: `mcp.server.operation.duration` by tool × error.type ×
 * protocol version (500 series) and `http.server.request.duration` by route × method × status ×
 * scheme (500 series), delta temporality. Returns the bodies and their exact point counts.
 */
async function metricBodies(): Promise<{ bodies: Uint8Array[]; points: number[] }> {
  const meters = VERSIONS.map((version) => {
    const reader = new ManualReader();
    const provider = new MeterProvider({ resource: resourceOf(version), readers: [reader] });
    const meter = provider.getMeter('@modelcontextprotocol/sdk', '1.17.0');
    const histogram = (name: string) =>
      meter.createHistogram(name, { unit: 's', advice: { explicitBucketBoundaries: DURATION_BOUNDS } });
    return {
      provider,
      reader,
      mcp: histogram('mcp.server.operation.duration'),
      http: histogram('http.server.request.duration'),
    };
  });
  const mcpSeries: Attributes[] = [];
  for (const tool of TOOLS)
    for (const errorType of ['', 'timeout', 'tool_error', 'invalid_params'])
      for (const protocol of ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25', 'draft']) {
        mcpSeries.push({
          'mcp.method.name': 'tools/call',
          'gen_ai.tool.name': tool,
          'mcp.protocol.version': protocol,
          ...(errorType ? { 'error.type': errorType } : {}),
        });
      }
  const httpSeries: Attributes[] = [];
  for (const tool of TOOLS)
    for (const method of ['GET', 'POST'])
      for (const status of [200, 201, 400, 404, 500])
        for (const scheme of ['http', 'https']) {
          httpSeries.push({
            'http.request.method': method,
            'http.route': `/api/${tool}/{id}`,
            'http.response.status_code': status,
            'url.scheme': scheme,
          });
        }
  const bodies: Uint8Array[] = [];
  const points: number[] = [];
  for (let b = 0; b < BODIES; b++) {
    const m = meters[b % VERSIONS.length]!;
    for (let k = 0; k < 3; k++) {
      for (const [i, attributes] of mcpSeries.entries()) m.mcp.record(((b + i + k) % 400) / 100, attributes);
      for (const [i, attributes] of httpSeries.entries())
        m.http.record(((b * 7 + i + k) % 300) / 1000, attributes);
    }
    const { resourceMetrics, errors } = await m.reader.collect();
    if (errors.length > 0) throw new Error(`metric collection failed: ${String(errors[0])}`);
    let count = 0;
    for (const scope of resourceMetrics.scopeMetrics)
      for (const metric of scope.metrics) count += metric.dataPoints.length;
    const body = ProtobufMetricsSerializer.serializeRequest(resourceMetrics);
    if (!body) throw new Error('the metrics serializer produced no body');
    bodies.push(body);
    points.push(count);
  }
  await Promise.all(meters.map((m) => m.provider.shutdown()));
  return { bodies, points };
}

// The clients run in a worker thread, so posting does not take the collector's event loop. Plain
// JavaScript, because an eval'd worker is not type-stripped. They post with node:http over
// keep-alive connections, as the OpenTelemetry JS exporters do (fetch costs this shared machine
// noticeably more CPU per body).
const CLIENT = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { url, headers, bodies, items, seconds, concurrency } = workerData;
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const buffers = bodies.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const post = (body) => new Promise((resolve, reject) => {
  const req = http.request({
    host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
    headers: { ...headers, 'content-length': body.byteLength },
  }, (res) => {
    res.on('error', reject);
    res.on('end', () => resolve(res.statusCode));
    res.resume();
  });
  req.on('error', reject);
  req.end(body);
});
parentPort.once('message', async () => {
  const began = performance.now();
  const deadline = began + seconds * 1000;
  const statuses = {};
  const latencies = [];
  const failures = [];
  let accepted = 0;
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      const i = next++ % buffers.length;
      const sent = performance.now();
      try {
        const status = await post(buffers[i]);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status === 200) accepted += items[i];
      } catch (error) {
        statuses.failed = (statuses.failed ?? 0) + 1;
        if (failures.length < 3) failures.push(String(error));
      }
      latencies.push(performance.now() - sent);
    }
  }));
  agent.destroy();
  parentPort.postMessage({ ms: performance.now() - began, posts: latencies.length, accepted, statuses, latencies, failures });
});
parentPort.postMessage('ready');
`;

interface ClientResult {
  ms: number;
  posts: number;
  /** Spans or points in bodies answered 200. */
  accepted: number;
  statuses: Record<string, number>;
  latencies: number[];
  failures: string[];
}

interface Run {
  /** performance.now() when the clients were told to start. */
  began: number;
  clients: ClientResult;
  /** Event-loop utilization of this (the server's) thread while the clients posted. */
  elu: number;
  /** Process CPU (server, chDB, client worker) while the clients posted, as a share of all cores. */
  cpu: number;
}

/** Posts `bodies` round-robin to `url` from CONCURRENCY concurrent clients for SECONDS. */
async function drive(url: string, key: string, bodies: Uint8Array[], items: number[]): Promise<Run> {
  const worker = new Worker(CLIENT, {
    eval: true,
    workerData: {
      url,
      headers: { 'content-type': PROTOBUF, authorization: `Bearer ${key}` },
      bodies,
      items,
      seconds: SECONDS,
      concurrency: CONCURRENCY,
    },
  });
  try {
    await once(worker, 'message');
    const elu = performance.eventLoopUtilization();
    const cpu = process.cpuUsage();
    const began = performance.now();
    worker.postMessage('go');
    const [clients] = (await once(worker, 'message')) as [ClientResult];
    const used = process.cpuUsage(cpu);
    return {
      began,
      clients,
      elu: performance.eventLoopUtilization(elu).utilization,
      cpu: (used.user + used.system) / 1000 / clients.ms / CORES,
    };
  } finally {
    await worker.terminate();
  }
}

const quantile = (xs: number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
};

const median = (xs: number[]) => quantile(xs, 0.5);

async function count(warehouse: Warehouse, table: string, org: string): Promise<number> {
  const result = await warehouse.client.query({
    query: `SELECT count() AS n FROM ${table} WHERE org_id = {org:String}`,
    query_params: { org },
    format: 'JSONEachRow',
  });
  return Number(((await result.json()) as { n: number }[])[0]?.n ?? 0);
}

/** Batch files waiting in the writer's spool (`<dataDir>/spool/*.jsonl`). */
function spoolFiles(dir: string): number {
  const spool = path.join(dir, 'spool');
  return fs.existsSync(spool) ? fs.readdirSync(spool).filter((f) => f.endsWith('.jsonl')).length : 0;
}

/**
 * Items per second of the collector's own stages on this thread, warm and without HTTP or chDB:
 * protobuf decode (the wire decoder the collector uses, and the full protobufjs path it falls back
 * to), mapping to rows, and the writer's encoding of the rows (row-encoding.ts). Measured in process CPU
 * time, best of three, so that other load on the machine counts less.
 */
function stageRates<T>(
  bodies: Uint8Array[],
  decode: (body: Buffer, options: { wire: boolean }) => T,
  map: (request: T) => object[],
  table: TelemetryTable,
) {
  const buffers = bodies.map((body) => Buffer.from(body));
  const cpuMs = (work: () => void) => {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const before = process.cpuUsage();
      work();
      const used = process.cpuUsage(before);
      best = Math.min(best, (used.user + used.system) / 1000);
    }
    return best;
  };
  let decoded: T[] = [];
  let rows: object[] = [];
  let bytes = 0;
  const decodeMs = cpuMs(() => (decoded = buffers.map((body) => decode(body, { wire: true }))));
  const protobufjsMs = cpuMs(() => buffers.forEach((body) => decode(body, { wire: false })));
  const mapMs = cpuMs(() => (rows = decoded.flatMap(map)));
  const encodeMs = cpuMs(() => {
    let body = '';
    for (const row of rows) body += encodeRow(table, row);
    bytes = body.length;
  });
  const rate = (ms: number) => Math.round((rows.length / ms) * 1000);
  return {
    decode: rate(decodeMs),
    decodeProtobufjs: rate(protobufjsMs),
    map: rate(mapMs),
    encode: rate(encodeMs),
    all: rate(decodeMs + mapMs + encodeMs),
    bytes,
  };
}

/** The same bodies into a no-op fastify route: the rate HTTP + body reading allows, in items/s. */
async function httpLimit(signal: 'traces' | 'metrics', bodies: Uint8Array[], items: number[]) {
  const app = Fastify({ bodyLimit: 16 * 1024 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(PROTOBUF, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post(`/v1/${signal}`, (_req, reply) => reply.code(200).send());
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const run = await drive(`${url}/v1/${signal}`, 'none', bodies, items);
    return { ...summary(run, run.clients.ms), rate: (run.clients.accepted / run.clients.ms) * 1000 };
  } finally {
    await app.close();
  }
}

function summary(run: Run, wallMs: number) {
  return {
    wallMs: Math.round(wallMs),
    postingMs: Math.round(run.clients.ms),
    posts: run.clients.posts,
    items: run.clients.accepted,
    statuses: run.clients.statuses,
    failures: run.clients.failures,
    postLatencyMs: {
      p50: round(median(run.clients.latencies), 1),
      p99: round(quantile(run.clients.latencies, 0.99), 1),
    },
    serverEventLoopUtilization: round(run.elu, 2),
    processCpuShareOfAllCores: round(run.cpu, 2),
  };
}

/** Starts a CPU clock: the process's CPU seconds (all threads) and the main thread's, until called. */
function cpuClock(): () => { cpuSeconds: number; mainThreadCpuSeconds: number | undefined } {
  const threadUsage = (process as { threadCpuUsage?: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage })
    .threadCpuUsage;
  const process0 = process.cpuUsage();
  const thread0 = threadUsage?.call(process);
  return () => {
    const p = process.cpuUsage(process0);
    const t = thread0 && threadUsage?.call(process, thread0);
    return {
      cpuSeconds: round((p.user + p.system) / 1e6, 2),
      mainThreadCpuSeconds: t ? round((t.user + t.system) / 1e6, 2) : undefined,
    };
  };
}

const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const say = (line: string) => process.stdout.write(`${line}\n`);

const started = performance.now();
const stores = await openTestStores();
const { warehouse } = stores;
const results: Record<string, unknown> = {};
const checks: { check: string; ok: boolean }[] = [];
const check = (what: string, ok: boolean) => {
  checks.push({ check: what, ok });
  say(`check: ${what} ${ok ? 'ok' : 'MISMATCH'}`);
};

try {
  // An org, a server and an ingest key bound to it, through the real API.
  const api = await buildTestApi(stores);
  const admin = bearer(BOOTSTRAP_TOKEN);
  await api.app.inject({ method: 'POST', url: '/api/v1/servers', headers: admin, payload: { slug: SERVER } });
  const keyResponse = await api.app.inject({
    method: 'POST',
    url: '/api/v1/ingest-keys',
    headers: admin,
    payload: { name: 'bench', server: SERVER },
  });
  const ingestKey = (keyResponse.json() as { key: string }).key;
  const orgId = api.org.id;
  await api.app.close();

  // Bodies, built once; decoding and mapping them here counts rows exactly and warms the JIT.
  const traces = await traceBodies();
  const spanCounts = traces.map(() => SPANS_PER_BODY);
  const metrics = await metricBodies();
  const refOrg = 'bench-store-reference';
  const context = { orgId: refOrg, serverBinding: SERVER };
  const requestRows: RequestRow[] = traces.flatMap(
    (body) => mapSpans(decodeTraces(Buffer.from(body), PROTOBUF), context).rows,
  );
  const pointRows: MetricPointRow[] = metrics.bodies.flatMap(
    (body) => mapMetrics(decodeMetrics(Buffer.from(body), PROTOBUF), context, new DeltaTracker()).rows,
  );
  const totalPoints = metrics.points.reduce((a, b) => a + b, 0);
  check(
    `${BODIES} trace bodies map to ${fmt(BODIES * SPANS_PER_BODY)} request rows`,
    requestRows.length === BODIES * SPANS_PER_BODY,
  );
  check(
    `${BODIES} metric bodies (${fmt(totalPoints)} points) map to as many metric rows`,
    pointRows.length === totalPoints,
  );
  const stages = {
    traces: stageRates(
      traces,
      (body, options) => decodeTraces(body, PROTOBUF, options),
      (request) => mapSpans(request, context).rows,
      'requests',
    ),
    metrics: stageRates(
      metrics.bodies,
      (body, options) => decodeMetrics(body, PROTOBUF, options),
      (request) => mapMetrics(request, context, new DeltaTracker()).rows,
      'metric_points',
    ),
  };
  const avgBytes = (bodies: Uint8Array[]) =>
    Math.round(bodies.reduce((a, b) => a + b.byteLength, 0) / bodies.length);
  results.bodies = {
    traces: { count: BODIES, spansPerBody: SPANS_PER_BODY, avgBytes: avgBytes(traces) },
    metrics: { count: BODIES, pointsPerBody: metrics.points[0], avgBytes: avgBytes(metrics.bodies) },
  };

  // (b) the HTTP limit: the same bodies into a route that does nothing.
  const httpTraces = await httpLimit('traces', traces, spanCounts);
  const httpMetrics = await httpLimit('metrics', metrics.bodies, metrics.points);

  // The collector, one instance per signal; closing it flushes the writer, so the wall time runs
  // from the first post to the last row inserted.
  // The collector, one instance per signal. The wall time runs from the first post until every
  // acknowledged row is in ClickHouse: the collector stays open until then, because its writer
  // replays spooled batches only while it runs (close() flushes memory and leaves the spool).
  const collect = async (
    signal: 'traces' | 'metrics',
    table: string,
    bodies: Uint8Array[],
    items: number[],
    wal: boolean,
  ) => {
    const before = await count(warehouse, table, orgId);
    const collector = await buildCollector({
      stores,
      secretBox: testSecretBox,
      logger: silentLogger,
      dataDir: stores.dir,
      writer: wal ? { batchSize: STORE_BATCH } : { wal: false, batchSize: STORE_BATCH },
    });
    const url = await collector.listen({ host: '127.0.0.1', port: 0 });
    let maxSpoolFiles = 0;
    const sampler = setInterval(() => (maxSpoolFiles = Math.max(maxSpoolFiles, spoolFiles(stores.dir))), 100);
    const cpu = cpuClock();
    const run = await drive(`${url}/v1/${signal}`, ingestKey, bodies, items);
    const posted = performance.now();
    const deadline = posted + 300_000;
    while ((await count(warehouse, table, orgId)) - before < run.clients.accepted) {
      if (performance.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const done = performance.now();
    const used = cpu();
    clearInterval(sampler);
    await collector.close();
    const stored = (await count(warehouse, table, orgId)) - before;
    const spooled = spoolFiles(stores.dir);
    check(
      `${signal}: ${fmt(stored)} rows in ${table} = ${fmt(run.clients.accepted)} acknowledged, ${spooled} spool files left (up to ${maxSpoolFiles} during the run)`,
      stored === run.clients.accepted && spooled === 0,
    );
    const wallMs = done - run.began;
    return {
      ...summary(run, wallMs),
      stored,
      /** From the last response to the last row inserted. */
      drainMs: Math.round(done - posted),
      maxSpoolFiles,
      rate: (stored / wallMs) * 1000,
      acceptRate: (run.clients.accepted / run.clients.ms) * 1000,
      ...used,
      /** Rows stored per second of CPU the whole process (collector, chDB, client) used: less sensitive to other load. */
      itemsPerCpuSecond: Math.round(stored / used.cpuSeconds),
    };
  };
  // With the write-ahead log (the default: answered once on disk) and without it (answered once in
  // memory, as before it existed), the same bodies, one after the other.
  const collectorTraces = await collect('traces', 'requests', traces, spanCounts, true);
  const collectorMetrics = await collect('metrics', 'metric_points', metrics.bodies, metrics.points, true);
  const memoryTraces = await collect('traces', 'requests', traces, spanCounts, false);
  const memoryMetrics = await collect('metrics', 'metric_points', metrics.bodies, metrics.points, false);

  // (a) the store's limit: as many of the same rows straight into chDB.
  const raw = { perRound: Math.max(5 * STORE_BATCH, 100_000), rounds: FORMAT_ROUNDS, batch: STORE_BATCH };
  const rawTraces = await formatLimits(warehouse, 'requests', requestRows, {
    ...raw,
    orgPrefix: `${refOrg}-`,
  });
  const rawMetrics = await formatLimits(warehouse, 'metric_points', pointRows, {
    ...raw,
    orgPrefix: `${refOrg}-`,
  });
  for (const [table, figures] of [
    ['requests', rawTraces],
    ['metric_points', rawMetrics],
  ] as const) {
    let ok = true;
    for (const f of FORMATS) ok &&= (await count(warehouse, table, `${refOrg}-${f}`)) === figures[f].rows;
    check(`raw inserts: every format's rows are in ${table}, each under its own org`, ok);
  }
  const storeTraces = bestFormat(rawTraces);
  const storeMetrics = bestFormat(rawMetrics);
  results.oneThreadStages = stages;
  results.ingest = {
    traces: {
      collector: collectorTraces,
      withoutWal: memoryTraces,
      store: storeTraces,
      rawByFormat: rawTraces,
      http: httpTraces,
    },
    metrics: {
      collector: collectorMetrics,
      withoutWal: memoryMetrics,
      store: storeMetrics,
      rawByFormat: rawMetrics,
      http: httpMetrics,
    },
  };

  // The table.
  type Row = [string, string, string, string, string, string, string];
  const rows: Row[] = [];
  const ratio = (x: number, y: number) => (y > 0 ? (x / y).toFixed(2) : '–');
  const met = (ok: boolean) => (ok ? 'yes' : 'NO');
  for (const [signal, unit, c, m, s, h, byFormat] of [
    ['traces', 'spans/s', collectorTraces, memoryTraces, storeTraces, httpTraces, rawTraces],
    ['metrics', 'points/s', collectorMetrics, memoryMetrics, storeMetrics, httpMetrics, rawMetrics],
  ] as const) {
    rows.push(
      [
        `${signal}: collector (write-ahead log) vs without it`,
        fmt(c.rate),
        unit,
        `no log ${fmt(m.rate)}`,
        ratio(c.rate, m.rate),
        '≥ 0.80',
        met(c.rate >= 0.8 * m.rate),
      ],
      [
        `${signal}: collector, ${CONCURRENCY} clients, ${CORES} cores`,
        fmt(c.rate),
        unit,
        `best raw ${fmt(s.rate)} (${s.format})`,
        ratio(c.rate, s.rate),
        '≥ 0.80',
        met(c.rate >= 0.8 * s.rate),
      ],
      [
        `${signal}: collector`,
        fmt(c.rate),
        unit,
        '',
        '',
        `≥ ${fmt(TARGET_RATE)}`,
        met(c.rate >= TARGET_RATE),
      ],
      [
        `${signal}: collector vs HTTP limit`,
        fmt(c.rate),
        unit,
        `http ${fmt(h.rate)}`,
        ratio(c.rate, h.rate),
        '',
        '',
      ],
      ...FORMATS.map((f): Row => {
        const x = byFormat[f];
        return [
          `${signal}: ref. raw chDB insert, ${f}`,
          fmt(x.rate.median),
          'rows/s',
          `best ${fmt(x.rate.best)}, ${round(1e6 / x.itemsPerCpuSecond.median, 1)} CPU µs/row`,
          ratio(x.rate.median, s.rate),
          f === s.format ? 'fastest' : '',
          f === WRITER_FORMAT ? 'writer' : '',
        ];
      }),
      [`${signal}: ref. no-op fastify route (HTTP)`, fmt(h.rate), unit, '', '', '', ''],
    );
  }
  const header: Row = ['case', 'figure', 'unit', 'reference', 'ratio', 'target', 'met?'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: Row) =>
    r
      .map((cell, i) => (i === 1 || i === 4 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  say('');
  say(line(header));
  for (const r of rows) say(line(r));
  const runtimeS = round((performance.now() - started) / 1000, 1);
  say('');
  for (const [signal, c, s] of [
    ['traces', collectorTraces, storeTraces],
    ['metrics', collectorMetrics, storeMetrics],
  ] as const) {
    const st = stages[signal];
    say(
      `${signal}: collector event loop ${Math.round(c.serverEventLoopUtilization * 100)} % busy, process CPU ${Math.round(c.processCpuShareOfAllCores * 100)} % of all cores, ${fmt(c.itemsPerCpuSecond)} rows stored per CPU-second of the process (best raw insert ${fmt(s.itemsPerCpuSecond)}; main thread ${c.mainThreadCpuSeconds ?? '?'} of ${c.cpuSeconds} CPU-s), post p50/p99 ${c.postLatencyMs.p50}/${c.postLatencyMs.p99} ms, last row ${fmt(c.drainMs)} ms after the last response, spool up to ${c.maxSpoolFiles} files; ` +
        `stages on one thread (CPU time), items/s: decode ${fmt(st.decode)} (protobufjs path ${fmt(st.decodeProtobufjs)}), map ${fmt(st.map)}, encode rows ${fmt(st.encode)}, all three ${fmt(st.all)}`,
    );
  }
  say(
    `\n${CORES} cores (collector, chDB and the client worker share them), node ${process.version}, ${runtimeS} s`,
  );

  fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  fs.writeFileSync(
    path.join(ROOT, 'bench/results/ingest.json'),
    JSON.stringify(
      {
        bench: 'ingest',
        at: new Date().toISOString(),
        machine: {
          cores: CORES,
          cpu: os.cpus()[0]?.model,
          memoryBytes: os.totalmem(),
          node: process.version,
        },
        config: {
          seconds: SECONDS,
          concurrency: CONCURRENCY,
          storeBatch: STORE_BATCH,
        },
        targets: {
          spansPerSecond: TARGET_RATE,
          pointsPerSecond: TARGET_RATE,
          shareOfBestRawInsert: 0.8,
          walShareOfMemoryRate: 0.8,
        },
        runtimeSeconds: runtimeS,
        ...results,
        checks,
        table: rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]]))),
      },
      null,
      2,
    ) + '\n',
  );
} finally {
  await stores.close();
}
