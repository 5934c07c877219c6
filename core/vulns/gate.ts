/**
 * The `no-vulnerabilities` environment gate: refuses a version with a finding at or above the
 * gate's severity (after the org's ignore rules), naming the advisories.
 */
import type { Queryable } from '../db/client.ts';
import { activeIgnores, ruleFor } from './ignores.ts';
import { scanIn } from './scan.ts';
import { atOrAbove, type SeverityLevel, type SEVERITIES } from './severity.ts';

export type Threshold = (typeof SEVERITIES)[number];

export interface VulnerabilityGateResult {
  passed: boolean;
  detail: string;
  advisories: string[];
}

export async function checkVulnerabilityGate(
  db: Queryable,
  orgId: string,
  serverId: string,
  version: string,
  threshold: Threshold,
  label: string,
): Promise<VulnerabilityGateResult> {
  const [target] = await db.query<{ id: string; slug: string; scanned: boolean }>(
    `SELECT v.id, s.slug, EXISTS (SELECT 1 FROM version_scans vs WHERE vs.version_id = v.id) AS scanned
     FROM versions v JOIN servers s ON s.id = v.server_id WHERE v.server_id = $1 AND v.version = $2`,
    [serverId, version],
  );
  if (!target) return { passed: true, detail: `${version} is not registered`, advisories: [] };
  if (!target.scanned) await scanIn(db, [target.id]);
  const rows = await db.query<{
    advisory_id: string;
    aliases: string[];
    registry_type: string;
    identifier: string;
    package_version: string;
    severity: SeverityLevel;
  }>(
    `SELECT f.advisory_id, a.aliases, f.registry_type, f.identifier, f.package_version, a.severity
     FROM version_findings f JOIN advisories a ON a.id = f.advisory_id WHERE f.version_id = $1
     ORDER BY f.advisory_id`,
    [target.id],
  );
  const rules = await activeIgnores(db, orgId);
  const blocking = rows.filter((r) => atOrAbove(r.severity, threshold) && !ruleFor(rules, target.slug, r));
  const advisories = [...new Set(blocking.map((r) => r.advisory_id))];
  if (advisories.length === 0) {
    return { passed: true, detail: `${version} has no ${threshold} or higher finding`, advisories };
  }
  const named = blocking
    .map((r) => `${r.advisory_id} (${r.severity}, ${r.identifier}@${r.package_version})`)
    .filter((v, i, all) => all.indexOf(v) === i);
  return {
    passed: false,
    detail: `${label}: ${version} has ${advisories.length} finding${advisories.length === 1 ? '' : 's'} at ${threshold} or above: ${named.join(', ')}; upgrade the packages (POST …/versions/${version}/patch proposes the fix) or add an ignore rule with a reason`,
    advisories,
  };
}
