import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createIngestKey, listIngestKeys, revokeIngestKey } from '#core/auth/ingest-keys.ts';
import type { Db } from '#core/db/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { IdParams, Nullable, problems, Timestamp } from '../schemas.ts';

const IngestKeyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String(),
  server: Nullable(Type.String()),
  createdAt: Timestamp,
  createdBy: Type.String(),
  revokedAt: Nullable(Timestamp),
  lastUsedAt: Nullable(Timestamp),
  active: Type.Boolean(),
});

/** Keys the OTLP collector accepts: write permission to manage them. */
export function ingestKeyRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['ingest-keys'];
    const write = app.requirePermission('write');
    app.get(
      '/ingest-keys',
      {
        schema: {
          tags,
          summary: 'List ingest keys (active only unless includeRevoked=true)',
          querystring: Type.Object(
            { includeRevoked: Type.Optional(Type.Boolean()) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ keys: Type.Array(IngestKeyView) }), ...problems },
        },
        preHandler: write,
      },
      async (req) => ({ keys: await listIngestKeys(db, contextOf(req).principal, req.query) }),
    );
    app.post(
      '/ingest-keys',
      {
        schema: {
          tags,
          summary: 'Create an ingest key for the OTLP collector, optionally bound to one server',
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 100 }),
              server: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
            },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Intersect([
              Type.Object({ key: Type.String({ description: 'Shown only in this response' }) }),
              IngestKeyView,
            ]),
            ...problems,
          },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const { key, view } = await createIngestKey(db, contextOf(req), req.body);
        return reply.code(201).send({ key, ...view });
      },
    );
    app.delete(
      '/ingest-keys/:id',
      {
        schema: {
          tags,
          summary: 'Revoke an ingest key (final)',
          params: IdParams,
          response: { 200: IngestKeyView, ...problems },
        },
        preHandler: write,
      },
      async (req) => revokeIngestKey(db, contextOf(req), req.params.id),
    );
  };
}
