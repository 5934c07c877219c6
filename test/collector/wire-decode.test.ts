import { isDeepStrictEqual } from 'node:util';
import { SpanKind, SpanStatusCode, ValueType, type Attributes } from '@opentelemetry/api';
import { ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  AggregationType,
  MeterProvider,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { DeltaTracker } from '#collector/delta.ts';
import { mapMetrics, mapSpans } from '#collector/mapping.ts';
import { decodeMetrics, decodeTraces, MAX_VALUE_DEPTH } from '#collector/otlp/decode.ts';
import { root } from '#collector/otlp/protobuf.ts';
import { decodeMetricsWire, decodeTracesWire, WireFallback } from '#collector/otlp/wire.ts';
import { AppError } from '#core/errors.ts';
import { seededRandom } from '#test/helpers/random.ts';
import {
  kv,
  metrics,
  metricsProtobuf,
  RESOURCE,
  span,
  T0,
  traceProtobuf,
  traces,
  type JsonObject,
} from './fixtures/otlp.ts';

/**
 * The wire decoder must give exactly what the full protobufjs path gives: for every body it
 * accepts, the same decoded request (hence the same rows); for every body it leaves to the full
 * path, `decodeTraces`/`decodeMetrics` then answer as the full path does (same value or same 400).
 * Checked on bodies from the OpenTelemetry JS SDK's own serializers, on hand-written encodings of
 * the protobuf corners (repeated singular fields, several oneof members, unpacked repeated
 * numbers, unknown fields of every wire type, deep nesting around protobufjs's limit), and on
 * thousands of mutations of both. The seed is printed on failure; set PYLEE_FUZZ_SEED to replay.
 */

const PB = 'application/x-protobuf';
const SEED = Number(process.env.PYLEE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const MUTATIONS_PER_BODY = 100;

type Signal = 'traces' | 'metrics';
type Outcome = { ok: unknown } | { status: number; code: string; message: string };

/** What `decode*` answers for a body: the request, or the error a client would get. */
function outcome(signal: Signal, body: Buffer, wire: boolean): Outcome {
  try {
    return {
      ok: signal === 'traces' ? decodeTraces(body, PB, { wire }) : decodeMetrics(body, PB, { wire }),
    };
  } catch (error) {
    if (error instanceof AppError) return { status: error.status, code: error.code, message: error.message };
    throw error;
  }
}

/** The wire decoder alone: its request, or undefined when it hands the body to the full path. */
function wireOnly(signal: Signal, body: Buffer): unknown {
  try {
    return signal === 'traces' ? decodeTracesWire(body) : decodeMetricsWire(body);
  } catch (error) {
    if (error instanceof WireFallback) return undefined;
    // protobufjs itself refused a part the wire decoder hands to it (span events, deep values).
    if (error instanceof Error && !(error instanceof TypeError) && !(error instanceof ReferenceError)) {
      return undefined;
    }
    throw error;
  }
}

interface Tally {
  wireAccepted: number;
  fellBack: number;
  refused: number;
}

/** Checks one body both ways; returns which way it went. */
function check(signal: Signal, body: Buffer, tally: Tally, label: string): void {
  const full = outcome(signal, body, false);
  const wire = wireOnly(signal, body);
  if (wire !== undefined) {
    tally.wireAccepted++;
    if (!('ok' in full) || !isDeepStrictEqual(wire, full.ok)) {
      expect.fail(
        `${label} (seed ${SEED}): the wire decoder accepted a body the full path ${'ok' in full ? 'decodes differently' : `refuses (${(full as { message: string }).message})`}: ${body.toString('hex').slice(0, 400)}`,
      );
    }
  } else if ('ok' in full) {
    tally.fellBack++;
  } else {
    tally.refused++;
  }
  const served = outcome(signal, body, true);
  if (!isDeepStrictEqual(served, full)) {
    expect.fail(`${label} (seed ${SEED}): decode${signal} answers differently with the wire decoder`);
  }
}

// --- Bodies from the OpenTelemetry JS SDK --------------------------------------------------------

const sdkResource = (version: string) =>
  resourceFromAttributes({
    'service.name': 'weather-mcp',
    'service.version': version,
    'deployment.environment.name': 'production',
    'service.instance.id': `i-${version}`,
    'host.cpu.count': 8,
    'process.runtime.ratio': 0.5,
    'telemetry.sdk.ok': true,
    'process.command_args': ['node', 'server.js', '--port=3000'],
    'ünïcødé.name': 'wéather ☀️ 天気',
  });

async function sdkTraceBodies(): Promise<Buffer[]> {
  const bodies: Buffer[] = [];
  const start = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  for (const [b, version] of ['1.0.0', '2.0.0-rc.1', ''].entries()) {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: sdkResource(version),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('@modelcontextprotocol/sdk', '1.17.0');
    for (let i = 0; i < 60; i++) {
      const n = b * 100 + i;
      const attributes: Attributes = {
        'mcp.method.name': i % 5 === 0 ? 'prompts/get' : 'tools/call',
        'gen_ai.tool.name': `tool_${i % 7}`,
        'gen_ai.prompt.name': `prompt_${i % 3}`,
        'mcp.session.id': `session-${i % 4}`,
        'jsonrpc.request.id': String(n),
        'http.request.method': i % 2 ? 'POST' : 'GET',
        'http.route': i % 3 ? '/mcp' : '/items/{id}',
        'http.response.status_code': [200, 404, 500, 503][i % 4]!,
        'server.port': 3000 + i,
        'big.int': Number.MAX_SAFE_INTEGER - i,
        'negative.int': -i,
        ratio: i / 7,
        'mcp.tool.result.is_error': i % 11 === 0,
        tags: ['a', `b${i}`, 'ç'],
        scores: [1, 2.5, -3],
        flags: [true, false],
        'long.text': 'x'.repeat(40 + i * 3),
        ünï: '日本語テキスト',
        empty: '',
      };
      if (i % 13 === 0) attributes['error.type'] = 'timeout';
      const kind = [
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.INTERNAL,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
      ][i % 5]!;
      tracer.startActiveSpan(`parent ${i}`, { kind: SpanKind.SERVER, startTime: start + n }, (parent) => {
        const child = tracer.startSpan(`tools/call tool_${i % 7}`, {
          kind,
          startTime: start + n,
          attributes,
          links:
            i % 4 === 0 ? [{ context: parent.spanContext(), attributes: { 'link.kind': 'follows' } }] : [],
        });
        if (i % 3 === 0)
          child.addEvent('exception', { 'exception.message': 'boom', 'exception.type': 'Error' });
        if (i % 6 === 0) child.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timeout ⏱' });
        if (i % 6 === 1) child.setStatus({ code: SpanStatusCode.OK });
        child.end(start + n + (i % 17) * 1.25);
        parent.end(start + n + 30);
      });
    }
    await provider.forceFlush();
    const body = ProtobufTraceSerializer.serializeRequest(exporter.getFinishedSpans());
    bodies.push(Buffer.from(body!));
    await provider.shutdown();
  }
  return bodies;
}

class ManualReader extends MetricReader {
  constructor(temporality: AggregationTemporality) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Two collections from each of a cumulative and a delta reader, so cumulative series have a past. */
async function sdkMetricBodies(): Promise<{ cumulative: Buffer[]; delta: Buffer[] }> {
  const out = { cumulative: [] as Buffer[], delta: [] as Buffer[] };
  for (const temporality of [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]) {
    const reader = new ManualReader(temporality);
    const provider = new MeterProvider({
      resource: sdkResource('3.1.4'),
      readers: [reader],
      views: [
        {
          instrumentName: 'mcp.server.operation.duration',
          aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM },
        },
      ],
    });
    const meter = provider.getMeter('@modelcontextprotocol/sdk', '1.17.0');
    const http = meter.createHistogram('http.server.request.duration', {
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] },
    });
    const mcp = meter.createHistogram('mcp.server.operation.duration', { unit: 's' });
    const cpuTime = meter.createCounter('process.cpu.time', { unit: 's' });
    const memory = meter.createUpDownCounter('process.memory.usage', {
      unit: 'By',
      valueType: ValueType.INT,
    });
    const cpu = meter.createObservableGauge('process.cpu.utilization', { unit: '1' });
    cpu.addCallback((result) => {
      result.observe(0.25, { 'cpu.mode': 'user' });
      result.observe(0.125, { 'cpu.mode': 'system' });
    });
    const other = meter.createCounter('app.unrelated', { valueType: ValueType.INT });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 40; i++) {
        const route = { 'http.request.method': i % 2 ? 'GET' : 'POST', 'http.route': `/r/${i % 5}` };
        http.record((i % 9) / 10 + round, { ...route, 'http.response.status_code': 200 + (i % 3) * 150 });
        mcp.record(i % 4 === 0 ? 0 : (i % 13) * 0.37 + round, {
          'mcp.method.name': 'tools/call',
          'gen_ai.tool.name': `tool_${i % 6}`,
        });
        cpuTime.add(0.01 * i, { 'cpu.mode': i % 2 ? 'user' : 'system' });
        memory.add(i % 3 === 0 ? -4096 * i : 8192 * i);
        other.add(i);
      }
      const { resourceMetrics, errors } = await reader.collect();
      expect(errors).toEqual([]);
      const body = ProtobufMetricsSerializer.serializeRequest(resourceMetrics);
      (temporality === AggregationTemporality.CUMULATIVE ? out.cumulative : out.delta).push(
        Buffer.from(body!),
      );
    }
    await provider.shutdown();
  }
  return out;
}

