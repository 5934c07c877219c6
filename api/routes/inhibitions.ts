import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  createInhibition,
  deleteInhibition,
  getInhibition,
  listInhibitions,
  replaceInhibition,
} from '#core/alerting/inhibitions.ts';
import type { Db } from '#core/db/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { IdParams, Nullable, problems, Timestamp } from '../schemas.ts';

// `op` is a plain string here so that a wrong one gets core's message naming the matcher
// (`sourceMatchers[1].op must be one of = != =~ !~`) rather than four anyOf failures.
const Matcher = Type.Object(
  {
    name: Type.String({ maxLength: 100 }),
    op: Type.String({ maxLength: 2, description: 'One of = != =~ !~ (regexes are fully anchored)' }),
    value: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
const Matchers = (description: string) => Type.Array(Matcher, { maxItems: 20, description });

const InhibitionBody = Type.Object(
  {
    name: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
    sourceMatchers: Matchers('Alerts that inhibit while they fire (at least one matcher)'),
    targetMatchers: Matchers('Alerts that are inhibited (at least one matcher)'),
    equal: Type.Optional(
      Type.Array(Type.String({ maxLength: 100 }), {
        maxItems: 20,
        description: 'Labels whose values must be the same on the source and the target alert',
      }),
    ),
    comment: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  },
  { additionalProperties: false },
);

const InhibitionView = Type.Object({
  id: Type.String(),
  name: Nullable(Type.String()),
  sourceMatchers: Type.Array(Matcher),
  targetMatchers: Type.Array(Matcher),
  equal: Type.Array(Type.String()),
  comment: Nullable(Type.String()),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const conflict = { 409: Type.Ref('Problem') };

/** Inhibition rules (Alertmanager's inhibit_rules): read to list, write to change. */
export function inhibitionRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');
    const tags = ['alerts'];

    app.get(
      '/inhibitions',
      {
        schema: {
          tags,
          summary: 'List inhibition rules, in the order they apply',
          response: { 200: Type.Object({ inhibitions: Type.Array(InhibitionView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ inhibitions: await listInhibitions(db, contextOf(req)) }),
    );
    app.post(
      '/inhibitions',
      {
        schema: {
          tags,
          summary:
            'Create an inhibition rule: while a source alert fires, target alerts with the same equal labels are not notified',
          body: InhibitionBody,
          response: { 201: InhibitionView, ...problems, ...conflict },
        },
        preHandler: write,
      },
      async (req, reply) => reply.code(201).send(await createInhibition(db, contextOf(req), req.body)),
    );
    app.get(
      '/inhibitions/:id',
      {
        schema: {
          tags,
          summary: 'One inhibition rule',
          params: IdParams,
          response: { 200: InhibitionView, ...problems },
        },
        preHandler: read,
      },
      async (req) => getInhibition(db, contextOf(req), req.params.id),
    );
    app.put(
      '/inhibitions/:id',
      {
        schema: {
          tags,
          summary: 'Replace an inhibition rule',
          params: IdParams,
          body: InhibitionBody,
          response: { 200: InhibitionView, ...problems, ...conflict },
        },
        preHandler: write,
      },
      async (req) => replaceInhibition(db, contextOf(req), req.params.id, req.body),
    );
    app.delete(
      '/inhibitions/:id',
      {
        schema: {
          tags,
          summary: 'Delete an inhibition rule; the alerts it held are notified within one group_interval',
          params: IdParams,
          response: { 200: InhibitionView, ...problems },
        },
        preHandler: write,
      },
      async (req) => deleteInhibition(db, contextOf(req), req.params.id),
    );
  };
}
