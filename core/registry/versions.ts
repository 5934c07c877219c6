import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { allowedTransitions, assertTransition, isReleased, STATUSES, type Status } from './lifecycle.ts';
import {
  breakingViolation,
  nextVersion,
  parseRange,
  parseVersion,
  sortDescending,
  type Bump,
} from './semver-policy.ts';
import { inLine, latestInLine, nextBranchVersion, nextInLine } from './lines.ts';
import { packageWarnings, type PackageWarning } from './package-catalog.ts';
import { checkDocument, configPart, firstStatus, versionKey } from './version-input.ts';
import { checkVersionConfig, packageRefs, type VersionConfig } from './server-json.ts';
import { declaredLine, versionLine } from './server-lines.ts';
import { findServer, type ServerRow } from './servers.ts';
import { recordServerTemplate, resolveTemplate, templateRef, type TemplateBase } from './templates.ts';
import { listVariables, type VariableView } from './variables.ts';

export interface Deprecation {
  date: string;
  message: string;
  replacement: string | null;
}

export interface Transition {
  from: Status | null;
  to: Status;
  at: string;
  actor: string;
  reason: string | null;
}

export interface VersionView extends VersionConfig {
  server: string;
  version: string;
  status: Status;
  prerelease: boolean;
  releaseNotes: string;
  breaking: boolean;
  migrationGuide: string;
  semverViolation: string | null;
  deprecation: Deprecation | null;
  createdFrom: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  releasedAt: string | null;
  allowedTransitions: Status[];
}

export interface VersionDetail extends VersionView {
  transitions: Transition[];
  variables: VariableView[];
  secrets: VariableView[];
  /** Its maintenance line (declared, or its major's) and whether that is still supported. */
  line: { pattern: string; declared: boolean; endOfSupport: string | null; supported: boolean };
  /** The template version it was created from (`@org/name@1.2.0`). */
  template: string | null;
}

/** Something a new version's creator should hear about: it was created, but not everything is well. */
export interface VersionWarning {
  code: PackageWarning['code'] | 'template-deprecated';
  message: string;
  registryType?: string;
  identifier?: string;
  version?: string;
}

export interface CreatedVersion extends VersionDetail {
  warnings: VersionWarning[];
}

export interface VersionRow {
  id: string;
  org_id: string;
  server_id: string;
  version: string;
  version_key: string;
  prerelease: boolean;
  status: Status;
  release_notes: string;
  breaking: boolean;
  migration_guide: string;
  semver_violation: string | null;
  config: VersionConfig;
  deprecation: Deprecation | null;
  created_from: string | null;
  template_version_id: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  released_at: Date | null;
}

export function toVersionView(row: VersionRow, server: string): VersionView {
  return {
    server,
    version: row.version,
    status: row.status,
    prerelease: row.prerelease,
    releaseNotes: row.release_notes,
    breaking: row.breaking,
    migrationGuide: row.migration_guide,
    semverViolation: row.semver_violation,
    ...row.config,
    remotes: row.config.remotes ?? [],
    packages: row.config.packages ?? [],
    deprecation: row.deprecation,
    createdFrom: row.created_from,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    releasedAt: row.released_at?.toISOString() ?? null,
    allowedTransitions: allowedTransitions(row.status, row.prerelease),
  };
}

/** What the audit trail keeps of a version: its shape, not its whole text. */
function summary(row: Pick<VersionRow, 'version' | 'status' | 'breaking' | 'config' | 'deprecation'>) {
  return {
    version: row.version,
    status: row.status,
    breaking: row.breaking,
    packages: packageRefs(row.config).map((p) => `${p.registryType}:${p.identifier}@${p.version}`),
    remotes: (row.config.remotes ?? []).map((r) => r.url),
    deprecation: row.deprecation,
  };
}

