import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { queryAccessLog } from '#core/warehouse/access-log.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { problems } from '../schemas.ts';

const Entry = Type.Object({
  time: Type.String(),
  requestId: Type.String(),
  method: Type.String(),
  route: Type.String(),
  path: Type.String(),
  status: Type.Integer(),
  durationMs: Type.Number(),
  tokenId: Type.String(),
  clientAddress: Type.String(),
  userAgent: Type.String(),
});

/** The org's recent API requests (who used which token from where): admin only. */
export function accessLogRoutes(warehouse: Warehouse): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/access-log',
      {
        schema: {
          tags: ['audit'],
          summary: 'Recent API requests of this org, newest first',
          querystring: Type.Object(
            {
              tokenId: Type.Optional(Type.String({ format: 'uuid' })),
              status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ entries: Type.Array(Entry) }), ...problems },
        },
        preHandler: app.requirePermission('admin'),
      },
      async (req) => ({
        entries: await queryAccessLog(warehouse, contextOf(req).principal.orgId, req.query),
      }),
    );
  };
}
