import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCollector } from '#collector/app.ts';
import { ExportMetricsServiceResponse, ExportTraceServiceResponse } from '#collector/otlp/protobuf.ts';
import { startSelfTelemetry, type SelfTelemetry } from '#core/telemetry/self-telemetry.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';
import {
  jsonBody,
  kv,
  metrics,
  metricsProtobuf,
  resource,
  span,
  traceProtobuf,
  traces,
  type JsonObject,
} from './fixtures/otlp.ts';

// One org sends every kind of value that does not fit its ClickHouse column (lone surrogates in
// every string, out-of-range integers, NaN and ±Infinity, enormous strings and times) while another
// org sends ordinary traffic to the same collector at the same time. Nothing of the second org may
// be lost or delayed, and nothing answered 200 may vanish: the values are repaired and counted.

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let telemetry: SelfTelemetry;
let stores: Stores;
let api: TestApi;
let collector: FastifyInstance;
let url: string;
let dataDir: string;
let poisonKey: string;
let validKey: string;
let poisonOrg: string;
let validOrg: string;
let validToken: string;

const NOW = BigInt(Date.now() - 60_000) * 1_000_000n;
const BAD = 'x\ud800y\udfffz'; // lone surrogates, high and low
const HUGE = 'h'.repeat(200_000);

