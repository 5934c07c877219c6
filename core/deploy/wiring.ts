import { Queue } from 'bullmq';
import type { Db } from '../db/client.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher } from '../notify/events.ts';
import { createEventPublisher } from '../notify/publisher.ts';
import { QUEUE_PREFIX, QUEUES } from '../queue/queues.ts';
import type { RedisStore } from '../queue/redis.ts';
import { queueScheduler } from './scheduler.ts';
import type { DeployDeps } from './records.ts';

/** Logs events instead of delivering them (scripts and tests that do not care about notifications). */
export function loggingPublisher(logger: Logger): EventPublisher {
  return {
    async publish(event) {
      logger.info({ event: event.type, server: event.server, environment: event.environment }, event.summary);
    },
  };
}

/** What the deployment service needs in an API or worker process: the DB, a publisher and the rollout queue. */
export function openDeployDeps(options: {
  db: Db;
  redis: RedisStore;
  logger: Logger;
  publisher?: EventPublisher | undefined;
}): { deps: DeployDeps; queue: Queue; close(): Promise<void> } {
  const queue = new Queue(QUEUES.rollout, { connection: options.redis.connection(), prefix: QUEUE_PREFIX });
  // A Redis hiccup must not crash the process; scheduling failures are logged where they happen.
  queue.on('error', (error) => options.logger.warn({ err: error }, 'rollout queue error'));
  const deps: DeployDeps = {
    db: options.db,
    publisher:
      options.publisher ??
      createEventPublisher({ db: options.db, redis: options.redis, logger: options.logger }),
    scheduler: queueScheduler(queue),
    logger: options.logger,
  };
  return { deps, queue, close: () => queue.close() };
}
