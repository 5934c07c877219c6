import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { IngestKeyVerifier } from '#core/auth/ingest-keys.ts';
import { fastifyOptions } from '#core/http/fastify-options.ts';
import { installOpsRoutes } from '#core/http/ops-routes.ts';
import { installProblemHandlers } from '#core/http/problem.ts';
import type { Logger } from '#core/logger.ts';
import type { Stores } from '#core/stores.ts';
import { GatewayFronting } from '#core/telemetry/fronted.ts';
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

/**
 * The rule that nothing is counted twice: the MCP calls of a server × environment the gateway
 * measures are kept with `counted = 0`. One lookup per distinct pair in the batch, in parallel
 * (answered from GatewayFronting's cache nearly always). Other spans are never MCP traffic the
 * gateway carried, so they stay counted.
 */
async function uncountFronted(rows: RequestRow[], fronting: GatewayFronting): Promise<void> {
  const pairs = new Map<string, RequestRow[]>();
  for (const row of rows) {
    if (row.mcp_method === '') continue;
    const key = `${row.org_id}\u0000${row.server}\u0000${row.environment}`;
    const group = pairs.get(key);
    if (group) group.push(row);
    else pairs.set(key, [row]);
  }
  await Promise.all(
    [...pairs.values()].map(async (group) => {
      const { org_id, server, environment } = group[0] as RequestRow;
      if (!(await fronting.isFronted(org_id, server, environment))) return;
      for (const row of group) row.counted = 0;
    }),
  );
}

/** Hands mapped rows to the writer; a writer that cannot take more asks the exporter to retry. */
function writerSink(writer: TelemetryWriter, fronting: GatewayFronting): OtlpSink {
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
    writeRequests: async (rows: RequestRow[], requestId: string) => {
      await uncountFronted(rows, fronting);
      return guarded(() => writer.writeRequests(rows, requestId));
    },
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
  /** Which pairs the gateway measures. @defaultValue one on `stores.redis.client` with its defaults */
  fronting?: GatewayFronting | undefined;
}

/**
 * The OTLP/HTTP collector: `POST /v1/traces` and `/v1/metrics` authenticated by ingest key, written
 * to ClickHouse in batches. MCP calls of a server and environment behind the gateway are kept
 * uncounted (see {@link GatewayFronting}). Closing the app flushes (or spools) everything it
 * acknowledged.
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
      sink: writerSink(writer, deps.fronting ?? new GatewayFronting(deps.stores.redis.client)),
      authenticate: async (req) => {
        const identity = await keys.verify(ingestKeyOf(req));
        return { orgId: identity.orgId, server: identity.server };
      },
      maxBodyBytes: bodyLimit,
    }),
  );
  return app;
}
