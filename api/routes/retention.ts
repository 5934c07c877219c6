import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import {
  deleteRetention,
  getOrgRetention,
  getServerRetention,
  previewRetention,
  putRetention,
} from '#core/registry/retention.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';
import { ServerParams } from './servers.ts';

// Integers without a minimum here: core refuses keepPerLine 0 with why (it would keep nothing).
const PolicyBody = Type.Object(
  {
    keepPerLine: Type.Integer({ description: 'Keep the newest N versions of each line (at least 1)' }),
    keepDeployedWithinDays: Type.Integer({
      description: 'Keep anything deployed to, or running in, any environment in the last D days (0: none)',
    }),
    enabled: Type.Optional(
      Type.Boolean({
        description: 'false: the daily run skips it (the preview still shows it); default true',
      }),
    ),
  },
  { additionalProperties: false },
);

const PolicyView = Type.Object({
  id: Type.String(),
  scope: Type.Union([Type.Literal('server'), Type.Literal('org')]),
  server: Nullable(Type.String()),
  keepPerLine: Type.Integer(),
  keepDeployedWithinDays: Type.Integer(),
  enabled: Type.Boolean(),
  updatedBy: Type.String(),
  updatedAt: Timestamp,
});

const ServerRetentionView = Type.Object({
  server: Type.String(),
  policy: Nullable(PolicyView),
  orgDefault: Nullable(PolicyView),
  effective: Nullable(PolicyView),
});

const Decision = Type.Object({
  version: Type.String(),
  status: Type.String(),
  line: Type.String(),
  reasons: Type.Array(Type.String()),
});

const PreviewView = Type.Object({
  server: Type.String(),
  policy: Nullable(PolicyView),
  at: Timestamp,
  retire: Type.Array(Decision, { description: 'What the daily run would retire, and why' }),
  keep: Type.Array(Decision, { description: 'What stays, and every rule that keeps it' }),
});

/** Version retention: read to see a policy and its dry run, write to change one. */
export function retentionRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');
    const tags = ['versions'];

    app.get(
      '/servers/:server/retention',
      {
        schema: {
          tags,
          summary: "A server's retention policy, the org default, and which one applies",
          params: ServerParams,
          response: { 200: ServerRetentionView, ...problems },
        },
        preHandler: read,
      },
      async (req) => getServerRetention(db, contextOf(req).principal, req.params.server),
    );
    app.put(
      '/servers/:server/retention',
      {
        schema: {
          tags,
          summary: "Set a server's retention policy (replaces the org default for it)",
          params: ServerParams,
          body: PolicyBody,
          response: { 200: PolicyView, ...problems },
        },
        preHandler: write,
      },
      async (req) => putRetention(db, contextOf(req), req.params.server, req.body),
    );
    app.delete(
      '/servers/:server/retention',
      {
        schema: {
          tags,
          summary: "Remove a server's own retention policy (the org default applies again)",
          params: ServerParams,
          response: { 200: PolicyView, ...problems },
        },
        preHandler: write,
      },
      async (req) => deleteRetention(db, contextOf(req), req.params.server),
    );
    app.get(
      '/servers/:server/retention/preview',
      {
        schema: {
          tags,
          summary: 'Dry run: which versions the retention policy would retire now and why, and what it keeps',
          params: ServerParams,
          response: { 200: PreviewView, ...problems },
        },
        preHandler: read,
      },
      async (req) => previewRetention(db, contextOf(req).principal, req.params.server),
    );
    app.get(
      '/retention',
      {
        schema: {
          tags,
          summary: "The org's default retention policy (for servers without their own)",
          response: { 200: Type.Object({ policy: Nullable(PolicyView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => getOrgRetention(db, contextOf(req).principal),
    );
    app.put(
      '/retention',
      {
        schema: {
          tags,
          summary: "Set the org's default retention policy",
          body: PolicyBody,
          response: { 200: PolicyView, ...problems },
        },
        preHandler: write,
      },
      async (req) => putRetention(db, contextOf(req), null, req.body),
    );
    app.delete(
      '/retention',
      {
        schema: {
          tags,
          summary: "Remove the org's default retention policy",
          response: { 200: PolicyView, ...problems },
        },
        preHandler: write,
      },
      async (req) => deleteRetention(db, contextOf(req), null),
    );
  };
}
