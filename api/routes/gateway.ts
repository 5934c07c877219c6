import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { gatewayEndpoints, setAccessMode } from '#core/gateway/access.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems } from '../schemas.ts';
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

const Str = Type.String();

const Snippets = Type.Object(
  {
    vscode: Type.Object(
      {
        servers: Type.Record(
          Str,
          Type.Object({ type: Str, url: Str, headers: Type.Optional(Type.Record(Str, Str)) }),
        ),
        inputs: Type.Optional(
          Type.Array(Type.Object({ type: Str, id: Str, description: Str, password: Type.Boolean() })),
        ),
      },
      { description: 'VS Code: .vscode/mcp.json' },
    ),
    claudeDesktop: Type.Object(
      {
        mcpServers: Type.Record(
          Str,
          Type.Object({
            command: Str,
            args: Type.Array(Str),
            env: Type.Optional(Type.Record(Str, Str)),
          }),
        ),
      },
      { description: 'Claude Desktop: claude_desktop_config.json (through mcp-remote)' },
    ),
  },
  { description: 'MCP client configurations for url, ready to paste' },
);

const LiveSplit = Type.Object(
  {
    windowSeconds: Type.Integer(),
    sessions: Type.Array(
      Type.Object({
        version: Str,
        sessions: Type.Integer(),
        share: Type.Number({ description: 'Of the sessions counted per version in the window, 0..1' }),
      }),
      { description: 'Distinct gateway sessions per version, most first' },
    ),
    requests: Type.Array(Type.Object({ version: Str, requests: Type.Integer() }), {
      description: 'JSON-RPC requests per version, most first',
    }),
  },
  {
    description:
      'What went through the gateway per version in the last windowSeconds; null when the warehouse did not answer',
  },
);

const GatewayEndpoints = Type.Object({
  environments: Type.Array(
    Type.Object({
      environment: Str,
      access: Access,
      url: Type.String({ description: 'Streamable HTTP endpoint' }),
      sseUrl: Type.String({ description: 'The older HTTP+SSE transport' }),
      snippets: Snippets,
      live: Nullable(LiveSplit),
    }),
    { description: 'Every environment of the org, in pipeline order' },
  ),
  pinnedUrlTemplate: Type.String({
    description: 'The endpoint pinned to one version; {version} stands for it',
  }),
});

/** Where MCP clients connect to a server through the gateway (read) and who may (admin to change). */
export function gatewayRoutes(
  db: Db,
  gatewayBase: () => string,
  warehouse: Warehouse,
): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['gateway'];

    app.get(
      '/servers/:server/gateway',
      {
        schema: {
          tags,
          summary:
            'The gateway endpoints of a server per environment, who may connect, client configurations and the live split of sessions per version',
          params: ServerParams,
          response: { 200: GatewayEndpoints, ...problems },
        },
        preHandler: app.requirePermission('read'),
      },
      async (req) =>
        gatewayEndpoints(db, contextOf(req).principal, req.params.server, gatewayBase(), {
          warehouse,
          onLiveError: (err) => req.log.warn({ err }, 'the warehouse did not answer the live gateway split'),
        }),
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
