/**
 * The org's catalogue of shared packages (registryType + identifier): which versions are allowed,
 * who owns them and which are deprecated. A version referencing a package version outside the
 * allowed range, or inside a deprecation, is warned about on creation; the `allowed-packages`
 * gate can refuse to deploy it.
 */
import * as pep440 from '@renovatebot/pep440';
import semver from 'semver';
import type { Queryable } from '../db/client.ts';
import { BadRequestError } from '../errors.ts';
import { isEcosystem, normaliseName } from '../vulns/ecosystems.ts';
import { packageRefs, REGISTRY_TYPES, type PackageRef, type VersionConfig } from './server-json.ts';

export interface PackageDeprecation {
  /** The versions deprecated, in the ecosystem's range syntax (`*`: every version). */
  versions: string;
  message: string;
  replacement: string | null;
}

export interface CatalogRow {
  id: string;
  org_id: string;
  registry_type: string;
  identifier: string;
  description: string;
  owners: string[];
  allowed: string | null;
  deprecations: PackageDeprecation[];
  updated_by: string;
  created_at: Date;
  updated_at: Date;
}

/** Why a version's package reference deserves a warning. */
export interface PackageWarning {
  code: 'package-not-allowed' | 'package-deprecated';
  registryType: string;
  identifier: string;
  version: string;
  message: string;
}

/** How the catalogue compares identifiers: PyPI and NuGet names case-insensitively, others exactly. */
export const catalogKey = (registryType: string, identifier: string) =>
  isEcosystem(registryType) ? normaliseName(registryType, identifier) : identifier;

/**
 * The SQL of `catalogKey` over a column, for a registry type known in code (never from input):
 * PEP 503 for PyPI (`lower`, runs of `-_.` as one `-`), `lower` for NuGet, the column itself otherwise.
 */
export function catalogKeySql(registryType: string, column: string): string {
  if (registryType === 'pypi') return `lower(regexp_replace(${column}, '[-_.]+', '-', 'g'))`;
  if (registryType === 'nuget') return `lower(${column})`;
  return column;
}

/** The same over a row whose registry type is in another column. */
export const CATALOG_KEY_SQL = (typeColumn: string, column: string) =>
  `CASE ${typeColumn} WHEN 'pypi' THEN ${catalogKeySql('pypi', column)} WHEN 'nuget' THEN ${catalogKeySql('nuget', column)} ELSE ${column} END`;

/**
 * Whether `version` is in `range`, in the ecosystem's syntax: npm a semver range, PyPI a PEP 440
 * specifier set; OCI tags, Homebrew and NuGet versions a comma-separated list of exact versions with
 * `*` wildcards.
 */
export function inVersions(registryType: string, range: string, version: string): boolean {
  const text = range.trim();
  if (text === '*') return true;
  if (registryType === 'npm') return semver.satisfies(version, text, { includePrerelease: true });
  if (registryType === 'pypi') return pep440.satisfies(version, text, { prereleases: true });
  return text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .some((p) =>
      new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(version),
    );
}

/** The syntax of each registry type's ranges, said the way an error message needs it. */
export const RANGE_SYNTAX: Record<string, { name: string; example: string }> = {
  npm: { name: 'a semver range', example: '^2.1.0 or >=1.4.0 <2.0.0' },
  pypi: { name: 'a PEP 440 specifier set', example: '>=2.31,<3 or ~=2.31.0' },
  oci: { name: 'a comma-separated list of tags, * as a wildcard', example: '1.4.2, 1.5.*' },
  homebrew: { name: 'a comma-separated list of versions, * as a wildcard', example: '3.2.1, 3.3.*' },
  nuget: { name: 'a comma-separated list of versions, * as a wildcard', example: '13.0.3, 13.1.*' },
};

const LIST_ITEM = /^[A-Za-z0-9_.+:@*-]+$/;

