import protobuf from 'protobufjs';
import {
  MAX_VALUE_DEPTH,
  type AnyValue,
  type Attributes,
  type ExponentialBuckets,
  type ExponentialHistogramDataPoint,
  type HistogramDataPoint,
  type InstrumentationScope,
  type Metric,
  type MetricData,
  type MetricsRequest,
  type NumberDataPoint,
  type Resource,
  type ResourceMetrics,
  type ResourceSpans,
  type ScopeMetrics,
  type ScopeSpans,
  type Span,
  type TracesRequest,
} from './model.ts';
import { root } from './protobuf.ts';

/**
 * OTLP protobuf export requests decoded straight from the wire format into the normalized model,
 * without protobufjs's message objects and their `toObject` conversion (most of the collector's
 * CPU before this existed).
 *
 * The official opentelemetry-proto definitions stay the source of truth: every field number, and
 * the declared type of every field (hence its wire type), comes from the loaded protobufjs `Root`
 * at start-up, which fails loudly if a field the decoder reads is missing or changed its type.
 *
 * The contract is equivalence with the full path (`Type.decode` + `toObject` + decode.ts's
 * reader): when this decoder returns, it returns exactly what that path returns for the same body;
 * when it meets anything it does not handle exactly like protobufjs — a wire type that does not
 * match the field's declared type, a string running past its message, an over-long varint, a group
 * — it throws {@link WireFallback} and the caller decodes the body with the full path, which then
 * accepts it or names the problem. It is never more lenient than protobufjs: fields Pylee does not
 * read are still checked as protobufjs would check them (sub-messages such as span events,
 * exemplars and deeply nested attribute values are decoded by protobufjs itself and discarded),
 * and protobufjs's recursion limit applies at the same depths.
 */

/** This body is left to the full protobufjs decoder (which may accept it or reject it). */
export class WireFallback extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'WireFallback';
  }
}

// --- Reflection --------------------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const KIND_MESSAGE = 0;
const KIND_VARINT32 = 1;
const KIND_VARINT64 = 2;
const KIND_FIXED32 = 3;
const KIND_FIXED64 = 4;
const KIND_LEN = 5;
const KIND_UNSUPPORTED = 6;

/** How a known field is read, from its declared type. */
interface FieldPlan {
  kind: number;
  wire: number;
  /** Repeated scalar numbers may also come packed (wire type 2). */
  packable: boolean;
  /** The message type, for KIND_MESSAGE. */
  type: protobuf.Type | undefined;
}

const SCALAR_KINDS: Record<string, [number, number]> = {
  int32: [KIND_VARINT32, WIRE_VARINT],
  uint32: [KIND_VARINT32, WIRE_VARINT],
  sint32: [KIND_VARINT32, WIRE_VARINT],
  bool: [KIND_VARINT32, WIRE_VARINT],
  int64: [KIND_VARINT64, WIRE_VARINT],
  uint64: [KIND_VARINT64, WIRE_VARINT],
  sint64: [KIND_VARINT64, WIRE_VARINT],
  fixed32: [KIND_FIXED32, WIRE_FIXED32],
  sfixed32: [KIND_FIXED32, WIRE_FIXED32],
  float: [KIND_FIXED32, WIRE_FIXED32],
  fixed64: [KIND_FIXED64, WIRE_FIXED64],
  sfixed64: [KIND_FIXED64, WIRE_FIXED64],
  double: [KIND_FIXED64, WIRE_FIXED64],
  string: [KIND_LEN, WIRE_LEN],
  bytes: [KIND_LEN, WIRE_LEN],
};

function planField(field: protobuf.Field): FieldPlan {
  field.resolve();
  const resolved = field.resolvedType;
  if (field.map || field.delimited) {
    return { kind: KIND_UNSUPPORTED, wire: -1, packable: false, type: undefined };
  }
  if (resolved instanceof protobuf.Type) {
    return { kind: KIND_MESSAGE, wire: WIRE_LEN, packable: false, type: resolved };
  }
  const [kind, wire] =
    resolved instanceof protobuf.Enum ? [KIND_VARINT32, WIRE_VARINT] : (SCALAR_KINDS[field.type] ?? [-1, -1]);
  if (kind < 0) return { kind: KIND_UNSUPPORTED, wire: -1, packable: false, type: undefined };
  return { kind, wire, packable: field.repeated && kind !== KIND_LEN, type: undefined };
}

/** A message type from the definitions, with a plan for every field it declares. */
class Schema {
  readonly type: protobuf.Type;
  /** By field number; the definitions use small numbers, so a dense array. */
  readonly plans: (FieldPlan | undefined)[];

  constructor(name: string) {
    this.type = root.lookupType(name);
    const fields = this.type.fieldsArray;
    this.plans = new Array<FieldPlan | undefined>(Math.max(0, ...fields.map((f) => f.id)) + 1).fill(
      undefined,
    );
    for (const field of fields) this.plans[field.id] = planField(field);
  }

  /**
   * The tag (field number and wire type) of a field the decoder reads, checking that the
   * definitions still declare it as expected: a scalar type name, 'enum', or a message Schema.
   */
  tag(
    name: string,
    expected: string | Schema,
    options: { repeated?: boolean; packed?: boolean } = {},
  ): number {
    const field = this.type.fields[name];
    if (!field) throw new Error(`opentelemetry-proto: ${this.type.fullName} has no field ${name}`);
    field.resolve();
    const actual =
      field.resolvedType instanceof protobuf.Enum
        ? 'enum'
        : field.resolvedType instanceof protobuf.Type
          ? field.resolvedType.fullName
          : field.type;
    const want = typeof expected === 'string' ? expected : expected.type.fullName;
    if (actual !== want || field.repeated !== (options.repeated ?? false) || field.map) {
      throw new Error(
        `opentelemetry-proto: ${this.type.fullName}.${name} is ${field.repeated ? 'repeated ' : ''}${actual}, not ${options.repeated ? 'repeated ' : ''}${want}`,
      );
    }
    const plan = this.plans[field.id]!;
    return field.id * 8 + (options.packed ? WIRE_LEN : plan.wire);
  }
}

