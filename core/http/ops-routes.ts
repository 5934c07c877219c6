import type { FastifyInstance } from 'fastify';
import { checkReadiness, type Stores } from '../stores.ts';
import { recordHttpRequest } from '../telemetry/metrics.ts';
import { selfTelemetry } from '../telemetry/self-telemetry.ts';
import { problem, sendProblem } from './problem.ts';

/**
 * `/healthz` (the process answers), `/readyz` (every store answers; 503 names the ones that do not),
 * `/metrics` (Pylee's own metrics, Prometheus text), and the request id and duration of every request.
 */
export function installOpsRoutes(
  app: FastifyInstance,
  server: string,
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>,
): void {
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    recordHttpRequest(server, req.method, req.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
  });

  const hidden = { schema: { hide: true } } as const;
  app.get('/healthz', hidden, async () => ({ status: 'ok' }));
  app.get('/readyz', hidden, async (req, reply) => {
    const readiness = await checkReadiness(stores);
    if (readiness.ok) return { status: 'ready', stores: readiness.stores };
    const down = Object.entries(readiness.stores)
      .filter(([, s]) => !s.ok)
      .map(([name, s]) => `${name} (${s.error})`);
    return sendProblem(
      reply,
      problem(req, 503, 'store-unavailable', `not ready: ${down.join(', ')} did not answer`, {
        stores: readiness.stores,
      }),
    );
  });
  app.get('/metrics', hidden, (req, reply) => {
    const telemetry = selfTelemetry();
    if (!telemetry) {
      return sendProblem(
        reply,
        problem(req, 503, 'metrics-disabled', 'self-telemetry is not running in this process'),
      );
    }
    reply.hijack();
    telemetry.handleMetrics(req.raw, reply.raw);
  });
}