// --- Hand-written encodings --------------------------------------------------------------------

const P = 'opentelemetry.proto';
/** A field number, from the same definitions the decoder reads. */
const id = (type: string, field: string): number => {
  const f = root.lookupType(`${P}.${type}`).fields[field];
  if (!f) throw new Error(`no field ${type}.${field}`);
  return f.id;
};

function varint(value: bigint | number): Buffer {
  let n = BigInt.asUintN(64, BigInt(value));
  const bytes: number[] = [];
  while (n > 0x7fn) {
    bytes.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  bytes.push(Number(n));
  return Buffer.from(bytes);
}
const cat = (...parts: Buffer[]) => Buffer.concat(parts);
const tag = (field: number, wire: number) => varint(field * 8 + wire);
const len = (field: number, ...payload: Buffer[]) => {
  const p = cat(...payload);
  return cat(tag(field, 2), varint(p.length), p);
};
const str = (field: number, s: string | Buffer) => len(field, Buffer.isBuffer(s) ? s : Buffer.from(s));
const uint = (field: number, n: bigint | number) => cat(tag(field, 0), varint(n));
const f64 = (field: number, n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, n));
  return cat(tag(field, 1), b);
};
const dbl = (field: number, x: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return cat(tag(field, 1), b);
};
const zigzag = (n: number) => (n << 1) ^ (n >> 31);