const PROTO = 'opentelemetry.proto';
const S = {
  traceRequest: new Schema(`${PROTO}.collector.trace.v1.ExportTraceServiceRequest`),
  metricsRequest: new Schema(`${PROTO}.collector.metrics.v1.ExportMetricsServiceRequest`),
  resource: new Schema(`${PROTO}.resource.v1.Resource`),
  scope: new Schema(`${PROTO}.common.v1.InstrumentationScope`),
  keyValue: new Schema(`${PROTO}.common.v1.KeyValue`),
  anyValue: new Schema(`${PROTO}.common.v1.AnyValue`),
  arrayValue: new Schema(`${PROTO}.common.v1.ArrayValue`),
  kvList: new Schema(`${PROTO}.common.v1.KeyValueList`),
  resourceSpans: new Schema(`${PROTO}.trace.v1.ResourceSpans`),
  scopeSpans: new Schema(`${PROTO}.trace.v1.ScopeSpans`),
  span: new Schema(`${PROTO}.trace.v1.Span`),
  status: new Schema(`${PROTO}.trace.v1.Status`),
  resourceMetrics: new Schema(`${PROTO}.metrics.v1.ResourceMetrics`),
  scopeMetrics: new Schema(`${PROTO}.metrics.v1.ScopeMetrics`),
  metric: new Schema(`${PROTO}.metrics.v1.Metric`),
  gauge: new Schema(`${PROTO}.metrics.v1.Gauge`),
  sum: new Schema(`${PROTO}.metrics.v1.Sum`),
  histogram: new Schema(`${PROTO}.metrics.v1.Histogram`),
  exponentialHistogram: new Schema(`${PROTO}.metrics.v1.ExponentialHistogram`),
  summary: new Schema(`${PROTO}.metrics.v1.Summary`),
  numberPoint: new Schema(`${PROTO}.metrics.v1.NumberDataPoint`),
  histogramPoint: new Schema(`${PROTO}.metrics.v1.HistogramDataPoint`),
  exponentialPoint: new Schema(`${PROTO}.metrics.v1.ExponentialHistogramDataPoint`),
  buckets: new Schema(`${PROTO}.metrics.v1.ExponentialHistogramDataPoint.Buckets`),
  summaryPoint: new Schema(`${PROTO}.metrics.v1.SummaryDataPoint`),
};

const REPEATED = { repeated: true };
const PACKED = { repeated: true, packed: true };

