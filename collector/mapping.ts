import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from '@opentelemetry/semantic-conventions';
import {
  DEFAULT_MAX_ATTRIBUTE_LENGTH,
  ERROR_TYPE_OTHER,
  ERROR_TYPE_TOOL,
  operationName,
  truncate,
} from '#core/telemetry/naming.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import {
  seriesKey,
  type DeltaBatch,
  type DeltaTracker,
  type ExponentialPoint,
  type ExponentialSide,
} from './delta.ts';
import {
  AggregationTemporality,
  SpanKind,
  StatusCode,
  type AnyValue,
  type Attributes,
  type ExponentialHistogramDataPoint,
  type HistogramDataPoint,
  type InstrumentationScope,
  type Metric,
  type MetricsRequest,
  type NumberDataPoint,
  type TracesRequest,
} from './otlp/decode.ts';

/**
 * Mapping of decoded OTLP data to Pylee's rows, by the OpenTelemetry semantic conventions.
 *
 * Resource: `service.name` → server (`unknown_service` when absent, as OpenTelemetry does),
 * `service.version` → version, `deployment.environment.name` (else the older
 * `deployment.environment`) → environment; '' when absent.
 *
 * Spans: only SERVER spans are requests; others are accepted and not stored. A request is an error
 * when its status is ERROR, `http.response.status_code` >= 500, `error.type` is set, or the MCP
 * tool result had `isError` — which the MCP conventions record as `error.type = tool_error`
 * (covered by the `error.type` rule); the boolean `mcp.tool.result.is_error` that some MCP
 * instrumentations (Sentry's) set is accepted too. `error_type` is `error.type`, else `5xx` for a
 * server error status, else `tool_error`, else `_OTHER` (the conventions' fallback).
 * Operation: `{mcp.method.name} {target}` for MCP, target being `gen_ai.tool.name` (else
 * `gen_ai.prompt.name`) and omitted when absent; else `{http.request.method} {http.route}` when
 * the span has a route; else the span name.
 *
 * Users: a span's (or data point's) `enduser.id`, else its `client.address`, hashed by the
 * context's `clientKey` (core/telemetry/client-key.ts) into `client_key`; the raw value is never stored.
 *
 * Metrics: only the names in {@link METRIC_NAMES} are stored; others are ignored, not rejected.
 * A point of `mcp.server.session.duration` that carries `mcp.session.id` and counts at least one
 * session since the previous export says that session ended: besides its metric row it yields a
 * session 'end' event, reason `upstream-failure` when it has `error.type` (a crash), else
 * `otlp-ended`. Points without `mcp.session.id` (the conventions leave it off, for cardinality)
 * name no session: they stay metric rows only.
 */

// Stable semantic-convention names come from the package; incubating ones are copied, as that
// package advises, since they may still change.
export const ATTR_DEPLOYMENT_ENVIRONMENT_NAME = 'deployment.environment.name';
export const ATTR_DEPLOYMENT_ENVIRONMENT = 'deployment.environment';
export const ATTR_MCP_METHOD_NAME = 'mcp.method.name';
export const ATTR_MCP_SESSION_ID = 'mcp.session.id';
export const ATTR_GEN_AI_TOOL_NAME = 'gen_ai.tool.name';
export const ATTR_GEN_AI_PROMPT_NAME = 'gen_ai.prompt.name';
export const ATTR_MCP_TOOL_RESULT_IS_ERROR = 'mcp.tool.result.is_error';
export const ATTR_ENDUSER_ID = 'enduser.id';
export const METRIC_MCP_SERVER_SESSION_DURATION = 'mcp.server.session.duration';
/** The end reasons of OTLP session events (core/release-health/model.ts maps them to statuses). */
export const OTLP_END_CLEAN = 'otlp-ended';
export const OTLP_END_ERROR = 'upstream-failure';
const ATTR_HTTP_STATUS_CODE_OLD = 'http.status_code';
const ATTR_HTTP_METHOD_OLD = 'http.method';

export const UNKNOWN_SERVICE = 'unknown_service';

/** The metrics Pylee stores. */
export const METRIC_NAMES: ReadonlySet<string> = new Set([
  'http.server.request.duration',
  'mcp.server.operation.duration',
  METRIC_MCP_SERVER_SESSION_DURATION,
  'process.cpu.utilization',
  'process.cpu.time',
  'process.memory.usage',
]);

