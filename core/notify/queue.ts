import { Queue } from 'bullmq';
import type { Logger } from '../logger.ts';
import { QUEUE_PREFIX, QUEUES } from '../queue/queues.ts';
import type { RedisStore } from '../queue/redis.ts';

export const NOTIFY_JOBS = {
  deliver: 'deliver',
  sweep: 'sweep-deliveries',
} as const;

export interface DeliverJobData {
  deliveryId: string;
}

/** How long `publish` waits for Redis before leaving a committed delivery to the sweeper. */
const ENQUEUE_WAIT_MS = 2_000;

export function openNotifyQueue(redis: RedisStore, logger?: Logger): Queue<DeliverJobData> {
  const queue = new Queue<DeliverJobData>(QUEUES.notify, {
    connection: redis.connection(),
    prefix: QUEUE_PREFIX,
  });
  // The store's connection logs losing Redis once; without a listener BullMQ would print every error.
  queue.on('error', (error) => logger?.debug({ err: error }, 'notify queue error'));
  return queue;
}

/**
 * Adds one job per delivery with the delivery id as job id, so adding the same delivery twice is a no-op.
 * Retries of a failing send are scheduled by the processor itself (attempts are counted in Postgres); the
 * BullMQ attempts here only cover the processor crashing on infrastructure (Postgres down).
 */
export async function enqueueDeliveries(queue: Queue<DeliverJobData>, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await queue.addBulk(
    ids.map((id) => ({
      name: NOTIFY_JOBS.deliver,
      data: { deliveryId: id },
      opts: {
        jobId: id,
        attempts: 20,
        backoff: { type: 'exponential', delay: 1_000 },
        removeOnComplete: { count: 1_000 },
        removeOnFail: { count: 1_000 },
      },
    })),
  );
}

/**
 * Enqueues, but gives up waiting after 2 s: the deliveries are already committed in Postgres and the
 * sweeper re-enqueues pending ones, so a Redis outage delays them without losing them.
 */
export async function enqueueOrLeaveToSweeper(
  queue: Queue<DeliverJobData>,
  ids: readonly string[],
  logger: Logger,
): Promise<void> {
  if (ids.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const enqueued = enqueueDeliveries(queue, ids);
  try {
    await Promise.race([
      enqueued,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Redis did not answer within ${ENQUEUE_WAIT_MS} ms`)),
          ENQUEUE_WAIT_MS,
        );
      }),
    ]);
  } catch (error) {
    enqueued.catch(() => {});
    logger.warn(
      { err: error, deliveries: ids.length },
      'could not enqueue notification deliveries now; the sweeper will enqueue them',
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Enqueues deliveries Postgres says are pending, whatever Redis holds: a missing job (Redis lost it,
 * or `publish` could not reach Redis) is added; a finished or failed one (the processor crashed on
 * infrastructure until BullMQ gave up) is replaced. Jobs waiting, delayed or running are left alone.
 */
export async function requeueDeliveries(
  queue: Queue<DeliverJobData>,
  ids: readonly string[],
): Promise<string[]> {
  const added: string[] = [];
  for (const id of ids) {
    const job = await queue.getJob(id);
    if (job) {
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed' && state !== 'unknown') continue;
      await job.remove().catch(() => {});
    }
    await enqueueDeliveries(queue, [id]);
    added.push(id);
  }
  return added;
}
