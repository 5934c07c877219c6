import { Queue, Worker, type Job } from 'bullmq';
import { startAlertDispatcher, type AlertDispatcher } from '#core/alerting/dispatcher.ts';
import { evaluationBatcher } from '#core/alerting/batcher.ts';
import type { EvaluationSummary } from '#core/alerting/engine.ts';
import { EVALUATE_JOB, reconcileSchedules, type EvaluateJobData } from '#core/alerting/schedule.ts';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import type { EventPublisher } from '#core/notify/events.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import type { Warehouse } from '#core/warehouse/client.ts';

export interface AlertWorkerDeps {
  db: Db;
  warehouse: Warehouse;
  redis: RedisStore;
  logger: Logger;
  publisher: EventPublisher;
  /**
   * Evaluation jobs this process holds at once; the rules of the jobs it holds are evaluated
   * together in batches (batcher.ts), so this bounds a batch. @defaultValue 256
   */
  concurrency?: number;
  /** How often schedulers are checked against the rules in Postgres. @defaultValue 30 s */
  reconcileEveryMs?: number;
  /** Dispatcher poll interval. @defaultValue 500 ms */
  dispatchTickMs?: number;
}

export interface AlertWorkers {
  queue: Queue<EvaluateJobData>;
  dispatcher: AlertDispatcher;
  worker: Worker<EvaluateJobData, EvaluationSummary>;
  close(): Promise<void>;
}

/**
 * Evaluates one rule per job, in a batch with the other jobs the process holds at the time; a
 * group made due by the evaluation is dispatched right away.
 */
export function alertEvaluateProcessor(deps: { db: Db; warehouse: Warehouse; dispatcher: AlertDispatcher }) {
  const batcher = evaluationBatcher(deps);
  return async (job: Job<EvaluateJobData>): Promise<EvaluationSummary> => {
    const summary = await batcher.evaluate(job.data.ruleId);
    if (summary.groupDueAt !== null) deps.dispatcher.kick(summary.groupDueAt);
    return summary;
  };
}

/**
 * The alert-rule workers of an alerts process: a Worker on the `alerts` queue, the job schedulers
 * reconciled with the rules at start and every `reconcileEveryMs`, and the notification dispatcher.
 */
export async function startAlertWorkers(deps: AlertWorkerDeps): Promise<AlertWorkers> {
  const log = deps.logger.child({ component: 'alert-rules' });
  const queue = new Queue<EvaluateJobData>(QUEUES.alerts, {
    connection: deps.redis.connection(),
    prefix: QUEUE_PREFIX,
  });
  queue.on('error', (error) => log.debug({ err: error }, 'alerts queue connection error'));
  const dispatcher = startAlertDispatcher({
    db: deps.db,
    publisher: deps.publisher,
    logger: log,
    tickMs: deps.dispatchTickMs,
  });
  const reconcile = () =>
    reconcileSchedules(deps.db, queue).then(
      (r) => {
        if (r.upserted || r.removed) log.info(r, 'alert rule schedulers reconciled');
      },
      (error: unknown) => log.warn({ err: error }, 'reconciling alert rule schedulers failed'),
    );
  await reconcile();
  const timer = setInterval(() => void reconcile(), deps.reconcileEveryMs ?? 30_000);
  timer.unref();

  const process = alertEvaluateProcessor({ db: deps.db, warehouse: deps.warehouse, dispatcher });
  const worker = new Worker<EvaluateJobData, EvaluationSummary>(
    QUEUES.alerts,
    async (job) => {
      if (job.name !== EVALUATE_JOB) throw new Error(`no processor for job ${job.name}`);
      return process(job);
    },
    { connection: deps.redis.connection(), prefix: QUEUE_PREFIX, concurrency: deps.concurrency ?? 256 },
  );
  worker.on('failed', (job, error) =>
    log.warn({ err: error, rule: job?.data.ruleId }, 'alert rule evaluation failed'),
  );
  worker.on('error', (error) => log.warn({ err: error }, 'alert worker error'));
  return {
    queue,
    dispatcher,
    worker,
    async close() {
      clearInterval(timer);
      await worker.close();
      await dispatcher.close();
      await queue.close();
    },
  };
}