// Tags (field number × 8 + wire type) of the fields the decoder reads.
const T = {
  traceRequestResourceSpans: S.traceRequest.tag('resourceSpans', S.resourceSpans, REPEATED),
  metricsRequestResourceMetrics: S.metricsRequest.tag('resourceMetrics', S.resourceMetrics, REPEATED),
  resourceAttributes: S.resource.tag('attributes', S.keyValue, REPEATED),
  scopeName: S.scope.tag('name', 'string'),
  scopeVersion: S.scope.tag('version', 'string'),
  scopeAttributes: S.scope.tag('attributes', S.keyValue, REPEATED),
  keyValueKey: S.keyValue.tag('key', 'string'),
  keyValueValue: S.keyValue.tag('value', S.anyValue),
  anyString: S.anyValue.tag('stringValue', 'string'),
  anyBool: S.anyValue.tag('boolValue', 'bool'),
  anyInt: S.anyValue.tag('intValue', 'int64'),
  anyDouble: S.anyValue.tag('doubleValue', 'double'),
  anyBytes: S.anyValue.tag('bytesValue', 'bytes'),
  anyArray: S.anyValue.tag('arrayValue', S.arrayValue),
  anyKvList: S.anyValue.tag('kvlistValue', S.kvList),
  arrayValues: S.arrayValue.tag('values', S.anyValue, REPEATED),
  kvListValues: S.kvList.tag('values', S.keyValue, REPEATED),
  resourceSpansResource: S.resourceSpans.tag('resource', S.resource),
  resourceSpansScopeSpans: S.resourceSpans.tag('scopeSpans', S.scopeSpans, REPEATED),
  scopeSpansScope: S.scopeSpans.tag('scope', S.scope),
  scopeSpansSpans: S.scopeSpans.tag('spans', S.span, REPEATED),
  spanTraceId: S.span.tag('traceId', 'bytes'),
  spanSpanId: S.span.tag('spanId', 'bytes'),
  spanParentSpanId: S.span.tag('parentSpanId', 'bytes'),
  spanName: S.span.tag('name', 'string'),
  spanKind: S.span.tag('kind', 'enum'),
  spanStart: S.span.tag('startTimeUnixNano', 'fixed64'),
  spanEnd: S.span.tag('endTimeUnixNano', 'fixed64'),
  spanAttributes: S.span.tag('attributes', S.keyValue, REPEATED),
  spanStatus: S.span.tag('status', S.status),
  statusCode: S.status.tag('code', 'enum'),
  statusMessage: S.status.tag('message', 'string'),
  resourceMetricsResource: S.resourceMetrics.tag('resource', S.resource),
  resourceMetricsScopeMetrics: S.resourceMetrics.tag('scopeMetrics', S.scopeMetrics, REPEATED),
  scopeMetricsScope: S.scopeMetrics.tag('scope', S.scope),
  scopeMetricsMetrics: S.scopeMetrics.tag('metrics', S.metric, REPEATED),
  metricName: S.metric.tag('name', 'string'),
  metricDescription: S.metric.tag('description', 'string'),
  metricUnit: S.metric.tag('unit', 'string'),
  metricGauge: S.metric.tag('gauge', S.gauge),
  metricSum: S.metric.tag('sum', S.sum),
  metricHistogram: S.metric.tag('histogram', S.histogram),
  metricExponentialHistogram: S.metric.tag('exponentialHistogram', S.exponentialHistogram),
  metricSummary: S.metric.tag('summary', S.summary),
  gaugePoints: S.gauge.tag('dataPoints', S.numberPoint, REPEATED),
  sumPoints: S.sum.tag('dataPoints', S.numberPoint, REPEATED),
  sumTemporality: S.sum.tag('aggregationTemporality', 'enum'),
  sumMonotonic: S.sum.tag('isMonotonic', 'bool'),
  histogramPoints: S.histogram.tag('dataPoints', S.histogramPoint, REPEATED),
  histogramTemporality: S.histogram.tag('aggregationTemporality', 'enum'),
  exponentialPoints: S.exponentialHistogram.tag('dataPoints', S.exponentialPoint, REPEATED),
  exponentialTemporality: S.exponentialHistogram.tag('aggregationTemporality', 'enum'),
  summaryPoints: S.summary.tag('dataPoints', S.summaryPoint, REPEATED),
  numberAttributes: S.numberPoint.tag('attributes', S.keyValue, REPEATED),
  numberStart: S.numberPoint.tag('startTimeUnixNano', 'fixed64'),
  numberTime: S.numberPoint.tag('timeUnixNano', 'fixed64'),
  numberAsDouble: S.numberPoint.tag('asDouble', 'double'),
  numberAsInt: S.numberPoint.tag('asInt', 'sfixed64'),
  numberFlags: S.numberPoint.tag('flags', 'uint32'),
  histogramAttributes: S.histogramPoint.tag('attributes', S.keyValue, REPEATED),
  histogramStart: S.histogramPoint.tag('startTimeUnixNano', 'fixed64'),
  histogramTime: S.histogramPoint.tag('timeUnixNano', 'fixed64'),
  histogramCount: S.histogramPoint.tag('count', 'fixed64'),
  histogramSum: S.histogramPoint.tag('sum', 'double'),
  histogramBucketCounts: S.histogramPoint.tag('bucketCounts', 'fixed64', REPEATED),
  histogramBucketCountsPacked: S.histogramPoint.tag('bucketCounts', 'fixed64', PACKED),
  histogramBounds: S.histogramPoint.tag('explicitBounds', 'double', REPEATED),
  histogramBoundsPacked: S.histogramPoint.tag('explicitBounds', 'double', PACKED),
  histogramFlags: S.histogramPoint.tag('flags', 'uint32'),
  exponentialAttributes: S.exponentialPoint.tag('attributes', S.keyValue, REPEATED),
  exponentialStart: S.exponentialPoint.tag('startTimeUnixNano', 'fixed64'),
  exponentialTime: S.exponentialPoint.tag('timeUnixNano', 'fixed64'),
  exponentialCount: S.exponentialPoint.tag('count', 'fixed64'),
  exponentialSum: S.exponentialPoint.tag('sum', 'double'),
  exponentialScale: S.exponentialPoint.tag('scale', 'sint32'),
  exponentialZeroCount: S.exponentialPoint.tag('zeroCount', 'fixed64'),
  exponentialPositive: S.exponentialPoint.tag('positive', S.buckets),
  exponentialNegative: S.exponentialPoint.tag('negative', S.buckets),
  exponentialFlags: S.exponentialPoint.tag('flags', 'uint32'),
  bucketsOffset: S.buckets.tag('offset', 'sint32'),
  bucketsCounts: S.buckets.tag('bucketCounts', 'uint64', REPEATED),
  bucketsCountsPacked: S.buckets.tag('bucketCounts', 'uint64', PACKED),
};

// --- Wire reading ------------------------------------------------------------------------------

// The body being decoded and the read position. Decoding is synchronous, so module state is safe.
const NO_BODY = Buffer.alloc(0);
let buf: Buffer = NO_BODY;
let pos = 0;

/** protobufjs's limit on message nesting, checked at the same depths it checks it. */
const recursionLimit = (): number =>
  (protobuf.Reader as unknown as { recursionLimit: number }).recursionLimit;
let limit = 100;

function bail(reason: string): never {
  throw new WireFallback(`${reason} at offset ${pos}`);
}

/** A varint as protobufjs's `uint32()` reads it; over 5 bytes is left to protobufjs. */
function varint32(end: number): number {
  if (pos >= end) bail('truncated varint');
  let b = buf[pos++]!;
  if (b < 0x80) return b;
  let value = b & 0x7f;
  for (let shift = 7; shift < 28; shift += 7) {
    if (pos >= end) bail('truncated varint');
    b = buf[pos++]!;
    value |= (b & 0x7f) << shift;
    if (b < 0x80) return value;
  }
  if (pos >= end) bail('truncated varint');
  b = buf[pos++]!;
  if (b >= 0x80) bail('varint over 5 bytes in a 32-bit field');
  return (value | ((b & 0x0f) << 28)) >>> 0;
}

