import type { Processor } from 'bullmq';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import { applyRetention, type RetentionRunResult } from '#core/registry/retention.ts';

/**
 * Applies every enabled version-retention policy (core/registry/retention.ts). Safe in every alerts
 * process at once: each server is planned and changed under its row lock, and a run is idempotent.
 */
export function retentionApplyProcessor(deps: {
  db: Db;
  logger: Logger;
}): Processor<unknown, RetentionRunResult> {
  return async () => {
    const result = await applyRetention(deps.db);
    for (const [server, versions] of Object.entries(result.retired))
      deps.logger.info({ server, versions }, 'retention retired versions');
    return result;
  };
}
