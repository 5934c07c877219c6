import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { DeltaTracker } from '#collector/delta.ts';
import { otlpRoutes, type OtlpPrincipal, type OtlpSink } from '#collector/otlp/http.ts';
import { UnauthorizedError } from '#core/errors.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';

export const INGEST_KEY = 'pylee_ingest_test';
export const BOUND_KEY = 'pylee_ingest_bound';

/** An in-memory sink; `failWith` makes the next writes throw (backpressure, outages). */
export class MemorySink implements OtlpSink {
  requests: RequestRow[] = [];
  points: MetricPointRow[] = [];
  sessionEvents: SessionEventRow[] = [];
  failWith: Error | undefined;

  async writeRequests(rows: RequestRow[]): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.requests.push(...rows);
  }

  async writeMetricPoints(rows: MetricPointRow[]): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.points.push(...rows);
  }

  async writeSessionEvents(rows: SessionEventRow[]): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.sessionEvents.push(...rows);
  }

  get stored(): number {
    return this.requests.length + this.points.length + this.sessionEvents.length;
  }

  clear(): void {
    this.requests = [];
    this.points = [];
    this.sessionEvents = [];
  }
}

/** Ingest keys as the integrator checks them: `Authorization: Bearer` or `x-pylee-ingest-key`. */
export async function authenticate(req: FastifyRequest): Promise<OtlpPrincipal> {
  const header = req.headers.authorization;
  const key = header?.startsWith('Bearer ') ? header.slice(7) : req.headers['x-pylee-ingest-key'];
  if (key === INGEST_KEY) return { orgId: 'org-test' };
  if (key === BOUND_KEY) return { orgId: 'org-test', server: 'weather-mcp' };
  throw new UnauthorizedError('send a valid ingest key in Authorization: Bearer <key>', 'invalid-ingest-key');
}

/** A bare fastify app with the OTLP routes and an in-memory sink, plus one JSON API route beside them. */
export async function buildOtlpApp(options: { maxBodyBytes?: number } = {}): Promise<{
  app: FastifyInstance;
  sink: MemorySink;
  delta: DeltaTracker;
  /** Content type and encoding of every request, to check what the exporters really sent. */
  seen: { url: string; type: string; encoding: string }[];
}> {
  const sink = new MemorySink();
  const delta = new DeltaTracker();
  const seen: { url: string; type: string; encoding: string }[] = [];
  const app = Fastify({ logger: false });
  app.addHook('onRequest', async (req) => {
    seen.push({
      url: req.url,
      type: req.headers['content-type'] ?? '',
      encoding: req.headers['content-encoding'] ?? '',
    });
  });
  await app.register(
    otlpRoutes({
      sink,
      authenticate,
      maxBodyBytes: options.maxBodyBytes ?? 1024 * 1024,
      deltaTracker: delta,
    }),
  );
  // A sibling route: the OTLP raw-body parsers must not leak into the rest of the app.
  app.post('/api/echo', async (req) => ({ body: req.body }));
  await app.ready();
  return { app, sink, delta, seen };
}
