import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  CHANGE_KINDS,
  SEMVER_DISTANCES,
  versionChanges,
  DEFAULT_EVENTS_WINDOW_MS,
} from '#core/changes/index.ts';
import { duration } from '#core/config.ts';
import type { Db } from '#core/db/client.ts';
import { BadRequestError, ConfigError } from '#core/errors.ts';
import { compareBaseline } from '#core/telemetry/version-health.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

export const ChangeRowView = Type.Object({
  kind: Type.Enum([...CHANGE_KINDS]),
  name: Type.String(),
  before: Nullable(Type.String({ description: 'Never a secret value: set/unset for secrets' })),
  after: Nullable(
    Type.String({ description: 'Never a secret value: changed/set/unset/rotated for secrets' }),
  ),
  scope: Type.String({
    description: 'version 1.4.0 (its configuration), org, org+production, server, server+production, default',
  }),
  actor: Nullable(Type.String()),
  at: Nullable(Timestamp),
  detail: Type.Optional(Type.String()),
  distance: Type.Optional(Type.Enum([...SEMVER_DISTANCES])),
  breaking: Type.Optional(Type.Boolean()),
});

const ChangesView = Type.Object({
  server: Type.String(),
  baseline: Type.String(),
  candidate: Type.String(),
  environment: Nullable(Type.String()),
  window: Type.Object({ from: Timestamp, to: Timestamp }),
  contractCompared: Type.Boolean({ description: 'false: no tools/list of both versions to diff' }),
  changes: Type.Array(ChangeRowView),
  summary: Type.String({
    description: 'The top changes in one line, as alert and canary messages carry them',
  }),
});

/** `GET /servers/{server}/changes`: what changed between two versions in an environment (read permission). */
export function changeRoutes(db: Db, warehouse: Warehouse): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/servers/:server/changes',
      {
        schema: {
          tags: ['versions'],
          summary:
            'What changed from baseline to candidate: packages, remotes, declared and resolved variables, secrets (by fingerprint), breaking flag, MCP contract, and audited configuration events',
          params: Type.Object({ server: Type.String({ maxLength: 255 }) }, { additionalProperties: false }),
          querystring: Type.Object(
            {
              candidate: Type.String({ minLength: 1, maxLength: 256 }),
              baseline: Type.Optional(
                Type.String({
                  minLength: 1,
                  maxLength: 256,
                  description:
                    'Default: what compare picks (the newest stable version with traffic in the environment in the last hour)',
                }),
              ),
              environment: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
              from: Type.Optional(Timestamp),
              to: Type.Optional(Timestamp),
              window: Type.Optional(
                Type.String({
                  maxLength: 16,
                  description: 'Configuration events over this duration ending at to (e.g. 24h); default 7d',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: ChangesView, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => {
        const { principal } = contextOf(req);
        const q = req.query;
        const to = q.to ? new Date(q.to) : new Date();
        let from = q.from ? new Date(q.from) : undefined;
        if (q.window !== undefined) {
          if (q.from) throw new BadRequestError('pass from or window, not both', 'invalid-window');
          from = new Date(to.getTime() - windowMs(q.window));
        }
        const baseline = await compareBaseline(db, warehouse, principal, {
          server: req.params.server,
          environment: q.environment,
          candidate: q.candidate,
          baseline: q.baseline,
          from: to.getTime() - 3_600_000,
          to: to.getTime(),
        });
        return versionChanges(db, principal, {
          server: req.params.server,
          baseline,
          candidate: q.candidate,
          environment: q.environment,
          from: from ?? new Date(to.getTime() - DEFAULT_EVENTS_WINDOW_MS),
          to,
        });
      },
    );
  };
}

function windowMs(window: string): number {
  try {
    return duration('window', window);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new BadRequestError(`window=${window} is not a duration (e.g. 15m, 1h, 7d)`, 'invalid-window');
    }
    throw error;
  }
}
