/**
 * Scans versions: each package a version references is matched against the stored advisories of
 * its ecosystem, and the findings (before ignore rules) replace the version's previous ones.
 * Packages Pylee cannot scan are recorded as such, so a report never calls them clean.
 */
import type { Db, Queryable } from '../db/client.ts';
import { isEcosystem, normaliseName, type Ecosystem } from './ecosystems.ts';
import { fixedVersions, isAffected } from './match.ts';
import type { OsvAffected } from './osv.ts';

export type CoverageStatus = 'scanned' | 'not-scanned' | 'not-covered';

export interface Coverage {
  registryType: string;
  identifier: string;
  version: string;
  status: CoverageStatus;
  reason?: string;
}

export interface ScanResult {
  versionId: string;
  orgId: string;
  /** Advisory ids the version is affected by now and was not at its previous scan. */
  added: string[];
  advisories: string[];
}

interface PackageRow {
  version_id: string;
  org_id: string;
  registry_type: string;
  identifier: string;
  package_version: string;
}

function coverageOf(row: PackageRow): Coverage {
  const base = { registryType: row.registry_type, identifier: row.identifier, version: row.package_version };
  if (isEcosystem(row.registry_type)) return { ...base, status: 'scanned' };
  if (row.registry_type === 'oci') {
    return {
      ...base,
      status: 'not-scanned',
      reason: 'OCI images have no OSV ecosystem; no SBOM is attached',
    };
  }
  return { ...base, status: 'not-covered', reason: `no OSV data for ${row.registry_type} is loaded` };
}

/** Findings of one package: the stored advisories of its name whose entries cover its version. */
function match(
  ecosystem: Ecosystem,
  version: string,
  advisories: { advisory_id: string; affected: OsvAffected[] }[],
): { advisoryId: string; fixed: string[] }[] {
  return advisories
    .filter((a) => a.affected.some((entry) => isAffected(ecosystem, entry, version)))
    .map((a) => ({ advisoryId: a.advisory_id, fixed: fixedVersions(ecosystem, a.affected) }));
}

/**
 * Scans the given versions (default: every version of every org) in one transaction; returns per
 * version what it is affected by and what is new since its last scan.
 */
export async function scanVersions(db: Db, versionIds?: string[]): Promise<ScanResult[]> {
  return db.transaction((tx) => scanIn(tx, versionIds));
}

