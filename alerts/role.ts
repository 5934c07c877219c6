import type { Role, RoleDeps } from '#core/role.ts';
import { startWorkers, type Workers } from './workers.ts';

/** BullMQ workers: today audit-chain checks; alert rules, health checks and rollouts join them. */
export function alertsRole(deps: RoleDeps): Role {
  const logger = deps.logger.child({ role: 'alerts' });
  let workers: Workers | undefined;
  return {
    name: 'alerts',
    async start() {
      workers = await startWorkers({
        db: deps.stores.db,
        redis: deps.stores.redis,
        warehouse: deps.stores.warehouse,
        logger,
        secretBox: deps.secretBox,
        notify: {
          policy: { allowPrivate: deps.config.allowPrivateWebhooks },
          publicUrl: deps.config.publicUrl,
        },
        advisories: { urls: deps.config.advisoriesUrls, everyMs: deps.config.advisoriesEveryMs },
      });
      logger.info('alerts workers started');
    },
    async stop() {
      await workers?.close();
    },
  };
}
