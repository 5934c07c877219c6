import type { Queue } from 'bullmq';
import type { Db, Queryable } from '../db/client.ts';
import type { DeployDeps } from '../deploy/records.ts';
import { reportStartupResult } from '../deploy/system-events.ts';
import { setVerificationRequirement, type VerificationRequirementFn } from '../deploy/verification.ts';
import { startupChecksFor } from './checks.ts';
import { HEALTH_JOBS } from './schedule.ts';
import { firstStartupJob, startupJobOptions, type StartupReport, type StartupTarget } from './startup.ts';

/**
 * How health checks plug into the deployments' verification seam (core/deploy/verification.ts):
 *
 * 1. {@link startupRequirement}, registered with `setVerificationRequirement`, tells a new
 *    deployment whether it must verify: yes when a startup check applies to its server, environment
 *    and version, with the checks' largest `requiredPasses` and `startupTimeout` as the policy's
 *    defaults (a deploy request may override both).
 * 2. The deployment waits in `verifying`. {@link startPendingVerifications}, run every few seconds
 *    by the health workers, finds it and queues the first round of its startup checks (once per
 *    deployment, recorded in `startup_verifications`).
 * 3. Rounds repeat until every check has passed the policy's number of times in a row, or the
 *    deployment's deadline comes; the last round reports through {@link deploymentReporter}.
 */
export const startupRequirement: VerificationRequirementFn = async (db, target) => {
  const checks = await startupChecksFor(db, target);
  if (checks.length === 0) return { required: false };
  return {
    required: true,
    passes: Math.max(...checks.map((c) => c.requiredPasses)),
    timeoutMs: Math.max(...checks.map((c) => c.startupTimeoutMs)),
  };
};

/** Makes new deployments wait for their startup checks. Every process that creates deployments calls it. */
export function registerStartupRequirement(): void {
  setVerificationRequirement(startupRequirement);
}

interface VerifyingRow {
  id: string;
  org_id: string;
  server: string;
  environment: string;
  version: string;
  policy: { verification?: { passes?: number } };
  verification: { deadline?: string } | null;
}

/**
 * Queues the first round for each deployment in `verifying` that none has been queued for. A
 * deployment no startup check applies to (verification asked for in the request) is marked and
 * left alone: its own deadline decides, or whoever reports results for it.
 */
export async function startPendingVerifications(db: Db, queue: Queue): Promise<number> {
  const rows = await db.query<VerifyingRow>(
    `SELECT d.id, d.org_id, s.slug AS server, e.name AS environment, d.version, d.policy, d.verification
     FROM deployments d
       JOIN servers s ON s.id = d.server_id
       JOIN environments e ON e.id = d.current_environment_id
     WHERE d.status = 'verifying'
       AND NOT EXISTS (SELECT 1 FROM startup_verifications v WHERE v.deployment_id = d.id)
     ORDER BY d.created_at LIMIT 100`,
  );
  let started = 0;
  for (const row of rows) {
    const target: StartupTarget = {
      deploymentId: row.id,
      orgId: row.org_id,
      server: row.server,
      environment: row.environment,
      version: row.version,
    };
    const deadline = row.verification?.deadline ? Date.parse(row.verification.deadline) : undefined;
    // Claim, then queue, in one transaction: if queuing fails the claim is undone and the next sweep retries.
    await db.transaction(async (tx) => {
      const first = await firstStartupJob(tx, target, {
        requiredPasses: row.policy.verification?.passes,
        deadline,
      });
      const queued = 'deadline' in first;
      const [claimed] = await tx.query(
        `INSERT INTO startup_verifications (deployment_id, org_id, queued) VALUES ($1, $2, $3)
         ON CONFLICT (deployment_id) DO NOTHING RETURNING deployment_id`,
        [row.id, row.org_id, queued],
      );
      if (!claimed || !queued) return;
      await queue.add(HEALTH_JOBS.startup, first, startupJobOptions(first, 0));
      started++;
    });
  }
  return started;
}

/**
 * Reports a finished verification to the deployment. The deployments count passed reports up to
 * their policy's number; the rounds already counted passes in a row, so a pass is reported until
 * the deployment leaves `verifying`. A late or repeated report changes nothing.
 */
export function deploymentReporter(deps: DeployDeps) {
  return async (target: StartupTarget, report: StartupReport): Promise<void> => {
    if (!report.passed) {
      await reportStartupResult(deps, target.deploymentId, { passed: false, detail: report.detail });
      return;
    }
    for (let i = 0; i <= 100; i++) {
      const view = await reportStartupResult(deps, target.deploymentId, {
        passed: true,
        detail: report.detail,
      });
      if (!view || view.status !== 'verifying') return;
    }
  };
}

/** Whether a deployment's startup verification was taken up (and queued, when checks applied). */
export async function verificationStarted(
  db: Queryable,
  deploymentId: string,
): Promise<{ queued: boolean } | undefined> {
  const [row] = await db.query<{ queued: boolean }>(
    'SELECT queued FROM startup_verifications WHERE deployment_id = $1',
    [deploymentId],
  );
  return row;
}
