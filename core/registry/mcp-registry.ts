/**
 * Pylee as an MCP sub-registry: the generic MCP Registry API (`modelcontextprotocol/registry`,
 * `docs/reference/api/openapi.yaml`, 2025-12-01) over Pylee's servers and versions.
 *
 * - Names: server `@org/slug` is `dev.pylee.<org>/<slug>` (see {@link registryName}); org and server
 *   slugs never contain a dot or a slash, so the mapping is one-to-one.
 * - Each entry is a version: `server` is its server.json, `_meta` carries the official
 *   `io.modelcontextprotocol.registry/official` fields and Pylee's own `dev.pylee/registry`
 *   (lifecycle, deprecation, what runs where, gateway endpoints).
 * - Readers: a token with `read` reads its own org; without a token, the orgs whose admins made
 *   their registry public.
 */
import semver from 'semver';
import { appendAudit } from '../audit/log.ts';
import { assertPermission, type Context, type Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { listEnvironmentRows } from '../deploy/environments.ts';
import { desiredState, type VersionWeight } from '../deploy/releases.ts';
import { AppError, BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { accessModeOf, gatewayUrls, type AccessMode } from '../gateway/access.ts';
import { SLUG_PATTERN } from '../slug.ts';
import type { Status } from './lifecycle.ts';
import { parseVersion } from './semver-policy.ts';
import {
  fromServerJson,
  toServerJson,
  type Remote,
  type ServerJson,
  type VersionConfig,
} from './server-json.ts';
import { createServer } from './servers.ts';
import {
  createVersion,
  updateVersion,
  type Deprecation,
  type VersionPatch,
  type VersionRow,
} from './versions.ts';

/** The reverse-DNS namespace of every Pylee server name: `dev.pylee.<org>/<slug>`. */
export const NAMESPACE = 'dev.pylee';
/** The official registry's `_meta` key. */
export const OFFICIAL_META = 'io.modelcontextprotocol.registry/official';
/** Pylee's own `_meta` key on every entry. */
export const PYLEE_META = 'dev.pylee/registry';
export const DEFAULT_LIMIT = 30;
export const MAX_LIMIT = 100;

const SLUG = new RegExp(SLUG_PATTERN);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_DESCRIPTION = 100;
const MAX_TITLE = 100;
const MAX_STATUS_MESSAGE = 500;
/** The registry name in SQL, byte-ordered so pages and cursors agree on every driver. */
const NAME_SQL = `('${NAMESPACE}.' || o.slug || '/' || s.slug) COLLATE "C"`;

/** The MCP registry name of server `@org/slug`. */
export function registryName(org: string, slug: string): string {
  return `${NAMESPACE}.${org}/${slug}`;
}

/** The org and server slug a registry name stands for, or undefined if it is not a Pylee name. */
export function parseRegistryName(name: string): { org: string; slug: string } | undefined {
  const match = /^dev\.pylee\.([^/]+)\/([^/]+)$/.exec(name);
  const [, org, slug] = match ?? [];
  if (!org || !slug || !SLUG.test(org) || !SLUG.test(slug)) return undefined;
  return { org, slug };
}

/** A page boundary: the last (name, version id) a page held. Opaque to clients. */
export function encodeCursor(name: string, id: string): string {
  return Buffer.from(JSON.stringify([name, id])).toString('base64url');
}

export function decodeCursor(cursor: string): { name: string; id: string } {
  let parsed: unknown;
  try {
    parsed = /^[A-Za-z0-9_-]+$/.test(cursor)
      ? JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
      : undefined;
  } catch {
    parsed = undefined;
  }
  if (
    Array.isArray(parsed) &&
    parsed.length === 2 &&
    typeof parsed[0] === 'string' &&
    parseRegistryName(parsed[0]) &&
    typeof parsed[1] === 'string' &&
    UUID.test(parsed[1])
  ) {
    return { name: parsed[0], id: parsed[1] };
  }
  throw new BadRequestError(
    'cursor is not one this registry gave out: pass metadata.nextCursor of the previous page unchanged, or leave cursor out for the first page',
    'invalid-cursor',
  );
}

export type OfficialStatus = 'active' | 'deprecated' | 'deleted';

/** Pylee's lifecycle in the official registry's three words: retired versions are `deleted`. */
export function officialStatus(status: Status): OfficialStatus {
  if (status === 'retired') return 'deleted';
  return status === 'deprecated' ? 'deprecated' : 'active';
}

export interface OfficialMeta {
  status: OfficialStatus;
  statusMessage?: string;
  statusChangedAt?: string;
  publishedAt: string;
  updatedAt: string;
  isLatest: boolean;
}

export interface PyleeMeta {
  /** How Pylee shows the server: `@org/slug`. */
  server: string;
  /** Pylee's lifecycle status (development, release-candidate, stable, deprecated, retired). */
  status: Status;
  prerelease: boolean;
  releasedAt: string | null;
  deprecation: Deprecation | null;
  /** The environments this version gets traffic in, with its weight there. */
  runsIn: { environment: string; weight: number }[];
  /** What runs where for the whole server: per environment in pipeline order, versions and weights. */
  environments: { environment: string; versions: VersionWeight[] }[];
  /** Gateway endpoints; null when the API does not know a gateway. */
  gateway: { environment: string | null; url: string | null; pinnedUrl: string } | null;
}

export interface ServerResponse {
  server: ServerJson;
  _meta: { [OFFICIAL_META]: OfficialMeta; [PYLEE_META]: PyleeMeta };
}

export interface ServerList {
  servers: ServerResponse[];
  metadata: { count: number; nextCursor?: string };
}

export interface ListQuery {
  cursor?: string | undefined;
  limit?: number | undefined;
  search?: string | undefined;
  updated_since?: string | undefined;
  version?: string | undefined;
  include_deleted?: boolean | undefined;
}

/** Where the gateway is, when the API knows it. */
export interface RegistryOptions {
  gatewayBase?: string | undefined;
}

interface EntryRow extends VersionRow {
  server_slug: string;
  server_name: string;
  server_description: string;
  org_slug: string;
  registry_name: string;
}

interface OrgScope {
  id: string;
  slug: string;
}

const ENTRY_SELECT = `SELECT v.*, s.slug AS server_slug, s.name AS server_name, s.description AS server_description,
    o.slug AS org_slug, ${NAME_SQL} AS registry_name
  FROM versions v JOIN servers s ON s.id = v.server_id JOIN orgs o ON o.id = s.org_id`;

const notFound = (name: string) =>
  new NotFoundError(
    `server ${name} was not found; names in this registry are ${NAMESPACE}.<org>/<server>`,
    'server-not-found',
  );

const tokenNeeded = (what: string) =>
  new UnauthorizedError(
    `${what} is not public: send Authorization: Bearer <a Pylee token with the read permission>`,
    'missing-token',
  );

/** The orgs a reader lists: the token's org, or without a token every org with a public registry. */
async function readableOrgs(db: Queryable, reader: Principal | null): Promise<OrgScope[]> {
  if (reader) {
    assertPermission(reader, 'read');
    return [{ id: reader.orgId, slug: reader.orgSlug }];
  }
  const orgs = await db.query<OrgScope>('SELECT id, slug FROM orgs WHERE registry_public ORDER BY slug');
  if (orgs.length === 0) throw tokenNeeded('this registry');
  return orgs;
}

/**
 * The server a registry name stands for, as the reader may see it. Another org's server, one
 * outside a limited token's servers, an archived one and a missing one are the same 404; without a
 * token, a name in an org whose registry is not public (or that does not exist) is a 401.
 */
async function resolveServer(db: Queryable, reader: Principal | null, name: string) {
  const ref = parseRegistryName(name);
  if (!ref) throw notFound(name);
  if (reader) {
    assertPermission(reader, 'read');
    if (ref.org !== reader.orgSlug || (reader.servers !== null && !reader.servers.includes(ref.slug)))
      throw notFound(name);
  }
  const [server] = await db.query<{ id: string; org_id: string; slug: string }>(
    `SELECT s.id, s.org_id, s.slug FROM servers s JOIN orgs o ON o.id = s.org_id
     WHERE o.slug = $1 AND s.slug = $2 AND s.archived_at IS NULL AND ($3 OR o.registry_public)`,
    [ref.org, ref.slug, reader !== null],
  );
  if (!server && !reader) {
    const [org] = await db.query('SELECT 1 FROM orgs WHERE slug = $1 AND registry_public', [ref.org]);
    if (!org) throw tokenNeeded(`the registry of @${ref.org}`);
  }
  if (!server) throw notFound(name);
  return server;
}

/** Latest: the highest stable version; without one the highest active one, then the highest deprecated one. */
export function pickLatest<T extends { version: string; status: Status }>(rows: readonly T[]): T | undefined {
  const highest = (pick: (s: Status) => boolean) =>
    rows.filter((r) => pick(r.status)).sort((a, b) => semver.rcompare(a.version, b.version))[0];
  return (
    highest((s) => s === 'stable') ??
    highest((s) => s === 'development' || s === 'release-candidate') ??
    highest((s) => s === 'deprecated')
  );
}

const clip = (text: string, max: number) => {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
};

interface ServerFacts {
  latestId: string | undefined;
  desired: Record<string, VersionWeight[]>;
  environments: string[];
  production: string | undefined;
  access: AccessMode | undefined;
}

/** What every entry of a server shares: its latest version, what runs where, who may connect. */
async function serverFacts(db: Queryable, rows: readonly EntryRow[]): Promise<Map<string, ServerFacts>> {
  const serverIds = [...new Set(rows.map((r) => r.server_id))];
  const all = await db.query<{ id: string; server_id: string; version: string; status: Status }>(
    'SELECT id, server_id, version, status FROM versions WHERE server_id = ANY($1::uuid[])',
    [serverIds],
  );
  const envsByOrg = new Map<string, string[]>();
  const facts = new Map<string, ServerFacts>();
  for (const serverId of serverIds) {
    const orgId = rows.find((r) => r.server_id === serverId)?.org_id as string;
    let environments = envsByOrg.get(orgId);
    if (!environments) {
      environments = (await listEnvironmentRows(db, orgId)).map((e) => e.name);
      envsByOrg.set(orgId, environments);
    }
    // The org's production environment: the one named so, else the last of the pipeline.
    const production = environments.includes('production') ? 'production' : environments.at(-1);
    facts.set(serverId, {
      latestId: pickLatest(all.filter((v) => v.server_id === serverId))?.id,
      desired: await desiredState(db, orgId, serverId),
      environments,
      production,
      access: production ? await accessModeOf(db, serverId, production) : undefined,
    });
  }
  return facts;
}

/** The gateway's production endpoint as a server.json remote, with the token it asks for. */
function gatewayRemote(url: string, access: AccessMode | undefined): Remote {
  const remote: Remote = { type: 'streamable-http', url };
  if (access === 'pylee' || access === undefined) {
    remote.headers = [
      {
        name: 'Authorization',
        description: 'A Pylee token with the connect permission',
        isRequired: true,
        isSecret: true,
        value: 'Bearer {token}',
        variables: { token: { description: 'Pylee token (pyl_…)', isRequired: true, isSecret: true } },
      },
    ];
  }
  return remote;
}

function toEntry(
  row: EntryRow,
  facts: ServerFacts,
  statusChangedAt: Date | undefined,
  options: RegistryOptions,
): ServerResponse {
  const config: VersionConfig = {
    ...row.config,
    remotes: row.config.remotes ?? [],
    packages: row.config.packages ?? [],
  };
  const title = (config.title ?? row.server_name).trim();
  if (title) config.title = clip(title, MAX_TITLE);
  const description = (row.server_description.trim() || row.server_name.trim() || row.server_slug).replace(
    /\s+/g,
    ' ',
  );
  const runsIn = Object.entries(facts.desired).flatMap(([environment, weights]) =>
    weights
      .filter((w) => w.version === row.version && w.weight > 0)
      .map((w) => ({ environment, weight: w.weight })),
  );
  const base = options.gatewayBase;
  const productionUrl =
    base && facts.production ? gatewayUrls(base, row.org_slug, row.server_slug, facts.production).url : null;
  // Through the gateway only where this version serves production, and only if it has a remote to reach.
  if (productionUrl && config.remotes.length > 0 && runsIn.some((r) => r.environment === facts.production)) {
    config.remotes = [gatewayRemote(productionUrl, facts.access), ...config.remotes];
  }
  const official: OfficialMeta = {
    status: officialStatus(row.status),
    publishedAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    isLatest: facts.latestId === row.id,
  };
  if (row.deprecation?.message && row.status !== 'retired')
    official.statusMessage = clip(row.deprecation.message, MAX_STATUS_MESSAGE);
  if (statusChangedAt) official.statusChangedAt = statusChangedAt.toISOString();
  return {
    server: toServerJson({
      name: row.registry_name,
      description: clip(description, MAX_DESCRIPTION),
      version: row.version,
      config,
    }),
    _meta: {
      [OFFICIAL_META]: official,
      [PYLEE_META]: {
        server: `@${row.org_slug}/${row.server_slug}`,
        status: row.status,
        prerelease: row.prerelease,
        releasedAt: row.released_at?.toISOString() ?? null,
        deprecation: row.deprecation,
        runsIn,
        environments: facts.environments.map((environment) => ({
          environment,
          versions: facts.desired[environment] ?? [],
        })),
        gateway: base
          ? {
              environment: facts.production ?? null,
              url: productionUrl,
              pinnedUrl: `${base}/${encodeURIComponent(row.org_slug)}/${encodeURIComponent(row.server_slug)}@${row.version}/mcp`,
            }
          : null,
      },
    },
  };
}

async function toEntries(
  db: Queryable,
  rows: EntryRow[],
  options: RegistryOptions,
): Promise<ServerResponse[]> {
  if (rows.length === 0) return [];
  const facts = await serverFacts(db, rows);
  const changed = await db.query<{ version_id: string; at: Date }>(
    'SELECT version_id, max(at) AS at FROM version_transitions WHERE version_id = ANY($1::uuid[]) GROUP BY version_id',
    [rows.map((r) => r.id)],
  );
  const changedAt = new Map(changed.map((c) => [c.version_id, c.at]));
  return rows.map((row) =>
    toEntry(row, facts.get(row.server_id) as ServerFacts, changedAt.get(row.id), options),
  );
}

/**
 * `GET /v0/servers`: one entry per version, ordered by (name, version id) so a cursor (the last
 * pair seen) stays valid while versions are added: a new version of a server already passed is not
 * shown late, one of a server still ahead shows up in its place. `version=latest` gives each
 * server's latest version only; `updated_since` includes deleted (retired) versions, as the spec says.
 */
export async function listServers(
  db: Queryable,
  reader: Principal | null,
  query: ListQuery,
  options: RegistryOptions = {},
): Promise<ServerList> {
  const orgs = await readableOrgs(db, reader);
  const limit = query.limit ?? DEFAULT_LIMIT;
  const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const includeDeleted = query.include_deleted === true || query.updated_since !== undefined;
  const since = query.updated_since === undefined ? null : new Date(query.updated_since);
  const scope = {
    orgIds: orgs.map((o) => o.id),
    servers: reader?.servers ?? null,
    search: query.search || null,
  };
  const rows =
    query.version === 'latest'
      ? await latestRows(db, scope, cursor?.name ?? null, since, limit + 1)
      : await db.query<EntryRow>(
          `${ENTRY_SELECT}
           WHERE s.org_id = ANY($1::uuid[]) AND s.archived_at IS NULL
             AND ($2::text[] IS NULL OR s.slug = ANY($2::text[]))
             AND ($3::text IS NULL OR (${NAME_SQL}, v.id) > ($3::text COLLATE "C", $4::uuid))
             AND ($5::text IS NULL OR strpos(lower(${NAME_SQL}), lower($5::text)) > 0)
             AND ($6::timestamptz IS NULL OR v.updated_at >= $6::timestamptz)
             AND ($7::text IS NULL OR v.version = $7::text)
             AND ($8::boolean OR v.status <> 'retired')
           ORDER BY ${NAME_SQL}, v.id LIMIT $9`,
          [
            scope.orgIds,
            scope.servers,
            cursor?.name ?? null,
            cursor?.id ?? null,
            scope.search,
            since,
            query.version ?? null,
            includeDeleted,
            limit + 1,
          ],
        );
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const servers = await toEntries(db, page, options);
  return {
    servers,
    metadata: {
      count: servers.length,
      ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.registry_name, last.id) } : {}),
    },
  };
}