/** Throws 400 `invalid-registry-type` unless `registryType` is one server.json knows. */
export function checkRegistryType(registryType: string): void {
  if (!(REGISTRY_TYPES as readonly string[]).includes(registryType)) {
    throw new BadRequestError(
      `registryType ${JSON.stringify(registryType)} is not a registry type; use one of ${REGISTRY_TYPES.join(', ')}`,
      'invalid-registry-type',
    );
  }
}

/** A range as given for `field`, trimmed; 400 `invalid-range` naming the field and the syntax, with an example. */
export function checkRange(registryType: string, field: string, range: string): string {
  const text = range.trim();
  const syntax = RANGE_SYNTAX[registryType] ?? { name: 'a range', example: '*' };
  const valid =
    text === '*' ||
    (text !== '' &&
      (registryType === 'npm'
        ? semver.validRange(text) !== null
        : registryType === 'pypi'
          ? pep440.validRange(text)
          : text.split(',').every((p) => LIST_ITEM.test(p.trim()))));
  if (!valid) {
    throw new BadRequestError(
      `${field} ${JSON.stringify(range)} is not valid for ${registryType}: use ${syntax.name}, e.g. ${syntax.example} (* for every version)`,
      'invalid-range',
    );
  }
  return text;
}

/** How one package version stands in the catalogue (an uncatalogued package is allowed, not deprecated). */
export interface Standing {
  allowed: boolean;
  deprecation: PackageDeprecation | null;
}

export function standingOf(entry: CatalogRow | undefined, version: string): Standing {
  if (!entry) return { allowed: true, deprecation: null };
  const type = entry.registry_type;
  return {
    allowed: entry.allowed === null || inVersions(type, entry.allowed, version),
    deprecation: entry.deprecations.find((d) => inVersions(type, d.versions, version)) ?? null,
  };
}

/** A reference to a catalogued package at a version outside `allowed`, or inside a deprecation. */
export interface PackageFinding {
  ref: PackageRef;
  entry: CatalogRow;
  allowed: boolean;
  deprecation: PackageDeprecation | null;
}

/** The references that the org's catalogue does not allow or deprecates, in the order given. */
export async function catalogFindings(
  db: Queryable,
  orgId: string,
  refs: PackageRef[],
): Promise<PackageFinding[]> {
  if (refs.length === 0) return [];
  const rows = await db.query<CatalogRow>(
    'SELECT * FROM package_catalog WHERE org_id = $1 AND registry_type = ANY($2) ORDER BY created_at',
    [orgId, [...new Set(refs.map((r) => r.registryType))]],
  );
  const findings: PackageFinding[] = [];
  for (const ref of refs) {
    const key = catalogKey(ref.registryType, ref.identifier);
    const entry = rows.find(
      (r) => r.registry_type === ref.registryType && catalogKey(r.registry_type, r.identifier) === key,
    );
    if (!entry) continue;
    const standing = standingOf(entry, ref.version);
    if (!standing.allowed || standing.deprecation) findings.push({ ref, entry, ...standing });
  }
  return findings;
}

export const deprecationText = (d: PackageDeprecation) =>
  `${d.message}${d.replacement ? ` (use ${d.replacement})` : ''}`;

/** The warnings a configuration earns against the org's catalogue (none for uncatalogued packages). */
export async function packageWarnings(
  db: Queryable,
  orgId: string,
  config: VersionConfig,
): Promise<PackageWarning[]> {
  const warnings: PackageWarning[] = [];
  for (const { ref, entry, allowed, deprecation } of await catalogFindings(db, orgId, packageRefs(config))) {
    const at = { registryType: ref.registryType, identifier: ref.identifier, version: ref.version };
    if (!allowed) {
      warnings.push({
        code: 'package-not-allowed',
        ...at,
        message: `${ref.identifier}@${ref.version} is not an allowed version of ${ref.registryType} package ${entry.identifier} (allowed: ${entry.allowed})`,
      });
    }
    if (deprecation) {
      warnings.push({
        code: 'package-deprecated',
        ...at,
        message: `${ref.identifier}@${ref.version} is deprecated: ${deprecationText(deprecation)}`,
      });
    }
  }
  return warnings;
}