beforeAll(async () => {
  telemetry = startSelfTelemetry('0.0.0-test');
  stores = await openTestStores();
  api = await buildTestApi(stores);
  const admin = bearer(BOOTSTRAP_TOKEN);
  const key = async (headers: Record<string, string>) =>
    (
      await api.app.inject({ method: 'POST', url: '/api/v1/ingest-keys', headers, payload: { name: 'k' } })
    ).json().key as string;
  poisonKey = await key(admin);
  const other = await api.app.inject({
    method: 'POST',
    url: '/api/v1/orgs',
    headers: admin,
    payload: { slug: 'valid-org' },
  });
  validToken = other.json().token as string;
  validKey = await key(bearer(validToken));
  const orgs = await stores.db.query<{ id: string; slug: string }>('SELECT id, slug FROM orgs');
  poisonOrg = orgs.find((o) => o.slug === 'default')?.id as string;
  validOrg = orgs.find((o) => o.slug === 'valid-org')?.id as string;
  dataDir = tempDir('pylee-poison');
  collector = await buildCollector({
    stores,
    secretBox: testSecretBox,
    logger: silentLogger,
    dataDir,
    writer: { batchSize: 500, flushIntervalMs: 50, minRetryDelayMs: 20, maxRetryDelayMs: 100 },
  });
  url = await collector.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await collector?.close();
  await api?.app.close();
  await stores?.close();
  await telemetry?.shutdown();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

async function post(signal: 'traces' | 'metrics', key: string, body: Buffer, json = false) {
  const response = await fetch(`${url}/v1/${signal}`, {
    method: 'POST',
    headers: {
      'content-type': json ? 'application/json' : 'application/x-protobuf',
      authorization: `Bearer ${key}`,
    },
    body: new Uint8Array(body),
  });
  const answer = Buffer.from(await response.arrayBuffer());
  return { status: response.status, answer };
}

const validResource = resource({
  'service.name': 'weather',
  'service.version': '1.0.0',
  'deployment.environment.name': 'production',
});

function validSpans(body: number): Buffer {
  const spans = Array.from({ length: 100 }, (_, i) =>
    span({
      spanId: (body * 1000 + i + 1).toString(16).padStart(16, '0'),
      name: 'tools/call forecast',
      start: NOW + BigInt(i) * 1_000_000n,
      attributes: [kv('mcp.method.name', 'tools/call'), kv('gen_ai.tool.name', 'forecast')],
    }),
  );
  return traceProtobuf(traces(spans, validResource));
}

function validPoints(body: number): Buffer {
  const dataPoints = Array.from({ length: 20 }, (_, i) => ({
    timeUnixNano: (NOW + BigInt(body * 100 + i) * 1_000_000_000n).toString(),
    asDouble: 0.5,
  }));
  return metricsProtobuf(
    metrics([{ name: 'process.cpu.utilization', unit: '1', gauge: { dataPoints } }], validResource),
  );
}

/** Spans with a poisonous value in every string and integer the mapping keeps, and in the times. */
function poisonSpans(): JsonObject {
  const strings = (value: string) => [
    kv('mcp.method.name', value),
    kv('gen_ai.tool.name', value),
    kv('mcp.session.id', value),
    kv('error.type', value),
    kv('http.route', value),
  ];
  const statuses: (number | bigint)[] = [-1, 70000, 9223372036854775807n, -9223372036854775808n, 0, 99, 600];
  const spans = [
    ...[BAD, HUGE].map((value, i) =>
      span({ spanId: `a${i}`.padStart(16, '0'), name: value, start: NOW, attributes: strings(value) }),
    ),
    ...statuses.map((status, i) =>
      span({
        spanId: `b${i}`.padStart(16, '0'),
        start: NOW,
        attributes: [kv('http.request.method', 'GET'), kv('http.response.status_code', status)],
      }),
    ),
    // Times past DateTime's range (the mapping refuses these two, as partial success).
    span({ spanId: 'c0'.padStart(16, '0'), start: 9_223_372_036_854_775_808n }),
    span({ spanId: 'c1'.padStart(16, '0'), start: NOW, durationNanos: -5_000_000_000n }),
  ];
  return traces(
    spans,
    resource({ 'service.name': BAD, 'service.version': BAD, 'deployment.environment.name': HUGE }),
  );
}

function poisonPoints(): Buffer {
  const at = (i: number) => (NOW + BigInt(i) * 1_000_000_000n).toString();
  return metricsProtobuf(
    metrics(
      [
        {
          name: 'process.memory.usage',
          unit: 'By',
          gauge: {
            dataPoints: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e300, 5].map(
              (asDouble, i) => ({ timeUnixNano: at(i), asDouble }),
            ),
          },
        },
        {
          name: 'http.server.request.duration',
          unit: 's',
          histogram: {
            aggregationTemporality: 1,
            dataPoints: [
              {
                startTimeUnixNano: at(0),
                timeUnixNano: at(1),
                count: '18446744073709551615',
                sum: Number.POSITIVE_INFINITY,
                explicitBounds: [1, Number.NaN, 0.5],
                bucketCounts: ['1', '2'],
              },
              {
                startTimeUnixNano: at(1),
                timeUnixNano: at(2),
                count: '18446744073709551615',
                sum: 1,
                explicitBounds: [1, 2],
                bucketCounts: ['18446744073709551615', '0', '0'],
              },
            ],
          },
        },
      ],
      resource({ 'service.name': BAD, 'service.version': '1.0.0', 'deployment.environment.name': BAD }),
    ),
  );
}

async function count(table: string, org: string): Promise<number> {
  const result = await stores.warehouse.client.query({
    query: `SELECT count() AS n FROM ${table} WHERE org_id = {org:String}`,
    query_params: { org },
    format: 'JSONEachRow',
  });
  return Number((await result.json<{ n: string }>())[0]?.n);
}

async function metricValue(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('poison values among another org’s traffic', () => {
  it('stores every row answered 200, repaired to fit its columns, and every row of the other org', async () => {
    const repairedBefore = await metricValue('pylee_collector_values_repaired_total');
    const answers = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => post('traces', validKey, validSpans(i))),
      ...Array.from({ length: 10 }, (_, i) => post('metrics', validKey, validPoints(i))),
      post('traces', poisonKey, jsonBody(poisonSpans()), true),
      post('traces', poisonKey, traceProtobuf(poisonSpans())),
      post('metrics', poisonKey, poisonPoints()),
    ]);
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 23 }, () => 200));
    // The two spans without a valid time are refused by the mapping, as partial success says;
    // everything else was accepted.
    const json = answers[20]?.answer.toString('utf8') as string;
    expect(JSON.parse(json)).toMatchObject({ partialSuccess: { rejectedSpans: '2' } });
    const protobuf = ExportTraceServiceResponse.decode(answers[21]?.answer as Buffer).toJSON();
    expect(protobuf).toMatchObject({ partialSuccess: { rejectedSpans: '2' } });

    // The other org's rows are all stored, and queryable through its API.
    await until(async () => (await count('requests', validOrg)) === 1000, { timeoutMs: 20_000 });
    await until(async () => (await count('metric_points', validOrg)) === 200, { timeoutMs: 20_000 });
    const summary = await api.app.inject({
      method: 'GET',
      url: '/api/v1/servers/weather/versions/1.0.0/summary?window=1h&environment=production',
      headers: bearer(validToken),
    });
    expect(summary.statusCode).toBe(200);
    expect(summary.json()).toMatchObject({ requests: 1000 });

    // The poisonous rows: stored (repaired), none refused, none left queued.
    await until(async () => (await count('requests', poisonOrg)) === 2 * 9, { timeoutMs: 20_000 });
    const repaired = await stores.warehouse.client.query({
      query: `SELECT server, version, operation, http_status, duration_ms, error_type, length(environment) AS env,
                     toUnixTimestamp(time) AS t, isValidUTF8(session_id) AS utf8
              FROM requests WHERE org_id = {org:String} ORDER BY span_id`,
      query_params: { org: poisonOrg },
      format: 'JSONEachRow',
    });
    const rows = await repaired.json<Record<string, unknown>>();
    for (const row of rows) {
      // JSON's lone surrogates become one U+FFFD each; protobuf carries them as invalid UTF-8
      // bytes, which decoding already replaces byte by byte.
      expect(row.server).toMatch(/^x\ufffd+y\ufffd+z$/);
      expect(row.version).toMatch(/^x\ufffd+y\ufffd+z$/);
      expect(row.utf8).toBe(1);
      expect(Number(row.env)).toBeLessThanOrEqual(4096);
      expect([0, ...Array.from({ length: 500 }, (_, i) => 100 + i)]).toContain(Number(row.http_status));
      expect(Number(row.duration_ms)).toBeGreaterThanOrEqual(0);
      expect(Number(row.t)).toBeLessThanOrEqual(4_294_967_295);
    }
    const points = ExportMetricsServiceResponse.decode(answers[22]?.answer as Buffer).toJSON() as {
      partialSuccess?: { rejectedDataPoints?: string };
    };
    const accepted = 7 - Number(points.partialSuccess?.rejectedDataPoints ?? 0);
    expect(accepted).toBeGreaterThan(0);
    await until(async () => (await count('metric_points', poisonOrg)) === accepted, { timeoutMs: 20_000 });
    expect(await metricValue('pylee_collector_values_repaired_total')).toBeGreaterThan(repairedBefore);
    expect(await metricValue('pylee_collector_rows_invalid_total')).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'spool', 'rejected'))).toBe(false);
  });
});