/** Each server's latest version after `afterName`, in name order, up to `want` entries. */
async function latestRows(
  db: Queryable,
  scope: { orgIds: string[]; servers: string[] | null; search: string | null },
  afterName: string | null,
  since: Date | null,
  want: number,
): Promise<EntryRow[]> {
  const out: EntryRow[] = [];
  let after = afterName;
  for (;;) {
    const servers = await db.query<{ id: string; registry_name: string }>(
      `SELECT s.id, ${NAME_SQL} AS registry_name FROM servers s JOIN orgs o ON o.id = s.org_id
       WHERE s.org_id = ANY($1::uuid[]) AND s.archived_at IS NULL
         AND ($2::text[] IS NULL OR s.slug = ANY($2::text[]))
         AND ($3::text IS NULL OR ${NAME_SQL} > $3::text COLLATE "C")
         AND ($4::text IS NULL OR strpos(lower(${NAME_SQL}), lower($4::text)) > 0)
       ORDER BY ${NAME_SQL} LIMIT $5`,
      [scope.orgIds, scope.servers, after, scope.search, want],
    );
    if (servers.length === 0) return out;
    const versions = await db.query<EntryRow>(`${ENTRY_SELECT} WHERE v.server_id = ANY($1::uuid[])`, [
      servers.map((s) => s.id),
    ]);
    for (const server of servers) {
      const latest = pickLatest(versions.filter((v) => v.server_id === server.id));
      if (latest && (!since || latest.updated_at >= since)) out.push(latest);
      if (out.length >= want) return out;
    }
    if (servers.length < want) return out;
    after = servers.at(-1)?.registry_name ?? null;
  }
}

