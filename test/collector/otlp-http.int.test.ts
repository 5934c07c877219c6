import { gzipSync } from 'node:zlib';
import { SpanKind, SpanStatusCode, type Attributes, type HrTime } from '@opentelemetry/api';
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter as JsonMetricExporter,
} from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationType, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackpressureError } from '#collector/otlp/http.ts';
import {
  ExportMetricsServiceResponse,
  ExportTraceServiceResponse,
  RpcStatus,
} from '#collector/otlp/protobuf.ts';
import { jsonBody, metrics, metricsProtobuf, span, traceProtobuf, traces } from './fixtures/otlp.ts';
import { BOUND_KEY, buildOtlpApp, INGEST_KEY, type MemorySink } from './helpers.ts';

const RESOURCE = resourceFromAttributes({
  'service.name': 'weather-mcp',
  'service.version': '2.1.0',
  'deployment.environment.name': 'staging',
});
const AUTH = { authorization: `Bearer ${INGEST_KEY}` };
const PB = 'application/x-protobuf';

let app: FastifyInstance;
let sink: MemorySink;
let seen: { url: string; type: string; encoding: string }[];
let url: string;

beforeAll(async () => {
  ({ app, sink, seen } = await buildOtlpApp());
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
});
afterEach(() => {
  sink.failWith = undefined;
  sink.clear();
  seen.length = 0;
});

function expectSent(path: string, encoding: string, compression: CompressionAlgorithm) {
  const sent = seen.filter((r) => r.url === path);
  expect(sent.length).toBeGreaterThan(0);
  for (const r of sent) {
    expect(r.type).toBe(encoding === 'protobuf' ? PB : 'application/json');
    expect(r.encoding).toBe(compression === CompressionAlgorithm.GZIP ? 'gzip' : '');
  }
}

/** One SERVER span the test sends, and the row it must become. */
interface Case {
  name: string;
  attributes: Attributes;
  error: boolean;
  start: HrTime;
  end: HrTime;
  expected: { operation: string; error: 0 | 1; error_type: string; duration_ms: number; tool: string };
}

function serverSpanCases(n: number): Case[] {
  const base = Math.floor(Date.now() / 1000) - 3600;
  return Array.from({ length: n }, (_, i) => {
    const mcp = i % 3 === 0;
    const tool = i % 2 ? 'forecast' : 'alerts';
    const toolError = mcp && i % 6 === 0;
    const status = mcp ? 0 : i % 4 === 1 ? 503 : 200;
    const spanError = i % 5 === 4;
    const attributes: Attributes = mcp
      ? {
          'mcp.method.name': 'tools/call',
          'gen_ai.tool.name': tool,
          ...(toolError ? { 'error.type': 'tool_error' } : {}),
        }
      : { 'http.request.method': 'GET', 'http.route': '/items/{id}', 'http.response.status_code': status };
    const durationNanos = (i + 1) * 1_000_000 + 250_000;
    const start: HrTime = [base + i, 100_000_000];
    const end: HrTime = [base + i, 100_000_000 + durationNanos];
    const error = spanError || status >= 500 || toolError;
    return {
      name: mcp ? `tools/call ${tool}` : 'GET /items/{id}',
      attributes,
      error: spanError,
      start,
      end,
      expected: {
        operation: mcp ? `tools/call ${tool}` : 'GET /items/{id}',
        error: error ? 1 : 0,
        error_type: !error ? '' : toolError ? 'tool_error' : status >= 500 ? '5xx' : '_OTHER',
        duration_ms: durationNanos / 1e6,
        tool: mcp ? tool : '',
      },
    };
  });
}

