/**
 * Rolling back: a deployment (its rollout, or the version it left running) and whole environments
 * (immediate, selective, or staged back to the last known good version).
 */
import { assertEnvironmentAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import { applyEvent } from './apply.ts';
import { checkSessionPolicy, insertDeployment } from './create.ts';
import { findEnvironment } from './environments.ts';
import { withOutbox, type Outbox } from './outbox.ts';
import {
  activeIn,
  loadRow,
  toView,
  type DeployDeps,
  type DeploymentView,
  type LoadedRow,
  type SessionPolicy,
} from './records.ts';
import { currentRelease, lastKnownGood } from './releases.ts';
import { isActive, type Step } from './rollout.ts';
import { stepDownSteps } from './strategies.ts';

/**
 * Rolls back what a deployment did in its environment: an active rollout goes to rolled-back (its
 * weight to 0; a staged one's current stage returns to the last known good version); a rollback
 * still stepping down completes at once; a deployment that succeeded and still runs there is
 * replaced by the last known good version. `sessions`, when given, replaces the rollout's session
 * policy (what happens to the live sessions of the version losing its traffic) or is that of the new
 * rollback deployment; otherwise the rollout keeps its own and a new rollback inherits it.
 */
export async function rollbackDeployment(
  tx: Queryable,
  outbox: Outbox,
  ctx: Context,
  row: LoadedRow,
  reason: string | undefined,
  sessions?: SessionPolicy,
): Promise<LoadedRow> {
  if (isActive(row.status)) {
    if (sessions !== undefined && sessions !== row.sessions) {
      await tx.query('UPDATE deployments SET sessions = $2 WHERE id = $1', [row.id, sessions]);
      row = { ...row, sessions };
    }
    if (row.kind === 'rollback' && row.status !== 'pending' && row.status !== 'verifying') {
      return applyEvent(
        tx,
        outbox,
        row,
        { type: 'promote', full: true },
        { ctx, action: 'deployment.promote', reason: reason ?? 'rollback completed at once' },
      );
    }
    return applyEvent(tx, outbox, row, { type: 'rollback' }, { ctx, action: 'deployment.rollback', reason });
  }
  const current = await currentRelease(tx, row.server_id, row.current_environment_id);
  if (row.status !== 'succeeded' || current?.version !== row.version) {
    throw new ConflictError(
      `deployment ${row.id} is ${row.status}${current ? ` and ${row.current_environment} now runs ${current.version}` : ''}; only an active rollout, or the version an environment runs, can be rolled back`,
      'invalid-state',
      { state: row.status, action: 'rollback' },
    );
  }
  return rollbackEnvironment(tx, outbox, ctx, row.server, row.current_environment, {
    mode: 'immediate',
    reason,
    sessions,
  });
}

export type RollbackMode = 'immediate' | 'selective' | 'staged';

export interface RollbackInput {
  mode: RollbackMode;
  /** immediate, staged: the environment. */
  environment?: string | undefined;
  /** selective: the environments (only these). */
  environments?: string[] | undefined;
  /** staged: the weights the current version keeps, falling to 0 (default 50, 0). */
  steps?: number[] | undefined;
  /** staged: how long each step holds (default 5m). */
  pause?: string | undefined;
  reason?: string | undefined;
  /**
   * What happens to the live sessions of the version losing its traffic (`migrate`, `terminate`,
   * `drain`: it keeps them until they go idle).
   * @defaultValue the policy of the deployment being rolled back
   */
  sessions?: string | undefined;
}

export interface RollbackResult {
  mode: RollbackMode;
  /** Per environment: what was rolled back and to what. */
  environments: { environment: string; from: string | null; to: string | null; deployment: DeploymentView }[];
}

/**
 * Immediate: back to the environment's last known good version at once. Selective: the same for
 * each chosen environment (all or none). Staged: the last known good version comes back as a
 * canary whose weight rises while the current version's steps down. An active rollout there is
 * rolled back instead (its traffic returns to the stable version). No earlier good version → 409.
 */
export function rollback(
  deps: DeployDeps,
  ctx: Context,
  serverSlug: string,
  input: RollbackInput,
): Promise<RollbackResult> {
  const envs =
    input.mode === 'selective'
      ? (input.environments ?? [])
      : input.environment !== undefined
        ? [input.environment]
        : [];
  if (envs.length === 0) {
    throw new BadRequestError(
      input.mode === 'selective'
        ? 'a selective rollback needs environments: the ones to roll back (the others stay as they are)'
        : `a ${input.mode} rollback needs environment`,
      'missing-environment',
    );
  }
  if (input.mode !== 'selective' && input.environments) {
    throw new BadRequestError(
      `a ${input.mode} rollback takes one environment; use mode selective for several`,
      'invalid-rollback',
    );
  }
  if (new Set(envs).size !== envs.length)
    throw new BadRequestError('environments lists one twice', 'invalid-rollback');
  const steps =
    input.mode === 'staged' ? stepDownSteps(input.steps ?? [50, 0], input.pause ?? '5m') : undefined;
  if (input.mode !== 'staged' && (input.steps || input.pause)) {
    throw new BadRequestError('steps and pause apply to a staged rollback only', 'invalid-rollback');
  }
  const sessions = checkSessionPolicy(input.sessions);
  return withOutbox(deps, async (tx, outbox) => {
    const out: RollbackResult = { mode: input.mode, environments: [] };
    for (const env of envs) {
      const from = await runningVersion(tx, ctx.principal, serverSlug, env);
      const row = await rollbackEnvironment(
        tx,
        outbox,
        ctx,
        serverSlug,
        env,
        { mode: input.mode, reason: input.reason, sessions },
        steps,
      );
      // A staged rollback still stepping down is going to its version; otherwise the stable one runs.
      const to =
        row.kind === 'rollback' && isActive(row.status)
          ? row.version
          : ((await currentRelease(tx, row.server_id, row.current_environment_id))?.version ?? null);
      out.environments.push({ environment: env, from, to, deployment: toView(row) });
    }
    return out;
  });
}

/** The version an environment runs (the active rollout's, if there is one). */
async function runningVersion(tx: Queryable, principal: Principal, serverSlug: string, env: string) {
  const server = await findServer(tx, principal, serverSlug);
  const environment = await findEnvironment(tx, principal, env);
  const active = await activeIn(tx, server.id, environment.id);
  if (active) return active.version;
  return (await currentRelease(tx, server.id, environment.id))?.version ?? null;
}

async function rollbackEnvironment(
  tx: Queryable,
  outbox: Outbox,
  ctx: Context,
  serverSlug: string,
  envName: string,
  input: Pick<RollbackInput, 'mode' | 'reason'> & { sessions?: SessionPolicy | undefined },
  steps?: Step[],
): Promise<LoadedRow> {
  const { principal } = ctx;
  const server = await findServer(tx, principal, serverSlug, { forUpdate: true });
  const env = await findEnvironment(tx, principal, envName);
  assertEnvironmentAccess(principal, env.name);
  const active = await activeIn(tx, server.id, env.id);
  if (active) {
    const row = (await loadRow(tx, active.id, true)) as LoadedRow;
    if (input.mode === 'staged' && row.kind !== 'rollback') {
      throw new ConflictError(
        `deployment ${row.id} of ${row.version} is ${row.status} in ${env.name} at ${row.weight}%; roll it back immediately (its traffic returns to the stable version) instead of in stages`,
        'rollout-active',
        { activeDeployment: row.id },
      );
    }
    return rollbackDeployment(tx, outbox, ctx, row, input.reason, input.sessions);
  }
  const current = await currentRelease(tx, server.id, env.id);
  const good = await lastKnownGood(tx, server.id, env.id, current?.version);
  if (!current || !good) {
    throw new ConflictError(
      current
        ? `${env.name} has no earlier good version of ${serverSlug} to roll back to: ${current.version} is the only one that ran there (and was not rolled back)`
        : `${serverSlug} does not run in ${env.name}; there is nothing to roll back`,
      'no-known-good-version',
      { environment: env.name },
    );
  }
  return insertDeployment(
    tx,
    outbox,
    ctx,
    serverSlug,
    {
      version: good.version,
      environment: env.name,
      strategy: steps ? 'canary' : 'immediate',
      reason: input.reason ?? `${input.mode} rollback from ${current.version}`,
      verification: { required: false },
      sessions: input.sessions,
    },
    { kind: 'rollback', rollbackOf: current.deployment_id, ...(steps ? { steps } : {}) },
    { strategy: steps ? 'canary' : 'immediate', steps: steps ?? [{ weight: 100 }] },
  );
}