/** `GET /v0/servers/{serverName}/versions`: newest first, as the spec orders them. */
export async function listServerVersions(
  db: Queryable,
  reader: Principal | null,
  name: string,
  query: { include_deleted?: boolean | undefined } = {},
  options: RegistryOptions = {},
): Promise<ServerList> {
  const server = await resolveServer(db, reader, name);
  const rows = await db.query<EntryRow>(
    `${ENTRY_SELECT} WHERE v.server_id = $1 AND ($2::boolean OR v.status <> 'retired')
     ORDER BY v.created_at DESC, v.id DESC`,
    [server.id, query.include_deleted === true],
  );
  if (rows.length === 0) throw notFound(name);
  const servers = await toEntries(db, rows, options);
  return { servers, metadata: { count: servers.length } };
}

/** `GET /v0/servers/{serverName}/versions/{version}`; `latest` is {@link pickLatest}'s choice. */
export async function getServerVersion(
  db: Queryable,
  reader: Principal | null,
  name: string,
  version: string,
  query: { include_deleted?: boolean | undefined } = {},
  options: RegistryOptions = {},
): Promise<ServerResponse> {
  const server = await resolveServer(db, reader, name);
  const rows = await db.query<EntryRow>(`${ENTRY_SELECT} WHERE v.server_id = $1`, [server.id]);
  const row = version === 'latest' ? pickLatest(rows) : rows.find((r) => r.version === version);
  if (!row || (row.status === 'retired' && query.include_deleted !== true)) {
    const why = row ? ' (it is retired: add include_deleted=true to see it)' : '';
    throw new NotFoundError(
      version === 'latest'
        ? `server ${name} has no version that is not retired`
        : `version ${version} of ${name} was not found${why}`,
      'version-not-found',
    );
  }
  const [entry] = await toEntries(db, [row], options);
  return entry as ServerResponse;
}