/** Exponential histograms: the scale range the OTLP data model allows, and a bucket cap per side. */
export const MIN_EXPONENTIAL_SCALE = -10;
export const MAX_EXPONENTIAL_SCALE = 20;
export const MAX_EXPONENTIAL_BUCKETS = 4096;

/** Data-point flag: the point has no recorded value (a staleness marker). */
const FLAG_NO_RECORDED_VALUE = 1;
/** The largest nanosecond time accepted (int64 max, 2262-04-11): later times are not real. */
const MAX_TIME_NANOS = 2n ** 63n - 1n;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

export interface MappingContext {
  orgId: string;
  /** The server an ingest key is bound to: data from any other `service.name` is rejected. */
  serverBinding?: string | null;
  /** Longer attribute values are truncated to this many UTF-16 code units. @defaultValue 4096 */
  maxAttributeLength?: number;
  /**
   * The stored form of a client key (`user:<enduser.id>` or `addr:<client.address>`): a keyed hash
   * (core/telemetry/client-key.ts). Without it, `client_key` stays '' (no users).
   */
  clientKey?: ((key: string) => string) | undefined;
}

export interface SpanMapping {
  rows: RequestRow[];
  /** Invalid spans (no ids, no times) and spans refused by the key's server binding. */
  rejected: number;
  errorMessage?: string;
}

export interface MetricMapping {
  rows: MetricPointRow[];
  /** Sessions that `mcp.server.session.duration` points say ended. */
  sessionEnds: SessionEventRow[];
  rejected: number;
  errorMessage?: string;
  /**
   * Undoes the cumulative-series state this mapping advanced; call when the rows could not be
   * stored, so the exporter's retry is diffed again rather than skipped as already seen.
   */
  rollback(): void;
}

/** Maps the SERVER spans of an export request to request rows. */
export function mapSpans(req: TracesRequest, ctx: MappingContext): SpanMapping {
  const max = ctx.maxAttributeLength ?? DEFAULT_MAX_ATTRIBUTE_LENGTH;
  const rows: RequestRow[] = [];
  const rejections = new Rejections('span');
  const clients = new ClientKeys(ctx);
  for (const rs of req.resourceSpans) {
    const resource = resourceDimensions(rs.resource.attributes, ctx, max);
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        if (resource.refused) {
          rejections.add(resource.refused);
          continue;
        }
        if (span.kind !== SpanKind.SERVER) continue;
        const problem = spanProblem(span.traceId, span.spanId, span.startTimeUnixNano, span.endTimeUnixNano);
        if (problem) {
          rejections.add(problem);
          continue;
        }
        const a = span.attributes;
        const httpStatus =
          intAttr(a, ATTR_HTTP_RESPONSE_STATUS_CODE) ?? intAttr(a, ATTR_HTTP_STATUS_CODE_OLD) ?? 0;
        const errorType = stringAttr(a, ATTR_ERROR_TYPE, max);
        const toolError = a.get(ATTR_MCP_TOOL_RESULT_IS_ERROR) === true;
        const serverError = httpStatus >= 500 && httpStatus <= 599;
        const error = span.status.code === StatusCode.ERROR || serverError || errorType !== '' || toolError;
        const mcpMethod = stringAttr(a, ATTR_MCP_METHOD_NAME, max);
        const tool = stringAttr(a, ATTR_GEN_AI_TOOL_NAME, max);
        rows.push({
          org_id: ctx.orgId,
          server: resource.server,
          environment: resource.environment,
          version: resource.version,
          operation: operationOf(a, max) || truncate(span.name, max),
          time: isoTime(span.startTimeUnixNano),
          duration_ms: Number(span.endTimeUnixNano - span.startTimeUnixNano) / 1e6,
          error: error ? 1 : 0,
          error_type: !error
            ? ''
            : errorType ||
              (serverError
                ? `${Math.floor(httpStatus / 100)}xx`
                : toolError
                  ? ERROR_TYPE_TOOL
                  : ERROR_TYPE_OTHER),
          http_status: httpStatus,
          mcp_method: mcpMethod,
          tool,
          trace_id: span.traceId,
          span_id: span.spanId,
          session_id: stringAttr(a, ATTR_MCP_SESSION_ID, max),
          source: 'otlp',
          client_key: clients.of(a),
          // The collector's app clears it for MCP calls the gateway measures (core/telemetry/fronted.ts).
          counted: 1,
        });
      }
    }
  }
  return { rows, ...rejections.result() };
}

