import { describe, expect, it } from 'vitest';
import { DeltaTracker, downscale } from '#collector/delta.ts';
import { exponentialToExplicit, mapMetrics, mapSpans, type MappingContext } from '#collector/mapping.ts';
import { decodeMetrics, decodeTraces } from '#collector/otlp/decode.ts';
import {
  jsonBody,
  kv,
  metrics,
  resource,
  span,
  T0,
  traces,
  type Json,
  type JsonObject,
} from './fixtures/otlp.ts';

const ctx: MappingContext = { orgId: 'org-1' };
const S = 1_000_000_000n; // one second in nanoseconds

function mapJsonSpans(payload: JsonObject, context: MappingContext = ctx) {
  return mapSpans(decodeTraces(jsonBody(payload), 'application/json'), context);
}

function oneRow(spec: Parameters<typeof span>[0]) {
  const { rows, rejected } = mapJsonSpans(traces([span(spec)]));
  expect(rejected).toBe(0);
  expect(rows).toHaveLength(1);
  return rows[0]!;
}

describe('mapSpans', () => {
  it('maps a SERVER span to a request row with the resource dimensions', () => {
    const row = oneRow({
      attributes: [
        kv('http.request.method', 'GET'),
        kv('http.route', '/items/{id}'),
        kv('http.response.status_code', 200),
      ],
    });
    expect(row).toEqual({
      org_id: 'org-1',
      server: 'weather-mcp',
      environment: 'production',
      version: '1.4.0',
      operation: 'GET /items/{id}',
      time: '2026-01-02T03:04:05.678Z',
      duration_ms: 12.5,
      error: 0,
      error_type: '',
      http_status: 200,
      mcp_method: '',
      tool: '',
      trace_id: '5b8efff798038103d269b633813fc60c',
      span_id: 'eee19b7ec3c1b174',
      session_id: '',
      source: 'otlp',
      client_key: '',
      counted: 1,
    });
  });

  it('only turns SERVER spans into requests, without rejecting the others', () => {
    const { rows, rejected, errorMessage } = mapJsonSpans(
      traces([span({ kind: 1 }), span({ kind: 3 }), span({ kind: 0 }), span({ kind: 2 }), span({ kind: 5 })]),
    );
    expect(rows).toHaveLength(1);
    expect(rejected).toBe(0);
    expect(errorMessage).toBeUndefined();
  });

  it('stores spans without resource attributes under unknown_service', () => {
    const { rows } = mapJsonSpans(traces([span()], {}));
    expect(rows[0]).toMatchObject({ server: 'unknown_service', version: '', environment: '' });
  });

  it('reads the older deployment.environment when deployment.environment.name is absent', () => {
    const { rows } = mapJsonSpans(
      traces([span()], resource({ 'service.name': 's', 'deployment.environment': 'staging' })),
    );
    expect(rows[0]!.environment).toBe('staging');
  });

  describe('errors', () => {
    it('is no error for a plain successful or 4xx span', () => {
      expect(oneRow({ attributes: [kv('http.response.status_code', 404)] })).toMatchObject({
        error: 0,
        error_type: '',
        http_status: 404,
      });
    });
    it('is an error when the span status is ERROR', () => {
      expect(oneRow({ status: 2 })).toMatchObject({ error: 1, error_type: '_OTHER' });
    });
    it('is no error when the span status is OK', () => {
      expect(oneRow({ status: 1 })).toMatchObject({ error: 0 });
    });
    it('is an error when http.response.status_code >= 500, typed by its class', () => {
      expect(oneRow({ attributes: [kv('http.response.status_code', 503)] })).toMatchObject({
        error: 1,
        error_type: '5xx',
        http_status: 503,
      });
    });
    it('reads the older http.status_code', () => {
      expect(oneRow({ attributes: [kv('http.status_code', 500)] })).toMatchObject({
        error: 1,
        http_status: 500,
      });
    });
    it('is an error when error.type is set, typed by it', () => {
      expect(
        oneRow({ attributes: [kv('error.type', 'timeout'), kv('http.response.status_code', 504)] }),
      ).toMatchObject({
        error: 1,
        error_type: 'timeout',
      });
    });
    it('is an error for an MCP tool result with isError (error.type = tool_error)', () => {
      const row = oneRow({
        attributes: [
          kv('mcp.method.name', 'tools/call'),
          kv('gen_ai.tool.name', 'f'),
          kv('error.type', 'tool_error'),
        ],
      });
      expect(row).toMatchObject({ error: 1, error_type: 'tool_error', mcp_method: 'tools/call', tool: 'f' });
    });
    it('is an error for mcp.tool.result.is_error = true', () => {
      expect(oneRow({ attributes: [kv('mcp.tool.result.is_error', true)] })).toMatchObject({
        error: 1,
        error_type: 'tool_error',
      });
      expect(oneRow({ attributes: [kv('mcp.tool.result.is_error', false)] })).toMatchObject({ error: 0 });
    });
  });

  describe('operation', () => {
    it('is the MCP method and tool name', () => {
      const row = oneRow({
        name: 'tools/call weather_forecast',
        attributes: [
          kv('mcp.method.name', 'tools/call'),
          kv('gen_ai.tool.name', 'weather_forecast'),
          kv('mcp.session.id', 'sess-1'),
          kv('http.route', '/mcp'),
        ],
      });
      expect(row).toMatchObject({
        operation: 'tools/call weather_forecast',
        mcp_method: 'tools/call',
        tool: 'weather_forecast',
        session_id: 'sess-1',
      });
    });
    it('is the MCP method alone when there is no tool', () => {
      expect(oneRow({ attributes: [kv('mcp.method.name', 'tools/list')] }).operation).toBe('tools/list');
    });
    it('uses the prompt name as the MCP target when there is no tool', () => {
      expect(
        oneRow({ attributes: [kv('mcp.method.name', 'prompts/get'), kv('gen_ai.prompt.name', 'review')] })
          .operation,
      ).toBe('prompts/get review');
    });
    it('is the HTTP method and route', () => {
      expect(
        oneRow({ attributes: [kv('http.request.method', 'POST'), kv('http.route', '/orders')] }).operation,
      ).toBe('POST /orders');
      expect(oneRow({ attributes: [kv('http.route', '/orders')] }).operation).toBe('/orders');
    });
    it('falls back to the span name', () => {
      expect(oneRow({ name: 'GET', attributes: [kv('http.request.method', 'GET')] }).operation).toBe('GET');
    });
  });

  it('truncates long attribute values instead of rejecting the span', () => {
    const long = 'x'.repeat(5000);
    expect(
      oneRow({ attributes: [kv('mcp.method.name', 'tools/call'), kv('mcp.session.id', long)] }).session_id,
    ).toHaveLength(4096);
    const { rows } = mapJsonSpans(
      traces([span({ attributes: [kv('gen_ai.tool.name', `abc😀def`), kv('mcp.method.name', 'm')] })]),
      {
        ...ctx,
        maxAttributeLength: 4,
      },
    );
    // Cut before a surrogate pair rather than through it.
    expect(rows[0]!.tool).toBe('abc');
    expect(rows[0]!.operation).toBe('m ab');
  });

  it('rejects invalid spans and says why', () => {
    const { rows, rejected, errorMessage } = mapJsonSpans(
      traces([
        { ...span(), traceId: '' },
        { ...span(), spanId: '0000000000000000' },
        { ...span(), startTimeUnixNano: '0' },
        { ...span(), endTimeUnixNano: '1' },
        { ...span(), traceId: 'abc' },
        span(),
      ]),
    );
    expect(rows).toHaveLength(1);
    expect(rejected).toBe(5);
    expect(errorMessage).toBe(
      '5 spans were rejected: span has no valid trace_id (16 bytes, not all zero) (2); ' +
        'span has no valid span_id (8 bytes, not all zero) (1); span has no valid start_time_unix_nano (1); ' +
        'span ends before it starts or has no valid end_time_unix_nano (1)',
    );
  });

  it('rejects data from another service.name when the ingest key is bound to a server', () => {
    const payload = {
      resourceSpans: [
        ...(traces([span(), span({ kind: 3 })]).resourceSpans as Json[]),
        ...(traces([span()], resource({ 'service.name': 'other' })).resourceSpans as Json[]),
        ...(traces([span()], {}).resourceSpans as Json[]),
      ],
    } as JsonObject;
    const { rows, rejected, errorMessage } = mapJsonSpans(payload, { ...ctx, serverBinding: 'weather-mcp' });
    expect(rows.map((r) => r.server)).toEqual(['weather-mcp', 'weather-mcp']);
    expect(rejected).toBe(1);
    expect(errorMessage).toBe(
      '1 span was rejected: the ingest key is bound to server "weather-mcp" but service.name is "other" (1)',
    );
  });
});

