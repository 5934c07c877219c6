/**
 * Ignore rules: an org's decision that an advisory (by id or any alias) does not apply, optionally
 * only to one package and one server, with a required reason and an optional expiry. Audited;
 * applied when findings are read, so an expired rule stops hiding the finding at once.
 */
import { appendAudit } from '../audit/log.ts';
import { assertPermission, assertServerAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { isEcosystem, normaliseName } from './ecosystems.ts';
import { findServer } from '../registry/servers.ts';

export interface IgnoreRule {
  id: string;
  advisory: string;
  package: string | null;
  server: string | null;
  reason: string;
  expiresAt: string | null;
  createdBy: string;
  createdAt: string;
  active: boolean;
}

export interface IgnoreInput {
  advisory: string;
  package?: string | null | undefined;
  server?: string | null | undefined;
  reason?: string | undefined;
  expiresAt?: string | null | undefined;
}

interface IgnoreRow {
  id: string;
  advisory: string;
  package: string | null;
  server: string | null;
  reason: string;
  expires_at: Date | null;
  created_by: string;
  created_at: Date;
}

const toRule = (row: IgnoreRow, now = Date.now()): IgnoreRule => ({
  id: row.id,
  advisory: row.advisory,
  package: row.package,
  server: row.server,
  reason: row.reason,
  expiresAt: row.expires_at?.toISOString() ?? null,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  active: row.expires_at === null || row.expires_at.getTime() > now,
});

const ADVISORY_ID = /^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9.:_]+)+$/;

/** The org's rules (a token limited to servers sees the org-wide ones and its servers'). */
export async function listIgnores(db: Queryable, principal: Principal): Promise<IgnoreRule[]> {
  assertPermission(principal, 'read');
  const rows = await db.query<IgnoreRow>(
    `SELECT * FROM vulnerability_ignores WHERE org_id = $1 ${principal.servers ? 'AND (server IS NULL OR server = ANY($2))' : ''}
     ORDER BY created_at, id`,
    principal.servers ? [principal.orgId, principal.servers] : [principal.orgId],
  );
  return rows.map((r) => toRule(r));
}

export async function createIgnore(db: Db, ctx: Context, input: IgnoreInput): Promise<IgnoreRule> {
  assertPermission(ctx.principal, 'write');
  const advisory = input.advisory.trim().toUpperCase();
  if (!ADVISORY_ID.test(advisory)) {
    throw new BadRequestError(
      `advisory "${input.advisory}" is not an advisory id; use an OSV id or alias such as GHSA-xxxx-xxxx-xxxx or CVE-2024-12345`,
      'invalid-advisory-id',
    );
  }
  const reason = input.reason?.trim() ?? '';
  if (!reason) {
    throw new BadRequestError(
      'an ignore rule needs a reason (recorded in the audit trail), e.g. "the vulnerable code path is never called"',
      'reason-required',
    );
  }
  let expiresAt: Date | null = null;
  if (input.expiresAt) {
    expiresAt = new Date(input.expiresAt);
    if (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= Date.now()) {
      throw new BadRequestError(
        `expiresAt must be a time in the future, got ${input.expiresAt}`,
        'invalid-expiry',
      );
    }
  }
  return db.transaction(async (tx) => {
    if (input.server) {
      assertServerAccess(ctx.principal, input.server);
      await findServer(tx, ctx.principal, input.server);
    } else if (ctx.principal.servers !== null) {
      throw new BadRequestError(
        `this token is limited to servers ${ctx.principal.servers.join(', ')}: an ignore rule it creates must name one of them`,
        'server-required',
      );
    }
    const [row] = await tx.query<IgnoreRow>(
      `INSERT INTO vulnerability_ignores (id, org_id, advisory, package, server, reason, expires_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        advisory,
        input.package ?? null,
        input.server ?? null,
        reason,
        expiresAt,
        ctx.principal.tokenName,
      ],
    );
    const rule = toRule(row as IgnoreRow);
    await appendAudit(tx, ctx, {
      action: 'vulnerability-ignore.create',
      target: { type: 'vulnerability-ignore', id: rule.id, name: rule.advisory },
      after: { ...rule },
    });
    return rule;
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function deleteIgnore(db: Db, ctx: Context, id: string): Promise<IgnoreRule> {
  assertPermission(ctx.principal, 'write');
  return db.transaction(async (tx) => {
    const [row] = UUID.test(id)
      ? await tx.query<IgnoreRow>(
          'SELECT * FROM vulnerability_ignores WHERE id = $1 AND org_id = $2 FOR UPDATE',
          [id, ctx.principal.orgId],
        )
      : [];
    const servers = ctx.principal.servers;
    if (!row || (servers !== null && (row.server === null || !servers.includes(row.server)))) {
      throw new NotFoundError(
        `vulnerability ignore rule ${id} was not found in @${ctx.principal.orgSlug}`,
        'ignore-rule-not-found',
      );
    }
    await tx.query('DELETE FROM vulnerability_ignores WHERE id = $1', [id]);
    const rule = toRule(row);
    await appendAudit(tx, ctx, {
      action: 'vulnerability-ignore.delete',
      target: { type: 'vulnerability-ignore', id, name: rule.advisory },
      before: { ...rule },
    });
    return rule;
  });
}

/** Active rules of the org, for applying to findings. */
export async function activeIgnores(db: Queryable, orgId: string): Promise<IgnoreRule[]> {
  const rows = await db.query<IgnoreRow>(
    'SELECT * FROM vulnerability_ignores WHERE org_id = $1 AND (expires_at IS NULL OR expires_at > now())',
    [orgId],
  );
  return rows.map((r) => toRule(r));
}

/** The first rule hiding a finding of `server`: same advisory id or alias, package and server if the rule names them. */
export function ruleFor(
  rules: IgnoreRule[],
  server: string,
  finding: { advisory_id: string; aliases: string[]; registry_type: string; identifier: string },
): IgnoreRule | undefined {
  const ids = [finding.advisory_id, ...finding.aliases].map((id) => id.toUpperCase());
  return rules.find((rule) => {
    if (!ids.includes(rule.advisory)) return false;
    if (rule.server !== null && rule.server !== server) return false;
    if (rule.package === null) return true;
    const eco = finding.registry_type;
    return isEcosystem(eco)
      ? normaliseName(eco, rule.package) === normaliseName(eco, finding.identifier)
      : rule.package === finding.identifier;
  });
}
