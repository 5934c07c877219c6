/**
 * The seam between deployments and startup checks. A deployment whose policy requires verification
 * waits in `verifying` (traffic weight 0) until its startup checks report enough consecutive passes,
 * a failure, or the deadline passes. Whether a deployment needs verification at all comes from the
 * requirement function, which the health checks register with {@link setVerificationRequirement}.
 * Until one is registered, deployments need no verification unless their request asks for it.
 *
 * The results come back as system events (system-events.ts): `reportStartupResult` from whoever
 * runs the checks (the health-check workers), `reportAnalysisResult` for the canary-analysis
 * verdicts of steps with `analyze: true`. This file depends on nothing in core/deploy, so creating
 * a deployment (create.ts) asks it without a circle.
 */
import type { Queryable } from '../db/client.ts';

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
