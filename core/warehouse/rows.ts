/**
 * The rows the telemetry writer puts in ClickHouse, from the collector and the gateway. Dimensions
 * come first in every table's sort key: org, server, environment, version, operation, time. Unknown
 * dimensions are '' (or `unknown_service` for a missing service.name, as OpenTelemetry does), never
 * dropped.
 */

/** One SERVER span: a request the service handled. */
export interface RequestRow {
  org_id: string;
  server: string;
  environment: string;
  version: string;
  /** `tools/call weather_forecast` for MCP, else the HTTP route (`GET /items/{id}`), else the span name. */
  operation: string;
  /** Span start, RFC 3339 with milliseconds. */
  time: string;
  duration_ms: number;
  error: 0 | 1;
  /** `error.type`, else the HTTP status class or `tool_error` for an MCP tool result with isError. */
  error_type: string;
  http_status: number;
  mcp_method: string;
  tool: string;
  trace_id: string;
  span_id: string;
  session_id: string;
  /** Who measured it: the collector from a SERVER span, or the gateway from an MCP exchange. */
  source: 'gateway' | 'otlp';
  /** The keyed hash of the client (core/telemetry/client-key.ts); '' when nothing identifies it. */
  client_key: string;
  /**
   * 1 when the row counts in figures. The collector writes 0 for the MCP calls of a server and
   * environment the gateway measures (core/telemetry/fronted.ts): kept, never counted twice.
   */
  counted: 0 | 1;
}

/**
 * One metric data point, as a delta over [start_time, time]. Histograms keep explicit bucket
 * bounds and per-bucket counts (exponential histograms are converted to explicit bounds).
 */
export interface MetricPointRow {
  org_id: string;
  server: string;
  environment: string;
  version: string;
  operation: string;
  /** Semantic-convention name: http.server.request.duration, process.cpu.utilization, … */
  metric: string;
  unit: string;
  /** 'histogram' | 'gauge' | 'sum' */
  kind: string;
  start_time: string;
  time: string;
  count: number;
  sum: number;
  /** Gauges: the value; sums: the delta. */
  value: number;
  bounds: number[];
  bucket_counts: number[];
}

/**
 * A session's beginning, end or move to another version (migrations/0005_request_source.sql): from
 * the gateway, or an end from OTLP (an `mcp.server.session.duration` point naming the session).
 */
export interface SessionEventRow {
  org_id: string;
  server: string;
  environment: string;
  /** The version the session is on (after a 'migrate', the one it moved to). */
  version: string;
  session_id: string;
  /** RFC 3339 with milliseconds. */
  time: string;
  event: 'start' | 'end' | 'migrate';
  /**
   * 'end': 'delete' | 'idle' | 'upstream-failure' | 'rollback' | 'terminated', or 'otlp-ended' (a
   * clean end reported over OTLP); 'migrate': the version moved from; '' for 'start'.
   */
  reason: string;
  /** The keyed hash of the client (core/telemetry/client-key.ts). */
  client_key: string;
  source: 'gateway' | 'otlp';
}
