// The BullMQ workers (`pylee start --role alerts`) on a test's stores, tuned for tests: quick
// reconcile and dispatch ticks, webhooks to the local sink allowed, short notification back-off.
import { startWorkers, type WorkerDeps, type Workers } from '#alerts/workers.ts';
import { testSecretBox } from './api.ts';
import type { openTestStores } from './stores.ts';
import { silentLogger } from './stores.ts';

export function startTestWorkers(
  stores: Awaited<ReturnType<typeof openTestStores>>,
  extra: Partial<WorkerDeps> = {},
): Promise<Workers> {
  return startWorkers({
    db: stores.db,
    redis: stores.redis,
    warehouse: stores.warehouse,
    logger: silentLogger,
    secretBox: testSecretBox,
    notify: { policy: { allowPrivate: true }, slackIntervalMs: 10, backoffBaseMs: 200 },
    alerts: { reconcileEveryMs: 300, dispatchTickMs: 100 },
    ...extra,
  });
}
