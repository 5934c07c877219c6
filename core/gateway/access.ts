/**
 * Who may connect MCP clients through the gateway, per server and environment (issue 14, point 7):
 * - `pylee` (the default): the client presents a Pylee token with the `connect` permission
 *   (see `assertConnect`), which the gateway strips before adding the upstream's own headers;
 * - `passthrough`: the client's Authorization goes to the upstream untouched (servers that do their
 *   own OAuth), and is never logged;
 * - `public`: anyone may connect; only ever set explicitly, and audited like every change.
 */
import { appendAudit } from '../audit/log.ts';
import { assertPermission, type Context, type Principal } from '../auth/principal.ts';
import type { Config } from '../config.ts';
import type { Db, Queryable } from '../db/client.ts';
import { findEnvironment, listEnvironmentRows } from '../deploy/environments.ts';
import { BadRequestError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { clientSnippets, type ClientSnippets } from './client-config.ts';
import { emptyLiveSplit, liveSplit, type LiveSplit } from './live-split.ts';

import { ACCESS_MODES, DEFAULT_ACCESS_MODE, isAccessMode, type AccessMode } from './access-mode.ts';

export { ACCESS_MODES, DEFAULT_ACCESS_MODE, isAccessMode, type AccessMode } from './access-mode.ts';

/**
 * The access modes set explicitly for a server, by environment name; an environment that is absent
 * uses {@link DEFAULT_ACCESS_MODE}.
 */
export async function accessModes(db: Queryable, serverId: string): Promise<Record<string, AccessMode>> {
  const rows = await db.query<{ environment: string; access: AccessMode }>(
    'SELECT environment, access FROM gateway_access WHERE server_id = $1 ORDER BY environment',
    [serverId],
  );
  return Object.fromEntries(rows.map((r) => [r.environment, r.access]));
}

/** The access mode of one server in one environment, the default when none is set. */
export async function accessModeOf(
  db: Queryable,
  serverId: string,
  environment: string,
): Promise<AccessMode> {
  const [row] = await db.query<{ access: AccessMode }>(
    'SELECT access FROM gateway_access WHERE server_id = $1 AND environment = $2',
    [serverId, environment],
  );
  return row?.access ?? DEFAULT_ACCESS_MODE;
}

/**
 * Sets who may connect to `serverSlug` in `environment` (admin). Setting the mode already in force
 * changes nothing and records nothing; every other change is audited as `gateway.access.set` with
 * the mode before and after.
 */
export function setAccessMode(
  db: Db,
  ctx: Context,
  serverSlug: string,
  environment: string,
  access: AccessMode,
): Promise<{ environment: string; access: AccessMode }> {
  const { principal } = ctx;
  assertPermission(principal, 'admin');
  if (!isAccessMode(access)) {
    throw new BadRequestError(
      `access ${JSON.stringify(access)} is not one of ${ACCESS_MODES.join(', ')}`,
      'invalid-access-mode',
    );
  }
  return db.transaction(async (tx) => {
    // Locked: two changes of one server's access are recorded in the order they happen.
    const server = await findServer(tx, principal, serverSlug, { forUpdate: true });
    await findEnvironment(tx, principal, environment);
    const before = await accessModeOf(tx, server.id, environment);
    if (before === access) return { environment, access };
    await tx.query(
      `INSERT INTO gateway_access (org_id, server_id, environment, access, updated_by)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (server_id, environment)
       DO UPDATE SET access = EXCLUDED.access, updated_at = now(), updated_by = EXCLUDED.updated_by`,
      [principal.orgId, server.id, environment, access, principal.tokenName],
    );
    await appendAudit(tx, ctx, {
      action: 'gateway.access.set',
      target: { type: 'server', id: server.id, name: server.slug },
      before: { environment, access: before },
      after: { environment, access },
    });
    return { environment, access };
  });
}

/**
 * Where MCP clients reach the gateway: `PYLEE_GATEWAY_URL`, else `http://<PYLEE_HOST>:<PYLEE_GATEWAY_PORT>`
 * (defaults 127.0.0.1 and 8081), without a trailing slash.
 */
export function gatewayBaseUrl(config: Partial<Pick<Config, 'gatewayUrl' | 'gatewayPort' | 'host'>>): string {
  if (config.gatewayUrl) return config.gatewayUrl.replace(/\/+$/, '');
  const host = config.host ?? '127.0.0.1';
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${shown}:${config.gatewayPort ?? 8081}`;
}

/** The gateway endpoints of one server in one environment: streamable HTTP and the older HTTP+SSE. */
export function gatewayUrls(base: string, org: string, server: string, environment: string) {
  const prefix = `${base}/${encodeURIComponent(org)}/${encodeURIComponent(server)}/${encodeURIComponent(environment)}`;
  return { url: `${prefix}/mcp`, sseUrl: `${prefix}/sse` };
}

export interface GatewayEndpoint {
  environment: string;
  access: AccessMode;
  /** Streamable HTTP. */
  url: string;
  /** The older HTTP+SSE transport. */
  sseUrl: string;
  /** MCP client configurations for {@link url}, ready to paste. */
  snippets: ClientSnippets;
  /**
   * Sessions and requests per version through the gateway in the last minutes; null when the
   * warehouse was not asked or did not answer.
   */
  live: LiveSplit | null;
}

export interface GatewayEndpoints {
  /** Every environment of the org, in pipeline order. */
  environments: GatewayEndpoint[];
  /** The endpoint pinned to one version: `{version}` stands for it. */
  pinnedUrlTemplate: string;
}

/**
 * How MCP clients connect to a server through the gateway, per environment, who may, and, given
 * the warehouse, the live split of its sessions per version. The endpoints do not depend on the
 * warehouse: when it fails, `onLiveError` hears why and every `live` is null.
 */
export async function gatewayEndpoints(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  base: string,
  options: { warehouse?: Warehouse; onLiveError?: (error: unknown) => void; now?: number } = {},
): Promise<GatewayEndpoints> {
  const server = await findServer(db, principal, serverSlug);
  const { warehouse } = options;
  const [modes, environments, live] = await Promise.all([
    accessModes(db, server.id),
    listEnvironmentRows(db, principal.orgId),
    warehouse
      ? liveSplit(warehouse, { orgId: principal.orgId, server: server.slug, now: options.now }).catch(
          (error: unknown) => {
            options.onLiveError?.(error);
            return null;
          },
        )
      : null,
  ]);
  const org = encodeURIComponent(principal.orgSlug);
  return {
    environments: environments.map((env) => {
      const access = modes[env.name] ?? DEFAULT_ACCESS_MODE;
      const urls = gatewayUrls(base, principal.orgSlug, server.slug, env.name);
      return {
        environment: env.name,
        access,
        ...urls,
        snippets: clientSnippets(server.slug, urls.url, access),
        live: live ? (live.get(env.name) ?? emptyLiveSplit()) : null,
      };
    }),
    pinnedUrlTemplate: `${base}/${org}/${encodeURIComponent(server.slug)}@{version}/mcp`,
  };
}
