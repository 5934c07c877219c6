/**
 * Deployment records: the row as stored, the view as shown, and loading them. What every other
 * part of core/deploy builds on (create.ts, actions.ts, rollback.ts, system-events.ts, queries.ts).
 */
import type { Db, Queryable } from '../db/client.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher } from '../notify/events.ts';
import {
  ACTIVE_STATUSES,
  allowedActions,
  type Awaiting,
  type Pause,
  type RolloutState,
  type RolloutStatus,
  type Step,
  type UserAction,
} from './rollout.ts';
import type { RolloutScheduler } from './scheduler.ts';
import type { Strategy } from './strategies.ts';

/**
 * What happens to the live MCP sessions of a version that loses all its weight by an abort or a
 * rollback (the gateway carries it out): `migrate` (the default) opens a new upstream session on the
 * remaining version at the session's next request; `terminate` answers that request 404 (the client
 * initializes again); `drain` leaves the session on its version until it goes idle. A promotion to
 * 100 % always lets the old version's sessions drain.
 */
export const SESSION_POLICIES = ['migrate', 'terminate', 'drain'] as const;
export type SessionPolicy = (typeof SESSION_POLICIES)[number];

/** The policy of a deployment created without one. */
export const DEFAULT_SESSION_POLICY: SessionPolicy = 'migrate';

export const isSessionPolicy = (value: unknown): value is SessionPolicy =>
  (SESSION_POLICIES as readonly unknown[]).includes(value);

export interface DeployDeps {
  db: Db;
  publisher: EventPublisher;
  scheduler: RolloutScheduler;
  logger?: Logger | undefined;
}

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
  sessions: SessionPolicy;
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
export interface LoadedRow extends DeploymentRow {
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
  /** What an abort or rollback does to the live sessions of the version losing its weight. */
  sessions: SessionPolicy;
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

export const stateOf = (row: DeploymentRow): RolloutState => ({
  status: row.status,
  step: row.current_step,
  weight: row.weight,
  pause: row.pause,
  awaiting: row.awaiting,
});

export function toView(row: LoadedRow): DeploymentView {
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
    sessions: row.sessions,
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

export const SELECT_LOADED = `SELECT d.*, s.slug AS server, e.name AS environment, c.name AS current_environment
  FROM deployments d JOIN servers s ON s.id = d.server_id
  JOIN environments e ON e.id = d.environment_id JOIN environments c ON c.id = d.current_environment_id`;

export async function loadRow(db: Queryable, id: string, forUpdate = false): Promise<LoadedRow | undefined> {
  const [row] = await db.query<LoadedRow>(
    `${SELECT_LOADED} WHERE d.id = $1${forUpdate ? ' FOR UPDATE OF d' : ''}`,
    [id],
  );
  return row;
}

export const ACTIVE_SQL = ACTIVE_STATUSES.map((s) => `'${s}'`).join(', ');

/** The rollout active in an environment, if any (at most one: a unique index says so). */
export async function activeIn(tx: Queryable, serverId: string, envId: string) {
  const [row] = await tx.query<DeploymentRow>(
    `SELECT * FROM deployments WHERE server_id = $1 AND current_environment_id = $2 AND status IN (${ACTIVE_SQL})`,
    [serverId, envId],
  );
  return row;
}
