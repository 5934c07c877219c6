import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import {
  createChannel,
  deleteChannel,
  getChannel,
  listChannels,
  rotateChannelSecret,
  updateChannel,
} from '#core/notify/channels.ts';
import { getDelivery, listDeliveries, markForRedelivery } from '#core/notify/deliveries.ts';
import { recordEvent } from '#core/notify/publisher.ts';
import { enqueueOrLeaveToSweeper, openNotifyQueue, requeueDeliveries } from '#core/notify/queue.ts';
import { createSilence, expireSilence, getSilence, listSilences } from '#core/notify/silences.ts';
import type { SsrfPolicy } from '#core/notify/ssrf.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import { contextOf } from '../plugins/auth.ts';
import { IdParams, Nullable, problems, Timestamp } from '../schemas.ts';

const Matcher = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    op: Type.Union([Type.Literal('='), Type.Literal('!='), Type.Literal('=~'), Type.Literal('!~')]),
    value: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);
const Matchers = Type.Array(Matcher, { maxItems: 20 });
const Events = Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
  minItems: 1,
  maxItems: 20,
  description: 'Event types or patterns: deployment.*, alert.firing, canary.verdict, * for all',
});
const Kind = Type.Union([Type.Literal('slack'), Type.Literal('webhook')]);

const ChannelView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Kind,
  target: Type.String({ description: 'Scheme and host of the URL; the URL itself is never returned' }),
  urlFingerprint: Type.String(),
  events: Type.Array(Type.String()),
  matchers: Type.Array(Matcher),
  signing: Nullable(
    Type.Object({ secretVersion: Type.Integer(), previousSecretExpiresAt: Nullable(Timestamp) }),
  ),
  createdAt: Timestamp,
  createdBy: Type.String(),
  updatedAt: Timestamp,
});
const WithSecret = Type.Intersect([
  Type.Object({
    secret: Nullable(
      Type.String({ description: 'Standard Webhooks signing secret (whsec_…), shown only in this response' }),
    ),
  }),
  ChannelView,
]);

const SilenceView = Type.Object({
  id: Type.String(),
  matchers: Type.Array(Matcher),
  startsAt: Timestamp,
  endsAt: Timestamp,
  createdBy: Type.String(),
  comment: Type.String(),
  createdAt: Timestamp,
  state: Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('expired')]),
});

const Status = Type.Union([
  Type.Literal('pending'),
  Type.Literal('delivered'),
  Type.Literal('dead'),
  Type.Literal('suppressed'),
]);
const DeliveryView = Type.Object({
  id: Type.String({ description: 'Also the webhook-id header: receivers drop duplicates by it' }),
  channelId: Type.String(),
  channelName: Type.String(),
  eventId: Type.String(),
  eventType: Type.String(),
  summary: Type.String(),
  server: Nullable(Type.String()),
  environment: Nullable(Type.String()),
  version: Nullable(Type.String()),
  status: Status,
  silenceId: Nullable(Type.String()),
  attempts: Type.Integer(),
  lastStatusCode: Nullable(Type.Integer()),
  lastError: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  nextAttemptAt: Nullable(Timestamp),
  deliveredAt: Nullable(Timestamp),
});

export interface NotifyRouteDeps {
  db: Db;
  redis: RedisStore;
  box: SecretBox;
  logger: Logger;
  policy: SsrfPolicy;
}

/**
 * Notification channels (admin: they hold credentials and send org data out), silences (write: the
 * people on call), deliveries and their dead letters (read; redeliver needs write).
 */
