import { describe, expect, it } from 'vitest';
import { decodeMetrics, decodeTraces, MAX_VALUE_DEPTH, type AnyValue } from '#collector/otlp/decode.ts';
import { ExportTraceServiceRequest } from '#collector/otlp/protobuf.ts';
import { AppError } from '#core/errors.ts';
import {
  jsonBody,
  kv,
  metrics,
  metricsProtobuf,
  RESOURCE,
  span,
  SPAN_ID,
  T0,
  TRACE_ID,
  traceProtobuf,
  traces,
  type JsonObject,
} from './fixtures/otlp.ts';

const PB = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

function decodeError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected the decoder to throw');
}

const RICH_SPAN = span({
  attributes: [
    kv('http.route', '/items/{id}'),
    kv('http.response.status_code', 503),
    kv('big', 9007199254740993n),
    kv('ratio', 0.25),
    kv('ok', true),
    { key: 'raw', value: { bytesValue: Buffer.from([0, 1, 254, 255]).toString('base64') } },
    {
      key: 'list',
      value: {
        arrayValue: {
          values: [{ stringValue: 'a' }, { intValue: '-5' }, { kvlistValue: { values: [kv('k', 'v')] } }],
        },
      },
    },
    { key: 'empty', value: {} },
  ],
  status: 2,
});
const TRACE_PAYLOAD = traces([
  { ...RICH_SPAN, parentSpanId: '00f067aa0ba902b7' },
  span({ kind: 3, spanId: '1111111111111111' }),
]);

const METRICS_PAYLOAD = metrics([
  {
    name: 'process.cpu.utilization',
    unit: '1',
    gauge: { dataPoints: [{ timeUnixNano: T0.toString(), asDouble: 0.5 }] },
  },
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
  {
    name: 'http.server.request.duration',
    unit: 's',
    histogram: {
      aggregationTemporality: 1,
      dataPoints: [
        {
          startTimeUnixNano: (T0 - 60_000_000_000n).toString(),
          timeUnixNano: T0.toString(),
          count: '3',
          sum: 0.75,
          bucketCounts: ['1', '2', '0'],
          explicitBounds: [0.1, 1],
          attributes: [kv('http.route', '/a')],
        },
      ],
    },
  },
  {
    name: 'mcp.server.operation.duration',
    unit: 's',
    exponentialHistogram: {
      aggregationTemporality: 2,
      dataPoints: [
        {
          startTimeUnixNano: '5',
          timeUnixNano: T0.toString(),
          count: '4',
          sum: 3.5,
          scale: -1,
          zeroCount: '1',
          positive: { offset: -2, bucketCounts: ['1', '2'] },
          negative: { offset: 0, bucketCounts: [] },
        },
      ],
    },
  },
]);