/** A varint as an unsigned 64-bit bigint (what protobufjs's Long holds); over 10 bytes is left to protobufjs. */
function varint64(end: number): bigint {
  let lo = 0;
  let b: number;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) bail('truncated varint');
    b = buf[pos++]!;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) return BigInt(lo);
  }
  if (pos >= end) bail('truncated varint');
  b = buf[pos++]!;
  lo = (lo | ((b & 0x0f) << 28)) >>> 0;
  let hi = (b & 0x7f) >> 4;
  if (b < 0x80) return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  for (let shift = 3; shift < 38; shift += 7) {
    if (pos >= end) bail('truncated varint');
    b = buf[pos++]!;
    hi = (hi | ((b & 0x7f) << shift)) >>> 0;
    if (b < 0x80) return (BigInt(hi) << 32n) | BigInt(lo);
  }
  bail('varint over 10 bytes');
}

function skipVarint64(end: number): void {
  for (let i = 0; i < 10; i++) {
    if (pos >= end) bail('truncated varint');
    if (buf[pos++]! < 0x80) return;
  }
  bail('varint over 10 bytes');
}

/** The end of a length-delimited field starting at `pos`, within `end`. */
function lengthEnd(end: number): number {
  const length = varint32(end);
  const fieldEnd = pos + length;
  if (fieldEnd > end) bail('length runs past its message');
  return fieldEnd;
}

/** The end of an embedded message at nesting `depth` (protobufjs's `n`), within `end`. */
function messageEnd(end: number, depth: number): number {
  if (depth > limit) bail('nesting depth');
  return lengthEnd(end);
}

// Buffer's own slicers, without `toString`'s argument handling (protobufjs reads strings with
// `utf8Slice` too, so invalid UTF-8 decodes to the same replacement characters).
interface Slicers {
  utf8Slice(start: number, end: number): string;
  hexSlice(start: number, end: number): string;
}
const slicers = Buffer.prototype as unknown as Partial<Slicers>;
const utf8Slice: (b: Buffer, start: number, end: number) => string =
  typeof slicers.utf8Slice === 'function'
    ? (b, start, end) => (b as unknown as Slicers).utf8Slice(start, end)
    : (b, start, end) => b.toString('utf8', start, end);
const hexSlice: (b: Buffer, start: number, end: number) => string =
  typeof slicers.hexSlice === 'function'
    ? (b, start, end) => (b as unknown as Slicers).hexSlice(start, end)
    : (b, start, end) => b.toString('hex', start, end);

/**
 * Short strings repeat all the time (attribute keys, method and tool names, versions): a small
 * direct-mapped cache from their bytes to the decoded string saves decoding them again, and gives
 * the same string object each time (whose hash V8 has already computed, for the attribute Maps).
 * Before hashing, the string last seen at the same position (the n-th attribute's key or value,
 * a span's name...) is tried: spans and points of one request mostly carry the same keys, in the
 * same order. A position whose values keep missing the cache (ids, addresses) is decoded directly,
 * trying the cache again now and then. Only ASCII strings are kept, so comparing their char codes
 * with the bytes is comparing the decoded text.
 */
const CACHE_SLOTS = 4096;
const CACHE_MAX_BYTES = 48;
const cachedStrings: string[] = new Array<string>(CACHE_SLOTS).fill('');
const seenHashes = new Int32Array(CACHE_SLOTS);
const POSITIONS = 64;
const NO_HINT = -1;
const KEY_HINTS = 0;
const VALUE_HINTS = POSITIONS;
const SPAN_NAME_HINT = 2 * POSITIONS;
const METRIC_NAME_HINT = SPAN_NAME_HINT + 1;
const UNIT_HINT = SPAN_NAME_HINT + 2;
const SCOPE_NAME_HINT = SPAN_NAME_HINT + 3;
const SCOPE_VERSION_HINT = SPAN_NAME_HINT + 4;
const HINTS = SPAN_NAME_HINT + 5;
const lastAtPosition: string[] = new Array<string>(HINTS).fill('');
/** Consecutive cache misses at each position; from MISSES_TO_BYPASS on, the cache is mostly bypassed. */
const missesAtPosition = new Uint8Array(HINTS);
const MISSES_TO_BYPASS = 16;
let bypasses = 0;

function sameText(cached: string, start: number, length: number): boolean {
  if (cached.length !== length) return false;
  for (let i = 0; i < length; i++) if (cached.charCodeAt(i) !== buf[start + i]) return false;
  return true;
}

function text(start: number, end: number, hint: number): string {
  const length = end - start;
  if (length === 0) return '';
  if (length > CACHE_MAX_BYTES) return utf8Slice(buf, start, end);
  if (hint !== NO_HINT) {
    const last = lastAtPosition[hint]!;
    if (sameText(last, start, length)) return last;
    if (missesAtPosition[hint]! >= MISSES_TO_BYPASS && (++bypasses & 63) !== 0) {
      return utf8Slice(buf, start, end);
    }
  }
  let hash = 0x811c9dc5;
  let high = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    high |= b;
    hash = Math.imul(hash ^ b, 0x01000193);
  }
  if (high >= 0x80) return utf8Slice(buf, start, end);
  const slot = (hash ^ (hash >>> 15)) & (CACHE_SLOTS - 1);
  let value = cachedStrings[slot]!;
  let missed = 0;
  if (!sameText(value, start, length)) {
    value = utf8Slice(buf, start, end);
    missed = 1;
    // Admitted the second time its slot sees it, so one-off values (ids, addresses) do not evict.
    if (seenHashes[slot] === hash) cachedStrings[slot] = value;
    else seenHashes[slot] = hash;
  }
  if (hint !== NO_HINT) {
    lastAtPosition[hint] = value;
    missesAtPosition[hint] = missed === 0 ? 0 : Math.min(255, missesAtPosition[hint]! + 1);
  }
  return value;
}

