/**
 * Version retention policies (per server, and an org default for servers without one) and applying
 * them: the plan (`retentionPlan`, also the dry run) and the daily run that retires what it says,
 * through the ordinary lifecycle transition, so each retirement is recorded and audited like a
 * person's, with the policy and rule in its reason. The decision itself is in retention-plan.ts.
 */
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { listEnvironmentRows } from '../deploy/environments.ts';
import { ACTIVE_SQL } from '../deploy/records.ts';
import { currentRelease, lastKnownGood } from '../deploy/releases.ts';
import { BadRequestError, ForbiddenError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { listOrgs, systemPrincipal, type Org } from '../orgs.ts';
import type { Status } from './lifecycle.ts';
import { retentionDecisions, type RetentionDecision, type RetentionFacts } from './retention-plan.ts';
import { linesOf } from './server-lines.ts';
import { findServer, type ServerRow } from './servers.ts';
import { updateVersion } from './versions.ts';

interface PolicyRow {
  id: string;
  org_id: string;
  server_id: string | null;
  keep_per_line: number;
  keep_deployed_days: number;
  enabled: boolean;
  updated_by: string;
  updated_at: Date;
}

export interface RetentionPolicyView {
  id: string;
  /** `server`: the server's own policy; `org`: the org's default for servers without one. */
  scope: 'server' | 'org';
  server: string | null;
  keepPerLine: number;
  keepDeployedWithinDays: number;
  /** Disabled: the daily run skips it (the preview still shows what it would do). */
  enabled: boolean;
  updatedBy: string;
  updatedAt: string;
}

export interface RetentionInput {
  keepPerLine: number;
  keepDeployedWithinDays: number;
  enabled?: boolean | undefined;
}

/** Upper bounds that catch typos (a timestamp pasted as days) rather than limit anyone. */
const MAX_PER_LINE = 10_000;
const MAX_DAYS = 36_500;

const toView = (row: PolicyRow, server: string | null): RetentionPolicyView => ({
  id: row.id,
  scope: row.server_id === null ? 'org' : 'server',
  server,
  keepPerLine: row.keep_per_line,
  keepDeployedWithinDays: row.keep_deployed_days,
  enabled: row.enabled,
  updatedBy: row.updated_by,
  updatedAt: row.updated_at.toISOString(),
});

/** What the policy is, in words, for reasons and the audit trail. */
export function describePolicy(p: RetentionPolicyView, orgSlug: string): string {
  const scope =
    p.scope === 'server' ? `${p.server}'s retention policy` : `@${orgSlug}'s default retention policy`;
  return `${scope} (keep the newest ${p.keepPerLine} per line and anything deployed in the last ${p.keepDeployedWithinDays} day${p.keepDeployedWithinDays === 1 ? '' : 's'}; policy ${p.id})`;
}

/** The org default reaches every server: a token limited to some servers may not change it. */
function assertOrgWide(principal: Principal): void {
  if (principal.servers === null) return;
  throw new ForbiddenError(
    `this token is limited to servers ${principal.servers.join(', ')}, and the org's default retention policy applies to every server; set a policy on one of yours with PUT /servers/{server}/retention`,
    'org-wide-change',
  );
}

function checkInput(input: RetentionInput): void {
  const { keepPerLine, keepDeployedWithinDays } = input;
  if (!Number.isInteger(keepPerLine) || keepPerLine < 1 || keepPerLine > MAX_PER_LINE) {
    throw new BadRequestError(
      keepPerLine === 0
        ? 'keepPerLine 0 would keep no version of a line, not even its newest, and retired is final; keep at least 1 (e.g. 3)'
        : `keepPerLine must be a whole number from 1 to ${MAX_PER_LINE} (e.g. 3), not ${keepPerLine}`,
      'invalid-retention',
      { field: 'keepPerLine' },
    );
  }
  if (
    !Number.isInteger(keepDeployedWithinDays) ||
    keepDeployedWithinDays < 0 ||
    keepDeployedWithinDays > MAX_DAYS
  ) {
    throw new BadRequestError(
      `keepDeployedWithinDays must be a whole number of days from 0 to ${MAX_DAYS} (e.g. 30), not ${keepDeployedWithinDays}`,
      'invalid-retention',
      { field: 'keepDeployedWithinDays' },
    );
  }
}

async function policyRow(db: Queryable, orgId: string, serverId: string | null) {
  const [row] = await db.query<PolicyRow>(
    serverId === null
      ? 'SELECT * FROM retention_policies WHERE org_id = $1 AND server_id IS NULL'
      : 'SELECT * FROM retention_policies WHERE org_id = $1 AND server_id = $2',
    serverId === null ? [orgId] : [orgId, serverId],
  );
  return row;
}

/** A server's own policy, else the org default, else none. */
export async function effectivePolicy(
  db: Queryable,
  orgId: string,
  server: Pick<ServerRow, 'id' | 'slug'>,
): Promise<RetentionPolicyView | null> {
  const own = await policyRow(db, orgId, server.id);
  if (own) return toView(own, server.slug);
  const org = await policyRow(db, orgId, null);
  return org ? toView(org, null) : null;
}

export interface ServerRetention {
  server: string;
  /** The server's own policy. */
  policy: RetentionPolicyView | null;
  orgDefault: RetentionPolicyView | null;
  /** What applies: its own, else the org default, else none. */
  effective: RetentionPolicyView | null;
}

export async function getServerRetention(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
): Promise<ServerRetention> {
  const server = await findServer(db, principal, serverSlug);
  const own = await policyRow(db, principal.orgId, server.id);
  const org = await policyRow(db, principal.orgId, null);
  const policy = own ? toView(own, server.slug) : null;
  const orgDefault = org ? toView(org, null) : null;
  return { server: server.slug, policy, orgDefault, effective: policy ?? orgDefault };
}

export async function getOrgRetention(db: Queryable, principal: Principal) {
  const row = await policyRow(db, principal.orgId, null);
  return { policy: row ? toView(row, null) : null };
}

const snapshot = (p: RetentionPolicyView) => ({
  keepPerLine: p.keepPerLine,
  keepDeployedWithinDays: p.keepDeployedWithinDays,
  enabled: p.enabled,
});

/**
 * Sets a server's policy (`serverSlug`) or the org default (null): write permission, audited. The
 * server's row (or the org's) is locked, so two concurrent writes apply one after the other.
 */
export async function putRetention(
  db: Db,
  ctx: Context,
  serverSlug: string | null,
  input: RetentionInput,
): Promise<RetentionPolicyView> {
  checkInput(input);
  const { principal } = ctx;
  if (serverSlug === null) assertOrgWide(principal);
  return db.transaction(async (tx) => {
    let server: ServerRow | undefined;
    if (serverSlug === null)
      await tx.query('SELECT id FROM orgs WHERE id = $1 FOR UPDATE', [principal.orgId]);
    else server = await findServer(tx, principal, serverSlug, { forUpdate: true });
    const serverId = server?.id ?? null;
    const before = await policyRow(tx, principal.orgId, serverId);
    const enabled = input.enabled ?? true;
    const [row] = before
      ? await tx.query<PolicyRow>(
          `UPDATE retention_policies SET keep_per_line = $2, keep_deployed_days = $3, enabled = $4, updated_by = $5,
             updated_at = now() WHERE id = $1 RETURNING *`,
          [before.id, input.keepPerLine, input.keepDeployedWithinDays, enabled, principal.tokenName],
        )
      : await tx.query<PolicyRow>(
          `INSERT INTO retention_policies (id, org_id, server_id, keep_per_line, keep_deployed_days, enabled, updated_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
          [
            newId(),
            principal.orgId,
            serverId,
            input.keepPerLine,
            input.keepDeployedWithinDays,
            enabled,
            principal.tokenName,
          ],
        );
    const view = toView(row as PolicyRow, server?.slug ?? null);
    await appendAudit(tx, ctx, {
      action: before ? 'retention.update' : 'retention.create',
      target: { type: 'retention-policy', id: view.id, name: server ? server.slug : `@${principal.orgSlug}` },
      ...(before ? { before: snapshot(toView(before, server?.slug ?? null)) } : {}),
      after: { scope: view.scope, ...snapshot(view) },
    });
    return view;
  });
}

/** Removes a server's policy (the org default applies again) or the org default; audited. */
export async function deleteRetention(
  db: Db,
  ctx: Context,
  serverSlug: string | null,
): Promise<RetentionPolicyView> {
  const { principal } = ctx;
  if (serverSlug === null) assertOrgWide(principal);
  return db.transaction(async (tx) => {
    const server =
      serverSlug === null ? undefined : await findServer(tx, principal, serverSlug, { forUpdate: true });
    const [row] = await tx.query<PolicyRow>(
      server
        ? 'DELETE FROM retention_policies WHERE org_id = $1 AND server_id = $2 RETURNING *'
        : 'DELETE FROM retention_policies WHERE org_id = $1 AND server_id IS NULL RETURNING *',
      server ? [principal.orgId, server.id] : [principal.orgId],
    );
    if (!row) {
      throw new NotFoundError(
        server
          ? `${server.slug} has no retention policy of its own; set one with PUT /servers/${server.slug}/retention`
          : `@${principal.orgSlug} has no default retention policy; set one with PUT /retention`,
        'retention-policy-not-found',
      );
    }
    const view = toView(row, server?.slug ?? null);
    await appendAudit(tx, ctx, {
      action: 'retention.delete',
      target: { type: 'retention-policy', id: view.id, name: server ? server.slug : `@${principal.orgSlug}` },
      before: { scope: view.scope, ...snapshot(view) },
    });
    return view;
  });
}

/** Everything the decision needs about one server, read in one go (inside the caller's transaction). */
export async function retentionFacts(
  db: Queryable,
  orgId: string,
  serverId: string,
  since: number,
): Promise<RetentionFacts> {
  const versions = await db.query<{ version: string; status: Status }>(
    'SELECT version, status FROM versions WHERE server_id = $1',
    [serverId],
  );
  const environments: RetentionFacts['environments'][number][] = [];
  for (const env of await listEnvironmentRows(db, orgId)) {
    const running = await currentRelease(db, serverId, env.id);
    const good = await lastKnownGood(db, serverId, env.id, running?.version);
    environments.push({
      name: env.name,
      running: running?.version ?? null,
      lastKnownGood: good?.version ?? null,
    });
  }
  const open = await db.query<{
    id: string;
    environment: string;
    version: string;
    previous_version: string | null;
  }>(
    `SELECT d.id, e.name AS environment, d.version, d.previous_version FROM deployments d
       JOIN environments e ON e.id = d.current_environment_id
     WHERE d.server_id = $1 AND d.status IN (${ACTIVE_SQL})`,
    [serverId],
  );
  const sinceAt = new Date(since);
  const releases = await db.query<{
    version: string;
    environment: string;
    released_at: Date;
    replaced_at: Date | null;
  }>(
    `SELECT r.version, e.name AS environment, r.released_at, r.replaced_at FROM environment_releases r
       JOIN environments e ON e.id = r.environment_id
     WHERE r.server_id = $1 AND (r.released_at >= $2 OR r.replaced_at >= $2)`,
    [serverId, sinceAt],
  );
  const deployments = await db.query<{ version: string; environment: string; created_at: Date }>(
    `SELECT d.version, e.name AS environment, d.created_at FROM deployments d
       JOIN environments e ON e.id = d.environment_id
     WHERE d.server_id = $1 AND d.created_at >= $2`,
    [serverId, sinceAt],
  );
  return {
    versions,
    lines: await linesOf(db, serverId),
    environments,
    open: open.map((d) => ({
      id: d.id,
      environment: d.environment,
      version: d.version,
      previousVersion: d.previous_version,
    })),
    history: [
      ...releases.map((r) => ({
        version: r.version,
        environment: r.environment,
        kind: 'deployed' as const,
        at: r.released_at.getTime(),
      })),
      ...releases
        .filter((r) => r.replaced_at !== null)
        .map((r) => ({
          version: r.version,
          environment: r.environment,
          kind: 'ran' as const,
          at: (r.replaced_at as Date).getTime(),
        })),
      ...deployments.map((d) => ({
        version: d.version,
        environment: d.environment,
        kind: 'deployed' as const,
        at: d.created_at.getTime(),
      })),
    ],
  };
}

export interface RetentionPlan {
  server: string;
  /** The policy that applies; null: none, and nothing is retired. */
  policy: RetentionPolicyView | null;
  at: string;
  decisions: RetentionDecision[];
}

/** What the effective policy would do to a server's versions now (nothing is changed). */
export async function retentionPlan(
  db: Queryable,
  orgId: string,
  server: Pick<ServerRow, 'id' | 'slug'>,
  now: number,
): Promise<RetentionPlan> {
  const policy = await effectivePolicy(db, orgId, server);
  const at = new Date(now).toISOString();
  if (!policy) {
    const rows = await db.query<{ version: string; status: Status }>(
      'SELECT version, status FROM versions WHERE server_id = $1',
      [server.id],
    );
    // Without a policy nothing goes; the decisions still show every version with its line.
    const facts = {
      versions: rows,
      lines: await linesOf(db, server.id),
      environments: [],
      open: [],
      history: [],
    };
    const decisions = retentionDecisions(
      { keepPerLine: Number.MAX_SAFE_INTEGER, keepDeployedWithinDays: 0 },
      facts,
      now,
    ).map((d) => (d.status === 'retired' ? d : { ...d, reasons: ['no retention policy applies'] }));
    return { server: server.slug, policy, at, decisions };
  }
  const since = now - policy.keepDeployedWithinDays * 86_400_000;
  const facts = await retentionFacts(db, orgId, server.id, since);
  return { server: server.slug, policy, at, decisions: retentionDecisions(policy, facts, now) };
}

/** The dry run: what would be retired and why, and what is kept and why. */
export async function previewRetention(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  now = Date.now(),
) {
  const server = await findServer(db, principal, serverSlug);
  const plan = await retentionPlan(db, principal.orgId, server, now);
  const strip = ({ action: _action, ...d }: RetentionDecision) => d;
  return {
    server: plan.server,
    policy: plan.policy,
    at: plan.at,
    retire: plan.decisions.filter((d) => d.action === 'retire').map(strip),
    keep: plan.decisions.filter((d) => d.action === 'keep').map(strip),
  };
}

/**
 * An open transaction as a Db, so that a service function that opens its own transaction (the
 * lifecycle transition) runs inside the caller's instead: one commit for the plan and its changes.
 */
function joined(tx: Queryable, driver: Db['driver']): Db {
  return {
    driver,
    query: (sql, params) => tx.query(sql, params),
    exec: (sql) => tx.exec(sql),
    transaction: (fn) => fn(tx),
    ping: async () => {},
    close: async () => {},
  };
}

export interface RetentionRunResult {
  /** `org/server` → the versions retired there. */
  retired: Record<string, string[]>;
  servers: number;
}

/**
 * Applies every enabled policy: for each server (not archived) with one, in a transaction that locks
 * the server's row (as deployments do), re-plans and retires what the plan says, each version through
 * the lifecycle transition (actor `pylee`, the policy and rule as its reason). Idempotent: what is kept
 * stays kept, so a second run retires nothing more; two runs at once apply one after the other.
 */
export async function applyRetention(db: Db, now = Date.now()): Promise<RetentionRunResult> {
  const result: RetentionRunResult = { retired: {}, servers: 0 };
  for (const org of await listOrgs(db)) {
    const servers = await db.query<{ id: string; slug: string }>(
      `SELECT s.id, s.slug FROM servers s WHERE s.org_id = $1 AND s.archived_at IS NULL
         AND EXISTS (SELECT 1 FROM retention_policies p WHERE p.org_id = s.org_id AND p.enabled
           AND (p.server_id = s.id OR (p.server_id IS NULL AND NOT EXISTS (
             SELECT 1 FROM retention_policies o WHERE o.server_id = s.id))))
       ORDER BY s.slug`,
      [org.id],
    );
    for (const s of servers) {
      result.servers += 1;
      const retired = await applyToServer(db, org, s.id, now);
      if (retired.length) result.retired[`${org.slug}/${s.slug}`] = retired;
    }
  }
  return result;
}

async function applyToServer(db: Db, org: Org, serverId: string, now: number): Promise<string[]> {
  const ctx: Context = { principal: systemPrincipal(org) };
  return db.transaction(async (tx) => {
    const [server] = await tx.query<ServerRow>('SELECT * FROM servers WHERE id = $1 FOR UPDATE', [serverId]);
    if (!server || server.archived_at) return [];
    const plan = await retentionPlan(tx, org.id, server, now);
    if (!plan.policy?.enabled) return [];
    const policy = describePolicy(plan.policy, org.slug);
    const retire = plan.decisions.filter((d) => d.action === 'retire');
    const inTx = joined(tx, db.driver);
    for (const d of retire) {
      await updateVersion(inTx, ctx, server.slug, d.version, {
        status: 'retired',
        reason: `retired by ${policy}: ${d.reasons.join('; ')}`,
      });
    }
    if (retire.length) {
      await appendAudit(tx, ctx, {
        action: 'retention.apply',
        target: { type: 'server', id: server.id, name: server.slug },
        after: {
          policy: { id: plan.policy.id, scope: plan.policy.scope, ...snapshot(plan.policy) },
          retired: retire.map((d) => d.version),
        },
      });
    }
    return retire.map((d) => d.version);
  });
}
