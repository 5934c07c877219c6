import { BadRequestError } from '#core/errors.ts';
import {
  MAX_VALUE_DEPTH,
  type AnyValue,
  type Attributes,
  type DataPointBase,
  type ExponentialBuckets,
  type InstrumentationScope,
  type Metric,
  type MetricData,
  type MetricsRequest,
  type NumberDataPoint,
  type Resource,
  type Span,
  type TracesRequest,
} from './model.ts';
import { ExportMetricsServiceRequest, ExportTraceServiceRequest, TO_OBJECT_OPTIONS } from './protobuf.ts';
import { decodeMetricsWire, decodeTracesWire } from './wire.ts';

export * from './model.ts';

/**
 * Decoding of OTLP export requests (protobuf and JSON) into one normalized shape.
 *
 * Both encodings end in the same plain objects: trace and span ids as lowercase hex strings (`''`
 * when absent or not hex), every 64-bit integer (times, counts, `intValue`, `asInt`) as a
 * `bigint`, doubles as numbers, enums as numbers, attributes as `Map`s (so no attribute key can
 * reach an object prototype). Fields Pylee does not use (span events and links, exemplars,
 * summaries' quantiles, metric metadata) are skipped, as the specification asks receivers to do
 * with fields they do not know.
 *
 * Protobuf bodies are decoded by the wire decoder (`wire.ts`), which returns exactly what the full
 * path here (protobufjs `decode` + `toObject` + the reader below) returns, several times faster;
 * a body it does not handle exactly like protobufjs (malformed or unusual) takes the full path.
 *
 * JSON follows the OTLP JSON mapping: ids are hex, 64-bit integers are decimal strings or numbers,
 * and enums are integers. Being lenient where the Protobuf JSON mapping (which OTLP/JSON builds on)
 * is, enum value names (`"SPAN_KIND_SERVER"`) and snake_case field names (`trace_id`) are accepted
 * as well, and doubles may be the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
 */

/** The two OTLP/HTTP encodings. */
export type OtlpEncoding = 'protobuf' | 'json';

/** Returns the OTLP encoding for a Content-Type header value, or undefined when it is neither. */
export function encodingOf(contentType: string | undefined): OtlpEncoding | undefined {
  const mediaType = (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType === 'application/x-protobuf') return 'protobuf';
  if (mediaType === 'application/json') return 'json';
  return undefined;
}

export interface DecodeOptions {
  /** False decodes protobuf with protobufjs only (the reference the wire decoder is tested against). @defaultValue true */
  wire?: boolean;
}

/**
 * Decodes an `ExportTraceServiceRequest` body.
 * @throws BadRequestError (`invalid-otlp`) naming the problem when the body is malformed.
 */
export function decodeTraces(body: Buffer, contentType: string, options: DecodeOptions = {}): TracesRequest {
  const encoding = requireEncoding(contentType);
  if (encoding === 'protobuf' && options.wire !== false && Buffer.isBuffer(body)) {
    try {
      return decodeTracesWire(body);
    } catch {
      // Not for the wire decoder (malformed, or unusual): the full path accepts it or says why not.
    }
  }
  const raw = parse(body, encoding, 'traces');
  const r = new Reader(encoding);
  return {
    resourceSpans: r.list(r.field(raw, 'resourceSpans'), 'resourceSpans', (rs, path) => ({
      resource: r.resource(r.field(rs, 'resource'), `${path}.resource`),
      scopeSpans: r.list(r.field(rs, 'scopeSpans'), `${path}.scopeSpans`, (ss, sPath) => ({
        scope: r.scope(r.field(ss, 'scope'), `${sPath}.scope`),
        spans: r.list(r.field(ss, 'spans'), `${sPath}.spans`, (span, p) => r.span(span, p)),
      })),
    })),
  };
}

/**
 * Decodes an `ExportMetricsServiceRequest` body.
 * @throws BadRequestError (`invalid-otlp`) naming the problem when the body is malformed.
 */
