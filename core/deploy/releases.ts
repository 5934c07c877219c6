/**
 * What runs where: the release records (the version at 100 % in each environment, the last known
 * good one a rollback returns to) and the desired traffic split they and the active rollouts make.
 */
import type { Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import { listEnvironmentRows } from './environments.ts';
import { ACTIVE_SQL, type DeploymentRow } from './records.ts';

export interface ReleaseRow {
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

export async function currentRelease(
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
export async function lastKnownGood(
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
export async function release(
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
export async function revertRelease(
  tx: Queryable,
  row: DeploymentRow,
  envId: string,
  actor: string,
): Promise<void> {
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

export function weightsOf(
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
