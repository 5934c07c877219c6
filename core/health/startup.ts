import type { Queue } from 'bullmq';
import type { Queryable } from '../db/client.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { startupChecksFor } from './checks.ts';
import { formatMs, type HealthCheck } from './model.ts';
import { runCheck } from './run.ts';
import { HEALTH_JOBS } from './schedule.ts';

/** A deployment whose startup checks must pass before it progresses. */
export interface StartupTarget {
  deploymentId: string;
  orgId: string;
  server: string;
  environment: string;
  version: string;
}

/** One round of a startup verification; the state of the rounds before it travels in the job. */
export interface StartupJob extends StartupTarget {
  /** Epoch ms when the verification started. */
  startedAt: number;
  /** Epoch ms after which the verification fails. */
  deadline: number;
  /** Passes in a row so far, per check id. */
  passes: Record<string, number>;
  /** The last failure per check id. */
  lastErrors: Record<string, string>;
  /** Overrides every check's `requiredPasses` (a deployment policy's own figure). */
  requiredPasses?: number | undefined;
  round: number;
}

export interface StartupCheckReport {
  checkId: string;
  name: string;
  passes: number;
  required: number;
  lastError: string | null;
}

/** What goes to the deployments seam: passed or not, and a sentence saying why. */
export interface StartupReport {
  passed: boolean;
  detail: string;
  checks: StartupCheckReport[];
}

export type RoundOutcome = { done: StartupReport } | { next: StartupJob; delayMs: number };

export interface StartupOptions {
  /** Overrides the checks' `requiredPasses`. */
  requiredPasses?: number | undefined;
  /** Overrides the longest `startupTimeout` of the checks. */
  timeoutMs?: number | undefined;
  /** Epoch ms: overrides both timeouts (a deployment's own verification deadline). */
  deadline?: number | undefined;
}

/**
 * The first round's job for a deployment, or a report right away when no startup check applies to
 * its server, environment and version (nothing to wait for: it passes).
 */
export async function firstStartupJob(
  db: Queryable,
  target: StartupTarget,
  options: StartupOptions = {},
  now = Date.now(),
): Promise<StartupJob | StartupReport> {
  const checks = await startupChecksFor(db, target);
  if (checks.length === 0) {
    return { passed: true, detail: 'no startup checks apply to this deployment', checks: [] };
  }
  const timeoutMs = options.timeoutMs ?? Math.max(...checks.map((c) => c.startupTimeoutMs));
  return {
    ...target,
    startedAt: now,
    deadline: options.deadline ?? now + timeoutMs,
    passes: {},
    lastErrors: {},
    requiredPasses: options.requiredPasses,
    round: 0,
  };
}

/**
 * Queues the startup verification of a deployment on the health queue. Resolves with the report
 * when there is nothing to verify (the caller reports it at once), else with undefined: the
 * rounds run on the alerts workers and the last one reports. Queuing the same deployment twice is
 * a no-op (job ids are per deployment and round).
 */
export async function enqueueStartupVerification(
  db: Queryable,
  queue: Queue,
  target: StartupTarget,
  options: StartupOptions = {},
): Promise<StartupReport | undefined> {
  const first = await firstStartupJob(db, target, options);
  if (!('deadline' in first)) return first;
  await queue.add(HEALTH_JOBS.startup, first, startupJobOptions(first, 0));
  return undefined;
}

export function startupJobOptions(job: StartupJob, delayMs: number) {
  return {
    jobId: `startup:${job.deploymentId}:${job.round}`,
    delay: Math.max(0, delayMs),
    attempts: 3,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: 100,
    removeOnFail: 500,
  };
}

const LATE_START_GRACE_MS = 2_000;
/** Queue latency and bookkeeping allowed for a round beyond its checks' timeouts. */
const ROUND_MARGIN_MS = 500;

const required = (job: StartupJob, check: HealthCheck) => job.requiredPasses ?? check.requiredPasses;

/**
 * Runs the startup checks that have not yet passed enough times in a row, once each and at the
 * same time. A pass counts up; a failure starts the count again. Done when every check has its
 * passes (passed), or when the next round (after the shortest interval of the checks still
 * running) could not finish before the deadline (failed, naming each check still short and its
 * last error: reported before the deployment's own timeout, which only knows that time ran out).
 * Checks changed or removed meanwhile are taken as they are now.
 */
export async function startupRound(
  deps: { db: Queryable; warehouse: Warehouse },
  job: StartupJob,
  now: () => number = Date.now,
): Promise<RoundOutcome> {
  const checks = await startupChecksFor(deps.db, job);
  if (checks.length === 0) {
    return { done: { passed: true, detail: 'no startup checks apply to this deployment', checks: [] } };
  }
  const passes = { ...job.passes };
  const lastErrors = { ...job.lastErrors };
  const pending = checks.filter((c) => (passes[c.id] ?? 0) < required(job, c));
  // A round due before the deadline may start a little after it: the queue's latency is not the target's fault.
  if (now() < job.deadline + LATE_START_GRACE_MS) {
    await Promise.all(
      pending.map(async (check) => {
        const { result } = await runCheck(deps, check, {
          environment: job.environment,
          version: job.version,
          deploymentId: job.deploymentId,
        });
        if (result.ok) passes[check.id] = (passes[check.id] ?? 0) + 1;
        else {
          passes[check.id] = 0;
          lastErrors[check.id] = result.error;
        }
      }),
    );
  }
  const reports: StartupCheckReport[] = checks.map((c) => ({
    checkId: c.id,
    name: c.name,
    passes: passes[c.id] ?? 0,
    required: required(job, c),
    lastError: lastErrors[c.id] ?? null,
  }));
  const short = reports.filter((r) => r.passes < r.required);
  if (short.length === 0) {
    return {
      done: {
        passed: true,
        detail: `${reports.length === 1 ? 'the startup check' : `all ${reports.length} startup checks`} passed ${describeRequired(reports)}`,
        checks: reports,
      },
    };
  }
  const stillRunning = checks.filter((c) => (passes[c.id] ?? 0) < required(job, c));
  const interval = Math.min(...stillRunning.map((c) => c.intervalMs));
  // The next round could not finish before the deadline: fail now, with what the checks saw, rather
  // than let the deployment's own timeout fail it knowing only that time ran out.
  const roundMs = Math.max(...stillRunning.map((c) => c.timeoutMs)) + ROUND_MARGIN_MS;
  if (now() + interval + roundMs > job.deadline) {
    return {
      done: {
        passed: false,
        detail: short
          .map(
            (r) =>
              `startup check "${r.name}" passed ${r.passes} of ${r.required} times in a row within ${formatMs(Math.max(1, Math.round((job.deadline - job.startedAt) / 1000)) * 1000)}` +
              (r.lastError ? `; last error: ${r.lastError}` : ''),
          )
          .join('; '),
        checks: reports,
      },
    };
  }
  return { next: { ...job, passes, lastErrors, round: job.round + 1 }, delayMs: interval };
}

function describeRequired(reports: StartupCheckReport[]): string {
  const counts = [...new Set(reports.map((r) => r.required))];
  const n = counts.length === 1 ? counts[0] : undefined;
  return n === undefined
    ? 'their required number of times in a row'
    : n === 1
      ? 'once'
      : `${n} times in a row`;
}
