import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { findServer } from '../registry/servers.ts';
import {
  checkSpec,
  selectsEnvironment,
  selectsVersion,
  type CheckInput,
  type CheckPhase,
  type CheckSpec,
  type CheckTarget,
  type HealthCheck,
} from './model.ts';
import { assertTargetAddressesAllowed } from './target-guard.ts';

/**
 * Keeps each periodic check's job scheduler in step with the table. Called inside the transaction
 * that changes the check, so a failure to reach Redis changes nothing; a scheduler left for a check
 * whose transaction then failed removes itself on its first run.
 */
export interface CheckScheduler {
  /** Creates or updates the scheduler of an enabled runtime/dependency check; removes it otherwise. */
  sync(check: HealthCheck): Promise<void>;
  remove(checkId: string): Promise<void>;
}

interface CheckRow {
  id: string;
  org_id: string;
  server: string;
  name: string;
  kind: HealthCheck['kind'];
  phase: HealthCheck['phase'];
  environment: string | null;
  version_selector: string | null;
  target: CheckTarget;
  interval_ms: number;
  timeout_ms: number;
  required_passes: number;
  startup_timeout_ms: number;
  enabled: boolean;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

const SELECT = `SELECT c.*, s.slug AS server FROM health_checks c JOIN servers s ON s.id = c.server_id`;

function toCheck(row: CheckRow): HealthCheck {
  return {
    id: row.id,
    orgId: row.org_id,
    server: row.server,
    name: row.name,
    kind: row.kind,
    phase: row.phase,
    environment: row.environment,
    versionSelector: row.version_selector,
    target: row.target,
    intervalMs: row.interval_ms,
    timeoutMs: row.timeout_ms,
    requiredPasses: row.required_passes,
    startupTimeoutMs: row.startup_timeout_ms,
    enabled: row.enabled,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Whether a check runs on a job scheduler (startup checks run only after deployments). */
export const isPeriodic = (check: Pick<HealthCheck, 'phase' | 'enabled'>) =>
  check.enabled && check.phase !== 'startup';

const auditView = (spec: CheckSpec) => ({
  name: spec.name,
  kind: spec.kind,
  phase: spec.phase,
  environment: spec.environment,
  versionSelector: spec.versionSelector,
  target: spec.target,
  intervalMs: spec.intervalMs,
  timeoutMs: spec.timeoutMs,
  requiredPasses: spec.requiredPasses,
  startupTimeoutMs: spec.startupTimeoutMs,
  enabled: spec.enabled,
});

export async function createCheck(
  db: Db,
  scheduler: CheckScheduler,
  ctx: Context,
  server: string,
  input: CheckInput,
): Promise<HealthCheck> {
  const spec = checkSpec(input);
  await assertTargetAddressesAllowed(spec.target.url);
  return db.transaction(async (tx) => {
    const serverRow = await findServer(tx, ctx.principal, server);
    await assertEnvironment(tx, ctx.principal, spec.environment);
    const id = newId();
    const [inserted] = await tx.query<{ id: string }>(
      `INSERT INTO health_checks (id, org_id, server_id, name, kind, phase, environment, version_selector,
         target, interval_ms, timeout_ms, required_passes, startup_timeout_ms, enabled, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
       ON CONFLICT (server_id, name) DO NOTHING RETURNING id`,
      [
        id,
        ctx.principal.orgId,
        serverRow.id,
        spec.name,
        spec.kind,
        spec.phase,
        spec.environment,
        spec.versionSelector,
        JSON.stringify(spec.target),
        spec.intervalMs,
        spec.timeoutMs,
        spec.requiredPasses,
        spec.startupTimeoutMs,
        spec.enabled,
        ctx.principal.tokenName,
      ],
    );
    if (!inserted) {
      throw new ConflictError(
        `server ${server} already has a health check named "${spec.name}"; pick another name or change that one`,
        'health-check-exists',
      );
    }
    const check = await loadCheck(tx, id);
    if (!check) throw new Error(`health check ${id} vanished inside its own transaction`);
    await appendAudit(tx, ctx, {
      action: 'health-check.create',
      target: { type: 'health-check', id, name: `${server}/${spec.name}` },
      after: auditView(spec),
    });
    await scheduler.sync(check);
    return check;
  });
}

export async function listChecks(
  db: Queryable,
  principal: Principal,
  server: string,
  filter: { phase?: CheckPhase | undefined; environment?: string | undefined } = {},
): Promise<HealthCheck[]> {
  const serverRow = await findServer(db, principal, server);
  const rows = await db.query<CheckRow>(
    `${SELECT} WHERE c.server_id = $1 AND ($2::text IS NULL OR c.phase = $2)
       AND ($3::text IS NULL OR c.environment IS NULL OR c.environment = $3)
     ORDER BY c.name`,
    [serverRow.id, filter.phase ?? null, filter.environment ?? null],
  );
  return rows.map(toCheck);
}

/** An environment the org has (see the deployments' environments); null means every one. */
async function assertEnvironment(db: Queryable, principal: Principal, environment: string | null) {
  if (environment === null) return;
  const names = (
    await db.query<{ name: string }>('SELECT name FROM environments WHERE org_id = $1 ORDER BY position', [
      principal.orgId,
    ])
  ).map((r) => r.name);
  if (!names.includes(environment)) {
    throw new BadRequestError(
      `environment ${environment} does not exist in @${principal.orgSlug}; it has ${names.join(', ') || 'none'}`,
      'unknown-environment',
    );
  }
}

/** A check of a server the principal can see; anything else is the same 404. */
export async function getCheck(
  db: Queryable,
  principal: Principal,
  server: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<HealthCheck> {
  const serverRow = await findServer(db, principal, server);
  const [row] = await db.query<CheckRow>(
    `${SELECT} WHERE c.server_id = $1 AND c.id = $2${options.forUpdate ? ' FOR UPDATE OF c' : ''}`,
    [serverRow.id, id],
  );
  if (!row) {
    throw new NotFoundError(`health check ${id} was not found on server ${server}`, 'health-check-not-found');
  }
  return toCheck(row);
}

export async function updateCheck(
  db: Db,
  scheduler: CheckScheduler,
  ctx: Context,
  server: string,
  id: string,
  input: CheckInput,
): Promise<HealthCheck> {
  // Before the transaction, so a slow resolver holds no row lock; the rest of the URL is checked inside.
  if (input.url !== undefined) await assertTargetAddressesAllowed(input.url);
  return db.transaction(async (tx) => {
    const before = await getCheck(tx, ctx.principal, server, id, { forUpdate: true });
    const spec = checkSpec(input, before);
    if (spec.environment !== before.environment) await assertEnvironment(tx, ctx.principal, spec.environment);
    if (spec.name !== before.name) {
      const [taken] = await tx.query(
        'SELECT 1 FROM health_checks WHERE org_id = $1 AND server_id = (SELECT server_id FROM health_checks WHERE id = $2) AND name = $3',
        [ctx.principal.orgId, id, spec.name],
      );
      if (taken) {
        throw new ConflictError(
          `server ${server} already has a health check named "${spec.name}"`,
          'health-check-exists',
        );
      }
    }
    await tx.query(
      `UPDATE health_checks SET name = $2, phase = $3, environment = $4, version_selector = $5, target = $6,
         interval_ms = $7, timeout_ms = $8, required_passes = $9, startup_timeout_ms = $10, enabled = $11,
         updated_at = now()
       WHERE id = $1`,
      [
        id,
        spec.name,
        spec.phase,
        spec.environment,
        spec.versionSelector,
        JSON.stringify(spec.target),
        spec.intervalMs,
        spec.timeoutMs,
        spec.requiredPasses,
        spec.startupTimeoutMs,
        spec.enabled,
      ],
    );
    const after = (await loadCheck(tx, id)) as HealthCheck;
    await appendAudit(tx, ctx, {
      action: 'health-check.update',
      target: { type: 'health-check', id, name: `${server}/${after.name}` },
      before: auditView(before),
      after: auditView(after),
    });
    await scheduler.sync(after);
    return after;
  });
}

export function deleteCheck(
  db: Db,
  scheduler: CheckScheduler,
  ctx: Context,
  server: string,
  id: string,
): Promise<HealthCheck> {
  return db.transaction(async (tx) => {
    const check = await getCheck(tx, ctx.principal, server, id, { forUpdate: true });
    await tx.query('DELETE FROM health_checks WHERE id = $1', [id]);
    await appendAudit(tx, ctx, {
      action: 'health-check.delete',
      target: { type: 'health-check', id, name: `${server}/${check.name}` },
      before: auditView(check),
    });
    await scheduler.remove(id);
    return check;
  });
}

/** A check by id, with no principal: for workers acting on Pylee's behalf. */
export async function loadCheck(db: Queryable, id: string): Promise<HealthCheck | undefined> {
  const [row] = await db.query<CheckRow>(`${SELECT} WHERE c.id = $1`, [id]);
  return row ? toCheck(row) : undefined;
}

/** Every enabled runtime and dependency check, of every org: what the job schedulers must match. */
export async function listPeriodicChecks(db: Queryable): Promise<HealthCheck[]> {
  const rows = await db.query<CheckRow>(`${SELECT} WHERE c.enabled AND c.phase <> 'startup' ORDER BY c.id`);
  return rows.map(toCheck);
}

/** The enabled startup checks that apply to a deployment of `version` to `environment`. */
export async function startupChecksFor(
  db: Queryable,
  scope: { orgId: string; server: string; environment: string; version: string },
): Promise<HealthCheck[]> {
  const rows = await db.query<CheckRow>(
    `${SELECT} WHERE c.org_id = $1 AND s.slug = $2 AND c.enabled AND c.phase = 'startup'
       AND (c.environment IS NULL OR c.environment = $3)
     ORDER BY c.name`,
    [scope.orgId, scope.server, scope.environment],
  );
  return rows
    .map(toCheck)
    .filter(
      (c) =>
        selectsEnvironment(c.environment, scope.environment) &&
        selectsVersion(c.versionSelector, scope.version),
    );
}

/** Whether a deployment of `version` to `environment` has startup checks to wait for. */
export async function hasStartupChecks(
  db: Queryable,
  scope: { orgId: string; server: string; environment: string; version: string },
): Promise<boolean> {
  return (await startupChecksFor(db, scope)).length > 0;
}

/**
 * The version running at 100 % for a server in an environment (the deployments' open release),
 * or undefined when none has landed there.
 */
export async function stableVersion(
  db: Queryable,
  scope: { orgId: string; server: string; environment: string },
): Promise<string | undefined> {
  const [row] = await db.query<{ version: string }>(
    `SELECT r.version FROM environment_releases r
       JOIN servers s ON s.id = r.server_id
       JOIN environments e ON e.id = r.environment_id
     WHERE r.org_id = $1 AND s.slug = $2 AND e.name = $3 AND r.replaced_at IS NULL`,
    [scope.orgId, scope.server, scope.environment],
  );
  return row?.version;
}