/**
 * `POST /v0/publish`: a server.json becomes a version of `@org/slug` (the server is created when
 * it does not exist yet). A release number is published `stable`, a pre-release
 * `release-candidate`. The whole document is checked before anything is stored.
 */
export async function publishServer(
  db: Db,
  ctx: Context,
  body: unknown,
  options: RegistryOptions = {},
): Promise<{ entry: ServerResponse; slug: string }> {
  assertPermission(ctx.principal, 'write');
  const doc = fromServerJson(body);
  const ref = parseRegistryName(doc.name);
  if (!ref) {
    const message = `"${doc.name}" is not a Pylee server name: publish as ${registryName(ctx.principal.orgSlug, '<server>')}, where <server> is a server slug (2-64 of a-z, 0-9, -)`;
    throw new BadRequestError(`server.json name ${message}`, 'invalid-server-json', {
      errors: [{ path: 'name', message }],
    });
  }
  if (ref.org !== ctx.principal.orgSlug) {
    throw new ForbiddenError(
      `this token publishes in ${NAMESPACE}.${ctx.principal.orgSlug}/…, not ${NAMESPACE}.${ref.org}/…`,
      'wrong-namespace',
    );
  }
  if (ctx.principal.servers !== null && !ctx.principal.servers.includes(ref.slug)) throw notFound(doc.name);
  const prerelease = semverOf(doc.version).prerelease.length > 0;
  const [existing] = await db.query('SELECT 1 FROM servers WHERE org_id = $1 AND slug = $2', [
    ctx.principal.orgId,
    ref.slug,
  ]);
  if (!existing) {
    await createServer(db, ctx, {
      slug: ref.slug,
      name: doc.config.title ?? ref.slug,
      description: doc.description,
      repositoryUrl: doc.config.repository?.url,
    });
  }
  await createVersion(db, ctx, ref.slug, {
    ...doc.config,
    version: doc.version,
    status: prerelease ? 'release-candidate' : 'stable',
  });
  return {
    entry: await getServerVersion(db, ctx.principal, doc.name, doc.version, {}, options),
    slug: ref.slug,
  };
}