describe('decodeTraces', () => {
  it('decodes protobuf and JSON of the same payload to the same objects', () => {
    const fromProtobuf = decodeTraces(traceProtobuf(TRACE_PAYLOAD), PB);
    const fromJson = decodeTraces(jsonBody(TRACE_PAYLOAD), JSON_TYPE);
    expect(fromJson).toEqual(fromProtobuf);
    const decoded = fromJson.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(decoded.traceId).toBe(TRACE_ID);
    expect(decoded.spanId).toBe(SPAN_ID);
    expect(decoded.parentSpanId).toBe('00f067aa0ba902b7');
    expect(decoded.kind).toBe(2);
    expect(decoded.status).toEqual({ code: 2, message: '' });
    expect(decoded.startTimeUnixNano).toBe(T0);
    expect(decoded.endTimeUnixNano).toBe(T0 + 12_500_000n);
    expect(decoded.attributes.get('big')).toBe(9007199254740993n);
    expect(decoded.attributes.get('ratio')).toBe(0.25);
    expect(decoded.attributes.get('ok')).toBe(true);
    expect(Buffer.from(decoded.attributes.get('raw') as Uint8Array)).toEqual(Buffer.from([0, 1, 254, 255]));
    const list = decoded.attributes.get('list') as AnyValue[];
    expect(list.slice(0, 2)).toEqual(['a', -5n]);
    expect(list[2]).toEqual(new Map([['k', 'v']]));
    expect(decoded.attributes.get('empty')).toBeNull();
    expect(fromJson.resourceSpans[0]!.resource.attributes.get('service.name')).toBe('weather-mcp');
  });

  it('lowercases hex ids and keeps 64-bit integers exact, whether strings or numbers', () => {
    const payload = traces([
      {
        ...span(),
        traceId: TRACE_ID.toUpperCase(),
        startTimeUnixNano: '18446744073709551615',
        endTimeUnixNano: 1e15,
      },
    ]);
    const s = decodeTraces(jsonBody(payload), JSON_TYPE).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(s.traceId).toBe(TRACE_ID);
    expect(s.startTimeUnixNano).toBe(18446744073709551615n);
    expect(s.endTimeUnixNano).toBe(1_000_000_000_000_000n);
  });

  it('turns an id that is not hex into an empty id (the span is then rejected, not the request)', () => {
    const payload = traces([{ ...span(), traceId: 'W47/95gDgQPSabYzgT/GDA==' }]);
    expect(
      decodeTraces(jsonBody(payload), JSON_TYPE).resourceSpans[0]!.scopeSpans[0]!.spans[0]!.traceId,
    ).toBe('');
  });

  it('accepts enum names and snake_case field names as the Protobuf JSON mapping does', () => {
    const payload = {
      resource_spans: [
        {
          resource: RESOURCE,
          scope_spans: [
            {
              spans: [
                {
                  ...span(),
                  kind: 'SPAN_KIND_SERVER',
                  status: { code: 'STATUS_CODE_ERROR' },
                  start_time_unix_nano: '7',
                },
              ],
            },
          ],
        },
      ],
    };
    const s = decodeTraces(jsonBody(payload), JSON_TYPE).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(s.kind).toBe(2);
    expect(s.status.code).toBe(2);
  });

  it('rejects an unknown enum name', () => {
    const error = decodeError(() =>
      decodeTraces(jsonBody(traces([{ ...span(), kind: 'SERVER' }])), JSON_TYPE),
    );
    expect(error.status).toBe(400);
    expect(error.code).toBe('invalid-otlp');
    expect(error.message).toContain('resourceSpans[0].scopeSpans[0].spans[0].kind');
  });

  it('rejects a body that is not JSON', () => {
    const error = decodeError(() => decodeTraces(Buffer.from('{"resourceSpans": ['), JSON_TYPE));
    expect(error).toMatchObject({ status: 400, code: 'invalid-otlp' });
    expect(error.message).toMatch(/^the body is not valid JSON/);
  });

  it.each([
    ['an array at the top', [], /must be a JSON object/],
    ['a string at the top', 'x', /must be a JSON object/],
    ['resourceSpans as an object', { resourceSpans: {} }, /resourceSpans must be an array/],
    ['a null span', traces([null as unknown as JsonObject]), /spans\[0\] must be an object/],
    [
      'a time that is not an integer',
      traces([{ ...span(), startTimeUnixNano: '1.5' }]),
      /startTimeUnixNano must be a 64-bit integer/,
    ],
    ['a negative fixed64', traces([{ ...span(), startTimeUnixNano: '-1' }]), /out of range for a uint64/],
    ['a numeric trace id', traces([{ ...span(), traceId: 5 }]), /traceId must be a hex string/],
    ['attributes as an object', traces([{ ...span(), attributes: { a: 1 } }]), /attributes must be an array/],
    [
      'a key that is not a string',
      traces([{ ...span(), attributes: [{ key: 1, value: {} }] }]),
      /\.key must be a string/,
    ],
  ])('rejects JSON with %s, naming the problem', (_name, payload, message) => {
    const error = decodeError(() => decodeTraces(jsonBody(payload), JSON_TYPE));
    expect(error).toMatchObject({ status: 400, code: 'invalid-otlp' });
    expect(error.message).toMatch(message);
  });

  it('rejects malformed protobuf', () => {
    const valid = traceProtobuf(TRACE_PAYLOAD);
    for (const body of [
      valid.subarray(0, valid.length - 3),
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]),
      Buffer.from([0x0f]),
    ]) {
      const error = decodeError(() => decodeTraces(body, PB));
      expect(error).toMatchObject({ status: 400, code: 'invalid-otlp' });
      expect(error.message).toMatch(/^the body is not a valid protobuf ExportTraceServiceRequest/);
    }
  });

  it('decodes an empty protobuf body as an empty request', () => {
    expect(decodeTraces(Buffer.alloc(0), PB)).toEqual({ resourceSpans: [] });
  });

  it('ignores unknown fields', () => {
    const payload = {
      ...traces([{ ...span(), events: [{ name: 'x' }], futureField: { a: 1 } }]),
      extra: true,
    };
    expect(decodeTraces(jsonBody(payload), JSON_TYPE).resourceSpans[0]!.scopeSpans[0]!.spans).toHaveLength(1);
  });

  it('keeps __proto__ and constructor keys as data, never on a prototype', () => {
    const body = `{"__proto__":{"polluted":1},"resourceSpans":[{"resource":{"attributes":[
      {"key":"__proto__","value":{"kvlistValue":{"values":[{"key":"polluted","value":{"boolValue":true}}]}}},
      {"key":"constructor","value":{"stringValue":"x"}}]},"scopeSpans":[{"spans":[{"__proto__":{"kind":2}}]}]}]}`;
    const decoded = decodeTraces(Buffer.from(body), JSON_TYPE);
    const attributes = decoded.resourceSpans[0]!.resource.attributes;
    expect(attributes.get('__proto__')).toEqual(new Map([['polluted', true]]));
    expect(attributes.get('constructor')).toBe('x');
    expect(decoded.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.kind).toBe(0);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('cuts attribute values nested deeper than the limit to null', () => {
    let value: JsonObject = { stringValue: 'leaf' };
    for (let i = 0; i < MAX_VALUE_DEPTH + 5; i++) value = { arrayValue: { values: [value] } };
    const decoded = decodeTraces(
      jsonBody(traces([span({ attributes: [{ key: 'deep', value }] })])),
      JSON_TYPE,
    );
    let v = decoded.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.attributes.get('deep');
    let depth = 0;
    while (Array.isArray(v)) {
      v = (v as AnyValue[])[0];
      depth++;
    }
    expect(depth).toBe(MAX_VALUE_DEPTH);
    expect(v).toBeNull();
  });

  it('answers protobuf nested deeper than protobufjs allows with a 400, not a crash', () => {
    // AnyValue{array_value=5: ArrayValue{values=1: AnyValue{...}}}, built from the inside out.
    let inner = Buffer.from([0x0a, 0x01, 0x78]); // AnyValue{string_value: "x"}
    const wrap = (tag: number, payload: Buffer) =>
      Buffer.concat([Buffer.from([tag]), varint(payload.length), payload]);
    for (let i = 0; i < 500; i++) inner = wrap(0x2a, wrap(0x0a, inner));
    const kvPair = Buffer.concat([wrap(0x0a, Buffer.from('k')), wrap(0x12, inner)]);
    const body = wrap(0x0a, wrap(0x0a, wrap(0x0a, kvPair))); // request.resource_spans.resource.attributes
    const error = decodeError(() => decodeTraces(body, PB));
    expect(error).toMatchObject({ status: 400, code: 'invalid-otlp' });
    expect(error.message).toMatch(/nesting depth/);
  });
});

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