const F = {
  req: id('collector.trace.v1.ExportTraceServiceRequest', 'resourceSpans'),
  mreq: id('collector.metrics.v1.ExportMetricsServiceRequest', 'resourceMetrics'),
  rsResource: id('trace.v1.ResourceSpans', 'resource'),
  rsScope: id('trace.v1.ResourceSpans', 'scopeSpans'),
  ssScope: id('trace.v1.ScopeSpans', 'scope'),
  ssSpans: id('trace.v1.ScopeSpans', 'spans'),
  resAttr: id('resource.v1.Resource', 'attributes'),
  scopeName: id('common.v1.InstrumentationScope', 'name'),
  key: id('common.v1.KeyValue', 'key'),
  value: id('common.v1.KeyValue', 'value'),
  sv: id('common.v1.AnyValue', 'stringValue'),
  bv: id('common.v1.AnyValue', 'boolValue'),
  iv: id('common.v1.AnyValue', 'intValue'),
  dv: id('common.v1.AnyValue', 'doubleValue'),
  av: id('common.v1.AnyValue', 'arrayValue'),
  kvv: id('common.v1.AnyValue', 'kvlistValue'),
  bytesv: id('common.v1.AnyValue', 'bytesValue'),
  values: id('common.v1.ArrayValue', 'values'),
  kvValues: id('common.v1.KeyValueList', 'values'),
  traceId: id('trace.v1.Span', 'traceId'),
  spanId: id('trace.v1.Span', 'spanId'),
  parent: id('trace.v1.Span', 'parentSpanId'),
  name: id('trace.v1.Span', 'name'),
  kind: id('trace.v1.Span', 'kind'),
  start: id('trace.v1.Span', 'startTimeUnixNano'),
  end: id('trace.v1.Span', 'endTimeUnixNano'),
  attr: id('trace.v1.Span', 'attributes'),
  events: id('trace.v1.Span', 'events'),
  status: id('trace.v1.Span', 'status'),
  flags: id('trace.v1.Span', 'flags'),
  code: id('trace.v1.Status', 'code'),
  message: id('trace.v1.Status', 'message'),
  rmResource: id('metrics.v1.ResourceMetrics', 'resource'),
  rmScope: id('metrics.v1.ResourceMetrics', 'scopeMetrics'),
  smMetrics: id('metrics.v1.ScopeMetrics', 'metrics'),
  mName: id('metrics.v1.Metric', 'name'),
  mUnit: id('metrics.v1.Metric', 'unit'),
  gauge: id('metrics.v1.Metric', 'gauge'),
  sum: id('metrics.v1.Metric', 'sum'),
  histogram: id('metrics.v1.Metric', 'histogram'),
  exponential: id('metrics.v1.Metric', 'exponentialHistogram'),
  summary: id('metrics.v1.Metric', 'summary'),
  points: id('metrics.v1.Gauge', 'dataPoints'),
  temporality: id('metrics.v1.Sum', 'aggregationTemporality'),
  monotonic: id('metrics.v1.Sum', 'isMonotonic'),
  npTime: id('metrics.v1.NumberDataPoint', 'timeUnixNano'),
  npDouble: id('metrics.v1.NumberDataPoint', 'asDouble'),
  npInt: id('metrics.v1.NumberDataPoint', 'asInt'),
  npFlags: id('metrics.v1.NumberDataPoint', 'flags'),
  hpTime: id('metrics.v1.HistogramDataPoint', 'timeUnixNano'),
  hpCount: id('metrics.v1.HistogramDataPoint', 'count'),
  hpSum: id('metrics.v1.HistogramDataPoint', 'sum'),
  hpBuckets: id('metrics.v1.HistogramDataPoint', 'bucketCounts'),
  hpBounds: id('metrics.v1.HistogramDataPoint', 'explicitBounds'),
  hpMin: id('metrics.v1.HistogramDataPoint', 'min'),
  hpExemplars: id('metrics.v1.HistogramDataPoint', 'exemplars'),
  epTime: id('metrics.v1.ExponentialHistogramDataPoint', 'timeUnixNano'),
  epScale: id('metrics.v1.ExponentialHistogramDataPoint', 'scale'),
  epZero: id('metrics.v1.ExponentialHistogramDataPoint', 'zeroCount'),
  epPositive: id('metrics.v1.ExponentialHistogramDataPoint', 'positive'),
  bOffset: id('metrics.v1.ExponentialHistogramDataPoint.Buckets', 'offset'),
  bCounts: id('metrics.v1.ExponentialHistogramDataPoint.Buckets', 'bucketCounts'),
  exValue: id('metrics.v1.Exemplar', 'asDouble'),
};

