import { NodeSDK } from '@opentelemetry/sdk-node';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resetInstruments } from './metrics.ts';

export interface SelfTelemetry {
  /** Writes the Prometheus text exposition of Pylee's own metrics. */
  handleMetrics(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

let current: SelfTelemetry | undefined;

/**
 * Starts the OpenTelemetry SDK for Pylee itself, once per process. Metrics are pulled by the
 * Prometheus exporter, which serves them through Pylee's own `/metrics` route, not a port of its own.
 */
export function startSelfTelemetry(version: string): SelfTelemetry {
  if (current) return current;
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'pylee', [ATTR_SERVICE_VERSION]: version }),
    metricReaders: [exporter],
    instrumentations: [],
    // Pylee's traces and logs would otherwise go to an OTLP endpoint from the environment,
    // by default localhost:4318, which is Pylee's own collector.
    spanProcessors: [],
    logRecordProcessors: [],
  });
  sdk.start();
  resetInstruments();
  const telemetry: SelfTelemetry = {
    handleMetrics: (req, res) => exporter.getMetricsRequestHandler(req, res),
    async shutdown() {
      current = undefined;
      await sdk.shutdown();
      resetInstruments();
    },
  };
  current = telemetry;
  return telemetry;
}

/** The running self-telemetry, if `startSelfTelemetry` was called in this process. */
export function selfTelemetry(): SelfTelemetry | undefined {
  return current;
}
