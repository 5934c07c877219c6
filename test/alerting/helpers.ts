import { randomBytes } from 'node:crypto';
import type { EventPublisher, PyleeEvent } from '#core/notify/events.ts';
import type { MetricPointRow, RequestRow } from '#core/warehouse/rows.ts';
import type { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';

export interface Traffic {
  orgId: string;
  server: string;
  environment?: string;
  version: string;
  operation?: string;
  /** Requests spread evenly over [from, to). */
  from: number;
  to: number;
  count: number;
  /** Share of failed requests, 0..1. */
  errorRate?: number;
  latencyMs?: number;
}

/** Request rows as the collector would write them for one version over a span of time. */
export function requests(t: Traffic): RequestRow[] {
  const rows: RequestRow[] = [];
  const step = (t.to - t.from) / t.count;
  const failing = Math.round(t.count * (t.errorRate ?? 0));
  for (let i = 0; i < t.count; i++) {
    const error = i < failing ? 1 : 0;
    rows.push({
      org_id: t.orgId,
      server: t.server,
      environment: t.environment ?? 'production',
      version: t.version,
      operation: t.operation ?? 'tools/call search',
      time: new Date(Math.floor(t.from + i * step)).toISOString(),
      duration_ms: t.latencyMs ?? 50,
      error: error as 0 | 1,
      error_type: error ? 'tool_error' : '',
      http_status: 200,
      mcp_method: 'tools/call',
      tool: 'search',
      trace_id: randomBytes(16).toString('hex'),
      span_id: randomBytes(8).toString('hex'),
      session_id: '',
      source: 'otlp',
      client_key: '',
      counted: 1,
    });
  }
  return rows;
}

export function cpuPoints(
  t: Omit<Traffic, 'count' | 'operation'> & { value: number; points: number },
): MetricPointRow[] {
  const step = (t.to - t.from) / t.points;
  return Array.from({ length: t.points }, (_, i) => {
    const time = new Date(Math.floor(t.from + i * step)).toISOString();
    return {
      org_id: t.orgId,
      server: t.server,
      environment: t.environment ?? 'production',
      version: t.version,
      operation: '',
      metric: 'process.cpu.utilization',
      unit: '1',
      kind: 'gauge',
      start_time: time,
      time,
      count: 0,
      sum: 0,
      value: t.value,
      bounds: [],
      bucket_counts: [],
    };
  });
}

export async function write(writer: TelemetryWriter, rows: RequestRow[]): Promise<void> {
  await writer.writeRequests(rows);
  await writer.flush();
}

/** The publisher seam, recording what it was given (the notify side has tests of its own). */
export function recordingPublisher(): EventPublisher & { events: PyleeEvent[]; failNext: number } {
  const recorder = {
    events: [] as PyleeEvent[],
    failNext: 0,
    async publish(event: PyleeEvent) {
      if (recorder.failNext > 0) {
        recorder.failNext--;
        throw new Error('publisher unavailable');
      }
      recorder.events.push(event);
    },
  };
  return recorder;
}
