import { appendAudit } from '../audit/log.ts';
import { assertServerAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { SLUG_PATTERN } from '../slug.ts';
import { applyServerTemplate, serverTemplate, type ServerTemplateInfo } from './template-usage.ts';
import { resolveTemplate } from './templates.ts';

export interface ServerView {
  slug: string;
  /** `@org/slug`, how the server is shown. */
  fullName: string;
  name: string;
  description: string;
  repositoryUrl: string | null;
  owners: string[];
  archived: boolean;
  archivedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A created server: with a template, the version it follows and the secrets still to set. */
export interface CreatedServer extends ServerView {
  template: string | null;
  /** Created from a template only: the secrets it declares, still to be set. */
  secretsToProvide?: string[];
}

/** One server, with the template it follows (null: none). */
export interface ServerDetail extends ServerView {
  template: ServerTemplateInfo | null;
}

export interface ServerRow {
  id: string;
  org_id: string;
  slug: string;
  name: string;
  description: string;
  repository_url: string | null;
  owners: string[];
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
  template_version_id?: string | null;
}

export function toServerView(row: ServerRow, orgSlug: string): ServerView {
  return {
    slug: row.slug,
    fullName: `@${orgSlug}/${row.slug}`,
    name: row.name,
    description: row.description,
    repositoryUrl: row.repository_url,
    owners: row.owners,
    archived: row.archived_at !== null,
    archivedAt: row.archived_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

const summary = (v: ServerView) => ({
  slug: v.slug,
  name: v.name,
  description: v.description,
  repositoryUrl: v.repositoryUrl,
  owners: v.owners,
  archived: v.archived,
});

export interface ServerInput {
  slug: string;
  name?: string | undefined;
  description?: string | undefined;
  repositoryUrl?: string | null | undefined;
  owners?: string[] | undefined;
  /** `@org/template@1.2.0`: follow it and set its variable defaults on the server. */
  template?: string | undefined;
}

function checkSlug(slug: string): void {
  if (!new RegExp(SLUG_PATTERN).test(slug)) {
    throw new BadRequestError(
      `server slug "${slug}" must be 2-64 lowercase letters, digits or dashes, not starting or ending with a dash (e.g. weather-api)`,
      'invalid-slug',
    );
  }
}

function checkRepositoryUrl(url: string | null | undefined): void {
  if (!url) return;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) {
    throw new BadRequestError(
      `repositoryUrl ${JSON.stringify(url)} is not an http(s) URL (e.g. https://github.com/acme/weather)`,
      'invalid-repository-url',
    );
  }
}

/**
 * The server a principal may see, locked for update when `forUpdate`: another org's server, one
 * outside a limited token's servers, and a missing one are all the same 404.
 */
export async function findServer(
  db: Queryable,
  principal: Principal,
  slug: string,
  options: { forUpdate?: boolean } = {},
): Promise<ServerRow> {
  assertServerAccess(principal, slug);
  const [row] = await db.query<ServerRow>(
    `SELECT * FROM servers WHERE org_id = $1 AND slug = $2${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [principal.orgId, slug],
  );
  if (!row) {
    throw new NotFoundError(`server ${slug} was not found in @${principal.orgSlug}`, 'server-not-found');
  }
  return row;
}

export function createServer(db: Db, ctx: Context, input: ServerInput): Promise<CreatedServer> {
  checkSlug(input.slug);
  checkRepositoryUrl(input.repositoryUrl);
  assertServerAccess(ctx.principal, input.slug);
  return db.transaction(async (tx) => {
    // Resolved first: a bad reference creates nothing.
    const base = input.template ? await resolveTemplate(tx, ctx.principal, input.template) : undefined;
    const [row] = await tx.query<ServerRow>(
      `INSERT INTO servers (id, org_id, slug, name, description, repository_url, owners)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, slug) DO NOTHING RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        input.slug,
        input.name ?? input.slug,
        input.description ?? '',
        // JSON null reaches here as "" (the route schema coerces types): both mean "no repository".
        input.repositoryUrl || null,
        [...new Set(input.owners ?? [])],
      ],
    );
    if (!row) {
      throw new ConflictError(
        `server @${ctx.principal.orgSlug}/${input.slug} already exists`,
        'server-exists',
      );
    }
    const view = toServerView(row, ctx.principal.orgSlug);
    await appendAudit(tx, ctx, {
      action: 'server.create',
      target: { type: 'server', id: row.id, name: row.slug },
      after: { ...summary(view), ...(base ? { template: base.ref } : {}) },
    });
    if (!base) return { ...view, template: null };
    return { ...view, template: base.ref, secretsToProvide: await applyServerTemplate(tx, ctx, row, base) };
  });
}