export async function findVersion(
  db: Queryable,
  server: ServerRow,
  version: string,
  options: { forUpdate?: boolean } = {},
): Promise<VersionRow> {
  const [row] = await db.query<VersionRow>(
    `SELECT * FROM versions WHERE server_id = $1 AND version = $2${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [server.id, version],
  );
  if (!row)
    throw new NotFoundError(`version ${version} of server ${server.slug} was not found`, 'version-not-found');
  return row;
}

async function allVersions(db: Queryable, serverId: string) {
  return db.query<Pick<VersionRow, 'version' | 'status' | 'prerelease'>>(
    'SELECT version, status, prerelease FROM versions WHERE server_id = $1',
    [serverId],
  );
}

/** The highest stable (or once-stable, now deprecated) version below `version`. */
async function previousStable(db: Queryable, serverId: string, version: string): Promise<string | undefined> {
  const stable = (await allVersions(db, serverId)).filter(
    (v) => (v.status === 'stable' || v.status === 'deprecated') && semver.lt(v.version, version),
  );
  return sortDescending(stable, (v) => v.version)[0]?.version;
}

export interface NewVersion extends Partial<VersionConfig> {
  /** The number; may be left out with `prerelease.branch`, which numbers a development version. */
  version?: string | undefined;
  /** `{ branch: "feat/x" }`: the next `X.Y.Z-feat-x.N` (after the highest release, of `line` if given). */
  prerelease?: { branch: string } | undefined;
  /** A declared maintenance line (`1.4.x`) the version must belong to. */
  line?: string | undefined;
  status?: Status | undefined;
  releaseNotes?: string | undefined;
  breaking?: boolean | undefined;
  migrationGuide?: string | undefined;
  /** Copy the configuration of this existing version; fields given here replace the copied ones. */
  from?: string | undefined;
  /** Start from this template version's configuration (`@org/name@1.2.0`); fields given here replace it. */
  template?: string | undefined;
  /** Lets a breaking version through without the semver bump; recorded with the reason. */
  acknowledgeSemverViolation?: boolean | undefined;
  reason?: string | undefined;
}

/**
 * Registers a version: strict semver, unique per server (also under concurrency: the unique key
 * decides), configuration validated, the breaking rule applied, audited with its first status.
 */
export async function createVersion(
  db: Db,
  ctx: Context,
  serverSlug: string,
  input: NewVersion,
): Promise<CreatedVersion> {
  if (input.version !== undefined)
    return createNumbered(db, ctx, serverSlug, { ...input, version: input.version });
  if (!input.prerelease?.branch) {
    throw new BadRequestError(
      'version is required: a semver number such as 1.4.0, or prerelease: { branch } to number a development version',
      'missing-version',
    );
  }
  // Two pipelines numbering the same branch at once: the loser takes the next N.
  for (let attempt = 0; ; attempt++) {
    const server = await findServer(db, ctx.principal, serverSlug);
    const line = input.line ? await declaredLine(db, server.id, serverSlug, input.line) : undefined;
    const existing = (await allVersions(db, server.id)).map((v) => v.version);
    const version = nextBranchVersion(existing, input.prerelease.branch, line);
    try {
      // A branch's build is a development version unless told otherwise.
      return await createNumbered(db, ctx, serverSlug, {
        ...input,
        version,
        status: input.status ?? 'development',
      });
    } catch (error) {
      if (attempt < 4 && error instanceof ConflictError && error.code === 'version-exists') continue;
      throw error;
    }
  }
}

async function createNumbered(
  db: Db,
  ctx: Context,
  serverSlug: string,
  input: NewVersion & { version: string },
): Promise<CreatedVersion> {
  if (input.from !== undefined && input.template !== undefined) {
    throw new BadRequestError(
      'give from (copy a version) or template (start from a template version), not both',
      'template-and-from',
    );
  }
  const parsed = parseVersion(input.version);
  checkDocument('releaseNotes', input.releaseNotes);
  checkDocument('migrationGuide', input.migrationGuide);
  const prerelease = parsed.prerelease.length > 0;
  const status = firstStatus(input.version, prerelease, input.status, 'version');

  const { row, warnings } = await db.transaction(async (tx) => {
    const server = await findServer(tx, ctx.principal, serverSlug);
    if (server.archived_at) {
      throw new ConflictError(
        `server ${serverSlug} is archived; unarchive it to add versions`,
        'server-archived',
      );
    }
    if (input.line) {
      const line = await declaredLine(tx, server.id, serverSlug, input.line);
      if (!inLine(input.version, line)) {
        throw new BadRequestError(`version ${input.version} is not in line ${input.line}`, 'not-in-line');
      }
    }
    let base: Partial<VersionConfig> = {};
    if (input.from) base = (await findVersion(tx, server, input.from)).config;
    const template = input.template ? await resolveTemplate(tx, ctx.principal, input.template) : undefined;
    if (template) base = template.config;
    const config = checkVersionConfig({ ...base, ...configPart(input) });
    const warnings = await creationWarnings(tx, ctx.principal.orgId, config, template);

    const violation = input.breaking ? await checkBreaking(tx, server.id, input.version, input) : undefined;

    const [inserted] = await tx.query<VersionRow>(
      `INSERT INTO versions (id, org_id, server_id, version, version_key, prerelease, status, release_notes, breaking,
         migration_guide, semver_violation, config, created_from, created_by, released_at, template_version_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
       ON CONFLICT (server_id, version_key) DO NOTHING RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        server.id,
        input.version,
        versionKey(input.version),
        prerelease,
        status,
        input.releaseNotes ?? '',
        input.breaking ?? false,
        input.migrationGuide ?? '',
        violation ?? null,
        JSON.stringify(config),
        input.from ?? null,
        ctx.principal.tokenName,
        status === 'stable' ? new Date() : null,
        template?.id ?? null,
      ],
    );
    if (!inserted) {
      const [existing] = await tx.query<VersionRow>(
        'SELECT * FROM versions WHERE server_id = $1 AND version_key = $2',
        [server.id, versionKey(input.version)],
      );
      throw new ConflictError(
        `version ${existing?.version ?? input.version} of ${serverSlug} already exists (${existing?.status}); versions are immutable, cut a new number such as ${nextVersion(existing?.version ?? input.version, 'patch')}`,
        'version-exists',
        { existing: existing?.version },
      );
    }
    await writePackageRefs(tx, inserted.id, ctx.principal.orgId, config);
    if (template) await recordServerTemplate(tx, server.id, template, ctx);
    await recordTransition(tx, ctx, inserted.id, null, status, input.reason ?? null);
    const target = { type: 'version', id: inserted.id, name: `${serverSlug}@${input.version}` };
    await appendAudit(tx, ctx, {
      action: 'version.create',
      target,
      after: {
        ...summary(inserted),
        createdFrom: input.from ?? null,
        template: template?.ref ?? null,
        warnings: warnings.map((w) => w.message),
      },
    });
    if (violation) {
      await appendAudit(tx, ctx, {
        action: 'version.semver-violation-acknowledged',
        target,
        after: { violation, reason: input.reason ?? null },
      });
    }
    return { row: inserted, warnings };
  });
  return { ...(await versionDetail(db, ctx.principal, serverSlug, row)), warnings };
}

