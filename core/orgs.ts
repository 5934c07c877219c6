import { appendAudit } from './audit/log.ts';
import { assertPermission, type Context, type Principal } from './auth/principal.ts';
import { hashToken, insertToken } from './auth/tokens.ts';
import type { Db, Queryable } from './db/client.ts';
import { createDefaultEnvironments } from './deploy/environments.ts';
import { BadRequestError, ConflictError, ForbiddenError } from './errors.ts';
import { newId } from './ids.ts';
import { SLUG_PATTERN } from './slug.ts';

/** The org created on first start; its admins operate the instance (they may create other orgs). */
export const DEFAULT_ORG = 'default';

export interface Org {
  id: string;
  slug: string;
  name: string;
  createdAt: string;
}

interface OrgRow {
  id: string;
  slug: string;
  name: string;
  created_at: Date;
}

const toOrg = (row: OrgRow): Org => ({
  id: row.id,
  slug: row.slug,
  name: row.name,
  createdAt: row.created_at.toISOString(),
});

/** Pylee acting on its own behalf (bootstrap, scheduled jobs), recorded as such in the audit trail. */
export function systemPrincipal(org: Pick<Org, 'id' | 'slug'>): Principal {
  return {
    orgId: org.id,
    orgSlug: org.slug,
    tokenId: null,
    tokenName: 'pylee',
    permissions: ['admin'],
    servers: null,
  };
}

export async function findOrg(db: Queryable, slug: string): Promise<Org | undefined> {
  const [row] = await db.query<OrgRow>('SELECT * FROM orgs WHERE slug = $1', [slug]);
  return row && toOrg(row);
}

export async function listOrgs(db: Queryable): Promise<Org[]> {
  return (await db.query<OrgRow>('SELECT * FROM orgs ORDER BY created_at, slug')).map(toOrg);
}

async function insertOrg(tx: Queryable, slug: string, name: string): Promise<Org> {
  if (!new RegExp(SLUG_PATTERN).test(slug)) {
    throw new BadRequestError(
      `org slug "${slug}" must be 2-64 lowercase letters, digits or dashes, not starting or ending with a dash (e.g. acme-labs)`,
      'invalid-slug',
    );
  }
  const [row] = await tx.query<OrgRow>(
    'INSERT INTO orgs (id, slug, name) VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING RETURNING *',
    [newId(), slug, name],
  );
  if (!row) throw new ConflictError(`org @${slug} already exists`, 'org-exists');
  await createDefaultEnvironments(tx, row.id);
  return toOrg(row);
}

/**
 * Creates an org with a first admin token. Only admins of the `default` org may: they operate
 * the instance. The event is recorded in both orgs' audit trails.
 */
export async function createOrg(db: Db, ctx: Context, input: { slug: string; name?: string | undefined }) {
  assertPermission(ctx.principal, 'admin');
  if (ctx.principal.orgSlug !== DEFAULT_ORG) {
    throw new ForbiddenError(`only admins of @${DEFAULT_ORG} may create orgs`, 'not-instance-admin');
  }
  return db.transaction(async (tx) => {
    const org = await insertOrg(tx, input.slug, input.name ?? input.slug);
    const summary = { slug: org.slug, name: org.name };
    await appendAudit(tx, ctx, {
      action: 'org.create',
      target: { type: 'org', id: org.id, name: org.slug },
      after: summary,
    });
    await appendAudit(
      tx,
      ctx,
      { action: 'org.create', target: { type: 'org', id: org.id, name: org.slug }, after: summary },
      org.id,
    );
    const { token, view } = await insertToken(tx, ctx, org.id, { name: 'admin', permissions: ['admin'] });
    return { org, token, tokenView: view };
  });
}

/**
 * First start: creates org `default` and its admin token. With `bootstrapToken` that value is
 * the admin token (also added on a later start if it is not there yet; a revoked one stays
 * revoked). Otherwise a token is generated and returned once, to be printed.
 */
export function bootstrap(db: Db, bootstrapToken?: string): Promise<{ org: Org; generatedToken?: string }> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [7_462_783_102]);
    const existing = await findOrg(tx, DEFAULT_ORG);
    const org = existing ?? (await insertOrg(tx, DEFAULT_ORG, 'Default'));
    const ctx: Context = { principal: systemPrincipal(org) };
    if (!existing)
      await appendAudit(tx, ctx, {
        action: 'org.create',
        target: { type: 'org', id: org.id, name: org.slug },
        after: { slug: org.slug },
      });
    if (bootstrapToken) {
      const [known] = await tx.query('SELECT 1 FROM tokens WHERE hash = $1', [hashToken(bootstrapToken)]);
      if (!known)
        await insertToken(tx, ctx, org.id, { name: 'bootstrap', permissions: ['admin'] }, bootstrapToken);
      return { org };
    }
    if (existing) return { org };
    const { token } = await insertToken(tx, ctx, org.id, { name: 'admin', permissions: ['admin'] });
    return { org, generatedToken: token };
  });
}