export function decodeMetrics(
  body: Buffer,
  contentType: string,
  options: DecodeOptions = {},
): MetricsRequest {
  const encoding = requireEncoding(contentType);
  if (encoding === 'protobuf' && options.wire !== false && Buffer.isBuffer(body)) {
    try {
      return decodeMetricsWire(body);
    } catch {
      // As for traces: the full path decides.
    }
  }
  const raw = parse(body, encoding, 'metrics');
  const r = new Reader(encoding);
  return {
    resourceMetrics: r.list(r.field(raw, 'resourceMetrics'), 'resourceMetrics', (rm, path) => ({
      resource: r.resource(r.field(rm, 'resource'), `${path}.resource`),
      scopeMetrics: r.list(r.field(rm, 'scopeMetrics'), `${path}.scopeMetrics`, (sm, sPath) => ({
        scope: r.scope(r.field(sm, 'scope'), `${sPath}.scope`),
        metrics: r.list(r.field(sm, 'metrics'), `${sPath}.metrics`, (m, p) => r.metric(m, p)),
      })),
    })),
  };
}

function invalid(message: string): BadRequestError {
  return new BadRequestError(message, 'invalid-otlp');
}

function requireEncoding(contentType: string): OtlpEncoding {
  const encoding = encodingOf(contentType);
  if (!encoding) {
    throw invalid(
      `content type ${contentType} is not an OTLP encoding; send application/x-protobuf or application/json`,
    );
  }
  return encoding;
}

