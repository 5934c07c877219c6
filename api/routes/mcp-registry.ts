import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import { Type } from 'typebox';
import type { Principal } from '#core/auth/principal.ts';
import type { Db } from '#core/db/client.ts';
import { AppError, UnauthorizedError } from '#core/errors.ts';
import { announceRoutingChange } from '#core/gateway/routing-signal.ts';
import { PROBLEM_CONTENT_TYPE } from '#core/http/problem.ts';
import {
  getServerVersion,
  listServers,
  listServerVersions,
  MAX_LIMIT,
  OFFICIAL_META,
  parseRegistryName,
  publishServer,
  PYLEE_META,
  registryAccess,
  setRegistryPublic,
  setServerVersionStatus,
} from '#core/registry/mcp-registry.ts';
import { ServerJson } from '#core/registry/server-json.ts';
import { scanNamedVersion } from '#core/vulns/findings.ts';
import { contextOf, installAuth } from '../plugins/auth.ts';
import { installRateLimit } from '../plugins/rate-limit.ts';
import type { SessionStore } from '../session-store.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

/** Where the MCP Registry API is served: `/v0` (the spec's development version) and `/v0.1` (stable). */
export const MCP_REGISTRY_PREFIXES = ['/v0', '/v0.1'] as const;

const Str = Type.String();
const Weight = Type.Object({ version: Str, weight: Type.Integer() });

const OfficialMeta = Type.Object(
  {
    status: Type.Union([Type.Literal('active'), Type.Literal('deprecated'), Type.Literal('deleted')]),
    statusMessage: Type.Optional(Str),
    statusChangedAt: Type.Optional(Timestamp),
    publishedAt: Timestamp,
    updatedAt: Timestamp,
    isLatest: Type.Boolean(),
  },
  { additionalProperties: false },
);

const PyleeMeta = Type.Object(
  {
    server: Type.String({ description: '@org/slug' }),
    status: Type.String({ description: "Pylee's lifecycle status" }),
    prerelease: Type.Boolean(),
    releasedAt: Nullable(Timestamp),
    deprecation: Nullable(
      Type.Object({ date: Str, message: Str, replacement: Nullable(Str) }, { additionalProperties: false }),
    ),
    runsIn: Type.Array(Type.Object({ environment: Str, weight: Type.Integer() }), {
      description: 'The environments this version gets traffic in',
    }),
    environments: Type.Array(Type.Object({ environment: Str, versions: Type.Array(Weight) }), {
      description: 'What runs where, for the whole server, in pipeline order',
    }),
    gateway: Nullable(
      Type.Object(
        { environment: Nullable(Str), url: Nullable(Str), pinnedUrl: Str },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const ServerResponse = Type.Object(
  {
    server: ServerJson,
    _meta: Type.Object({ [OFFICIAL_META]: OfficialMeta, [PYLEE_META]: PyleeMeta }),
  },
  { description: 'An entry of the generic MCP Registry API (ServerResponse)' },
);

const ServerList = Type.Object({
  servers: Type.Array(ServerResponse),
  metadata: Type.Object({ count: Type.Integer(), nextCursor: Type.Optional(Str) }),
});

const IncludeDeleted = Type.Optional(
  Type.Boolean({ description: 'Include retired ("deleted") versions (default false)' }),
);

const ListQuery = Type.Object(
  {
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: 'metadata.nextCursor of the previous page' }),
    ),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_LIMIT, description: 'Entries per page (default 30)' }),
    ),
    search: Type.Optional(
      Type.String({ maxLength: 200, description: 'Substring of the server name, any case' }),
    ),
    updated_since: Type.Optional(Type.String({ format: 'date-time', description: 'RFC 3339' })),
    version: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, description: "'latest' or an exact version" }),
    ),
    include_deleted: IncludeDeleted,
  },
  { additionalProperties: false },
);

const NameParams = Type.Object(
  {
    serverName: Type.String({
      minLength: 3,
      maxLength: 200,
      description: 'URL-encoded: dev.pylee.<org>%2F<server>',
    }),
  },
  { additionalProperties: false },
);
const VersionParams = Type.Object(
  {
    serverName: Type.String({ minLength: 3, maxLength: 200 }),
    version: Type.String({ minLength: 1, maxLength: 255, description: "An exact version, or 'latest'" }),
  },
  { additionalProperties: false },
);
const DeletedQuery = Type.Object({ include_deleted: IncludeDeleted }, { additionalProperties: false });

export interface McpRegistryDeps {
  db: Db;
  redis: Redis;
  rateLimit: { max: number; windowMs: number };
  sessions?: SessionStore | undefined;
  /** The gateway's base URL, read per request; undefined: no gateway remote is offered. */
  gatewayBase: () => string | undefined;
}

/** The principal of a request that changes something: a token is needed whether or not the org is public. */
function signedIn(principal: Principal | null, what: string): void {
  if (principal) return;
  throw new UnauthorizedError(
    `${what} needs Authorization: Bearer <a Pylee token with the write permission>`,
    'missing-token',
  );
}

/**
 * The generic MCP Registry API, registered once per prefix in {@link MCP_REGISTRY_PREFIXES}. A
 * token is optional: without one, only orgs whose admins made their registry public are served.
 */