const TRACE_ID = Buffer.from('5b8efff798038103d269b633813fc60c', 'hex');
const SPAN_ID = Buffer.from('eee19b7ec3c1b174', 'hex');
const keyValue = (key: string, value: Buffer) => cat(str(F.key, key), len(F.value, value));
const sval = (s: string) => str(F.sv, s);
const RES = len(
  F.rsResource,
  len(F.resAttr, keyValue('service.name', sval('weather-mcp'))),
  len(F.resAttr, keyValue('service.version', sval('1.4.0'))),
);

function spanOf(...fields: Buffer[]): Buffer {
  return cat(
    str(F.traceId, TRACE_ID),
    str(F.spanId, SPAN_ID),
    uint(F.kind, 2),
    f64(F.start, T0),
    f64(F.end, T0 + 5_000_000n),
    ...fields,
  );
}
const traceBody = (...spans: Buffer[]) =>
  len(
    F.req,
    RES,
    len(F.rsScope, str(F.ssScope, str(F.scopeName, 'hand')), ...spans.map((s) => len(F.ssSpans, s))),
  );

const metricBody = (...metricFields: Buffer[][]) =>
  len(
    F.mreq,
    len(F.rmResource, len(F.resAttr, keyValue('service.name', sval('weather-mcp')))),
    len(F.rmScope, ...metricFields.map((m) => len(F.smMetrics, ...m))),
  );

/** An AnyValue nested `depth` arrays deep around a string. */
function nestedArrays(depth: number): Buffer {
  let value = sval('leaf');
  for (let i = 0; i < depth; i++) value = len(F.av, len(F.values, value));
  return value;
}

