import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import {
  createEnvironment,
  deleteEnvironment,
  listEnvironments,
  updateEnvironment,
} from '#core/deploy/environments.ts';
import { environmentStatus } from '#core/deploy/queries.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';
import { ServerParams } from './servers.ts';

export const Gate = Type.Object(
  {
    type: Type.String({
      description: 'soak | no-prerelease | version-status | environment-permission | protected',
    }),
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
    '{ type: soak, environment, duration } | { type: no-prerelease } | { type: version-status, status: [...] } | { type: environment-permission }',
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
  };
}
