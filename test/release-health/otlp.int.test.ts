import { SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleaseHealthJson } from '#api/routes/release-health.ts';
import { buildCollector } from '#collector/app.ts';
import { clientKeyHash } from '#core/telemetry/client-key.ts';
import { frontedKey, GatewayFronting } from '#core/telemetry/fronted.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { until } from '#test/helpers/until.ts';

// Release health from OTLP alone: known sessions exported by the official OpenTelemetry exporters
// (spans over OTLP/HTTP JSON, the mcp.server.session.duration histogram over protobuf, cumulative as
// the SDK's default) through the real collector into chDB give exact figures from the API.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let collector: FastifyInstance;
let collectorUrl: string;
let ingestKey: string;

const admin = bearer(BOOTSTRAP_TOKEN);
const NOW = Date.now();
// Raw values that must never be stored: only their keyed hashes.
const ALICE = 'alice@example.com';
const BOB = 'bob@example.com';
const ADDRESS = '203.0.113.7';

const resource = (environment: string) =>
  resourceFromAttributes({
    'service.name': 'weather',
    'service.version': '1.0.0',
    'deployment.environment.name': environment,
  });

/** SERVER spans of `tools/call forecast`, one per entry, `agoMs` before now. */
async function sendSpans(
  spans: { session: string; user?: Attributes; agoMs: number; errorType?: string }[],
): Promise<void> {
  const provider = new BasicTracerProvider({
    resource: resource('production'),
    spanProcessors: [
      new SimpleSpanProcessor(
        new OTLPTraceExporter({
          url: `${collectorUrl}/v1/traces`,
          headers: { authorization: `Bearer ${ingestKey}` },
        }),
      ),
    ],
  });
  const tracer = provider.getTracer('release-health-otlp-test');
  for (const s of spans) {
    const start = NOW - s.agoMs;
    const span = tracer.startSpan('tools/call forecast', {
      kind: SpanKind.SERVER,
      startTime: start,
      attributes: {
        'mcp.method.name': 'tools/call',
        'gen_ai.tool.name': 'forecast',
        'mcp.session.id': s.session,
        ...s.user,
        ...(s.errorType ? { 'error.type': s.errorType } : {}),
      },
    });
    if (s.errorType) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(start + 20);
  }
  await provider.forceFlush();
  await provider.shutdown();
}

/** A meter whose `mcp.server.session.duration` points the test records, exported on forceFlush. */
function sessionMeter(environment: string) {
  const provider = new MeterProvider({
    resource: resource(environment),
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({
          url: `${collectorUrl}/v1/metrics`,
          headers: { authorization: `Bearer ${ingestKey}` },
        }),
        exportIntervalMillis: 3_600_000,
      }),
    ],
  });
  const histogram = provider
    .getMeter('release-health-otlp-test')
    .createHistogram('mcp.server.session.duration', { unit: 's' });
  return { provider, histogram };
}

async function query<T>(sql: string): Promise<T[]> {
  const result = await stores.warehouse.client.query({
    query: sql,
    query_params: { org: api.org.id },
    format: 'JSONEachRow',
  });
  return result.json<T>();
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  const created = await api.app.inject({
    method: 'POST',
    url: '/api/v1/servers',
    headers: admin,
    payload: { slug: 'weather' },
  });
  expect(created.statusCode, created.body).toBe(201);
  const key = await api.app.inject({
    method: 'POST',
    url: '/api/v1/ingest-keys',
    headers: admin,
    payload: { name: 'release-health', server: 'weather' },
  });
  ingestKey = key.json().key;
  collector = await buildCollector({
    stores,
    secretBox: testSecretBox,
    logger: silentLogger,
    dataDir: stores.dir,
    writer: { flushIntervalMs: 50 },
  });
  collectorUrl = await collector.listen({ host: '127.0.0.1', port: 0 });
  // weather × staging is behind the gateway: its session ends are the gateway's to write.
  new GatewayFronting(stores.redis.client).mark(api.org.id, 'weather', 'staging');
  await until(
    async () => (await stores.redis.client.exists(frontedKey(api.org.id, 'weather', 'staging'))) === 1,
  );

  const alice = { 'enduser.id': ALICE };
  const bob = { 'enduser.id': BOB };
  // enduser.id wins over client.address; the address is the user only without it.
  const address = { 'client.address': ADDRESS };
  await sendSpans([
    { session: 'clean-1', user: { ...alice, ...address }, agoMs: 120_000 },
    { session: 'clean-1', user: alice, agoMs: 100_000 },
    { session: 'clean-2', user: bob, agoMs: 90_000 },
    { session: 'tool-error', user: alice, agoMs: 80_000, errorType: 'tool_error' },
    { session: 'ended-in-error', user: address, agoMs: 70_000 },
    { session: 'upstream-503', user: bob, agoMs: 60_000, errorType: '503' },
    // No end: abnormal once past the 30-minute idle limit, active within it.
    { session: 'gone', agoMs: 40 * 60_000 },
    { session: 'open', agoMs: 10_000 },
  ]);

  const production = sessionMeter('production');
  production.histogram.record(95, { 'mcp.session.id': 'clean-1', ...alice });
  production.histogram.record(30, { 'mcp.session.id': 'clean-2', ...bob });
  production.histogram.record(12, { 'mcp.session.id': 'tool-error', ...alice });
  production.histogram.record(8, { 'mcp.session.id': 'ended-in-error', ...address, 'error.type': 'timeout' });
  // The conventions' own form, without the session id: an ordinary metric point.
  production.histogram.record(40, { 'mcp.protocol.version': '2025-06-18' });
  const staging = sessionMeter('staging');
  staging.histogram.record(5, { 'mcp.session.id': 'fronted', ...alice });
  await Promise.all([production.provider.forceFlush(), staging.provider.forceFlush()]);
  // A cumulative exporter sends every point again: nothing new ended, so no new end.
  await production.provider.forceFlush();
  await Promise.all([production.provider.shutdown(), staging.provider.shutdown()]);
  // Closing flushes everything the collector acknowledged.
  await collector.close();
});

