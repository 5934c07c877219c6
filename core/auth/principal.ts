import { ForbiddenError, NotFoundError } from '../errors.ts';

/**
 * What a token may do. `connect` lets MCP clients through the gateway (see {@link assertConnect})
 * and nothing else: it does not include `read`, and `read`, `write` and `deploy` do not include it.
 */
export const PERMISSIONS = ['read', 'write', 'deploy', 'connect', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Who is acting: the token a request carried, or Pylee itself (bootstrap, schedulers). */
export interface Principal {
  orgId: string;
  orgSlug: string;
  tokenId: string | null;
  tokenName: string;
  permissions: Permission[];
  /** `null`: every server of the org; otherwise only these server slugs. */
  servers: string[] | null;
  /**
   * Deploy actions and gateway connections: `null`/absent: every environment; otherwise only these
   * environment names.
   */
  environments?: string[] | null;
}

/** Where a change came from, recorded with it in the audit trail. */
export interface RequestMeta {
  requestId?: string | undefined;
  clientAddress?: string | undefined;
}

export interface Context extends RequestMeta {
  principal: Principal;
}

/** `admin` holds every permission; `write` and `deploy` each include `read`; `connect` includes nothing else. */
export function hasPermission(principal: Pick<Principal, 'permissions'>, needed: Permission): boolean {
  const held = principal.permissions;
  if (held.includes('admin') || held.includes(needed)) return true;
  return needed === 'read' && (held.includes('write') || held.includes('deploy'));
}

export function assertPermission(principal: Principal, needed: Permission): void {
  if (!hasPermission(principal, needed)) {
    throw new ForbiddenError(
      `this token (${principal.tokenName}) lacks the ${needed} permission; ask an admin of @${principal.orgSlug} for a token that has it`,
      'missing-permission',
    );
  }
}

/**
 * A token limited to named servers sees the others as if they did not exist (404), so it cannot
 * probe which slugs are taken.
 */
export function assertServerAccess(principal: Principal, server: string): void {
  if (principal.servers !== null && !principal.servers.includes(server)) {
    throw new NotFoundError(`server ${server} was not found in @${principal.orgSlug}`, 'server-not-found');
  }
}

function assertEnvironment(principal: Principal, environment: string, action: 'deploy' | 'connect'): void {
  const allowed = principal.environments;
  if (allowed && !allowed.includes(environment)) {
    throw new ForbiddenError(
      `this token (${principal.tokenName}) may ${action} only to ${allowed.join(', ')}, not ${environment}; ask an admin of @${principal.orgSlug} for a token that includes ${environment}`,
      'environment-not-permitted',
    );
  }
}

/**
 * A token limited to named environments may deploy (and promote, roll back…) only there. Unlike
 * servers, environments are not hidden: the refusal names the environment and the token's list.
 */
export function assertEnvironmentAccess(principal: Principal, environment: string): void {
  assertEnvironment(principal, environment, 'deploy');
}

/**
 * May this token connect an MCP client to `server` in `environment` through the gateway? A token
 * limited to other servers sees the server as absent (404 `server-not-found`); one without the
 * `connect` permission gets 403 `missing-permission`; one whose `environments` list leaves out
 * `environment` gets 403 `environment-not-permitted` (the list limits connections as it limits
 * deploys, admins' tokens included).
 */
export function assertConnect(principal: Principal, server: string, environment: string): void {
  assertServerAccess(principal, server);
  assertPermission(principal, 'connect');
  assertEnvironment(principal, environment, 'connect');
}

/** Normalises a permission list: sorted, unique, with `admin` standing alone. */
export function normalisePermissions(permissions: readonly Permission[]): Permission[] {
  if (permissions.includes('admin')) return ['admin'];
  return PERMISSIONS.filter((p) => permissions.includes(p));
}