/**
 * Maps the data points of the metrics in {@link METRIC_NAMES} to metric point rows, turning
 * cumulative series into deltas with `delta`. Call `rollback()` on the result if the rows cannot be stored.
 */
export function mapMetrics(req: MetricsRequest, ctx: MappingContext, delta: DeltaTracker): MetricMapping {
  const max = ctx.maxAttributeLength ?? DEFAULT_MAX_ATTRIBUTE_LENGTH;
  const batch = delta.batch();
  const rows: MetricPointRow[] = [];
  const sessionEnds: SessionEventRow[] = [];
  const rejections = new Rejections('data point');
  const clients = new ClientKeys(ctx);
  for (const rm of req.resourceMetrics) {
    const resource = resourceDimensions(rm.resource.attributes, ctx, max);
    for (const sm of rm.scopeMetrics) {
      for (const metric of sm.metrics) {
        if (resource.refused) {
          rejections.add(resource.refused, pointCount(metric));
          continue;
        }
        if (!METRIC_NAMES.has(metric.name)) continue;
        const mapper = new MetricMapper(ctx, metric, sm.scope, rm.resource.attributes, resource, batch, max);
        const ended =
          metric.name === METRIC_MCP_SERVER_SESSION_DURATION
            ? (a: Attributes, row: MetricPointRow) => {
                const end = sessionEnd(a, row, clients, max);
                if (end) sessionEnds.push(end);
              }
            : undefined;
        mapper.map(rows, rejections, ended);
      }
    }
  }
  return { rows, sessionEnds, ...rejections.result(), rollback: () => batch.rollback() };
}

/**
 * The session end a point of `mcp.server.session.duration` reports: only a histogram point that
 * names its session and counts an end since the previous export (a cumulative series repeats its
 * points every export; their delta is then 0). Its time is the point's: the end happened within
 * the export interval before it.
 */
function sessionEnd(
  a: Attributes,
  row: MetricPointRow,
  clients: ClientKeys,
  max: number,
): SessionEventRow | undefined {
  const sessionId = stringAttr(a, ATTR_MCP_SESSION_ID, max);
  if (sessionId === '' || row.kind !== 'histogram' || !(row.count > 0)) return undefined;
  return {
    org_id: row.org_id,
    server: row.server,
    environment: row.environment,
    version: row.version,
    session_id: sessionId,
    time: row.time,
    event: 'end',
    reason: stringAttr(a, ATTR_ERROR_TYPE, max) ? OTLP_END_ERROR : OTLP_END_CLEAN,
    client_key: clients.of(a),
    source: 'otlp',
  };
}

/** Client keys of one request's spans or points: hashed once per distinct key (they mostly repeat). */
class ClientKeys {
  private readonly hash: ((key: string) => string) | undefined;
  private readonly known = new Map<string, string>();

  constructor(ctx: MappingContext) {
    this.hash = ctx.clientKey;
  }

  /** `user:<enduser.id>`, else `addr:<client.address>`, hashed; '' when neither is set. */
  of(a: Attributes): string {
    if (!this.hash) return '';
    // The whole value is hashed (no truncation): two long ids sharing a prefix stay two users.
    const user = stringAttr(a, ATTR_ENDUSER_ID, Infinity);
    const address = user ? '' : stringAttr(a, ATTR_CLIENT_ADDRESS, Infinity);
    const key = user ? `user:${user}` : address ? `addr:${address}` : '';
    if (!key) return '';
    let hashed = this.known.get(key);
    if (hashed === undefined) {
      hashed = this.hash(key);
      this.known.set(key, hashed);
    }
    return hashed;
  }
}

interface ResourceDimensions {
  server: string;
  environment: string;
  version: string;
  /** Why every item of this resource is refused (the key's server binding), if it is. */
  refused?: string;
}