describe.each([
  { encoding: 'protobuf', compression: CompressionAlgorithm.NONE },
  { encoding: 'protobuf', compression: CompressionAlgorithm.GZIP },
  { encoding: 'json', compression: CompressionAlgorithm.NONE },
  { encoding: 'json', compression: CompressionAlgorithm.GZIP },
])('traces from the official $encoding exporter, compression $compression', ({ encoding, compression }) => {
  it('stores exactly the SERVER spans as requests', async () => {
    const options = { url: `${url}/v1/traces`, headers: AUTH, compression };
    const exporter =
      encoding === 'protobuf' ? new ProtoTraceExporter(options) : new JsonTraceExporter(options);
    const provider = new BasicTracerProvider({
      resource: RESOURCE,
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('pylee-test');
    const cases = serverSpanCases(30);
    for (const c of cases) {
      const s = tracer.startSpan(c.name, {
        kind: SpanKind.SERVER,
        startTime: c.start,
        attributes: c.attributes,
      });
      tracer.startSpan('db query', { kind: SpanKind.CLIENT, startTime: c.start }).end(c.end);
      tracer.startSpan('render', { kind: SpanKind.INTERNAL, startTime: c.start }).end(c.end);
      if (c.error) s.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
      s.end(c.end);
    }
    await provider.forceFlush();
    await provider.shutdown();
    expectSent('/v1/traces', encoding, compression);

    const rows = [...sink.requests].sort((a, b) => a.time.localeCompare(b.time));
    expect(rows).toHaveLength(cases.length);
    rows.forEach((row, i) => {
      const want = cases[i]!.expected;
      expect(row).toMatchObject({
        org_id: 'org-test',
        server: 'weather-mcp',
        version: '2.1.0',
        environment: 'staging',
        operation: want.operation,
        error: want.error,
        error_type: want.error_type,
        tool: want.tool,
        time: new Date(cases[i]!.start[0] * 1000 + 100).toISOString(),
      });
      expect(Math.abs(row.duration_ms - want.duration_ms)).toBeLessThan(1);
      expect(row.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(row.span_id).toMatch(/^[0-9a-f]{16}$/);
    });
    expect(rows.filter((r) => r.error === 1)).toHaveLength(
      cases.filter((c) => c.expected.error === 1).length,
    );
  });
});

describe.each([
  {
    encoding: 'protobuf',
    compression: CompressionAlgorithm.GZIP,
    name: 'cumulative',
    temporality: AggregationTemporalityPreference.CUMULATIVE,
  },
  {
    encoding: 'json',
    compression: CompressionAlgorithm.NONE,
    name: 'cumulative',
    temporality: AggregationTemporalityPreference.CUMULATIVE,
  },
  {
    encoding: 'json',
    compression: CompressionAlgorithm.GZIP,
    name: 'delta',
    temporality: AggregationTemporalityPreference.DELTA,
  },
])(
  'metrics from the official $encoding exporter, $name temporality, compression $compression',
  ({ encoding, compression, temporality }) => {
    it('stores histograms, gauges and sums as deltas', async () => {
      const options = {
        url: `${url}/v1/metrics`,
        headers: AUTH,
        compression,
        temporalityPreference: temporality,
      };
      const exporter =
        encoding === 'protobuf' ? new ProtoMetricExporter(options) : new JsonMetricExporter(options);
      const provider = new MeterProvider({
        resource: RESOURCE,
        readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
        views: [
          {
            instrumentName: 'mcp.server.operation.duration',
            aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM },
          },
        ],
      });
      const meter = provider.getMeter('pylee-test');
      const http = meter.createHistogram('http.server.request.duration', {
        unit: 's',
        advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] },
      });
      const mcp = meter.createHistogram('mcp.server.operation.duration', { unit: 's' });
      const cpu = meter.createObservableGauge('process.cpu.utilization', { unit: '1' });
      cpu.addCallback((result) => result.observe(0.25));
      const memory = meter.createUpDownCounter('process.memory.usage', { unit: 'By' });
      const ignored = meter.createCounter('app.unrelated');
      const route = { 'http.request.method': 'GET', 'http.route': '/items/{id}' };
      const tool = { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': 'forecast' };

      for (const v of [0.003, 0.02, 0.2, 2]) http.record(v, route);
      for (const v of [0.1, 0.2, 0.4]) mcp.record(v, tool);
      memory.add(1000);
      ignored.add(1);
      await provider.forceFlush();

      expectSent('/v1/metrics', encoding, compression);
      const first = [...sink.points];
      const histogram = first.find((p) => p.metric === 'http.server.request.duration')!;
      expect(histogram).toMatchObject({
        org_id: 'org-test',
        server: 'weather-mcp',
        version: '2.1.0',
        environment: 'staging',
        operation: 'GET /items/{id}',
        kind: 'histogram',
        unit: 's',
        count: 4,
        bounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
        bucket_counts: [1, 0, 1, 0, 0, 1, 0, 0, 1],
      });
      expect(histogram.sum).toBeCloseTo(2.223, 9);
      const exponential = first.find((p) => p.metric === 'mcp.server.operation.duration')!;
      expect(exponential).toMatchObject({ operation: 'tools/call forecast', kind: 'histogram', count: 3 });
      expect(exponential.sum).toBeCloseTo(0.7, 9);
      expect(exponential.bucket_counts.reduce((a, b) => a + b, 0)).toBe(3);
      for (const v of [0.1, 0.2, 0.4]) {
        // Each value sits in the bucket whose upper bound is the first bound >= v.
        const k = exponential.bounds.findIndex((b) => b >= v);
        expect(exponential.bucket_counts[k]).toBeGreaterThan(0);
      }
      expect(first.find((p) => p.metric === 'process.cpu.utilization')).toMatchObject({
        kind: 'gauge',
        value: 0.25,
      });
      // Up-down counters stay cumulative under either preference: stored as their level.
      expect(first.find((p) => p.metric === 'process.memory.usage')).toMatchObject({
        kind: 'gauge',
        value: 1000,
      });
      expect(first.some((p) => p.metric === 'app.unrelated')).toBe(false);

      sink.clear();
      for (const v of [0.03, 0.04]) http.record(v, route);
      await provider.forceFlush();
      const second = sink.points.filter((p) => p.metric === 'http.server.request.duration');
      // Cumulative or delta on the wire, Pylee stores what happened since the previous export.
      expect(second).toHaveLength(1);
      expect(second[0]).toMatchObject({ count: 2, bucket_counts: [0, 0, 0, 2, 0, 0, 0, 0, 0] });
      expect(second[0]!.sum).toBeCloseTo(0.07, 9);
      expect(second[0]!.start_time <= second[0]!.time).toBe(true);
      expect(second[0]!.start_time >= histogram.time).toBe(true);
      await provider.shutdown();
    });
  },
);

function inject(options: InjectOptions) {
  return app.inject({
    method: 'POST',
    url: '/v1/traces',
    ...options,
    headers: { ...AUTH, ...options.headers },
  });
}

const VALID_TRACES = traces([span()]);

describe('OTLP/HTTP responses', () => {
  it('answers a full success with an empty response in the request encoding', async () => {
    const pb = await inject({ headers: { 'content-type': PB }, body: traceProtobuf(VALID_TRACES) });
    expect(pb.statusCode).toBe(200);
    expect(pb.headers['content-type']).toBe(PB);
    expect(ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(pb.rawPayload))).toEqual({});
    const json = await inject({
      headers: { 'content-type': 'application/json' },
      body: jsonBody(VALID_TRACES),
    });
    expect(json.statusCode).toBe(200);
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    expect(json.json()).toEqual({});
    expect(sink.requests).toHaveLength(2);
  });

  it('answers a partial success with rejectedSpans when a span has no ids', async () => {
    const payload = traces([span(), { ...span({ spanId: '1111111111111111' }), traceId: '', spanId: '' }]);
    const pb = await inject({ headers: { 'content-type': PB }, body: traceProtobuf(payload) });
    expect(pb.statusCode).toBe(200);
    const response = ExportTraceServiceResponse.toObject(ExportTraceServiceResponse.decode(pb.rawPayload), {
      longs: String,
    });
    expect(response).toEqual({
      partialSuccess: {
        rejectedSpans: '1',
        errorMessage: '1 span was rejected: span has no valid trace_id (16 bytes, not all zero) (1)',
      },
    });
    const json = await inject({ headers: { 'content-type': 'application/json' }, body: jsonBody(payload) });
    expect(json.json()).toEqual({
      partialSuccess: { rejectedSpans: '1', errorMessage: expect.stringContaining('trace_id') },
    });
    expect(sink.requests).toHaveLength(2);
  });

  it('answers rejectedDataPoints for metrics refused by a bound ingest key', async () => {
    const payload = metrics(
      [
        {
          name: 'process.cpu.utilization',
          gauge: { dataPoints: [{ timeUnixNano: '1767323045678000000', asDouble: 1 }] },
        },
      ],
      {
        attributes: [{ key: 'service.name', value: { stringValue: 'other' } }],
      },
    );
    const res = await app.inject({
      method: 'POST',
      url: '/v1/metrics',
      headers: { 'content-type': PB, 'x-pylee-ingest-key': BOUND_KEY },
      body: metricsProtobuf(payload),
    });
    expect(res.statusCode).toBe(200);
    const response = ExportMetricsServiceResponse.toObject(
      ExportMetricsServiceResponse.decode(res.rawPayload),
      { longs: String },
    );
    expect(response.partialSuccess).toMatchObject({
      rejectedDataPoints: '1',
      errorMessage: expect.stringContaining('bound to server "weather-mcp"'),
    });
    expect(sink.points).toHaveLength(0);
  });

  it('answers 400 with a google.rpc.Status for malformed protobuf, storing nothing', async () => {
    const valid = traceProtobuf(traces([span(), span(), span()]));
    const res = await inject({ headers: { 'content-type': PB }, body: valid.subarray(0, valid.length - 5) });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toBe(PB);
    const status = RpcStatus.toObject(RpcStatus.decode(res.rawPayload));
    expect(status).toEqual({
      code: 3,
      message: expect.stringMatching(/^the body is not a valid protobuf ExportTraceServiceRequest/),
    });
    expect(sink.stored).toBe(0);
  });

  it('answers 400 with a JSON Status for malformed JSON', async () => {
    const res = await inject({ headers: { 'content-type': 'application/json' }, body: '{"resourceSpans":[' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 3, message: expect.stringMatching(/^the body is not valid JSON/) });
    const shape = await inject({
      headers: { 'content-type': 'application/json' },
      body: '{"resourceSpans":{}}',
    });
    expect(shape.json()).toEqual({ code: 3, message: 'resourceSpans must be an array, not an object' });
    expect(sink.stored).toBe(0);
  });

  it('answers 415 for another content type or encoding', async () => {
    const res = await inject({ headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      code: 3,
      message: expect.stringContaining('content type text/plain is not supported'),
    });
    const none = await app.inject({ method: 'POST', url: '/v1/metrics', headers: AUTH });
    expect(none.statusCode).toBe(415);
    const br = await inject({
      headers: { 'content-type': PB, 'content-encoding': 'br' },
      body: Buffer.alloc(4),
    });
    expect(br.statusCode).toBe(415);
    expect(RpcStatus.toObject(RpcStatus.decode(br.rawPayload)).message).toMatch(
      /content encoding br is not supported/,
    );
  });

  it('answers 413 for a body over the limit, compressed or inflated', async () => {
    const big = await inject({ headers: { 'content-type': PB }, body: Buffer.alloc(1024 * 1024 + 1) });
    expect(big.statusCode).toBe(413);
    expect(RpcStatus.toObject(RpcStatus.decode(big.rawPayload))).toEqual({
      code: 8,
      message: 'the request body is larger than the limit of 1048576 bytes',
    });
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const inflated = await inject({
      headers: { 'content-type': PB, 'content-encoding': 'gzip' },
      body: bomb,
    });
    expect(inflated.statusCode).toBe(413);
    expect(sink.stored).toBe(0);
  });

  it('answers 400 for a body that is not gzip', async () => {
    const res = await inject({
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: '{"resourceSpans":[]}',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(/^the body is not valid gzip/);
    const truncated = gzipSync(jsonBody(VALID_TRACES));
    const cut = await inject({
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: truncated.subarray(0, 20),
    });
    expect(cut.statusCode).toBe(400);
    expect(sink.stored).toBe(0);
  });

  it('answers 401 with a Status when the ingest key is missing or wrong', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/traces',
      headers: { 'content-type': PB, authorization: 'Bearer nope' },
      body: traceProtobuf(VALID_TRACES),
    });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(RpcStatus.toObject(RpcStatus.decode(res.rawPayload))).toEqual({
      code: 16,
      message: 'send a valid ingest key in Authorization: Bearer <key>',
    });
    expect(sink.stored).toBe(0);
  });

  it.each([503, 429] as const)('answers %i with Retry-After when the sink pushes back', async (status) => {
    sink.failWith = new BackpressureError('the write buffer is full', 7, status);
    const res = await inject({
      headers: { 'content-type': 'application/json' },
      body: jsonBody(VALID_TRACES),
    });
    expect(res.statusCode).toBe(status);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.json()).toEqual({ code: status === 429 ? 8 : 14, message: 'the write buffer is full' });
  });

  it('answers 503 with Retry-After when the sink fails otherwise, and keeps cumulative state for the retry', async () => {
    const cumulative = (time: bigint, value: number) =>
      metricsProtobuf(
        metrics([
          {
            name: 'process.cpu.time',
            sum: {
              aggregationTemporality: 2,
              isMonotonic: true,
              dataPoints: [
                { startTimeUnixNano: '1767320000000000000', timeUnixNano: time.toString(), asDouble: value },
              ],
            },
          },
        ]),
      );
    const post = (body: Buffer) =>
      app.inject({ method: 'POST', url: '/v1/metrics', headers: { ...AUTH, 'content-type': PB }, body });
    expect((await post(cumulative(1767323000000000000n, 10))).statusCode).toBe(200);
    sink.failWith = new Error('ClickHouse is unreachable');
    const refused = await post(cumulative(1767323060000000000n, 25));
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(RpcStatus.toObject(RpcStatus.decode(refused.rawPayload)).message).not.toContain('ClickHouse');
    sink.failWith = undefined;
    expect((await post(cumulative(1767323060000000000n, 25))).statusCode).toBe(200);
    expect(sink.points.map((p) => p.value)).toEqual([10, 15]);
  });

  it('leaves the JSON parsing of other routes alone', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/echo',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ body: { a: 1 } });
  });
});
