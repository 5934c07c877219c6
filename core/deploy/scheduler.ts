import type { Queue } from 'bullmq';

/** The delayed jobs of the `rollout` queue. Each is idempotent: it re-reads the deployment and does nothing if it moved on. */
export const ROLLOUT_JOBS = {
  /** A step's timed pause is over: advance, if the rollout is still paused at that step until then. */
  timer: 'rollout-timer',
  /** Staged: check the next environment's gates again. */
  gates: 'rollout-gates',
  /** Startup checks did not pass in time. */
  verificationTimeout: 'rollout-verification-timeout',
  /** Every minute: advances whatever is due, in case a delayed job was lost (Redis flushed, enqueue failed). */
  sweep: 'rollout-sweep',
} as const;

export type RolloutJob =
  | { name: typeof ROLLOUT_JOBS.timer; deploymentId: string; step: number; until: number }
  | { name: typeof ROLLOUT_JOBS.gates; deploymentId: string; step: number }
  | { name: typeof ROLLOUT_JOBS.verificationTimeout; deploymentId: string };

/** Schedules rollout jobs; the service calls it after its transaction committed. */
export interface RolloutScheduler {
  schedule(job: RolloutJob, at: number): Promise<void>;
}

/** The job id: one job per deployment, step and due time, so scheduling twice enqueues once. */
export function jobId(job: RolloutJob, at: number): string {
  const step = 'step' in job ? job.step : 'v';
  return `${job.name}.${job.deploymentId}.${step}.${at}`;
}

/** Delayed BullMQ jobs on the rollout queue. */
export function queueScheduler(queue: Pick<Queue, 'add'>): RolloutScheduler {
  return {
    async schedule(job, at) {
      await queue.add(job.name, job, {
        jobId: jobId(job, at),
        delay: Math.max(at - Date.now(), 0),
        removeOnComplete: 1000,
        removeOnFail: 1000,
        attempts: 5,
        backoff: { type: 'exponential', delay: 1000 },
      });
    },
  };
}

/** For callers that rely on the sweep alone (tests of the pure service, one-off scripts). */
export const noScheduler: RolloutScheduler = { schedule: async () => {} };
