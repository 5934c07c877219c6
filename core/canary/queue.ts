import { Queue } from 'bullmq';
import type { Logger } from '../logger.ts';
import { QUEUE_PREFIX, QUEUES } from '../queue/queues.ts';
import type { RedisStore } from '../queue/redis.ts';
import type { CanaryScheduler } from './analysis.ts';

/** The jobs of the canary queue. */
export const CANARY_JOBS = {
  /** Judge a running analysis (interim or final). */
  evaluate: 'canary-evaluate',
  /** Start analyses for canary steps waiting for one; re-evaluate overdue ones. */
  sweep: 'canary-sweep',
} as const;

/** Delayed evaluation jobs; one per analysis and due time, so scheduling twice enqueues once. */
export function canaryScheduler(queue: Pick<Queue, 'add'>): CanaryScheduler {
  return {
    async schedule(analysisId, at) {
      await queue.add(
        CANARY_JOBS.evaluate,
        { analysisId },
        {
          jobId: `${CANARY_JOBS.evaluate}.${analysisId}.${at}`,
          delay: Math.max(at - Date.now(), 0),
          removeOnComplete: 1000,
          removeOnFail: 1000,
          attempts: 5,
          backoff: { type: 'exponential', delay: 1000 },
        },
      );
    },
  };
}

/** The canary queue for a process that only enqueues (the API). */
export function openCanaryQueue(
  redis: RedisStore,
  logger: Logger,
): { scheduler: CanaryScheduler; close(): Promise<void> } {
  let queue: Queue | undefined;
  const open = () => {
    if (!queue) {
      queue = new Queue(QUEUES.canary, { connection: redis.connection(), prefix: QUEUE_PREFIX });
      queue.on('error', (error) => logger.warn({ err: error }, 'canary queue error'));
    }
    return queue;
  };
  return {
    scheduler: { schedule: (id, at) => canaryScheduler(open()).schedule(id, at) },
    close: async () => {
      await queue?.close();
    },
  };
}