/** Pylee versions are strict semver: a 400 that names the path, like every other server.json problem. */
function semverOf(version: string): semver.SemVer {
  try {
    return parseVersion(version);
  } catch (error) {
    if (!(error instanceof BadRequestError)) throw error;
    throw new BadRequestError(`server.json version: ${error.message}`, 'invalid-server-json', {
      errors: [{ path: 'version', message: error.message }],
    });
  }
}

/**
 * `PATCH /v0/servers/{serverName}/versions/{version}/status`, on Pylee's lifecycle: `deprecated`
 * deprecates (`statusMessage` is the deprecation message), `deleted` retires (final), `active`
 * withdraws a deprecation. Audited as every status change; a move the lifecycle does not allow, or
 * to the status a version already has, is a 400 as the spec says.
 */
export async function setServerVersionStatus(
  db: Db,
  ctx: Context,
  name: string,
  version: string,
  body: { status: OfficialStatus; statusMessage?: string | undefined },
  options: RegistryOptions = {},
): Promise<ServerResponse> {
  assertPermission(ctx.principal, 'write');
  const server = await resolveServer(db, ctx.principal, name);
  const rows = await db.query<VersionRow>('SELECT * FROM versions WHERE server_id = $1', [server.id]);
  const row = version === 'latest' ? pickLatest(rows) : rows.find((r) => r.version === version);
  if (!row) throw new NotFoundError(`version ${version} of ${name} was not found`, 'version-not-found');
  if (officialStatus(row.status) === body.status) {
    throw new BadRequestError(
      `No changes to apply: ${name} ${row.version} is already ${body.status} (${row.status} in Pylee)`,
      'no-change',
    );
  }
  const reason = body.statusMessage ?? `set to ${body.status} through the MCP registry API`;
  const patch: VersionPatch =
    body.status === 'deprecated'
      ? { status: 'deprecated', reason, deprecation: { message: reason } }
      : { status: body.status === 'deleted' ? 'retired' : 'stable', reason };
  try {
    await updateVersion(db, ctx, server.slug, row.version, patch);
  } catch (error) {
    if (error instanceof AppError && error.code === 'invalid-transition')
      throw new BadRequestError(error.message, error.code);
    throw error;
  }
  return getServerVersion(db, ctx.principal, name, row.version, { include_deleted: true }, options);
}