const HAND_TRACES: [string, Buffer][] = [
  ['a plain SERVER span', traceBody(spanOf(str(F.name, 'GET /a')))],
  ['a name sent twice (the last wins)', traceBody(spanOf(str(F.name, 'first'), str(F.name, 'second')))],
  [
    'a status sent twice (replaced, not merged)',
    traceBody(
      spanOf(len(F.status, uint(F.code, 2), str(F.message, 'bad')), len(F.status, str(F.message, 'm'))),
    ),
  ],
  [
    'a resource sent twice',
    cat(traceBody(spanOf()), len(F.req, RES, RES, len(F.rsScope, len(F.ssSpans, spanOf())))),
  ],
  [
    'several AnyValue members at once',
    traceBody(
      spanOf(
        len(F.attr, keyValue('a', cat(uint(F.iv, -5), sval('s')))),
        len(F.attr, keyValue('b', cat(dbl(F.dv, 1.5), uint(F.bv, 1)))),
        len(F.attr, keyValue('c', cat(len(F.kvv, len(F.kvValues, keyValue('k', sval('v')))), len(F.av)))),
        len(F.attr, keyValue('d', cat(str(F.bytesv, Buffer.alloc(0)), dbl(F.dv, Number.NaN)))),
        len(F.attr, keyValue('e', Buffer.alloc(0))),
        len(F.attr, str(F.key, 'no value')),
        len(F.attr, keyValue('a', sval('duplicate key'))),
        len(F.attr, keyValue('__proto__', sval('x'))),
      ),
    ),
  ],
  [
    'extreme integers and doubles',
    traceBody(
      spanOf(
        len(F.attr, keyValue('min', uint(F.iv, -(2n ** 63n)))),
        len(F.attr, keyValue('max', uint(F.iv, 2n ** 63n - 1n))),
        len(F.attr, keyValue('neg0', dbl(F.dv, -0))),
        len(F.attr, keyValue('inf', dbl(F.dv, Number.NEGATIVE_INFINITY))),
        len(F.attr, keyValue('http.response.status_code', uint(F.iv, 503))),
        f64(F.end, 2n ** 64n - 1n),
      ),
    ),
  ],
  [
    'ids of odd lengths',
    traceBody(spanOf(str(F.traceId, Buffer.from([1, 2, 3])), str(F.parent, Buffer.alloc(0)))),
  ],
  ['invalid UTF-8', traceBody(spanOf(str(F.name, Buffer.from([0x61, 0xff, 0xc3, 0x28, 0xe2, 0x82]))))],
  ['a negative enum (ten-byte varint)', traceBody(spanOf(uint(F.kind, -1)))],
  [
    'an over-long (non-minimal) tag',
    traceBody(spanOf(Buffer.from([F.name * 8 + 2 + 0x80, 0x00, 0x01, 0x61]))),
  ],
  [
    'unknown fields of every wire type',
    traceBody(
      spanOf(
        uint(999, 12345),
        f64(1000, 7n),
        str(1001, 'unknown'),
        cat(tag(1002, 5), Buffer.from([1, 2, 3, 4])),
        cat(tag(1003, 3), uint(1, 1), tag(1003, 4)),
      ),
    ),
  ],
  ['a known field with the wrong wire type', traceBody(spanOf(uint(F.name, 3)))],
  [
    'a string longer than its message',
    traceBody(cat(spanOf(), tag(F.name, 2), varint(200), Buffer.from('abc'))),
  ],
  [
    'a span event (decoded by protobufjs, then dropped)',
    traceBody(spanOf(len(F.events, str(2, 'exception'), len(3, keyValue('exception.type', sval('E')))))),
  ],
  ['a malformed span event', traceBody(spanOf(len(F.events, Buffer.from([0x12, 0x05, 0x61]))))],
  [
    'span flags (fixed32, not read)',
    traceBody(spanOf(cat(tag(F.flags, 5), Buffer.from([0x01, 0x03, 0, 0])))),
  ],
  [
    `attribute values nested ${MAX_VALUE_DEPTH + 4} deep (cut to null)`,
    traceBody(spanOf(len(F.attr, keyValue('deep', nestedArrays(MAX_VALUE_DEPTH + 4))))),
  ],
  ...[40, 46, 47, 48, 49, 60].map((depth): [string, Buffer] => [
    `attribute values nested ${depth} deep (around protobufjs's limit)`,
    traceBody(spanOf(len(F.attr, keyValue('deep', nestedArrays(depth))))),
  ]),
  ['an empty body', Buffer.alloc(0)],
  ['trailing garbage', cat(traceBody(spanOf()), Buffer.from([0xff]))],
];

