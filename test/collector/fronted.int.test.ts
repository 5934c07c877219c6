import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCollector } from '#collector/app.ts';
import { requestSeries } from '#core/alerting/queries.ts';
import { createIngestKey } from '#core/auth/ingest-keys.ts';
import { readSamples } from '#core/canary/samples.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import { frontedKey, GatewayFronting } from '#core/telemetry/fronted.ts';
import { splitStatements } from '#core/warehouse/migrate.ts';
import type { RequestRow } from '#core/warehouse/rows.ts';
import {
  compareVersions,
  errorTypes,
  fleetStats,
  series,
  versionStats,
  type Resolution,
} from '#core/warehouse/telemetry-queries.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { testSecretBox } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';
import { jsonBody, kv, resource, span, traces, type JsonObject } from './fixtures/otlp.ts';

// The rule that nothing is counted twice, end to end: weather × production is behind the gateway
// (it marked the pair in Redis, and wrote a row per exchange), and the server exports OTLP too;
// weather × staging only exports OTLP. The collector keeps every span, with counted = 0 for the
// MCP calls of production, and every figure (raw rows and the 1m / 1h rollups) counts each request once.

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
let collector: FastifyInstance;
let ingestKey: string;
let orgId: string;

const NOW = Date.now();
const AT = NOW - 10 * 60_000;
const WINDOW = { from: Math.floor((NOW - 2 * 3_600_000) / 3_600_000) * 3_600_000, to: NOW + 1 };

beforeAll(async () => {
  stores = await openTestStores();
  const { org } = await bootstrap(stores.db);
  orgId = org.id;
  ({ key: ingestKey } = await createIngestKey(
    stores.db,
    { principal: systemPrincipal(org) },
    { name: 'fronted' },
  ));
  collector = await buildCollector({
    stores,
    secretBox: testSecretBox,
    logger: silentLogger,
    dataDir: tempDir('pylee-fronted'),
    writer: { flushIntervalMs: 50 },
  });
  await collector.ready();

  // The gateway's side: the pair is marked, and every exchange is a counted row of its own.
  new GatewayFronting(stores.redis.client).mark(orgId, 'weather', 'production');
  await until(
    async () => (await stores.redis.client.exists(frontedKey(orgId, 'weather', 'production'))) === 1,
  );
  const gateway = new TelemetryWriter(stores.warehouse, { dataDir: tempDir('pylee-gateway'), wal: false });
  await gateway.writeRequests([...gatewayRows('1.0.0', 6, 1), ...gatewayRows('1.1.0', 4, 0)]);
  await gateway.close();

  await send('production', '1.0.0', [...mcpSpans(6, 2), httpSpan()]);
  await send('production', '1.1.0', mcpSpans(4, 0));
  await send('staging', '1.0.0', mcpSpans(5, 0));
  await until(async () => (await stored()).reduce((n, r) => n + r.n, 0) === 26, { what: 'all rows stored' });
});

afterAll(async () => {
  await collector?.close();
  await stores?.close();
});

let nextSpan = 1;

/** MCP tool calls as an instrumented server reports them; `errors` of them fail with `otlp_only`. */
function mcpSpans(n: number, errors: number): JsonObject[] {
  return Array.from({ length: n }, (_, i) =>
    span({
      name: 'tools/call forecast',
      spanId: (nextSpan++).toString(16).padStart(16, '0'),
      start: BigInt(AT + i) * 1_000_000n,
      attributes: [
        kv('mcp.method.name', 'tools/call'),
        kv('gen_ai.tool.name', 'forecast'),
        ...(i < errors ? [kv('error.type', 'otlp_only')] : []),
      ],
    }),
  );
}

/** A plain HTTP request of the same server: never MCP traffic the gateway carried. */
function httpSpan(): JsonObject {
  return span({
    name: 'GET /healthz',
    spanId: (nextSpan++).toString(16).padStart(16, '0'),
    start: BigInt(AT) * 1_000_000n,
    attributes: [kv('http.request.method', 'GET'), kv('http.route', '/healthz')],
  });
}

function gatewayRows(version: string, n: number, errors: number): RequestRow[] {
  return Array.from({ length: n }, (_, i) => ({
    org_id: orgId,
    server: 'weather',
    environment: 'production',
    version,
    operation: 'tools/call forecast',
    time: new Date(AT + i).toISOString(),
    duration_ms: 20,
    error: i < errors ? 1 : 0,
    error_type: i < errors ? 'gateway_error' : '',
    http_status: 200,
    mcp_method: 'tools/call',
    tool: 'forecast',
    trace_id: '',
    span_id: '',
    session_id: 'session-1',
    source: 'gateway',
    client_key: 'client-1',
    counted: 1,
  }));
}