function resourceDimensions(attributes: Attributes, ctx: MappingContext, max: number): ResourceDimensions {
  const serviceName = stringAttr(attributes, ATTR_SERVICE_NAME, max);
  const environment =
    stringAttr(attributes, ATTR_DEPLOYMENT_ENVIRONMENT_NAME, max) ||
    stringAttr(attributes, ATTR_DEPLOYMENT_ENVIRONMENT, max);
  const version = stringAttr(attributes, ATTR_SERVICE_VERSION, max);
  const binding = ctx.serverBinding;
  if (binding) {
    // A key bound to one server vouches for data that names no service at all.
    if (serviceName && serviceName !== binding) {
      return {
        server: serviceName,
        environment,
        version,
        refused: `the ingest key is bound to server ${JSON.stringify(binding)} but service.name is ${JSON.stringify(serviceName.slice(0, 200))}`,
      };
    }
    return { server: binding, environment, version };
  }
  return { server: serviceName || UNKNOWN_SERVICE, environment, version };
}

/** Operation from MCP or HTTP attributes; '' when there is neither (spans then use their name). */
function operationOf(a: Attributes, max: number): string {
  const method = stringAttr(a, ATTR_MCP_METHOD_NAME, max);
  if (method) {
    const target = stringAttr(a, ATTR_GEN_AI_TOOL_NAME, max) || stringAttr(a, ATTR_GEN_AI_PROMPT_NAME, max);
    return target ? operationName(method, target, max) : method;
  }
  const route = stringAttr(a, ATTR_HTTP_ROUTE, max);
  if (route) {
    const httpMethod =
      stringAttr(a, ATTR_HTTP_REQUEST_METHOD, max) || stringAttr(a, ATTR_HTTP_METHOD_OLD, max);
    return httpMethod ? operationName(httpMethod, route, max) : route;
  }
  return '';
}

function spanProblem(traceId: string, spanId: string, start: bigint, end: bigint): string | undefined {
  // Decoding gives ids as lowercase hex ('' when they were not hex): length and zeros are left to check.
  if (traceId.length !== 32 || traceId === ZERO_TRACE_ID)
    return 'span has no valid trace_id (16 bytes, not all zero)';
  if (spanId.length !== 16 || spanId === ZERO_SPAN_ID)
    return 'span has no valid span_id (8 bytes, not all zero)';
  if (start <= 0n || start > MAX_TIME_NANOS) return 'span has no valid start_time_unix_nano';
  if (end < start || end > MAX_TIME_NANOS)
    return 'span ends before it starts or has no valid end_time_unix_nano';
  return undefined;
}

/** Counts rejected items by reason, for the partial-success error message. */
class Rejections {
  private readonly noun: string;
  private readonly reasons = new Map<string, number>();
  private total = 0;

  constructor(noun: string) {
    this.noun = noun;
  }

  add(reason: string, count = 1): void {
    if (count <= 0) return;
    this.total += count;
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + count);
  }

  result(): { rejected: number; errorMessage?: string } {
    if (this.total === 0) return { rejected: 0 };
    const reasons = [...this.reasons].map(([reason, n]) => `${reason} (${n})`).join('; ');
    return {
      rejected: this.total,
      errorMessage: `${this.total} ${this.noun}${this.total === 1 ? ' was' : 's were'} rejected: ${reasons}`,
    };
  }
}

function pointCount(metric: Metric): number {
  return metric.data.type === 'other' ? metric.data.dataPointCount : metric.data.dataPoints.length;
}

class MetricMapper {
  private readonly ctx: MappingContext;
  private readonly metric: Metric;
  private readonly scope: InstrumentationScope;
  private readonly resourceAttributes: Attributes;
  private readonly resource: ResourceDimensions;
  private readonly batch: DeltaBatch;
  private readonly max: number;
  private readonly unit: string;
  private lastBounds: number[] = [];

  constructor(
    ctx: MappingContext,
    metric: Metric,
    scope: InstrumentationScope,
    resourceAttributes: Attributes,
    resource: ResourceDimensions,
    batch: DeltaBatch,
    max: number,
  ) {
    this.ctx = ctx;
    this.metric = metric;
    this.scope = scope;
    this.resourceAttributes = resourceAttributes;
    this.resource = resource;
    this.batch = batch;
    this.max = max;
    this.unit = truncate(metric.unit, max);
  }

