import type { FastifyInstance } from 'fastify';
import { listen } from '#core/http/listen.ts';
import type { Role, RoleDeps } from '#core/role.ts';
import { AccessLogWriter } from '#core/warehouse/access-log.ts';
import { buildApi } from './app.ts';

export interface ApiRole extends Role {
  /** Base URL once started. */
  url: string | undefined;
}

/** The REST API (and, later, the web UI) on `PYLEE_API_PORT`. */
export function apiRole(deps: RoleDeps): ApiRole {
  const logger = deps.logger.child({ role: 'api' });
  let app: FastifyInstance | undefined;
  let accessLog: AccessLogWriter | undefined;
  const role: ApiRole = {
    name: 'api',
    url: undefined,
    async start() {
      accessLog = new AccessLogWriter(deps.stores.warehouse, logger);
      app = await buildApi({ ...deps, logger, accessLog });
      role.url = await listen(app, deps.config.host, deps.config.apiPort, 'api');
    },
    async stop() {
      await app?.close();
      await accessLog?.close();
    },
  };
  return role;
}
