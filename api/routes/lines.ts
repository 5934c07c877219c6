import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { deleteLine, listLines, putLine } from '#core/registry/server-lines.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const LineParams = Type.Object(
  {
    server: Type.String({ maxLength: 64 }),
    pattern: Type.String({ maxLength: 32, description: 'MAJOR.x or MAJOR.MINOR.x, e.g. 1.4.x' }),
  },
  { additionalProperties: false },
);

const LineView = Type.Object({
  pattern: Type.String(),
  endOfSupport: Nullable(Type.String({ description: 'Last day of support, YYYY-MM-DD' })),
  supported: Type.Boolean(),
  description: Type.String(),
  latest: Nullable(Type.String({ description: 'The highest stable version of the line' })),
  newest: Nullable(Type.String({ description: 'The highest version of the line, of any status' })),
  versions: Type.Integer(),
  createdBy: Type.String(),
  createdAt: Timestamp,
});

/** Maintenance lines of a server: read to see, write to declare, change and remove. */
export function lineRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['versions'];
    app.get(
      '/servers/:server/lines',
      {
        schema: {
          tags,
          summary: 'Maintenance lines, newest first, with their support state and latest versions',
          params: Type.Object({ server: Type.String({ maxLength: 64 }) }, { additionalProperties: false }),
          response: { 200: Type.Object({ lines: Type.Array(LineView) }), ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => ({ lines: await listLines(db, contextOf(req).principal, req.params.server) }),
    );
    app.put(
      '/servers/:server/lines/:pattern',
      {
        schema: {
          tags,
          summary: 'Declare a maintenance line, or change its end of support',
          params: LineParams,
          body: Type.Object(
            {
              endOfSupport: Type.Optional(Nullable(Type.String({ maxLength: 10 }))),
              description: Type.Optional(Type.String({ maxLength: 2000 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: LineView, ...problems },
        },
        preHandler: app.requirePermission('write'),
      },
      async (req) =>
        putLine(db, contextOf(req), req.params.server, { pattern: req.params.pattern, ...req.body }),
    );
    app.delete(
      '/servers/:server/lines/:pattern',
      {
        schema: {
          tags,
          summary: 'Remove a maintenance line (its versions stay)',
          params: LineParams,
          response: { 204: Type.Null(), ...problems },
        },
        preHandler: app.requirePermission('write'),
      },
      async (req, reply) => {
        await deleteLine(db, contextOf(req), req.params.server, req.params.pattern);
        return reply.code(204).send(null);
      },
    );
  };
}