describe('decodeMetrics', () => {
  it('decodes protobuf and JSON of the same payload to the same objects', () => {
    const fromProtobuf = decodeMetrics(metricsProtobuf(METRICS_PAYLOAD), PB);
    const fromJson = decodeMetrics(jsonBody(METRICS_PAYLOAD), JSON_TYPE);
    expect(fromJson).toEqual(fromProtobuf);
    const [gauge, sum, histogram, exponential] = fromJson.resourceMetrics[0]!.scopeMetrics[0]!.metrics;
    expect(gauge!.data).toMatchObject({ type: 'gauge', dataPoints: [{ value: 0.5, timeUnixNano: T0 }] });
    expect(sum!.data).toMatchObject({
      type: 'sum',
      aggregationTemporality: 2,
      isMonotonic: true,
      dataPoints: [{ value: 18446744n, startTimeUnixNano: 1n }],
    });
    expect(histogram!.data).toMatchObject({
      type: 'histogram',
      aggregationTemporality: 1,
      dataPoints: [{ count: 3n, sum: 0.75, bucketCounts: [1n, 2n, 0n], explicitBounds: [0.1, 1] }],
    });
    expect(exponential!.data).toMatchObject({
      type: 'exponentialHistogram',
      dataPoints: [{ count: 4n, scale: -1, zeroCount: 1n, positive: { offset: -2, bucketCounts: [1n, 2n] } }],
    });
  });

  it('accepts "NaN" and "Infinity" doubles and rejects other strings', () => {
    const payload = metrics([
      {
        name: 'g',
        gauge: {
          dataPoints: [
            { timeUnixNano: '1', asDouble: 'NaN' },
            { timeUnixNano: '1', asDouble: '-Infinity' },
          ],
        },
      },
    ]);
    const points = decodeMetrics(jsonBody(payload), JSON_TYPE).resourceMetrics[0]!.scopeMetrics[0]!
      .metrics[0]!.data;
    expect(points).toMatchObject({ type: 'gauge', dataPoints: [{ value: NaN }, { value: -Infinity }] });
    const bad = metrics([{ name: 'g', gauge: { dataPoints: [{ timeUnixNano: '1', asDouble: 'lots' }] } }]);
    expect(decodeError(() => decodeMetrics(jsonBody(bad), JSON_TYPE)).message).toMatch(
      /asDouble must be a number/,
    );
  });

  it('rejects malformed metrics protobuf', () => {
    const body = Buffer.from(ExportTraceServiceRequest.encode({}).finish());
    expect(decodeMetrics(body, PB)).toEqual({ resourceMetrics: [] });
    const error = decodeError(() => decodeMetrics(Buffer.from([0x0a, 0x05, 0x01]), PB));
    expect(error.message).toMatch(/ExportMetricsServiceRequest/);
  });
});
