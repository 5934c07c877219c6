import { appendAudit } from '../audit/log.ts';
import { hasPermission, type Context, type Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { SLUG_PATTERN } from '../slug.ts';
import { checkPackageGate } from '../registry/package-gate.ts';
import { checkVulnerabilityGate, type Threshold } from '../vulns/gate.ts';
import { SEVERITIES } from '../vulns/severity.ts';
import { formatDuration, parseDuration } from './duration.ts';

/** Every org starts with these, in pipeline order: the gradual rollout of the product page. */
export const DEFAULT_ENVIRONMENTS = [
  { name: 'development', description: 'Deploy and test a new version', protected: false },
  { name: 'staging', description: 'Validate in a production-like environment', protected: false },
  { name: 'canary', description: 'A small subset of production', protected: false },
  { name: 'production', description: 'Full production', protected: true },
] as const;

/**
 * A promotion gate: a condition a version must meet before it is deployed to an environment.
 * - `soak`: the version ran at 100 % in `environment` for at least `duration`, and was not rolled back there;
 * - `no-prerelease`: no pre-release versions (what `protected` implies);
 * - `version-status`: the version's lifecycle status is one of `status`;
 * - `environment-permission`: only tokens granted this environment by name (or admins) may deploy;
 * - `no-vulnerabilities`: the version has no finding at or above `severity` (after ignore rules);
 * - `allowed-packages`: every package version the version references is allowed by the org's package
 *   catalogue and, unless `allowDeprecated`, not deprecated (rollbacks to a version that ran in the environment skip it).
 */
export type Gate =
  | { type: 'soak'; environment: string; duration: string }
  | { type: 'no-prerelease' }
  | { type: 'version-status'; status: string[] }
  | { type: 'environment-permission' }
  | { type: 'no-vulnerabilities'; severity: Threshold }
  | { type: 'allowed-packages'; allowDeprecated: boolean };

export const GATE_TYPES = [
  'soak',
  'no-prerelease',
  'version-status',
  'environment-permission',
  'no-vulnerabilities',
  'allowed-packages',
] as const;

export interface EnvironmentView {
  name: string;
  /** 1-based place in the pipeline. */
  position: number;
  description: string;
  protected: boolean;
  gates: Gate[];
  createdAt: string;
  updatedAt: string;
}

export interface EnvironmentRow {
  id: string;
  org_id: string;
  name: string;
  position: number;
  description: string;
  protected: boolean;
  gates: Gate[];
  created_at: Date;
  updated_at: Date;
}

export const toEnvironmentView = (row: EnvironmentRow, position = row.position): EnvironmentView => ({
  name: row.name,
  position,
  description: row.description,
  protected: row.protected,
  gates: row.gates,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

/** Creates the default environments of a new org (inside its creating transaction). */
export async function createDefaultEnvironments(tx: Queryable, orgId: string): Promise<void> {
  for (const [i, env] of DEFAULT_ENVIRONMENTS.entries()) {
    await tx.query(
      `INSERT INTO environments (id, org_id, name, position, description, protected)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, name) DO NOTHING`,
      [newId(), orgId, env.name, i + 1, env.description, env.protected],
    );
  }
}

/** The org's environments in pipeline order. */
export async function listEnvironmentRows(db: Queryable, orgId: string): Promise<EnvironmentRow[]> {
  return db.query<EnvironmentRow>('SELECT * FROM environments WHERE org_id = $1 ORDER BY position, name', [
    orgId,
  ]);
}

export async function listEnvironments(db: Queryable, principal: Principal): Promise<EnvironmentView[]> {
  return (await listEnvironmentRows(db, principal.orgId)).map((row, i) => toEnvironmentView(row, i + 1));
}

export async function findEnvironment(
  db: Queryable,
  principal: Principal,
  name: string,
): Promise<EnvironmentRow> {
  const [row] = await db.query<EnvironmentRow>('SELECT * FROM environments WHERE org_id = $1 AND name = $2', [
    principal.orgId,
    name,
  ]);
  if (!row) {
    const names = (await listEnvironmentRows(db, principal.orgId)).map((e) => e.name);
    throw new NotFoundError(
      `environment ${name} does not exist in @${principal.orgSlug}; environments: ${names.join(', ') || 'none'}`,
      'environment-not-found',
    );
  }
  return row;
}

/** Checks gates as a request gives them; the environments a soak gate names must exist. */
export async function checkGates(
  db: Queryable,
  principal: Principal,
  self: string,
  gates: unknown[],
): Promise<Gate[]> {
  const names = new Set((await listEnvironmentRows(db, principal.orgId)).map((e) => e.name));
  names.add(self);
  return gates.map((raw, i) => {
    const at = `gates[${i}]`;
    const gate = (raw ?? {}) as Record<string, unknown>;
    const keys = Object.keys(gate);
    const only = (allowed: string[]) => {
      const extra = keys.filter((k) => !allowed.includes(k));
      if (extra.length)
        throw new BadRequestError(`${at} has unknown fields: ${extra.join(', ')}`, 'invalid-gate');
    };
    switch (gate.type) {
      case 'soak': {
        only(['type', 'environment', 'duration']);
        if (
          typeof gate.environment !== 'string' ||
          !names.has(gate.environment) ||
          gate.environment === self
        ) {
          throw new BadRequestError(
            `${at}.environment must name another environment of @${principal.orgSlug} (${[...names].filter((n) => n !== self).join(', ')})`,
            'invalid-gate',
          );
        }
        if (typeof gate.duration !== 'string')
          throw new BadRequestError(`${at}.duration must be a duration, e.g. 30m`, 'invalid-gate');
        parseDuration(`${at}.duration`, gate.duration, { minMs: 1000, maxMs: 90 * 86_400_000 });
        return { type: 'soak', environment: gate.environment, duration: gate.duration };
      }
      case 'no-prerelease':
      case 'environment-permission':
        only(['type']);
        return { type: gate.type };
      case 'no-vulnerabilities': {
        only(['type', 'severity']);
        if (!(SEVERITIES as readonly unknown[]).includes(gate.severity ?? 'high')) {
          throw new BadRequestError(`${at}.severity must be one of ${SEVERITIES.join(', ')}`, 'invalid-gate');
        }
        return { type: 'no-vulnerabilities', severity: (gate.severity ?? 'high') as Threshold };
      }
      case 'allowed-packages': {
        only(['type', 'allowDeprecated']);
        if (gate.allowDeprecated !== undefined && typeof gate.allowDeprecated !== 'boolean') {
          throw new BadRequestError(
            `${at}.allowDeprecated must be true or false (true: deprecated package versions may deploy)`,
            'invalid-gate',
          );
        }
        return { type: 'allowed-packages', allowDeprecated: gate.allowDeprecated === true };
      }
      case 'version-status': {
        only(['type', 'status']);
        const statuses = ['development', 'release-candidate', 'stable', 'deprecated'];
        if (
          !Array.isArray(gate.status) ||
          gate.status.length === 0 ||
          gate.status.some((s) => !statuses.includes(s as string))
        ) {
          throw new BadRequestError(`${at}.status must list some of ${statuses.join(', ')}`, 'invalid-gate');
        }
        return { type: 'version-status', status: [...new Set(gate.status as string[])] };
      }
      default:
        throw new BadRequestError(
          `${at}.type ${JSON.stringify(gate.type)} is not a gate type; use one of ${GATE_TYPES.join(', ')}`,
          'invalid-gate',
        );
    }
  });
}

export interface EnvironmentInput {
  name: string;
  description?: string | undefined;
  protected?: boolean | undefined;
  gates?: unknown[] | undefined;
  /** Place it right after this environment in the pipeline (default: last). */
  after?: string | undefined;
  before?: string | undefined;
}

const summary = (v: EnvironmentView) => ({
  name: v.name,
  position: v.position,
  protected: v.protected,
  gates: v.gates,
});

/** Moves rows at `position` and later one place down, making room. */
async function makeRoom(tx: Queryable, orgId: string, position: number) {
  await tx.query('UPDATE environments SET position = position + 1 WHERE org_id = $1 AND position >= $2', [
    orgId,
    position,
  ]);
}

async function placeOf(
  tx: Queryable,
  principal: Principal,
  input: { after?: string | undefined; before?: string | undefined },
) {
  if (input.after && input.before) {
    throw new BadRequestError('give after or before, not both', 'invalid-position');
  }
  if (input.after) return (await findEnvironment(tx, principal, input.after)).position + 1;
  if (input.before) return (await findEnvironment(tx, principal, input.before)).position;
  return undefined;
}

/** Locks the org's environment list, so positions are changed by one transaction at a time. */
const lockEnvironments = (tx: Queryable, orgId: string) =>
  tx.query('SELECT id FROM environments WHERE org_id = $1 ORDER BY id FOR UPDATE', [orgId]);

export function createEnvironment(db: Db, ctx: Context, input: EnvironmentInput): Promise<EnvironmentView> {
  const { principal } = ctx;
  if (!new RegExp(SLUG_PATTERN).test(input.name)) {
    throw new BadRequestError(
      `environment name "${input.name}" must be 2-64 lowercase letters, digits or dashes (e.g. eu-production)`,
      'invalid-environment-name',
    );
  }
  return db.transaction(async (tx) => {
    await lockEnvironments(tx, principal.orgId);
    const gates = await checkGates(tx, principal, input.name, input.gates ?? []);
    const [last] = await tx.query<{ max: number | null }>(
      'SELECT max(position) AS max FROM environments WHERE org_id = $1',
      [principal.orgId],
    );
    const position = (await placeOf(tx, principal, input)) ?? (last?.max ?? 0) + 1;
    const [existing] = await tx.query('SELECT 1 FROM environments WHERE org_id = $1 AND name = $2', [
      principal.orgId,
      input.name,
    ]);
    if (existing) throw new ConflictError(`environment ${input.name} already exists`, 'environment-exists');
    await makeRoom(tx, principal.orgId, position);
    const [row] = await tx.query<EnvironmentRow>(
      `INSERT INTO environments (id, org_id, name, position, description, protected, gates)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [
        newId(),
        principal.orgId,
        input.name,
        position,
        input.description ?? '',
        input.protected ?? false,
        JSON.stringify(gates),
      ],
    );
    const view = await viewOf(tx, row as EnvironmentRow);
    await appendAudit(tx, ctx, {
      action: 'environment.create',
      target: { type: 'environment', id: view.name, name: view.name },
      after: summary(view),
    });
    return view;
  });
}

/** The view with its 1-based rank in the pipeline (stored positions may have gaps). */
async function viewOf(tx: Queryable, row: EnvironmentRow): Promise<EnvironmentView> {
  const [rank] = await tx.query<{ n: number }>(
    `SELECT count(*) AS n FROM environments WHERE org_id = $1 AND (position < $2 OR (position = $2 AND name <= $3))`,
    [row.org_id, row.position, row.name],
  );
  return toEnvironmentView(row, rank?.n ?? row.position);
}

export interface EnvironmentPatch {
  description?: string | undefined;
  protected?: boolean | undefined;
  gates?: unknown[] | undefined;
  after?: string | undefined;
  before?: string | undefined;
}

export function updateEnvironment(
  db: Db,
  ctx: Context,
  name: string,
  patch: EnvironmentPatch,
): Promise<EnvironmentView> {
  const { principal } = ctx;
  return db.transaction(async (tx) => {
    await lockEnvironments(tx, principal.orgId);
    const row = await findEnvironment(tx, principal, name);
    const before = await viewOf(tx, row);
    const gates = patch.gates === undefined ? row.gates : await checkGates(tx, principal, name, patch.gates);
    if (patch.after === name || patch.before === name) {
      throw new BadRequestError(
        `environment ${name} cannot be placed relative to itself`,
        'invalid-position',
      );
    }
    const position = await placeOf(tx, principal, patch);
    if (position !== undefined) {
      await tx.query('UPDATE environments SET position = -1 WHERE id = $1', [row.id]);
      await makeRoom(tx, principal.orgId, position);
      await tx.query('UPDATE environments SET position = $2 WHERE id = $1', [row.id, position]);
    }
    const [updated] = await tx.query<EnvironmentRow>(
      `UPDATE environments SET description = $2, protected = $3, gates = $4, updated_at = now()
       WHERE id = $1 RETURNING *`,
      [row.id, patch.description ?? row.description, patch.protected ?? row.protected, JSON.stringify(gates)],
    );
    const after = await viewOf(tx, updated as EnvironmentRow);
    await appendAudit(tx, ctx, {
      action: 'environment.update',
      target: { type: 'environment', id: name, name },
      before: summary(before),
      after: summary(after),
    });
    return after;
  });
}

/** Removes an environment nothing was ever deployed to and no gate refers to. */
export function deleteEnvironment(db: Db, ctx: Context, name: string): Promise<EnvironmentView> {
  const { principal } = ctx;
  return db.transaction(async (tx) => {
    await lockEnvironments(tx, principal.orgId);
    const row = await findEnvironment(tx, principal, name);
    const [used] = await tx.query<{ n: number }>(
      'SELECT count(*) AS n FROM deployments WHERE environment_id = $1 OR current_environment_id = $1',
      [row.id],
    );
    if (used && used.n > 0) {
      throw new ConflictError(
        `environment ${name} has ${used.n} deployment(s) in its history and cannot be deleted`,
        'environment-in-use',
      );
    }
    const referring = (await listEnvironmentRows(tx, principal.orgId)).filter((e) =>
      e.gates.some((g) => g.type === 'soak' && g.environment === name),
    );
    if (referring.length > 0) {
      throw new ConflictError(
        `environment ${name} is named by soak gates of ${referring.map((e) => e.name).join(', ')}; remove those gates first`,
        'environment-in-use',
      );
    }
    const view = await viewOf(tx, row);
    await tx.query('DELETE FROM environments WHERE id = $1', [row.id]);
    await appendAudit(tx, ctx, {
      action: 'environment.delete',
      target: { type: 'environment', id: name, name },
      before: summary(view),
    });
    return view;
  });
}

export interface GateResult {
  gate: Gate | { type: 'protected' };
  passed: boolean;
  /** A sentence saying what is (not) met. */
  detail: string;
  /** When a soak gate not met yet will pass, if nothing else changes (epoch ms). */
  passesAt?: number;
}

export interface GateSubject {
  serverId: string;
  version: string;
  prerelease: boolean;
  status: string;
  principal: Principal;
  /** Rollbacks to a version that ran here before skip soak gates: getting back fast is the point. */
  rollback: boolean;
}

/** The environment's gates (and protection), each evaluated for this version and token. */
export async function evaluateGates(
  db: Queryable,
  env: EnvironmentRow,
  subject: GateSubject,
  now = Date.now(),
): Promise<GateResult[]> {
  const results: GateResult[] = [];
  if (env.protected) {
    results.push({
      gate: { type: 'protected' },
      passed: !subject.prerelease,
      detail: subject.prerelease
        ? `${env.name} is protected and takes no pre-release versions; ${subject.version} is one (release ${subject.version.split(/[-+]/)[0]} instead)`
        : `${env.name} is protected: ${subject.version} is not a pre-release`,
    });
  }
  for (const gate of env.gates) {
    if (gate.type === 'no-prerelease') {
      results.push({
        gate,
        passed: !subject.prerelease,
        detail: subject.prerelease
          ? `gate no-prerelease of ${env.name}: ${subject.version} is a pre-release`
          : `${subject.version} is not a pre-release`,
      });
    } else if (gate.type === 'version-status') {
      const passed = gate.status.includes(subject.status);
      results.push({
        gate,
        passed,
        detail: passed
          ? `${subject.version} is ${subject.status}`
          : `gate version-status of ${env.name}: ${subject.version} is ${subject.status}, not ${gate.status.join(' or ')}`,
      });
    } else if (gate.type === 'environment-permission') {
      const p = subject.principal;
      const passed = hasPermission(p, 'admin') || (p.environments ?? []).includes(env.name);
      results.push({
        gate,
        passed,
        detail: passed
          ? `the token may deploy to ${env.name}`
          : `gate environment-permission of ${env.name}: this token (${p.tokenName}) is not granted ${env.name} by name; use a token created with environments: ["${env.name}"]`,
      });
    } else if (gate.type === 'no-vulnerabilities') {
      results.push(await vulnerabilityGate(db, env, gate.severity, subject));
    } else if (gate.type === 'allowed-packages') {
      // A catalogue change must not keep a team from getting back to a version that ran here; any other
      // lower version (which deploys as a rollback too) is checked.
      if (subject.rollback && (await ranIn(db, env, subject))) {
        results.push({
          gate,
          passed: true,
          detail: `${subject.version} ran in ${env.name} before: rollbacks to it skip allowed-packages gates`,
        });
        continue;
      }
      const allowDeprecated = gate.allowDeprecated === true;
      const label = `gate allowed-packages of ${env.name}${allowDeprecated ? ' (deprecated allowed)' : ''}`;
      const result = await checkPackageGate(
        db,
        env.org_id,
        subject.serverId,
        subject.version,
        allowDeprecated,
        label,
      );
      results.push({ gate, passed: result.passed, detail: result.detail });
    } else if (gate.type === 'soak') {
      if (subject.rollback) {
        results.push({ gate, passed: true, detail: 'rollbacks skip soak gates' });
        continue;
      }
      const needMs = parseDuration('duration', gate.duration, { minMs: 1000, maxMs: 90 * 86_400_000 });
      const [release] = await db.query<{ released_at: Date }>(
        `SELECT r.released_at FROM environment_releases r JOIN environments e ON e.id = r.environment_id
         WHERE r.server_id = $1 AND e.org_id = $2 AND e.name = $3 AND r.version = $4 AND r.rolled_back_at IS NULL
         ORDER BY r.released_at LIMIT 1`,
        [subject.serverId, env.org_id, gate.environment, subject.version],
      );
      const label = `gate soak of ${env.name} (${gate.duration} in ${gate.environment})`;
      if (!release) {
        results.push({
          gate,
          passed: false,
          detail: `${label}: ${subject.version} has not run in ${gate.environment} (or was rolled back there); deploy it there first`,
        });
        continue;
      }
      const passesAt = release.released_at.getTime() + needMs;
      const passed = passesAt <= now;
      results.push({
        gate,
        passed,
        detail: passed
          ? `${subject.version} has run in ${gate.environment} since ${release.released_at.toISOString()}`
          : `${label}: ${subject.version} has run in ${gate.environment} for ${formatDuration(now - release.released_at.getTime())}; it passes at ${new Date(passesAt).toISOString()}`,
        ...(passed ? {} : { passesAt }),
      });
    }
  }
  return results;
}

async function ranIn(db: Queryable, env: EnvironmentRow, subject: GateSubject): Promise<boolean> {
  const rows = await db.query(
    'SELECT 1 FROM environment_releases WHERE server_id = $1 AND environment_id = $2 AND version = $3 LIMIT 1',
    [subject.serverId, env.id, subject.version],
  );
  return rows.length > 0;
}

async function vulnerabilityGate(
  db: Queryable,
  env: EnvironmentRow,
  severity: Threshold,
  subject: GateSubject,
): Promise<GateResult> {
  const gate = { type: 'no-vulnerabilities' as const, severity };
  const label = `gate no-vulnerabilities of ${env.name} (${severity} or above)`;
  const result = await checkVulnerabilityGate(
    db,
    env.org_id,
    subject.serverId,
    subject.version,
    severity,
    label,
  );
  return { gate, passed: result.passed, detail: result.detail };
}

/** Throws 409 `gate-not-met` (or `protected-environment`) naming the first gate not met; nothing has changed. */
export function assertGates(env: EnvironmentRow, results: GateResult[]): void {
  const failed = results.find((r) => !r.passed);
  if (!failed) return;
  const code = failed.gate.type === 'protected' ? 'protected-environment' : 'gate-not-met';
  throw new ConflictError(failed.detail, code, { environment: env.name, gate: failed.gate });
}