function mapJsonMetrics(payload: JsonObject, tracker = new DeltaTracker(), context: MappingContext = ctx) {
  return mapMetrics(decodeMetrics(jsonBody(payload), 'application/json'), context, tracker);
}

const iso = (nanos: bigint) => new Date(Number(nanos / 1_000_000n)).toISOString();

function sumMetric(
  name: string,
  points: { start: bigint; time: bigint; value: number }[],
  monotonic = true,
  temporality = 2,
): JsonObject {
  return {
    name,
    unit: 's',
    sum: {
      aggregationTemporality: temporality,
      isMonotonic: monotonic,
      dataPoints: points.map((p) => ({
        startTimeUnixNano: p.start.toString(),
        timeUnixNano: p.time.toString(),
        asDouble: p.value,
      })),
    },
  };
}

function histogramMetric(
  points: { start: bigint; time: bigint; count: number; sum: number; counts: number[]; bounds?: number[] }[],
  temporality = 2,
): JsonObject {
  return {
    name: 'http.server.request.duration',
    unit: 's',
    histogram: {
      aggregationTemporality: temporality,
      dataPoints: points.map((p) => ({
        startTimeUnixNano: p.start.toString(),
        timeUnixNano: p.time.toString(),
        count: String(p.count),
        sum: p.sum,
        bucketCounts: p.counts.map(String),
        explicitBounds: p.bounds ?? [0.1, 1],
        attributes: [kv('http.request.method', 'GET'), kv('http.route', '/items/{id}')],
      })),
    },
  };
}

