import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { duration } from '#core/config.ts';
import type { Db } from '#core/db/client.ts';
import { BadRequestError, ConfigError } from '#core/errors.ts';
import { releaseHealth, versionSessions } from '#core/release-health/queries.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const Rate = Nullable(Type.Number({ minimum: 0, maximum: 1 }));
const Millis = Nullable(Type.Number({ minimum: 0 }));

const VersionHealth = Type.Object({
  version: Type.String(),
  sessions: Type.Object(
    {
      total: Type.Integer(),
      healthy: Type.Integer(),
      errored: Type.Integer(),
      crashed: Type.Integer(),
      abnormal: Type.Integer(),
      movedByRollout: Type.Integer(),
      active: Type.Integer(),
    },
    { description: 'Sessions seen in the window, by status (mutually exclusive)' },
  ),
  users: Type.Integer({ description: 'Distinct clients (keyed hashes) of those sessions' }),
  crashFreeSessions: Rate,
  crashFreeUsers: Rate,
  erroredRate: Rate,
  duration: Type.Object(
    { p50: Millis, p90: Millis },
    { description: 'First to last seen of ended sessions, ms; null without any' },
  ),
  adoption: Type.Object(
    { sessions: Rate, users: Rate },
    { description: "Share of the environment's sessions and users over the last 24 hours" },
  ),
  stage: Type.Union([Type.Literal('adopted'), Type.Literal('replaced'), Type.Literal('low-adoption')]),
});

const ReleaseHealthView = Type.Object({
  server: Type.String(),
  environment: Type.String(),
  window: Type.Object({ from: Timestamp, to: Timestamp }),
  versions: Type.Array(VersionHealth, { description: 'Newest first by semver' }),
  average: Type.Object(
    { crashFreeSessions: Rate, crashFreeUsers: Rate, erroredRate: Rate },
    { description: "All the environment's sessions in the window, every version pooled" },
  ),
});

/** The JSON of `GET …/release-health`, for clients (the CLI). */
export type ReleaseHealthJson = Static<typeof ReleaseHealthView>;

const StatusCounts = {
  total: Type.Integer(),
  healthy: Type.Integer(),
  errored: Type.Integer(),
  crashed: Type.Integer(),
  abnormal: Type.Integer(),
  movedByRollout: Type.Integer(),
  active: Type.Integer(),
};

const STATUS = Type.Union([
  Type.Literal('healthy'),
  Type.Literal('errored'),
  Type.Literal('crashed'),
  Type.Literal('abnormal'),
  Type.Literal('moved-by-rollout'),
  Type.Literal('active'),
]);

const VersionSessionsView = Type.Object({
  server: Type.String(),
  environment: Type.String(),
  version: Type.String(),
  window: Type.Object({ from: Timestamp, to: Timestamp }),
  stepSeconds: Type.Integer(),
  series: Type.Array(Type.Object({ time: Timestamp, ...StatusCounts }), {
    description: 'Sessions first seen in each step, by their status now; every step, oldest first',
  }),
  sessions: Type.Array(
    Type.Object({
      id: Type.String({ description: 'Keyed hash of the gateway session, or the OTLP mcp.session.id' }),
      status: STATUS,
      endReason: Nullable(Type.String({ description: 'delete, client-closed, upstream-failure, rollback' })),
      firstSeen: Timestamp,
      lastSeen: Timestamp,
      durationMs: Millis,
      requests: Type.Integer(),
      errors: Type.Integer(),
      crashes: Type.Integer(),
      user: Nullable(Type.String({ description: 'Keyed hash of the client' })),
    }),
    { description: 'The sessions seen last, latest first' },
  ),
});

const WindowQuery = {
  environment: Type.String({ minLength: 1, maxLength: 64, default: 'production' }),
  window: Type.String({
    minLength: 1,
    maxLength: 16,
    default: '24h',
    description:
      'A duration ending now (e.g. 1h, 24h, 7d): for the figures at most the rollups’ retention (90d by default), for the sessions list the raw retention (7d)',
  }),
};

const iso = (ms: number) => new Date(ms).toISOString();

function windowMs(window: string): number {
  try {
    return duration('window', window);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new BadRequestError(
        `window=${window} is not a duration: use a number and a unit, e.g. 1h, 24h or 7d`,
        'invalid-window',
      );
    }
    throw error;
  }
}

/** Release health per version (sessions, crash-free sessions and users, adoption): read permission. */
export function releaseHealthRoutes(db: Db, warehouse: Warehouse): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/servers/:server/release-health',
      {
        schema: {
          tags: ['release-health'],
          summary: "Every version's sessions by status, crash-free sessions and users, adoption and stage",
          params: Type.Object({ server: Type.String({ maxLength: 255 }) }, { additionalProperties: false }),
          querystring: Type.Object(WindowQuery, { additionalProperties: false }),
          response: { 200: ReleaseHealthView, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => {
        const health = await releaseHealth(db, warehouse, contextOf(req).principal, {
          server: req.params.server,
          environment: req.query.environment,
          windowMs: windowMs(req.query.window),
        });
        return { ...health, window: { from: iso(health.window.from), to: iso(health.window.to) } };
      },
    );

    app.get(
      '/servers/:server/versions/:version/sessions',
      {
        schema: {
          tags: ['release-health'],
          summary: "A version's sessions by status per step, and the latest sessions with why they ended",
          params: Type.Object(
            { server: Type.String({ maxLength: 255 }), version: Type.String({ maxLength: 256 }) },
            { additionalProperties: false },
          ),
          querystring: Type.Object(
            { ...WindowQuery, limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }) },
            { additionalProperties: false },
          ),
          response: { 200: VersionSessionsView, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => {
        const found = await versionSessions(db, warehouse, contextOf(req).principal, {
          server: req.params.server,
          version: req.params.version,
          environment: req.query.environment,
          windowMs: windowMs(req.query.window),
          limit: req.query.limit,
        });
        return {
          ...found,
          window: { from: iso(found.window.from), to: iso(found.window.to) },
          series: found.series.map(({ time, 'moved-by-rollout': movedByRollout, ...counts }) => ({
            time: iso(time),
            ...counts,
            movedByRollout,
          })),
          sessions: found.sessions.map((s) => ({
            ...s,
            firstSeen: iso(s.firstSeen),
            lastSeen: iso(s.lastSeen),
          })),
        };
      },
    );
  };
}