function string(end: number, hint: number = NO_HINT): string {
  const fieldEnd = lengthEnd(end);
  const value = text(pos, fieldEnd, hint);
  pos = fieldEnd;
  return value;
}

/** Bytes as lowercase hex (trace and span ids). */
function hex(end: number): string {
  const fieldEnd = lengthEnd(end);
  const value = fieldEnd === pos ? '' : hexSlice(buf, pos, fieldEnd);
  pos = fieldEnd;
  return value;
}

function bytes(end: number): Uint8Array {
  const fieldEnd = lengthEnd(end);
  const value = fieldEnd === pos ? Buffer.alloc(0) : buf.subarray(pos, fieldEnd);
  pos = fieldEnd;
  return value;
}

function fixed64(end: number): bigint {
  if (pos + 8 > end) bail('truncated fixed64');
  const value = buf.readBigUInt64LE(pos);
  pos += 8;
  return value;
}

function sfixed64(end: number): bigint {
  if (pos + 8 > end) bail('truncated sfixed64');
  const value = buf.readBigInt64LE(pos);
  pos += 8;
  return value;
}

function double(end: number): number {
  if (pos + 8 > end) bail('truncated double');
  const value = buf.readDoubleLE(pos);
  pos += 8;
  return value;
}

function sint32(end: number): number {
  const value = varint32(end);
  return ((value >>> 1) ^ -(value & 1)) | 0;
}

/** Appends packed or single fixed64 values. */
function fixed64s(into: bigint[], tag: number, packedTag: number, end: number): void {
  if (tag !== packedTag) {
    into.push(fixed64(end));
    return;
  }
  const fieldEnd = lengthEnd(end);
  while (pos < fieldEnd) into.push(fixed64(fieldEnd));
}

function doubles(into: number[], tag: number, packedTag: number, end: number): void {
  if (tag !== packedTag) {
    into.push(double(end));
    return;
  }
  const fieldEnd = lengthEnd(end);
  while (pos < fieldEnd) into.push(double(fieldEnd));
}

function varint64s(into: bigint[], tag: number, packedTag: number, end: number): void {
  if (tag !== packedTag) {
    into.push(varint64(end));
    return;
  }
  const fieldEnd = lengthEnd(end);
  while (pos < fieldEnd) into.push(varint64(fieldEnd));
}

/**
 * A field the decoder does not use (or one with an unexpected wire type), read as protobufjs reads
 * it: known fields by their declared type — embedded messages decoded by protobufjs itself, so
 * whatever it refuses is refused here too — and unknown fields skipped by wire type.
 */
function skipField(schema: Schema, tag: number, end: number, depth: number): void {
  const wire = tag & 7;
  const id = tag >>> 3;
  const plan = id < schema.plans.length ? schema.plans[id] : undefined;
  if (plan === undefined) {
    skipUnknown(wire, end);
    return;
  }
  if (wire === WIRE_LEN && plan.packable) {
    const fieldEnd = lengthEnd(end);
    while (pos < fieldEnd) skipScalar(plan.kind, fieldEnd);
    return;
  }
  if (wire !== plan.wire) bail(`wire type ${wire} for a field declared with wire type ${plan.wire}`);
  if (plan.kind === KIND_MESSAGE) {
    const fieldEnd = messageEnd(end, depth + 1);
    validate(plan.type!, fieldEnd, depth + 1);
    return;
  }
  skipScalar(plan.kind, end);
}

function skipScalar(kind: number, end: number): void {
  switch (kind) {
    case KIND_VARINT32:
      varint32(end);
      return;
    case KIND_VARINT64:
      skipVarint64(end);
      return;
    case KIND_FIXED32:
      if (pos + 4 > end) bail('truncated fixed32');
      pos += 4;
      return;
    case KIND_FIXED64:
      if (pos + 8 > end) bail('truncated fixed64');
      pos += 8;
      return;
    case KIND_LEN:
      pos = lengthEnd(end);
      return;
    default:
      bail('a field kind the wire decoder does not read');
  }
}

/** Unknown fields, as protobufjs's `skipType` skips them; groups are left to protobufjs. */
function skipUnknown(wire: number, end: number): void {
  switch (wire) {
    case WIRE_VARINT:
      do {
        if (pos >= end) bail('truncated varint');
      } while (buf[pos++]! & 0x80);
      return;
    case WIRE_FIXED64:
      if (pos + 8 > end) bail('truncated fixed64');
      pos += 8;
      return;
    case WIRE_LEN:
      pos = lengthEnd(end);
      return;
    case WIRE_FIXED32:
      if (pos + 4 > end) bail('truncated fixed32');
      pos += 4;
      return;
    default:
      bail(`wire type ${wire}`);
  }
}

type DecodeAt = (reader: protobuf.Reader, length: number, endGroup: undefined, depth: number) => unknown;

/** Decodes [pos, end) as `type` with protobufjs at nesting `depth` and discards the result. */
function validate(type: protobuf.Type, end: number, depth: number): void {
  const reader = protobuf.Reader.create(buf);
  reader.pos = pos;
  reader.len = end;
  (type.decode as unknown as DecodeAt).call(type, reader, end - pos, undefined, depth);
  if (reader.pos !== end) bail('embedded message did not end where its length said');
  pos = end;
}

// --- Messages ----------------------------------------------------------------------------------