export interface RegistryAccess {
  /** Whether the org's registry answers requests without a token. */
  public: boolean;
  /** The names of the org's servers begin with this, then `/<server>`. */
  namespace: string;
}

export async function registryAccess(db: Queryable, principal: Principal): Promise<RegistryAccess> {
  assertPermission(principal, 'read');
  const [row] = await db.query<{ registry_public: boolean }>(
    'SELECT registry_public FROM orgs WHERE id = $1',
    [principal.orgId],
  );
  return { public: row?.registry_public ?? false, namespace: `${NAMESPACE}.${principal.orgSlug}` };
}

/**
 * Makes the org's registry public or private (admin). Setting what is already in force records
 * nothing; a change is audited as `org.mcp-registry.access`.
 */
export function setRegistryPublic(db: Db, ctx: Context, value: boolean): Promise<RegistryAccess> {
  assertPermission(ctx.principal, 'admin');
  return db.transaction(async (tx) => {
    const [row] = await tx.query<{ registry_public: boolean }>(
      'SELECT registry_public FROM orgs WHERE id = $1 FOR UPDATE',
      [ctx.principal.orgId],
    );
    if (row && row.registry_public !== value) {
      await tx.query('UPDATE orgs SET registry_public = $2 WHERE id = $1', [ctx.principal.orgId, value]);
      await appendAudit(tx, ctx, {
        action: 'org.mcp-registry.access',
        target: { type: 'org', id: ctx.principal.orgId, name: ctx.principal.orgSlug },
        before: { public: row.registry_public },
        after: { public: value },
      });
    }
    return { public: value, namespace: `${NAMESPACE}.${ctx.principal.orgSlug}` };
  });
}