function exponentialMetric(
  points: {
    start: bigint;
    time: bigint;
    count: number;
    scale: number;
    zero: number;
    offset: number;
    counts: number[];
    negative?: { offset: number; counts: number[] };
  }[],
  temporality = 2,
): JsonObject {
  return {
    name: 'mcp.server.operation.duration',
    unit: 's',
    exponentialHistogram: {
      aggregationTemporality: temporality,
      dataPoints: points.map((p) => ({
        startTimeUnixNano: p.start.toString(),
        timeUnixNano: p.time.toString(),
        count: String(p.count),
        sum: 1,
        scale: p.scale,
        zeroCount: String(p.zero),
        positive: { offset: p.offset, bucketCounts: p.counts.map(String) },
        negative: p.negative
          ? { offset: p.negative.offset, bucketCounts: p.negative.counts.map(String) }
          : undefined,
        attributes: [kv('mcp.method.name', 'tools/call'), kv('gen_ai.tool.name', 'forecast')],
      })) as JsonObject[],
    },
  };
}

describe('mapMetrics', () => {
  it('maps a gauge, and ignores metrics Pylee does not store', () => {
    const { rows, rejected } = mapJsonMetrics(
      metrics([
        {
          name: 'process.cpu.utilization',
          unit: '1',
          gauge: { dataPoints: [{ timeUnixNano: T0.toString(), asDouble: 0.42 }] },
        },
        { name: 'jvm.gc.duration', gauge: { dataPoints: [{ timeUnixNano: T0.toString(), asDouble: 1 }] } },
      ]),
    );
    expect(rejected).toBe(0);
    expect(rows).toEqual([
      {
        org_id: 'org-1',
        server: 'weather-mcp',
        environment: 'production',
        version: '1.4.0',
        operation: '',
        metric: 'process.cpu.utilization',
        unit: '1',
        kind: 'gauge',
        start_time: iso(T0),
        time: iso(T0),
        count: 1,
        sum: 0.42,
        value: 0.42,
        bounds: [],
        bucket_counts: [],
      },
    ]);
  });

  it('keeps a delta histogram as it is, with the operation from its attributes', () => {
    const { rows } = mapJsonMetrics(
      metrics([
        histogramMetric([{ start: T0 - 60n * S, time: T0, count: 3, sum: 0.9, counts: [1, 2, 0] }], 1),
      ]),
    );
    expect(rows[0]).toMatchObject({
      metric: 'http.server.request.duration',
      kind: 'histogram',
      operation: 'GET /items/{id}',
      start_time: iso(T0 - 60n * S),
      time: iso(T0),
      count: 3,
      sum: 0.9,
      bounds: [0.1, 1],
      bucket_counts: [1, 2, 0],
    });
  });

  it('converts an exponential histogram to explicit bounds', () => {
    const { rows } = mapJsonMetrics(
      metrics([
        exponentialMetric(
          [{ start: T0 - S, time: T0, count: 10, scale: 0, zero: 4, offset: -1, counts: [1, 2, 3] }],
          1,
        ),
      ]),
    );
    expect(rows[0]).toMatchObject({
      operation: 'tools/call forecast',
      kind: 'histogram',
      count: 10,
      bounds: [0, 1, 2, 4],
      bucket_counts: [4, 1, 2, 3, 0],
    });
  });

  it('computes exact exponential bounds for positive, negative and fractional scales', () => {
    expect(
      exponentialToExplicit({
        scale: 1,
        zeroCount: 0,
        positive: { offset: 2, bucketCounts: [5, 6] },
        negative: { offset: 0, bucketCounts: [] },
      }),
    ).toEqual({
      bounds: [0, 2 ** 1.5, 2 ** 2],
      bucketCounts: [0, 5, 6, 0],
    });
    expect(
      exponentialToExplicit({
        scale: -1,
        zeroCount: 1,
        positive: { offset: 0, bucketCounts: [1] },
        negative: { offset: 1, bucketCounts: [2, 3] },
      }),
    ).toEqual({
      bounds: [-16, -4, 0, 4],
      bucketCounts: [3, 2, 1, 1, 0],
    });
    expect(
      exponentialToExplicit({
        scale: 3,
        zeroCount: 0,
        positive: { offset: 7, bucketCounts: [1, 1] },
        negative: { offset: 0, bucketCounts: [] },
      }).bounds,
    ).toEqual([0, 2, 2 ** (9 / 8)]);
  });

  it('turns a cumulative sum into deltas and treats a new start time as a reset', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    const first = mapJsonMetrics(
      metrics([sumMetric('process.cpu.time', [{ start, time: T0, value: 10 }])]),
      tracker,
    );
    const second = mapJsonMetrics(
      metrics([sumMetric('process.cpu.time', [{ start, time: T0 + 60n * S, value: 15.5 }])]),
      tracker,
    );
    const restart = T0 + 100n * S;
    const third = mapJsonMetrics(
      metrics([sumMetric('process.cpu.time', [{ start: restart, time: restart + 10n * S, value: 3 }])]),
      tracker,
    );
    expect(
      [first, second, third].map((r) => r.rows.map((row) => [row.kind, row.value, row.start_time, row.time])),
    ).toEqual([
      [['sum', 10, iso(start), iso(T0)]],
      [['sum', 5.5, iso(T0), iso(T0 + 60n * S)]],
      [['sum', 3, iso(restart), iso(restart + 10n * S)]],
    ]);
  });

  it('treats a decreasing cumulative value as a reset and skips a repeated point', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    const values = (points: { time: bigint; value: number }[]) =>
      mapJsonMetrics(
        metrics([
          sumMetric(
            'process.cpu.time',
            points.map((p) => ({ start, ...p })),
          ),
        ]),
        tracker,
      ).rows.map((r) => r.value);
    expect(
      values([
        { time: T0, value: 10 },
        { time: T0 + S, value: 12 },
      ]),
    ).toEqual([10, 2]);
    expect(values([{ time: T0 + S, value: 12 }])).toEqual([]); // a retried export
    expect(values([{ time: T0 + 2n * S, value: 4 }])).toEqual([4]);
  });

  it('diffs a refused request again when it is rolled back', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    mapJsonMetrics(metrics([sumMetric('process.cpu.time', [{ start, time: T0, value: 10 }])]), tracker);
    const request = decodeMetrics(
      jsonBody(metrics([sumMetric('process.cpu.time', [{ start, time: T0 + S, value: 14 }])])),
      'application/json',
    );
    const refused = mapMetrics(request, ctx, tracker);
    expect(refused.rows[0]!.value).toBe(4);
    refused.rollback(); // the sink refused the rows; the exporter retries
    expect(mapMetrics(request, ctx, tracker).rows[0]!.value).toBe(4);
    expect(mapMetrics(request, ctx, tracker).rows).toEqual([]);
  });

  it('chains concurrent requests for one series instead of counting an increase twice', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    const request = (time: bigint, value: number) =>
      decodeMetrics(
        jsonBody(metrics([sumMetric('process.cpu.time', [{ start, time, value }])])),
        'application/json',
      );
    mapMetrics(request(T0, 10), ctx, tracker);
    // Both mapped before either is stored.
    const a = mapMetrics(request(T0 + S, 14), ctx, tracker);
    const b = mapMetrics(request(T0 + 2n * S, 20), ctx, tracker);
    expect([a.rows[0]!.value, b.rows[0]!.value]).toEqual([4, 6]);
    // A refused while B was stored: rolling A back must not undo B.
    a.rollback();
    expect(mapMetrics(request(T0 + 3n * S, 21), ctx, tracker).rows[0]!.value).toBe(1);
  });

  it('keeps cumulative series apart by resource and point attributes', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    const withMode = (mode: string, value: number, time: bigint): JsonObject => ({
      ...sumMetric('process.cpu.time', []),
      sum: {
        aggregationTemporality: 2,
        isMonotonic: true,
        dataPoints: [
          {
            startTimeUnixNano: start.toString(),
            timeUnixNano: time.toString(),
            asDouble: value,
            attributes: [kv('cpu.mode', mode)],
          },
        ],
      },
    });
    mapJsonMetrics(metrics([withMode('user', 10, T0), withMode('system', 4, T0)]), tracker);
    const next = mapJsonMetrics(
      metrics([withMode('user', 11, T0 + S), withMode('system', 6, T0 + S)]),
      tracker,
    );
    expect(next.rows.map((r) => r.value)).toEqual([1, 2]);
    const otherHost = mapJsonMetrics(
      metrics([withMode('user', 50, T0 + S)], resource({ 'service.name': 'weather-mcp', 'host.name': 'b' })),
      tracker,
    );
    expect(otherHost.rows.map((r) => r.value)).toEqual([50]);
  });

  it('stores a cumulative up-down counter (process.memory.usage) as a gauge of its level', () => {
    const { rows } = mapJsonMetrics(
      metrics([sumMetric('process.memory.usage', [{ start: T0 - S, time: T0, value: 1_048_576 }], false)]),
    );
    expect(rows[0]).toMatchObject({ kind: 'gauge', value: 1_048_576 });
  });

  it('turns a cumulative histogram into deltas and detects a counter reset', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    const run = (p: { time: bigint; count: number; sum: number; counts: number[] }) =>
      mapJsonMetrics(metrics([histogramMetric([{ start, ...p }])]), tracker).rows.map((r) => [
        r.count,
        r.sum,
        r.bucket_counts,
        r.start_time,
      ]);
    expect(run({ time: T0, count: 3, sum: 1.5, counts: [1, 2, 0] })).toEqual([
      [3, 1.5, [1, 2, 0], iso(start)],
    ]);
    expect(run({ time: T0 + S, count: 7, sum: 4, counts: [2, 4, 1] })).toEqual([
      [4, 2.5, [1, 2, 1], iso(T0)],
    ]);
    // Same start time but fewer observations: the process restarted without a new start time.
    expect(run({ time: T0 + 2n * S, count: 2, sum: 0.5, counts: [0, 2, 0] })).toEqual([
      [2, 0.5, [0, 2, 0], iso(start)],
    ]);
  });

  it('diffs cumulative exponential histograms across a scale change', () => {
    const tracker = new DeltaTracker();
    const start = T0 - 100n * S;
    const run = (p: {
      time: bigint;
      count: number;
      scale: number;
      zero: number;
      offset: number;
      counts: number[];
    }) =>
      mapJsonMetrics(metrics([exponentialMetric([{ start, ...p }])]), tracker).rows.map((r) => [
        r.count,
        r.bounds,
        r.bucket_counts,
      ]);
    // scale 1: buckets (1, √2], (√2, 2], (2, 2√2], (2√2, 4]
    expect(run({ time: T0, count: 4, scale: 1, zero: 0, offset: 0, counts: [1, 1, 1, 1] })).toEqual([
      [4, [0, 2 ** 0.5, 2, 2 ** 1.5, 4], [0, 1, 1, 1, 1, 0]],
    ]);
    // scale 0: buckets (1, 2], (2, 4], (4, 8] — the earlier counts merge into the first two.
    expect(run({ time: T0 + S, count: 9, scale: 0, zero: 1, offset: 0, counts: [3, 2, 3] })).toEqual([
      [5, [0, 2, 4, 8], [1, 1, 0, 3, 0]],
    ]);
  });

  it('downscales exponential buckets by merging neighbours', () => {
    expect(downscale({ offset: -3, bucketCounts: [1, 2, 3, 4, 5] }, 1)).toEqual({
      offset: -2,
      bucketCounts: [1, 5, 9],
    });
    expect(downscale({ offset: 1, bucketCounts: [1, 1, 1, 1] }, 2)).toEqual({
      offset: 0,
      bucketCounts: [3, 1],
    });
  });

  it('bounds the number of tracked series, counting an evicted series in full again', () => {
    const tracker = new DeltaTracker({ maxSeries: 2 });
    const start = T0 - 100n * S;
    const point = (name: string, time: bigint, value: number) =>
      mapJsonMetrics(metrics([sumMetric(name, [{ start, time, value }])]), tracker).rows.map((r) => r.value);
    // METRIC_NAMES has only one monotonic sum, so series differ by resource here.
    const at = (host: string, time: bigint, value: number) =>
      mapJsonMetrics(
        metrics(
          [sumMetric('process.cpu.time', [{ start, time, value }])],
          resource({ 'service.name': 's', 'host.name': host }),
        ),
        tracker,
      ).rows.map((r) => r.value);
    expect(point('process.cpu.time', T0, 1)).toEqual([1]);
    at('a', T0, 5);
    at('b', T0, 7);
    expect(tracker.size).toBe(2);
    expect(point('process.cpu.time', T0 + S, 3)).toEqual([3]);
    expect(at('b', T0 + S, 8)).toEqual([1]);
  });

  it('ends the session an mcp.server.session.duration point names, once, with its user hashed', () => {
    const hashed: MappingContext = { orgId: 'org-1', maxAttributeLength: 8, clientKey: (k) => `h(${k})` };
    const point = (time: bigint, count: number, attributes: JsonObject[]) => ({
      startTimeUnixNano: (T0 - 60n * S).toString(),
      timeUnixNano: time.toString(),
      count: String(count),
      sum: count * 30,
      bucketCounts: [String(count)],
      explicitBounds: [],
      attributes,
    });
    const session = (time: bigint, count: number) =>
      metrics([
        {
          name: 'mcp.server.session.duration',
          unit: 's',
          histogram: {
            aggregationTemporality: 2,
            dataPoints: [
              point(time, count, [
                kv('mcp.session.id', 'session-long-id'),
                kv('enduser.id', 'alice-long-id'),
              ]),
              point(time, count, [
                kv('mcp.session.id', 's2'),
                kv('client.address', '10.0.0.1'),
                kv('error.type', 'timeout'),
              ]),
              point(time, count, [kv('mcp.protocol.version', '2025-06-18')]),
            ],
          },
        },
        // The conventions define a histogram: another form names no end.
        {
          name: 'mcp.server.session.duration',
          gauge: {
            dataPoints: [
              { timeUnixNano: T0.toString(), asDouble: 3, attributes: [kv('mcp.session.id', 's3')] },
            ],
          },
        },
      ]);
    const tracker = new DeltaTracker();
    const first = mapJsonMetrics(session(T0, 1), tracker, hashed);
    expect(first.rows).toHaveLength(4);
    const end = {
      org_id: 'org-1',
      server: 'weather-',
      environment: 'producti',
      version: '1.4.0',
      time: iso(T0),
      event: 'end',
      source: 'otlp',
    };
    expect(first.sessionEnds).toEqual([
      // The id truncated as on spans, so both rows are one session; the user hashed whole.
      { ...end, session_id: 'session-', reason: 'otlp-ended', client_key: 'h(user:alice-long-id)' },
      { ...end, session_id: 's2', reason: 'upstream-failure', client_key: 'h(addr:10.0.0.1)' },
    ]);
    // A cumulative exporter's next export of the same points: nothing more ended.
    const again = mapJsonMetrics(session(T0 + S, 1), tracker, hashed);
    expect(again.rows.filter((r) => r.kind === 'histogram').map((r) => r.count)).toEqual([0, 0, 0]);
    expect(again.sessionEnds).toEqual([]);
    // Without a hash function nothing identifies the user: client_key stays ''.
    const anonymous = mapJsonMetrics(session(T0, 1), new DeltaTracker());
    expect(anonymous.sessionEnds.map((e) => [e.session_id, e.client_key])).toEqual([
      ['session-long-id', ''],
      ['s2', ''],
    ]);
  });

  it('skips points flagged as having no recorded value', () => {
    const payload = metrics([
      { name: 'process.cpu.utilization', gauge: { dataPoints: [{ timeUnixNano: T0.toString(), flags: 1 }] } },
    ]);
    expect(mapJsonMetrics(payload)).toMatchObject({ rows: [], rejected: 0 });
  });

  it('rejects invalid points and says why', () => {
    const { rows, rejected, errorMessage } = mapJsonMetrics(
      metrics([
        {
          name: 'process.cpu.utilization',
          gauge: { dataPoints: [{ timeUnixNano: '0', asDouble: 1 }, { timeUnixNano: T0.toString() }] },
        },
        histogramMetric([{ start: T0 - S, time: T0, count: 1, sum: 1, counts: [1, 0] }], 1),
        histogramMetric(
          [{ start: T0 - S, time: T0, count: 1, sum: 1, counts: [1, 0, 0], bounds: [1, 1] }],
          1,
        ),
        exponentialMetric(
          [{ start: T0 - S, time: T0, count: 1, scale: 21, zero: 0, offset: 0, counts: [1] }],
          1,
        ),
        sumMetric('process.cpu.time', [{ start: T0 - S, time: T0, value: 1 }], true, 0),
      ]),
    );
    expect(rows).toEqual([]);
    expect(rejected).toBe(6);
    expect(errorMessage).toContain(
      '6 data points were rejected: process.cpu.utilization: data point has no valid time_unix_nano (1)',
    );
    expect(errorMessage).toContain(
      'http.server.request.duration: histogram bucket_counts must have one more entry than explicit_bounds (1)',
    );
    expect(errorMessage).toContain('explicit_bounds are not finite and strictly increasing');
    expect(errorMessage).toContain('scale 21 is outside -10..20');
    expect(errorMessage).toContain('process.cpu.time: sum has no aggregation_temporality (1)');
  });

  it('rejects every point of a resource whose service.name differs from the key binding', () => {
    const payload = metrics(
      [
        {
          name: 'process.cpu.utilization',
          gauge: { dataPoints: [{ timeUnixNano: T0.toString(), asDouble: 1 }] },
        },
        { name: 'other.metric', gauge: { dataPoints: [{ timeUnixNano: T0.toString(), asDouble: 1 }] } },
      ],
      resource({ 'service.name': 'intruder' }),
    );
    const result = mapJsonMetrics(payload, new DeltaTracker(), { ...ctx, serverBinding: 'weather-mcp' });
    expect(result).toMatchObject({ rows: [], rejected: 2 });
    expect(result.errorMessage).toContain('bound to server "weather-mcp"');
  });
});
