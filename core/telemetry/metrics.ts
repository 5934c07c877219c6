import { metrics, type Counter, type Histogram } from '@opentelemetry/api';

/**
 * Pylee's own instruments. They are created on first use, after `startSelfTelemetry()` has
 * registered the meter provider: a meter taken earlier would stay a no-op forever.
 */
interface Instruments {
  storeDuration: Histogram;
  httpDuration: Histogram;
  otlpRefused: Counter;
  otlpItemsRejected: Counter;
  gatewaySessions: Counter;
  gatewayRowsDropped: Counter;
}

let instruments: Instruments | undefined;

function get(): Instruments {
  if (instruments) return instruments;
  const meter = metrics.getMeter('pylee');
  instruments = {
    storeDuration: meter.createHistogram('pylee.store.operation.duration', {
      description: 'Duration of operations against Pylee’s stores',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
    }),
    httpDuration: meter.createHistogram('http.server.request.duration', {
      description: 'Duration of HTTP server requests',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] },
    }),
    otlpRefused: meter.createCounter('pylee.collector.requests.rejected', {
      description: 'OTLP export requests refused whole (nothing of them stored), by signal and status',
      unit: '{request}',
    }),
    otlpItemsRejected: meter.createCounter('pylee.collector.items.rejected', {
      description: 'Spans and data points refused inside accepted requests (the OTLP partial success)',
      unit: '{item}',
    }),
    gatewaySessions: meter.createCounter('pylee.gateway.sessions', {
      description:
        'Gateway sessions by what happened to them: started, migrated (moved by a rollback), terminated, ended',
      unit: '{session}',
    }),
    gatewayRowsDropped: meter.createCounter('pylee.gateway.rows.dropped', {
      description: 'Gateway telemetry rows the writer could not take (the calls themselves were answered)',
      unit: '{row}',
    }),
  };
  return instruments;
}

/** Forgets created instruments so a newly registered meter provider gets fresh ones. */
export function resetInstruments(): void {
  instruments = undefined;
}

/** Runs one store operation and records its duration and outcome. */
export async function timed<T>(store: string, operation: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  let outcome = 'ok';
  try {
    return await fn();
  } catch (error) {
    outcome = 'error';
    throw error;
  } finally {
    get().storeDuration.record((performance.now() - start) / 1000, {
      'pylee.store': store,
      'db.operation.name': operation,
      'pylee.outcome': outcome,
    });
  }
}

/** Records one served HTTP request with the semantic-convention attributes. */
export function recordHttpRequest(
  server: string,
  method: string,
  route: string | undefined,
  status: number,
  seconds: number,
): void {
  get().httpDuration.record(seconds, {
    'pylee.server': server,
    'http.request.method': method,
    'http.response.status_code': status,
    ...(route ? { 'http.route': route } : {}),
  });
}

/** Records an OTLP export request the collector refused whole: bad body, key, type or size, or overload. */
export function recordOtlpRefused(signal: 'traces' | 'metrics', status: number): void {
  get().otlpRefused.add(1, { 'pylee.signal': signal, 'http.response.status_code': status });
}

/** Records spans or data points refused inside an accepted request (reported as partial success). */
export function recordOtlpItemsRejected(signal: 'traces' | 'metrics', count: number): void {
  get().otlpItemsRejected.add(count, { 'pylee.signal': signal });
}

/** Counts a gateway session event (`started`, `migrated`, `terminated`, `ended`) of a version. */
export function recordGatewaySession(event: string, version: string): void {
  get().gatewaySessions.add(1, { 'pylee.session.event': event, 'pylee.version': version });
}

/** Counts gateway telemetry rows the writer refused. */
export function recordGatewayRowsDropped(count: number): void {
  get().gatewayRowsDropped.add(count);
}
