import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { duration } from '#core/config.ts';
import type { Db } from '#core/db/client.ts';
import { BadRequestError, ConfigError } from '#core/errors.ts';
import { OVERVIEW_DEFAULT_POINTS, overview } from '#core/overview.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const MAX_WINDOW_MS = 30 * 86_400_000;

const Num = Type.Number();
const NullableNum = Nullable(Type.Number());

const VersionFigures = Type.Object({
  version: Type.String(),
  requests: Type.Integer(),
  errors: Type.Integer(),
  errorRate: Type.Number({ description: '0..1' }),
  throughput: Type.Number({ description: 'Requests per second over the window' }),
  latency: Type.Object({ p50: NullableNum, p95: NullableNum, p99: NullableNum }, { description: 'ms' }),
  series: Type.Object(
    {
      requests: Type.Array(Type.Integer()),
      errorRate: Type.Array(NullableNum, {
        description: 'errors / requests, 0..1; null for a step without requests',
      }),
      throughput: Type.Array(Num),
      p50: Type.Array(NullableNum),
      p95: Type.Array(NullableNum),
    },
    { description: 'One value per step of `times`' },
  ),
});

const VersionSessions = Type.Object({
  version: Type.String(),
  sessions: Type.Integer({ description: 'Sessions seen in the window' }),
  active: Type.Integer({ description: 'Of those, still active now' }),
  crashed: Type.Integer(),
  users: Type.Integer(),
  crashFreeSessions: Nullable(Type.Number({ description: '0..1; null without a finished session' })),
  crashFreeUsers: Nullable(Type.Number({ description: '0..1; null without a user with a finished session' })),
  change: Type.Object(
    { crashFreeSessions: NullableNum, crashFreeUsers: NullableNum },
    { description: "This version's rate − the environment's average, 0..1 points" },
  ),
});

const Sessions = Type.Object(
  {
    current: Nullable(VersionSessions),
    previous: Nullable(VersionSessions),
    average: Type.Object(
      { sessions: Type.Integer(), crashFreeSessions: NullableNum, crashFreeUsers: NullableNum },
      { description: "Every version's sessions in the environment pooled" },
    ),
  },
  { description: 'Release health over the window; null without any session there' },
);

const OverviewEnvironment = Type.Object({
  environment: Type.String(),
  position: Type.Integer(),
  stable: Nullable(
    Type.Object({ version: Type.String(), since: Timestamp, by: Type.String(), deploymentId: Type.String() }),
  ),
  rollout: Nullable(
    Type.Object({
      id: Type.String(),
      version: Type.String(),
      weight: Type.Integer({ description: 'Percent of traffic on the rollout version' }),
      status: Type.String(),
      strategy: Type.String(),
      since: Timestamp,
      by: Type.String(),
    }),
  ),
  current: Nullable(Type.String({ description: "The rollout's version, else the stable one" })),
  previous: Nullable(
    Type.String({ description: 'What current is judged against and a rollback returns to' }),
  ),
  health: Nullable(
    Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('unknown')], {
      description: 'From the health checks that apply here; null without any',
    }),
  ),
  alerts: Type.Object({
    firing: Type.Integer(),
    critical: Type.Integer(),
    items: Type.Array(
      Type.Object({
        id: Type.String(),
        ruleName: Type.String(),
        severity: Type.String(),
        version: Nullable(Type.String()),
        summary: Nullable(Type.String()),
        firedAt: Nullable(Timestamp),
      }),
    ),
  }),
  canaryVerdict: Nullable(Type.Object({ id: Type.String(), verdict: Type.String(), at: Timestamp })),
  metrics: Type.Object({ current: Nullable(VersionFigures), previous: Nullable(VersionFigures) }),
  sessions: Nullable(Sessions),
  deltas: Type.Object({
    errorRate: Nullable(Type.Number({ description: 'current − previous, 0..1' })),
    p95: Nullable(Type.Number({ description: 'current / previous − 1' })),
  }),
  rollbackRecommended: Type.Boolean(),
  reasons: Type.Array(
    Type.Object({
      code: Type.String({
        description: 'critical-alert | canary-analysis-failed | error-rate-regression | latency-regression',
      }),
      message: Type.String(),
    }),
  ),
});

const Overview = Type.Object({
  window: Type.Object({ from: Timestamp, to: Timestamp }),
  stepSeconds: Type.Integer(),
  times: Type.Array(Timestamp, { description: 'Start of each sparkline step' }),
  servers: Type.Array(
    Type.Object({
      slug: Type.String(),
      name: Type.String(),
      description: Type.String(),
      environments: Type.Array(OverviewEnvironment),
    }),
  ),
});

function windowMs(value: string | undefined): number {
  if (value === undefined) return 3_600_000;
  let ms: number;
  try {
    ms = duration('window', value);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new BadRequestError(`window=${value} is not a duration (e.g. 15m, 1h, 7d)`, 'invalid-window');
    }
    throw error;
  }
  if (ms < 60_000 || ms > MAX_WINDOW_MS) {
    throw new BadRequestError(`window=${value} must be from 1m to 30d`, 'invalid-window');
  }
  return ms;
}

/** The on-call dashboard in one request: read permission; server-limited tokens see their servers only. */
export function overviewRoutes(db: Db, warehouse: Warehouse): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/overview',
      {
        schema: {
          tags: ['telemetry'],
          summary:
            'Every server × environment: stable version, active rollout, health, firing alerts, current vs previous version error rate / p95 / throughput with sparklines, crash-free sessions and users, and a rollback recommendation',
          querystring: Type.Object(
            {
              environment: Type.Optional(Type.String({ maxLength: 64 })),
              server: Type.Optional(Type.String({ maxLength: 255 })),
              window: Type.Optional(
                Type.String({ maxLength: 16, description: 'A duration ending now, 1m to 30d; default 1h' }),
              ),
              points: Type.Optional(
                Type.Integer({
                  minimum: 2,
                  maximum: 240,
                  description: `Sparkline steps (default ${OVERVIEW_DEFAULT_POINTS})`,
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Overview, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => {
        const to = Date.now();
        return overview(db, warehouse, contextOf(req).principal, {
          from: to - windowMs(req.query.window),
          to,
          environment: req.query.environment,
          server: req.query.server,
          points: req.query.points,
        });
      },
    );
  };
}
