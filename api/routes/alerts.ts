import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Queue } from 'bullmq';
import { Type, type TSchema } from 'typebox';
import { acknowledgeAlert, alertHistory, getAlert, listAlerts } from '#core/alerting/alerts.ts';
import { evaluateRule } from '#core/alerting/engine.ts';
import {
  COMPARATORS,
  DURING_ROLLOUT,
  EXEC_ERR_STATES,
  METRICS,
  NO_DATA_STATES,
  RULE_KINDS,
  ruleView,
  SEVERITIES,
  type Rule,
  type RuleInput,
} from '#core/alerting/model.ts';
import { createRule, deleteRule, getRule, listRules, updateRule } from '#core/alerting/rules.ts';
import { syncRuleSchedule } from '#core/alerting/schedule.ts';
import { ALERT_STATES } from '#core/alerting/state.ts';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { IdParams, Nullable, problems, Timestamp } from '../schemas.ts';

const literals = <T extends readonly string[]>(values: T, options: { description?: string } = {}) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  );
const Duration = (description: string) => Type.String({ maxLength: 32, description });
const StringMap = Type.Record(Type.String(), Type.String());

const RuleFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  server: Type.String({ minLength: 1, maxLength: 255 }),
  environment: Nullable(
    Type.String({ maxLength: 64, description: 'null: every environment, one alert each' }),
  ),
  version: Type.String({
    maxLength: 256,
    description: '* (default), an exact version, a semver range (^1.4), stable or canary',
  }),
  kind: literals(RULE_KINDS),
  metric: Nullable(literals(METRICS)),
  operation: Nullable(
    Type.String({ maxLength: 512, description: 'An operation (MCP tool); * for one alert per operation' }),
  ),
  comparator: literals(COMPARATORS),
  threshold: Nullable(Type.Number()),
  factor: Nullable(Type.Number({ description: 'relative: candidate vs baseline × factor + offset' })),
  offset: Nullable(Type.Number({ description: 'relative: in the metric unit (error rate 0.01 = 1 point)' })),
  baseline: Nullable(
    Type.String({
      maxLength: 256,
      description: 'relative: default the stable version running in the environment',
    }),
  ),
  minRequests: Type.Integer({ minimum: 1, description: 'Fewer requests in the window count as no data' }),
  check: Nullable(Type.String({ maxLength: 200, description: 'health: a check name or id; null: any' })),
  interval: Duration('Evaluation interval, at least 1s (default 1m)'),
  window: Duration('Data window each evaluation reads (default 5m)'),
  for: Duration('How long the condition must hold before firing (default 0s)'),
  keepFiringFor: Duration('How long it keeps firing after the condition clears (default 0s)'),
  severity: literals(SEVERITIES),
  labels: StringMap,
  annotations: Type.Object(
    {
      summary: Type.Optional(Type.String({ maxLength: 4000 })),
      description: Type.Optional(Type.String({ maxLength: 4000 })),
      runbookUrl: Type.Optional(Type.String({ maxLength: 2048 })),
    },
    { additionalProperties: false },
  ),
  noDataState: literals(NO_DATA_STATES),
  execErrState: literals(EXEC_ERR_STATES),
  groupBy: Type.Array(Type.String({ maxLength: 100 }), { maxItems: 20 }),
  groupWait: Duration('Alertmanager group_wait (default 30s)'),
  groupInterval: Duration('Alertmanager group_interval (default 5m)'),
  repeatInterval: Duration('Alertmanager repeat_interval (default 4h)'),
  duringRollout: literals(DURING_ROLLOUT, {
    description:
      "A rollout candidate's alerts: notify (default), hold while its canary analysis runs, or inhibit for the whole rollout",
  }),
  correlationWindow: Duration(
    'An alert that begins this soon after a rollout step or configuration change says so (default 30m; 0s: never)',
  ),
  enabled: Type.Boolean(),
};

function optional<T extends Record<string, TSchema>>(fields: T) {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Type.Optional(v)])) as {
    [K in keyof T]: ReturnType<typeof Type.Optional<T[K]>>;
  };
}

const { name, server, kind, ...rest } = RuleFields;
const CreateBody = Type.Object({ name, server, kind, ...optional(rest) }, { additionalProperties: false });
const PatchBody = Type.Object(optional(RuleFields), { additionalProperties: false });

const RuleView = Type.Object({
  id: Type.String(),
  ...RuleFields,
  version: Type.String(),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastEvaluatedAt: Nullable(Timestamp),
  lastEvaluationMs: Nullable(Type.Number()),
  lastError: Nullable(Type.String()),
  evaluations: Type.Integer(),
});

