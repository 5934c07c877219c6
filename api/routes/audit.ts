import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { listAudit, verifyAuditChain } from '#core/audit/log.ts';
import type { Db } from '#core/db/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const AuditEvent = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  at: Timestamp,
  actor: Type.Object({ type: Type.String(), id: Nullable(Type.String()), name: Type.String() }),
  action: Type.String(),
  target: Type.Object({ type: Type.String(), id: Nullable(Type.String()), name: Nullable(Type.String()) }),
  before: Type.Unknown(),
  after: Type.Unknown(),
  requestId: Nullable(Type.String()),
  clientAddress: Nullable(Type.String()),
  hash: Type.String(),
  prevHash: Type.String(),
});

const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ description: 'Actor name or token id' })),
    action: Type.Optional(Type.String({ description: 'Exact action, or a prefix ending in .* (token.*)' })),
    target: Type.Optional(Type.String({ description: 'Target type, id or name' })),
    since: Type.Optional(Timestamp),
    until: Type.Optional(Timestamp),
    cursor: Type.Optional(
      Type.String({ pattern: '^[0-9]+$', description: 'nextCursor of the previous page' }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
);

const ChainReport = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer(),
  firstBad: Nullable(
    Type.Object({ seq: Type.Integer(), id: Nullable(Type.String()), reason: Type.String() }),
  ),
});

/** The org's audit trail and its hash-chain check: admin only. */
export function auditRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const admin = app.requirePermission('admin');
    app.get(
      '/audit',
      {
        schema: {
          tags: ['audit'],
          summary: 'Audit events, newest first',
          querystring: AuditQuery,
          response: {
            200: Type.Object({ events: Type.Array(AuditEvent), nextCursor: Nullable(Type.String()) }),
            ...problems,
          },
        },
        preHandler: admin,
      },
      async (req) => {
        const { cursor, ...filter } = req.query;
        return listAudit(db, contextOf(req).principal.orgId, {
          ...filter,
          before: cursor ? Number(cursor) : undefined,
        });
      },
    );
    app.get(
      '/audit/verify',
      {
        schema: {
          tags: ['audit'],
          summary: 'Check the hash chain',
          response: { 200: ChainReport, ...problems },
        },
        preHandler: admin,
      },
      async (req) => verifyAuditChain(db, contextOf(req).principal.orgId),
    );
  };
}