  /** Maps every point into `rows`; `mapped` sees each stored row beside its point's attributes. */
  map(
    rows: MetricPointRow[],
    rejections: Rejections,
    mapped?: (attributes: Attributes, row: MetricPointRow) => void,
  ): void {
    const data = this.metric.data;
    const emit = (p: { attributes: Attributes }, row: MetricPointRow | string | undefined) => {
      if (typeof row === 'string') rejections.add(`${this.metric.name}: ${row}`);
      else if (row) {
        rows.push(row);
        mapped?.(p.attributes, row);
      }
    };
    switch (data.type) {
      case 'gauge':
        for (const p of data.dataPoints) emit(p, this.number(p, 'gauge', undefined));
        return;
      case 'sum':
        for (const p of data.dataPoints) emit(p, this.number(p, 'sum', data));
        return;
      case 'histogram':
        for (const p of data.dataPoints) emit(p, this.histogram(p, data.aggregationTemporality));
        return;
      case 'exponentialHistogram':
        for (const p of data.dataPoints) emit(p, this.exponential(p, data.aggregationTemporality));
        return;
      case 'other':
        return;
    }
  }

  private key(attributes: Attributes): string {
    return seriesKey({
      orgId: this.ctx.orgId,
      resource: this.resourceAttributes,
      scopeName: this.scope.name,
      scopeVersion: this.scope.version,
      metric: this.metric.name,
      attributes,
    });
  }

  /**
   * The points of a histogram metric mostly share their bounds: their rows share one copy of them
   * (rows are never changed once made) instead of each holding its own.
   */
  private sharedBounds(bounds: readonly number[]): number[] {
    if (!sameNumbers(this.lastBounds, bounds)) this.lastBounds = [...bounds];
    return this.lastBounds;
  }

  /** Checks the times common to every point; a string is the reason to reject it. */
  private times(p: { startTimeUnixNano: bigint; timeUnixNano: bigint }): string | undefined {
    if (p.timeUnixNano <= 0n || p.timeUnixNano > MAX_TIME_NANOS)
      return 'data point has no valid time_unix_nano';
    if (p.startTimeUnixNano > p.timeUnixNano) return 'data point starts after its time_unix_nano';
    return undefined;
  }

  /** A row over [startTimeUnixNano (else timeUnixNano), timeUnixNano], every field in one literal (one shape). */
  private row(
    attributes: Attributes,
    startTimeUnixNano: bigint,
    timeUnixNano: bigint,
    kind: string,
    count: number,
    sum: number,
    value: number,
    bounds: number[],
    bucketCounts: number[],
  ): MetricPointRow {
    return {
      org_id: this.ctx.orgId,
      server: this.resource.server,
      environment: this.resource.environment,
      version: this.resource.version,
      operation: operationOf(attributes, this.max),
      metric: this.metric.name,
      unit: this.unit,
      start_time: isoTime(startTimeUnixNano > 0n ? startTimeUnixNano : timeUnixNano),
      time: isoTime(timeUnixNano),
      kind,
      count,
      sum,
      value,
      bounds,
      bucket_counts: bucketCounts,
    };
  }

  private number(
    p: NumberDataPoint,
    kind: 'gauge' | 'sum',
    sum: { aggregationTemporality: number; isMonotonic: boolean } | undefined,
  ): MetricPointRow | string | undefined {
    if (p.flags & FLAG_NO_RECORDED_VALUE) return undefined;
    const timeProblem = this.times(p);
    if (timeProblem) return timeProblem;
    if (p.value === undefined) return 'data point has neither as_double nor as_int';
    const value = Number(p.value);
    if (!Number.isFinite(value)) return 'data point value is not a finite number';
    if (!sum)
      return this.row(p.attributes, p.startTimeUnixNano, p.timeUnixNano, kind, 1, value, value, [], []);
    if (sum.aggregationTemporality === AggregationTemporality.DELTA) {
      return this.row(p.attributes, p.startTimeUnixNano, p.timeUnixNano, 'sum', 1, value, value, [], []);
    }
    if (sum.aggregationTemporality !== AggregationTemporality.CUMULATIVE) {
      return 'sum has no aggregation_temporality';
    }
    if (!sum.isMonotonic) {
      // A cumulative up-down counter (process.memory.usage) reports a level, not a running total.
      return this.row(p.attributes, p.startTimeUnixNano, p.timeUnixNano, 'gauge', 1, value, value, [], []);
    }
    const d = this.batch.sum(this.key(p.attributes), {
      startTimeUnixNano: p.startTimeUnixNano,
      timeUnixNano: p.timeUnixNano,
      value,
    });
    if (!d) return undefined;
    return this.row(p.attributes, d.startTimeUnixNano, p.timeUnixNano, 'sum', 1, d.value, d.value, [], []);
  }

