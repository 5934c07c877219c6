import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { versionChanges } from '#core/changes/index.ts';
import { duration } from '#core/config.ts';
import { BadRequestError, ConfigError } from '#core/errors.ts';
import type { Db } from '#core/db/client.ts';
import { ENVIRONMENT_PATTERN } from '#core/registry/variables.ts';
import { compareReport, metricSeries, parseWindow, versionSummary } from '#core/telemetry/version-health.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const Window = {
  from: Type.Optional(Timestamp),
  to: Type.Optional(Timestamp),
  window: Type.Optional(
    Type.String({ maxLength: 16, description: 'A duration ending now (e.g. 15m, 1h, 7d); default 1h' }),
  ),
  environment: Type.Optional(Type.String({ maxLength: 64 })),
};

function windowOf(query: { from?: string; to?: string; window?: string }) {
  let windowMs: number | undefined;
  if (query.window) {
    try {
      windowMs = duration('window', query.window);
    } catch (error) {
      if (error instanceof ConfigError) {
        throw new BadRequestError(
          `window=${query.window} is not a duration (e.g. 15m, 1h, 7d)`,
          'invalid-window',
        );
      }
      throw error;
    }
  }
  return parseWindow({ from: query.from, to: query.to, windowMs });
}

// Telemetry may name environments the registry cannot (no variables there): no changes for those.
const ENVIRONMENT_RE = new RegExp(ENVIRONMENT_PATTERN);

const Server = Type.Object({ server: Type.String({ maxLength: 255 }) }, { additionalProperties: false });
const Loose = Type.Record(Type.String(), Type.Unknown());

const NullableNum = Nullable(Type.Number());
const Series = Type.Object({
  resolution: Type.Union([Type.Literal('raw'), Type.Literal('minute'), Type.Literal('hour')], {
    description: 'Raw rows, per-minute or per-hour rollups',
  }),
  stepSeconds: Type.Integer({ description: 'The step used, widened to whole buckets' }),
  points: Type.Array(
    Type.Object({
      time: Timestamp,
      requests: Type.Integer(),
      throughput: Type.Number({ description: 'Requests per second over the part of the step in the window' }),
      errorRate: Nullable(
        Type.Number({ description: 'errors / requests, 0..1; null for a step without requests' }),
      ),
      p50: NullableNum,
      p95: NullableNum,
      p99: NullableNum,
      cpu: NullableNum,
      cpuSeconds: NullableNum,
      memory: NullableNum,
      memoryMax: NullableNum,
    }),
    { description: 'Every step of the window, oldest first; latency in ms, null without requests' },
  ),
});

/**
 * Per-version health from the collector's telemetry: read permission. A server need not be
 * registered: its telemetry is shown with `registered: false`.
 */
export function telemetryRoutes(db: Db, warehouse: Warehouse): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['telemetry'];
    const read = app.requirePermission('read');

    app.get(
      '/servers/:server/metrics',
      {
        schema: {
          tags,
          summary: 'Throughput (req/s), error rate, p50/p95/p99 latency (ms), CPU and memory per step',
          params: Server,
          querystring: Type.Object(
            {
              ...Window,
              version: Type.Optional(Type.String({ maxLength: 256 })),
              operation: Type.Optional(Type.String({ maxLength: 512 })),
              step: Type.Optional(
                Type.Integer({ minimum: 1, maximum: 86_400, description: 'Seconds per point' }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 200: Series, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        metricSeries(warehouse, contextOf(req).principal, {
          server: req.params.server,
          ...windowOf(req.query),
          environment: req.query.environment,
          version: req.query.version,
          operation: req.query.operation,
          stepSeconds: req.query.step,
        }),
    );

    app.get(
      '/servers/:server/versions/:version/summary',
      {
        schema: {
          tags,
          summary:
            "A version's requests, error rate, throughput, latency, per-operation figures and top error types",
          params: Type.Object(
            { server: Type.String({ maxLength: 255 }), version: Type.String({ maxLength: 256 }) },
            { additionalProperties: false },
          ),
          querystring: Type.Object(Window, { additionalProperties: false }),
          response: { 200: Loose, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        versionSummary(db, warehouse, contextOf(req).principal, {
          server: req.params.server,
          version: req.params.version,
          ...windowOf(req.query),
          environment: req.query.environment,
        }),
    );

    app.get(
      '/servers/:server/compare',
      {
        schema: {
          tags,
          summary:
            'Candidate against baseline (default: the newest stable version with traffic in the environment)',
          params: Server,
          querystring: Type.Object(
            {
              ...Window,
              candidate: Type.String({ minLength: 1, maxLength: 256 }),
              baseline: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Loose, ...problems },
        },
        preHandler: read,
      },
      async (req) => {
        const window = windowOf(req.query);
        const report = await compareReport(db, warehouse, contextOf(req).principal, {
          server: req.params.server,
          ...window,
          environment: req.query.environment,
          candidate: req.query.candidate,
          baseline: req.query.baseline,
        });
        // What changed (core/changes), when the registry knows both versions; events of the 7 days before `to`.
        const { registered } = report;
        const changes =
          registered.server &&
          registered.baseline &&
          registered.candidate &&
          (req.query.environment === undefined || ENVIRONMENT_RE.test(req.query.environment))
            ? (
                await versionChanges(db, contextOf(req).principal, {
                  server: report.server,
                  baseline: report.baseline.version,
                  candidate: report.candidate.version,
                  environment: req.query.environment,
                  to: new Date(Number(window.to)),
                })
              ).changes
            : null;
        return { ...report, changes };
      },
    );
  };
}
