import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type, type TSchema } from 'typebox';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import type { Db } from '#core/db/client.ts';
import { findServer } from '#core/registry/servers.ts';
import { NotFoundError } from '#core/errors.ts';
import {
  deleteVariable,
  getVariable,
  listVariables,
  secretHistory,
  setVariable,
  type ScopeRef,
} from '#core/registry/variables.ts';
import { versionIds } from '#core/registry/versions.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

export const VariableView = Type.Object({
  name: Type.String(),
  scope: Type.String({ description: 'org, environment, server, version or server-environment' }),
  environment: Nullable(Type.String()),
  secret: Type.Boolean(),
  value: Type.Optional(Type.String({ description: 'Plain variables only; never a secret' })),
  fingerprint: Type.Optional(
    Type.String({ description: 'Secrets only: an HMAC of the value, to compare without revealing' }),
  ),
  revision: Type.Integer(),
  updatedAt: Timestamp,
  updatedBy: Type.String(),
});

const Revision = Type.Object({
  revision: Type.Integer(),
  fingerprint: Type.String(),
  keyId: Type.String(),
  createdAt: Timestamp,
  createdBy: Type.String(),
});

// Names and values are checked in core with sentences that say what is allowed; these bound the request.
const Name = Type.String({ minLength: 1, maxLength: 256 });
const EnvironmentQuery = Type.Object(
  { environment: Type.Optional(Type.String({ maxLength: 64, description: 'Environment-specific value' })) },
  { additionalProperties: false },
);

interface ScopeParams {
  server?: string;
  version?: string;
}

/**
 * The three places variables hang from: the org, a server, a version. `?environment=` narrows the
 * org and server ones to one environment (versions have none: a version runs everywhere alike).
 */
const BASES: { path: string; params: TSchema | undefined; label: string; environment: boolean }[] = [
  { path: '', params: undefined, label: 'the org', environment: true },
  {
    path: '/servers/:server',
    params: Type.Object({ server: Type.String({ maxLength: 64 }) }),
    label: 'a server',
    environment: true,
  },
  {
    path: '/servers/:server/versions/:version',
    params: Type.Object({ server: Type.String({ maxLength: 64 }), version: Type.String({ maxLength: 256 }) }),
    label: 'a version',
    environment: false,
  },
];

/** Variables and secrets at every scope: read to list (secrets as fingerprints only), write to change. */
export function variableRoutes(db: Db, box: SecretBox): FastifyPluginAsyncTypebox {
  return async (app) => {
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');

    async function scopeOf(req: FastifyRequest): Promise<ScopeRef> {
      const { principal } = contextOf(req);
      const params = req.params as ScopeParams;
      const environment = (req.query as { environment?: string } | undefined)?.environment;
      if (params.version !== undefined && params.server !== undefined) {
        const ids = await versionIds(db, principal, params.server, params.version);
        return {
          serverId: ids.serverId,
          serverSlug: params.server,
          versionId: ids.versionId,
          version: params.version,
          // Passed on so core refuses it (invalid-scope) instead of it being silently dropped.
          environment,
        };
      }
      if (params.server !== undefined) {
        const server = await findServer(db, principal, params.server);
        return { serverId: server.id, serverSlug: server.slug, environment };
      }
      return { environment };
    }

    for (const base of BASES) {
      const querystring = base.environment ? EnvironmentQuery : undefined;
      const paramsWith = (extra: Record<string, TSchema>) =>
        Type.Object({
          ...(base.params ? (base.params as ReturnType<typeof Type.Object>).properties : {}),
          ...extra,
        });
      for (const kind of ['variables', 'secrets'] as const) {
        const secret = kind === 'secrets';
        const tags = [kind];
        const collection = `${base.path}/${kind}`;

        app.get(
          collection,
          {
            schema: {
              tags,
              summary: `List the ${kind} of ${base.label}${secret ? ' (name, fingerprint, time; never values)' : ''}`,
              ...(base.params ? { params: base.params } : {}),
              ...(querystring ? { querystring } : {}),
              response: { 200: Type.Object({ [kind]: Type.Array(VariableView) }), ...problems },
            },
            preHandler: read,
          },
          async (req) => {
            const views = await listVariables(db, contextOf(req).principal.orgId, await scopeOf(req));
            return { [kind]: views.filter((v) => v.secret === secret) };
          },
        );

        app.put(
          `${collection}/:name`,
          {
            schema: {
              tags,
              summary: `Set a ${secret ? 'secret (encrypted at rest; a new revision each time)' : 'variable'} of ${base.label}`,
              params: paramsWith({ name: Name }),
              ...(querystring ? { querystring } : {}),
              body: Type.Object(
                { value: Type.String({ maxLength: 1024 * 1024 }) },
                { additionalProperties: false },
              ),
              response: { 200: VariableView, 409: Type.Ref('Problem'), ...problems },
            },
            preHandler: write,
          },
          async (req) => {
            const { name } = req.params as { name: string };
            return setVariable(db, contextOf(req), box, await scopeOf(req), name, {
              value: req.body.value,
              secret,
            });
          },
        );

        app.delete(
          `${collection}/:name`,
          {
            schema: {
              tags,
              summary: `Delete a ${secret ? 'secret and its history' : 'variable'} of ${base.label}`,
              params: paramsWith({ name: Name }),
              ...(querystring ? { querystring } : {}),
              response: { 200: VariableView, ...problems },
            },
            preHandler: write,
          },
          async (req) => {
            const { name } = req.params as { name: string };
            const scope = await scopeOf(req);
            const existing = await getVariable(db, contextOf(req).principal.orgId, scope, name);
            if (existing.secret !== secret) {
              throw new NotFoundError(
                `${name} is a ${existing.secret ? 'secret' : 'plain variable'} here; delete it under /${existing.secret ? 'secrets' : 'variables'}/${name}`,
                'variable-not-found',
              );
            }
            return deleteVariable(db, contextOf(req), scope, name);
          },
        );
      }

      app.get(
        `${base.path}/secrets/:name/history`,
        {
          schema: {
            tags: ['secrets'],
            summary: `Revisions of a secret of ${base.label}, newest first (fingerprints, never values)`,
            params: paramsWith({ name: Name }),
            ...(querystring ? { querystring } : {}),
            response: { 200: Type.Object({ revisions: Type.Array(Revision) }), ...problems },
          },
          preHandler: read,
        },
        async (req) => ({
          revisions: await secretHistory(
            db,
            contextOf(req).principal.orgId,
            await scopeOf(req),
            (req.params as { name: string }).name,
          ),
        }),
      );
    }
  };
}
