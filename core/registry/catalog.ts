import semver from 'semver';
import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import type { Status } from './lifecycle.ts';
import { sortDescending } from './semver-policy.ts';
import { toServerView, type ServerRow, type ServerView } from './servers.ts';

export interface RegistryEntry {
  server: ServerView;
  latestStable: string | null;
  latestPrerelease: string | null;
  versions: number;
  statuses: Partial<Record<Status, number>>;
}

/**
 * The org's registry: every server with its latest stable and latest pre-release version
 * (a pre-release newer than the latest stable, as a release manager would want to know about).
 */
export async function registryOverview(
  db: Queryable,
  principal: Principal,
  options: { includeArchived?: boolean } = {},
): Promise<RegistryEntry[]> {
  const servers = await db.query<ServerRow>(
    `SELECT * FROM servers WHERE org_id = $1 ${options.includeArchived ? '' : 'AND archived_at IS NULL'}
       AND ($2::text[] IS NULL OR slug = ANY($2)) ORDER BY slug`,
    [principal.orgId, principal.servers],
  );
  const versions = await db.query<{
    server_id: string;
    version: string;
    status: Status;
    prerelease: boolean;
  }>('SELECT server_id, version, status, prerelease FROM versions WHERE org_id = $1', [principal.orgId]);
  return servers.map((server) => {
    const own = sortDescending(
      versions.filter((v) => v.server_id === server.id),
      (v) => v.version,
    );
    const latestStable = own.find((v) => v.status === 'stable')?.version ?? null;
    // `own` is highest first, so the first active pre-release is the only candidate: news only when newer.
    const prerelease = own.find((v) => v.prerelease && v.status !== 'retired' && v.status !== 'deprecated');
    const latestPrerelease =
      prerelease && (latestStable === null || semver.gt(prerelease.version, latestStable))
        ? prerelease.version
        : null;
    const statuses: Partial<Record<Status, number>> = {};
    for (const v of own) statuses[v.status] = (statuses[v.status] ?? 0) + 1;
    return {
      server: toServerView(server, principal.orgSlug),
      latestStable,
      latestPrerelease,
      versions: own.length,
      statuses,
    };
  });
}

export interface PackageUse {
  server: string;
  version: string;
  status: Status;
  registryType: string;
  identifier: string;
  packageVersion: string;
}

/** Which versions reference a package (optionally at one package version): "where is this used". */
export async function packageUsage(
  db: Queryable,
  principal: Principal,
  query: { registryType: string; identifier: string; version?: string | undefined },
): Promise<PackageUse[]> {
  const rows = await db.query<{
    slug: string;
    version: string;
    status: Status;
    registry_type: string;
    identifier: string;
    package_version: string;
  }>(
    `SELECT s.slug, v.version, v.status, p.registry_type, p.identifier, p.package_version
       FROM version_packages p JOIN versions v ON v.id = p.version_id JOIN servers s ON s.id = v.server_id
      WHERE p.org_id = $1 AND p.registry_type = $2 AND p.identifier = $3
        AND ($4::text IS NULL OR p.package_version = $4)
        AND ($5::text[] IS NULL OR s.slug = ANY($5))
      ORDER BY s.slug`,
    [principal.orgId, query.registryType, query.identifier, query.version ?? null, principal.servers],
  );
  const uses = rows.map((r) => ({
    server: r.slug,
    version: r.version,
    status: r.status,
    registryType: r.registry_type,
    identifier: r.identifier,
    packageVersion: r.package_version,
  }));
  // Per server, highest version first.
  return uses.sort((a, b) =>
    a.server < b.server ? -1 : a.server > b.server ? 1 : semver.rcompare(a.version, b.version),
  );
}
