/** Creating deployments: strategy, steps and policy checked, gates evaluated, the rollout started. */
import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import { assertEnvironmentAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import { newId } from '../ids.ts';
import { findServer, type ServerRow } from '../registry/servers.ts';
import { findVersion } from '../registry/versions.ts';
import { applyEvent } from './apply.ts';
import { parseDuration } from './duration.ts';
import {
  assertGates,
  evaluateGates,
  findEnvironment,
  listEnvironmentRows,
  type EnvironmentRow,
} from './environments.ts';
import { withOutbox, type Outbox } from './outbox.ts';
import {
  ACTIVE_SQL,
  activeIn,
  DEFAULT_SESSION_POLICY,
  isSessionPolicy,
  loadRow,
  SESSION_POLICIES,
  toView,
  type DeployDeps,
  type DeploymentRow,
  type DeploymentView,
  type LoadedRow,
  type Policy,
  type SessionPolicy,
  type StepAnalysisPolicy,
} from './records.ts';
import { currentRelease } from './releases.ts';
import type { Step } from './rollout.ts';
import { ROLLOUT_JOBS } from './scheduler.ts';
import { checkCanarySteps, DEFAULT_CANARY_STEPS, type StepInput, type Strategy } from './strategies.ts';
import { verificationRequirement } from './verification.ts';

const DEFAULT_VERIFICATION_TIMEOUT = '10m';

export interface NewDeployment {
  version: string;
  environment: string;
  strategy?: Strategy | undefined;
  steps?: StepInput[] | undefined;
  /** Staged: the first environment of the path (default: the one after the last environment running it, else the first). */
  from?: string | undefined;
  reason?: string | undefined;
  rollbackOnFailure?: boolean | undefined;
  /** After a passing canary analysis: promote at once (auto) or wait for a person (approval). */
  promotion?: 'auto' | 'approval' | undefined;
  /** `analyze` steps: sample interval (whole seconds) and how long each step's analysis watches. */
  analysis?: { interval?: string | undefined; lifetime?: string | undefined } | undefined;
  verification?:
    { required?: boolean | undefined; passes?: number | undefined; timeout?: string | undefined } | undefined;
  /**
   * What an abort or rollback does to the live sessions of the version losing its weight (checked
   * against {@link SESSION_POLICIES}).
   * @defaultValue `migrate`; a rollback: the policy of the deployment it rolls back
   */
  sessions?: string | undefined;
}

export interface Internal {
  /** Rollbacks created by the rollback action: the deployment or release they undo. */
  kind?: 'rollback';
  rollbackOf?: string | null;
  /** Steps already checked (a staged rollback's step-down). */
  steps?: Step[];
}

function checkStrategyInput(input: NewDeployment): { strategy: Strategy; steps: Step[] | undefined } {
  const strategy = input.strategy ?? (input.steps ? 'canary' : 'immediate');
  if (strategy === 'immediate') {
    if (input.steps)
      throw new BadRequestError('an immediate deployment has no steps; use strategy canary', 'invalid-steps');
    return { strategy, steps: [{ weight: 100 }] };
  }
  if (strategy === 'canary')
    return { strategy, steps: input.steps ? checkCanarySteps(input.steps) : DEFAULT_CANARY_STEPS };
  if (input.steps) {
    throw new BadRequestError(
      'a staged deployment goes through the environments in pipeline order; it takes from, not steps',
      'invalid-steps',
    );
  }
  return { strategy, steps: undefined };
}

function analysisPolicyOf(input: NonNullable<NewDeployment['analysis']>): StepAnalysisPolicy {
  const policy: StepAnalysisPolicy = {};
  if (input.interval !== undefined) {
    const ms = parseDuration('analysis.interval', input.interval, { minMs: 1000, maxMs: 3_600_000 });
    if (ms % 1000 !== 0)
      throw new BadRequestError('analysis.interval must be whole seconds, e.g. 1m', 'invalid-policy');
    policy.intervalSeconds = ms / 1000;
  }
  if (input.lifetime !== undefined) {
    policy.lifetimeMs = parseDuration('analysis.lifetime', input.lifetime, {
      minMs: (policy.intervalSeconds ?? 1) * 1000,
      maxMs: 86_400_000,
    });
  }
  return policy;
}

function policyOf(
  input: NewDeployment,
  required: { required: boolean; passes?: number; timeoutMs?: number },
): Policy {
  const v = input.verification ?? {};
  const passes = v.passes ?? required.passes ?? 1;
  if (!Number.isInteger(passes) || passes < 1 || passes > 100) {
    throw new BadRequestError(
      `verification.passes ${passes} must be a whole number from 1 to 100`,
      'invalid-verification',
    );
  }
  if (input.promotion !== undefined && input.promotion !== 'auto' && input.promotion !== 'approval')
    throw new BadRequestError('promotion must be auto or approval', 'invalid-policy');
  return {
    ...(input.promotion ? { promotion: input.promotion } : {}),
    ...(input.analysis ? { analysis: analysisPolicyOf(input.analysis) } : {}),
    rollbackOnFailure: input.rollbackOnFailure ?? false,
    verification: {
      required: v.required ?? required.required,
      passes,
      timeoutMs:
        v.timeout !== undefined
          ? parseDuration('verification.timeout', v.timeout, { minMs: 1000, maxMs: 86_400_000 })
          : (required.timeoutMs ?? parseDuration('timeout', DEFAULT_VERIFICATION_TIMEOUT)),
    },
  };
}

/** The session policy asked for, refused with a sentence naming the three when it is none of them. */
export function checkSessionPolicy(value: string | undefined): SessionPolicy | undefined {
  if (value === undefined || isSessionPolicy(value)) return value;
  throw new BadRequestError(
    `sessions ${JSON.stringify(value)} is not a session policy: give migrate (the default: a session moves to the remaining version at its next request), terminate (its next request is 404) or drain (it stays until idle)`,
    'invalid-sessions',
    { allowed: [...SESSION_POLICIES] },
  );
}

/**
 * A rollback given no session policy takes that of the deployment it rolls back (which released the
 * version now losing its traffic); anything else the default.
 */
async function inheritedSessionPolicy(
  tx: Queryable,
  from: string | null | undefined,
): Promise<SessionPolicy> {
  if (!from) return DEFAULT_SESSION_POLICY;
  const [row] = await tx.query<{ sessions: SessionPolicy }>(
    'SELECT sessions FROM deployments WHERE id = $1',
    [from],
  );
  return row?.sessions ?? DEFAULT_SESSION_POLICY;
}

function activeConflict(server: string, env: string, active: DeploymentRow): ConflictError {
  return new ConflictError(
    `deployment ${active.id} of ${server} ${active.version} is already ${active.status} in ${env}; promote, abort or roll it back before starting another`,
    'rollout-active',
    { activeDeployment: active.id, activeVersion: active.version, activeStatus: active.status },
  );
}

/** The staged path: environments in pipeline order from `from` (or the first not yet running it) to the target. */
async function stagedPath(
  tx: Queryable,
  principal: Principal,
  server: ServerRow,
  version: string,
  target: EnvironmentRow,
  from: string | undefined,
): Promise<EnvironmentRow[]> {
  const envs = await listEnvironmentRows(tx, principal.orgId);
  const end = envs.findIndex((e) => e.id === target.id);
  let start = 0;
  if (from !== undefined) {
    const first = await findEnvironment(tx, principal, from);
    start = envs.findIndex((e) => e.id === first.id);
    if (start > end) {
      throw new BadRequestError(
        `from ${from} comes after ${target.name} in the pipeline (${envs.map((e) => e.name).join(' → ')})`,
        'invalid-path',
      );
    }
  } else {
    const running = await tx.query<{ environment_id: string }>(
      'SELECT environment_id FROM environment_releases WHERE server_id = $1 AND version = $2 AND replaced_at IS NULL',
      [server.id, version],
    );
    const ids = new Set(running.map((r) => r.environment_id));
    for (let i = end - 1; i >= 0; i--) {
      if (ids.has((envs[i] as EnvironmentRow).id)) {
        start = i + 1;
        break;
      }
    }
  }
  return envs.slice(start, end + 1);
}

/**
 * Starts a deployment of `version` to `environment`. Checks, in one transaction, before anything
 * is written: version exists and is not retired, the token may deploy there, the environment's gates
 * (a rollback skips soak gates), and that no other rollout is active there (the unique index has the
 * last word when two requests race).
 */
export async function createDeployment(
  deps: DeployDeps,
  ctx: Context,
  serverSlug: string,
  input: NewDeployment,
  internal: Internal = {},
): Promise<DeploymentView> {
  const checked = internal.steps
    ? { strategy: 'canary' as Strategy, steps: internal.steps }
    : checkStrategyInput(input);
  return withOutbox(deps, async (tx, outbox) => {
    const row = await insertDeployment(tx, outbox, ctx, serverSlug, input, internal, checked);
    return toView(row);
  });
}

export async function insertDeployment(
  tx: Queryable,
  outbox: Outbox,
  ctx: Context,
  serverSlug: string,
  input: NewDeployment,
  internal: Internal,
  checked: { strategy: Strategy; steps: Step[] | undefined },
): Promise<LoadedRow> {
  const { principal } = ctx;
  const asked = checkSessionPolicy(input.sessions);
  const server = await findServer(tx, principal, serverSlug, { forUpdate: true });
  if (server.archived_at) {
    throw new ConflictError(`server ${serverSlug} is archived; unarchive it to deploy`, 'server-archived');
  }
  const target = await findEnvironment(tx, principal, input.environment);
  const version = await findVersion(tx, server, input.version);
  if (version.status === 'retired') {
    throw new ConflictError(
      `version ${version.version} of ${serverSlug} is retired and cannot be deployed; retired is final`,
      'version-retired',
    );
  }
  const path =
    checked.strategy === 'staged'
      ? await stagedPath(tx, principal, server, version.version, target, input.from)
      : [target];
  const first = path[0] as EnvironmentRow;
  for (const env of path) assertEnvironmentAccess(principal, env.name);

  const stable = await currentRelease(tx, server.id, first.id);
  if (stable?.version === version.version && checked.strategy !== 'staged') {
    throw new ConflictError(
      `${serverSlug} ${version.version} already runs in ${first.name} (since ${stable.released_at.toISOString()}); nothing to deploy`,
      'already-running',
    );
  }
  if (checked.strategy === 'staged' && path.length === 0) {
    throw new ConflictError(`${version.version} already runs in ${target.name}`, 'already-running');
  }
  const targetStable = await currentRelease(tx, server.id, target.id);
  const earlier = targetStable !== undefined && semver.lt(version.version, targetStable.version);
  const kind = internal.kind ?? (earlier ? 'rollback' : 'deploy');
  const inheritFrom = internal.rollbackOf ?? (kind === 'rollback' ? targetStable?.deployment_id : undefined);
  const sessions =
    asked ?? (kind === 'rollback' ? await inheritedSessionPolicy(tx, inheritFrom) : DEFAULT_SESSION_POLICY);

  // Gates: all of a non-staged target's; for a staged path, those of its first environment now,
  // and what can never change later (protection, pre-release, status, token) for every stage.
  const subject = {
    serverId: server.id,
    version: version.version,
    prerelease: version.prerelease,
    status: version.status,
    principal,
    rollback: kind === 'rollback',
  };
  for (const [i, env] of path.entries()) {
    const results = await evaluateGates(tx, env, subject);
    assertGates(env, i === 0 ? results : results.filter((r) => r.gate.type !== 'soak'));
  }

  const active = await activeIn(tx, server.id, first.id);
  if (active) throw activeConflict(serverSlug, first.name, active);

  const steps: Step[] =
    checked.strategy === 'staged'
      ? path.map((e) => ({ weight: 100, environment: e.name }))
      : (checked.steps as Step[]);
  const requirement = await verificationRequirement()(tx, {
    orgId: principal.orgId,
    serverId: server.id,
    server: server.slug,
    environment: first.name,
    version: version.version,
  });
  const policy = policyOf(input, requirement);
  const id = newId();
  const [inserted] = await tx.query<{ id: string }>(
    `INSERT INTO deployments (id, org_id, server_id, version_id, version, environment_id, current_environment_id, strategy,
       kind, steps, status, policy, sessions, previous_version, rollback_of, reason, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13, $14, $15, $16)
     ON CONFLICT (server_id, current_environment_id) WHERE status IN (${ACTIVE_SQL}) DO NOTHING RETURNING id`,
    [
      id,
      principal.orgId,
      server.id,
      version.id,
      version.version,
      target.id,
      first.id,
      checked.strategy,
      kind,
      JSON.stringify(steps),
      JSON.stringify(policy),
      sessions,
      targetStable?.version ?? null,
      internal.rollbackOf ?? null,
      input.reason ?? null,
      principal.tokenName,
    ],
  );
  if (!inserted) {
    const winner = await activeIn(tx, server.id, first.id);
    throw activeConflict(
      serverSlug,
      first.name,
      winner ?? ({ id: 'unknown', version: '?', status: 'pending' } as DeploymentRow),
    );
  }
  const row = (await loadRow(tx, id, true)) as LoadedRow;
  await tx.query(
    `INSERT INTO deployment_events (id, deployment_id, action, from_status, to_status, step, weight, environment, actor, reason, detail)
     VALUES ($1, $2, 'create', NULL, 'pending', -1, 0, $3, $4, $5, $6)`,
    [
      newId(),
      id,
      first.name,
      principal.tokenName,
      input.reason ?? null,
      JSON.stringify({
        strategy: checked.strategy,
        kind,
        steps,
        sessions,
        previousVersion: targetStable?.version ?? null,
      }),
    ],
  );
  await appendAudit(tx, ctx, {
    action: kind === 'rollback' ? 'deployment.rollback' : 'deployment.create',
    target: { type: 'deployment', id, name: `${server.slug}@${version.version} → ${target.name}` },
    after: {
      version: version.version,
      environment: target.name,
      strategy: checked.strategy,
      kind,
      steps: steps.map((s) => s.weight),
      sessions,
      previousVersion: targetStable?.version ?? null,
      reason: input.reason ?? null,
    },
  });
  const verify = policy.verification.required;
  const started = await applyEvent(
    tx,
    outbox,
    row,
    { type: 'start', verify },
    {
      ctx,
      action: 'deployment.start',
      reason: input.reason,
    },
  );
  if (started.status === 'verifying') {
    const deadline = Date.now() + policy.verification.timeoutMs;
    await tx.query('UPDATE deployments SET verification = $2 WHERE id = $1', [
      id,
      JSON.stringify({ passes: 0, deadline: new Date(deadline).toISOString(), detail: null }),
    ]);
    outbox.jobs.push({ job: { name: ROLLOUT_JOBS.verificationTimeout, deploymentId: id }, at: deadline });
  }
  return (await loadRow(tx, id)) as LoadedRow;
}