/** Reads a KeyValue at `depth` into `into`; `valueDepth` is decode.ts's attribute nesting depth. */
function keyValue(end: number, depth: number, into: Attributes, valueDepth: number): void {
  let key = '';
  let value: AnyValue = null;
  const position = into.size & (POSITIONS - 1);
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.keyValueKey) key = string(end, KEY_HINTS + position);
    else if (tag === T.keyValueValue)
      value = anyValue(messageEnd(end, depth + 1), depth + 1, valueDepth, VALUE_HINTS + position);
    else skipField(S.keyValue, tag, end, depth);
  }
  into.set(key, value);
}

const PRESENT_STRING = 1;
const PRESENT_BOOL = 2;
const PRESENT_INT = 4;
const PRESENT_DOUBLE = 8;
const PRESENT_BYTES = 16;
const PRESENT_ARRAY = 32;
const PRESENT_KVLIST = 64;

function anyValue(end: number, depth: number, valueDepth: number, hint: number = NO_HINT): AnyValue {
  if (valueDepth >= MAX_VALUE_DEPTH) {
    // Cut to null, as decode.ts does, after protobufjs has checked the rest.
    validate(S.anyValue.type, end, depth);
    return null;
  }
  let present = 0;
  let str = '';
  let bool = false;
  let int = 0n;
  let dbl = 0;
  let byteValue: Uint8Array | undefined;
  let array: AnyValue[] | undefined;
  let kvList: Attributes | undefined;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.anyString) {
      str = string(end, hint);
      present |= PRESENT_STRING;
    } else if (tag === T.anyInt) {
      int = BigInt.asIntN(64, varint64(end));
      present |= PRESENT_INT;
    } else if (tag === T.anyBool) {
      bool = varint32(end) !== 0;
      present |= PRESENT_BOOL;
    } else if (tag === T.anyDouble) {
      dbl = double(end);
      present |= PRESENT_DOUBLE;
    } else if (tag === T.anyArray) {
      array = arrayValue(messageEnd(end, depth + 1), depth + 1, valueDepth + 1);
      present |= PRESENT_ARRAY;
    } else if (tag === T.anyKvList) {
      kvList = kvListValue(messageEnd(end, depth + 1), depth + 1, valueDepth + 1);
      present |= PRESENT_KVLIST;
    } else if (tag === T.anyBytes) {
      byteValue = bytes(end);
      present |= PRESENT_BYTES;
    } else skipField(S.anyValue, tag, end, depth);
  }
  // The oneof as decode.ts reads it when several members were sent: first in this order wins.
  if (present & PRESENT_STRING) return str;
  if (present & PRESENT_BOOL) return bool;
  if (present & PRESENT_INT) return int;
  if (present & PRESENT_DOUBLE) return dbl;
  if (present & PRESENT_BYTES) return byteValue!;
  if (present & PRESENT_ARRAY) return array!;
  if (present & PRESENT_KVLIST) return kvList!;
  return null;
}

function arrayValue(end: number, depth: number, valueDepth: number): AnyValue[] {
  const values: AnyValue[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.arrayValues) values.push(anyValue(messageEnd(end, depth + 1), depth + 1, valueDepth));
    else skipField(S.arrayValue, tag, end, depth);
  }
  return values;
}

function kvListValue(end: number, depth: number, valueDepth: number): Attributes {
  const values: Attributes = new Map();
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.kvListValues) keyValue(messageEnd(end, depth + 1), depth + 1, values, valueDepth);
    else skipField(S.kvList, tag, end, depth);
  }
  return values;
}

function resource(end: number, depth: number): Resource {
  const attributes: Attributes = new Map();
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.resourceAttributes) keyValue(messageEnd(end, depth + 1), depth + 1, attributes, 0);
    else skipField(S.resource, tag, end, depth);
  }
  return { attributes };
}

function scope(end: number, depth: number): InstrumentationScope {
  let name = '';
  let version = '';
  const attributes: Attributes = new Map();
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.scopeName) name = string(end, SCOPE_NAME_HINT);
    else if (tag === T.scopeVersion) version = string(end, SCOPE_VERSION_HINT);
    else if (tag === T.scopeAttributes) keyValue(messageEnd(end, depth + 1), depth + 1, attributes, 0);
    else skipField(S.scope, tag, end, depth);
  }
  return { name, version, attributes };
}

const noResource = (): Resource => ({ attributes: new Map() });
const noScope = (): InstrumentationScope => ({ name: '', version: '', attributes: new Map() });

function resourceSpans(end: number, depth: number): ResourceSpans {
  let res: Resource | undefined;
  const scopes: ScopeSpans[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.resourceSpansScopeSpans) scopes.push(scopeSpans(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.resourceSpansResource) res = resource(messageEnd(end, depth + 1), depth + 1);
    else skipField(S.resourceSpans, tag, end, depth);
  }
  return { resource: res ?? noResource(), scopeSpans: scopes };
}

function scopeSpans(end: number, depth: number): ScopeSpans {
  let sc: InstrumentationScope | undefined;
  const spans: Span[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.scopeSpansSpans) spans.push(span(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.scopeSpansScope) sc = scope(messageEnd(end, depth + 1), depth + 1);
    else skipField(S.scopeSpans, tag, end, depth);
  }
  return { scope: sc ?? noScope(), spans };
}