/** What the catalogue says of its packages, and whether its template version is deprecated. */
async function creationWarnings(
  tx: Queryable,
  orgId: string,
  config: VersionConfig,
  template: TemplateBase | undefined,
): Promise<VersionWarning[]> {
  const warnings: VersionWarning[] = await packageWarnings(tx, orgId, config);
  if (template?.status === 'deprecated') {
    warnings.push({
      code: 'template-deprecated',
      message: `template ${template.ref} is deprecated; move to a newer version of ${template.template}`,
    });
  }
  return warnings;
}

/**
 * Applies the breaking rule to a version marked breaking. Returns the violation when the caller
 * acknowledged it (with a reason, for the audit trail); refuses it otherwise.
 */
async function checkBreaking(
  tx: Queryable,
  serverId: string,
  version: string,
  request: { acknowledgeSemverViolation?: boolean | undefined; reason?: string | undefined },
): Promise<string | undefined> {
  const violation = breakingViolation(version, await previousStable(tx, serverId, version));
  if (!violation) return undefined;
  if (!request.acknowledgeSemverViolation) {
    throw new ConflictError(
      `${violation}, or send acknowledgeSemverViolation: true with a reason`,
      'breaking-without-major',
    );
  }
  if (!request.reason?.trim()) {
    throw new BadRequestError(
      'acknowledgeSemverViolation needs a reason, recorded in the audit trail (e.g. "only removes a tool nobody calls")',
      'reason-required',
    );
  }
  return violation;
}