afterAll(async () => {
  await collector?.close();
  await api?.app.close();
  await stores?.close();
});

describe('release health from OTLP', () => {
  it('gives exact statuses, crash-free sessions and crash-free users from spans and session metrics', async () => {
    const res = await api.app.inject({
      method: 'GET',
      url: '/api/v1/servers/weather/release-health?environment=production&window=1h',
      headers: admin,
    });
    expect(res.statusCode, res.body).toBe(200);
    const [version, ...others] = (res.json() as ReleaseHealthJson).versions;
    expect(others).toEqual([]);
    expect(version).toMatchObject({
      version: '1.0.0',
      sessions: { total: 7, healthy: 2, errored: 1, crashed: 2, abnormal: 1, movedByRollout: 0, active: 1 },
      // alice, bob and the address; the open and gone sessions have no user.
      users: 3,
    });
    // 6 settled sessions (7 − 1 active), 2 crashed; users: bob and the address crashed, alice not.
    expect(version!.crashFreeSessions).toBeCloseTo(1 - 2 / 6, 9);
    expect(version!.erroredRate).toBeCloseTo(1 / 6, 9);
    expect(version!.crashFreeUsers).toBeCloseTo(1 / 3, 9);
  });

  it('writes one end per ended session, none for points without a session or of a fronted server', async () => {
    const events = await query<{ session_id: string; environment: string; reason: string; source: string }>(
      `SELECT session_id, environment, reason, source FROM session_events
       WHERE org_id = {org:String} AND event = 'end' ORDER BY session_id`,
    );
    expect(events).toEqual([
      { session_id: 'clean-1', environment: 'production', reason: 'otlp-ended', source: 'otlp' },
      { session_id: 'clean-2', environment: 'production', reason: 'otlp-ended', source: 'otlp' },
      { session_id: 'ended-in-error', environment: 'production', reason: 'upstream-failure', source: 'otlp' },
      { session_id: 'tool-error', environment: 'production', reason: 'otlp-ended', source: 'otlp' },
    ]);
    // Every point stays a metric point: six sessions ended (the fronted one and the anonymous one too).
    const [points] = await query<{ ended: number }>(
      `SELECT toUInt32(sum(count)) AS ended FROM metric_points
       WHERE org_id = {org:String} AND metric = 'mcp.server.session.duration'`,
    );
    expect(points!.ended).toBe(6);
  });

  it('stores users only as the keyed hash the gateway uses, never the raw enduser.id or address', async () => {
    const hash = (key: string) => clientKeyHash(testSecretBox, key);
    const keys = await query<{ session_id: string; client_key: string }>(
      `SELECT session_id, max(client_key) AS client_key FROM session_states
       WHERE org_id = {org:String} GROUP BY session_id ORDER BY session_id`,
    );
    expect(keys).toEqual([
      { session_id: 'clean-1', client_key: hash(`user:${ALICE}`) },
      { session_id: 'clean-2', client_key: hash(`user:${BOB}`) },
      { session_id: 'ended-in-error', client_key: hash(`addr:${ADDRESS}`) },
      { session_id: 'gone', client_key: '' },
      { session_id: 'open', client_key: '' },
      { session_id: 'tool-error', client_key: hash(`user:${ALICE}`) },
      { session_id: 'upstream-503', client_key: hash(`user:${BOB}`) },
    ]);
    expect(hash(`user:${ALICE}`)).toMatch(/^[0-9a-f]{16}$/);
    for (const table of ['requests', 'session_events', 'metric_points']) {
      const stored = JSON.stringify(await query(`SELECT * FROM ${table} WHERE org_id = {org:String}`));
      expect(stored.length, table).toBeGreaterThan(100);
      for (const raw of [ALICE, BOB, ADDRESS]) expect(stored, `${raw} in ${table}`).not.toContain(raw);
    }
  });
});
