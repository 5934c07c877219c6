import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Queue } from 'bullmq';
import { Type, type TSchema } from 'typebox';
import { duration } from '#core/config.ts';
import type { Db } from '#core/db/client.ts';
import { BadRequestError, ConfigError, NotFoundError } from '#core/errors.ts';
import { createCheck, deleteCheck, getCheck, listChecks, updateCheck } from '#core/health/checks.ts';
import {
  CHECK_KINDS,
  CHECK_PHASES,
  formatMs,
  HTTP_METHODS,
  MCP_TRANSPORTS,
  type HealthCheck,
} from '#core/health/model.ts';
import { listResults, type HealthResult } from '#core/health/results.ts';
import { runCheck } from '#core/health/run.ts';
import { queueScheduler } from '#core/health/schedule.ts';
import { serverHealth } from '#core/health/status.ts';
import { latestToolSnapshot } from '#core/health/tools.ts';
import { registerStartupRequirement } from '#core/health/verification.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import { findServer } from '#core/registry/servers.ts';
import { parseWindow } from '#core/telemetry/version-health.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const literals = <T extends readonly string[]>(values: T) => Type.Union(values.map((v) => Type.Literal(v)));

const DurationText = (description: string) => Type.String({ maxLength: 16, description });

const CheckFields = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  kind: literals(CHECK_KINDS),
  phase: literals(CHECK_PHASES),
  environment: Nullable(
    Type.String({ maxLength: 64, description: 'Only this environment; null: every one' }),
  ),
  versionSelector: Nullable(
    Type.String({ maxLength: 256, description: 'A version or semver range (>=1.2.0 <2); null: every one' }),
  ),
  url: Type.String({
    minLength: 1,
    maxLength: 2048,
    description: 'http(s) URL; dependency checks also take tcp://host:port',
  }),
  method: literals(HTTP_METHODS),
  expectedStatus: Nullable(
    Type.String({ maxLength: 100, description: 'http: 2xx (default), 200, 200,204, 200-399…' }),
  ),
  bodyContains: Nullable(Type.String({ maxLength: 1000 })),
  bodyMatches: Nullable(Type.String({ maxLength: 500, description: 'A regular expression' })),
  transport: literals(MCP_TRANSPORTS),
  interval: DurationText('How often a runtime/dependency check runs, or a startup round repeats (5s–1d)'),
  timeout: DurationText('Per run, 100ms–60s and at most the interval; default 10s'),
  requiredPasses: Type.Integer({
    minimum: 1,
    maximum: 100,
    description: 'startup: passes in a row; default 3',
  }),
  startupTimeout: DurationText('startup: how long a deployment waits for the passes; default 5m'),
  enabled: Type.Boolean(),
};

const optional = <T extends Record<string, TSchema>>(fields: T) =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Type.Optional(v)])) as {
    [K in keyof T]: ReturnType<typeof Type.Optional<T[K]>>;
  };

const { name, kind, url, ...rest } = CheckFields;
const CreateBody = Type.Object({ name, kind, url, ...optional(rest) }, { additionalProperties: false });
const UpdateBody = Type.Object(optional(CheckFields), { additionalProperties: false });

const CheckView = Type.Object({
  id: Type.String(),
  server: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  phase: Type.String(),
  environment: Nullable(Type.String()),
  versionSelector: Nullable(Type.String()),
  url: Type.String(),
  method: Nullable(Type.String()),
  expectedStatus: Nullable(Type.String()),
  bodyContains: Nullable(Type.String()),
  bodyMatches: Nullable(Type.String()),
  transport: Nullable(Type.String()),
  interval: Type.String(),
  intervalMs: Type.Integer(),
  timeout: Type.String(),
  timeoutMs: Type.Integer(),
  requiredPasses: Type.Integer(),
  startupTimeout: Type.String(),
  startupTimeoutMs: Type.Integer(),
  enabled: Type.Boolean(),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const ResultView = Type.Object({
  runId: Type.String(),
  time: Timestamp,
  ok: Type.Boolean(),
  latencyMs: Type.Number(),
  statusCode: Type.Integer({ description: 'HTTP status; 0 when there was none' }),
  error: Type.String(),
  phase: Type.String(),
  environment: Type.String(),
  version: Type.String(),
  protocolVersion: Type.String(),
  toolCount: Type.Integer(),
  toolsHash: Type.String(),
  deploymentId: Type.String(),
});

const Latency = Type.Object({ p50: Nullable(Type.Number()), p95: Nullable(Type.Number()) });
const Status = literals(['up', 'down', 'unknown'] as const);

const HealthView = Type.Object({
  server: Type.String(),
  status: Status,
  window: Type.Object({ from: Timestamp, to: Timestamp }),
  checks: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      kind: Type.String(),
      phase: Type.String(),
      environment: Nullable(Type.String()),
      enabled: Type.Boolean(),
      status: Status,
      reason: Nullable(Type.String()),
      lastResult: Nullable(ResultView),
      total: Type.Integer({ description: 'Runs in the window' }),
      failures: Type.Integer(),
      uptimePercent: Nullable(Type.Number({ description: 'Passed runs / runs × 100 in the window' })),
      latency: Latency,
    }),
  ),
});

