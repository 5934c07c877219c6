import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import { assertEnvironmentAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher, PyleeEvent } from '../notify/events.ts';
import { systemPrincipal } from '../orgs.ts';
import { findServer, type ServerRow } from '../registry/servers.ts';
import { findVersion } from '../registry/versions.ts';
import { parseDuration } from './duration.ts';
import {
  assertGates,
  evaluateGates,
  findEnvironment,
  listEnvironmentRows,
  type EnvironmentRow,
  type GateResult,
} from './environments.ts';
import {
  allowedActions,
  describeState,
  InvalidAction,
  isActive,
  transition,
  ACTIVE_STATUSES,
  type Awaiting,
  type Pause,
  type RolloutEvent,
  type RolloutState,
  type RolloutStatus,
  type Step,
  type UserAction,
} from './rollout.ts';
import { ROLLOUT_JOBS, type RolloutJob, type RolloutScheduler } from './scheduler.ts';
import {
  checkCanarySteps,
  DEFAULT_CANARY_STEPS,
  pauseMs,
  stepDownSteps,
  type StepInput,
  type Strategy,
} from './strategies.ts';
import { verificationRequirement } from './verification.ts';

export interface DeployDeps {
  db: Db;
  publisher: EventPublisher;
  scheduler: RolloutScheduler;
  logger?: Logger | undefined;
}

/** How often a staged rollout waiting for a gate that has no known passing time looks again. */
export const GATE_RECHECK_MS = 60_000;
const DEFAULT_VERIFICATION_TIMEOUT = '10m';

export interface Policy {
  /** A failed verification or analysis ends as rolled-back (the version is marked bad there), not failed. */
  rollbackOnFailure: boolean;
  verification: { required: boolean; passes: number; timeoutMs: number };
  /** A passing canary analysis promotes the step (auto, the default) or waits for a person (approval). */
  promotion?: 'auto' | 'approval';
  /** How `analyze` steps are judged, when not the analysis worker's defaults (1 m samples for 10 m). */
  analysis?: StepAnalysisPolicy;
}

export interface StepAnalysisPolicy {
  intervalSeconds?: number;
  lifetimeMs?: number;
}

export interface VerificationState {
  passes: number;
  deadline: string | null;
  detail: string | null;
}

