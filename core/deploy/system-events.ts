/**
 * Events Pylee applies on its own: timed pauses that end, staged rollouts' gates re-checked,
 * verification deadlines, startup-check results and canary-analysis verdicts, and the sweep that
 * catches up on whatever is due. Each re-reads its deployment under lock and does nothing if the
 * rollout moved on, so a job delivered twice or late is harmless.
 */
import type { Context } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { applyEvent, GATE_RECHECK_MS, pyleePrincipal, stageReady } from './apply.ts';
import { withOutbox } from './outbox.ts';
import {
  loadRow,
  toView,
  type DeployDeps,
  type DeploymentView,
  type LoadedRow,
  type VerificationState,
} from './records.ts';
import type { Pause, RolloutEvent } from './rollout.ts';
import { ROLLOUT_JOBS } from './scheduler.ts';

/** Applies an automatic event as Pylee itself, if the deployment still exists; idempotent. */
export function applySystemEvent(
  deps: DeployDeps,
  deploymentId: string,
  event: RolloutEvent,
  meta: { action: string; reason?: string; detail?: Record<string, unknown> },
  prepare?: (tx: Queryable, row: LoadedRow) => Promise<RolloutEvent | null>,
): Promise<DeploymentView | undefined> {
  return withOutbox(deps, async (tx, outbox) => {
    const peek = await loadRow(tx, deploymentId);
    if (!peek) return undefined;
    // Same lock order as requests: the server, then the deployment.
    await tx.query('SELECT id FROM servers WHERE id = $1 FOR UPDATE', [peek.server_id]);
    const row = (await loadRow(tx, deploymentId, true)) as LoadedRow;
    const chosen = prepare ? await prepare(tx, row) : event;
    if (!chosen) return toView((await loadRow(tx, deploymentId)) as LoadedRow);
    const ctx: Context = { principal: await pyleePrincipal(tx, row) };
    return toView(await applyEvent(tx, outbox, row, chosen, { ctx, ...meta }));
  });
}

/** A step's timed pause is over. */
export function onTimer(deps: DeployDeps, deploymentId: string, step: number) {
  return applySystemEvent(
    deps,
    deploymentId,
    { type: 'timer-elapsed', step },
    { action: 'deployment.advance', detail: { why: 'pause-elapsed' } },
    async (_tx, row) => {
      // A stale job (the pause was extended by a manual pause and resume) does nothing.
      if (row.pause?.kind !== 'timer' || row.pause.until > Date.now() + 250) return null;
      return { type: 'timer-elapsed', step };
    },
  );
}

/** Staged: look at the next stage's gates again. */
export function onGateCheck(deps: DeployDeps, deploymentId: string, step: number) {
  return applySystemEvent(
    deps,
    deploymentId,
    { type: 'gates-passed', step },
    { action: 'deployment.advance', detail: { why: 'gates-passed' } },
    async (tx, row) => {
      if (row.status !== 'progressing' || row.awaiting !== 'gates' || row.current_step !== step) return null;
      const ready = await stageReady(tx, row, step + 1, await pyleePrincipal(tx, row));
      return ready.ok ? { type: 'gates-passed', step } : null;
    },
  ).then(async (view) => {
    // Still waiting: look again later.
    if (view && view.status === 'progressing' && view.awaiting === 'gates' && view.currentStep === step) {
      await deps.scheduler.schedule(
        { name: ROLLOUT_JOBS.gates, deploymentId, step },
        Date.now() + GATE_RECHECK_MS,
      );
    }
    return view;
  });
}

/** Startup checks did not pass before the deadline. */
export function onVerificationTimeout(deps: DeployDeps, deploymentId: string) {
  return applySystemEvent(
    deps,
    deploymentId,
    { type: 'verification-failed', rollback: false },
    { action: 'deployment.verify', reason: 'startup checks did not pass in time' },
    async (_tx, row) => {
      const deadline = row.verification?.deadline ? Date.parse(row.verification.deadline) : Infinity;
      if (row.status !== 'verifying' || deadline > Date.now() + 250) return null;
      return { type: 'verification-failed', rollback: row.policy.rollbackOnFailure };
    },
  );
}

/** Advances whatever is due (timers, verification deadlines, gates); returns how many it moved. */
export async function sweepDue(deps: DeployDeps): Promise<number> {
  const due = await deps.db.query<{
    id: string;
    status: string;
    current_step: number;
    awaiting: string | null;
    pause: Pause | null;
    verification: VerificationState | null;
  }>(
    `SELECT id, status, current_step, awaiting, pause, verification FROM deployments WHERE status IN ('verifying', 'progressing', 'paused')`,
  );
  let moved = 0;
  const now = Date.now();
  for (const d of due) {
    let view: DeploymentView | undefined;
    if (d.status === 'paused' && d.pause?.kind === 'timer' && d.pause.until <= now)
      view = await onTimer(deps, d.id, d.current_step);
    else if (
      d.status === 'verifying' &&
      d.verification?.deadline &&
      Date.parse(d.verification.deadline) <= now
    )
      view = await onVerificationTimeout(deps, d.id);
    else if (d.status === 'progressing' && d.awaiting === 'gates') {
      view = await applySystemEvent(
        deps,
        d.id,
        { type: 'gates-passed', step: d.current_step },
        { action: 'deployment.advance', detail: { why: 'gates-passed' } },
        async (tx, row) => {
          if (row.status !== 'progressing' || row.awaiting !== 'gates') return null;
          const ready = await stageReady(tx, row, row.current_step + 1, await pyleePrincipal(tx, row));
          return ready.ok ? { type: 'gates-passed', step: row.current_step } : null;
        },
      );
    }
    if (view && (view.status !== d.status || view.currentStep !== d.current_step)) moved += 1;
  }
  return moved;
}

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
