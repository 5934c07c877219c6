/**
 * Server templates: a versioned configuration (remotes, packages, declared variables with
 * defaults, secrets to be provided) with its own semver versions and lifecycle. Servers and their
 * versions are created from `@org/template@1.2.0`; a server records the template version it came
 * from, so the usage view can say who is behind the latest.
 */
import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { SLUG_PATTERN } from '../slug.ts';
import { allowedTransitions, assertTransition, type Status } from './lifecycle.ts';
import { checkVersionConfig, type VersionConfig } from './server-json.ts';
import { parseVersion, sortDescending } from './semver-policy.ts';
import { MAX_VALUE_BYTES, VARIABLE_NAME_PATTERN } from './variables.ts';
import { checkDocument, CONFIG_KEYS, configPart, firstStatus, versionKey } from './version-input.ts';

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
  if (wanted !== 'latest' && semver.valid(wanted) === null) {
    throw new BadRequestError(
      `template ${JSON.stringify(ref)} names no exact version: ${JSON.stringify(wanted)} is not semver; use @${org}/${slug}@1.2.0, or @${org}/${slug} for its latest stable version`,
      'invalid-template-ref',
    );
  }
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
 * With `ctx`, a move is audited as `server.template` (before and after). Returns whether it moved.
 */
export async function recordServerTemplate(
  tx: Queryable,
  serverId: string,
  base: TemplateBase,
  ctx?: Context,
): Promise<boolean> {
  const [current] = await tx.query<{ template_id: string; version: string; slug: string }>(
    `SELECT tv.template_id, tv.version, t.slug
       FROM servers s JOIN template_versions tv ON tv.id = s.template_version_id JOIN templates t ON t.id = tv.template_id
      WHERE s.id = $1`,
    [serverId],
  );
  if (current && current.template_id === base.templateId && semver.gte(current.version, base.version))
    return false;
  const [server] = await tx.query<{ slug: string }>(
    'UPDATE servers SET template_version_id = $2, updated_at = now() WHERE id = $1 RETURNING slug',
    [serverId, base.id],
  );
  if (ctx) {
    await appendAudit(tx, ctx, {
      action: 'server.template',
      target: { type: 'server', id: serverId, name: server?.slug ?? null },
      before: { template: current ? `@${ctx.principal.orgSlug}/${current.slug}@${current.version}` : null },
      after: { template: base.ref },
    });
  }
  return true;
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

// --- Templates and their versions: the API's side. ---

interface TemplateRow {
  id: string;
  org_id: string;
  slug: string;
  name: string;
  description: string;
  owners: string[];
  created_by: string;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
}

interface FullVersionRow extends TemplateVersionRow {
  prerelease: boolean;
  release_notes: string;
  deprecation: { date: string; message: string } | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

export interface TemplateView {
  slug: string;
  /** `@org/slug`, how references name it. */
  fullName: string;
  name: string;
  description: string;
  owners: string[];
  /** Its highest stable version: what `@org/slug` and servers that are not behind use. */
  latest: string | null;
  versionCount: number;
  /** Servers that follow one of its versions, and how many of those follow one older than `latest`. */
  servers: number;
  behind: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface TemplateVersionView {
  template: string;
  /** `@org/slug@version`, to pass as `template` when creating servers and versions. */
  ref: string;
  version: string;
  status: Status;
  prerelease: boolean;
  releaseNotes: string;
  config: Partial<VersionConfig>;
  variables: TemplateVariable[];
  secrets: TemplateSecret[];
  deprecation: { date: string; message: string } | null;
  /** Servers that follow this version. */
  servers: number;
  allowedTransitions: Status[];
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface TemplateDetail extends TemplateView {
  /** Highest precedence first. */
  versions: TemplateVersionView[];
}

/** The template a principal's org has under `slug`, or 404 naming it. */
export async function findTemplate(
  db: Queryable,
  principal: Principal,
  slug: string,
  options: { forUpdate?: boolean } = {},
): Promise<TemplateRow> {
  const [row] = await db.query<TemplateRow>(
    `SELECT * FROM templates WHERE org_id = $1 AND slug = $2${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [principal.orgId, slug],
  );
  if (!row) {
    throw new NotFoundError(
      `template ${slug} was not found in @${principal.orgSlug}; create it with POST /templates`,
      'template-not-found',
    );
  }
  return row;
}

/** How many servers (visible to the principal, not archived) follow each template version. */
async function followers(db: Queryable, principal: Principal, templateIds: string[]) {
  return db.query<{ template_id: string; version: string; n: number }>(
    `SELECT tv.template_id, tv.version, count(*)::int AS n
       FROM servers s JOIN template_versions tv ON tv.id = s.template_version_id
      WHERE s.org_id = $1 AND s.archived_at IS NULL AND tv.template_id = ANY($2::uuid[])
        AND ($3::text[] IS NULL OR s.slug = ANY($3))
      GROUP BY tv.template_id, tv.version`,
    [principal.orgId, templateIds, principal.servers],
  );
}

/** The highest stable version among `versions`. */
export const latestStable = (versions: readonly { version: string; status: Status }[]) =>
  sortDescending(
    versions.filter((v) => v.status === 'stable'),
    (v) => v.version,
  )[0]?.version ?? null;

function templateView(
  row: TemplateRow,
  orgSlug: string,
  versions: { version: string; status: Status }[],
  follow: { version: string; n: number }[],
): TemplateView {
  const latest = latestStable(versions);
  return {
    slug: row.slug,
    fullName: `@${orgSlug}/${row.slug}`,
    name: row.name,
    description: row.description,
    owners: row.owners,
    latest,
    versionCount: versions.length,
    servers: follow.reduce((sum, f) => sum + f.n, 0),
    behind: follow
      .filter((f) => latest !== null && semver.lt(f.version, latest))
      .reduce((sum, f) => sum + f.n, 0),
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

function versionView(row: FullVersionRow, full: string, servers: number): TemplateVersionView {
  return {
    template: full,
    ref: `${full}@${row.version}`,
    version: row.version,
    status: row.status,
    prerelease: row.prerelease,
    releaseNotes: row.release_notes,
    config: row.config,
    variables: row.variables,
    secrets: row.secrets,
    deprecation: row.deprecation,
    servers,
    allowedTransitions: allowedTransitions(row.status, row.prerelease),
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export async function listTemplates(db: Queryable, principal: Principal): Promise<TemplateView[]> {
  const rows = await db.query<TemplateRow>(
    'SELECT * FROM templates WHERE org_id = $1 AND archived_at IS NULL ORDER BY slug',
    [principal.orgId],
  );
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const versions = await db.query<{ template_id: string; version: string; status: Status }>(
    'SELECT template_id, version, status FROM template_versions WHERE template_id = ANY($1::uuid[])',
    [ids],
  );
  const follow = await followers(db, principal, ids);
  return rows.map((r) =>
    templateView(
      r,
      principal.orgSlug,
      versions.filter((v) => v.template_id === r.id),
      follow.filter((f) => f.template_id === r.id),
    ),
  );
}

async function versionRows(db: Queryable, templateId: string) {
  return db.query<FullVersionRow>(
    `SELECT tv.*, t.slug FROM template_versions tv JOIN templates t ON t.id = tv.template_id
      WHERE tv.template_id = $1`,
    [templateId],
  );
}

export async function getTemplate(
  db: Queryable,
  principal: Principal,
  slug: string,
): Promise<TemplateDetail> {
  const row = await findTemplate(db, principal, slug);
  const versions = await versionRows(db, row.id);
  const follow = await followers(db, principal, [row.id]);
  const full = `@${principal.orgSlug}/${row.slug}`;
  return {
    ...templateView(row, principal.orgSlug, versions, follow),
    versions: sortDescending(versions, (v) => v.version).map((v) =>
      versionView(v, full, follow.find((f) => f.version === v.version)?.n ?? 0),
    ),
  };
}

export interface TemplateInput {
  slug: string;
  name?: string | undefined;
  description?: string | undefined;
  owners?: string[] | undefined;
}

/** Creates a template (write permission; audited as `template.create`). */
export function createTemplate(db: Db, ctx: Context, input: TemplateInput): Promise<TemplateDetail> {
  if (!new RegExp(SLUG_PATTERN).test(input.slug)) {
    throw new BadRequestError(
      `template slug "${input.slug}" must be 2-64 lowercase letters, digits or dashes, not starting or ending with a dash (e.g. http-service)`,
      'invalid-slug',
    );
  }
  return db.transaction(async (tx) => {
    const [row] = await tx.query<TemplateRow>(
      `INSERT INTO templates (id, org_id, slug, name, description, owners, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, slug) DO NOTHING RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        input.slug,
        input.name ?? input.slug,
        input.description ?? '',
        [...new Set(input.owners ?? [])],
        ctx.principal.tokenName,
      ],
    );
    if (!row) {
      throw new ConflictError(
        `template @${ctx.principal.orgSlug}/${input.slug} already exists; add a version to it with POST /templates/${input.slug}/versions`,
        'template-exists',
      );
    }
    await appendAudit(tx, ctx, {
      action: 'template.create',
      target: { type: 'template', id: row.id, name: row.slug },
      after: { slug: row.slug, name: row.name, description: row.description, owners: row.owners },
    });
    return { ...templateView(row, ctx.principal.orgSlug, [], []), versions: [] };
  });
}

export interface TemplateVersionInput extends Partial<VersionConfig> {
  version: string;
  status?: Status | undefined;
  releaseNotes?: string | undefined;
  variables?: { name: string; description?: string | undefined; default: string }[] | undefined;
  secrets?: { name: string; description?: string | undefined }[] | undefined;
}

const NAME_RE = new RegExp(VARIABLE_NAME_PATTERN);

/** Declared variables and secrets: valid, unique names; defaults that a variable can hold. */
function checkDeclarations(input: TemplateVersionInput): {
  variables: TemplateVariable[];
  secrets: TemplateSecret[];
} {
  const seen = new Map<string, string>();
  const check = (kind: string, i: number, name: string) => {
    if (!NAME_RE.test(name)) {
      throw new BadRequestError(
        `${kind}[${i}].name ${JSON.stringify(name)} must be a letter or underscore followed by up to 127 letters, digits or underscores (${VARIABLE_NAME_PATTERN}), e.g. API_BASE_URL`,
        'invalid-variable-name',
      );
    }
    const earlier = seen.get(name);
    if (earlier) {
      throw new BadRequestError(
        `${kind}[${i}].name ${name} is declared twice (also in ${earlier}); a name is either one variable or one secret`,
        'duplicate-variable',
      );
    }
    seen.set(name, `${kind}[${i}]`);
  };
  const variables = (input.variables ?? []).map((v, i) => {
    check('variables', i, v.name);
    if (Buffer.byteLength(v.default) > MAX_VALUE_BYTES || v.default.includes('\u0000')) {
      throw new BadRequestError(
        `variables[${i}].default must be at most ${MAX_VALUE_BYTES / 1024} KiB of text without NUL characters`,
        'invalid-value',
      );
    }
    return { name: v.name, description: v.description ?? '', default: v.default };
  });
  const secrets = (input.secrets ?? []).map((s, i) => {
    check('secrets', i, s.name);
    return { name: s.name, description: s.description ?? '' };
  });
  return { variables, secrets };
}

/**
 * Adds a version to a template: strict semver, unique per template (the unique key decides under
 * concurrency), server.json fields checked as a version's are, variables and secrets declared.
 * Template versions are immutable: a change is a new number. Audited as `template.version.create`.
 */
export async function createTemplateVersion(
  db: Db,
  ctx: Context,
  slug: string,
  input: TemplateVersionInput,
): Promise<TemplateVersionView> {
  const parsed = parseVersion(input.version);
  const prerelease = parsed.prerelease.length > 0;
  const status = firstStatus(input.version, prerelease, input.status, 'template version');
  checkDocument('releaseNotes', input.releaseNotes);
  const config = checkVersionConfig(configPart(input));
  const { variables, secrets } = checkDeclarations(input);
  return db.transaction(async (tx) => {
    const template = await findTemplate(tx, ctx.principal, slug);
    const full = `@${ctx.principal.orgSlug}/${template.slug}`;
    const key = versionKey(input.version);
    const [row] = await tx.query<FullVersionRow>(
      `INSERT INTO template_versions (id, org_id, template_id, version, version_key, prerelease, status, config,
         variables, secrets, release_notes, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (template_id, version_key) DO NOTHING RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        template.id,
        input.version,
        key,
        prerelease,
        status,
        JSON.stringify(config),
        JSON.stringify(variables),
        JSON.stringify(secrets),
        input.releaseNotes ?? '',
        ctx.principal.tokenName,
      ],
    );
    if (!row) {
      const [existing] = await tx.query<{ version: string; status: string }>(
        'SELECT version, status FROM template_versions WHERE template_id = $1 AND version_key = $2',
        [template.id, key],
      );
      throw new ConflictError(
        `version ${existing?.version ?? input.version} of template ${full} already exists (${existing?.status}); template versions are immutable, cut a new number such as ${semver.inc(key, 'patch')}`,
        'template-version-exists',
        { existing: existing?.version },
      );
    }
    await tx.query('UPDATE templates SET updated_at = now() WHERE id = $1', [template.id]);
    await appendAudit(tx, ctx, {
      action: 'template.version.create',
      target: { type: 'template-version', id: row.id, name: `${full}@${row.version}` },
      after: {
        version: row.version,
        status,
        remotes: config.remotes.map((r) => r.url),
        packages: config.packages.map((p) => `${p.registryType}:${p.identifier}@${p.version}`),
        variables: variables.map((v) => v.name),
        secrets: secrets.map((s) => s.name),
      },
    });
    return versionView({ ...row, slug: template.slug }, full, 0);
  });
}

async function findTemplateVersion(
  db: Queryable,
  template: TemplateRow,
  full: string,
  version: string,
  options: { forUpdate?: boolean } = {},
): Promise<FullVersionRow> {
  const [row] = await db.query<FullVersionRow>(
    `SELECT * FROM template_versions WHERE template_id = $1 AND version_key = $2${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [template.id, version.split('+')[0]],
  );
  if (!row) {
    throw new NotFoundError(`template ${full} has no version ${version}`, 'template-version-not-found');
  }
  return { ...row, slug: template.slug };
}

export async function getTemplateVersion(
  db: Queryable,
  principal: Principal,
  slug: string,
  version: string,
): Promise<TemplateVersionView> {
  const template = await findTemplate(db, principal, slug);
  const full = `@${principal.orgSlug}/${template.slug}`;
  const row = await findTemplateVersion(db, template, full, version);
  const follow = await followers(db, principal, [template.id]);
  return versionView(row, full, follow.find((f) => f.version === row.version)?.n ?? 0);
}

export interface TemplateVersionPatch extends Partial<VersionConfig> {
  status?: Status | undefined;
  reason?: string | undefined;
  deprecation?: { message: string } | undefined;
  variables?: unknown;
  secrets?: unknown;
  releaseNotes?: unknown;
}

/**
 * Moves a template version along the lifecycle of server versions (release, deprecate with a
 * message, retire). Its content never changes: the answer says to cut a new version.
 */
export async function updateTemplateVersion(
  db: Db,
  ctx: Context,
  slug: string,
  version: string,
  patch: TemplateVersionPatch,
): Promise<TemplateVersionView> {
  const content = [...CONFIG_KEYS, 'variables', 'secrets', 'releaseNotes'] as const;
  const changed = content.filter((k) => patch[k] !== undefined);
  if (changed.length > 0) {
    throw new ConflictError(
      `template versions are immutable (${changed.join(', ')} cannot change); create a new version such as ${semver.inc(version.split('+')[0] ?? version, 'patch') ?? '1.0.1'} with the change`,
      'template-version-immutable',
    );
  }
  if (!patch.status) {
    throw new BadRequestError(
      'status is required: release-candidate, stable, deprecated (with deprecation.message) or retired',
      'missing-status',
    );
  }
  const to = patch.status;
  return db.transaction(async (tx) => {
    const template = await findTemplate(tx, ctx.principal, slug);
    const full = `@${ctx.principal.orgSlug}/${template.slug}`;
    const current = await findTemplateVersion(tx, template, full, version, { forUpdate: true });
    if (patch.deprecation && to !== 'deprecated') {
      throw new BadRequestError(
        `deprecation applies when status is deprecated (not ${to})`,
        'invalid-deprecation',
      );
    }
    if (to === current.status && !(to === 'deprecated' && patch.deprecation)) {
      const follow = await followers(tx, ctx.principal, [template.id]);
      return versionView(current, full, follow.find((f) => f.version === current.version)?.n ?? 0);
    }
    if (to !== current.status) assertTransition(current.version, current.status, to, current.prerelease);
    let deprecation = current.deprecation;
    if (to === 'deprecated') {
      const message = patch.deprecation?.message.trim();
      if (!message) {
        throw new BadRequestError(
          `deprecating ${full}@${current.version} needs deprecation.message telling its users what to do (e.g. "move to ${semver.inc(current.version, 'minor')}: it adds the region header")`,
          'invalid-deprecation',
        );
      }
      deprecation = { date: new Date().toISOString(), message };
    } else if (to !== 'retired') {
      deprecation = null;
    }
    const [row] = await tx.query<FullVersionRow>(
      `UPDATE template_versions SET status = $2, deprecation = $3, updated_at = now() WHERE id = $1 RETURNING *`,
      [current.id, to, deprecation === null ? null : JSON.stringify(deprecation)],
    );
    await appendAudit(tx, ctx, {
      action: `template.version.${to === 'deprecated' ? 'deprecate' : to === 'retired' ? 'retire' : 'transition'}`,
      target: { type: 'template-version', id: current.id, name: `${full}@${current.version}` },
      before: { status: current.status, deprecation: current.deprecation },
      after: { status: to, reason: patch.reason ?? null, deprecation },
    });
    const follow = await followers(tx, ctx.principal, [template.id]);
    return versionView(
      { ...(row as FullVersionRow), slug: template.slug },
      full,
      follow.find((f) => f.version === current.version)?.n ?? 0,
    );
  });
}
