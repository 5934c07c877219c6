/**
 * What the gateway needs to know about a server, read from the control plane: which versions get
 * which share of new sessions in each environment (the deployments' live desired state), who may
 * connect there, what becomes of the live sessions of a version that lost its traffic, and, per
 * version and environment, the upstream to forward to (the version's remote with its variables,
 * headers and secrets filled in for that environment).
 */
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Queryable } from '../db/client.ts';
import { listEnvironmentRows } from '../deploy/environments.ts';
import type { SessionPolicy } from '../deploy/records.ts';
import { desiredState, type VersionWeight } from '../deploy/releases.ts';
import { applyValues, type VersionConfig } from '../registry/server-json.ts';
import { resolveVariables } from '../registry/variables.ts';
import { accessModes, type AccessMode } from './access.ts';

export interface EnvironmentRouting {
  name: string;
  /** The share of new sessions each version gets; empty when nothing runs here. */
  weights: VersionWeight[];
  access: AccessMode;
  /** What becomes of the live sessions of each version that lost its traffic here. */
  lost: Record<string, SessionPolicy>;
}

export interface ServerRouting {
  orgId: string;
  orgSlug: string;
  serverId: string;
  server: string;
  archived: boolean;
  environments: Map<string, EnvironmentRouting>;
  /** Every version of the server, by version string. */
  versions: Map<string, { id: string; status: string }>;
}

/** The routing of `@org/server`, or undefined when there is no such org or server. */
export async function loadServerRouting(
  db: Queryable,
  orgSlug: string,
  serverSlug: string,
): Promise<ServerRouting | undefined> {
  const [server] = await db.query<{ org_id: string; id: string; archived_at: Date | null }>(
    `SELECT s.org_id, s.id, s.archived_at FROM servers s JOIN orgs o ON o.id = s.org_id
     WHERE o.slug = $1 AND s.slug = $2`,
    [orgSlug, serverSlug],
  );
  if (!server) return undefined;
  const [desired, envRows, access, versions, deployments] = await Promise.all([
    desiredState(db, server.org_id, server.id),
    listEnvironmentRows(db, server.org_id),
    accessModes(db, server.id),
    db.query<{ id: string; version: string; status: string }>(
      'SELECT id, version, status FROM versions WHERE server_id = $1',
      [server.id],
    ),
    db.query<DeploymentHistoryRow>(
      `SELECT d.version, d.kind, d.status, d.sessions, d.previous_version, e.name AS environment,
              rb.version AS rolled_back_version
       FROM deployments d
       JOIN environments e ON e.id = d.current_environment_id
       LEFT JOIN deployments rb ON rb.id = d.rollback_of
       WHERE d.server_id = $1 ORDER BY d.updated_at DESC, d.id DESC LIMIT 200`,
      [server.id],
    ),
  ]);
  const environments = new Map<string, EnvironmentRouting>();
  for (const env of envRows) {
    const weights = desired[env.name] ?? [];
    environments.set(env.name, {
      name: env.name,
      weights,
      access: access[env.name] ?? 'pylee',
      lost: lostVersions(
        deployments.filter((d) => d.environment === env.name),
        weights,
      ),
    });
  }
  return {
    orgId: server.org_id,
    orgSlug,
    serverId: server.id,
    server: serverSlug,
    archived: server.archived_at !== null,
    environments,
    versions: new Map(versions.map((v) => [v.version, { id: v.id, status: v.status }])),
  };
}

export interface DeploymentHistoryRow {
  version: string;
  kind: string;
  status: string;
  sessions: SessionPolicy;
  previous_version: string | null;
  environment: string;
  rolled_back_version: string | null;
}

const LOSSES = new Set(['aborted', 'rolled-back', 'failed']);

/**
 * For each version that once ran in an environment and has no weight there now, what its live
 * sessions do, decided by the latest deployment there that involved it (`history` newest first):
 * the version's own rollout aborted, failed or rolled back, or a rollback away from it → that
 * deployment's session policy; anything else (another version promoted over it) → `drain`.
 */
