import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { packageUsage, registryOverview } from '#core/registry/catalog.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems } from '../schemas.ts';
import { ServerView } from './servers.ts';

const Entry = Type.Object({
  server: ServerView,
  latestStable: Nullable(Type.String()),
  latestPrerelease: Nullable(Type.String()),
  versions: Type.Integer(),
  statuses: Type.Record(Type.String(), Type.Integer()),
});

const Use = Type.Object({
  server: Type.String(),
  version: Type.String(),
  status: Type.String(),
  registryType: Type.String(),
  identifier: Type.String(),
  packageVersion: Type.String(),
});

/** Org-wide views of the registry: read permission. */
export function registryRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const read = app.requirePermission('read');
    app.get(
      '/registry',
      {
        schema: {
          tags: ['registry'],
          summary: 'Every server with its latest stable and pre-release version',
          querystring: Type.Object(
            { includeArchived: Type.Optional(Type.Boolean()) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ servers: Type.Array(Entry) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ servers: await registryOverview(db, contextOf(req).principal, req.query) }),
    );
    app.get(
      '/registry/packages',
      {
        schema: {
          tags: ['registry'],
          summary: 'Where is this package used: the versions that reference it',
          querystring: Type.Object(
            {
              registryType: Type.Union([
                Type.Literal('npm'),
                Type.Literal('pypi'),
                Type.Literal('oci'),
                Type.Literal('homebrew'),
                Type.Literal('nuget'),
              ]),
              identifier: Type.String({ minLength: 1, maxLength: 255 }),
              version: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ uses: Type.Array(Use) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ uses: await packageUsage(db, contextOf(req).principal, req.query) }),
    );
  };
}
