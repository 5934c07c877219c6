import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { gatewayEndpoints, setAccessMode } from '#core/gateway/access.ts';
import { contextOf } from '../plugins/auth.ts';
import { problems } from '../schemas.ts';
import { ServerParams } from './servers.ts';

const Access = Type.Union([Type.Literal('pylee'), Type.Literal('passthrough'), Type.Literal('public')], {
  description:
    'pylee: a Pylee token with the connect permission (default); passthrough: the client’s Authorization goes to the upstream untouched; public: anyone',
});

const ServerEnvParams = Type.Object(
  { server: Type.String({ maxLength: 64 }), environment: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);

const AccessSetting = Type.Object({ environment: Type.String(), access: Access });

const GatewayEndpoints = Type.Object({
  environments: Type.Array(
    Type.Object({
      environment: Type.String(),
      access: Access,
      url: Type.String({ description: 'Streamable HTTP endpoint' }),
      sseUrl: Type.String({ description: 'The older HTTP+SSE transport' }),
    }),
    { description: 'Every environment of the org, in pipeline order' },
  ),
  pinnedUrlTemplate: Type.String({
    description: 'The endpoint pinned to one version; {version} stands for it',
  }),
});

/** Where MCP clients connect to a server through the gateway (read) and who may (admin to change). */
export function gatewayRoutes(db: Db, gatewayBase: () => string): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['gateway'];

    app.get(
      '/servers/:server/gateway',
      {
        schema: {
          tags,
          summary: 'The gateway endpoints of a server per environment, and who may connect',
          params: ServerParams,
          response: { 200: GatewayEndpoints, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) => gatewayEndpoints(db, contextOf(req).principal, req.params.server, gatewayBase()),
    );

    app.put(
      '/servers/:server/environments/:environment/gateway',
      {
        schema: {
          tags,
          summary: 'Set who may connect to a server in an environment through the gateway (audited)',
          params: ServerEnvParams,
          body: Type.Object({ access: Access }, { additionalProperties: false }),
          response: { 200: AccessSetting, ...problems },
        },
        preHandler: app.requirePermission('admin'),
      },
      async (req) =>
        setAccessMode(db, contextOf(req), req.params.server, req.params.environment, req.body.access),
    );
  };
}