const HAND_METRICS: [string, Buffer][] = [
  [
    'a gauge and a sum in one metric (the gauge wins)',
    metricBody([
      str(F.mName, 'process.cpu.utilization'),
      len(F.sum, len(F.points, f64(F.npTime, T0), dbl(F.npDouble, 2)), uint(F.temporality, 2)),
      len(F.gauge, len(F.points, f64(F.npTime, T0), dbl(F.npDouble, 0.5))),
    ]),
  ],
  [
    'asInt and asDouble in one point, flags set',
    metricBody([
      str(F.mName, 'process.cpu.utilization'),
      len(
        F.gauge,
        len(F.points, f64(F.npTime, T0), f64(F.npInt, -7n), dbl(F.npDouble, 0.5), uint(F.npFlags, 1)),
      ),
    ]),
  ],
  [
    'a gauge sent twice (replaced)',
    metricBody([
      str(F.mName, 'process.cpu.utilization'),
      len(F.gauge, len(F.points, f64(F.npTime, T0), dbl(F.npDouble, 0.5))),
      len(F.gauge),
    ]),
  ],
  [
    'unpacked and packed histogram buckets mixed',
    metricBody([
      str(F.mName, 'http.server.request.duration'),
      str(F.mUnit, 's'),
      len(
        F.histogram,
        uint(F.temporality, 1),
        len(
          F.points,
          f64(F.hpTime, T0),
          f64(F.hpCount, 6n),
          dbl(F.hpSum, 1.5),
          f64(F.hpBuckets, 1n),
          len(F.hpBuckets, Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0])),
          dbl(F.hpBounds, 0.1),
          len(
            F.hpBounds,
            (() => {
              const b = Buffer.alloc(8);
              b.writeDoubleLE(1);
              return b;
            })(),
          ),
          dbl(F.hpMin, 0.01),
          len(F.hpExemplars, dbl(F.exValue, 0.2)),
        ),
      ),
    ]),
  ],
  [
    'counts of 2^63 and more',
    metricBody([
      str(F.mName, 'http.server.request.duration'),
      len(
        F.histogram,
        uint(F.temporality, 1),
        len(F.points, f64(F.hpTime, T0), f64(F.hpCount, 2n ** 64n - 1n), f64(F.hpBuckets, 2n ** 63n)),
      ),
    ]),
  ],
  [
    'a packed field whose length is not a multiple of 8',
    metricBody([
      str(F.mName, 'http.server.request.duration'),
      len(F.histogram, len(F.points, f64(F.hpTime, T0), len(F.hpBuckets, Buffer.from([1, 2, 3])))),
    ]),
  ],
  [
    'exponential buckets packed and unpacked, negative scale and offset',
    metricBody([
      str(F.mName, 'mcp.server.operation.duration'),
      len(
        F.exponential,
        uint(F.temporality, 2),
        len(
          F.points,
          f64(F.epTime, T0),
          uint(F.epScale, zigzag(-3)),
          f64(F.epZero, 2n),
          len(
            F.epPositive,
            uint(F.bOffset, zigzag(-2)),
            uint(F.bCounts, 5),
            len(F.bCounts, varint(1), varint(2n ** 64n - 1n)),
          ),
        ),
      ),
    ]),
  ],
  [
    'a summary (counted, not mapped)',
    metricBody([str(F.mName, 'rpc.summary'), len(F.summary, len(F.points, f64(3, T0)), len(F.points))]),
  ],
  [
    'a malformed summary point',
    metricBody([str(F.mName, 'rpc.summary'), len(F.summary, len(F.points, Buffer.from([0x19, 1])))]),
  ],
  ['a metric with no data', metricBody([str(F.mName, 'nothing')])],
];

