import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createAnalysis, type AnalysisInput, type CanaryDeps } from '#core/canary/analysis.ts';
import { getAnalysisRow, getReport, listAnalyses, toView } from '#core/canary/analysis-view.ts';
import { renderHtml, renderMarkdown } from '#core/canary/report.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';
import { ServerParams } from './servers.ts';

const Duration = Type.String({ maxLength: 16, description: 'A duration: 30s, 10m, 1h, 2d' });
const Verdict = Type.Union([
  Type.Literal('pass'),
  Type.Literal('marginal'),
  Type.Literal('fail'),
  Type.Literal('inconclusive'),
]);

const MetricOverride = Type.Object(
  {
    name: Type.String({ maxLength: 64 }),
    group: Type.Optional(Type.String({ maxLength: 64 })),
    direction: Type.Optional(
      Type.Union([Type.Literal('increase'), Type.Literal('decrease'), Type.Literal('either')]),
    ),
    critical: Type.Optional(Type.Boolean()),
    mustHaveData: Type.Optional(Type.Boolean()),
    weight: Type.Optional(Type.Number()),
    nanStrategy: Type.Optional(Type.Union([Type.Literal('remove'), Type.Literal('replace')])),
    outliers: Type.Optional(Nullable(Type.Object({ factor: Type.Optional(Type.Number()) }))),
    allowedIncrease: Type.Optional(Type.Number()),
    criticalIncrease: Type.Optional(Type.Number()),
    allowedDecrease: Type.Optional(Type.Number()),
    criticalDecrease: Type.Optional(Type.Number()),
    tolerance: Type.Optional(Type.Number()),
    confidence: Type.Optional(Type.Number()),
    absoluteTolerance: Type.Optional(Type.Number()),
    zeroBaseline: Type.Optional(Type.Union([Type.Literal('high'), Type.Literal('critical')])),
    minEvents: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'count-based metrics (session_crash_rate): fewest canary events for a rise',
      }),
    ),
  },
  { additionalProperties: false },
);

const CreateAnalysis = Type.Object(
  {
    candidate: Type.String({ minLength: 1, maxLength: 256 }),
    baseline: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: 'Default: the stable version that ran in the environment in the window',
      }),
    ),
    environment: Type.String({ minLength: 1, maxLength: 64 }),
    window: Type.Optional(
      Type.String({ maxLength: 16, description: 'A past window ending now (default 30m)' }),
    ),
    from: Type.Optional(Timestamp),
    to: Type.Optional(Timestamp),
    lifetime: Type.Optional(
      Type.String({ maxLength: 16, description: 'Watch from now for this long instead of a past window' }),
    ),
    every: Type.Optional(
      Type.String({ maxLength: 16, description: 'Interim judgements (default 5 intervals)' }),
    ),
    interval: Type.Optional(Duration),
    metrics: Type.Optional(Type.Array(MetricOverride, { maxItems: 50 })),
    operationMetrics: Type.Optional(
      Type.Union([Type.Literal(false), Type.Array(MetricOverride, { maxItems: 10 })]),
    ),
    thresholds: Type.Optional(
      Type.Object(
        { pass: Type.Optional(Type.Number()), marginal: Type.Optional(Type.Number()) },
        { additionalProperties: false },
      ),
    ),
    minRequestsPerInterval: Type.Optional(Type.Integer()),
    minRequestsPerWindow: Type.Optional(Type.Integer()),
    minIntervals: Type.Optional(Type.Integer()),
    groupWeights: Type.Optional(Type.Record(Type.String(), Type.Number())),
  },
  { additionalProperties: false },
);

const Loose = Type.Record(Type.String(), Type.Unknown());