const AlertView = Type.Object({
  id: Type.String(),
  fingerprint: Type.String(),
  ruleId: Type.String(),
  ruleName: Type.String(),
  severity: Type.String(),
  state: literals(ALERT_STATES),
  server: Type.String(),
  environment: Nullable(Type.String()),
  version: Nullable(Type.String()),
  operation: Nullable(Type.String()),
  labels: StringMap,
  annotations: StringMap,
  value: Nullable(Type.Number()),
  threshold: Nullable(Type.Number()),
  baselineVersion: Nullable(Type.String()),
  activeAt: Nullable(Timestamp),
  firedAt: Nullable(Timestamp),
  resolvedAt: Nullable(Timestamp),
  lastEvaluatedAt: Nullable(Timestamp),
  stateChangedAt: Timestamp,
  lastError: Nullable(Type.String()),
  acknowledgement: Nullable(
    Type.Object({ at: Timestamp, by: Type.String(), comment: Nullable(Type.String()) }),
  ),
  rollout: Nullable(
    Type.Object({
      deploymentId: Type.String(),
      environment: Type.String(),
      version: Type.String(),
      step: Nullable(Type.Integer()),
      steps: Type.Integer(),
      weight: Type.Number(),
      status: Type.String(),
      startedAt: Timestamp,
      startedBy: Type.String(),
      analysisRunning: Type.Boolean(),
    }),
  ),
  correlation: Type.Array(
    Type.Object({
      kind: literals(['rollout', 'configuration'] as const),
      at: Timestamp,
      text: Type.String(),
      actor: Type.String(),
      deploymentId: Type.Optional(Type.String()),
    }),
  ),
  heldBy: Nullable(Type.Object({ deploymentId: Type.String(), since: Nullable(Timestamp) })),
});

const HistoryEvent = Type.Object({
  id: Type.String(),
  alertId: Type.String(),
  ruleId: Type.String(),
  ruleName: Type.String(),
  fingerprint: Type.String(),
  server: Type.String(),
  environment: Nullable(Type.String()),
  version: Nullable(Type.String()),
  operation: Nullable(Type.String()),
  from: Type.String(),
  to: Type.String(),
  value: Nullable(Type.Number()),
  threshold: Nullable(Type.Number()),
  reason: Type.String(),
  at: Timestamp,
  mutedBy: Nullable(
    Type.Object(
      {
        kind: Type.String({ description: 'inhibition: an inhibition rule and a firing source alert' }),
        state: Type.Union([Type.Literal('muted'), Type.Literal('released')]),
        inhibitionId: Type.Optional(Type.String()),
        inhibitionName: Type.Optional(Nullable(Type.String())),
        source: Type.Optional(
          Type.Object({
            alertId: Type.String(),
            fingerprint: Type.String(),
            alertname: Type.String(),
            labels: StringMap,
          }),
        ),
      },
      {
        additionalProperties: true,
        description:
          'Set where notifications of the alert began (muted) or stopped (released) being kept back',
      },
    ),
  ),
});

const Transition = Type.Object({
  fingerprint: Type.String(),
  labels: StringMap,
  from: Type.String(),
  to: Type.String(),
  value: Nullable(Type.Number()),
  threshold: Nullable(Type.Number()),
  reason: Type.String(),
});

const conflict = { 409: Type.Ref('Problem') };

/**
 * Alert rules (read to list, write to change) and the alerts they raise (read; write to
 * acknowledge). Rule changes upsert or remove the rule's BullMQ job scheduler once committed; if
 * Redis is down then, the alerts processes reconcile schedulers with the rules within 30 s.
 */
