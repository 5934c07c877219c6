import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCollector } from '#collector/app.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
let api: TestApi;
let collector: FastifyInstance;
let collectorUrl: string;
let ingestKey: string;
const admin = bearer(BOOTSTRAP_TOKEN);

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  await api.app.inject({
    method: 'POST',
    url: '/api/v1/servers',
    headers: admin,
    payload: { slug: 'weather-mcp' },
  });
  for (const version of ['1.0.0', '1.1.0']) {
    await api.app.inject({
      method: 'POST',
      url: '/api/v1/servers/weather-mcp/versions',
      headers: admin,
      payload: { version, status: 'stable' },
    });
  }
  const key = await api.app.inject({
    method: 'POST',
    url: '/api/v1/ingest-keys',
    headers: admin,
    payload: { name: 'pipeline', server: 'weather-mcp' },
  });
  ingestKey = key.json().key;
  collector = await buildCollector({
    stores,
    secretBox: testSecretBox,
    logger: silentLogger,
    dataDir: stores.dir,
  });
  collectorUrl = await collector.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await collector?.close();
  await api?.app.close();
  await stores?.close();
});

/**
 * Sends `count` SERVER spans of `tools/call forecast` for one version through the official OTLP
 * protobuf exporter, `errors` of them failed, each lasting `durationMs`.
 */
async function send(
  version: string,
  count: number,
  errors: number,
  durationMs: (i: number) => number,
  key = ingestKey,
) {
  const exporter = new OTLPTraceExporter({
    url: `${collectorUrl}/v1/traces`,
    headers: { authorization: `Bearer ${key}` },
  });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': 'weather-mcp',
      'service.version': version,
      'deployment.environment.name': 'production',
    }),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 1000, maxQueueSize: 2000 })],
  });
  const tracer = provider.getTracer('pipeline-test');
  const start = Date.now() - 60_000;
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan('tools/call forecast', {
      kind: SpanKind.SERVER,
      startTime: start + i,
      attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'forecast' },
    });
    if (i < errors) span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timeout' });
    if (i < errors) span.setAttribute('error.type', 'timeout');
    span.end(start + i + durationMs(i));
  }
  await provider.forceFlush();
  await provider.shutdown();
}

describe('telemetry pipeline', () => {
  it('turns exported spans into per-version figures that the compare API reports exactly', async () => {
    await send('1.0.0', 200, 2, (i) => 10 + (i % 10));
    await send('1.1.0', 100, 10, (i) => 50 + (i % 10));

    let body: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (let attempt = 0; attempt < 50; attempt++) {
      const res = await api.app.inject({
        method: 'GET',
        url: '/api/v1/servers/weather-mcp/compare?candidate=1.1.0&environment=production&window=15m',
        headers: admin,
      });
      body = res.json();
      if (res.statusCode === 200 && body.baseline.requests === 200 && body.candidate.requests === 100) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // The default baseline is the newest stable version with traffic other than the candidate.
    expect(body.baseline).toMatchObject({ version: '1.0.0', requests: 200, errors: 2, errorRate: 0.01 });
    expect(body.candidate).toMatchObject({ version: '1.1.0', requests: 100, errors: 10, errorRate: 0.1 });
    expect(body.candidate.latency.p50).toBeGreaterThanOrEqual(53);
    expect(body.candidate.latency.p50).toBeLessThanOrEqual(56);
    expect(body.baseline.latency.p99).toBeGreaterThanOrEqual(18);
    expect(body.baseline.latency.p99).toBeLessThanOrEqual(19.5);
    expect(body.deltas.errorRate.absolute).toBeCloseTo(0.09);
    expect(body.operations).toHaveLength(1);
    expect(body.operations[0]).toMatchObject({ operation: 'tools/call forecast' });
    expect(body.registered).toEqual({ server: true, baseline: true, candidate: true });
  });

  it('refuses an unknown ingest key with 401 and stores nothing', async () => {
    const before = await count();
    const response = await fetch(`${collectorUrl}/v1/traces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer pyli_nope' },
      body: JSON.stringify({ resourceSpans: [] }),
    });
    expect(response.status).toBe(401);
    expect(await count()).toBe(before);
  });

  it('stores telemetry of a server the registry does not know, and shows it as unregistered', async () => {
    const unbound = await api.app.inject({
      method: 'POST',
      url: '/api/v1/ingest-keys',
      headers: admin,
      payload: { name: 'any' },
    });
    const exporter = new OTLPTraceExporter({
      url: `${collectorUrl}/v1/traces`,
      headers: { 'x-pylee-ingest-key': unbound.json().key },
    });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'mystery', 'service.version': '0.0.1' }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    provider.getTracer('t').startSpan('GET /', { kind: SpanKind.SERVER }).end();
    await provider.shutdown();
    let summary: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (let attempt = 0; attempt < 50 && !(summary.requests > 0); attempt++) {
      await new Promise((r) => setTimeout(r, 200));
      summary = (
        await api.app.inject({
          method: 'GET',
          url: '/api/v1/servers/mystery/versions/0.0.1/summary?window=15m',
          headers: admin,
        })
      ).json();
    }
    expect(summary).toMatchObject({ requests: 1, registered: false, status: null });
  });
});

async function count(): Promise<number> {
  const result = await stores.warehouse.client.query({
    query: 'SELECT count() AS n FROM requests',
    format: 'JSONEachRow',
  });
  return Number(((await result.json()) as { n: number }[])[0]?.n);
}