async function send(environment: string, version: string, spans: JsonObject[]): Promise<void> {
  const res = resource({
    'service.name': 'weather',
    'service.version': version,
    'deployment.environment.name': environment,
  });
  const response = await collector.inject({
    method: 'POST',
    url: '/v1/traces',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestKey}` },
    payload: jsonBody(traces(spans, res)),
  });
  expect(response.statusCode).toBe(200);
}

async function stored() {
  const result = await stores.warehouse.client.query({
    query: `SELECT environment, version, source, mcp_method != '' AS mcp, counted, toUInt32(count()) AS n
            FROM requests WHERE org_id = {org:String}
            GROUP BY environment, version, source, mcp, counted
            ORDER BY environment, version, source, mcp, counted`,
    query_params: { org: orgId },
    format: 'JSONEachRow',
  });
  return result.json<{
    environment: string;
    version: string;
    source: string;
    mcp: number;
    counted: number;
    n: number;
  }>();
}

describe('a server behind the gateway is never counted twice', () => {
  it('keeps the OTLP MCP calls of a fronted pair with counted = 0, and every other span counted', async () => {
    expect(await stored()).toEqual([
      { environment: 'production', version: '1.0.0', source: 'gateway', mcp: 1, counted: 1, n: 6 },
      { environment: 'production', version: '1.0.0', source: 'otlp', mcp: 0, counted: 1, n: 1 },
      { environment: 'production', version: '1.0.0', source: 'otlp', mcp: 1, counted: 0, n: 6 },
      { environment: 'production', version: '1.1.0', source: 'gateway', mcp: 1, counted: 1, n: 4 },
      { environment: 'production', version: '1.1.0', source: 'otlp', mcp: 1, counted: 0, n: 4 },
      { environment: 'staging', version: '1.0.0', source: 'otlp', mcp: 1, counted: 1, n: 5 },
    ]);
  });

  for (const resolution of ['raw', 'minute', 'hour'] as Resolution[]) {
    it(`counts each request once in comparisons, series and error types (${resolution})`, async () => {
      const scope = { orgId, server: 'weather', ...WINDOW, resolution };
      const production = { ...scope, environment: 'production' };

      const comparison = await compareVersions(warehouse(), {
        ...production,
        baseline: '1.0.0',
        candidate: '1.1.0',
      });
      expect(comparison.baseline).toMatchObject({ requests: 7, errors: 1 });
      expect(comparison.candidate).toMatchObject({ requests: 4, errors: 0 });
      expect(
        comparison.operations.map((o) => [o.operation, o.baseline.requests, o.candidate.requests]),
      ).toEqual([
        ['tools/call forecast', 6, 4],
        ['GET /healthz', 1, 0],
      ]);
      expect(await errorTypes(warehouse(), { ...production, versions: ['1.0.0'] })).toEqual([
        { version: '1.0.0', errorType: 'gateway_error', errors: 1 },
      ]);

      const points = (await series(warehouse(), { ...production, version: '1.0.0', stepSeconds: 3600 }))
        .points;
      expect(points.reduce((n, p) => n + p.requests, 0)).toBe(7);
      expect(
        (await versionStats(warehouse(), { ...scope, environment: 'staging', version: '1.0.0' })).requests,
      ).toBe(5);

      const fleet = await fleetStats(warehouse(), { ...scope, servers: ['weather'], points: 4 });
      expect(fleet.groups.map((g) => [g.environment, g.version, g.requests])).toEqual([
        ['production', '1.0.0', 7],
        ['production', '1.1.0', 4],
        ['staging', '1.0.0', 5],
      ]);
    });
  }

  it('counts each request once in alert evaluation and canary samples', async () => {
    const alerting = await requestSeries(warehouse(), { orgId, server: 'weather', ...WINDOW });
    expect(
      alerting
        .map((s) => [s.environment, s.version, s.requests])
        .sort((a, b) => String(a).localeCompare(String(b))),
    ).toEqual([
      ['production', '1.0.0', 7],
      ['production', '1.1.0', 4],
      ['staging', '1.0.0', 5],
    ]);

    const samples = await readSamples(warehouse(), {
      orgId,
      server: 'weather',
      environment: 'production',
      baseline: '1.0.0',
      candidate: '1.1.0',
      ...WINDOW,
      intervalSeconds: 3600,
    });
    const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect([total(samples.baseline.requests), total(samples.canary.requests)]).toEqual([7, 4]);
  });

  it('keeps the rule when migration 0005 runs again (two processes migrating at once)', async () => {
    const sql = fs.readFileSync(
      path.join(import.meta.dirname, '../../core/warehouse/migrations/0005_request_source.sql'),
      'utf8',
    );
    for (const query of splitStatements(sql)) await warehouse().client.command({ query });
    await send('production', '1.1.0', mcpSpans(3, 0));
    await send('staging', '1.0.0', mcpSpans(2, 0));
    await until(async () => (await stored()).reduce((n, r) => n + r.n, 0) === 31, {
      what: 'new rows stored',
    });

    const scope = { orgId, server: 'weather', ...WINDOW };
    for (const resolution of ['raw', 'minute', 'hour'] as Resolution[]) {
      const stats = (environment: string, version: string) =>
        versionStats(warehouse(), { ...scope, environment, version, resolution });
      expect((await stats('production', '1.1.0')).requests, resolution).toBe(4);
      expect((await stats('staging', '1.0.0')).requests, resolution).toBe(7);
    }
  });
});

function warehouse() {
  return stores.warehouse;
}
