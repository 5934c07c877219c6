import type { Queue } from 'bullmq';
import type { Queryable } from '../db/client.ts';
import { isPeriodic, listPeriodicChecks, type CheckScheduler } from './checks.ts';

/** Job names on the health queue (`QUEUES.health`). */
export const HEALTH_JOBS = {
  /** One run of a runtime or dependency check; data {@link CheckJob}. */
  check: 'health-check',
  /** One round of a deployment's startup checks; data `StartupJob` (startup.ts). */
  startup: 'startup-verification',
  /** Brings the job schedulers back in line with the checks table. */
  reconcile: 'health-reconcile',
  /** Finds deployments waiting in `verifying` and queues their first startup round. */
  startupSweep: 'startup-sweep',
} as const;

/**
 * Upserts the housekeeping schedulers of the health queue and reconciles the check schedulers once.
 * Every alerts process calls it at start; BullMQ keeps one scheduler per id.
 */
export async function scheduleHealthHousekeeping(
  db: Queryable,
  queue: Queue,
  options: { reconcileEveryMs?: number; startupSweepEveryMs?: number } = {},
): Promise<void> {
  await queue.upsertJobScheduler(
    HEALTH_JOBS.reconcile,
    { every: options.reconcileEveryMs ?? 5 * 60_000 },
    { name: HEALTH_JOBS.reconcile, opts: JOB_OPTIONS },
  );
  await queue.upsertJobScheduler(
    HEALTH_JOBS.startupSweep,
    { every: options.startupSweepEveryMs ?? 2_000 },
    { name: HEALTH_JOBS.startupSweep, opts: { removeOnComplete: 10, removeOnFail: 100 } },
  );
  await reconcileSchedules(db, queue);
}

export interface CheckJob {
  checkId: string;
}

const SCHEDULER_PREFIX = 'health-check:';
export const schedulerId = (checkId: string) => `${SCHEDULER_PREFIX}${checkId}`;

const JOB_OPTIONS = { removeOnComplete: 100, removeOnFail: 500 } as const;

/** A {@link CheckScheduler} backed by one BullMQ job scheduler per periodic check. */
export function queueScheduler(queue: Queue): CheckScheduler {
  return {
    async sync(check) {
      if (!isPeriodic(check)) {
        await queue.removeJobScheduler(schedulerId(check.id));
        return;
      }
      await queue.upsertJobScheduler(
        schedulerId(check.id),
        { every: check.intervalMs },
        { name: HEALTH_JOBS.check, data: { checkId: check.id } satisfies CheckJob, opts: JOB_OPTIONS },
      );
    },
    async remove(checkId) {
      await queue.removeJobScheduler(schedulerId(checkId));
    },
  };
}

/**
 * Makes the job schedulers match the table: one per enabled runtime/dependency check, at its
 * interval, and none for anything else. Run when workers start and every few minutes, so a
 * scheduler lost with Redis's data, or left by a change whose transaction failed, is repaired.
 * Schedulers already right are left alone, so their runs keep their rhythm.
 */
export async function reconcileSchedules(
  db: Queryable,
  queue: Queue,
): Promise<{ upserted: number; removed: number }> {
  const checks = await listPeriodicChecks(db);
  const wanted = new Map(checks.map((c) => [schedulerId(c.id), c]));
  const existing = new Map<string, number | undefined>();
  const pageSize = 500;
  for (let start = 0; ; start += pageSize) {
    const page = await queue.getJobSchedulers(start, start + pageSize - 1, true);
    for (const s of page) {
      if (s.key.startsWith(SCHEDULER_PREFIX)) existing.set(s.key, s.every ? Number(s.every) : undefined);
    }
    if (page.length < pageSize) break;
  }
  const scheduler = queueScheduler(queue);
  let upserted = 0;
  let removed = 0;
  for (const [id, check] of wanted) {
    if (existing.get(id) === check.intervalMs) continue;
    await scheduler.sync(check);
    upserted++;
  }
  for (const id of existing.keys()) {
    if (wanted.has(id)) continue;
    await queue.removeJobScheduler(id);
    removed++;
  }
  return { upserted, removed };
}
