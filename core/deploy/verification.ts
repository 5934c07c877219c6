/**
 * The seam between deployments and startup checks. A deployment whose policy requires verification
 * waits in `verifying` (traffic weight 0) until its startup checks report enough consecutive passes,
 * a failure, or the deadline passes. Whoever runs the checks (the health-check workers) calls
 * {@link reportStartupResult}; whether a deployment needs verification at all comes from the
 * requirement function, which the health checks register with {@link setVerificationRequirement}.
 * Until one is registered, deployments need no verification unless their request asks for it.
 *
 * The same seam carries canary-analysis verdicts for steps with `analyze: true`
 * ({@link reportAnalysisResult}).
 */
import type { Queryable } from '../db/client.ts';
import type { DeploymentView, DeployDeps } from './service.ts';
import { applySystemEvent } from './service.ts';

export interface VerificationTarget {
  orgId: string;
  serverId: string;
  server: string;
  environment: string;
  version: string;
}

/** Whether a new deployment must pass startup checks, how many consecutive passes, and how long it may take. */
export interface VerificationRequirement {
  required: boolean;
  passes?: number;
  timeoutMs?: number;
}

export type VerificationRequirementFn = (
  db: Queryable,
  target: VerificationTarget,
) => Promise<VerificationRequirement>;

const NOT_REQUIRED: VerificationRequirementFn = async () => ({ required: false });
let requirement: VerificationRequirementFn = NOT_REQUIRED;

/** Registers how to tell whether a deployment needs verification (e.g. "the server has startup checks"). */
export function setVerificationRequirement(fn: VerificationRequirementFn | null): void {
  requirement = fn ?? NOT_REQUIRED;
}

export const verificationRequirement = (): VerificationRequirementFn => requirement;

export interface StartupResult {
  passed: boolean;
  /** What the checks saw, shown on the timeline (e.g. `GET /health 200 in 35 ms`). */
  detail?: string;
}

/**
 * One startup-check result for a deployment in `verifying`. Passes are counted; once the policy's
 * number of consecutive passes is reached the rollout starts (progressing); a failure ends it as
 * failed, or rolled-back when its policy says `rollbackOnFailure`. Results for a deployment that is
 * not verifying (any more) change nothing, so a checker may report late or twice.
 */
export function reportStartupResult(
  deps: DeployDeps,
  deploymentId: string,
  result: StartupResult,
): Promise<DeploymentView | undefined> {
  return applySystemEvent(
    deps,
    deploymentId,
    { type: 'verification-passed' },
    {
      action: 'deployment.verify',
      ...(result.passed
        ? {}
        : { reason: `startup check failed${result.detail ? `: ${result.detail}` : ''}` }),
      detail: { passed: result.passed, detail: result.detail ?? null },
    },
    async (tx, row) => {
      if (row.status !== 'verifying') return null;
      if (!result.passed) return { type: 'verification-failed', rollback: row.policy.rollbackOnFailure };
      const passes = (row.verification?.passes ?? 0) + 1;
      await tx.query('UPDATE deployments SET verification = $2 WHERE id = $1', [
        row.id,
        JSON.stringify({ ...row.verification, passes, detail: result.detail ?? null }),
      ]);
      return passes >= row.policy.verification.passes ? { type: 'verification-passed' } : null;
    },
  );
}

export interface AnalysisResult {
  passed: boolean;
  detail?: string;
}

/**
 * A canary analysis verdict for step `step` of a deployment. A pass moves a rollout waiting for it
 * on; a failure ends it (failed, or rolled-back with `rollbackOnFailure`). Verdicts for a step the
 * rollout has left change nothing.
 */
export function reportAnalysisResult(
  deps: DeployDeps,
  deploymentId: string,
  step: number,
  result: AnalysisResult,
): Promise<DeploymentView | undefined> {
  return applySystemEvent(
    deps,
    deploymentId,
    { type: 'analysis-passed', step },
    {
      action: 'deployment.analysis',
      ...(result.passed ? {} : { reason: `analysis failed${result.detail ? `: ${result.detail}` : ''}` }),
      detail: { passed: result.passed, detail: result.detail ?? null },
    },
    async (_tx, row) =>
      result.passed
        ? { type: 'analysis-passed', step }
        : { type: 'analysis-failed', step, rollback: row.policy.rollbackOnFailure },
  );
}
