import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, Permission, problems } from '../schemas.ts';

const Me = Type.Object({
  org: Type.Object({ id: Type.String(), slug: Type.String() }),
  token: Type.Object({ id: Nullable(Type.String()), name: Type.String() }),
  permissions: Type.Array(Permission),
  servers: Nullable(Type.Array(Type.String())),
  environments: Nullable(
    Type.Array(Type.String(), { description: 'Environments the token may deploy to; null: every one' }),
  ),
});

/** Who the token is: any valid token may ask. */
export const meRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/me',
    {
      schema: {
        tags: ['auth'],
        summary: 'The org and permissions of this token',
        response: { 200: Me, ...problems },
      },
    },
    async (req) => {
      const { principal } = contextOf(req);
      return {
        org: { id: principal.orgId, slug: principal.orgSlug },
        token: { id: principal.tokenId, name: principal.tokenName },
        permissions: principal.permissions,
        servers: principal.servers,
        environments: principal.environments ?? null,
      };
    },
  );
};
