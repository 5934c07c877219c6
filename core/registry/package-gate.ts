/**
 * The `allowed-packages` environment gate: refuses a version that references a catalogued package
 * at a version outside the catalogue's `allowed` range, or (unless `allowDeprecated`) inside one of
 * its deprecations, naming each package version and how to get past it.
 */
import type { Queryable } from '../db/client.ts';
import { catalogFindings, deprecationText } from './package-catalog.ts';
import { packagePath } from './packages.ts';

export interface PackageGateResult {
  passed: boolean;
  detail: string;
  /** `registryType:identifier@version` of each reference that blocks. */
  packages: string[];
}

export async function checkPackageGate(
  db: Queryable,
  orgId: string,
  serverId: string,
  version: string,
  allowDeprecated: boolean,
  label: string,
): Promise<PackageGateResult> {
  const refs = await db.query<{ registryType: string; identifier: string; version: string }>(
    `SELECT p.registry_type AS "registryType", p.identifier, p.package_version AS version
       FROM version_packages p JOIN versions v ON v.id = p.version_id
      WHERE v.server_id = $1 AND v.version = $2 ORDER BY p.registry_type, p.identifier, p.package_version`,
    [serverId, version],
  );
  const blocking = (await catalogFindings(db, orgId, refs)).filter(
    (f) => !f.allowed || (f.deprecation && !allowDeprecated),
  );
  if (blocking.length === 0) {
    return {
      passed: true,
      detail:
        refs.length === 0
          ? `${version} references no package`
          : `the catalogue allows every package version ${version} references${allowDeprecated ? ' (deprecated ones included)' : ''}`,
      packages: [],
    };
  }
  const named = blocking.map(({ ref, entry, allowed, deprecation }) => {
    const why = [
      ...(allowed ? [] : [`outside the allowed ${entry.allowed}`]),
      ...(deprecation && !allowDeprecated ? [`deprecated: ${deprecationText(deprecation)}`] : []),
    ];
    return `${ref.registryType} ${ref.identifier}@${ref.version} (${why.join('; ')})`;
  });
  const first = blocking[0]?.entry;
  return {
    passed: false,
    detail: `${label}: ${version} references ${blocking.length === 1 ? 'a package version' : `${blocking.length} package versions`} the catalogue does not allow: ${named.join(', ')}; cut a version with allowed package versions, or change the catalogue (pylee packages set, PUT ${first ? packagePath(first.registry_type, first.identifier) : '/api/v1/packages/…'})`,
    packages: blocking.map((f) => `${f.ref.registryType}:${f.ref.identifier}@${f.ref.version}`),
  };
}