  private histogram(p: HistogramDataPoint, temporality: number): MetricPointRow | string | undefined {
    if (p.flags & FLAG_NO_RECORDED_VALUE) return undefined;
    const timeProblem = this.times(p);
    if (timeProblem) return timeProblem;
    const bounds = p.explicitBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (!Number.isFinite(bounds[i]!) || (i > 0 && bounds[i]! <= bounds[i - 1]!)) {
        return 'histogram explicit_bounds are not finite and strictly increasing';
      }
    }
    if (p.bucketCounts.length !== 0 && p.bucketCounts.length !== bounds.length + 1) {
      return 'histogram bucket_counts must have one more entry than explicit_bounds';
    }
    const sum = p.sum ?? 0;
    if (!Number.isFinite(sum)) return 'histogram sum is not a finite number';
    const bucketCounts = new Array<number>(p.bucketCounts.length);
    for (let i = 0; i < bucketCounts.length; i++) bucketCounts[i] = Number(p.bucketCounts[i]!);
    const count = Number(p.count);
    if (temporality === AggregationTemporality.DELTA) {
      return this.row(
        p.attributes,
        p.startTimeUnixNano,
        p.timeUnixNano,
        'histogram',
        count,
        sum,
        0,
        this.sharedBounds(bounds),
        bucketCounts,
      );
    }
    if (temporality !== AggregationTemporality.CUMULATIVE) return 'histogram has no aggregation_temporality';
    const point = {
      startTimeUnixNano: p.startTimeUnixNano,
      timeUnixNano: p.timeUnixNano,
      count,
      sum,
      bounds,
      bucketCounts,
    };
    const d = this.batch.histogram(this.key(p.attributes), point);
    if (!d) return undefined;
    // The tracker keeps the point's arrays: the row gets its own.
    return this.row(
      p.attributes,
      d.startTimeUnixNano,
      p.timeUnixNano,
      'histogram',
      d.count,
      d.sum,
      0,
      this.sharedBounds(d.bounds),
      [...d.bucketCounts],
    );
  }

  private exponential(
    p: ExponentialHistogramDataPoint,
    temporality: number,
  ): MetricPointRow | string | undefined {
    if (p.flags & FLAG_NO_RECORDED_VALUE) return undefined;
    const timeProblem = this.times(p);
    if (timeProblem) return timeProblem;
    if (p.scale < MIN_EXPONENTIAL_SCALE || p.scale > MAX_EXPONENTIAL_SCALE) {
      return `exponential histogram scale ${p.scale} is outside ${MIN_EXPONENTIAL_SCALE}..${MAX_EXPONENTIAL_SCALE}`;
    }
    for (const side of [p.positive, p.negative]) {
      if (side.bucketCounts.length > MAX_EXPONENTIAL_BUCKETS) {
        return `exponential histogram has more than ${MAX_EXPONENTIAL_BUCKETS} buckets on one side`;
      }
      const top = (side.offset + side.bucketCounts.length) * 2 ** -p.scale;
      if (
        side.bucketCounts.length > 0 &&
        !(Number.isFinite(2 ** top) && 2 ** (side.offset * 2 ** -p.scale) > 0)
      ) {
        return 'exponential histogram buckets reach beyond the range of a double';
      }
    }
    const sum = p.sum ?? 0;
    if (!Number.isFinite(sum)) return 'histogram sum is not a finite number';
    let point: ExponentialPoint = {
      startTimeUnixNano: p.startTimeUnixNano,
      timeUnixNano: p.timeUnixNano,
      count: Number(p.count),
      sum,
      scale: p.scale,
      zeroCount: Number(p.zeroCount),
      positive: { offset: p.positive.offset, bucketCounts: p.positive.bucketCounts.map(Number) },
      negative: { offset: p.negative.offset, bucketCounts: p.negative.bucketCounts.map(Number) },
    };
    if (temporality === AggregationTemporality.CUMULATIVE) {
      const d = this.batch.exponential(this.key(p.attributes), point);
      if (!d) return undefined;
      point = d;
    } else if (temporality !== AggregationTemporality.DELTA) {
      return 'exponential histogram has no aggregation_temporality';
    }
    const explicit = exponentialToExplicit(point);
    return this.row(
      p.attributes,
      point.startTimeUnixNano,
      p.timeUnixNano,
      'histogram',
      point.count,
      point.sum,
      0,
      explicit.bounds,
      explicit.bucketCounts,
    );
  }
}

