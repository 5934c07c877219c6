import { Queue, Worker, type Processor } from 'bullmq';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import { JOBS, QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import { auditChainCheckProcessor } from './processors/audit-chain-check.ts';

export interface WorkerDeps {
  db: Db;
  redis: RedisStore;
  logger: Logger;
  /** @defaultValue 15 minutes */
  auditCheckEveryMs?: number;
}

export interface Workers {
  queues: { maintenance: Queue };
  close(): Promise<void>;
}

/**
 * The only place that knows about BullMQ connections. Job schedulers are upserted by every
 * alerts process; BullMQ keeps one per id, so running several is safe.
 */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const connection = deps.redis.connection();
  const maintenance = new Queue(QUEUES.maintenance, { connection, prefix: QUEUE_PREFIX });
  await maintenance.upsertJobScheduler(
    JOBS.auditChainCheck,
    { every: deps.auditCheckEveryMs ?? 15 * 60_000 },
    { name: JOBS.auditChainCheck, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  const processors: Record<string, Processor> = { [JOBS.auditChainCheck]: auditChainCheckProcessor(deps) };
  const worker = new Worker(
    QUEUES.maintenance,
    async (job, token) => {
      const processor = processors[job.name];
      if (!processor) throw new Error(`no processor for job ${job.name}`);
      return processor(job, token);
    },
    { connection: deps.redis.connection(), prefix: QUEUE_PREFIX, concurrency: 1 },
  );
  worker.on('failed', (job, error) => deps.logger.warn({ err: error, job: job?.name }, 'job failed'));
  worker.on('error', (error) => deps.logger.warn({ err: error }, 'worker error'));
  return {
    queues: { maintenance },
    async close() {
      await worker.close();
      await maintenance.close();
    },
  };
}
