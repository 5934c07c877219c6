import { Worker, type Job, type Processor, type Queue } from 'bullmq';
import type { Db } from '#core/db/client.ts';
import { ROLLOUT_JOBS, type RolloutJob } from '#core/deploy/scheduler.ts';
import type { DeployDeps } from '#core/deploy/records.ts';
import { onGateCheck, onTimer, onVerificationTimeout, sweepDue } from '#core/deploy/system-events.ts';
import { openDeployDeps } from '#core/deploy/wiring.ts';
import type { Logger } from '#core/logger.ts';
import type { EventPublisher } from '#core/notify/events.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';

/**
 * Runs the rollout queue's jobs: timed pauses that end, staged rollouts' gate re-checks,
 * verification deadlines, and the sweep. Every job re-reads its deployment under lock and does
 * nothing if the rollout moved on (a person promoted it, a newer timer replaced this one), so a
 * job delivered twice, late, or after a restart is harmless.
 */
export function rolloutStepProcessor(deps: DeployDeps): Processor<RolloutJob | Record<string, never>> {
  return async (job: Job<RolloutJob | Record<string, never>>) => {
    const data = job.data as RolloutJob;
    switch (job.name) {
      case ROLLOUT_JOBS.timer:
        return (await onTimer(deps, data.deploymentId, (data as { step: number }).step))?.status ?? 'gone';
      case ROLLOUT_JOBS.gates:
        return (
          (await onGateCheck(deps, data.deploymentId, (data as { step: number }).step))?.status ?? 'gone'
        );
      case ROLLOUT_JOBS.verificationTimeout:
        return (await onVerificationTimeout(deps, data.deploymentId))?.status ?? 'gone';
      case ROLLOUT_JOBS.sweep:
        return { moved: await sweepDue(deps) };
      default:
        throw new Error(`no rollout processor for job ${job.name}`);
    }
  };
}

export interface RolloutWorker {
  queue: Queue;
  close(): Promise<void>;
}

/** The rollout queue's worker and its every-minute sweep. */
export async function startRolloutWorker(options: {
  db: Db;
  redis: RedisStore;
  logger: Logger;
  publisher?: EventPublisher | undefined;
  /** @defaultValue 60 s */
  sweepEveryMs?: number | undefined;
}): Promise<RolloutWorker> {
  const { deps, queue, close } = openDeployDeps(options);
  await queue.upsertJobScheduler(
    ROLLOUT_JOBS.sweep,
    { every: options.sweepEveryMs ?? 60_000 },
    { name: ROLLOUT_JOBS.sweep, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const worker = new Worker(QUEUES.rollout, rolloutStepProcessor(deps), {
    connection: options.redis.connection(),
    prefix: QUEUE_PREFIX,
    concurrency: 4,
  });
  worker.on('failed', (job, error) =>
    options.logger.warn(
      { err: error, job: job?.name, deployment: job?.data?.deploymentId },
      'rollout job failed',
    ),
  );
  worker.on('error', (error) => options.logger.warn({ err: error }, 'rollout worker error'));
  return {
    queue,
    async close() {
      await worker.close();
      await close();
    },
  };
}