export interface DeploymentRow {
  id: string;
  org_id: string;
  server_id: string;
  version_id: string;
  version: string;
  environment_id: string;
  current_environment_id: string;
  strategy: Strategy;
  kind: 'deploy' | 'rollback';
  steps: Step[];
  current_step: number;
  weight: number;
  status: RolloutStatus;
  pause: Pause | null;
  awaiting: Awaiting | null;
  policy: Policy;
  verification: VerificationState | null;
  previous_version: string | null;
  rollback_of: string | null;
  reason: string | null;
  status_reason: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

/** A deployment row with its names resolved. */
interface LoadedRow extends DeploymentRow {
  server: string;
  environment: string;
  current_environment: string;
}

export interface DeploymentView {
  id: string;
  server: string;
  version: string;
  environment: string;
  /** Where the rollout is now (moves along the path of a staged rollout). */
  currentEnvironment: string;
  strategy: Strategy;
  kind: 'deploy' | 'rollback';
  status: RolloutStatus;
  steps: Step[];
  /** Index of the current step; null before the first. */
  currentStep: number | null;
  weight: number;
  pause:
    | { kind: 'timer'; until: string }
    | { kind: 'approval' }
    | { kind: 'manual'; remainingMs: number | null }
    | null;
  awaiting: Awaiting | null;
  previousVersion: string | null;
  rollbackOf: string | null;
  policy: {
    rollbackOnFailure: boolean;
    verification: { required: boolean; passes: number; timeoutMs: number };
    promotion?: 'auto' | 'approval';
    analysis?: StepAnalysisPolicy;
  };
  verification: VerificationState | null;
  reason: string | null;
  statusReason: string | null;
  allowedActions: UserAction[];
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface TimelineEvent {
  at: string;
  action: string;
  from: string | null;
  to: string;
  step: number | null;
  weight: number;
  environment: string;
  actor: string;
  reason: string | null;
  detail: Record<string, unknown> | null;
}

export interface DeploymentDetail extends DeploymentView {
  events: TimelineEvent[];
}

const stateOf = (row: DeploymentRow): RolloutState => ({
  status: row.status,
  step: row.current_step,
  weight: row.weight,
  pause: row.pause,
  awaiting: row.awaiting,
});

function toView(row: LoadedRow): DeploymentView {
  const pause = row.pause;
  return {
    id: row.id,
    server: row.server,
    version: row.version,
    environment: row.environment,
    currentEnvironment: row.current_environment,
    strategy: row.strategy,
    kind: row.kind,
    status: row.status,
    steps: row.steps,
    currentStep: row.current_step >= 0 ? row.current_step : null,
    weight: row.weight,
    pause: pause?.kind === 'timer' ? { kind: 'timer', until: new Date(pause.until).toISOString() } : pause,
    awaiting: row.awaiting,
    previousVersion: row.previous_version,
    rollbackOf: row.rollback_of,
    policy: row.policy,
    verification: row.verification,
    reason: row.reason,
    statusReason: row.status_reason,
    allowedActions: allowedActions(stateOf(row)),
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

const SELECT_LOADED = `SELECT d.*, s.slug AS server, e.name AS environment, c.name AS current_environment
  FROM deployments d JOIN servers s ON s.id = d.server_id
  JOIN environments e ON e.id = d.environment_id JOIN environments c ON c.id = d.current_environment_id`;

async function loadRow(db: Queryable, id: string, forUpdate = false): Promise<LoadedRow | undefined> {
  const [row] = await db.query<LoadedRow>(
    `${SELECT_LOADED} WHERE d.id = $1${forUpdate ? ' FOR UPDATE OF d' : ''}`,
    [id],
  );
  return row;
}

/** Announcements and jobs collected inside a transaction, sent once it committed. */
interface Outbox {
  events: PyleeEvent[];
  jobs: { job: RolloutJob; at: number }[];
}

/**
 * A publisher that can record an event inside the caller's transaction (core/notify's), so the
 * announcement commits or rolls back with the change; `enqueue` is called after the commit.
 */
interface TransactionalPublisher extends EventPublisher {
  publishIn(tx: Queryable, event: PyleeEvent): Promise<{ enqueue(): Promise<void> }>;
}

const isTransactional = (p: EventPublisher): p is TransactionalPublisher =>
  typeof (p as Partial<TransactionalPublisher>).publishIn === 'function';

/** Runs `fn` in a transaction, then schedules and announces what it collected. */
async function withOutbox<T>(
  deps: DeployDeps,
  fn: (tx: Queryable, outbox: Outbox) => Promise<T>,
): Promise<T> {
  const outbox: Outbox = { events: [], jobs: [] };
  const publisher = deps.publisher;
  const enqueues: (() => Promise<void>)[] = [];
  const result = await deps.db.transaction(async (tx) => {
    const value = await fn(tx, outbox);
    if (isTransactional(publisher)) {
      for (const event of outbox.events) enqueues.push((await publisher.publishIn(tx, event)).enqueue);
    }
    return value;
  });
  for (const { job, at } of outbox.jobs) {
    try {
      await deps.scheduler.schedule(job, at);
    } catch (error) {
      // The sweep picks up what is due even without its job.
      deps.logger?.warn(
        { err: error, job: job.name },
        'could not schedule a rollout job; the sweep will catch up',
      );
    }
  }
  if (isTransactional(publisher)) {
    for (const enqueue of enqueues) {
      // Recorded with the change: a failed enqueue only delays delivery until notify's sweeper runs.
      await enqueue().catch((error: unknown) =>
        deps.logger?.warn(
          { err: error },
          'could not enqueue deployment notifications; the notify sweeper will',
        ),
      );
    }
    return result;
  }
  for (const event of outbox.events) {
    try {
      await publisher.publish(event);
    } catch (error) {
      deps.logger?.error({ err: error, type: event.type }, 'could not publish a deployment event');
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// What runs where

interface ReleaseRow {
  id: string;
  environment_id: string;
  version_id: string;
  version: string;
  deployment_id: string;
  released_at: Date;
  released_by: string;
  replaced_at: Date | null;
  rolled_back_at: Date | null;
}

async function currentRelease(
  tx: Queryable,
  serverId: string,
  envId: string,
): Promise<ReleaseRow | undefined> {
  const [row] = await tx.query<ReleaseRow>(
    'SELECT * FROM environment_releases WHERE server_id = $1 AND environment_id = $2 AND replaced_at IS NULL',
    [serverId, envId],
  );
  return row;
}

/**
 * The version a rollback in this environment returns to: the latest one that ran here at 100 %,
 * other than `bad`, was not rolled back here, and is not retired.
 */
async function lastKnownGood(
  tx: Queryable,
  serverId: string,
  envId: string,
  bad: string | undefined,
): Promise<ReleaseRow | undefined> {
  const [row] = await tx.query<ReleaseRow>(
    `SELECT r.* FROM environment_releases r JOIN versions v ON v.id = r.version_id
     WHERE r.server_id = $1 AND r.environment_id = $2 AND r.rolled_back_at IS NULL AND r.version <> $3
       AND v.status <> 'retired'
     ORDER BY r.released_at DESC, r.id DESC LIMIT 1`,
    [serverId, envId, bad ?? ''],
  );
  return row;
}

/** The version lands at 100 % in the environment: it becomes the stable one there. */
async function release(
  tx: Queryable,
  row: DeploymentRow,
  envId: string,
  actor: string,
  options: { rollback: boolean },
): Promise<void> {
  const current = await currentRelease(tx, row.server_id, envId);
  if (current?.version === row.version && current.deployment_id === row.id) return;
  if (current) {
    await tx.query(
      `UPDATE environment_releases SET replaced_at = now(),
         rolled_back_at = CASE WHEN $2 THEN now() ELSE rolled_back_at END,
         rolled_back_by = CASE WHEN $2 THEN $3 ELSE rolled_back_by END
       WHERE id = $1`,
      [current.id, options.rollback && current.version !== row.version, actor],
    );
  }
  await tx.query(
    `INSERT INTO environment_releases (id, org_id, server_id, environment_id, version_id, version, deployment_id, released_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [newId(), row.org_id, row.server_id, envId, row.version_id, row.version, row.id, actor],
  );
}

/**
 * Undoes the version's release in an environment (a staged rollout rolled back in its current
 * stage): it is marked rolled back, and the last known good version there runs again.
 */
async function revertRelease(tx: Queryable, row: DeploymentRow, envId: string, actor: string): Promise<void> {
  const current = await currentRelease(tx, row.server_id, envId);
  if (!current || current.version !== row.version) return;
  await tx.query(
    'UPDATE environment_releases SET replaced_at = now(), rolled_back_at = now(), rolled_back_by = $2 WHERE id = $1',
    [current.id, actor],
  );
  const good = await lastKnownGood(tx, row.server_id, envId, row.version);
  if (good) {
    await tx.query(
      `INSERT INTO environment_releases (id, org_id, server_id, environment_id, version_id, version, deployment_id, released_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [newId(), row.org_id, row.server_id, envId, good.version_id, good.version, good.deployment_id, actor],
    );
  }
}

export interface VersionWeight {
  version: string;
  weight: number;
}

/** The desired state of a server: which versions get which share of traffic, per environment. */
export async function desiredState(
  tx: Queryable,
  orgId: string,
  serverId: string,
): Promise<Record<string, VersionWeight[]>> {
  const envs = await listEnvironmentRows(tx, orgId);
  const releases = await tx.query<ReleaseRow>(
    'SELECT * FROM environment_releases WHERE server_id = $1 AND replaced_at IS NULL',
    [serverId],
  );
  const active = await tx.query<DeploymentRow>(
    `SELECT * FROM deployments WHERE server_id = $1 AND status IN (${ACTIVE_SQL})`,
    [serverId],
  );
  const out: Record<string, VersionWeight[]> = {};
  for (const env of envs) {
    const stable = releases.find((r) => r.environment_id === env.id);
    const rollout = active.find((d) => d.current_environment_id === env.id);
    out[env.name] = weightsOf(stable?.version, rollout);
  }
  return out;
}

function weightsOf(
  stable: string | undefined,
  rollout: Pick<DeploymentRow, 'version' | 'weight'> | undefined,
) {
  if (!rollout || rollout.weight === 0 || rollout.version === stable)
    return stable ? [{ version: stable, weight: 100 }] : [];
  if (rollout.weight >= 100 || !stable) return [{ version: rollout.version, weight: rollout.weight }];
  return [
    { version: stable, weight: 100 - rollout.weight },
    { version: rollout.version, weight: rollout.weight },
  ];
}

const ACTIVE_SQL = ACTIVE_STATUSES.map((s) => `'${s}'`).join(', ');

// ---------------------------------------------------------------------------------------------
// Applying events

interface Actor {
  ctx: Context;
  /** Audit action, e.g. deployment.promote or deployment.advance. */
  action: string;
  reason?: string | null | undefined;
  detail?: Record<string, unknown> | undefined;
}

async function environmentById(tx: Queryable, orgId: string, name: string) {
  const [row] = await tx.query<EnvironmentRow>('SELECT * FROM environments WHERE org_id = $1 AND name = $2', [
    orgId,
    name,
  ]);
  return row;
}

/** Whether the rollout may enter staged step `index`: that environment's gates pass and no other rollout runs there. */
async function stageReady(
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
async function pyleePrincipal(tx: Queryable, row: DeploymentRow): Promise<Principal> {
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
async function applyEvent(
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

// ---------------------------------------------------------------------------------------------
// Creating deployments

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
}

interface Internal {
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

async function activeIn(tx: Queryable, serverId: string, envId: string) {
  const [row] = await tx.query<DeploymentRow>(
    `SELECT * FROM deployments WHERE server_id = $1 AND current_environment_id = $2 AND status IN (${ACTIVE_SQL})`,
    [serverId, envId],
  );
  return row;
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

async function insertDeployment(
  tx: Queryable,
  outbox: Outbox,
  ctx: Context,
  serverSlug: string,
  input: NewDeployment,
  internal: Internal,
  checked: { strategy: Strategy; steps: Step[] | undefined },
): Promise<LoadedRow> {
  const { principal } = ctx;
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
       kind, steps, status, policy, previous_version, rollback_of, reason, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13, $14, $15)
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

// ---------------------------------------------------------------------------------------------
// Actions on a deployment

async function lockedDeployment(tx: Queryable, principal: Principal, serverSlug: string, id: string) {
  const server = await findServer(tx, principal, serverSlug, { forUpdate: true });
  const row = /^[0-9a-f-]{36}$/i.test(id) ? await loadRow(tx, id, true) : undefined;
  if (!row || row.server_id !== server.id) {
    throw new NotFoundError(`deployment ${id} of server ${serverSlug} was not found`, 'deployment-not-found');
  }
  return { server, row };
}

export interface ActionInput {
  reason?: string | undefined;
  /** promote: all the way to 100 %. */
  full?: boolean | undefined;
}

/** promote | pause | resume | abort | rollback, by a person (deploy permission, environment access). */
export function actOnDeployment(
  deps: DeployDeps,
  ctx: Context,
  serverSlug: string,
  id: string,
  action: UserAction,
  input: ActionInput = {},
): Promise<DeploymentView> {
  return withOutbox(deps, async (tx, outbox) => {
    const { row } = await lockedDeployment(tx, ctx.principal, serverSlug, id);
    assertEnvironmentAccess(ctx.principal, row.current_environment);
    if (action === 'rollback') return toView(await rollbackDeployment(tx, outbox, ctx, row, input.reason));
    if (
      action === 'promote' &&
      row.strategy === 'staged' &&
      isActive(row.status) &&
      row.status !== 'verifying' &&
      row.status !== 'pending'
    ) {
      const last = input.full ? row.steps.length - 1 : row.current_step + 1;
      for (let i = row.current_step + 1; i <= last && i < row.steps.length; i++) {
        assertEnvironmentAccess(ctx.principal, row.steps[i]?.environment as string);
        const ready = await stageReady(tx, row, i, ctx.principal);
        if (!ready.ok) {
          throw new ConflictError(
            `cannot promote to ${row.steps[i]?.environment}: ${ready.detail}`,
            ready.code,
            {
              gate: ready.gate,
            },
          );
        }
      }
    }
    const event: RolloutEvent =
      action === 'promote'
        ? { type: 'promote', full: input.full === true }
        : ({ type: action } as RolloutEvent);
    return toView(
      await applyEvent(tx, outbox, row, event, { ctx, action: `deployment.${action}`, reason: input.reason }),
    );
  });
}

/**
 * Rolls back what a deployment did in its environment: an active rollout goes to rolled-back (its
 * weight to 0; a staged one's current stage returns to the last known good version); a rollback
 * still stepping down completes at once; a deployment that succeeded and still runs there is
 * replaced by the last known good version.
 */
async function rollbackDeployment(
  tx: Queryable,
  outbox: Outbox,
  ctx: Context,
  row: LoadedRow,
  reason: string | undefined,
): Promise<LoadedRow> {
  if (isActive(row.status)) {
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
  });
}

// ---------------------------------------------------------------------------------------------
// Rolling back environments

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
        { mode: input.mode, reason: input.reason },
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
  input: Pick<RollbackInput, 'mode' | 'reason'>,
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
    return rollbackDeployment(tx, outbox, ctx, row, input.reason);
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
    },
    { kind: 'rollback', rollbackOf: current.deployment_id, ...(steps ? { steps } : {}) },
    { strategy: steps ? 'canary' : 'immediate', steps: steps ?? [{ weight: 100 }] },
  );
}

// ---------------------------------------------------------------------------------------------
// Automatic events: timers, gates, verification, analysis

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

// ---------------------------------------------------------------------------------------------
// Reading

export interface DeploymentFilter {
  environment?: string | undefined;
  status?: RolloutStatus | undefined;
  active?: boolean | undefined;
  limit?: number | undefined;
}

export async function listDeployments(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  filter: DeploymentFilter = {},
) {
  const server = await findServer(db, principal, serverSlug);
  const where = ['d.server_id = $1'];
  const params: unknown[] = [server.id];
  if (filter.environment !== undefined) {
    const env = await findEnvironment(db, principal, filter.environment);
    params.push(env.id);
    where.push(`(d.environment_id = $${params.length} OR d.current_environment_id = $${params.length})`);
  }
  if (filter.status) {
    params.push(filter.status);
    where.push(`d.status = $${params.length}`);
  }
  if (filter.active) where.push(`d.status IN (${ACTIVE_SQL})`);
  const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
  const rows = await db.query<LoadedRow>(
    `${SELECT_LOADED} WHERE ${where.join(' AND ')} ORDER BY d.created_at DESC, d.id DESC LIMIT ${limit}`,
    params,
  );
  return rows.map(toView);
}

export async function getDeployment(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  id: string,
): Promise<DeploymentDetail> {
  const server = await findServer(db, principal, serverSlug);
  const row = /^[0-9a-f-]{36}$/i.test(id) ? await loadRow(db, id) : undefined;
  if (!row || row.server_id !== server.id) {
    throw new NotFoundError(`deployment ${id} of server ${serverSlug} was not found`, 'deployment-not-found');
  }
  const events = await db.query<{
    at: Date;
    action: string;
    from_status: string | null;
    to_status: string;
    step: number;
    weight: number;
    environment: string;
    actor: string;
    reason: string | null;
    detail: Record<string, unknown> | null;
  }>('SELECT * FROM deployment_events WHERE deployment_id = $1 ORDER BY at, id', [id]);
  return {
    ...toView(row),
    events: events.map((e) => ({
      at: e.at.toISOString(),
      action: e.action,
      from: e.from_status,
      to: e.to_status,
      step: e.step >= 0 ? e.step : null,
      weight: e.weight,
      environment: e.environment,
      actor: e.actor,
      reason: e.reason,
      detail: e.detail,
    })),
  };
}

export interface EnvironmentStatus {
  environment: string;
  position: number;
  protected: boolean;
  /** The version at 100 % (the last one released there), since when and by whom. */
  stable: { version: string; since: string; by: string; deploymentId: string } | null;
  /** An active rollout there: the new version and its traffic weight. */
  canary: {
    version: string;
    weight: number;
    status: RolloutStatus;
    strategy: Strategy;
    deploymentId: string;
    since: string;
    by: string;
  } | null;
  /** What an immediate rollback would return to. */
  rollbackTarget: string | null;
  /** Versions and their traffic weights, as announced. */
  desired: VersionWeight[];
  /** Deployments there, newest first. */
  history: {
    id: string;
    version: string;
    strategy: Strategy;
    kind: 'deploy' | 'rollback';
    status: RolloutStatus;
    createdBy: string;
    createdAt: string;
    finishedAt: string | null;
  }[];
}

/** What runs where: per environment of the org, in pipeline order. */
export async function environmentStatus(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  options: { history?: number | undefined } = {},
): Promise<EnvironmentStatus[]> {
  const server = await findServer(db, principal, serverSlug);
  const envs = await listEnvironmentRows(db, principal.orgId);
  const limit = Math.min(Math.max(options.history ?? 10, 0), 100);
  const out: EnvironmentStatus[] = [];
  for (const [i, env] of envs.entries()) {
    const stable = await currentRelease(db, server.id, env.id);
    const active = await activeIn(db, server.id, env.id);
    const good = await lastKnownGood(db, server.id, env.id, stable?.version);
    const history = limit
      ? await db.query<DeploymentRow>(
          `SELECT * FROM deployments WHERE server_id = $1 AND (environment_id = $2 OR current_environment_id = $2)
           ORDER BY created_at DESC, id DESC LIMIT ${limit}`,
          [server.id, env.id],
        )
      : [];
    out.push({
      environment: env.name,
      position: i + 1,
      protected: env.protected,
      stable: stable
        ? {
            version: stable.version,
            since: stable.released_at.toISOString(),
            by: stable.released_by,
            deploymentId: stable.deployment_id,
          }
        : null,
      canary: active
        ? {
            version: active.version,
            weight: active.weight,
            status: active.status,
            strategy: active.strategy,
            deploymentId: active.id,
            since: active.created_at.toISOString(),
            by: active.created_by,
          }
        : null,
      rollbackTarget: active ? (stable?.version ?? null) : (good?.version ?? null),
      desired: weightsOf(stable?.version, active),
      history: history.map((d) => ({
        id: d.id,
        version: d.version,
        strategy: d.strategy,
        kind: d.kind,
        status: d.status,
        createdBy: d.created_by,
        createdAt: d.created_at.toISOString(),
        finishedAt: d.finished_at?.toISOString() ?? null,
      })),
    });
  }
  return out;
}

export { describeState };