export async function scanIn(tx: Queryable, versionIds?: string[]): Promise<ScanResult[]> {
  const filter = versionIds ? 'WHERE id = ANY($1)' : '';
  const params = versionIds ? [versionIds] : [];
  const versions = await tx.query<{ id: string; org_id: string }>(
    `SELECT id, org_id FROM versions ${filter} ORDER BY id`,
    params,
  );
  if (versions.length === 0) return [];
  const ids = versions.map((v) => v.id);
  const packages = await tx.query<PackageRow>(
    'SELECT version_id, org_id, registry_type, identifier, package_version FROM version_packages WHERE version_id = ANY($1)',
    [ids],
  );
  // An OCI image with an SBOM is scanned through its components (matched like declared packages).
  const sboms = await tx.query<{
    version_id: string;
    org_id: string;
    image: string;
    components: { ecosystem: Ecosystem; name: string; version: string }[];
    other_components: number;
  }>(
    'SELECT version_id, org_id, image, components, other_components FROM version_sboms WHERE version_id = ANY($1)',
    [ids],
  );
  const sbomOf = new Map(sboms.map((b) => [`${b.version_id}\u0000${b.image}`, b]));
  const components: PackageRow[] = sboms.flatMap((b) =>
    b.components.map((c) => ({
      version_id: b.version_id,
      org_id: b.org_id,
      registry_type: c.ecosystem,
      identifier: c.name,
      package_version: c.version,
    })),
  );
  const keys = new Map<string, { ecosystem: Ecosystem; name: string }>();
  for (const p of [...packages, ...components]) {
    if (!isEcosystem(p.registry_type)) continue;
    const name = normaliseName(p.registry_type, p.identifier);
    keys.set(`${p.registry_type}\u0000${name}`, { ecosystem: p.registry_type, name });
  }
  const list = [...keys.values()];
  const rows = list.length
    ? await tx.query<{ advisory_id: string; ecosystem: Ecosystem; name: string; affected: OsvAffected[] }>(
        `SELECT advisory_id, ecosystem, name, affected FROM advisory_packages
         WHERE (ecosystem, name) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
        [list.map((k) => k.ecosystem), list.map((k) => k.name)],
      )
    : [];
  const byPackage = new Map<string, typeof rows>();
  for (const row of rows) {
    const key = `${row.ecosystem}\u0000${row.name}`;
    byPackage.set(key, [...(byPackage.get(key) ?? []), row]);
  }
  const previous = await tx.query<{ version_id: string; advisory_id: string }>(
    'SELECT DISTINCT version_id, advisory_id FROM version_findings WHERE version_id = ANY($1)',
    [ids],
  );

  const columns: unknown[][] = [[], [], [], [], [], [], []];
  const coverage = new Map<string, Coverage[]>();
  const found = new Map<string, Set<string>>();
  const seen = new Set<string>();
  for (const p of packages) {
    const sbom = p.registry_type === 'oci' ? sbomOf.get(`${p.version_id}\u0000${p.identifier}`) : undefined;
    const covered: Coverage = sbom
      ? {
          ...coverageOf(p),
          status: 'scanned',
          reason: `through its ${sbom.components.length} SBOM components${sbom.other_components ? ` (${sbom.other_components} of other ecosystems not covered)` : ''}`,
        }
      : coverageOf(p);
    coverage.set(p.version_id, [...(coverage.get(p.version_id) ?? []), covered]);
  }
  for (const p of [...packages, ...components]) {
    if (!isEcosystem(p.registry_type)) continue;
    const key = `${p.registry_type}\u0000${normaliseName(p.registry_type, p.identifier)}`;
    for (const f of match(p.registry_type, p.package_version, byPackage.get(key) ?? [])) {
      const id = `${p.version_id}\u0000${key}\u0000${p.package_version}\u0000${f.advisoryId}`;
      if (seen.has(id)) continue; // one component in two SBOMs, or also declared as a package
      seen.add(id);
      const values = [p.version_id, p.org_id, p.registry_type, p.identifier, p.package_version, f.advisoryId];
      values.forEach((v, i) => columns[i]?.push(v));
      columns[6]?.push(JSON.stringify(f.fixed));
      found.set(p.version_id, (found.get(p.version_id) ?? new Set()).add(f.advisoryId));
    }
  }
  await tx.query('DELETE FROM version_findings WHERE version_id = ANY($1)', [ids]);
  if (columns[0]?.length) {
    await tx.query(
      `INSERT INTO version_findings (version_id, org_id, registry_type, identifier, package_version, advisory_id, fixed)
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])`,
      columns,
    );
  }
  await tx.query(
    `INSERT INTO version_scans (version_id, org_id, scanned_at, coverage)
     SELECT v, o, now(), c FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[]) AS t (v, o, c)
     ON CONFLICT (version_id) DO UPDATE SET scanned_at = excluded.scanned_at, coverage = excluded.coverage`,
    [ids, versions.map((v) => v.org_id), versions.map((v) => JSON.stringify(coverage.get(v.id) ?? []))],
  );
  const before = new Map<string, Set<string>>();
  for (const r of previous)
    before.set(r.version_id, (before.get(r.version_id) ?? new Set()).add(r.advisory_id));
  return versions.map((v) => {
    const now = [...(found.get(v.id) ?? [])].sort();
    return {
      versionId: v.id,
      orgId: v.org_id,
      advisories: now,
      added: now.filter((id) => !before.get(v.id)?.has(id)),
    };
  });
}

/** Versions that reference a package of one of these advisories, or had a finding of one. */
export async function versionsTouchedBy(tx: Queryable, advisoryIds: string[]): Promise<string[]> {
  if (advisoryIds.length === 0) return [];
  const rows = await tx.query<{ version_id: string }>(
    `SELECT DISTINCT version_id FROM version_findings WHERE advisory_id = ANY($1)
     UNION
     SELECT DISTINCT vp.version_id FROM version_packages vp
       JOIN advisory_packages ap ON ap.ecosystem = vp.registry_type
         AND ap.name = CASE vp.registry_type
           WHEN 'pypi' THEN regexp_replace(lower(vp.identifier), '[-_.]+', '-', 'g')
           WHEN 'nuget' THEN lower(vp.identifier)
           ELSE vp.identifier END
       WHERE ap.advisory_id = ANY($1)`,
    [advisoryIds],
  );
  return rows.map((r) => r.version_id);
}
