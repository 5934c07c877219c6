import type { FastifyInstance } from 'fastify';
import { listen } from '#core/http/listen.ts';
import type { Role, RoleDeps } from '#core/role.ts';
import { buildGateway } from './app.ts';

/** The MCP gateway on `PYLEE_GATEWAY_PORT`. */
export function gatewayRole(deps: RoleDeps): Role & { url: string | undefined } {
  const logger = deps.logger.child({ role: 'gateway' });
  let app: FastifyInstance | undefined;
  const role = {
    name: 'gateway',
    url: undefined as string | undefined,
    async start() {
      app = await buildGateway({
        stores: deps.stores,
        logger,
        secretBox: deps.secretBox,
        config: deps.config,
      });
      role.url = await listen(app, deps.config.host, deps.config.gatewayPort, 'gateway');
    },
    async stop() {
      await app?.close();
    },
  };
  return role;
}