/** Records which packages a version references, for "where is this package used". */
async function writePackageRefs(tx: Queryable, versionId: string, orgId: string, config: VersionConfig) {
  for (const ref of packageRefs(config)) {
    await tx.query(
      `INSERT INTO version_packages (version_id, org_id, registry_type, identifier, package_version)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
      [versionId, orgId, ref.registryType, ref.identifier, ref.version],
    );
  }
}

async function recordTransition(
  tx: Queryable,
  ctx: Context,
  versionId: string,
  from: Status | null,
  to: Status,
  reason: string | null,
): Promise<void> {
  await tx.query(
    'INSERT INTO version_transitions (id, version_id, from_status, to_status, actor, reason) VALUES ($1, $2, $3, $4, $5, $6)',
    [newId(), versionId, from, to, ctx.principal.tokenName, reason],
  );
}

async function versionDetail(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  row: VersionRow,
): Promise<VersionDetail> {
  const transitions = await db.query<{
    from_status: Status | null;
    to_status: Status;
    at: Date;
    actor: string;
    reason: string | null;
  }>(
    'SELECT from_status, to_status, at, actor, reason FROM version_transitions WHERE version_id = $1 ORDER BY at, id',
    [row.id],
  );
  const scoped = await listVariables(db, principal.orgId, {
    serverId: row.server_id,
    serverSlug,
    versionId: row.id,
    version: row.version,
  });
  return {
    ...toVersionView(row, serverSlug),
    line: await versionLine(db, row.server_id, row.version),
    template: await templateRef(db, principal.orgSlug, row.template_version_id),
    transitions: transitions.map((t) => ({
      from: t.from_status,
      to: t.to_status,
      at: t.at.toISOString(),
      actor: t.actor,
      reason: t.reason,
    })),
    variables: scoped.filter((v) => !v.secret),
    secrets: scoped.filter((v) => v.secret),
  };
}

export async function getVersion(db: Queryable, principal: Principal, serverSlug: string, version: string) {
  const server = await findServer(db, principal, serverSlug);
  return versionDetail(db, principal, serverSlug, await findVersion(db, server, version));
}

export interface VersionFilter {
  status?: Status | undefined;
  /** true: only pre-releases; false: no pre-releases; unset: both. */
  prerelease?: boolean | undefined;
  /** A semver range; pre-releases match it only when `prerelease` is true. */
  range?: string | undefined;
}

/** A server's versions, highest precedence first. */
export async function listVersions(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  filter: VersionFilter = {},
) {
  const server = await findServer(db, principal, serverSlug);
  const range = filter.range ? parseRange(filter.range) : undefined;
  if (filter.status && !STATUSES.includes(filter.status)) {
    throw new BadRequestError(
      `status ${filter.status} is not one of ${STATUSES.join(', ')}`,
      'invalid-status',
    );
  }
  const rows = await db.query<VersionRow>('SELECT * FROM versions WHERE server_id = $1', [server.id]);
  const matching = rows.filter(
    (r) =>
      (!filter.status || r.status === filter.status) &&
      (filter.prerelease === undefined || r.prerelease === filter.prerelease) &&
      (!range || semver.satisfies(r.version, range, { includePrerelease: filter.prerelease === true })),
  );
  return sortDescending(matching, (r) => r.version).map((r) => toVersionView(r, serverSlug));
}

/**
 * The highest stable version; with `prerelease`, pre-release numbers that are in development or
 * release-candidate count too.
 */
export async function latestVersion(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  prerelease = false,
  linePattern?: string,
) {
  const server = await findServer(db, principal, serverSlug);
  const line = linePattern ? await declaredLine(db, server.id, serverSlug, linePattern) : undefined;
  const rows = (
    await db.query<VersionRow>(
      `SELECT * FROM versions WHERE server_id = $1
       AND (status = 'stable' OR ($2 AND prerelease AND status IN ('development', 'release-candidate')))`,
      [server.id, prerelease],
    )
  ).filter((r) => !line || inLine(r.version, line));
  const [latest] = sortDescending(rows, (r) => r.version);
  if (!latest) {
    throw new NotFoundError(
      `server ${serverSlug} has no ${prerelease ? 'active' : 'stable'} version${line ? ` in line ${line.pattern}` : ''} yet${prerelease ? '' : ' (add ?prerelease=true to include pre-releases)'}`,
      'no-version',
    );
  }
  return versionDetail(db, principal, serverSlug, latest);
}

/** The number to suggest for the next version, from the highest existing one. */
export async function suggestNextVersion(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  bump: Bump,
  preid?: string,
  linePattern?: string,
) {
  const server = await findServer(db, principal, serverSlug);
  const versions = (await allVersions(db, server.id)).map((v) => v.version);
  if (linePattern) {
    const line = await declaredLine(db, server.id, serverSlug, linePattern);
    const current = latestInLine(versions, line, true) ?? null;
    return { current, next: nextInLine(versions, line, bump, preid), bump, line: line.pattern };
  }
  const [highest] = sortDescending(versions, (v) => v);
  return { current: highest ?? null, next: nextVersion(highest, bump, preid), bump };
}

export interface VersionPatch extends Partial<VersionConfig> {
  status?: Status | undefined;
  reason?: string | undefined;
  releaseNotes?: string | undefined;
  migrationGuide?: string | undefined;
  breaking?: boolean | undefined;
  deprecation?:
    { message: string; replacement?: string | null | undefined; date?: string | undefined } | undefined;
  acknowledgeSemverViolation?: boolean | undefined;
}

/**
 * Changes a version. Status, notes, migration guide and deprecation may change at any time;
 * configuration and the breaking flag only while the version is in development: a released
 * version is immutable, and the answer says to cut a new one.
 */
export async function updateVersion(
  db: Db,
  ctx: Context,
  serverSlug: string,
  version: string,
  patch: VersionPatch,
): Promise<VersionDetail> {
  checkDocument('releaseNotes', patch.releaseNotes);
  checkDocument('migrationGuide', patch.migrationGuide);
  const row = await db.transaction(async (tx) => {
    const server = await findServer(tx, ctx.principal, serverSlug);
    const current = await findVersion(tx, server, version, { forUpdate: true });
    const contentChange = Object.keys(configPart(patch)).length > 0 || patch.breaking !== undefined;
    if (contentChange && isReleased(current.status)) {
      throw new ConflictError(
        `${serverSlug}@${version} is ${current.status} and its content is immutable; cut a new version (e.g. ${nextVersion(version, 'patch')}) with the change, optionally created from ${version}`,
        'version-immutable',
      );
    }
    const config = contentChange
      ? checkVersionConfig({ ...current.config, ...configPart(patch) })
      : current.config;
    const breaking = patch.breaking ?? current.breaking;
    let violation = current.semver_violation;
    if (patch.breaking === true && !current.breaking) {
      violation = (await checkBreaking(tx, server.id, version, patch)) ?? null;
    }
    if (patch.breaking === false) violation = null;

    const status = patch.status ?? current.status;
    let deprecation = current.deprecation;
    if (status !== current.status) assertTransition(version, current.status, status, current.prerelease);
    if (status === 'deprecated' && (status !== current.status || patch.deprecation)) {
      deprecation = await checkDeprecation(tx, server, version, patch.deprecation);
    } else if (patch.deprecation) {
      throw new BadRequestError(
        `deprecation applies when status is deprecated (${version} is ${status})`,
        'invalid-deprecation',
      );
    }
    if (status !== 'deprecated' && status !== 'retired') deprecation = null;

    const [updated] = await tx.query<VersionRow>(
      `UPDATE versions SET status = $2, release_notes = $3, migration_guide = $4, breaking = $5, semver_violation = $6,
         config = $7, deprecation = $8, updated_at = now(),
         released_at = CASE WHEN $2 = 'stable' AND released_at IS NULL THEN now() ELSE released_at END
       WHERE id = $1 RETURNING *`,
      [
        current.id,
        status,
        patch.releaseNotes ?? current.release_notes,
        patch.migrationGuide ?? current.migration_guide,
        breaking,
        violation,
        JSON.stringify(config),
        deprecation === null ? null : JSON.stringify(deprecation),
      ],
    );
    const next = updated as VersionRow;
    if (contentChange) {
      await tx.query('DELETE FROM version_packages WHERE version_id = $1', [current.id]);
      await writePackageRefs(tx, current.id, ctx.principal.orgId, config);
    }
    const target = { type: 'version', id: current.id, name: `${serverSlug}@${version}` };
    if (status !== current.status) {
      await recordTransition(tx, ctx, current.id, current.status, status, patch.reason ?? null);
      await appendAudit(tx, ctx, {
        action: `version.${status === 'deprecated' ? 'deprecate' : status === 'retired' ? 'retire' : 'transition'}`,
        target,
        before: { status: current.status },
        after: { status, reason: patch.reason ?? null, deprecation },
      });
    }
    const notesChanged =
      (patch.releaseNotes !== undefined && patch.releaseNotes !== current.release_notes) ||
      (patch.migrationGuide !== undefined && patch.migrationGuide !== current.migration_guide);
    if (contentChange || notesChanged || (status === current.status && patch.deprecation)) {
      await appendAudit(tx, ctx, {
        action: 'version.update',
        target,
        before: { ...summary(current), notesBytes: Buffer.byteLength(current.release_notes) },
        after: { ...summary(next), notesBytes: Buffer.byteLength(next.release_notes) },
      });
    }
    if (violation && violation !== current.semver_violation) {
      await appendAudit(tx, ctx, {
        action: 'version.semver-violation-acknowledged',
        target,
        after: { violation, reason: patch.reason ?? null },
      });
    }
    return next;
  });
  return versionDetail(db, ctx.principal, serverSlug, row);
}

async function checkDeprecation(
  tx: Queryable,
  server: ServerRow,
  version: string,
  input: VersionPatch['deprecation'],
): Promise<Deprecation> {
  if (!input?.message?.trim()) {
    throw new BadRequestError(
      `deprecating ${version} needs deprecation.message telling users what to do (e.g. "upgrade to 2.0.0: the v1 API shuts down on 2027-01-31")`,
      'invalid-deprecation',
    );
  }
  if (input.date !== undefined && Number.isNaN(Date.parse(input.date))) {
    throw new BadRequestError(
      `deprecation.date ${input.date} is not an RFC 3339 time`,
      'invalid-deprecation',
    );
  }
  if (input.replacement) {
    parseVersion(input.replacement);
    const replacement = await findVersion(tx, server, input.replacement).catch(() => undefined);
    if (!replacement) {
      throw new BadRequestError(
        `replacement ${input.replacement} is not a version of ${server.slug}`,
        'invalid-deprecation',
      );
    }
    if (
      !semver.gt(input.replacement, version) ||
      replacement.status === 'retired' ||
      replacement.status === 'deprecated'
    ) {
      throw new BadRequestError(
        `replacement ${input.replacement} must be a newer version of ${server.slug} that is not deprecated or retired`,
        'invalid-deprecation',
      );
    }
  }
  return {
    date: input.date ? new Date(input.date).toISOString() : new Date().toISOString(),
    message: input.message.trim(),
    replacement: input.replacement ?? null,
  };
}

/** The id of a version (and its server) a principal may see; for modules that scope rows to versions. */
export async function versionIds(db: Queryable, principal: Principal, serverSlug: string, version: string) {
  const server = await findServer(db, principal, serverSlug);
  const row = await findVersion(db, server, version);
  return { serverId: server.id, versionId: row.id, server, row };
}
