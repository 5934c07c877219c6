/**
 * The package catalogue as users see it: the entries with how much they are used (and how much of
 * that use is not allowed or deprecated), the packages in use nobody catalogued yet, one package's
 * uses, and the writes (audited, org-wide tokens only).
 */
import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ForbiddenError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { isEcosystem, ORDERINGS, SEMVER_ORDERING } from '../vulns/ecosystems.ts';
import type { Status } from './lifecycle.ts';
import {
  CATALOG_KEY_SQL,
  catalogKey,
  catalogKeySql,
  checkRange,
  checkRegistryType,
  standingOf,
  type CatalogRow,
  type PackageDeprecation,
} from './package-catalog.ts';

export interface PackageEntryView {
  registryType: string;
  identifier: string;
  description: string;
  owners: string[];
  /** The allowed versions in the ecosystem's range syntax; null: any version. */
  allowed: string | null;
  deprecations: PackageDeprecation[];
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

/** Uses by versions that are not retired, of servers that are not archived (what can still deploy). */
export interface UsageCounts {
  servers: number;
  versions: number;
  /** Versions referencing a package version outside `allowed`. */
  notAllowed: number;
  /** Versions referencing a deprecated package version. */
  deprecated: number;
}

export interface CataloguedPackage extends PackageEntryView {
  usage: UsageCounts;
}

export interface UncataloguedPackage {
  registryType: string;
  identifier: string;
  usage: { servers: number; versions: number };
  /** The package versions in use, highest first where the ecosystem orders them. */
  packageVersions: string[];
}

export interface PackageUseView {
  server: string;
  version: string;
  status: Status;
  /** As the version spells it (PyPI and NuGet names may differ in case from the catalogue's). */
  identifier: string;
  packageVersion: string;
  allowed: boolean;
  deprecated: boolean;
  deprecation: PackageDeprecation | null;
}

export interface PackageVersionSummary {
  packageVersion: string;
  servers: number;
  versions: number;
  allowed: boolean;
  deprecated: boolean;
}

export interface PackageDetail {
  registryType: string;
  identifier: string;
  entry: PackageEntryView | null;
  /** Every use, retired versions included; per server, newest version first. */
  uses: PackageUseView[];
  /** The package versions in use by versions that are not retired, with counts. */
  summary: PackageVersionSummary[];
  usage: UsageCounts;
}

export const toEntryView = (row: CatalogRow): PackageEntryView => ({
  registryType: row.registry_type,
  identifier: row.identifier,
  description: row.description,
  owners: row.owners,
  allowed: row.allowed,
  deprecations: row.deprecations.map((d) => ({ ...d, replacement: d.replacement ?? null })),
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
  updatedBy: row.updated_by,
});

const live = (status: string) => status !== 'retired';
const name = (registryType: string, identifier: string) => `${registryType} package ${identifier}`;
/** The API path of a package, identifier URL-encoded (npm scopes and OCI images contain `/`). */
export const packagePath = (registryType: string, identifier: string) =>
  `/api/v1/packages/${registryType}/${encodeURIComponent(identifier)}`;

/** The org's entry for a package, compared the way the ecosystem compares names. */
export async function findEntry(
  db: Queryable,
  orgId: string,
  registryType: string,
  identifier: string,
): Promise<CatalogRow | undefined> {
  const [row] = await db.query<CatalogRow>(
    `SELECT * FROM package_catalog WHERE org_id = $1 AND registry_type = $2
       AND ${catalogKeySql(registryType, 'identifier')} = $3 ORDER BY created_at LIMIT 1`,
    [orgId, registryType, catalogKey(registryType, identifier)],
  );
  return row;
}

interface UseRow {
  slug: string;
  version: string;
  status: Status;
  identifier: string;
  package_version: string;
}

async function usesOf(db: Queryable, principal: Principal, registryType: string, identifier: string) {
  const rows = await db.query<UseRow>(
    `SELECT s.slug, v.version, v.status, p.identifier, p.package_version
       FROM version_packages p JOIN versions v ON v.id = p.version_id JOIN servers s ON s.id = v.server_id
      WHERE p.org_id = $1 AND p.registry_type = $2 AND ${catalogKeySql(registryType, 'p.identifier')} = $3
        AND s.archived_at IS NULL AND ($4::text[] IS NULL OR s.slug = ANY($4))`,
    [principal.orgId, registryType, catalogKey(registryType, identifier), principal.servers],
  );
  return rows.sort((a, b) =>
    a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : semver.rcompare(a.version, b.version),
  );
}

function countUses(uses: PackageUseView[]): UsageCounts {
  const inUse = uses.filter((u) => live(u.status));
  const versions = (list: PackageUseView[]) => new Set(list.map((u) => `${u.server}@${u.version}`)).size;
  return {
    servers: new Set(inUse.map((u) => u.server)).size,
    versions: versions(inUse),
    notAllowed: versions(inUse.filter((u) => !u.allowed)),
    deprecated: versions(inUse.filter((u) => u.deprecated)),
  };
}

/** The usage page of one package: its entry (or null), every use flagged, and the versions in use. */
export async function packageDetail(
  db: Queryable,
  principal: Principal,
  registryType: string,
  identifier: string,
): Promise<PackageDetail> {
  checkRegistryType(registryType);
  const entry = await findEntry(db, principal.orgId, registryType, identifier);
  const rows = await usesOf(db, principal, registryType, identifier);
  if (!entry && rows.length === 0) {
    throw new NotFoundError(
      `${name(registryType, identifier)} is neither in the catalogue of @${principal.orgSlug} nor referenced by any version; catalogue it with PUT ${packagePath(registryType, identifier)}`,
      'package-not-found',
    );
  }
  const uses = rows.map((r): PackageUseView => {
    const standing = standingOf(entry, r.package_version);
    return {
      server: r.slug,
      version: r.version,
      status: r.status,
      identifier: r.identifier,
      packageVersion: r.package_version,
      allowed: standing.allowed,
      deprecated: standing.deprecation !== null,
      deprecation: standing.deprecation,
    };
  });
  const byVersion = new Map<string, PackageUseView[]>();
  for (const u of uses.filter((u) => live(u.status)))
    byVersion.set(u.packageVersion, [...(byVersion.get(u.packageVersion) ?? []), u]);
  const summary = [...byVersion].map(([packageVersion, list]) => ({
    packageVersion,
    servers: new Set(list.map((u) => u.server)).size,
    versions: list.length,
    allowed: (list[0] as PackageUseView).allowed,
    deprecated: (list[0] as PackageUseView).deprecated,
  }));
  return {
    registryType,
    identifier: entry?.identifier ?? rows[0]?.identifier ?? identifier,
    entry: entry ? toEntryView(entry) : null,
    uses,
    summary: sortPackageVersions(registryType, summary, (s) => s.packageVersion),
    usage: countUses(uses),
  };
}

/** Highest first in the ecosystem's order (semver for OCI tags and Homebrew too, where they are). */
function sortPackageVersions<T>(registryType: string, list: T[], of: (t: T) => string): T[] {
  const ordering = isEcosystem(registryType) ? ORDERINGS[registryType] : SEMVER_ORDERING;
  const all = list.every((t) => ordering.valid(of(t)));
  return list.sort((a, b) =>
    all ? ordering.compare(of(b), of(a)) : of(b).localeCompare(of(a), 'en', { numeric: true }),
  );
}

interface GroupRow {
  registry_type: string;
  key: string;
  identifier: string;
  package_version: string;
  versions: string[];
}

/**
 * Every catalogued package with its usage, and the packages in use that are not catalogued (most
 * used first), optionally of one registry type and matching `q` (identifier or description).
 */
export async function listPackages(
  db: Queryable,
  principal: Principal,
  filter: { registryType?: string | undefined; q?: string | undefined } = {},
): Promise<{ packages: CataloguedPackage[]; uncatalogued: UncataloguedPackage[] }> {
  if (filter.registryType !== undefined) checkRegistryType(filter.registryType);
  const type = filter.registryType ?? null;
  const entries = await db.query<CatalogRow>(
    `SELECT * FROM package_catalog WHERE org_id = $1 AND ($2::text IS NULL OR registry_type = $2)
     ORDER BY registry_type, identifier`,
    [principal.orgId, type],
  );
  // One row per package version in use: the catalogue's verdict is per package version.
  const groups = await db.query<GroupRow>(
    `SELECT p.registry_type, ${CATALOG_KEY_SQL('p.registry_type', 'p.identifier')} AS key,
            min(p.identifier) AS identifier, p.package_version,
            array_agg(DISTINCT s.slug || '@' || v.version) AS versions
       FROM version_packages p JOIN versions v ON v.id = p.version_id JOIN servers s ON s.id = v.server_id
      WHERE p.org_id = $1 AND ($2::text IS NULL OR p.registry_type = $2) AND v.status <> 'retired'
        AND s.archived_at IS NULL AND ($3::text[] IS NULL OR s.slug = ANY($3))
      GROUP BY 1, 2, 4`,
    [principal.orgId, type, principal.servers],
  );
  const q = filter.q?.trim().toLowerCase() ?? '';
  const matches = (...texts: string[]) => q === '' || texts.some((t) => t.toLowerCase().includes(q));
  const keyOf = (registryType: string, key: string) => `${registryType}\u0000${key}`;
  const byPackage = new Map<string, GroupRow[]>();
  for (const g of groups) {
    const k = keyOf(g.registry_type, g.key);
    byPackage.set(k, [...(byPackage.get(k) ?? []), g]);
  }
  const serversOf = (versions: string[]) => new Set(versions.map((v) => v.slice(0, v.lastIndexOf('@'))));

  const packages = entries
    .filter((e) => matches(e.identifier, e.description))
    .map((entry): CataloguedPackage => {
      const k = keyOf(entry.registry_type, catalogKey(entry.registry_type, entry.identifier));
      const used = byPackage.get(k) ?? [];
      byPackage.delete(k);
      const all = new Set<string>();
      const notAllowed = new Set<string>();
      const deprecated = new Set<string>();
      for (const g of used) {
        const standing = standingOf(entry, g.package_version);
        for (const v of g.versions) {
          all.add(v);
          if (!standing.allowed) notAllowed.add(v);
          if (standing.deprecation) deprecated.add(v);
        }
      }
      return {
        ...toEntryView(entry),
        usage: {
          servers: serversOf([...all]).size,
          versions: all.size,
          notAllowed: notAllowed.size,
          deprecated: deprecated.size,
        },
      };
    });
  // What is left is in use but not catalogued (entries filtered out by `q` still count as catalogued).
  for (const e of entries)
    byPackage.delete(keyOf(e.registry_type, catalogKey(e.registry_type, e.identifier)));
  const uncatalogued = [...byPackage.values()]
    .map((used): UncataloguedPackage => {
      const first = used[0] as GroupRow;
      const versions = new Set(used.flatMap((g) => g.versions));
      return {
        registryType: first.registry_type,
        identifier: used.map((g) => g.identifier).sort()[0] as string,
        usage: { servers: serversOf([...versions]).size, versions: versions.size },
        packageVersions: sortPackageVersions(
          first.registry_type,
          used.map((g) => g.package_version),
          (v) => v,
        ),
      };
    })
    .filter((p) => matches(p.identifier))
    .sort(
      (a, b) =>
        b.usage.servers - a.usage.servers ||
        b.usage.versions - a.usage.versions ||
        a.registryType.localeCompare(b.registryType) ||
        a.identifier.localeCompare(b.identifier),
    );
  return { packages, uncatalogued };
}

export interface PackageInput {
  description?: string | undefined;
  owners?: string[] | undefined;
  allowed?: string | null | undefined;
  deprecations?: {
    versions: string;
    message?: string | undefined;
    replacement?: string | null | undefined;
  }[];
}

/** The catalogue is org policy: a token limited to some servers may read it, not change it. */
function assertOrgWide(principal: Principal): void {
  if (principal.servers !== null) {
    throw new ForbiddenError(
      `this token is limited to servers ${principal.servers.join(', ')}; the package catalogue is org-wide: use a token of @${principal.orgSlug} for every server`,
      'org-wide-token-required',
    );
  }
}

function checkInput(registryType: string, identifier: string, input: PackageInput) {
  checkRegistryType(registryType);
  if (identifier.trim() !== identifier || identifier === '') {
    throw new BadRequestError(
      `identifier ${JSON.stringify(identifier)} must be the package's name without surrounding spaces, e.g. @acme/sdk`,
      'invalid-identifier',
    );
  }
  const allowed =
    input.allowed === undefined || input.allowed === null
      ? input.allowed
      : checkRange(registryType, 'allowed', input.allowed);
  const deprecations = input.deprecations?.map((d, i): PackageDeprecation => {
    const at = `deprecations[${i}]`;
    const message = d.message?.trim() ?? '';
    if (message === '') {
      throw new BadRequestError(
        `${at}.message is required: say why and what to do instead, e.g. "1.x leaks tokens in logs; upgrade to 2.1.0"`,
        'deprecation-message-required',
      );
    }
    return {
      versions: checkRange(registryType, `${at}.versions`, d.versions),
      message,
      replacement: d.replacement?.trim() || null,
    };
  });
  const owners = input.owners && [...new Set(input.owners.map((o) => o.trim()).filter(Boolean))];
  return { allowed, deprecations, owners };
}

const summaryOf = (row: CatalogRow) => ({
  description: row.description,
  owners: row.owners,
  allowed: row.allowed,
  deprecations: row.deprecations,
});

/**
 * Catalogues a package, or changes its entry: fields left out keep their value (`allowed: null`
 * allows any version again; `deprecations` replaces the list). Write permission; audited.
 */
export async function putPackage(
  db: Db,
  ctx: Context,
  registryType: string,
  identifier: string,
  input: PackageInput,
): Promise<{ created: boolean; package: CataloguedPackage }> {
  assertOrgWide(ctx.principal);
  const checked = checkInput(registryType, identifier, input);
  const orgId = ctx.principal.orgId;
  const row = await db.transaction(async (tx) => {
    // Two spellings of one PyPI name written at once must not make two entries.
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
      `package-catalog:${orgId}:${registryType}:${catalogKey(registryType, identifier)}`,
    ]);
    const before = await findEntry(tx, orgId, registryType, identifier);
    const values = {
      description: input.description ?? before?.description ?? '',
      owners: checked.owners ?? before?.owners ?? [],
      allowed: checked.allowed === undefined ? (before?.allowed ?? null) : checked.allowed,
      deprecations: checked.deprecations ?? before?.deprecations ?? [],
    };
    const params = [
      values.description,
      values.owners,
      values.allowed,
      JSON.stringify(values.deprecations),
      ctx.principal.tokenName,
    ];
    const [saved] = before
      ? await tx.query<CatalogRow>(
          `UPDATE package_catalog SET description = $1, owners = $2, allowed = $3, deprecations = $4::jsonb,
             updated_by = $5, updated_at = now() WHERE id = $6 RETURNING *`,
          [...params, before.id],
        )
      : await tx.query<CatalogRow>(
          `INSERT INTO package_catalog (description, owners, allowed, deprecations, updated_by, id, org_id,
             registry_type, identifier) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9) RETURNING *`,
          [...params, newId(), orgId, registryType, identifier],
        );
    const after = saved as CatalogRow;
    await appendAudit(tx, ctx, {
      action: before ? 'package.update' : 'package.create',
      target: { type: 'package', id: after.id, name: `${registryType}:${after.identifier}` },
      ...(before ? { before: summaryOf(before) } : {}),
      after: summaryOf(after),
    });
    return { created: !before, after };
  });
  const detail = await packageDetail(db, ctx.principal, registryType, row.after.identifier);
  return { created: row.created, package: { ...toEntryView(row.after), usage: detail.usage } };
}

/** Removes a package from the catalogue (its uses stay, no longer checked). Write permission; audited. */
export async function deletePackage(
  db: Db,
  ctx: Context,
  registryType: string,
  identifier: string,
): Promise<void> {
  assertOrgWide(ctx.principal);
  checkRegistryType(registryType);
  await db.transaction(async (tx) => {
    const row = await findEntry(tx, ctx.principal.orgId, registryType, identifier);
    if (!row) {
      throw new NotFoundError(
        `${name(registryType, identifier)} is not in the catalogue of @${ctx.principal.orgSlug}; GET /api/v1/packages lists what is`,
        'package-not-found',
      );
    }
    await tx.query('DELETE FROM package_catalog WHERE id = $1', [row.id]);
    await appendAudit(tx, ctx, {
      action: 'package.delete',
      target: { type: 'package', id: row.id, name: `${registryType}:${row.identifier}` },
      before: summaryOf(row),
    });
  });
}
