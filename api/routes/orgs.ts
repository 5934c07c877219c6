import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { createOrg } from '#core/orgs.ts';
import { contextOf } from '../plugins/auth.ts';
import { Org, problems, Slug } from '../schemas.ts';

/** Orgs are created by admins of the `default` org, who operate the instance. */
export function orgRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/orgs',
      {
        schema: {
          tags: ['orgs'],
          summary: 'Create an org and its first admin token (admins of @default only)',
          body: Type.Object(
            { slug: Slug, name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Object({
              org: Org,
              token: Type.String({ description: 'Admin token of the new org; shown once' }),
            }),
            409: Type.Ref('Problem'),
            ...problems,
          },
        },
        preHandler: app.requirePermission('admin'),
      },
      async (req, reply) => {
        const { org, token } = await createOrg(db, contextOf(req), req.body);
        return reply.code(201).send({ org, token });
      },
    );
  };
}
