import { Queue } from 'bullmq';
import type { Db, Queryable } from '../db/client.ts';
import { announceRoutingChange } from '../gateway/routing-signal.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher, PyleeEvent } from '../notify/events.ts';
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
    publisher: announcingRoutingChanges(
      options.publisher ??
        createEventPublisher({ db: options.db, redis: options.redis, logger: options.logger }),
      options.redis,
    ),
    scheduler: queueScheduler(queue),
    logger: options.logger,
  };
  return { deps, queue, close: () => queue.close() };
}

type MaybeTransactional = EventPublisher & {
  publishIn?: (tx: Queryable, event: PyleeEvent) => Promise<{ enqueue(): Promise<void> }>;
};

/**
 * Every deployment event (a step, a promotion, an abort, a rollback) changes what the gateway
 * routes: the wrapped publisher also tells the gateway processes, once the change has committed.
 */
export function announcingRoutingChanges<P extends MaybeTransactional>(publisher: P, redis: RedisStore): P {
  const announce = async (event: PyleeEvent) => {
    if (event.type.startsWith('deployment.') && event.server)
      await announceRoutingChange(redis.client, { orgId: event.orgId, server: event.server });
  };
  const wrapped: MaybeTransactional = {
    async publish(event) {
      await publisher.publish(event);
      await announce(event);
    },
  };
  const publishIn = publisher.publishIn?.bind(publisher);
  if (publishIn) {
    wrapped.publishIn = async (tx, event) => {
      const result = await publishIn(tx, event);
      return {
        ...result,
        enqueue: async () => {
          await announce(event);
          await result.enqueue();
        },
      };
    };
  }
  return Object.assign(Object.create(publisher) as P, wrapped);
}