/**
 * Converts exponential buckets to explicit bounds. With base = 2^(2^-scale), positive bucket i
 * covers (base^(offset+i), base^(offset+i+1)], so its upper bound is base^(offset+i+1); the zero
 * bucket becomes the bucket with upper bound 0; negative bucket i covers
 * [-base^(offset+i+1), -base^(offset+i)) and gets the upper bound -base^(offset+i). A final
 * overflow bucket (above the last bound) is always empty.
 */
export function exponentialToExplicit(p: {
  scale: number;
  zeroCount: number;
  positive: ExponentialSide;
  negative: ExponentialSide;
}): { bounds: number[]; bucketCounts: number[] } {
  const exponent = 2 ** -p.scale;
  const power = (index: number) => 2 ** (index * exponent);
  const bounds: number[] = [];
  const bucketCounts: number[] = [];
  const neg = p.negative;
  for (let i = neg.bucketCounts.length - 1; i >= 0; i--) {
    bounds.push(-power(neg.offset + i));
    bucketCounts.push(neg.bucketCounts[i]!);
  }
  bounds.push(0);
  bucketCounts.push(p.zeroCount);
  const pos = p.positive;
  for (let i = 0; i < pos.bucketCounts.length; i++) {
    bounds.push(power(pos.offset + i + 1));
    bucketCounts.push(pos.bucketCounts[i]!);
  }
  bucketCounts.push(0);
  return { bounds, bucketCounts };
}

/** `toISOString`'s text for a millisecond count below 1000, with the final `Z`. */
const MILLIS_Z = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z`);
/** Year 10000: from there `toISOString` prints six-digit years, which the cache does not handle. */
const MAX_CACHED_MS = 253_402_300_800_000;
const SECOND_SLOTS = 16;
const cachedSeconds = new Float64Array(SECOND_SLOTS).fill(-1);
const cachedPrefixes: string[] = new Array<string>(SECOND_SLOTS).fill('');
const cachedMillis = new Float64Array(SECOND_SLOTS).fill(-1);
const cachedTimes: string[] = new Array<string>(SECOND_SLOTS).fill('');

/**
 * Nanoseconds since the epoch → RFC 3339 with milliseconds (UTC), exactly as `toISOString` writes
 * it. `toISOString` is slow next to everything else a row needs, and rows of one request share
 * few seconds, so the `YYYY-MM-DDTHH:MM:SS.` part is cached per second.
 */
export function isoTime(nanos: bigint): string {
  const ms = Number(nanos / 1_000_000n);
  if (!(ms >= 0 && ms < MAX_CACHED_MS)) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  const slot = second & (SECOND_SLOTS - 1);
  if (cachedMillis[slot] === ms) return cachedTimes[slot]!;
  if (cachedSeconds[slot] !== second) {
    cachedSeconds[slot] = second;
    cachedPrefixes[slot] = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const time = cachedPrefixes[slot]! + MILLIS_Z[ms - second * 1000]!;
  // Points of one request often share their times: they then share one string.
  cachedMillis[slot] = ms;
  cachedTimes[slot] = time;
  return time;
}

/** A scalar attribute as text (numbers and booleans too), truncated; '' when absent or structured. */
function stringAttr(a: Attributes, key: string, max: number): string {
  const v: AnyValue | undefined = a.get(key);
  if (typeof v === 'string') return truncate(v, max);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean')
    return truncate(String(v), max);
  return '';
}

/** An integer attribute (an int, a whole double or a decimal string); undefined otherwise. */
function intAttr(a: Attributes, key: string): number | undefined {
  const v = a.get(key);
  if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : undefined;
  if (typeof v === 'number') return Number.isInteger(v) ? v : undefined;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v);
  return undefined;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}