function span(end: number, depth: number): Span {
  let traceId = '';
  let spanId = '';
  let parentSpanId = '';
  let name = '';
  let kind = 0;
  let startTimeUnixNano = 0n;
  let endTimeUnixNano = 0n;
  const attributes: Attributes = new Map();
  let status = { code: 0, message: '' };
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.spanAttributes) keyValue(messageEnd(end, depth + 1), depth + 1, attributes, 0);
    else if (tag === T.spanTraceId) traceId = hex(end);
    else if (tag === T.spanSpanId) spanId = hex(end);
    else if (tag === T.spanParentSpanId) parentSpanId = hex(end);
    else if (tag === T.spanName) name = string(end, SPAN_NAME_HINT);
    else if (tag === T.spanKind) kind = varint32(end) | 0;
    else if (tag === T.spanStart) startTimeUnixNano = fixed64(end);
    else if (tag === T.spanEnd) endTimeUnixNano = fixed64(end);
    else if (tag === T.spanStatus) status = spanStatus(messageEnd(end, depth + 1), depth + 1);
    else skipField(S.span, tag, end, depth);
  }
  return {
    traceId,
    spanId,
    parentSpanId,
    name,
    kind,
    startTimeUnixNano,
    endTimeUnixNano,
    attributes,
    status,
  };
}

function spanStatus(end: number, depth: number): { code: number; message: string } {
  let code = 0;
  let message = '';
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.statusCode) code = varint32(end) | 0;
    else if (tag === T.statusMessage) message = string(end);
    else skipField(S.status, tag, end, depth);
  }
  return { code, message };
}

function resourceMetrics(end: number, depth: number): ResourceMetrics {
  let res: Resource | undefined;
  const scopes: ScopeMetrics[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.resourceMetricsScopeMetrics)
      scopes.push(scopeMetrics(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.resourceMetricsResource) res = resource(messageEnd(end, depth + 1), depth + 1);
    else skipField(S.resourceMetrics, tag, end, depth);
  }
  return { resource: res ?? noResource(), scopeMetrics: scopes };
}

function scopeMetrics(end: number, depth: number): ScopeMetrics {
  let sc: InstrumentationScope | undefined;
  const metrics: Metric[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.scopeMetricsMetrics) metrics.push(metric(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.scopeMetricsScope) sc = scope(messageEnd(end, depth + 1), depth + 1);
    else skipField(S.scopeMetrics, tag, end, depth);
  }
  return { scope: sc ?? noScope(), metrics };
}

function metric(end: number, depth: number): Metric {
  let name = '';
  let description = '';
  let unit = '';
  // Each member of the `data` oneof, last occurrence of each (protobufjs replaces, never merges).
  let gauge: MetricData | undefined;
  let sum: MetricData | undefined;
  let histogram: MetricData | undefined;
  let exponential: MetricData | undefined;
  let summary: MetricData | undefined;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.metricName) name = string(end, METRIC_NAME_HINT);
    else if (tag === T.metricHistogram) histogram = histogramData(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.metricSum) sum = sumData(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.metricGauge) gauge = gaugeData(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.metricExponentialHistogram)
      exponential = exponentialData(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.metricSummary) summary = summaryData(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.metricDescription) description = string(end);
    else if (tag === T.metricUnit) unit = string(end, UNIT_HINT);
    else skipField(S.metric, tag, end, depth);
  }
  // Several members set: the first in decode.ts's order wins.
  const data = gauge ?? sum ?? histogram ?? exponential ?? summary ?? { type: 'other', dataPointCount: 0 };
  return { name, description, unit, data };
}

function gaugeData(end: number, depth: number): MetricData {
  const dataPoints: NumberDataPoint[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.gaugePoints) dataPoints.push(numberPoint(messageEnd(end, depth + 1), depth + 1));
    else skipField(S.gauge, tag, end, depth);
  }
  return { type: 'gauge', dataPoints };
}

function sumData(end: number, depth: number): MetricData {
  const dataPoints: NumberDataPoint[] = [];
  let aggregationTemporality = 0;
  let isMonotonic = false;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.sumPoints) dataPoints.push(numberPoint(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.sumTemporality) aggregationTemporality = varint32(end) | 0;
    else if (tag === T.sumMonotonic) isMonotonic = varint32(end) !== 0;
    else skipField(S.sum, tag, end, depth);
  }
  return { type: 'sum', aggregationTemporality, isMonotonic, dataPoints };
}

function histogramData(end: number, depth: number): MetricData {
  const dataPoints: HistogramDataPoint[] = [];
  let aggregationTemporality = 0;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.histogramPoints) dataPoints.push(histogramPoint(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.histogramTemporality) aggregationTemporality = varint32(end) | 0;
    else skipField(S.histogram, tag, end, depth);
  }
  return { type: 'histogram', aggregationTemporality, dataPoints };
}

function exponentialData(end: number, depth: number): MetricData {
  const dataPoints: ExponentialHistogramDataPoint[] = [];
  let aggregationTemporality = 0;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.exponentialPoints) dataPoints.push(exponentialPoint(messageEnd(end, depth + 1), depth + 1));
    else if (tag === T.exponentialTemporality) aggregationTemporality = varint32(end) | 0;
    else skipField(S.exponentialHistogram, tag, end, depth);
  }
  return { type: 'exponentialHistogram', aggregationTemporality, dataPoints };
}

/** Summaries are counted, never mapped; protobufjs checks their points. */
function summaryData(end: number, depth: number): MetricData {
  let dataPointCount = 0;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.summaryPoints) {
      validate(S.summaryPoint.type, messageEnd(end, depth + 1), depth + 1);
      dataPointCount++;
    } else skipField(S.summary, tag, end, depth);
  }
  return { type: 'other', dataPointCount };
}