const ToolsView = Type.Object({
  server: Type.String(),
  version: Type.String(),
  environment: Type.String(),
  checkId: Nullable(Type.String()),
  protocolVersion: Type.String(),
  serverInfo: Nullable(Type.Object({ name: Type.String(), version: Type.String() })),
  toolCount: Type.Integer(),
  toolsHash: Type.String(),
  observedAt: Timestamp,
  tools: Type.Array(Type.Record(Type.String(), Type.Unknown())),
});

function checkView(c: HealthCheck) {
  return {
    id: c.id,
    server: c.server,
    name: c.name,
    kind: c.kind,
    phase: c.phase,
    environment: c.environment,
    versionSelector: c.versionSelector,
    url: c.target.url,
    method: c.kind === 'http' ? (c.target.method ?? 'GET') : null,
    expectedStatus: c.kind === 'http' ? (c.target.expectedStatus ?? '2xx') : null,
    bodyContains: c.target.bodyContains ?? null,
    bodyMatches: c.target.bodyMatches ?? null,
    transport: c.kind === 'mcp' ? (c.target.transport ?? 'streamable-http') : null,
    interval: formatMs(c.intervalMs),
    intervalMs: c.intervalMs,
    timeout: formatMs(c.timeoutMs),
    timeoutMs: c.timeoutMs,
    requiredPasses: c.requiredPasses,
    startupTimeout: formatMs(c.startupTimeoutMs),
    startupTimeoutMs: c.startupTimeoutMs,
    enabled: c.enabled,
    createdBy: c.createdBy,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}

function resultView(r: HealthResult) {
  return {
    runId: r.runId,
    time: r.time,
    ok: r.ok,
    latencyMs: r.latencyMs,
    statusCode: r.statusCode,
    error: r.error,
    phase: r.phase,
    environment: r.environment,
    version: r.version,
    protocolVersion: r.protocolVersion,
    toolCount: r.toolCount,
    toolsHash: r.toolsHash,
    deploymentId: r.deploymentId,
  };
}

const Window = {
  from: Type.Optional(Timestamp),
  to: Type.Optional(Timestamp),
  window: Type.Optional(DurationText('A duration ending now (e.g. 1h, 24h, 7d); default 24h')),
};

function windowOf(query: { from?: string; to?: string; window?: string }) {
  let windowMs = 86_400_000;
  if (query.window) {
    try {
      windowMs = duration('window', query.window);
    } catch (error) {
      if (error instanceof ConfigError) {
        throw new BadRequestError(
          `window=${query.window} is not a duration (e.g. 1h, 24h, 7d)`,
          'invalid-window',
        );
      }
      throw error;
    }
  }
  const w = parseWindow({ from: query.from, to: query.to, windowMs });
  return { from: Number(w.from), to: Number(w.to) };
}

const ServerParams = Type.Object(
  { server: Type.String({ maxLength: 255 }) },
  { additionalProperties: false },
);
const CheckParams = Type.Object(
  { server: Type.String({ maxLength: 255 }), id: Type.String({ format: 'uuid' }) },
  { additionalProperties: false },
);

/**
 * Health checks of a server: definitions (write to change), status/uptime/latency and results
 * (read), run now (write), and the tools an MCP check last listed per version. Changing a runtime or
 * dependency check updates its job scheduler in the same transaction.
 */
export function healthCheckRoutes(
  db: Db,
  warehouse: Warehouse,
  redis: RedisStore,
): FastifyPluginAsyncTypebox {
  // Deployments created through this API wait in `verifying` when startup checks apply to them.
  registerStartupRequirement();
  return async (app) => {
    const tags = ['health-checks'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');
    // The shared command connection: a Redis outage fails the change within seconds instead of hanging it.
    const queue = new Queue(QUEUES.health, { connection: redis.client, prefix: QUEUE_PREFIX });
    // Without a listener BullMQ prints connection errors with console.error (raw stack traces).
    queue.on('error', (error) => app.log.debug({ err: error }, 'health-checks queue connection error'));
    app.addHook('onClose', () => queue.close());
    const scheduler = queueScheduler(queue);

    app.get(
      '/servers/:server/health',
      {
        schema: {
          tags,
          summary: 'Status (up/down/unknown), last result, uptime % and latency p50/p95 of every check',
          params: ServerParams,
          querystring: Type.Object(
            { ...Window, environment: Type.Optional(Type.String({ maxLength: 64 })) },
            { additionalProperties: false },
          ),
          response: { 200: HealthView, ...problems },
        },
        preHandler: read,
      },
      async (req) => {
        const health = await serverHealth(db, warehouse, contextOf(req).principal, {
          server: req.params.server,
          ...windowOf(req.query),
          environment: req.query.environment,
        });
        return {
          ...health,
          checks: health.checks.map((c) => ({
            id: c.check.id,
            name: c.check.name,
            kind: c.check.kind,
            phase: c.check.phase,
            environment: c.check.environment,
            enabled: c.check.enabled,
            status: c.status,
            reason: c.reason,
            lastResult: c.lastResult && resultView(c.lastResult),
            total: c.total,
            failures: c.failures,
            uptimePercent: c.uptimePercent,
            latency: c.latency,
          })),
        };
      },
    );

    app.get(
      '/servers/:server/health-checks',
      {
        schema: {
          tags,
          summary: "List a server's health checks",
          params: ServerParams,
          querystring: Type.Object(
            {
              phase: Type.Optional(literals(CHECK_PHASES)),
              environment: Type.Optional(Type.String({ maxLength: 64 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ checks: Type.Array(CheckView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({
        checks: (await listChecks(db, contextOf(req).principal, req.params.server, req.query)).map(checkView),
      }),
    );

    app.post(
      '/servers/:server/health-checks',
      {
        schema: {
          tags,
          summary: 'Create a health check (http, mcp or dependency; startup, runtime or dependency phase)',
          params: ServerParams,
          body: CreateBody,
          response: { 201: CheckView, ...problems, 409: Type.Ref('Problem') },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const check = await createCheck(db, scheduler, contextOf(req), req.params.server, req.body);
        return reply.code(201).send(checkView(check));
      },
    );

    app.get(
      '/servers/:server/health-checks/:id',
      {
        schema: {
          tags,
          summary: 'One health check',
          params: CheckParams,
          response: { 200: CheckView, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        checkView(await getCheck(db, contextOf(req).principal, req.params.server, req.params.id)),
    );

    app.patch(
      '/servers/:server/health-checks/:id',
      {
        schema: {
          tags,
          summary: 'Change a health check (null clears an optional field); its scheduler follows',
          params: CheckParams,
          body: UpdateBody,
          response: { 200: CheckView, ...problems, 409: Type.Ref('Problem') },
        },
        preHandler: write,
      },
      async (req) =>
        checkView(
          await updateCheck(db, scheduler, contextOf(req), req.params.server, req.params.id, req.body),
        ),
    );

    app.delete(
      '/servers/:server/health-checks/:id',
      {
        schema: {
          tags,
          summary: 'Delete a health check and its scheduler (its results stay until they expire)',
          params: CheckParams,
          response: { 200: CheckView, ...problems },
        },
        preHandler: write,
      },
      async (req) =>
        checkView(await deleteCheck(db, scheduler, contextOf(req), req.params.server, req.params.id)),
    );

    app.get(
      '/servers/:server/health-checks/:id/results',
      {
        schema: {
          tags,
          summary: 'Runs of a check in [from, to), newest first',
          params: CheckParams,
          querystring: Type.Object(
            { ...Window, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              check: CheckView,
              window: Type.Object({ from: Timestamp, to: Timestamp }),
              results: Type.Array(ResultView),
            }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => {
        const { principal } = contextOf(req);
        const check = await getCheck(db, principal, req.params.server, req.params.id);
        const window = windowOf(req.query);
        const results = await listResults(warehouse, {
          orgId: principal.orgId,
          server: check.server,
          checkId: check.id,
          ...window,
          limit: req.query.limit ?? 500,
        });
        return {
          check: checkView(check),
          window: { from: new Date(window.from).toISOString(), to: new Date(window.to).toISOString() },
          results: results.map(resultView),
        };
      },
    );

    app.post(
      '/servers/:server/health-checks/:id/run',
      {
        schema: {
          tags,
          summary: 'Run a check now (bounded by its timeout) and store the result',
          params: CheckParams,
          response: { 200: ResultView, ...problems },
        },
        preHandler: write,
      },
      async (req) => {
        const check = await getCheck(db, contextOf(req).principal, req.params.server, req.params.id);
        const { result } = await runCheck({ db, warehouse }, check);
        return resultView(result);
      },
    );

    app.get(
      '/servers/:server/versions/:version/tools',
      {
        schema: {
          tags,
          summary: "The version's tools/list as an MCP health check last saw it",
          params: Type.Object(
            { server: Type.String({ maxLength: 255 }), version: Type.String({ maxLength: 256 }) },
            { additionalProperties: false },
          ),
          querystring: Type.Object(
            { environment: Type.Optional(Type.String({ maxLength: 64 })) },
            { additionalProperties: false },
          ),
          response: { 200: ToolsView, ...problems },
        },
        preHandler: read,
      },
      async (req) => {
        const { principal } = contextOf(req);
        await findServer(db, principal, req.params.server);
        const snapshot = await latestToolSnapshot(db, {
          orgId: principal.orgId,
          server: req.params.server,
          version: req.params.version,
          environment: req.query.environment,
        });
        if (!snapshot) {
          throw new NotFoundError(
            `no MCP health check has listed the tools of ${req.params.server} ${req.params.version}` +
              (req.query.environment ? ` in ${req.query.environment}` : '') +
              '; add an mcp check for it, or run one with POST …/health-checks/{id}/run',
            'tools-not-found',
          );
        }
        return { ...snapshot, tools: snapshot.tools as unknown as Record<string, unknown>[] };
      },
    );
  };
}
