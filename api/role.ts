import type { FastifyInstance } from 'fastify';
import { listen } from '#core/http/listen.ts';
import type { Role, RoleDeps } from '#core/role.ts';
import { buildApi } from './app.ts';

export interface ApiRole extends Role {
  /** Base URL once started. */
  url: string | undefined;
}

/** The REST API (and, later, the web UI) on `PYLEE_API_PORT`. */
export function apiRole(deps: RoleDeps): ApiRole {
  const logger = deps.logger.child({ role: 'api' });
  let app: FastifyInstance | undefined;
  const role: ApiRole = {
    name: 'api',
    url: undefined,
    async start() {
      app = await buildApi({ ...deps, logger });
      role.url = await listen(app, deps.config.host, deps.config.apiPort, 'api');
    },
    async stop() {
      await app?.close();
    },
  };
  return role;
}
