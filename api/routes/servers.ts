import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { createServer, getServer, listServers, setArchived, updateServer } from '#core/registry/servers.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

export const ServerView = Type.Object({
  slug: Type.String(),
  fullName: Type.String({ description: '@org/slug' }),
  name: Type.String(),
  description: Type.String(),
  repositoryUrl: Nullable(Type.String()),
  owners: Type.Array(Type.String()),
  archived: Type.Boolean(),
  archivedAt: Nullable(Timestamp),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

/** A created server: the template version it follows (when created from one) and the secrets it needs. */
const CreatedServer = Type.Object({
  ...ServerView.properties,
  template: Nullable(Type.String({ description: 'The template version it follows: @org/name@1.2.0' })),
  secretsToProvide: Type.Optional(
    Type.Array(Type.String(), {
      description:
        'Created from a template: the secrets it declares; set them with PUT /servers/:server/secrets/:name',
    }),
  ),
});

export const ServerDetail = Type.Object({
  ...ServerView.properties,
  template: Nullable(
    Type.Object({
      ref: Type.String({ description: 'The template version it follows: @org/name@1.2.0' }),
      latest: Nullable(Type.String({ description: "The template's latest stable version" })),
      behind: Type.Boolean({ description: 'Follows a version older than latest' }),
      missingSecrets: Type.Array(Type.String(), {
        description: 'Secrets the template declares that the server has not set (server or org scope)',
      }),
    }),
  ),
});

const Fields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.String({ maxLength: 2000 }),
  repositoryUrl: Nullable(Type.String({ maxLength: 2048 })),
  owners: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50 }),
};

export const ServerParams = Type.Object(
  { server: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);

/** Servers of the caller's org: read to see, write to change. */
export function serverRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['servers'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');

    app.get(
      '/servers',
      {
        schema: {
          tags,
          summary: 'List servers (archived ones with includeArchived=true)',
          querystring: Type.Object(
            { includeArchived: Type.Optional(Type.Boolean()) },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ servers: Type.Array(ServerView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ servers: await listServers(db, contextOf(req).principal, req.query) }),
    );

    app.post(
      '/servers',
      {
        schema: {
          tags,
          summary: 'Register a server',
          body: Type.Object(
            {
              // Checked in core, whose error says what a slug may contain; this only bounds the request.
              slug: Type.String({
                maxLength: 256,
                description: '2-64 lowercase letters, digits or dashes, not starting or ending with a dash',
              }),
              name: Type.Optional(Fields.name),
              description: Type.Optional(Fields.description),
              repositoryUrl: Type.Optional(Fields.repositoryUrl),
              owners: Type.Optional(Fields.owners),
              template: Type.Optional(
                Type.String({
                  maxLength: 200,
                  description:
                    'Create it from this template version: @org/name@1.2.0 (or @org/name for its latest stable); its variable defaults become server variables',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: CreatedServer, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => reply.code(201).send(await createServer(db, contextOf(req), req.body)),
    );

    app.get(
      '/servers/:server',
      {
        schema: {
          tags,
          summary: 'Get a server, with the template it follows',
          params: ServerParams,
          response: { 200: ServerDetail, ...problems },
        },
        preHandler: read,
      },
      async (req) => getServer(db, contextOf(req).principal, req.params.server),
    );

    app.patch(
      '/servers/:server',
      {
        schema: {
          tags,
          summary: 'Update a server',
          params: ServerParams,
          body: Type.Object(
            {
              name: Type.Optional(Fields.name),
              description: Type.Optional(Fields.description),
              repositoryUrl: Type.Optional(Fields.repositoryUrl),
              owners: Type.Optional(Fields.owners),
            },
            { additionalProperties: false, minProperties: 1 },
          ),
          response: { 200: ServerDetail, ...problems },
        },
        preHandler: write,
      },
      async (req) => updateServer(db, contextOf(req), req.params.server, req.body),
    );

    for (const [action, archived] of [
      ['archive', true],
      ['unarchive', false],
    ] as const) {
      app.post(
        `/servers/:server/${action}`,
        {
          schema: {
            tags,
            summary: archived
              ? 'Archive a server (hidden, no new versions; history kept)'
              : 'Unarchive a server',
            params: ServerParams,
            response: { 200: ServerDetail, ...problems },
          },
          preHandler: write,
        },
        async (req) => setArchived(db, contextOf(req), req.params.server, archived),
      );
    }
  };
}
