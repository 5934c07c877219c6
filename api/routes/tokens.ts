import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createToken, getToken, listTokens, revokeToken } from '#core/auth/tokens.ts';
import type { Db } from '#core/db/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { IdParams, Nullable, Permission, problems, Slug, Timestamp, TokenView } from '../schemas.ts';

const CreateToken = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    permissions: Type.Array(Permission, {
      minItems: 1,
      uniqueItems: true,
      description: 'connect: MCP clients through the gateway only (it does not include read)',
    }),
    servers: Type.Optional(Nullable(Type.Array(Slug, { minItems: 1, maxItems: 100 }))),
    environments: Type.Optional(
      Nullable(
        Type.Array(Slug, {
          minItems: 1,
          maxItems: 100,
          description: 'Limit deploy actions and gateway connections to these environments',
        }),
      ),
    ),
    expiresAt: Type.Optional(Nullable(Timestamp)),
  },
  { additionalProperties: false },
);

const CreatedToken = Type.Intersect([
  Type.Object({ token: Type.String({ description: 'The token itself; shown only in this response' }) }),
  TokenView,
]);

/** API tokens of the caller's org: admin only. */
export function tokenRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const admin = app.requirePermission('admin');
    const tags = ['tokens'];

    app.get(
      '/tokens',
      {
        schema: {
          tags,
          summary: 'List tokens (active only unless includeRevoked=true)',
          querystring: Type.Object(
            { includeRevoked: Type.Optional(Type.Boolean()) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ tokens: Type.Array(TokenView) }), ...problems },
        },
        preHandler: admin,
      },
      async (req) => ({ tokens: await listTokens(db, contextOf(req).principal.orgId, req.query) }),
    );

    app.post(
      '/tokens',
      {
        schema: {
          tags,
          summary: 'Create a token',
          body: CreateToken,
          response: { 201: CreatedToken, ...problems },
        },
        preHandler: admin,
      },
      async (req, reply) => {
        const { token, view } = await createToken(db, contextOf(req), req.body);
        return reply.code(201).send({ token, ...view });
      },
    );

    app.get(
      '/tokens/:id',
      {
        schema: { tags, summary: 'Get a token', params: IdParams, response: { 200: TokenView, ...problems } },
        preHandler: admin,
      },
      async (req) => getToken(db, contextOf(req).principal.orgId, req.params.id),
    );

    app.delete(
      '/tokens/:id',
      {
        schema: {
          tags,
          summary: 'Revoke a token (final)',
          params: IdParams,
          response: { 200: TokenView, ...problems },
        },
        preHandler: admin,
      },
      async (req) => revokeToken(db, contextOf(req), req.params.id),
    );
  };
}