export const AnalysisView = Type.Object({
  id: Type.String(),
  server: Type.String(),
  environment: Type.String(),
  baseline: Type.String(),
  candidate: Type.String(),
  baselineSource: Type.String(),
  deploymentId: Nullable(Type.String()),
  step: Nullable(Type.Integer()),
  status: Type.Union([Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed')]),
  verdict: Nullable(Verdict),
  score: Nullable(Type.Number()),
  reasons: Type.Array(Type.String()),
  warnings: Type.Array(Type.String()),
  action: Nullable(Type.String()),
  error: Nullable(Type.String()),
  window: Type.Object({ start: Timestamp, end: Timestamp, intervalSeconds: Type.Integer() }),
  interim: Type.Array(
    Type.Object({
      at: Timestamp,
      score: Nullable(Type.Number()),
      verdict: Verdict,
      canaryRequests: Type.Number(),
    }),
  ),
  metrics: Type.Array(Loose),
  traffic: Nullable(
    Type.Object({
      canaryRequests: Type.Number(),
      baselineRequests: Type.Number(),
      intervals: Type.Integer(),
    }),
  ),
  contract: Nullable(Loose),
  changes: Nullable(Loose),
  createdBy: Type.String(),
  createdAt: Timestamp,
  finishedAt: Nullable(Timestamp),
});

const AnalysisParams = Type.Object(
  { server: Type.String({ maxLength: 64 }), id: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);

/** Canary analyses of a server: read to see their reports, deploy to run one. */
export function analysisRoutes(deps: CanaryDeps): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['canary'];
    const read = app.requirePermission('read');
    const deploy = app.requirePermission('deploy');

    app.get(
      '/servers/:server/analyses',
      {
        schema: {
          tags,
          summary: 'List canary analyses, newest first',
          params: ServerParams,
          querystring: Type.Object(
            {
              environment: Type.Optional(Type.String({ maxLength: 64 })),
              candidate: Type.Optional(Type.String({ maxLength: 256 })),
              baseline: Type.Optional(Type.String({ maxLength: 256 })),
              deployment: Type.Optional(Type.String({ maxLength: 64 })),
              deploymentId: Type.Optional(Type.String({ maxLength: 64, description: 'Same as deployment' })),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ analyses: Type.Array(AnalysisView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({
        analyses: await listAnalyses(deps.db, contextOf(req).principal, req.params.server, {
          ...req.query,
          deployment: req.query.deployment ?? req.query.deploymentId,
        }),
      }),
    );

    app.post(
      '/servers/:server/analyses',
      {
        schema: {
          tags,
          summary:
            'Judge a candidate against a baseline: over a past window at once (201 with the verdict), or from now for a lifetime (202, running)',
          params: ServerParams,
          body: CreateAnalysis,
          response: { 201: AnalysisView, 202: AnalysisView, ...problems },
        },
        preHandler: deploy,
      },
      async (req, reply) => {
        const view = await createAnalysis(deps, contextOf(req), req.params.server, req.body as AnalysisInput);
        return reply.code(view.status === 'running' ? 202 : 201).send(view as never);
      },
    );

    app.get(
      '/servers/:server/analyses/:id',
      {
        schema: {
          tags,
          summary:
            'An analysis with its report: JSON, or format=markdown (PR comments, Slack) or format=html (a self-contained page)',
          params: AnalysisParams,
          querystring: Type.Object(
            {
              format: Type.Optional(
                Type.Union([Type.Literal('json'), Type.Literal('markdown'), Type.Literal('html')]),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Intersect([AnalysisView, Type.Object({ report: Nullable(Loose) })]),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req, reply) => {
        const { principal } = contextOf(req);
        const format = req.query.format ?? 'json';
        if (format === 'json') {
          const row = await getAnalysisRow(deps.db, principal, req.params.server, req.params.id);
          return { ...toView(row), report: (row.report as unknown as Record<string, unknown>) ?? null };
        }
        const report = await getReport(deps.db, principal, req.params.server, req.params.id);
        if (format === 'markdown')
          return reply.type('text/markdown; charset=utf-8').send(renderMarkdown(report));
        return reply.type('text/html; charset=utf-8').send(renderHtml(report));
      },
    );
  };
}