export async function listServers(
  db: Queryable,
  principal: Principal,
  options: { includeArchived?: boolean } = {},
) {
  const rows = await db.query<ServerRow>(
    `SELECT * FROM servers WHERE org_id = $1 ${options.includeArchived ? '' : 'AND archived_at IS NULL'}
       AND ($2::text[] IS NULL OR slug = ANY($2)) ORDER BY slug`,
    [principal.orgId, principal.servers],
  );
  return rows.map((r) => toServerView(r, principal.orgSlug));
}

export async function getServer(db: Queryable, principal: Principal, slug: string): Promise<ServerDetail> {
  const row = await findServer(db, principal, slug);
  return { ...toServerView(row, principal.orgSlug), template: await serverTemplate(db, principal, row) };
}

export interface ServerPatch {
  name?: string | undefined;
  description?: string | undefined;
  repositoryUrl?: string | null | undefined;
  owners?: string[] | undefined;
}

export function updateServer(db: Db, ctx: Context, slug: string, patch: ServerPatch): Promise<ServerDetail> {
  checkRepositoryUrl(patch.repositoryUrl);
  return db.transaction(async (tx) => {
    const row = await findServer(tx, ctx.principal, slug, { forUpdate: true });
    const before = toServerView(row, ctx.principal.orgSlug);
    const [updated] = await tx.query<ServerRow>(
      `UPDATE servers SET name = $2, description = $3, repository_url = $4, owners = $5, updated_at = now()
       WHERE id = $1 RETURNING *`,
      [
        row.id,
        patch.name ?? row.name,
        patch.description ?? row.description,
        patch.repositoryUrl === undefined ? row.repository_url : patch.repositoryUrl || null,
        patch.owners ? [...new Set(patch.owners)] : row.owners,
      ],
    );
    const after = toServerView(updated as ServerRow, ctx.principal.orgSlug);
    await appendAudit(tx, ctx, {
      action: 'server.update',
      target: { type: 'server', id: row.id, name: slug },
      before: summary(before),
      after: summary(after),
    });
    return { ...after, template: await serverTemplate(tx, ctx.principal, row) };
  });
}

/** Archiving hides a server from lists and stops new versions; its history stays. Idempotent. */
export function setArchived(db: Db, ctx: Context, slug: string, archived: boolean): Promise<ServerDetail> {
  return db.transaction(async (tx) => {
    const row = await findServer(tx, ctx.principal, slug, { forUpdate: true });
    const template = await serverTemplate(tx, ctx.principal, row);
    if ((row.archived_at !== null) === archived)
      return { ...toServerView(row, ctx.principal.orgSlug), template };
    const [updated] = await tx.query<ServerRow>(
      `UPDATE servers SET archived_at = ${archived ? 'now()' : 'NULL'}, updated_at = now() WHERE id = $1 RETURNING *`,
      [row.id],
    );
    const view = toServerView(updated as ServerRow, ctx.principal.orgSlug);
    await appendAudit(tx, ctx, {
      action: archived ? 'server.archive' : 'server.unarchive',
      target: { type: 'server', id: row.id, name: slug },
      before: { archived: !archived },
      after: { archived },
    });
    return { ...view, template };
  });
}
