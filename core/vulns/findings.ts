/**
 * Reading findings: per version (what its packages are affected by, ignore rules applied) and
 * org-wide (which vulnerable versions run in which environments now, from the deployments'
 * desired state).
 */
import { assertPermission, type Principal } from '../auth/principal.ts';
import type { Db } from '../db/client.ts';
import { BadRequestError } from '../errors.ts';
import { desiredState } from '../deploy/releases.ts';
import { findVersion } from '../registry/versions.ts';
import { findServer } from '../registry/servers.ts';
import { activeIgnores, ruleFor, type IgnoreRule } from './ignores.ts';
import { scanVersions, type Coverage } from './scan.ts';
import { atOrAbove, SEVERITIES, type SeverityLevel } from './severity.ts';

export type Threshold = (typeof SEVERITIES)[number];

export interface Finding {
  package: { registryType: string; identifier: string; version: string };
  advisory: {
    id: string;
    aliases: string[];
    summary: string;
    severity: SeverityLevel;
    score: number | null;
    vector: string | null;
    link: string;
  };
  /** Fixed versions in this package's ecosystem, lowest first; empty: no fix published. */
  fixed: string[];
  /** The rule hiding it, when one does. */
  ignoredBy: { id: string; reason: string; expiresAt: string | null } | null;
}

export interface VersionVulnerabilities {
  server: string;
  version: string;
  scannedAt: string | null;
  coverage: Coverage[];
  /** Findings not hidden by an ignore rule, at or above the threshold (if one was given). */
  findings: Finding[];
  /** Findings an active ignore rule hides. */
  ignored: Finding[];
  counts: Record<SeverityLevel, number>;
}

/** Checks a `severity` threshold parameter: low, medium, high or critical. */
export function parseThreshold(value: string | undefined): Threshold | undefined {
  if (value === undefined) return undefined;
  if (!(SEVERITIES as readonly string[]).includes(value)) {
    throw new BadRequestError(
      `severity "${value}" is not a level; use one of ${SEVERITIES.join(', ')}`,
      'invalid-severity',
    );
  }
  return value as Threshold;
}

interface FindingRow {
  version_id: string;
  registry_type: string;
  identifier: string;
  package_version: string;
  advisory_id: string;
  fixed: string[];
  aliases: string[];
  summary: string;
  severity: SeverityLevel;
  score: number | null;
  vector: string | null;
}

const FINDINGS_SQL = `SELECT f.version_id, f.registry_type, f.identifier, f.package_version, f.advisory_id, f.fixed,
    a.aliases, a.summary, a.severity, a.score, a.vector
  FROM version_findings f JOIN advisories a ON a.id = f.advisory_id`;

function toFinding(row: FindingRow, rule: IgnoreRule | undefined): Finding {
  return {
    package: { registryType: row.registry_type, identifier: row.identifier, version: row.package_version },
    advisory: {
      id: row.advisory_id,
      aliases: row.aliases,
      summary: row.summary,
      severity: row.severity,
      score: row.score,
      vector: row.vector,
      link: `https://osv.dev/vulnerability/${encodeURIComponent(row.advisory_id)}`,
    },
    fixed: row.fixed,
    ignoredBy: rule ? { id: rule.id, reason: rule.reason, expiresAt: rule.expiresAt } : null,
  };
}

const ORDER: SeverityLevel[] = ['critical', 'high', 'medium', 'low', 'unknown'];
const bySeverity = (a: Finding, b: Finding) =>
  ORDER.indexOf(a.advisory.severity) - ORDER.indexOf(b.advisory.severity) ||
  a.package.identifier.localeCompare(b.package.identifier) ||
  a.advisory.id.localeCompare(b.advisory.id);

function split(rows: FindingRow[], rules: IgnoreRule[], server: string, threshold?: Threshold) {
  const findings: Finding[] = [];
  const ignored: Finding[] = [];
  const counts: Record<SeverityLevel, number> = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 };
  for (const row of rows) {
    const rule = ruleFor(rules, server, row);
    const finding = toFinding(row, rule);
    if (rule) ignored.push(finding);
    else {
      counts[row.severity]++;
      if (!threshold || atOrAbove(row.severity, threshold)) findings.push(finding);
    }
  }
  return { findings: findings.sort(bySeverity), ignored: ignored.sort(bySeverity), counts };
}

/**
 * A version's findings. `rescan` scans it first (on demand; needs write). A version never scanned
 * (created before the advisory database existed) is scanned now.
 */