/** Fixture payloads (the OTLP JSON mapping), encoded by protobufjs. */
const FIXTURE_TRACES = traceProtobuf(
  traces([
    span({
      attributes: [
        kv('http.route', '/items/{id}'),
        kv('big', 9007199254740993n),
        { key: 'raw', value: { bytesValue: Buffer.from([0, 1, 254, 255]).toString('base64') } },
        {
          key: 'list',
          value: {
            arrayValue: { values: [{ stringValue: 'a' }, { kvlistValue: { values: [kv('k', 'v')] } }] },
          },
        },
      ],
      status: 2,
    }),
    span({ kind: 3, spanId: '1111111111111111' }),
  ]),
);
const FIXTURE_METRICS = metricsProtobuf(
  metrics(
    [
      {
        name: 'process.cpu.time',
        unit: 's',
        sum: {
          aggregationTemporality: 2,
          isMonotonic: true,
          dataPoints: [
            {
              startTimeUnixNano: '1',
              timeUnixNano: T0.toString(),
              asInt: '18446744',
              attributes: [kv('cpu.mode', 'user')],
            },
          ],
        },
      },
    ] as JsonObject[],
    RESOURCE,
  ),
);

// --- Mutations ---------------------------------------------------------------------------------

function mutate(body: Buffer, others: Buffer[], random: () => number): Buffer {
  const int = (n: number) => Math.floor(random() * n);
  const out = Buffer.from(body);
  if (out.length === 0) return Buffer.from([int(256)]);
  const at = int(out.length);
  switch (int(8)) {
    case 0: // flip one bit
      out[at] = out[at]! ^ (1 << int(8));
      return out;
    case 1: // any byte
      out[at] = int(256);
      return out;
    case 2: // a boundary value, often a length or a tag
      out[at] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a][int(8)]!;
      return out;
    case 3: // truncated
      return out.subarray(0, at);
    case 4: // a range removed
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + int(16)))]);
    case 5: // a range repeated
      return Buffer.concat([out.subarray(0, at + int(32)), out.subarray(at)]);
    case 6: // random bytes inserted
      return Buffer.concat([
        out.subarray(0, at),
        Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256))),
        out.subarray(at),
      ]);
    default: {
      // spliced with another body
      const other = others[int(others.length)]!;
      return Buffer.concat([out.subarray(0, at), other.subarray(int(other.length + 1))]);
    }
  }
}

const SDK_TRACES = await sdkTraceBodies();
const SDK_METRICS = await sdkMetricBodies();

