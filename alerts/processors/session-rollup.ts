import type { Processor } from 'bullmq';
import type { Logger } from '#core/logger.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import { settleSessions, type SettleResult } from '#core/release-health/rollups.ts';
import type { Warehouse } from '#core/warehouse/client.ts';

const LOCK_KEY = 'pylee:release-health:settle';
/** Longer than any settle run; a run killed while holding the lock delays the next by at most this. */
const LOCK_MS = 10 * 60_000;

/**
 * Settles sessions into the release-health rollups. The job runs in every alerts process's
 * maintenance worker; a Redis lock lets one settle at a time, since two could plan overlapping chunks.
 */
export function sessionRollupProcessor(deps: {
  redis: RedisStore;
  warehouse: Warehouse;
  logger: Logger;
}): Processor<unknown, SettleResult | { skipped: true }> {
  return async (job) => {
    const token = `${job.id ?? 'job'}:${process.pid}`;
    const taken = await deps.redis.client.set(LOCK_KEY, token, 'PX', LOCK_MS, 'NX');
    if (!taken) return { skipped: true };
    try {
      const result = await settleSessions(deps.warehouse);
      if (result.chunks.length > 0)
        deps.logger.debug(
          { chunks: result.chunks.length, settledUntil: result.settledUntil },
          'sessions settled',
        );
      return result;
    } finally {
      // Only our own lock: compare and delete in one step.
      await deps.redis.client.eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
        1,
        LOCK_KEY,
        token,
      );
    }
  };
}
