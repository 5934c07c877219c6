/**
 * Who uses a template: the servers that follow one of its versions, whether they are behind its
 * latest stable version, which of their versions came from it, and which of its secrets they still
 * have to provide. Also what creating a server from a template does (its variable defaults).
 */
import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import { findTemplate, latestStable, recordServerTemplate, type TemplateBase } from './templates.ts';
import type { Status } from './lifecycle.ts';
import { sortDescending } from './semver-policy.ts';

export interface ServerTemplateInfo {
  /** The template version the server follows, `@org/slug@1.0.0`. */
  ref: string;
  /** The template's latest stable version, or null when it has none. */
  latest: string | null;
  /** True when the server follows a version older than `latest`. */
  behind: boolean;
  /** Secrets its template version declares that the server has no secret for (server or org scope). */
  missingSecrets: string[];
}

export interface TemplateUsage {
  template: string;
  latest: string | null;
  servers: {
    server: string;
    /** The template version it follows. */
    follows: string;
    ref: string;
    behind: boolean;
    /** Its versions created from this template, highest first, with the template version of each. */
    versions: { version: string; status: Status; template: string }[];
    missingSecrets: string[];
  }[];
}

/** The secrets among `names` that neither the server nor the org has (as secrets, not per environment). */
async function missingSecrets(
  db: Queryable,
  orgId: string,
  serverId: string,
  names: string[],
): Promise<string[]> {
  if (names.length === 0) return [];
  const rows = await db.query<{ name: string }>(
    `SELECT DISTINCT name FROM variables
      WHERE org_id = $1 AND secret AND version_id IS NULL AND environment IS NULL
        AND (server_id IS NULL OR server_id = $2) AND name = ANY($3::text[])`,
    [orgId, serverId, names],
  );
  const have = new Set(rows.map((r) => r.name));
  return names.filter((n) => !have.has(n));
}

async function templateVersions(db: Queryable, templateId: string) {
  return db.query<{ id: string; version: string; status: Status; secrets: { name: string }[] }>(
    'SELECT id, version, status, secrets FROM template_versions WHERE template_id = $1',
    [templateId],
  );
}

/** The template a server follows, for the server's view; null when it follows none. */
export async function serverTemplate(
  db: Queryable,
  principal: Principal,
  server: { id: string; template_version_id?: string | null },
): Promise<ServerTemplateInfo | null> {
  if (!server.template_version_id) return null;
  const [followed] = await db.query<{ template_id: string; slug: string; version: string }>(
    `SELECT tv.template_id, t.slug, tv.version FROM template_versions tv JOIN templates t ON t.id = tv.template_id
      WHERE tv.id = $1`,
    [server.template_version_id],
  );
  if (!followed) return null;
  const versions = await templateVersions(db, followed.template_id);
  const latest = latestStable(versions);
  const secrets = versions.find((v) => v.version === followed.version)?.secrets ?? [];
  return {
    ref: `@${principal.orgSlug}/${followed.slug}@${followed.version}`,
    latest,
    behind: latest !== null && semver.lt(followed.version, latest),
    missingSecrets: await missingSecrets(
      db,
      principal.orgId,
      server.id,
      secrets.map((s) => s.name),
    ),
  };
}

/** The servers following a template (visible to the principal, not archived), by slug. */
export async function templateUsage(
  db: Queryable,
  principal: Principal,
  slug: string,
): Promise<TemplateUsage> {
  const template = await findTemplate(db, principal, slug);
  const full = `@${principal.orgSlug}/${template.slug}`;
  const versions = await templateVersions(db, template.id);
  const byId = new Map(versions.map((v) => [v.id, v]));
  const latest = latestStable(versions);
  const servers = await db.query<{ id: string; slug: string; template_version_id: string }>(
    `SELECT id, slug, template_version_id FROM servers
      WHERE org_id = $1 AND archived_at IS NULL AND template_version_id = ANY($2::uuid[])
        AND ($3::text[] IS NULL OR slug = ANY($3)) ORDER BY slug`,
    [principal.orgId, [...byId.keys()], principal.servers],
  );
  const built = await db.query<{
    server_id: string;
    version: string;
    status: Status;
    template_version_id: string;
  }>(
    `SELECT server_id, version, status, template_version_id FROM versions
      WHERE server_id = ANY($1::uuid[]) AND template_version_id = ANY($2::uuid[])`,
    [servers.map((s) => s.id), [...byId.keys()]],
  );
  return {
    template: full,
    latest,
    servers: await Promise.all(
      servers.map(async (s) => {
        const follows = byId.get(s.template_version_id) as (typeof versions)[number];
        return {
          server: s.slug,
          follows: follows.version,
          ref: `${full}@${follows.version}`,
          behind: latest !== null && semver.lt(follows.version, latest),
          versions: sortDescending(
            built.filter((v) => v.server_id === s.id),
            (v) => v.version,
          ).map((v) => ({
            version: v.version,
            status: v.status,
            template: byId.get(v.template_version_id)?.version ?? '',
          })),
          missingSecrets: await missingSecrets(
            db,
            principal.orgId,
            s.id,
            follows.secrets.map((x) => x.name),
          ),
        };
      }),
    ),
  };
}

/**
 * What creating a server from a template version does, in the server's transaction: the server
 * follows it, and each declared variable's default becomes a server-scope variable (audited as
 * `variable.set`, as PUT /servers/:server/variables/:name does). Returns the secrets to provide.
 */
export async function applyServerTemplate(
  tx: Queryable,
  ctx: Context,
  server: { id: string; slug: string },
  base: TemplateBase,
): Promise<string[]> {
  await recordServerTemplate(tx, server.id, base);
  for (const variable of base.variables) {
    // A new server has no variables yet: nothing to conflict with.
    const [row] = await tx.query<{ id: string; revision: number }>(
      `INSERT INTO variables (id, org_id, server_id, version_id, environment, name, secret, value, updated_by)
       VALUES ($1, $2, $3, NULL, NULL, $4, false, $5, $6) RETURNING id, revision`,
      [newId(), ctx.principal.orgId, server.id, variable.name, variable.default, ctx.principal.tokenName],
    );
    await appendAudit(tx, ctx, {
      action: 'variable.set',
      target: { type: 'variable', id: row?.id ?? null, name: variable.name },
      before: null,
      after: {
        name: variable.name,
        scope: 'server',
        server: server.slug,
        revision: row?.revision ?? 1,
        value: variable.default,
        template: base.ref,
      },
    });
  }
  const secretsToProvide = base.secrets.map((s) => s.name);
  await appendAudit(tx, ctx, {
    action: 'server.template',
    target: { type: 'server', id: server.id, name: server.slug },
    after: {
      template: base.ref,
      variables: base.variables.map((v) => v.name),
      secretsToProvide,
    },
  });
  return secretsToProvide;
}