describe('the wire decoder', () => {
  it('decodes SDK-serialized traces itself, exactly as protobufjs and decode.ts do', () => {
    for (const body of SDK_TRACES) {
      const full = outcome('traces', body, false);
      expect(decodeTracesWire(body)).toStrictEqual((full as { ok: unknown }).ok);
      expect(decodeTraces(body, PB)).toStrictEqual((full as { ok: unknown }).ok);
    }
    const spans = decodeTracesWire(SDK_TRACES[0]!).resourceSpans[0]!.scopeSpans[0]!.spans;
    expect(spans).toHaveLength(120);
    expect(spans[0]!.attributes.get('tags')).toEqual(['a', 'b0', 'ç']);
    expect(spans[0]!.attributes.get('big.int')).toBe(BigInt(Number.MAX_SAFE_INTEGER));
  });

  it('maps SDK-serialized spans to the same rows both ways', () => {
    const ctx = { orgId: 'org-test', maxAttributeLength: 64 };
    for (const body of SDK_TRACES) {
      const wire = mapSpans(decodeTraces(body, PB), ctx);
      const full = mapSpans(decodeTraces(body, PB, { wire: false }), ctx);
      expect(wire).toStrictEqual(full);
      expect(wire.rows.length).toBeGreaterThan(0);
    }
  });

  it('decodes SDK-serialized metrics itself (cumulative, delta, explicit and exponential), mapping to the same rows', () => {
    const ctx = { orgId: 'org-test' };
    for (const bodies of [SDK_METRICS.cumulative, SDK_METRICS.delta]) {
      const wireTracker = new DeltaTracker();
      const fullTracker = new DeltaTracker();
      for (const body of bodies) {
        const full = outcome('metrics', body, false);
        expect(decodeMetricsWire(body)).toStrictEqual((full as { ok: unknown }).ok);
        const wire = mapMetrics(decodeMetrics(body, PB), ctx, wireTracker);
        const reference = mapMetrics(decodeMetrics(body, PB, { wire: false }), ctx, fullTracker);
        expect(wire.rows).toStrictEqual(reference.rows);
        expect(wire.rejected).toBe(reference.rejected);
        expect(new Set(wire.rows.map((r) => r.metric))).toEqual(
          new Set([
            'http.server.request.duration',
            'mcp.server.operation.duration',
            'process.cpu.time',
            'process.memory.usage',
            'process.cpu.utilization',
          ]),
        );
      }
    }
    const types = decodeMetricsWire(
      SDK_METRICS.cumulative[0]!,
    ).resourceMetrics[0]!.scopeMetrics[0]!.metrics.map((m) => m.data.type);
    expect(types).toEqual(expect.arrayContaining(['histogram', 'exponentialHistogram', 'sum', 'gauge']));
  });

  it.each(HAND_TRACES)('answers traces with %s as the full path does', (label, body) => {
    const tally = { wireAccepted: 0, fellBack: 0, refused: 0 };
    check('traces', body, tally, label);
  });

  it.each(HAND_METRICS)('answers metrics with %s as the full path does', (label, body) => {
    const tally = { wireAccepted: 0, fellBack: 0, refused: 0 };
    check('metrics', body, tally, label);
  });

  it('decodes the protobuf corners itself where it matches protobufjs exactly', () => {
    const accepted = (signal: Signal, body: Buffer) => wireOnly(signal, body) !== undefined;
    const byLabel = (list: [string, Buffer][], label: string) => list.find(([l]) => l === label)![1];
    for (const label of [
      'a name sent twice (the last wins)',
      'a status sent twice (replaced, not merged)',
      'several AnyValue members at once',
      'extreme integers and doubles',
      'invalid UTF-8',
      'an over-long (non-minimal) tag',
      'a span event (decoded by protobufjs, then dropped)',
      `attribute values nested ${MAX_VALUE_DEPTH + 4} deep (cut to null)`,
      "attribute values nested 46 deep (around protobufjs's limit)",
    ]) {
      expect(accepted('traces', byLabel(HAND_TRACES, label)), label).toBe(true);
    }
    for (const label of [
      'a gauge and a sum in one metric (the gauge wins)',
      'unpacked and packed histogram buckets mixed',
      'counts of 2^63 and more',
      'exponential buckets packed and unpacked, negative scale and offset',
      'a summary (counted, not mapped)',
    ]) {
      expect(accepted('metrics', byLabel(HAND_METRICS, label)), label).toBe(true);
    }
    // Beyond protobufjs's recursion limit both refuse the body.
    expect(
      outcome(
        'traces',
        byLabel(HAND_TRACES, "attribute values nested 60 deep (around protobufjs's limit)"),
        true,
      ),
    ).toMatchObject({
      status: 400,
      message: expect.stringMatching(/nesting depth/),
    });
  });

  it(`answers ${MUTATIONS_PER_BODY} mutations of every body exactly as the full path does`, () => {
    const random = seededRandom(SEED);
    const traceBases = [...SDK_TRACES, FIXTURE_TRACES, ...HAND_TRACES.map(([, b]) => b)];
    const metricBases = [
      ...SDK_METRICS.cumulative,
      ...SDK_METRICS.delta,
      FIXTURE_METRICS,
      ...HAND_METRICS.map(([, b]) => b),
    ];
    const tally = { wireAccepted: 0, fellBack: 0, refused: 0 };
    for (const [signal, bases] of [
      ['traces', traceBases],
      ['metrics', metricBases],
    ] as const) {
      for (const base of bases) {
        for (let i = 0; i < MUTATIONS_PER_BODY; i++) {
          let body = mutate(base, bases, random);
          if (random() < 0.3) body = mutate(body, bases, random);
          check(signal, body, tally, `a mutation of a ${signal} body`);
        }
      }
      // Random bytes too.
      for (let i = 0; i < 300; i++) {
        const body = Buffer.from(
          Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)),
        );
        check(signal, body, tally, `random ${signal} bytes`);
      }
    }
    // Every way is exercised: mutations the wire decoder takes, ones it leaves, ones refused.
    expect(tally.wireAccepted).toBeGreaterThan(500);
    expect(tally.fellBack).toBeGreaterThan(10);
    expect(tally.refused).toBeGreaterThan(500);
  }, 120_000);
});
