/**
 * Security patches: the next patch number of a version with each vulnerable package moved to the
 * lowest fixed version in its own major line that no finding of it still affects, release notes
 * listing the advisories fixed, and the rest of the configuration copied. What cannot be fixed that
 * way (no fixed version, or only in a higher major) is said, not guessed.
 */
import * as pep440 from '@renovatebot/pep440';
import semver from 'semver';
import { assertPermission, type Context } from '../auth/principal.ts';
import type { Db } from '../db/client.ts';
import type { Package } from '../registry/server-json.ts';
import { findServer } from '../registry/servers.ts';
import { createVersion, findVersion, type VersionDetail } from '../registry/versions.ts';
import { isEcosystem, normaliseName, ORDERINGS, type Ecosystem } from './ecosystems.ts';
import { versionVulnerabilities, type Finding } from './findings.ts';
import { isAffected } from './match.ts';
import type { OsvAffected } from './osv.ts';

export interface PackageUpgrade {
  registryType: string;
  identifier: string;
  from: string;
  to: string;
  fixes: string[];
}

export interface Unfixed {
  registryType: string;
  identifier: string;
  version: string;
  advisory: string;
  reason: string;
}

export interface PatchProposal {
  server: string;
  from: string;
  version: string;
  upgrades: PackageUpgrade[];
  unfixed: Unfixed[];
  releaseNotes: string;
  /** The created version (status development) when `create` was asked. */
  created: VersionDetail | null;
}

function majorOf(ecosystem: Ecosystem, version: string): number | undefined {
  if (ecosystem === 'pypi') return pep440.major(version) ?? undefined;
  const core = /^(\d+)/.exec(version);
  return core ? Number(core[1]) : undefined;
}

/** The next patch number after `version` that the server has not used. */
function nextFreePatch(version: string, taken: Set<string>): string {
  let next = semver.inc(version, 'patch') as string;
  while (taken.has(next)) next = semver.inc(next, 'patch') as string;
  return next;
}

async function affectedEntries(db: Db, ecosystem: Ecosystem, name: string, ids: string[]) {
  const rows = await db.query<{ advisory_id: string; affected: OsvAffected[] }>(
    'SELECT advisory_id, affected FROM advisory_packages WHERE ecosystem = $1 AND name = $2 AND advisory_id = ANY($3)',
    [ecosystem, normaliseName(ecosystem, name), ids],
  );
  return rows;
}

/** Proposes (and with `create`, creates in development status) the security patch of a version. */
export async function proposePatch(
  db: Db,
  ctx: Context,
  serverSlug: string,
  version: string,
  options: { create?: boolean | undefined } = {},
): Promise<PatchProposal> {
  assertPermission(ctx.principal, options.create ? 'write' : 'read');
  const report = await versionVulnerabilities(db, ctx.principal, serverSlug, version);
  const server = await findServer(db, ctx.principal, serverSlug);
  const row = await findVersion(db, server, version);
  const taken = new Set(
    (
      await db.query<{ version: string }>('SELECT version FROM versions WHERE server_id = $1', [server.id])
    ).map((v) => v.version),
  );

  const byPackage = new Map<string, Finding[]>();
  for (const f of report.findings) {
    const key = `${f.package.registryType}\u0000${f.package.identifier}\u0000${f.package.version}`;
    byPackage.set(key, [...(byPackage.get(key) ?? []), f]);
  }
  const upgrades: PackageUpgrade[] = [];
  const unfixed: Unfixed[] = [];
  for (const findings of byPackage.values()) {
    const { registryType, identifier, version: installed } = (findings[0] as Finding).package;
    if (!isEcosystem(registryType)) continue;
    const order = ORDERINGS[registryType];
    const major = majorOf(registryType, installed);
    const entries = await affectedEntries(
      db,
      registryType,
      identifier,
      findings.map((f) => f.advisory.id),
    );
    // Candidates: every fixed version above the installed one in the same major line, lowest first.
    const candidates = [...new Set(findings.flatMap((f) => f.fixed))]
      .filter((v) => order.valid(v) && order.compare(v, installed) > 0 && majorOf(registryType, v) === major)
      .sort(order.compare);
    const target = candidates.find((v) =>
      entries.every((e) => !e.affected.some((a) => isAffected(registryType, a, v))),
    );
    if (target) {
      upgrades.push({
        registryType,
        identifier,
        from: installed,
        to: target,
        fixes: findings.map((f) => f.advisory.id),
      });
      continue;
    }
    for (const f of findings) {
      const above = f.fixed
        .filter((v) => order.valid(v) && order.compare(v, installed) > 0)
        .sort(order.compare);
      unfixed.push({
        registryType,
        identifier,
        version: installed,
        advisory: f.advisory.id,
        reason:
          f.fixed.length === 0
            ? 'no fixed version is published'
            : above.length === 0
              ? `fixed only below ${installed} (${f.fixed.join(', ')})`
              : above.some((v) => majorOf(registryType, v) === major)
                ? `no single ${major}.x version fixes every advisory of ${identifier}`
                : `the fix needs a major bump (${above[0]})`,
      });
    }
  }

  const next = nextFreePatch(row.version.split('+')[0] as string, taken);
  const lines = upgrades.flatMap((u) =>
    u.fixes.map((id) => {
      const f = report.findings.find((x) => x.advisory.id === id);
      return `- ${id}${f?.advisory.aliases.length ? ` (${f.advisory.aliases.join(', ')})` : ''}: ${u.identifier} ${u.from} → ${u.to}${f ? ` — ${f.advisory.summary}` : ''}`;
    }),
  );
  const releaseNotes = [
    `Security patch of ${version}.`,
    '',
    lines.length ? 'Fixes:' : 'No finding could be fixed by a patch-level upgrade.',
    ...lines,
    ...(unfixed.length
      ? [
          '',
          'Not fixed here:',
          ...unfixed.map((u) => `- ${u.advisory}: ${u.identifier} ${u.version}: ${u.reason}`),
        ]
      : []),
  ].join('\n');

  let created: VersionDetail | null = null;
  if (options.create && upgrades.length > 0) {
    const packages = (row.config.packages ?? []).map((p: Package) => {
      const u = upgrades.find(
        (x) => x.registryType === p.registryType && x.identifier === p.identifier && x.from === p.version,
      );
      return u ? { ...p, version: u.to } : p;
    });
    created = await createVersion(db, ctx, serverSlug, {
      version: next,
      from: row.version,
      packages,
      status: 'development',
      releaseNotes,
    });
  }
  return { server: serverSlug, from: row.version, version: next, upgrades, unfixed, releaseNotes, created };
}
