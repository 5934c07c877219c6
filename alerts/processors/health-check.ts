import { UnrecoverableError, type Job, type Processor, type Queue } from 'bullmq';
import type { Db } from '#core/db/client.ts';
import { isPeriodic, loadCheck, stableVersion } from '#core/health/checks.ts';
import { runCheck } from '#core/health/run.ts';
import { HEALTH_JOBS, reconcileSchedules, schedulerId, type CheckJob } from '#core/health/schedule.ts';
import {
  startupJobOptions,
  startupRound,
  type StartupJob,
  type StartupReport,
  type StartupTarget,
} from '#core/health/startup.ts';
import { startPendingVerifications } from '#core/health/verification.ts';
import type { Logger } from '#core/logger.ts';
import type { Warehouse } from '#core/warehouse/client.ts';

export interface HealthProcessorDeps {
  db: Db;
  warehouse: Warehouse;
  /** The health queue itself: startup rounds queue their successor, stale schedulers are removed. */
  queue: Queue;
  logger: Logger;
  /** Hands a finished startup verification to the deployments (which ignore a second report). */
  reportStartup(target: StartupTarget, report: StartupReport): Promise<void>;
}

/**
 * Runs the jobs of the health queue: periodic check runs (from one job scheduler per check),
 * rounds of deployments' startup verifications and the sweep that starts them, and the
 * reconciliation of the schedulers. Every
 * probe is bounded by its check's timeout, so no job holds a worker longer than that.
 */
export function healthCheckProcessor(deps: HealthProcessorDeps): Processor {
  return async (job: Job) => {
    switch (job.name) {
      case HEALTH_JOBS.check:
        return runPeriodic(deps, (job.data as CheckJob).checkId);
      case HEALTH_JOBS.startup:
        return runStartupRound(deps, job.data as StartupJob);
      case HEALTH_JOBS.reconcile:
        return reconcileSchedules(deps.db, deps.queue);
      case HEALTH_JOBS.startupSweep:
        return { started: await startPendingVerifications(deps.db, deps.queue) };
      default:
        throw new UnrecoverableError(`no processor for job ${job.name} on the health queue`);
    }
  };
}

async function runPeriodic(deps: HealthProcessorDeps, checkId: string) {
  const check = await loadCheck(deps.db, checkId);
  if (!check || !isPeriodic(check)) {
    // Deleted or disabled while this run was queued, or a scheduler left by a failed change.
    await deps.queue.removeJobScheduler(schedulerId(checkId));
    return { skipped: check ? 'not periodic' : 'deleted' };
  }
  const fallbackVersion = check.environment
    ? await stableVersion(deps.db, {
        orgId: check.orgId,
        server: check.server,
        environment: check.environment,
      })
    : undefined;
  const { result } = await runCheck(deps, check, { fallbackVersion });
  if (!result.ok) {
    deps.logger.debug({ check: check.id, server: check.server, error: result.error }, 'health check failed');
  }
  return { ok: result.ok, latencyMs: result.latencyMs, error: result.error };
}

/**
 * One round of a startup verification, then either the next round (delayed) or the report. The
 * next round's job id is per deployment and round, so a retried job does not fork the chain.
 */
export async function runStartupRound(deps: HealthProcessorDeps, data: StartupJob) {
  const outcome = await startupRound(deps, data);
  if ('next' in outcome) {
    await deps.queue.add(HEALTH_JOBS.startup, outcome.next, startupJobOptions(outcome.next, outcome.delayMs));
    return { round: data.round, next: outcome.next.round, delayMs: outcome.delayMs };
  }
  await deps.reportStartup(data, outcome.done);
  deps.logger.info(
    { deployment: data.deploymentId, passed: outcome.done.passed, detail: outcome.done.detail },
    'startup verification finished',
  );
  return outcome.done;
}