function parse(body: Buffer, encoding: OtlpEncoding, signal: 'traces' | 'metrics'): Record<string, unknown> {
  if (encoding === 'protobuf') {
    const type = signal === 'traces' ? ExportTraceServiceRequest : ExportMetricsServiceRequest;
    try {
      return type.toObject(type.decode(body), TO_OBJECT_OPTIONS);
    } catch (error) {
      const why =
        error instanceof RangeError && /call stack/i.test(error.message)
          ? 'nested too deeply'
          : (error as Error).message;
      throw invalid(`the body is not a valid protobuf ${type.name}: ${why}`);
    }
  }
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(`the body is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) {
    const type = signal === 'traces' ? 'ExportTraceServiceRequest' : 'ExportMetricsServiceRequest';
    throw invalid(`the body must be a JSON object (an OTLP ${type}), not ${describe(value)}`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

const SPAN_KIND_NAMES: Record<string, number> = {
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
};
const STATUS_CODE_NAMES: Record<string, number> = {
  STATUS_CODE_UNSET: 0,
  STATUS_CODE_OK: 1,
  STATUS_CODE_ERROR: 2,
};
const TEMPORALITY_NAMES: Record<string, number> = {
  AGGREGATION_TEMPORALITY_UNSPECIFIED: 0,
  AGGREGATION_TEMPORALITY_DELTA: 1,
  AGGREGATION_TEMPORALITY_CUMULATIVE: 2,
};

const INT_STRING = /^-?\d{1,20}$/;
const HEX = /^[0-9a-fA-F]*$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const EMPTY: Record<string, unknown> = Object.freeze(Object.create(null) as Record<string, unknown>);

/**
 * Reads the raw tree (JSON.parse output, or protobufjs `toObject` output) field by field. Only own
 * properties with known names are read, so inherited or hostile keys (`__proto__`, `constructor`)
 * are never followed.
 */
class Reader {
  readonly encoding: OtlpEncoding;

  constructor(encoding: OtlpEncoding) {
    this.encoding = encoding;
  }

  field(o: Record<string, unknown>, name: string): unknown {
    if (Object.hasOwn(o, name)) return o[name];
    if (this.encoding === 'json') {
      const snake = snakeCase(name);
      if (snake !== name && Object.hasOwn(o, snake)) return o[snake];
    }
    return undefined;
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (value === undefined || value === null) return EMPTY;
    if (!isObject(value)) throw invalid(`${path} must be an object, not ${describe(value)}`);
    return value;
  }

  list<T>(value: unknown, path: string, item: (o: Record<string, unknown>, path: string) => T): T[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw invalid(`${path} must be an array, not ${describe(value)}`);
    const out: T[] = new Array<T>(value.length);
    for (let i = 0; i < value.length; i++) {
      const p = `${path}[${i}]`;
      const element: unknown = value[i];
      if (!isObject(element)) throw invalid(`${p} must be an object, not ${describe(element)}`);
      out[i] = item(element, p);
    }
    return out;
  }

  string(value: unknown, path: string): string {
    if (value === undefined || value === null) return '';
    if (typeof value !== 'string') throw invalid(`${path} must be a string, not ${describe(value)}`);
    return value;
  }

  boolean(value: unknown, path: string): boolean {
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') throw invalid(`${path} must be true or false, not ${describe(value)}`);
    return value;
  }

  /** int64, uint64, fixed64, sfixed64: a decimal string or an integer number. */
  int64(value: unknown, path: string, unsigned: boolean): bigint {
    if (value === undefined || value === null) return 0n;
    let n: bigint;
    if (typeof value === 'string' && INT_STRING.test(value)) n = BigInt(value);
    else if (typeof value === 'number' && Number.isInteger(value)) n = BigInt(value);
    else
      throw invalid(
        `${path} must be a 64-bit integer (a decimal string or an integer), not ${describe(value)}`,
      );
    if (unsigned ? n < 0n || n > UINT64_MAX : n < INT64_MIN || n > INT64_MAX) {
      throw invalid(`${path} is out of range for a ${unsigned ? 'uint64' : 'int64'}: ${n}`);
    }
    return n;
  }

  /** int32, sint32, uint32, fixed32: an integer number (or a decimal string, as the Protobuf JSON mapping allows). */
  int32(value: unknown, path: string, unsigned: boolean): number {
    if (value === undefined || value === null) return 0;
    const n = typeof value === 'string' && INT_STRING.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      throw invalid(`${path} must be a 32-bit integer, not ${describe(value)}`);
    }
    if (unsigned ? n < 0 || n > 0xffffffff : n < -0x80000000 || n > 0x7fffffff) {
      throw invalid(`${path} is out of range for a ${unsigned ? 'uint32' : 'int32'}: ${n}`);
    }
    return n;
  }

  double(value: unknown, path: string): number {
    if (typeof value === 'number') return value;
    if (typeof value === 'string') {
      if (value === 'NaN') return Number.NaN;
      if (value === 'Infinity') return Number.POSITIVE_INFINITY;
      if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
      const n = value.trim() === '' ? Number.NaN : Number(value);
      if (Number.isFinite(n)) return n;
    }
    throw invalid(`${path} must be a number, not ${describe(value)}`);
  }

  optionalDouble(value: unknown, path: string): number | undefined {
    return value === undefined || value === null ? undefined : this.double(value, path);
  }

  enum(value: unknown, path: string, names: Record<string, number>): number {
    if (value === undefined || value === null) return 0;
    if (typeof value === 'string' && !INT_STRING.test(value)) {
      if (Object.hasOwn(names, value)) return names[value]!;
      throw invalid(
        `${path} has an unknown value ${JSON.stringify(value.slice(0, 64))}; send the enum's integer`,
      );
    }
    return this.int32(value, path, false);
  }

  /** Trace and span ids: bytes on the wire, hex strings in OTLP/JSON. Anything else becomes ''. */
  id(value: unknown, path: string): string {
    if (value === undefined || value === null) return '';
    if (this.encoding === 'protobuf') {
      return value instanceof Uint8Array
        ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')
        : '';
    }
    if (typeof value !== 'string') throw invalid(`${path} must be a hex string, not ${describe(value)}`);
    return HEX.test(value) ? value.toLowerCase() : '';
  }

  bytes(value: unknown, path: string): Uint8Array {
    if (value instanceof Uint8Array) return value;
    if (typeof value === 'string') return Buffer.from(value, 'base64');
    throw invalid(`${path} must be base64 bytes, not ${describe(value)}`);
  }

  attributes(value: unknown, path: string, depth = 0): Attributes {
    const out: Attributes = new Map();
    if (value === undefined || value === null) return out;
    if (!Array.isArray(value))
      throw invalid(`${path} must be an array of key-value pairs, not ${describe(value)}`);
    for (let i = 0; i < value.length; i++) {
      const p = `${path}[${i}]`;
      const kv: unknown = value[i];
      if (!isObject(kv)) throw invalid(`${p} must be a key-value object, not ${describe(kv)}`);
      out.set(
        this.string(this.field(kv, 'key'), `${p}.key`),
        this.anyValue(this.field(kv, 'value'), `${p}.value`, depth),
      );
    }
    return out;
  }

  anyValue(value: unknown, path: string, depth: number): AnyValue {
    const o = this.object(value, path);
    if (depth >= MAX_VALUE_DEPTH) return null;
    let v: unknown;
    if ((v = this.field(o, 'stringValue')) !== undefined && v !== null)
      return this.string(v, `${path}.stringValue`);
    if ((v = this.field(o, 'boolValue')) !== undefined && v !== null)
      return this.boolean(v, `${path}.boolValue`);
    if ((v = this.field(o, 'intValue')) !== undefined && v !== null)
      return this.int64(v, `${path}.intValue`, false);
    if ((v = this.field(o, 'doubleValue')) !== undefined && v !== null)
      return this.double(v, `${path}.doubleValue`);
    if ((v = this.field(o, 'bytesValue')) !== undefined && v !== null)
      return this.bytes(v, `${path}.bytesValue`);
    if ((v = this.field(o, 'arrayValue')) !== undefined && v !== null) {
      const p = `${path}.arrayValue.values`;
      const values = this.field(this.object(v, `${path}.arrayValue`), 'values');
      if (values === undefined || values === null) return [];
      if (!Array.isArray(values)) throw invalid(`${p} must be an array, not ${describe(values)}`);
      return values.map((item: unknown, i) => this.anyValue(item, `${p}[${i}]`, depth + 1));
    }
    if ((v = this.field(o, 'kvlistValue')) !== undefined && v !== null) {
      const values = this.field(this.object(v, `${path}.kvlistValue`), 'values');
      return this.attributes(values, `${path}.kvlistValue.values`, depth + 1);
    }
    return null;
  }

  resource(value: unknown, path: string): Resource {
    const o = this.object(value, path);
    return { attributes: this.attributes(this.field(o, 'attributes'), `${path}.attributes`) };
  }

  scope(value: unknown, path: string): InstrumentationScope {
    const o = this.object(value, path);
    return {
      name: this.string(this.field(o, 'name'), `${path}.name`),
      version: this.string(this.field(o, 'version'), `${path}.version`),
      attributes: this.attributes(this.field(o, 'attributes'), `${path}.attributes`),
    };
  }

  span(o: Record<string, unknown>, path: string): Span {
    const status = this.object(this.field(o, 'status'), `${path}.status`);
    return {
      traceId: this.id(this.field(o, 'traceId'), `${path}.traceId`),
      spanId: this.id(this.field(o, 'spanId'), `${path}.spanId`),
      parentSpanId: this.id(this.field(o, 'parentSpanId'), `${path}.parentSpanId`),
      name: this.string(this.field(o, 'name'), `${path}.name`),
      kind: this.enum(this.field(o, 'kind'), `${path}.kind`, SPAN_KIND_NAMES),
      startTimeUnixNano: this.int64(this.field(o, 'startTimeUnixNano'), `${path}.startTimeUnixNano`, true),
      endTimeUnixNano: this.int64(this.field(o, 'endTimeUnixNano'), `${path}.endTimeUnixNano`, true),
      attributes: this.attributes(this.field(o, 'attributes'), `${path}.attributes`),
      status: {
        code: this.enum(this.field(status, 'code'), `${path}.status.code`, STATUS_CODE_NAMES),
        message: this.string(this.field(status, 'message'), `${path}.status.message`),
      },
    };
  }

  metric(o: Record<string, unknown>, path: string): Metric {
    return {
      name: this.string(this.field(o, 'name'), `${path}.name`),
      description: this.string(this.field(o, 'description'), `${path}.description`),
      unit: this.string(this.field(o, 'unit'), `${path}.unit`),
      data: this.metricData(o, path),
    };
  }

  private metricData(o: Record<string, unknown>, path: string): MetricData {
    let v: unknown;
    if ((v = this.field(o, 'gauge')) !== undefined && v !== null) {
      const g = this.object(v, `${path}.gauge`);
      return { type: 'gauge', dataPoints: this.numberPoints(g, `${path}.gauge`) };
    }
    if ((v = this.field(o, 'sum')) !== undefined && v !== null) {
      const s = this.object(v, `${path}.sum`);
      return {
        type: 'sum',
        aggregationTemporality: this.temporality(s, `${path}.sum`),
        isMonotonic: this.boolean(this.field(s, 'isMonotonic'), `${path}.sum.isMonotonic`),
        dataPoints: this.numberPoints(s, `${path}.sum`),
      };
    }
    if ((v = this.field(o, 'histogram')) !== undefined && v !== null) {
      const h = this.object(v, `${path}.histogram`);
      return {
        type: 'histogram',
        aggregationTemporality: this.temporality(h, `${path}.histogram`),
        dataPoints: this.list(this.field(h, 'dataPoints'), `${path}.histogram.dataPoints`, (p, pPath) => ({
          ...this.pointBase(p, pPath),
          count: this.int64(this.field(p, 'count'), `${pPath}.count`, true),
          sum: this.optionalDouble(this.field(p, 'sum'), `${pPath}.sum`),
          bucketCounts: this.int64s(this.field(p, 'bucketCounts'), `${pPath}.bucketCounts`),
          explicitBounds: this.doubles(this.field(p, 'explicitBounds'), `${pPath}.explicitBounds`),
        })),
      };
    }
    if ((v = this.field(o, 'exponentialHistogram')) !== undefined && v !== null) {
      const e = this.object(v, `${path}.exponentialHistogram`);
      return {
        type: 'exponentialHistogram',
        aggregationTemporality: this.temporality(e, `${path}.exponentialHistogram`),
        dataPoints: this.list(
          this.field(e, 'dataPoints'),
          `${path}.exponentialHistogram.dataPoints`,
          (p, pPath) => ({
            ...this.pointBase(p, pPath),
            count: this.int64(this.field(p, 'count'), `${pPath}.count`, true),
            sum: this.optionalDouble(this.field(p, 'sum'), `${pPath}.sum`),
            scale: this.int32(this.field(p, 'scale'), `${pPath}.scale`, false),
            zeroCount: this.int64(this.field(p, 'zeroCount'), `${pPath}.zeroCount`, true),
            positive: this.buckets(this.field(p, 'positive'), `${pPath}.positive`),
            negative: this.buckets(this.field(p, 'negative'), `${pPath}.negative`),
          }),
        ),
      };
    }
    if ((v = this.field(o, 'summary')) !== undefined && v !== null) {
      const points = this.field(this.object(v, `${path}.summary`), 'dataPoints');
      return { type: 'other', dataPointCount: Array.isArray(points) ? points.length : 0 };
    }
    return { type: 'other', dataPointCount: 0 };
  }

  private temporality(o: Record<string, unknown>, path: string): number {
    return this.enum(
      this.field(o, 'aggregationTemporality'),
      `${path}.aggregationTemporality`,
      TEMPORALITY_NAMES,
    );
  }

  private pointBase(p: Record<string, unknown>, path: string): DataPointBase {
    return {
      attributes: this.attributes(this.field(p, 'attributes'), `${path}.attributes`),
      startTimeUnixNano: this.int64(this.field(p, 'startTimeUnixNano'), `${path}.startTimeUnixNano`, true),
      timeUnixNano: this.int64(this.field(p, 'timeUnixNano'), `${path}.timeUnixNano`, true),
      flags: this.int32(this.field(p, 'flags'), `${path}.flags`, true),
    };
  }

  private numberPoints(o: Record<string, unknown>, path: string): NumberDataPoint[] {
    return this.list(this.field(o, 'dataPoints'), `${path}.dataPoints`, (p, pPath) => {
      const asDouble = this.field(p, 'asDouble');
      const asInt = this.field(p, 'asInt');
      let value: number | bigint | undefined;
      if (asDouble !== undefined && asDouble !== null) value = this.double(asDouble, `${pPath}.asDouble`);
      else if (asInt !== undefined && asInt !== null) value = this.int64(asInt, `${pPath}.asInt`, false);
      return { ...this.pointBase(p, pPath), value };
    });
  }

  private buckets(value: unknown, path: string): ExponentialBuckets {
    const o = this.object(value, path);
    return {
      offset: this.int32(this.field(o, 'offset'), `${path}.offset`, false),
      bucketCounts: this.int64s(this.field(o, 'bucketCounts'), `${path}.bucketCounts`),
    };
  }

  private int64s(value: unknown, path: string): bigint[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw invalid(`${path} must be an array, not ${describe(value)}`);
    return value.map((v: unknown, i) => this.int64(v, `${path}[${i}]`, true));
  }

  private doubles(value: unknown, path: string): number[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) throw invalid(`${path} must be an array, not ${describe(value)}`);
    return value.map((v: unknown, i) => this.double(v, `${path}[${i}]`));
  }
}
