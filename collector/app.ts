import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { IngestKeyVerifier } from '#core/auth/ingest-keys.ts';
import { fastifyOptions } from '#core/http/fastify-options.ts';
import { installOpsRoutes } from '#core/http/ops-routes.ts';
import { installProblemHandlers } from '#core/http/problem.ts';
import type { Logger } from '#core/logger.ts';
import type { Stores } from '#core/stores.ts';
import { recordOtlpRefused } from '#core/telemetry/metrics.ts';
import type { MetricPointRow, RequestRow } from '#core/warehouse/rows.ts';
import {
  TelemetryWriter,
  WriterOverloadedError,
  type TelemetryWriterOptions,
} from '#core/warehouse/telemetry-writer.ts';
import { BackpressureError, otlpRoutes, type OtlpSink } from './otlp/http.ts';

/** The OTLP default body limit. */
export const OTLP_BODY_LIMIT = 16 * 1024 * 1024;

const SIGNALS: Record<string, 'traces' | 'metrics'> = { '/v1/traces': 'traces', '/v1/metrics': 'metrics' };

/** The ingest key of an OTLP request: `Authorization: Bearer <key>` or `x-pylee-ingest-key: <key>`. */
function ingestKeyOf(req: FastifyRequest): string | undefined {
  const header = req.headers['x-pylee-ingest-key'];
  if (typeof header === 'string' && header) return header.trim();
  return /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
}

/** Hands mapped rows to the writer; a writer that cannot take more asks the exporter to retry. */
function writerSink(writer: TelemetryWriter): OtlpSink {
  const guarded = async (write: () => Promise<void>) => {
    try {
      await write();
    } catch (error) {
      if (error instanceof WriterOverloadedError) {
        throw new BackpressureError(error.message, error.retryAfterSeconds, error.status);
      }
      throw error;
    }
  };
  return {
    writeRequests: (rows: RequestRow[], requestId: string) =>
      guarded(() => writer.writeRequests(rows, requestId)),
    writeMetricPoints: (rows: MetricPointRow[], requestId: string) =>
      guarded(() => writer.writeMetricPoints(rows, requestId)),
  };
}

export interface CollectorDeps {
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>;
  logger: Logger;
  /** Where the writer spools batches while ClickHouse is unavailable. */
  dataDir: string;
  bodyLimit?: number | undefined;
  /** Batching, memory and spool bounds of the writer; its defaults otherwise. */
  writer?: Omit<TelemetryWriterOptions, 'dataDir' | 'logger'> | undefined;
}

/**
 * The OTLP/HTTP collector: `POST /v1/traces` and `/v1/metrics` authenticated by ingest key, written
 * to ClickHouse in batches. Closing the app flushes (or spools) everything it acknowledged.
 */
export async function buildCollector(deps: CollectorDeps): Promise<FastifyInstance> {
  const bodyLimit = deps.bodyLimit ?? OTLP_BODY_LIMIT;
  const app = Fastify(fastifyOptions(deps.logger, bodyLimit));
  installProblemHandlers(app, bodyLimit);
  installOpsRoutes(app, 'collector', deps.stores);
  const writer = new TelemetryWriter(deps.stores.warehouse, {
    ...deps.writer,
    dataDir: deps.dataDir,
    logger: deps.logger,
  });
  app.addHook('onClose', () => writer.close());
  app.addHook('onResponse', async (req, reply) => {
    const signal = SIGNALS[req.routeOptions.url ?? ''];
    if (signal && reply.statusCode >= 400) recordOtlpRefused(signal, reply.statusCode);
  });
  const keys = new IngestKeyVerifier(deps.stores.db);
  await app.register(
    otlpRoutes({
      sink: writerSink(writer),
      authenticate: async (req) => {
        const identity = await keys.verify(ingestKeyOf(req));
        return { orgId: identity.orgId, server: identity.server };
      },
      maxBodyBytes: bodyLimit,
    }),
  );
  return app;
}
