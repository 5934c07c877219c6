import { Queue, Worker, type Job, type Processor } from 'bullmq';
import {
  evaluateAnalysis,
  overdueAnalyses,
  startStepAnalyses,
  type CanaryDeps,
  type StepAnalysisOptions,
} from '#core/canary/analysis.ts';
import { canaryScheduler, CANARY_JOBS } from '#core/canary/queue.ts';
import type { Db } from '#core/db/client.ts';
import { openDeployDeps } from '#core/deploy/wiring.ts';
import type { Logger } from '#core/logger.ts';
import type { EventPublisher } from '#core/notify/events.ts';
import { createEventPublisher } from '#core/notify/publisher.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import type { Warehouse } from '#core/warehouse/client.ts';

/**
 * Runs the canary queue: evaluations of running analyses (interim scores, the final verdict and
 * what it does to the rollout) and the sweep that starts an analysis for every canary step waiting
 * for one and re-evaluates analyses whose job was lost. Evaluations are idempotent: a finished
 * analysis is left as it is, and only the evaluation that stores the verdict acts on the rollout.
 */
export function canaryProcessor(deps: CanaryDeps, step: StepAnalysisOptions = {}): Processor {
  return async (job: Job) => {
    switch (job.name) {
      case CANARY_JOBS.evaluate:
        return (await evaluateAnalysis(deps, (job.data as { analysisId: string }).analysisId)) ?? 'gone';
      case CANARY_JOBS.sweep: {
        const started = await startStepAnalyses(deps, step);
        const overdue = await overdueAnalyses(deps.db);
        for (const id of overdue) await evaluateAnalysis(deps, id);
        return { started: started.length, overdue: overdue.length };
      }
      default:
        throw new Error(`no canary processor for job ${job.name}`);
    }
  };
}

export interface CanaryWorker {
  queue: Queue;
  close(): Promise<void>;
}

export async function startCanaryWorker(options: {
  db: Db;
  redis: RedisStore;
  warehouse: Warehouse;
  logger: Logger;
  publisher?: EventPublisher | undefined;
  /** How often canary steps waiting for an analysis are looked for. @defaultValue 15 s */
  sweepEveryMs?: number | undefined;
  step?: StepAnalysisOptions | undefined;
}): Promise<CanaryWorker> {
  const publisher =
    options.publisher ??
    createEventPublisher({ db: options.db, redis: options.redis, logger: options.logger });
  const deploy = openDeployDeps({ ...options, publisher });
  const queue = new Queue(QUEUES.canary, { connection: options.redis.connection(), prefix: QUEUE_PREFIX });
  queue.on('error', (error) => options.logger.warn({ err: error }, 'canary queue error'));
  await queue.upsertJobScheduler(
    CANARY_JOBS.sweep,
    { every: options.sweepEveryMs ?? 15_000 },
    { name: CANARY_JOBS.sweep, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const deps: CanaryDeps = {
    db: options.db,
    warehouse: options.warehouse,
    publisher,
    scheduler: canaryScheduler(queue),
    deploy: deploy.deps,
    logger: options.logger,
  };
  const worker = new Worker(QUEUES.canary, canaryProcessor(deps, options.step), {
    connection: options.redis.connection(),
    prefix: QUEUE_PREFIX,
    // chDB runs one query at a time in-process; two evaluations in parallel only queue there.
    concurrency: 2,
  });
  worker.on('failed', (job, error) =>
    options.logger.warn({ err: error, job: job?.name, analysis: job?.data?.analysisId }, 'canary job failed'),
  );
  worker.on('error', (error) => options.logger.warn({ err: error }, 'canary worker error'));
  return {
    queue,
    async close() {
      await worker.close();
      await queue.close();
      await deploy.close();
    },
  };
}
