/**
 * Server templates: a versioned configuration (remotes, packages, declared variables with
 * defaults, secrets to be provided) with its own semver versions and lifecycle. Servers and their
 * versions are created from `@org/template@1.2.0`; a server records the template version it came
 * from, so the usage view can say who is behind the latest.
 */
import semver from 'semver';
import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import type { Status } from './lifecycle.ts';
import type { VersionConfig } from './server-json.ts';
import { sortDescending } from './semver-policy.ts';

export interface TemplateVariable {
  name: string;
  description: string;
  default: string;
}

export interface TemplateSecret {
  name: string;
  description: string;
}

/** A template version as servers use it. */
export interface TemplateBase {
  /** The template_versions row id. */
  id: string;
  templateId: string;
  /** `@org/slug@version`. */
  ref: string;
  template: string;
  version: string;
  status: Status;
  config: Partial<VersionConfig>;
  variables: TemplateVariable[];
  secrets: TemplateSecret[];
}

const REF = /^@([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9-]*)(?:@(.+))?$/;

interface TemplateVersionRow {
  id: string;
  template_id: string;
  slug: string;
  version: string;
  status: Status;
  config: Partial<VersionConfig>;
  variables: TemplateVariable[];
  secrets: TemplateSecret[];
}

/**
 * The template version a reference names: `@org/slug@1.2.0`, or `@org/slug` / `@org/slug@latest`
 * for its latest stable version. Another org's template is as unknown as a missing one; a retired
 * template version cannot be used.
 */
export async function resolveTemplate(
  db: Queryable,
  principal: Principal,
  ref: string,
): Promise<TemplateBase> {
  const m = REF.exec(ref.trim());
  if (!m) {
    throw new BadRequestError(
      `template ${JSON.stringify(ref)} is not a template reference; use @org/name@version (e.g. @${principal.orgSlug}/http-service@1.2.0)`,
      'invalid-template-ref',
    );
  }
  const [, org, slug, wanted = 'latest'] = m as unknown as [string, string, string, string | undefined];
  const notFound = () =>
    new NotFoundError(
      `template @${org}/${slug} was not found in @${principal.orgSlug}`,
      'template-not-found',
    );
  if (org !== principal.orgSlug) throw notFound();
  const rows = await db.query<TemplateVersionRow>(
    `SELECT tv.id, tv.template_id, t.slug, tv.version, tv.status, tv.config, tv.variables, tv.secrets
       FROM template_versions tv JOIN templates t ON t.id = tv.template_id
      WHERE t.org_id = $1 AND t.slug = $2`,
    [principal.orgId, slug],
  );
  const [exists] = await db.query<{ id: string }>(
    'SELECT id FROM templates WHERE org_id = $1 AND slug = $2',
    [principal.orgId, slug],
  );
  if (!exists) throw notFound();
  const row =
    wanted === 'latest'
      ? sortDescending(
          rows.filter((r) => r.status === 'stable'),
          (r) => r.version,
        )[0]
      : rows.find((r) => r.version.split('+')[0] === wanted.split('+')[0]);
  if (!row) {
    throw new NotFoundError(
      wanted === 'latest'
        ? `template @${org}/${slug} has no stable version yet; name one (@${org}/${slug}@1.0.0)`
        : `template @${org}/${slug} has no version ${wanted}`,
      'template-version-not-found',
    );
  }
  if (row.status === 'retired') {
    throw new ConflictError(
      `template @${org}/${slug}@${row.version} is retired; use a newer version of it`,
      'template-retired',
    );
  }
  return {
    id: row.id,
    templateId: row.template_id,
    ref: `@${org}/${slug}@${row.version}`,
    template: `@${org}/${slug}`,
    version: row.version,
    status: row.status,
    config: row.config,
    variables: row.variables,
    secrets: row.secrets,
  };
}

/**
 * Records on the server the template version it now follows: the given one, unless the server
 * already follows a newer version of the same template (an old version built again keeps it).
 */
export async function recordServerTemplate(
  tx: Queryable,
  serverId: string,
  base: TemplateBase,
): Promise<void> {
  const [current] = await tx.query<{ template_id: string; version: string }>(
    `SELECT tv.template_id, tv.version FROM servers s JOIN template_versions tv ON tv.id = s.template_version_id
      WHERE s.id = $1`,
    [serverId],
  );
  if (current && current.template_id === base.templateId && semver.gte(current.version, base.version)) return;
  await tx.query('UPDATE servers SET template_version_id = $2, updated_at = now() WHERE id = $1', [
    serverId,
    base.id,
  ]);
}

/** `@org/slug@version` of a template version, for views. */
export async function templateRef(db: Queryable, orgSlug: string, templateVersionId: string | null) {
  if (!templateVersionId) return null;
  const [row] = await db.query<{ slug: string; version: string }>(
    'SELECT t.slug, tv.version FROM template_versions tv JOIN templates t ON t.id = tv.template_id WHERE tv.id = $1',
    [templateVersionId],
  );
  return row ? `@${orgSlug}/${row.slug}@${row.version}` : null;
}