export function lostVersions(
  history: readonly DeploymentHistoryRow[],
  weights: readonly VersionWeight[],
): Record<string, SessionPolicy> {
  const live = new Set(weights.filter((w) => w.weight > 0).map((w) => w.version));
  const out: Record<string, SessionPolicy> = {};
  for (const d of history) {
    const involved = [d.version, d.previous_version, d.rolled_back_version].filter(
      (v): v is string => v !== null,
    );
    for (const version of involved) {
      if (live.has(version) || version in out) continue;
      const lostByThis =
        (d.version === version && LOSSES.has(d.status)) || (d.kind === 'rollback' && d.version !== version);
      out[version] = lostByThis ? d.sessions : 'drain';
    }
  }
  return out;
}

/** Where the gateway forwards a version's sessions in one environment. */
export interface Upstream {
  version: string;
  transport: 'streamable-http' | 'sse';
  url: string;
  /** From the remote's configuration, variables and secrets filled in. */
  headers: Record<string, string>;
}

/** Why a version cannot be reached through the gateway; a sentence, safe to show the client's owner. */
export interface NoUpstream {
  problem: string;
}

/**
 * The upstream of `version` in `environment` (null: a pinned version, resolved without an
 * environment's variables): its first remote of `transport` (`streamable-http` preferred when not
 * given), with variables and secrets resolved as a deployment there would run with them.
 */
export async function resolveUpstream(
  db: Queryable,
  box: SecretBox,
  routing: Pick<ServerRouting, 'orgId' | 'serverId' | 'server'>,
  version: { id: string; version: string },
  environment: string | null,
  transport?: 'streamable-http' | 'sse',
): Promise<Upstream | NoUpstream> {
  const [row] = await db.query<{ config: VersionConfig }>(
    'SELECT config FROM versions WHERE id = $1 AND server_id = $2',
    [version.id, routing.serverId],
  );
  if (!row) return { problem: `version ${version.version} of ${routing.server} was not found` };
  const variables = await resolveVariables(db, box, routing.orgId, {
    serverId: routing.serverId,
    versionId: version.id,
    environment: environment ?? undefined,
  });
  const values = Object.fromEntries(Object.entries(variables).map(([name, v]) => [name, v.value]));
  const config = applyValues(row.config, values);
  return upstreamOf(config, version.version, transport);
}

/** The remote of a resolved configuration the gateway forwards to; pure. */
export function upstreamOf(
  config: Pick<VersionConfig, 'remotes'>,
  version: string,
  transport?: 'streamable-http' | 'sse',
): Upstream | NoUpstream {
  const remotes = config.remotes ?? [];
  const remote = transport
    ? remotes.find((r) => r.type === transport)
    : (remotes.find((r) => r.type === 'streamable-http') ?? remotes.find((r) => r.type === 'sse'));
  if (!remote) {
    const what = transport ? `remote of type ${transport}` : 'remote';
    return {
      problem: `version ${version} has no ${what} in its configuration, so the gateway cannot reach it`,
    };
  }
  const unfilled = /\{([^{}\s]+)\}/.exec(remote.url)?.[1];
  if (unfilled !== undefined) {
    return {
      problem: `version ${version}'s remote needs the variable ${unfilled}, which nothing sets for this environment`,
    };
  }
  let url: URL;
  try {
    url = new URL(remote.url);
  } catch {
    return { problem: `version ${version}'s remote is not a URL once its variables are filled in` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { problem: `version ${version}'s remote is not an http(s) URL` };
  }
  const headers: Record<string, string> = {};
  for (const h of remote.headers ?? []) if (h.value !== undefined) headers[h.name.toLowerCase()] = h.value;
  return { version, transport: remote.type, url: url.toString(), headers };
}
