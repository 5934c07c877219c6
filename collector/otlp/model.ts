/**
 * The normalized shape both OTLP encodings decode to (see `decode.ts`): trace and span ids as
 * lowercase hex strings (`''` when absent or not hex), every 64-bit integer (times, counts,
 * `intValue`, `asInt`) as a `bigint`, doubles as numbers, enums as numbers, attributes as `Map`s
 * (so no attribute key can reach an object prototype).
 */

export type AnyValue =
  string | boolean | number | bigint | Uint8Array | null | readonly AnyValue[] | Attributes;

/** Attribute key → value. A `Map`, never a plain object: keys such as `__proto__` stay data. */
export type Attributes = Map<string, AnyValue>;

export interface Resource {
  attributes: Attributes;
}

export interface InstrumentationScope {
  name: string;
  version: string;
  attributes: Attributes;
}

export const SpanKind = {
  UNSPECIFIED: 0,
  INTERNAL: 1,
  SERVER: 2,
  CLIENT: 3,
  PRODUCER: 4,
  CONSUMER: 5,
} as const;

export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export const AggregationTemporality = { UNSPECIFIED: 0, DELTA: 1, CUMULATIVE: 2 } as const;

export interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Attributes;
  status: { code: number; message: string };
}

export interface ScopeSpans {
  scope: InstrumentationScope;
  spans: Span[];
}

export interface ResourceSpans {
  resource: Resource;
  scopeSpans: ScopeSpans[];
}

/** A decoded `ExportTraceServiceRequest`. */
export interface TracesRequest {
  resourceSpans: ResourceSpans[];
}

export interface DataPointBase {
  attributes: Attributes;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  flags: number;
}

export interface NumberDataPoint extends DataPointBase {
  /** `asDouble` as a number, `asInt` as a bigint; undefined when the point carries neither. */
  value: number | bigint | undefined;
}

export interface HistogramDataPoint extends DataPointBase {
  count: bigint;
  sum: number | undefined;
  bucketCounts: bigint[];
  explicitBounds: number[];
}

export interface ExponentialBuckets {
  offset: number;
  bucketCounts: bigint[];
}

export interface ExponentialHistogramDataPoint extends DataPointBase {
  count: bigint;
  sum: number | undefined;
  scale: number;
  zeroCount: bigint;
  positive: ExponentialBuckets;
  negative: ExponentialBuckets;
}

export type MetricData =
  | { type: 'gauge'; dataPoints: NumberDataPoint[] }
  | { type: 'sum'; aggregationTemporality: number; isMonotonic: boolean; dataPoints: NumberDataPoint[] }
  | { type: 'histogram'; aggregationTemporality: number; dataPoints: HistogramDataPoint[] }
  | {
      type: 'exponentialHistogram';
      aggregationTemporality: number;
      dataPoints: ExponentialHistogramDataPoint[];
    }
  /** A summary (or a metric without data): counted, never mapped. */
  | { type: 'other'; dataPointCount: number };

export interface Metric {
  name: string;
  description: string;
  unit: string;
  data: MetricData;
}

export interface ScopeMetrics {
  scope: InstrumentationScope;
  metrics: Metric[];
}

export interface ResourceMetrics {
  resource: Resource;
  scopeMetrics: ScopeMetrics[];
}

/** A decoded `ExportMetricsServiceRequest`. */
export interface MetricsRequest {
  resourceMetrics: ResourceMetrics[];
}

/** Attribute values nested deeper than this (arrays in arrays, maps in maps) are cut to null. */
export const MAX_VALUE_DEPTH = 16;
