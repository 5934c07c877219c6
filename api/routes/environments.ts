import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import {
  createEnvironment,
  deleteEnvironment,
  listEnvironments,
  updateEnvironment,
} from '#core/deploy/environments.ts';
import { environmentRouting, environmentStatus } from '#core/deploy/queries.ts';
import { BadRequestError, ConflictError } from '#core/errors.ts';
import { DEFAULT_BACKEND_PORT, DEFAULT_PARENT_REF, renderHttpRoute } from '#core/gateway/http-route.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';
import { ServerParams } from './servers.ts';

export const Gate = Type.Object(
  {
    type: Type.String({
      description:
        'soak | no-prerelease | version-status | environment-permission | no-vulnerabilities | allowed-packages | protected',
    }),
    severity: Type.Optional(
      Type.String({ description: 'no-vulnerabilities: low | medium | high | critical' }),
    ),
    allowDeprecated: Type.Optional(
      Type.Boolean({ description: 'allowed-packages: deprecated package versions may deploy' }),
    ),
    environment: Type.Optional(Type.String()),
    duration: Type.Optional(Type.String()),
    status: Type.Optional(Type.Array(Type.String())),
  },
  { description: 'A promotion gate' },
);

const EnvironmentView = Type.Object({
  name: Type.String(),
  position: Type.Integer({ description: '1-based place in the pipeline' }),
  description: Type.String(),
  protected: Type.Boolean({ description: 'Takes no pre-release versions' }),
  gates: Type.Array(Gate),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

// Gates are checked in core, whose errors name the gate and the fix.
const GatesInput = Type.Array(Type.Unknown(), {
  maxItems: 20,
  description:
    '{ type: soak, environment, duration } | { type: no-prerelease } | { type: version-status, status: [...] } | { type: environment-permission } | { type: no-vulnerabilities, severity? } | { type: allowed-packages, allowDeprecated? }',
});

const Placement = {
  after: Type.Optional(Type.String({ maxLength: 64, description: 'Place right after this environment' })),
  before: Type.Optional(Type.String({ maxLength: 64, description: 'Place right before this environment' })),
};

const EnvParams = Type.Object(
  { environment: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);

const VersionWeight = Type.Object({ version: Type.String(), weight: Type.Integer() });

const EnvironmentStatus = Type.Object({
  environment: Type.String(),
  position: Type.Integer(),
  protected: Type.Boolean(),
  stable: Nullable(
    Type.Object({ version: Type.String(), since: Timestamp, by: Type.String(), deploymentId: Type.String() }),
  ),
  canary: Nullable(
    Type.Object({
      version: Type.String(),
      weight: Type.Integer(),
      status: Type.String(),
      strategy: Type.String(),
      deploymentId: Type.String(),
      since: Timestamp,
      by: Type.String(),
    }),
  ),
  rollbackTarget: Nullable(Type.String()),
  desired: Type.Array(VersionWeight),
  history: Type.Array(
    Type.Object({
      id: Type.String(),
      version: Type.String(),
      strategy: Type.String(),
      kind: Type.String(),
      status: Type.String(),
      createdBy: Type.String(),
      createdAt: Timestamp,
      finishedAt: Nullable(Timestamp),
    }),
  ),
});

const RoutingParams = Type.Object(
  { server: Type.String({ maxLength: 64 }), environment: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);

const RoutingQuery = Type.Object(
  {
    format: Type.Optional(
      Type.Union([Type.Literal('weights'), Type.Literal('gateway-api')], {
        description:
          'weights (default): the versions and their weights; gateway-api: a Kubernetes Gateway API HTTPRoute (JSON, which kubectl apply -f takes)',
      }),
    ),
    namespace: Type.Optional(
      Type.String({ maxLength: 63, description: 'gateway-api: metadata.namespace of the HTTPRoute' }),
    ),
    parentRef: Type.Optional(
      Type.String({
        maxLength: 317,
        description: `gateway-api: the Gateway to attach to, name or namespace/name (default ${DEFAULT_PARENT_REF})`,
      }),
    ),
    port: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description: `gateway-api: the port of every version's Service (default ${DEFAULT_BACKEND_PORT})`,
      }),
    ),
    hostname: Type.Optional(
      Type.String({ maxLength: 253, description: 'gateway-api: the host name the route matches' }),
    ),
  },
  { additionalProperties: false },
);

const StringMap = Type.Record(Type.String(), Type.String());

const RoutingWeights = Type.Object({ environment: Type.String(), weights: Type.Array(VersionWeight) });

const HttpRouteView = Type.Object(
  {
    apiVersion: Type.Literal('gateway.networking.k8s.io/v1'),
    kind: Type.Literal('HTTPRoute'),
    metadata: Type.Object({
      name: Type.String(),
      namespace: Type.Optional(Type.String()),
      labels: StringMap,
      annotations: StringMap,
    }),
    spec: Type.Object({
      parentRefs: Type.Array(Type.Object({ name: Type.String(), namespace: Type.Optional(Type.String()) })),
      hostnames: Type.Optional(Type.Array(Type.String())),
      rules: Type.Array(
        Type.Object({
          backendRefs: Type.Array(
            Type.Object({ name: Type.String(), port: Type.Integer(), weight: Type.Integer() }),
          ),
        }),
      ),
    }),
  },
  { description: 'A Gateway API HTTPRoute (gateway.networking.k8s.io/v1)' },
);

/** The org's environments (read to see, admin to change) and what runs where per server. */
export function environmentRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['environments'];
    const read = app.requirePermission('read');
    const admin = app.requirePermission('admin');

    app.get(
      '/environments',
      {
        schema: {
          tags,
          summary: 'List environments in pipeline order',
          response: { 200: Type.Object({ environments: Type.Array(EnvironmentView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ environments: await listEnvironments(db, contextOf(req).principal) }),
    );

    app.post(
      '/environments',
      {
        schema: {
          tags,
          summary: 'Add an environment to the pipeline (last, or after/before another)',
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 64 }),
              description: Type.Optional(Type.String({ maxLength: 2000 })),
              protected: Type.Optional(Type.Boolean()),
              gates: Type.Optional(GatesInput),
              ...Placement,
            },
            { additionalProperties: false },
          ),
          response: { 201: EnvironmentView, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: admin,
      },
      async (req, reply) => reply.code(201).send(await createEnvironment(db, contextOf(req), req.body)),
    );

    app.patch(
      '/environments/:environment',
      {
        schema: {
          tags,
          summary: 'Change an environment: protection, gates, description, place in the pipeline',
          params: EnvParams,
          body: Type.Object(
            {
              description: Type.Optional(Type.String({ maxLength: 2000 })),
              protected: Type.Optional(Type.Boolean()),
              gates: Type.Optional(GatesInput),
              ...Placement,
            },
            { additionalProperties: false, minProperties: 1 },
          ),
          response: { 200: EnvironmentView, ...problems },
        },
        preHandler: admin,
      },
      async (req) => updateEnvironment(db, contextOf(req), req.params.environment, req.body),
    );

    app.delete(
      '/environments/:environment',
      {
        schema: {
          tags,
          summary: 'Remove an environment nothing was deployed to',
          params: EnvParams,
          response: { 200: EnvironmentView, 409: Type.Ref('Problem'), ...problems },
        },
        preHandler: admin,
      },
      async (req) => deleteEnvironment(db, contextOf(req), req.params.environment),
    );

    app.get(
      '/servers/:server/environments',
      {
        schema: {
          tags,
          summary:
            'What runs where: per environment the stable version, an active rollout and its weight, since when, by whom, and the deployment history',
          params: ServerParams,
          querystring: Type.Object(
            {
              history: Type.Optional(
                Type.Integer({
                  minimum: 0,
                  maximum: 100,
                  description: 'Deployments per environment (default 10)',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ server: Type.String(), environments: Type.Array(EnvironmentStatus) }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => ({
        server: req.params.server,
        environments: await environmentStatus(db, contextOf(req).principal, req.params.server, req.query),
      }),
    );

    app.get(
      '/servers/:server/environments/:environment/routing',
      {
        schema: {
          tags,
          summary:
            'The desired weights in one environment, as they are (format=weights) or as a Kubernetes Gateway API HTTPRoute to apply with your own tooling (format=gateway-api)',
          params: RoutingParams,
          querystring: RoutingQuery,
          response: {
            200: Type.Union([RoutingWeights, HttpRouteView]),
            409: Type.Ref('Problem'),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => {
        const { principal } = contextOf(req);
        const { format = 'weights', ...options } = req.query;
        const given = Object.keys(options);
        if (format === 'weights' && given.length) {
          throw new BadRequestError(
            `${given.join(', ')} apply to format=gateway-api only`,
            'invalid-routing-query',
          );
        }
        const routing = await environmentRouting(db, principal, req.params.server, req.params.environment);
        if (format === 'weights') return { environment: routing.environment, weights: routing.weights };
        const route = renderHttpRoute({
          org: principal.orgSlug,
          server: routing.server,
          environment: routing.environment,
          weights: routing.weights,
          deployment: routing.deploymentId,
          ...options,
        });
        if (route.spec.rules.every((r) => r.backendRefs.length === 0)) {
          throw new ConflictError(
            `nothing runs in ${routing.environment} yet: deploy a version of ${routing.server} there first, then render its route`,
            'nothing-running',
            { environment: routing.environment },
          );
        }
        return route;
      },
    );
  };
}
