import { Queue, Worker, type Processor } from 'bullmq';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import { JOBS, QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import { openDeployDeps } from '#core/deploy/wiring.ts';
import { createEventPublisher } from '#core/notify/publisher.ts';
import { scheduleHealthHousekeeping } from '#core/health/schedule.ts';
import { deploymentReporter, registerStartupRequirement } from '#core/health/verification.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import { advisoriesImportProcessor } from './processors/advisories-import.ts';
import { auditChainCheckProcessor } from './processors/audit-chain-check.ts';
import { retentionApplyProcessor } from './processors/retention-apply.ts';
import { sessionRollupProcessor } from './processors/session-rollup.ts';
import { startAlertWorkers, type AlertWorkerDeps, type AlertWorkers } from './processors/alert-evaluate.ts';
import { startNotifyWorker, type NotifyWorker, type NotifyWorkerDeps } from './processors/notify.ts';
import { healthCheckProcessor } from './processors/health-check.ts';
import { startRolloutWorker } from './processors/rollout-step.ts';
import { startCanaryWorker, type CanaryWorker } from './processors/canary-analysis.ts';
import type { StepAnalysisOptions } from '#core/canary/analysis.ts';

export interface WorkerDeps {
  db: Db;
  redis: RedisStore;
  logger: Logger;
  /** @defaultValue 15 minutes */
  auditCheckEveryMs?: number;
  /** How often version-retention policies are applied. @defaultValue 24 hours */
  retentionEveryMs?: number;
  /** How often sessions are settled into the release-health rollups. @defaultValue 60 s */
  sessionRollupEveryMs?: number;
  /** Health checks (and startup verification) run only with a warehouse to write results to. */
  warehouse?: Warehouse;
  /** How often deployments waiting in `verifying` are looked for. @defaultValue 2 s */
  startupSweepEveryMs?: number;
  /** How often the rollout sweep advances due steps whose delayed job was lost. @defaultValue 60 s */
  rolloutSweepEveryMs?: number;
  /** Opens channel URLs and signing secrets: notification deliveries run only when it is given. */
  secretBox?: SecretBox;
  /** Delivery settings (SSRF policy from PYLEE_ALLOW_PRIVATE_WEBHOOKS, links from PYLEE_PUBLIC_URL, retries). */
  notify?: Partial<Omit<NotifyWorkerDeps, 'db' | 'redis' | 'logger' | 'box'>>;
  /** Canary analyses (run only with a warehouse): how often steps waiting for one are looked for, and step analysis settings. */
  canary?: { sweepEveryMs?: number; step?: StepAnalysisOptions };
  /** OSV exports imported on a schedule (PYLEE_ADVISORIES_URL); none: the schedule is removed. */
  advisories?: { urls: string[]; everyMs: number };
  /** Alert-rule evaluation settings; rules are evaluated only with a warehouse. */
  alerts?: Partial<
    Pick<AlertWorkerDeps, 'concurrency' | 'reconcileEveryMs' | 'dispatchTickMs' | 'publisher'>
  >;
}

export interface Workers {
  queues: { maintenance: Queue; health?: Queue; alerts?: Queue; canary?: Queue };
  close(): Promise<void>;
}

/**
 * The only place that knows about BullMQ connections. Job schedulers are upserted by every
 * alerts process; BullMQ keeps one per id, so running several is safe.
 */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const connection = deps.redis.connection();
  const maintenance = new Queue(QUEUES.maintenance, { connection, prefix: QUEUE_PREFIX });
  // The store's connection logs losing Redis once; without a listener BullMQ would print every error.
  maintenance.on('error', (error) => deps.logger.debug({ err: error }, 'maintenance queue error'));
  await maintenance.upsertJobScheduler(
    JOBS.auditChainCheck,
    { every: deps.auditCheckEveryMs ?? 15 * 60_000 },
    { name: JOBS.auditChainCheck, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
  await maintenance.upsertJobScheduler(
    JOBS.retentionApply,
    { every: deps.retentionEveryMs ?? 24 * 60 * 60_000 },
    { name: JOBS.retentionApply, opts: { removeOnComplete: 30, removeOnFail: 30 } },
  );
  const processors: Record<string, Processor> = {
    [JOBS.auditChainCheck]: auditChainCheckProcessor(deps),
    [JOBS.retentionApply]: retentionApplyProcessor(deps),
  };
  if (deps.warehouse) {
    await maintenance.upsertJobScheduler(
      JOBS.sessionRollup,
      { every: deps.sessionRollupEveryMs ?? 60_000 },
      { name: JOBS.sessionRollup, opts: { removeOnComplete: 100, removeOnFail: 100 } },
    );
    processors[JOBS.sessionRollup] = sessionRollupProcessor({ ...deps, warehouse: deps.warehouse });
  }
  if (deps.advisories?.urls.length) {
    await maintenance.upsertJobScheduler(
      JOBS.advisoriesImport,
      { every: deps.advisories.everyMs },
      { name: JOBS.advisoriesImport, opts: { removeOnComplete: 20, removeOnFail: 20 } },
    );
    processors[JOBS.advisoriesImport] = advisoriesImportProcessor({
      db: deps.db,
      logger: deps.logger,
      publisher: createEventPublisher(deps),
      urls: deps.advisories.urls,
    });
  } else {
    await maintenance.removeJobScheduler(JOBS.advisoriesImport);
  }
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

  // Health checks: a scheduler per runtime/dependency check, startup rounds for deployments in `verifying`.
  let health: { queue: Queue; worker: Worker; deploy: ReturnType<typeof openDeployDeps> } | undefined;
  if (deps.warehouse) {
    registerStartupRequirement();
    const queue = new Queue(QUEUES.health, { connection, prefix: QUEUE_PREFIX });
    queue.on('error', (error) => deps.logger.debug({ err: error }, 'health-checks queue error'));
    const deploy = openDeployDeps(deps);
    const processor = healthCheckProcessor({
      ...deps,
      warehouse: deps.warehouse,
      queue,
      reportStartup: deploymentReporter(deploy.deps),
    });
    const healthWorker = new Worker(QUEUES.health, processor, {
      connection: deps.redis.connection(),
      prefix: QUEUE_PREFIX,
      concurrency: 8,
    });
    healthWorker.on('failed', (job, error) => deps.logger.warn({ err: error, job: job?.name }, 'job failed'));
    healthWorker.on('error', (error) => deps.logger.warn({ err: error }, 'worker error'));
    health = { queue, worker: healthWorker, deploy };
    await scheduleHealthHousekeeping(deps.db, queue, { startupSweepEveryMs: deps.startupSweepEveryMs });
  }
  // Rollout steps: timed pauses, staged gate re-checks, verification deadlines.
  const rollout = await startRolloutWorker({
    db: deps.db,
    redis: deps.redis,
    logger: deps.logger,
    sweepEveryMs: deps.rolloutSweepEveryMs,
  });
  // Notification deliveries and the sweeper that re-enqueues pending ones Redis lost.
  let notify: NotifyWorker | undefined;
  if (deps.secretBox) {
    notify = await startNotifyWorker({
      db: deps.db,
      redis: deps.redis,
      logger: deps.logger,
      box: deps.secretBox,
      ...deps.notify,
      policy: deps.notify?.policy ?? { allowPrivate: false },
    });
  }
  // Alert rules: a job scheduler per enabled rule, evaluation workers, the notification-group dispatcher.
  let alerts: AlertWorkers | undefined;
  if (deps.warehouse) {
    alerts = await startAlertWorkers({
      db: deps.db,
      redis: deps.redis,
      warehouse: deps.warehouse,
      logger: deps.logger,
      publisher: createEventPublisher(deps),
      ...deps.alerts,
    });
  }
  // Canary analyses: evaluations of running analyses and the sweep that starts them for canary steps.
  let canary: CanaryWorker | undefined;
  if (deps.warehouse) {
    canary = await startCanaryWorker({
      db: deps.db,
      redis: deps.redis,
      warehouse: deps.warehouse,
      logger: deps.logger,
      sweepEveryMs: deps.canary?.sweepEveryMs,
      step: deps.canary?.step,
    });
  }
  return {
    queues: {
      maintenance,
      ...(health ? { health: health.queue } : {}),
      ...(alerts ? { alerts: alerts.queue } : {}),
      ...(canary ? { canary: canary.queue } : {}),
    },
    async close() {
      // Together: each stops taking jobs at once and waits only for its own running ones (which enqueue
      // through queues of their own), so no worker keeps polling a Redis that is going away meanwhile.
      await Promise.all([
        alerts?.close(),
        canary?.close(),
        rollout.close(),
        worker.close(),
        notify?.close(),
        health?.worker.close(),
      ]);
      await maintenance.close();
      await health?.queue.close();
      await health?.deploy.close();
    },
  };
}
