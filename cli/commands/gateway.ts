import { AppError } from '#core/errors.ts';
import { ACCESS_MODES, isAccessMode, type AccessMode, type GatewayEndpoints } from '#core/gateway/access.ts';
import { clientSnippets } from '#core/gateway/client-config.ts';
import { api, segment, type Command } from '../client.ts';

const ACCESS_HELP: Record<AccessMode, string> = {
  pylee: 'clients send a Pylee token with the connect permission',
  passthrough:
    "the client's Authorization goes to the server untouched (it authenticates clients itself, e.g. with OAuth); no Pylee token",
  public: 'anyone may connect, without a token',
};

const envFlag = {
  env: { type: 'string', value: 'E', required: true, description: 'environment, e.g. production' },
} as const;

async function endpointOf(client: Parameters<typeof api>[0], server: string, environment: string) {
  const gateway = await api<GatewayEndpoints>(client, 'GET', `/servers/${segment(server)}/gateway`);
  const endpoint = gateway.environments.find((e) => e.environment === environment);
  if (!endpoint) {
    throw new AppError(
      404,
      'environment-not-found',
      'Not Found',
      `environment ${environment} does not exist; environments: ${gateway.environments.map((e) => e.environment).join(', ') || 'none'}`,
    );
  }
  const { environment: name, access, url, sseUrl } = endpoint;
  return { environment: name, access, url, sseUrl, pinnedUrlTemplate: gateway.pinnedUrlTemplate };
}

const pretty = (value: unknown) => JSON.stringify(value, null, 2);

export const gatewayCommands: Command[] = [
  {
    name: 'gateway url',
    args: ['<server>'],
    summary: "print a server's gateway endpoint in an environment and MCP client configurations (read)",
    flags: envFlag,
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const environment = ctx.flags.env as string;
      const endpoint = await endpointOf(ctx.client, server, environment);
      // Built here, not taken from the API's snippets: the same function, and older APIs lack them.
      const { vscode, claudeDesktop } = clientSnippets(server, endpoint.url, endpoint.access);
      const note =
        endpoint.access === 'pylee'
          ? 'create a token with: pylee tokens create --name <who> --permission connect' +
            ` --server ${server} --environment ${environment}`
          : `no Authorization below: access is ${endpoint.access}`;
      ctx.print(
        { server, ...endpoint, vscode, claudeDesktop },
        [
          endpoint.url,
          '',
          `access: ${endpoint.access} (${ACCESS_HELP[endpoint.access]})`,
          note,
          `older HTTP+SSE clients: ${endpoint.sseUrl}`,
          `pinned to a version: ${endpoint.pinnedUrlTemplate}`,
          '',
          'VS Code (.vscode/mcp.json):',
          pretty(vscode),
          '',
          'Claude Desktop (claude_desktop_config.json):',
          pretty(claudeDesktop),
        ].join('\n'),
      );
    },
  },
  {
    name: 'gateway access',
    args: ['<server>', `<${ACCESS_MODES.join('|')}>`],
    summary: 'set who may connect to a server in an environment through the gateway (admin, audited)',
    flags: envFlag,
    async run(ctx) {
      const [server, access] = ctx.positionals as [string, string];
      if (!isAccessMode(access)) ctx.usage(`access ${access} is not one of ${ACCESS_MODES.join(', ')}`);
      const environment = ctx.flags.env as string;
      const set = await api<{ environment: string; access: AccessMode }>(
        ctx.client,
        'PUT',
        `/servers/${segment(server)}/environments/${segment(environment)}/gateway`,
        { access },
      );
      ctx.print(
        { server, ...set },
        `${server} in ${set.environment}: access ${set.access} (${ACCESS_HELP[set.access]})`,
      );
    },
  },
];