function numberPoint(end: number, depth: number): NumberDataPoint {
  const attributes: Attributes = new Map();
  let startTimeUnixNano = 0n;
  let timeUnixNano = 0n;
  let flags = 0;
  let asDouble: number | undefined;
  let asInt: bigint | undefined;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.numberAttributes) keyValue(messageEnd(end, depth + 1), depth + 1, attributes, 0);
    else if (tag === T.numberStart) startTimeUnixNano = fixed64(end);
    else if (tag === T.numberTime) timeUnixNano = fixed64(end);
    else if (tag === T.numberAsDouble) asDouble = double(end);
    else if (tag === T.numberAsInt) asInt = sfixed64(end);
    else if (tag === T.numberFlags) flags = varint32(end);
    else skipField(S.numberPoint, tag, end, depth);
  }
  return { attributes, startTimeUnixNano, timeUnixNano, flags, value: asDouble ?? asInt };
}

function histogramPoint(end: number, depth: number): HistogramDataPoint {
  const attributes: Attributes = new Map();
  let startTimeUnixNano = 0n;
  let timeUnixNano = 0n;
  let flags = 0;
  let count = 0n;
  let sum: number | undefined;
  const bucketCounts: bigint[] = [];
  const explicitBounds: number[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.histogramAttributes) keyValue(messageEnd(end, depth + 1), depth + 1, attributes, 0);
    else if (tag === T.histogramBucketCountsPacked || tag === T.histogramBucketCounts)
      fixed64s(bucketCounts, tag, T.histogramBucketCountsPacked, end);
    else if (tag === T.histogramBoundsPacked || tag === T.histogramBounds)
      doubles(explicitBounds, tag, T.histogramBoundsPacked, end);
    else if (tag === T.histogramStart) startTimeUnixNano = fixed64(end);
    else if (tag === T.histogramTime) timeUnixNano = fixed64(end);
    else if (tag === T.histogramCount) count = fixed64(end);
    else if (tag === T.histogramSum) sum = double(end);
    else if (tag === T.histogramFlags) flags = varint32(end);
    else skipField(S.histogramPoint, tag, end, depth);
  }
  return { attributes, startTimeUnixNano, timeUnixNano, flags, count, sum, bucketCounts, explicitBounds };
}

function exponentialPoint(end: number, depth: number): ExponentialHistogramDataPoint {
  const attributes: Attributes = new Map();
  let startTimeUnixNano = 0n;
  let timeUnixNano = 0n;
  let flags = 0;
  let count = 0n;
  let sum: number | undefined;
  let scale = 0;
  let zeroCount = 0n;
  let positive: ExponentialBuckets | undefined;
  let negative: ExponentialBuckets | undefined;
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.exponentialAttributes) keyValue(messageEnd(end, depth + 1), depth + 1, attributes, 0);
    else if (tag === T.exponentialStart) startTimeUnixNano = fixed64(end);
    else if (tag === T.exponentialTime) timeUnixNano = fixed64(end);
    else if (tag === T.exponentialCount) count = fixed64(end);
    else if (tag === T.exponentialSum) sum = double(end);
    else if (tag === T.exponentialScale) scale = sint32(end);
    else if (tag === T.exponentialZeroCount) zeroCount = fixed64(end);
    else if (tag === T.exponentialPositive) positive = buckets(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.exponentialNegative) negative = buckets(messageEnd(end, depth + 1), depth + 1);
    else if (tag === T.exponentialFlags) flags = varint32(end);
    else skipField(S.exponentialPoint, tag, end, depth);
  }
  return {
    attributes,
    startTimeUnixNano,
    timeUnixNano,
    flags,
    count,
    sum,
    scale,
    zeroCount,
    positive: positive ?? { offset: 0, bucketCounts: [] },
    negative: negative ?? { offset: 0, bucketCounts: [] },
  };
}

function buckets(end: number, depth: number): ExponentialBuckets {
  let offset = 0;
  const bucketCounts: bigint[] = [];
  while (pos < end) {
    const tag = varint32(end);
    if (tag === T.bucketsCountsPacked || tag === T.bucketsCounts)
      varint64s(bucketCounts, tag, T.bucketsCountsPacked, end);
    else if (tag === T.bucketsOffset) offset = sint32(end);
    else skipField(S.buckets, tag, end, depth);
  }
  return { offset, bucketCounts };
}

// --- Entry points ------------------------------------------------------------------------------

function decodeBody<T>(body: Buffer, read: (end: number) => T): T {
  buf = body;
  pos = 0;
  limit = recursionLimit();
  try {
    return read(body.length);
  } finally {
    buf = NO_BODY;
  }
}

/**
 * Decodes an `ExportTraceServiceRequest` from the wire.
 * @throws WireFallback when the body must be decoded by the full path instead.
 */
export function decodeTracesWire(body: Buffer): TracesRequest {
  return decodeBody(body, (end) => {
    const out: ResourceSpans[] = [];
    while (pos < end) {
      const tag = varint32(end);
      if (tag === T.traceRequestResourceSpans) out.push(resourceSpans(messageEnd(end, 1), 1));
      else skipField(S.traceRequest, tag, end, 0);
    }
    return { resourceSpans: out };
  });
}

/**
 * Decodes an `ExportMetricsServiceRequest` from the wire.
 * @throws WireFallback when the body must be decoded by the full path instead.
 */
export function decodeMetricsWire(body: Buffer): MetricsRequest {
  return decodeBody(body, (end) => {
    const out: ResourceMetrics[] = [];
    while (pos < end) {
      const tag = varint32(end);
      if (tag === T.metricsRequestResourceMetrics) out.push(resourceMetrics(messageEnd(end, 1), 1));
      else skipField(S.metricsRequest, tag, end, 0);
    }
    return { resourceMetrics: out };
  });
}
