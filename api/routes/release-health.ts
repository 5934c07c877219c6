import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { duration } from '#core/config.ts';
import type { Db } from '#core/db/client.ts';
import { BadRequestError, ConfigError } from '#core/errors.ts';
import { releaseHealth } from '#core/release-health/queries.ts';
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

function windowMs(window: string): number {
  try {
    return duration('window', window);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new BadRequestError(
        `window=${window} is not a duration: use a number and a unit, e.g. 1h, 24h or 7d (at most the raw retention, 7d by default)`,
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
          querystring: Type.Object(
            {
              environment: Type.String({ minLength: 1, maxLength: 64, default: 'production' }),
              window: Type.String({
                minLength: 1,
                maxLength: 16,
                default: '24h',
                description: 'A duration ending now (e.g. 1h, 24h, 7d), at most the raw retention',
              }),
            },
            { additionalProperties: false },
          ),
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
        const iso = (ms: number) => new Date(ms).toISOString();
        return { ...health, window: { from: iso(health.window.from), to: iso(health.window.to) } };
      },
    );
  };
}