export function channelRoutes(deps: NotifyRouteDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const { db } = deps;
    let queue: ReturnType<typeof openNotifyQueue> | undefined;
    const notifyQueue = () => (queue ??= openNotifyQueue(deps.redis, deps.logger));
    app.addHook('onClose', async () => {
      await queue?.close();
    });
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');
    const admin = app.requirePermission('admin');
    const channelTags = ['notifications'];

    app.get(
      '/channels',
      {
        schema: {
          tags: channelTags,
          summary: 'List notification channels (URLs and secrets are never returned)',
          response: { 200: Type.Object({ channels: Type.Array(ChannelView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ channels: await listChannels(db, contextOf(req)) }),
    );
    app.post(
      '/channels',
      {
        schema: {
          tags: channelTags,
          summary: 'Create a Slack or signed-webhook channel; a webhook secret is shown once',
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 100 }),
              kind: Kind,
              url: Type.String({ minLength: 1, maxLength: 2000 }),
              events: Type.Optional(Events),
              matchers: Type.Optional(Matchers),
            },
            { additionalProperties: false },
          ),
          response: { 201: WithSecret, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: admin,
      },
      async (req, reply) => {
        const { view, secret } = await createChannel(
          { db, box: deps.box, policy: deps.policy },
          contextOf(req),
          req.body,
        );
        return reply.code(201).send({ secret, ...view });
      },
    );
    app.get(
      '/channels/:id',
      {
        schema: {
          tags: channelTags,
          summary: 'One notification channel',
          params: IdParams,
          response: { 200: ChannelView, ...problems },
        },
        preHandler: read,
      },
      async (req) => getChannel(db, contextOf(req), req.params.id),
    );
    app.patch(
      '/channels/:id',
      {
        schema: {
          tags: channelTags,
          summary: "Change a channel's name, URL, events or matchers",
          params: IdParams,
          body: Type.Object(
            {
              name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
              url: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
              events: Type.Optional(Events),
              matchers: Type.Optional(Matchers),
            },
            { additionalProperties: false },
          ),
          response: { 200: ChannelView, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: admin,
      },
      async (req) =>
        updateChannel({ db, box: deps.box, policy: deps.policy }, contextOf(req), req.params.id, req.body),
    );
    app.delete(
      '/channels/:id',
      {
        schema: {
          tags: channelTags,
          summary: 'Delete a channel and its deliveries (pending ones are not sent)',
          params: IdParams,
          response: { 204: Type.Null(), ...problems },
        },
        preHandler: admin,
      },
      async (req, reply) => {
        await deleteChannel(db, contextOf(req), req.params.id);
        return reply.code(204).send(null);
      },
    );
    app.post(
      '/channels/:id/rotate-secret',
      {
        schema: {
          tags: channelTags,
          summary:
            "Replace a webhook channel's signing secret (shown once); the old one also signs for a while",
          params: IdParams,
          querystring: Type.Object(
            {
              previousValidSeconds: Type.Optional(
                Type.Integer({
                  minimum: 0,
                  maximum: 7 * 86400,
                  description: 'How long the previous secret keeps signing too (default 86400; 0: stop now)',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: WithSecret, ...problems },
        },
        preHandler: admin,
      },
      async (req) => {
        const { view, secret } = await rotateChannelSecret(
          { db, box: deps.box },
          contextOf(req),
          req.params.id,
          req.query.previousValidSeconds,
        );
        return { secret, ...view };
      },
    );
    app.post(
      '/channels/:id/test',
      {
        schema: {
          tags: channelTags,
          summary: 'Send a test message to this channel only (no routing, no silences)',
          params: IdParams,
          response: { 202: Type.Object({ deliveryId: Type.String() }), ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const ctx = contextOf(req);
        const channel = await getChannel(db, ctx, req.params.id);
        const { pending } = await db.transaction((tx) =>
          recordEvent(
            tx,
            {
              type: 'channel.test',
              orgId: ctx.principal.orgId,
              summary: `Test message from Pylee to channel ${channel.name}, sent by ${ctx.principal.tokenName}`,
              data: { channel: channel.name, requestedBy: ctx.principal.tokenName },
            },
            { channelId: channel.id },
          ),
        );
        await enqueueOrLeaveToSweeper(notifyQueue(), pending, deps.logger);
        return reply.code(202).send({ deliveryId: pending[0] as string });
      },
    );

    const silenceTags = ['notifications'];
    app.get(
      '/silences',
      {
        schema: {
          tags: silenceTags,
          summary: 'List silences, newest first',
          querystring: Type.Object(
            {
              state: Type.Optional(
                Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('expired')]),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ silences: Type.Array(SilenceView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ silences: await listSilences(db, contextOf(req), req.query) }),
    );
    app.post(
      '/silences',
      {
        schema: {
          tags: silenceTags,
          summary: 'Silence notifications whose labels match, from startsAt (default now) to endsAt',
          body: Type.Object(
            {
              matchers: Type.Array(Matcher, { minItems: 1, maxItems: 20 }),
              startsAt: Type.Optional(Timestamp),
              endsAt: Timestamp,
              comment: Type.String({ minLength: 1, maxLength: 1000 }),
            },
            { additionalProperties: false },
          ),
          response: { 201: SilenceView, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => reply.code(201).send(await createSilence(db, contextOf(req), req.body)),
    );
    app.get(
      '/silences/:id',
      {
        schema: {
          tags: silenceTags,
          summary: 'One silence',
          params: IdParams,
          response: { 200: SilenceView, ...problems },
        },
        preHandler: read,
      },
      async (req) => getSilence(db, contextOf(req), req.params.id),
    );
    app.delete(
      '/silences/:id',
      {
        schema: {
          tags: silenceTags,
          summary: 'Expire a silence now (it stays listed, as expired)',
          params: IdParams,
          response: { 200: SilenceView, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: write,
      },
      async (req) => expireSilence(db, contextOf(req), req.params.id),
    );

    app.get(
      '/deliveries',
      {
        schema: {
          tags: channelTags,
          summary: 'Notification deliveries, newest first; status=dead is the dead-letter list',
          querystring: Type.Object(
            {
              status: Type.Optional(Status),
              channelId: Type.Optional(Type.String({ format: 'uuid' })),
              eventId: Type.Optional(Type.String({ format: 'uuid' })),
              before: Type.Optional(
                Type.String({ format: 'uuid', description: 'Last id of the previous page' }),
              ),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ deliveries: Type.Array(DeliveryView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ deliveries: await listDeliveries(db, contextOf(req), req.query) }),
    );
    app.get(
      '/deliveries/:id',
      {
        schema: {
          tags: channelTags,
          summary: 'One delivery: status, attempts, last response',
          params: IdParams,
          response: { 200: DeliveryView, ...problems },
        },
        preHandler: read,
      },
      async (req) => getDelivery(db, contextOf(req), req.params.id),
    );
    app.post(
      '/deliveries/:id/redeliver',
      {
        schema: {
          tags: channelTags,
          summary: 'Send a dead (or silenced) delivery again, with the same id and fresh attempts',
          params: IdParams,
          response: { 202: DeliveryView, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const view = await markForRedelivery(db, contextOf(req), req.params.id);
        await requeueDeliveries(notifyQueue(), [view.id]).catch((error: unknown) =>
          deps.logger.warn({ err: error, delivery: view.id }, 'redelivery left to the sweeper'),
        );
        return reply.code(202).send(view);
      },
    );
  };
}
