/**
 * Applying one rollout event to a deployment: the state machine's transition (rollout.ts), then the
 * releases, timeline, audit, announcements and delayed jobs it implies, in the caller's transaction.
 */
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { ConflictError } from '../errors.ts';
import { newId } from '../ids.ts';
import { systemPrincipal } from '../orgs.ts';
import { evaluateGates, type EnvironmentRow, type GateResult } from './environments.ts';
import type { Outbox } from './outbox.ts';
import { ACTIVE_SQL, loadRow, stateOf, type DeploymentRow, type LoadedRow } from './records.ts';
import { desiredState, release, revertRelease } from './releases.ts';
import { InvalidAction, isActive, transition, type RolloutEvent, type RolloutState } from './rollout.ts';
import { ROLLOUT_JOBS } from './scheduler.ts';
import { pauseMs } from './strategies.ts';

/** How often a staged rollout waiting for a gate that has no known passing time looks again. */
export const GATE_RECHECK_MS = 60_000;

export interface Actor {
  ctx: Context;
  /** Audit action, e.g. deployment.promote or deployment.advance. */
  action: string;
  reason?: string | null | undefined;
  detail?: Record<string, unknown> | undefined;
}

export async function environmentById(tx: Queryable, orgId: string, name: string) {
  const [row] = await tx.query<EnvironmentRow>('SELECT * FROM environments WHERE org_id = $1 AND name = $2', [
    orgId,
    name,
  ]);
  return row;
}

/** Whether the rollout may enter staged step `index`: that environment's gates pass and no other rollout runs there. */
export async function stageReady(
  tx: Queryable,
  row: LoadedRow,
  index: number,
  principal: Principal,
): Promise<
  { ok: true } | { ok: false; detail: string; code: string; passesAt?: number | undefined; gate?: unknown }
> {
  const envName = row.steps[index]?.environment;
  if (envName === undefined) return { ok: true };
  const env = await environmentById(tx, row.org_id, envName);
  if (!env)
    return { ok: false, code: 'environment-not-found', detail: `environment ${envName} no longer exists` };
  const [busy] = await tx.query<{ id: string; version: string; status: string }>(
    `SELECT id, version, status FROM deployments WHERE server_id = $1 AND current_environment_id = $2
       AND status IN (${ACTIVE_SQL}) AND id <> $3`,
    [row.server_id, env.id, row.id],
  );
  if (busy) {
    return {
      ok: false,
      code: 'rollout-active',
      detail: `deployment ${busy.id} of ${busy.version} is ${busy.status} in ${envName}; the staged rollout goes on once it ends`,
    };
  }
  const [version] = await tx.query<{ prerelease: boolean; status: string }>(
    'SELECT prerelease, status FROM versions WHERE id = $1',
    [row.version_id],
  );
  const results: GateResult[] = await evaluateGates(tx, env, {
    serverId: row.server_id,
    version: row.version,
    prerelease: version?.prerelease ?? false,
    status: version?.status ?? 'development',
    principal,
    rollback: row.kind === 'rollback',
  });
  const failed = results.find((r) => !r.passed);
  if (!failed) return { ok: true };
  return {
    ok: false,
    code: failed.gate.type === 'protected' ? 'protected-environment' : 'gate-not-met',
    detail: failed.detail,
    passesAt: failed.passesAt,
    gate: failed.gate,
  };
}

/** Pylee acting on its own (timers, gates, verification): the org's system principal. */
export async function pyleePrincipal(tx: Queryable, row: DeploymentRow): Promise<Principal> {
  const [org] = await tx.query<{ id: string; slug: string }>('SELECT id, slug FROM orgs WHERE id = $1', [
    row.org_id,
  ]);
  return systemPrincipal(org as { id: string; slug: string });
}

/**
 * Applies one event to a locked, loaded deployment and stores the result: new state, releases,
 * timeline row, audit event, and (in the outbox) announcements and delayed jobs. Staged rollouts
 * waiting for gates that pass are moved on in the same transaction.
 */
