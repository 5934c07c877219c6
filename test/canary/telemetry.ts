// Synthetic canaries written as telemetry rows: per minute, N requests of a version with log-normal
// latencies and binomial errors, over two MCP tools, seeded so every run writes the same rows.
import type { RequestRow } from '#core/warehouse/rows.ts';
import { normal, rng } from '#test/core/canary/synthetic.ts';

export interface Traffic {
  /** requests per minute */
  perMinute: number;
  errorRate: number;
  /** median latency, ms */
  latencyMs: number;
}

export const HEALTHY: Traffic = { perMinute: 60, errorRate: 0.01, latencyMs: 100 };

export function requestRows(
  scope: { orgId: string; server: string; environment: string; version: string },
  traffic: Traffic,
  window: { from: number; minutes: number },
  seed: number,
): RequestRow[] {
  const rand = rng(seed);
  const rows: RequestRow[] = [];
  for (let m = 0; m < window.minutes; m++) {
    for (let r = 0; r < traffic.perMinute; r++) {
      const tool = r % 2 === 0 ? 'search' : 'fetch';
      const error = rand() < traffic.errorRate;
      rows.push({
        org_id: scope.orgId,
        server: scope.server,
        environment: scope.environment,
        version: scope.version,
        operation: `tools/call ${tool}`,
        time: new Date(window.from + m * 60_000 + Math.floor(rand() * 59_000)).toISOString(),
        duration_ms: traffic.latencyMs * Math.exp(0.4 * normal(rand)),
        error: error ? 1 : 0,
        error_type: error ? 'tool_error' : '',
        http_status: 200,
        mcp_method: 'tools/call',
        tool,
        trace_id: '',
        span_id: '',
        session_id: '',
        source: 'otlp',
        client_key: '',
        counted: 1,
      });
    }
  }
  return rows;
}
