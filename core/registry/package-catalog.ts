/**
 * The org's catalogue of shared packages (registryType + identifier): which versions are allowed,
 * who owns them and which are deprecated. A version referencing a package version outside the
 * allowed range, or inside a deprecation, is warned about on creation; the `allowed-packages`
 * gate can refuse to deploy it.
 */
import * as pep440 from '@renovatebot/pep440';
import semver from 'semver';
import type { Queryable } from '../db/client.ts';
import { isEcosystem, normaliseName } from '../vulns/ecosystems.ts';
import { packageRefs, type VersionConfig } from './server-json.ts';

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

/** The warnings a configuration earns against the org's catalogue (none for uncatalogued packages). */
export async function packageWarnings(
  db: Queryable,
  orgId: string,
  config: VersionConfig,
): Promise<PackageWarning[]> {
  const refs = packageRefs(config);
  if (refs.length === 0) return [];
  const rows = await db.query<CatalogRow>(
    'SELECT * FROM package_catalog WHERE org_id = $1 AND registry_type = ANY($2)',
    [orgId, [...new Set(refs.map((r) => r.registryType))]],
  );
  const warnings: PackageWarning[] = [];
  for (const ref of refs) {
    const entry = rows.find(
      (r) =>
        r.registry_type === ref.registryType &&
        catalogKey(r.registry_type, r.identifier) === catalogKey(ref.registryType, ref.identifier),
    );
    if (!entry) continue;
    const at = { registryType: ref.registryType, identifier: ref.identifier, version: ref.version };
    if (entry.allowed !== null && !inVersions(ref.registryType, entry.allowed, ref.version)) {
      warnings.push({
        code: 'package-not-allowed',
        ...at,
        message: `${ref.identifier}@${ref.version} is not an allowed version of ${ref.registryType} package ${entry.identifier} (allowed: ${entry.allowed})`,
      });
    }
    const deprecation = entry.deprecations.find((d) => inVersions(ref.registryType, d.versions, ref.version));
    if (deprecation) {
      warnings.push({
        code: 'package-deprecated',
        ...at,
        message: `${ref.identifier}@${ref.version} is deprecated: ${deprecation.message}${deprecation.replacement ? ` (use ${deprecation.replacement})` : ''}`,
      });
    }
  }
  return warnings;
}
