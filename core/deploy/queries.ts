/** Reading deployments: a server's list, one with its timeline, and what runs in each environment. */
import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { NotFoundError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import { findEnvironment, listEnvironmentRows } from './environments.ts';
import {
  ACTIVE_SQL,
  activeIn,
  loadRow,
  SELECT_LOADED,
  toView,
  type DeploymentDetail,
  type DeploymentRow,
  type LoadedRow,
} from './records.ts';
import { currentRelease, lastKnownGood, weightsOf, type VersionWeight } from './releases.ts';
import type { RolloutStatus } from './rollout.ts';
import type { Strategy } from './strategies.ts';

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

export interface EnvironmentRouting {
  server: string;
  environment: string;
  /** The desired weights there (what a router applies): the stable version and an active rollout. */
  weights: VersionWeight[];
  /** The active rollout the weights come from, if any. */
  deploymentId: string | null;
}

/** The desired weights of a server in one environment (read permission; the token's servers only). */
export async function environmentRouting(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  environment: string,
): Promise<EnvironmentRouting> {
  const server = await findServer(db, principal, serverSlug);
  const env = await findEnvironment(db, principal, environment);
  const stable = await currentRelease(db, server.id, env.id);
  const active = await activeIn(db, server.id, env.id);
  const weights = weightsOf(stable?.version, active);
  return {
    server: server.slug,
    environment: env.name,
    weights,
    // A rollout still at weight 0 (pending, verifying) has no say in the weights yet.
    deploymentId: active && weights.some((w) => w.version === active.version) ? active.id : null,
  };
}
