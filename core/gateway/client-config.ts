/**
 * The MCP client configurations that connect to a server through the gateway, ready to paste: the
 * API returns them per environment (GET /servers/{server}/gateway, shown by the web UI) and
 * `pylee gateway url` prints them, both from these functions.
 */
import type { AccessMode } from './access-mode.ts';

/** The id of the VS Code input that prompts for the token. */
export const VSCODE_TOKEN_INPUT = 'pylee-token';

/** VS Code's `.vscode/mcp.json`: a streamable HTTP server, with a prompted token under `pylee`. */
export function vscodeConfig(server: string, url: string, access: AccessMode) {
  const withToken = access === 'pylee';
  return {
    servers: {
      [server]: {
        type: 'http',
        url,
        ...(withToken ? { headers: { Authorization: `Bearer \${input:${VSCODE_TOKEN_INPUT}}` } } : {}),
      },
    },
    ...(withToken
      ? {
          inputs: [
            {
              type: 'promptString',
              id: VSCODE_TOKEN_INPUT,
              description: 'Pylee token with the connect permission',
              password: true,
            },
          ],
        }
      : {}),
  };
}

/**
 * Claude Desktop's `claude_desktop_config.json` runs local (stdio) servers only: `mcp-remote`
 * bridges to the gateway, sending the token from `env` under `pylee`. It refuses plain HTTP to
 * hosts other than localhost unless told `--allow-http`.
 */
export function claudeDesktopConfig(server: string, url: string, access: AccessMode) {
  const withToken = access === 'pylee';
  const args = ['-y', 'mcp-remote', url];
  if (url.startsWith('http:')) args.push('--allow-http');
  if (withToken) args.push('--header', 'Authorization: Bearer ${PYLEE_TOKEN}');
  return {
    mcpServers: {
      [server]: {
        command: 'npx',
        args,
        ...(withToken ? { env: { PYLEE_TOKEN: '<a Pylee token with the connect permission>' } } : {}),
      },
    },
  };
}

export interface ClientSnippets {
  /** `.vscode/mcp.json`. */
  vscode: ReturnType<typeof vscodeConfig>;
  /** `claude_desktop_config.json`. */
  claudeDesktop: ReturnType<typeof claudeDesktopConfig>;
}

/** Both client configurations for one endpoint. */
export function clientSnippets(server: string, url: string, access: AccessMode): ClientSnippets {
  return {
    vscode: vscodeConfig(server, url, access),
    claudeDesktop: claudeDesktopConfig(server, url, access),
  };
}
