import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { USER_ACTIONS } from '#core/deploy/rollout.ts';
import { actOnDeployment } from '#core/deploy/actions.ts';
import { createDeployment, type NewDeployment } from '#core/deploy/create.ts';
import { getDeployment, listDeployments } from '#core/deploy/queries.ts';
import { SESSION_POLICIES, type DeployDeps } from '#core/deploy/records.ts';
import { rollback } from '#core/deploy/rollback.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';
import { ServerParams } from './servers.ts';

const Status = Type.Union([
  Type.Literal('pending'),
  Type.Literal('verifying'),
  Type.Literal('progressing'),
  Type.Literal('paused'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('aborted'),
  Type.Literal('rolled-back'),
]);
const Strategy = Type.Union([Type.Literal('immediate'), Type.Literal('canary'), Type.Literal('staged')]);
const Duration = Type.String({ maxLength: 16, description: 'A duration: 30s, 10m, 1h, 2d' });
const StepPause = Type.Union([
  Duration,
  Type.Object({ approval: Type.Boolean() }, { additionalProperties: false }),
]);

const SESSIONS_HELP =
  'What an abort or rollback does to the live MCP sessions of the version losing its traffic: migrate (default: the next request opens a session on the remaining version), terminate (the next request is 404) or drain (they stay until idle). A promotion to 100 % always drains.';
const SessionPolicyView = Type.Union(
  [Type.Literal(SESSION_POLICIES[0]), Type.Literal(SESSION_POLICIES[1]), Type.Literal(SESSION_POLICIES[2])],
  { description: SESSIONS_HELP },
);
// A string here: core refuses anything else with a sentence naming the three.
const SessionPolicyInput = Type.String({ maxLength: 32, description: SESSIONS_HELP });

const StepInput = Type.Object(
  {
    weight: Type.Integer({ description: 'Percent of traffic for the new version; rising strictly to 100' }),
    pause: Type.Optional(StepPause),
    analyze: Type.Optional(Type.Boolean({ description: 'Wait for a canary analysis verdict' })),
  },
  { additionalProperties: false },
);

const StepView = Type.Object({
  weight: Type.Integer(),
  pause: Type.Optional(Type.Union([Type.String(), Type.Object({ approval: Type.Boolean() })])),
  analyze: Type.Optional(Type.Boolean()),
  environment: Type.Optional(Type.String({ description: 'Staged: the environment of this step' })),
});

export const DeploymentView = Type.Object({
  id: Type.String(),
  server: Type.String(),
  version: Type.String(),
  environment: Type.String(),
  currentEnvironment: Type.String(),
  strategy: Strategy,
  kind: Type.Union([Type.Literal('deploy'), Type.Literal('rollback')]),
  status: Status,
  steps: Type.Array(StepView),
  currentStep: Nullable(Type.Integer()),
  weight: Type.Integer(),
  pause: Nullable(
    Type.Object({
      kind: Type.String({ description: 'timer | approval | manual' }),
      until: Type.Optional(Timestamp),
      remainingMs: Type.Optional(Nullable(Type.Integer())),
    }),
  ),
  awaiting: Nullable(Type.String({ description: 'verification | analysis | gates' })),
  previousVersion: Nullable(Type.String()),
  rollbackOf: Nullable(Type.String()),
  policy: Type.Object({
    rollbackOnFailure: Type.Boolean(),
    promotion: Type.Optional(
      Type.String({ description: 'auto | approval: after a passing canary analysis' }),
    ),
    analysis: Type.Optional(
      Type.Object({
        intervalSeconds: Type.Optional(Type.Integer()),
        lifetimeMs: Type.Optional(Type.Integer()),
      }),
    ),
    verification: Type.Object({
      required: Type.Boolean(),
      passes: Type.Integer(),
      timeoutMs: Type.Integer(),
    }),
  }),
  sessions: SessionPolicyView,
  verification: Nullable(
    Type.Object({
      passes: Type.Integer(),
      deadline: Nullable(Type.String()),
      detail: Nullable(Type.String()),
    }),
  ),
  reason: Nullable(Type.String()),
  statusReason: Nullable(Type.String()),
  allowedActions: Type.Array(Type.String()),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  finishedAt: Nullable(Timestamp),
});

const DeploymentDetail = Type.Intersect([
  DeploymentView,
  Type.Object({
    events: Type.Array(
      Type.Object({
        at: Timestamp,
        action: Type.String(),
        from: Nullable(Type.String()),
        to: Type.String(),
        step: Nullable(Type.Integer()),
        weight: Type.Integer(),
        environment: Type.String(),
        actor: Type.String(),
        reason: Nullable(Type.String()),
        detail: Nullable(Type.Record(Type.String(), Type.Unknown())),
      }),
    ),
  }),
]);

const CreateDeployment = Type.Object(
  {
    version: Type.String({ minLength: 1, maxLength: 256 }),
    environment: Type.String({ minLength: 1, maxLength: 64 }),
    strategy: Type.Optional(Strategy),
    steps: Type.Optional(Type.Array(StepInput, { maxItems: 100 })),
    from: Type.Optional(Type.String({ maxLength: 64, description: 'Staged: first environment of the path' })),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
    rollbackOnFailure: Type.Optional(Type.Boolean()),
    promotion: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('approval')], {
        description: 'After a passing canary analysis: promote the step (auto, default) or wait for approval',
      }),
    ),
    analysis: Type.Optional(
      Type.Object(
        {
          interval: Type.Optional(
            Type.String({ maxLength: 16, description: 'Sample interval (default 1m)' }),
          ),
          lifetime: Type.Optional(
            Type.String({
              maxLength: 16,
              description: 'How long each analyze step is watched (default 10m)',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    verification: Type.Optional(
      Type.Object(
        {
          required: Type.Optional(Type.Boolean()),
          passes: Type.Optional(Type.Integer()),
          timeout: Type.Optional(Duration),
        },
        { additionalProperties: false },
      ),
    ),
    sessions: Type.Optional(SessionPolicyInput),
  },
  { additionalProperties: false },
);

const DeploymentParams = Type.Object(
  { server: Type.String({ maxLength: 64 }), id: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);

const ActionBody = Type.Object(
  {
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
    full: Type.Optional(Type.Boolean({ description: 'promote: all the way to 100 %' })),
  },
  { additionalProperties: false, description: 'Optional: an action may be posted without a body' },
);

const conflict = { 409: Type.Ref('Problem') };

const SUMMARIES: Record<(typeof USER_ACTIONS)[number], string> = {
  promote: 'Go to the next step (full: to 100 % at once), skipping what the current step waits for',
  pause: 'Hold the rollout where it is (a timed pause stops its clock)',
  resume: 'Go on after a pause by hand',
  abort: 'Stop: the new version gets no more traffic here',
  rollback:
    'Roll back: an active rollout returns its traffic to the stable version; a finished one is replaced by the last known good version',
};

/** Deployments of a server: read to see, deploy to start and steer. */
export function deploymentRoutes(deps: DeployDeps): FastifyPluginAsyncTypebox {
  const { db } = deps;
  return async (app) => {
    const tags = ['deployments'];
    const read = app.requirePermission('read');
    const deploy = app.requirePermission('deploy');

    app.get(
      '/servers/:server/deployments',
      {
        schema: {
          tags,
          summary: 'List deployments, newest first',
          params: ServerParams,
          querystring: Type.Object(
            {
              environment: Type.Optional(Type.String({ maxLength: 64 })),
              status: Type.Optional(Status),
              active: Type.Optional(Type.Boolean()),
              limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ deployments: Type.Array(DeploymentView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({
        deployments: await listDeployments(db, contextOf(req).principal, req.params.server, req.query),
      }),
    );

    app.post(
      '/servers/:server/deployments',
      {
        schema: {
          tags,
          summary: 'Deploy a version to an environment (immediate, canary or staged)',
          params: ServerParams,
          body: CreateDeployment,
          response: { 201: DeploymentView, ...conflict, ...problems },
        },
        preHandler: deploy,
      },
      async (req, reply) =>
        reply
          .code(201)
          .send(await createDeployment(deps, contextOf(req), req.params.server, req.body as NewDeployment)),
    );

    app.get(
      '/servers/:server/deployments/:id',
      {
        schema: {
          tags,
          summary: 'A deployment with its timeline',
          params: DeploymentParams,
          response: { 200: DeploymentDetail, ...problems },
        },
        preHandler: read,
      },
      async (req) => getDeployment(db, contextOf(req).principal, req.params.server, req.params.id),
    );

    for (const action of USER_ACTIONS) {
      app.post(
        `/servers/:server/deployments/:id/${action}`,
        {
          schema: {
            tags,
            summary: SUMMARIES[action],
            params: DeploymentParams,
            body: ActionBody,
            response: { 200: DeploymentView, ...conflict, ...problems },
          },
          // No body is the same as {}.
          preValidation: async (req) => {
            req.body ??= {};
          },
          preHandler: deploy,
        },
        async (req) =>
          actOnDeployment(deps, contextOf(req), req.params.server, req.params.id, action, req.body),
      );
    }

    app.post(
      '/servers/:server/rollback',
      {
        schema: {
          tags,
          summary:
            'Roll back environments: immediate (to the last known good version), selective (only the chosen environments) or staged (weight stepped down)',
          params: ServerParams,
          body: Type.Object(
            {
              mode: Type.Optional(
                Type.Union([Type.Literal('immediate'), Type.Literal('selective'), Type.Literal('staged')]),
              ),
              environment: Type.Optional(Type.String({ maxLength: 64 })),
              environments: Type.Optional(
                Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 50 }),
              ),
              steps: Type.Optional(
                Type.Array(Type.Integer(), {
                  maxItems: 100,
                  description: 'Staged: the weights the current version keeps, falling to 0 (default 50, 0)',
                }),
              ),
              pause: Type.Optional(Duration),
              reason: Type.Optional(Type.String({ maxLength: 2000 })),
              sessions: Type.Optional(
                Type.String({
                  maxLength: 32,
                  description: `${SESSIONS_HELP} Default: the policy of the deployment being rolled back.`,
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              mode: Type.String(),
              environments: Type.Array(
                Type.Object({
                  environment: Type.String(),
                  from: Nullable(Type.String()),
                  to: Nullable(Type.String()),
                  deployment: DeploymentView,
                }),
              ),
            }),
            ...conflict,
            ...problems,
          },
        },
        preHandler: deploy,
      },
      async (req) => {
        const body = req.body;
        const mode = body.mode ?? (body.environments ? 'selective' : 'immediate');
        return rollback(deps, contextOf(req), req.params.server, { ...body, mode });
      },
    );
  };
}
