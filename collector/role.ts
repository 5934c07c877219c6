import type { FastifyInstance } from 'fastify';
import { listen } from '#core/http/listen.ts';
import type { Role, RoleDeps } from '#core/role.ts';
import { buildCollector } from './app.ts';

/** The OTLP/HTTP receiver on `PYLEE_OTLP_PORT`. */
export function collectorRole(deps: RoleDeps): Role & { url: string | undefined } {
  const logger = deps.logger.child({ role: 'collector' });
  let app: FastifyInstance | undefined;
  const role = {
    name: 'collector',
    url: undefined as string | undefined,
    async start() {
      app = await buildCollector({
        stores: deps.stores,
        logger,
        secretBox: deps.secretBox,
        dataDir: deps.config.dataDir,
        bodyLimit: deps.config.otlpBodyLimit,
      });
      role.url = await listen(app, deps.config.host, deps.config.otlpPort, 'collector');
    },
    async stop() {
      await app?.close();
    },
  };
  return role;
}