export async function versionVulnerabilities(
  db: Db,
  principal: Principal,
  serverSlug: string,
  version: string,
  options: { severity?: string | undefined; rescan?: boolean | undefined } = {},
): Promise<VersionVulnerabilities> {
  const threshold = parseThreshold(options.severity);
  if (options.rescan) assertPermission(principal, 'write');
  const server = await findServer(db, principal, serverSlug);
  const row = await findVersion(db, server, version);
  let [scan] = await db.query<{ scanned_at: Date; coverage: Coverage[] }>(
    'SELECT scanned_at, coverage FROM version_scans WHERE version_id = $1',
    [row.id],
  );
  if (!scan || options.rescan) {
    await scanVersions(db, [row.id]);
    [scan] = await db.query('SELECT scanned_at, coverage FROM version_scans WHERE version_id = $1', [row.id]);
  }
  const rows = await db.query<FindingRow>(`${FINDINGS_SQL} WHERE f.version_id = $1`, [row.id]);
  const parts = split(rows, await activeIgnores(db, principal.orgId), serverSlug, threshold);
  return {
    server: serverSlug,
    version: row.version,
    scannedAt: scan?.scanned_at.toISOString() ?? null,
    coverage: scan?.coverage ?? [],
    ...parts,
  };
}

export interface VulnerableVersion {
  server: string;
  version: string;
  status: string;
  /** Environments whose desired state sends this version traffic now, with its weight. */
  runningIn: { environment: string; weight: number }[];
  counts: Record<SeverityLevel, number>;
  findings: Finding[];
}

/**
 * Every version of the org with findings at or above `severity` (after ignore rules); `deployed`
 * keeps only those that run somewhere now.
 */
export async function orgVulnerabilities(
  db: Db,
  principal: Principal,
  options: { severity?: string | undefined; deployed?: boolean | undefined } = {},
): Promise<VulnerableVersion[]> {
  assertPermission(principal, 'read');
  const threshold = parseThreshold(options.severity);
  // Versions never scanned (made before the advisory tables, or by a path that does not scan) are
  // scanned now, so the org view never calls a version clean because nobody looked.
  const unscanned = await db.query<{ id: string }>(
    `SELECT v.id FROM versions v WHERE v.org_id = $1
       AND NOT EXISTS (SELECT 1 FROM version_scans vs WHERE vs.version_id = v.id)`,
    [principal.orgId],
  );
  if (unscanned.length)
    await scanVersions(
      db,
      unscanned.map((v) => v.id),
    );
  const scope = principal.servers ? 'AND s.slug = ANY($2)' : '';
  const rows = await db.query<
    FindingRow & { server: string; server_id: string; version: string; status: string }
  >(
    `SELECT f.version_id, f.registry_type, f.identifier, f.package_version, f.advisory_id, f.fixed,
       a.aliases, a.summary, a.severity, a.score, a.vector, s.slug AS server, s.id AS server_id, v.version, v.status
     FROM version_findings f JOIN advisories a ON a.id = f.advisory_id
       JOIN versions v ON v.id = f.version_id JOIN servers s ON s.id = v.server_id
     WHERE f.org_id = $1 AND s.archived_at IS NULL ${scope}
     ORDER BY s.slug, v.version`,
    principal.servers ? [principal.orgId, principal.servers] : [principal.orgId],
  );
  const rules = await activeIgnores(db, principal.orgId);
  const groups = new Map<string, typeof rows>();
  for (const row of rows) groups.set(row.version_id, [...(groups.get(row.version_id) ?? []), row]);
  const desired = new Map<string, Record<string, { version: string; weight: number }[]>>();
  const out: VulnerableVersion[] = [];
  for (const group of groups.values()) {
    const first = group[0] as (typeof rows)[number];
    const parts = split(group, rules, first.server, threshold);
    if (parts.findings.length === 0) continue;
    if (!desired.has(first.server_id)) {
      desired.set(first.server_id, await desiredState(db, principal.orgId, first.server_id));
    }
    const runningIn = Object.entries(desired.get(first.server_id) ?? {}).flatMap(([environment, weights]) =>
      weights
        .filter((w) => w.version === first.version && w.weight > 0)
        .map((w) => ({ environment, weight: w.weight })),
    );
    if (options.deployed && runningIn.length === 0) continue;
    out.push({
      server: first.server,
      version: first.version,
      status: first.status,
      runningIn,
      counts: parts.counts,
      findings: parts.findings,
    });
  }
  return out;
}

/** Scans one version by name (after it is created, so its findings are there from the start). */
export async function scanNamedVersion(db: Db, principal: Principal, serverSlug: string, version: string) {
  const server = await findServer(db, principal, serverSlug);
  const row = await findVersion(db, server, version);
  return (await scanVersions(db, [row.id]))[0];
}