export function alertRoutes(deps: {
  db: Db;
  warehouse: Warehouse;
  redis: RedisStore;
  logger: Logger;
}): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['alerts'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');
    let queue: Queue | undefined;
    app.addHook('onClose', async () => {
      await queue?.close();
    });
    const schedule = async (rule: Rule | { id: string; deleted: true }) => {
      try {
        if (!queue) {
          queue = new Queue(QUEUES.alerts, { connection: deps.redis.connection(), prefix: QUEUE_PREFIX });
          queue.on('error', (error) => deps.logger.debug({ err: error }, 'alerts queue connection error'));
        }
        await syncRuleSchedule(queue, rule);
      } catch (error) {
        deps.logger.warn(
          { err: error, rule: rule.id },
          'could not update the rule scheduler; the alerts role will reconcile it',
        );
      }
    };

    app.get(
      '/alert-rules',
      {
        schema: {
          tags,
          summary: 'List alert rules',
          querystring: Type.Object(
            {
              server: Type.Optional(Type.String({ maxLength: 255 })),
              enabled: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ rules: Type.Array(RuleView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({
        rules: (await listRules(deps.db, contextOf(req).principal, req.query)).map(ruleView),
      }),
    );

    app.post(
      '/alert-rules',
      {
        schema: {
          tags,
          summary:
            'Create an alert rule (threshold, relative to a baseline, absence of data, failing health check)',
          body: CreateBody,
          response: { 201: RuleView, ...problems, ...conflict },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const rule = await createRule(deps.db, contextOf(req), req.body as RuleInput);
        await schedule(rule);
        // The reply type is the intersection of every response schema; the 201 body is checked by the schema.
        return reply.code(201).send(ruleView(rule) as never);
      },
    );

    app.get(
      '/alert-rules/:id',
      {
        schema: {
          tags,
          summary: 'Show an alert rule',
          params: IdParams,
          response: { 200: RuleView, ...problems },
        },
        preHandler: read,
      },
      async (req) => ruleView(await getRule(deps.db, contextOf(req).principal, req.params.id)),
    );

    app.patch(
      '/alert-rules/:id',
      {
        schema: {
          tags,
          summary: 'Change an alert rule; disabling it resolves its alerts',
          params: IdParams,
          body: PatchBody,
          response: { 200: RuleView, ...problems, ...conflict },
        },
        preHandler: write,
      },
      async (req) => {
        const { after } = await updateRule(
          deps.db,
          contextOf(req),
          req.params.id,
          req.body as Partial<RuleInput>,
        );
        await schedule(after);
        return ruleView(after);
      },
    );

    app.delete(
      '/alert-rules/:id',
      {
        schema: {
          tags,
          summary: 'Delete an alert rule; its firing alerts resolve, their history is kept',
          params: IdParams,
          response: { 200: RuleView, ...problems },
        },
        preHandler: write,
      },
      async (req) => {
        const rule = await deleteRule(deps.db, contextOf(req), req.params.id);
        await schedule({ id: rule.id, deleted: true });
        return ruleView(rule);
      },
    );

    app.post(
      '/alert-rules/:id/evaluate',
      {
        schema: {
          tags,
          summary: 'Evaluate a rule now (as its scheduler would) and return the transitions',
          params: IdParams,
          response: {
            200: Type.Object({
              ruleId: Type.String(),
              skipped: Nullable(Type.String()),
              evaluatedAt: Timestamp,
              series: Type.Integer(),
              error: Nullable(Type.String()),
              transitions: Type.Array(Transition),
              alerts: Type.Array(AlertView),
            }),
            ...problems,
          },
        },
        preHandler: write,
      },
      async (req) => {
        const { principal } = contextOf(req);
        const rule = await getRule(deps.db, principal, req.params.id);
        const { groupDueAt: _due, ...summary } = await evaluateRule(deps, rule.id);
        const alerts = await listAlerts(deps.db, principal, { rule: rule.id });
        return { ...summary, alerts };
      },
    );

    app.get(
      '/alerts',
      {
        schema: {
          tags,
          summary: 'Alerts: firing, pending, resolved (and nodata / error), newest first',
          querystring: Type.Object(
            {
              state: Type.Optional(
                Type.String({
                  maxLength: 100,
                  description: `Comma-separated: ${ALERT_STATES.join(', ')}; default all but inactive`,
                }),
              ),
              server: Type.Optional(Type.String({ maxLength: 255 })),
              environment: Type.Optional(Type.String({ maxLength: 64 })),
              version: Type.Optional(Type.String({ maxLength: 256 })),
              rule: Type.Optional(Type.String({ maxLength: 200, description: 'Rule name or id' })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ alerts: Type.Array(AlertView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ alerts: await listAlerts(deps.db, contextOf(req).principal, req.query) }),
    );

    app.get(
      '/alerts/history',
      {
        schema: {
          tags,
          summary: 'Alert state changes per server, version, environment or rule, newest first',
          querystring: Type.Object(
            {
              server: Type.Optional(Type.String({ maxLength: 255 })),
              environment: Type.Optional(Type.String({ maxLength: 64 })),
              version: Type.Optional(Type.String({ maxLength: 256 })),
              rule: Type.Optional(Type.String({ maxLength: 200 })),
              since: Type.Optional(Timestamp),
              until: Type.Optional(Timestamp),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ events: Type.Array(HistoryEvent) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => alertHistory(deps.db, contextOf(req).principal, req.query),
    );

    app.get(
      '/alerts/:id',
      {
        schema: {
          tags,
          summary: 'An alert and its state history',
          params: IdParams,
          response: {
            200: Type.Intersect([AlertView, Type.Object({ history: Type.Array(HistoryEvent) })]),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => getAlert(deps.db, contextOf(req).principal, req.params.id),
    );

    app.post(
      '/alerts/:id/acknowledge',
      {
        schema: {
          tags,
          summary:
            'Acknowledge a firing or pending alert: who, when, why; it is not repeated until it resolves',
          params: IdParams,
          body: Type.Optional(
            Type.Object(
              { comment: Type.Optional(Nullable(Type.String({ maxLength: 2000 }))) },
              { additionalProperties: false },
            ),
          ),
          response: { 200: AlertView, ...problems, ...conflict },
        },
        preHandler: write,
      },
      async (req) => acknowledgeAlert(deps.db, contextOf(req), req.params.id, req.body?.comment ?? null),
    );
  };
}
