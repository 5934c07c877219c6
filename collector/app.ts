import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { IngestKeyVerifier } from '#core/auth/ingest-keys.ts';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import { fastifyOptions } from '#core/http/fastify-options.ts';
import { installOpsRoutes } from '#core/http/ops-routes.ts';
import { installProblemHandlers } from '#core/http/problem.ts';
import type { Logger } from '#core/logger.ts';
import type { Stores } from '#core/stores.ts';
import { cachedClientKeyHash } from '#core/telemetry/client-key.ts';
import { GatewayFronting } from '#core/telemetry/fronted.ts';
import { recordOtlpRefused } from '#core/telemetry/metrics.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
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

type Paired = Pick<RequestRow, 'org_id' | 'server' | 'environment'>;

/**
 * The rows of `rows` whose server × environment the gateway fronts. One lookup per distinct pair
 * in the batch, in parallel (answered from GatewayFronting's cache nearly always).
 */
async function frontedRows<R extends Paired>(rows: readonly R[], fronting: GatewayFronting): Promise<R[]> {
  const pairs = new Map<string, R[]>();
  for (const row of rows) {
    const key = `${row.org_id}\u0000${row.server}\u0000${row.environment}`;
    const group = pairs.get(key);
    if (group) group.push(row);
    else pairs.set(key, [row]);
  }
  const groups = await Promise.all(
    [...pairs.values()].map(async (group) => {
      const { org_id, server, environment } = group[0] as R;
      return (await fronting.isFronted(org_id, server, environment)) ? group : [];
    }),
  );
  return groups.flat();
}

/**
 * The rule that nothing is counted twice: the MCP calls of a server × environment the gateway
 * measures are kept with `counted = 0`. Other spans are never MCP traffic the gateway carried, so
 * they stay counted.
 */
async function uncountFronted(rows: RequestRow[], fronting: GatewayFronting): Promise<void> {
  const mcp = rows.filter((row) => row.mcp_method !== '');
  for (const row of await frontedRows(mcp, fronting)) row.counted = 0;
}

/** Session ends of pairs the gateway fronts are the gateway's to write: OTLP's are dropped. */
async function withoutFronted(
  rows: SessionEventRow[],
  fronting: GatewayFronting,
): Promise<SessionEventRow[]> {
  const fronted = new Set(await frontedRows(rows, fronting));
  return fronted.size === 0 ? rows : rows.filter((row) => !fronted.has(row));
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
    writeSessionEvents: async (rows: SessionEventRow[], requestId: string) => {
      const kept = await withoutFronted(rows, fronting);
      if (kept.length > 0) await guarded(() => writer.writeSessionEvents(kept, requestId));
    },
  };
}

export interface CollectorDeps {
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>;
  logger: Logger;
  /** Keys the hash of `enduser.id` / `client.address` into `client_key`, as the gateway's client keys. */
  secretBox: SecretBox;
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
 * uncounted (see {@link GatewayFronting}), and their OTLP session ends are dropped. Closing the app
 * flushes (or spools) everything it acknowledged.
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
      clientKey: cachedClientKeyHash(deps.secretBox),
    }),
  );
  return app;
}