export function mcpRegistryRoutes(deps: McpRegistryDeps): FastifyPluginAsyncTypebox {
  const { db } = deps;
  return async (app) => {
    await installRateLimit(app, deps.redis, deps.rateLimit);
    installAuth(app, db, deps.sessions);
    // The spec's error bodies are `{ "error": "…" }`: problem details here carry that too.
    app.addHook('onSend', async (_req, reply, payload) => {
      if (
        typeof payload !== 'string' ||
        !String(reply.getHeader('content-type')).startsWith(PROBLEM_CONTENT_TYPE)
      )
        return payload;
      const body = JSON.parse(payload) as { detail?: unknown };
      return JSON.stringify({ error: body.detail, ...body });
    });
    const tags = ['mcp-registry'];
    const config = { auth: 'optional' as const };
    const options = () => ({ gatewayBase: deps.gatewayBase() });

    app.get(
      '/servers',
      {
        config,
        schema: {
          tags,
          summary: 'MCP Registry API: list server versions (cursor pagination)',
          querystring: ListQuery,
          response: { 200: ServerList, ...problems },
        },
      },
      async (req) => listServers(db, req.principal, req.query, options()),
    );

    app.get(
      '/servers/:serverName/versions',
      {
        config,
        schema: {
          tags,
          summary: 'MCP Registry API: every version of a server, newest first',
          params: NameParams,
          querystring: DeletedQuery,
          response: { 200: ServerList, ...problems },
        },
      },
      async (req) => listServerVersions(db, req.principal, req.params.serverName, req.query, options()),
    );

    app.get(
      '/servers/:serverName/versions/:version',
      {
        config,
        schema: {
          tags,
          summary: "MCP Registry API: one version of a server ('latest' too)",
          params: VersionParams,
          querystring: DeletedQuery,
          response: { 200: ServerResponse, ...problems },
        },
      },
      async (req) =>
        getServerVersion(db, req.principal, req.params.serverName, req.params.version, req.query, options()),
    );

    app.post(
      '/publish',
      {
        config,
        schema: {
          tags,
          summary: 'MCP Registry API: publish a server.json as a new version (write permission)',
          // Checked by fromServerJson, whose errors name each JSON path.
          body: Type.Unknown({ description: 'server.json' }),
          response: { 200: ServerResponse, 409: Type.Ref('Problem'), ...problems },
        },
      },
      async (req) => {
        signedIn(req.principal, 'publishing');
        const ctx = contextOf(req);
        const { entry, slug } = await publishServer(db, ctx, req.body, options());
        await scanNamedVersion(db, ctx.principal, slug, entry.server.version);
        await announceRoutingChange(deps.redis, { orgId: ctx.principal.orgId, server: slug });
        return entry;
      },
    );

    app.patch(
      '/servers/:serverName/versions/:version/status',
      {
        config,
        schema: {
          tags,
          summary:
            'MCP Registry API: deprecate, retire ("deleted") or reactivate a version (write permission)',
          params: VersionParams,
          body: Type.Object(
            {
              status: Type.Union([
                Type.Literal('active'),
                Type.Literal('deprecated'),
                Type.Literal('deleted'),
              ]),
              statusMessage: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: ServerResponse, ...problems },
        },
      },
      async (req) => {
        signedIn(req.principal, 'changing a status');
        const ctx = contextOf(req);
        const entry = await setServerVersionStatus(
          db,
          ctx,
          req.params.serverName,
          req.params.version,
          req.body,
          options(),
        );
        const slug = parseRegistryName(req.params.serverName)?.slug as string;
        await announceRoutingChange(deps.redis, { orgId: ctx.principal.orgId, server: slug });
        return entry;
      },
    );

    // The optional endpoints Pylee does not offer answer 501, as the spec lets a registry say.
    const notImplemented = (why: string) => async () => {
      throw new AppError(501, 'not-implemented', 'Not implemented', why);
    };
    const unsupported = { config, schema: { hide: true, body: Type.Unknown() } };
    app.put(
      '/servers/:serverName/versions/:version',
      unsupported,
      notImplemented(
        'Pylee does not edit published versions (a released version is immutable): publish a new version with POST /v0/publish',
      ),
    );
    app.delete(
      '/servers/:serverName/versions/:version',
      { config, schema: { hide: true } },
      notImplemented(
        'Pylee never deletes versions: retire one with PATCH …/versions/{version}/status {"status":"deleted"}',
      ),
    );
    app.patch(
      '/servers/:serverName/status',
      unsupported,
      notImplemented('change versions one at a time with PATCH …/versions/{version}/status'),
    );

    // Nothing under the prefix falls through to the web UI's index.html.
    app.get('/', { config, schema: { hide: true } }, async (_req, reply) => reply.callNotFound());
    app.get('/*', { config, schema: { hide: true } }, async (_req, reply) => reply.callNotFound());
  };
}

const Access = Type.Object({
  public: Type.Boolean({ description: 'Whether /v0 answers for this org without a token' }),
  namespace: Type.String({ description: 'Server names are <namespace>/<server slug>' }),
});

/** Under /api/v1: whether the org's MCP registry is public (read), and switching it (admin, audited). */
export function mcpRegistrySettingsRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['mcp-registry'];
    app.get(
      '/mcp-registry',
      {
        schema: {
          tags,
          summary: "The org's MCP registry: namespace, public or not",
          response: { 200: Access, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => registryAccess(db, contextOf(req).principal),
    );
    app.put(
      '/mcp-registry',
      {
        schema: {
          tags,
          summary: "Make the org's MCP registry public or private (admin; audited)",
          body: Type.Object({ public: Type.Boolean() }, { additionalProperties: false }),
          response: { 200: Access, ...problems },
        },
        preHandler: app.requirePermission('admin'),
      },
      async (req) => setRegistryPublic(db, contextOf(req), req.body.public),
    );
  };
}