export async function applyEvent(
  tx: Queryable,
  outbox: Outbox,
  row: LoadedRow,
  event: RolloutEvent,
  actor: Actor,
): Promise<LoadedRow> {
  const before = stateOf(row);
  let outcome;
  try {
    outcome = transition(before, event, row.steps, Date.now(), pauseMs);
  } catch (error) {
    if (error instanceof InvalidAction) {
      throw new ConflictError(
        `deployment ${row.id} (${row.version} to ${row.environment}): ${error.message}`,
        'invalid-state',
        {
          state: error.status,
          action: error.action,
        },
      );
    }
    throw error;
  }
  if (!outcome.changed) return row;
  let state = outcome.state;
  const actorName = actor.ctx.principal.tokenName;
  const staged = row.strategy === 'staged';

  // Staged: each step entered deploys to its environment at 100 %, which is then released there.
  let currentEnvId = row.current_environment_id;
  let currentEnv = row.current_environment;
  for (const i of outcome.entered) {
    const envName = row.steps[i]?.environment;
    if (envName === undefined) continue;
    const env = await environmentById(tx, row.org_id, envName);
    if (!env) throw new ConflictError(`environment ${envName} no longer exists`, 'environment-not-found');
    currentEnvId = env.id;
    currentEnv = env.name;
    await tx.query('UPDATE deployments SET current_environment_id = $2 WHERE id = $1', [row.id, env.id]);
    await release(tx, row, env.id, actorName, { rollback: row.kind === 'rollback' });
  }
  if (state.status === 'succeeded' && !staged) {
    await release(tx, row, row.environment_id, actorName, { rollback: row.kind === 'rollback' });
  }
  if (staged && state.status === 'aborted') {
    // Stages entered are complete (the version runs there at 100 %); aborting stops the walk.
    state = { ...state, weight: state.step >= 0 ? 100 : 0 };
  }
  if (staged && (state.status === 'rolled-back' || state.status === 'failed') && before.step >= 0) {
    await revertRelease(tx, row, currentEnvId, actorName);
  }

  const final = !isActive(state.status);
  const statusReason = final ? (actor.reason ?? actor.detail?.detail ?? null) : null;
  await tx.query(
    `UPDATE deployments SET status = $2, current_step = $3, weight = $4, pause = $5, awaiting = $6,
       status_reason = COALESCE($7, status_reason), updated_at = now(), finished_at = CASE WHEN $8 THEN now() ELSE NULL END
     WHERE id = $1`,
    [
      row.id,
      state.status,
      state.step,
      state.weight,
      state.pause ? JSON.stringify(state.pause) : null,
      state.awaiting,
      statusReason,
      final,
    ],
  );
  await tx.query(
    `INSERT INTO deployment_events (id, deployment_id, action, from_status, to_status, step, weight, environment, actor, reason, detail)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      newId(),
      row.id,
      actor.action.replace(/^deployment\./, ''),
      before.status,
      state.status,
      state.step,
      state.weight,
      currentEnv,
      actorName,
      actor.reason ?? null,
      JSON.stringify({
        ...(actor.detail ?? {}),
        entered: outcome.entered,
        pause: state.pause,
        awaiting: state.awaiting,
      }),
    ],
  );
  await appendAudit(tx, actor.ctx, {
    action: actor.action,
    target: { type: 'deployment', id: row.id, name: `${row.server}@${row.version} → ${row.environment}` },
    before: { status: before.status, step: before.step, weight: before.weight },
    after: {
      status: state.status,
      step: state.step,
      weight: state.weight,
      environment: currentEnv,
      reason: actor.reason ?? null,
    },
  });
  if (outcome.timer) {
    outbox.jobs.push({
      job: {
        name: ROLLOUT_JOBS.timer,
        deploymentId: row.id,
        step: outcome.timer.step,
        until: outcome.timer.at,
      },
      at: outcome.timer.at,
    });
  }
  const updated = (await loadRow(tx, row.id)) as LoadedRow;
  await announce(tx, outbox, updated, before, actorName);

  // A staged rollout that now waits for the next stage's gates goes on at once if they pass.
  if (updated.status === 'progressing' && updated.awaiting === 'gates') {
    const ready = await stageReady(tx, updated, updated.current_step + 1, await pyleePrincipal(tx, updated));
    if (ready.ok) {
      return applyEvent(
        tx,
        outbox,
        updated,
        { type: 'gates-passed', step: updated.current_step },
        {
          ctx: { principal: await pyleePrincipal(tx, updated) },
          action: 'deployment.advance',
          detail: { why: 'gates-passed' },
        },
      );
    }
    outbox.jobs.push({
      job: { name: ROLLOUT_JOBS.gates, deploymentId: row.id, step: updated.current_step },
      at: Math.min(ready.passesAt ?? Infinity, Date.now() + GATE_RECHECK_MS) + 500,
    });
  }
  return updated;
}

/** `deployment.status` when the status changed, `deployment.step` when the step or weight did. */
async function announce(tx: Queryable, outbox: Outbox, row: LoadedRow, before: RolloutState, actor: string) {
  const desired = await desiredState(tx, row.org_id, row.server_id);
  const base = {
    orgId: row.org_id,
    server: row.server,
    environment: row.current_environment,
    version: row.version,
    labels: { strategy: row.strategy, kind: row.kind, status: row.status },
  };
  const data = {
    deployment: {
      id: row.id,
      server: row.server,
      version: row.version,
      environment: row.environment,
      currentEnvironment: row.current_environment,
      strategy: row.strategy,
      kind: row.kind,
      status: row.status,
      previousStatus: before.status,
      step: row.current_step >= 0 ? row.current_step : null,
      steps: row.steps.length,
      weight: row.weight,
      actor,
    },
    desired,
  };
  if (row.current_step !== before.step || row.weight !== before.weight) {
    outbox.events.push({
      ...base,
      type: 'deployment.step',
      summary: `${row.server} ${row.version} in ${row.current_environment}: step ${row.current_step + 1}/${row.steps.length}, weight ${row.weight}%`,
      data,
    });
  }
  if (row.status !== before.status) {
    outbox.events.push({
      ...base,
      type: 'deployment.status',
      summary: `${row.server} ${row.version} in ${row.current_environment}: ${before.status} → ${row.status}`,
      data,
    });
  }
}
