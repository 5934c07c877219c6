import Fastify, { type FastifyInstance } from 'fastify';
import { fastifyOptions } from '#core/http/fastify-options.ts';
import { installOpsRoutes } from '#core/http/ops-routes.ts';
import { installProblemHandlers } from '#core/http/problem.ts';
import type { Logger } from '#core/logger.ts';
import type { Stores } from '#core/stores.ts';

/** OTLP/HTTP collector (16 MiB bodies, the OTLP default limit); the signal routes plug in here. */
export const OTLP_BODY_LIMIT = 16 * 1024 * 1024;

export async function buildCollector(deps: {
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>;
  logger: Logger;
}): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions(deps.logger, OTLP_BODY_LIMIT));
  installProblemHandlers(app, OTLP_BODY_LIMIT);
  installOpsRoutes(app, 'collector', deps.stores);
  return app;
}
