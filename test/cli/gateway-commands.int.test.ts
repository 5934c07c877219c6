import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream } from '../gateway/upstream.ts';
import {
  killLeftovers,
  platformEnv,
  pyleeEnv,
  runPylee,
  startPylee,
  type PyleeProcess,
  type RunResult,
} from '../helpers/pylee-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

// `pylee gateway url`, `pylee gateway access` and `pylee release-health`, each a separate `pylee`
// process, against one real platform whose gateway is published at PYLEE_GATEWAY_URL.

const ADMIN_TOKEN = 'gateway-commands-admin-token-0123456789';
const GATEWAY = 'https://mcp.example.com';
const ENDPOINT = `${GATEWAY}/default/weather/production/mcp`;

let dataDir: string;
let platform: PyleeProcess;

/** Runs a client command against the platform, as the admin unless another token is given. */
function pylee(args: string[], token = ADMIN_TOKEN) {
  return runPylee(
    args,
    pyleeEnv({
      PYLEE_URL: platform.apiUrl,
      PYLEE_TOKEN: token,
      // No saved login of the machine's user can leak in.
      XDG_CONFIG_HOME: path.join(dataDir, 'no-login'),
    }),
  );
}

function json<T = Record<string, unknown>>(result: RunResult): T {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

interface UrlJson {
  server: string;
  environment: string;
  access: string;
  url: string;
  sseUrl: string;
  pinnedUrlTemplate: string;
  vscode: { servers: Record<string, Record<string, unknown>>; inputs?: unknown[] };
  claudeDesktop: { mcpServers: Record<string, { command: string; args: string[]; env?: unknown }> };
}

beforeAll(async () => {
  dataDir = tempDir('pylee-gateway-commands');
  platform = await startPylee({
    env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN, PYLEE_GATEWAY_URL: GATEWAY }),
  });
  const created = await pylee(['servers', 'create', 'weather']);
  expect(created.code, created.stderr).toBe(0);
});

afterAll(async () => {
  await killLeftovers();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('pylee gateway', () => {
  it('url prints the endpoint, then VS Code and Claude Desktop configurations sending a connect token', async () => {
    const result = await pylee(['gateway', 'url', 'weather', '--env', 'production']);

    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(ENDPOINT);
    expect(result.stdout).toContain('access: pylee (clients send a Pylee token with the connect permission)');
    expect(result.stdout).toContain('--permission connect --server weather --environment production');
    expect(result.stdout).toContain(`${GATEWAY}/default/weather/production/sse`);
    expect(result.stdout).toContain(`${GATEWAY}/default/weather@{version}/mcp`);
    expect(result.stdout).toContain('VS Code (.vscode/mcp.json):');
    expect(result.stdout).toContain('"Authorization": "Bearer ${input:pylee-token}"');
    expect(result.stdout).toContain('Claude Desktop (claude_desktop_config.json):');
    expect(result.stdout).toContain('"Authorization: Bearer ${PYLEE_TOKEN}"');
  });

  it('url --json gives the same as data, snippets ready to paste', async () => {
    const out = json<UrlJson>(await pylee(['gateway', 'url', 'weather', '--env', 'production', '--json']));

    expect(out).toMatchObject({
      server: 'weather',
      environment: 'production',
      access: 'pylee',
      url: ENDPOINT,
      sseUrl: `${GATEWAY}/default/weather/production/sse`,
      pinnedUrlTemplate: `${GATEWAY}/default/weather@{version}/mcp`,
    });
    expect(out.vscode).toEqual({
      servers: {
        weather: {
          type: 'http',
          url: ENDPOINT,
          headers: { Authorization: 'Bearer ${input:pylee-token}' },
        },
      },
      inputs: [
        {
          type: 'promptString',
          id: 'pylee-token',
          description: 'Pylee token with the connect permission',
          password: true,
        },
      ],
    });
    expect(out.claudeDesktop.mcpServers.weather).toEqual({
      command: 'npx',
      args: ['-y', 'mcp-remote', ENDPOINT, '--header', 'Authorization: Bearer ${PYLEE_TOKEN}'],
      env: { PYLEE_TOKEN: '<a Pylee token with the connect permission>' },
    });
  });

  it('access sets the mode, and url then leaves the Authorization out and says why', async () => {
    for (const access of ['public', 'passthrough']) {
      const set = await pylee(['gateway', 'access', 'weather', access, '--env', 'production']);
      expect(set.code, set.stderr).toBe(0);
      expect(set.stdout).toContain(`weather in production: access ${access}`);

      const text = await pylee(['gateway', 'url', 'weather', '--env', 'production']);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain(`no Authorization below: access is ${access}`);
      expect(text.stdout).not.toContain('Bearer');

      const out = json<UrlJson>(await pylee(['gateway', 'url', 'weather', '--env', 'production', '--json']));
      expect(out.access).toBe(access);
      expect(out.vscode).toEqual({ servers: { weather: { type: 'http', url: ENDPOINT } } });
      expect(out.claudeDesktop.mcpServers.weather).toEqual({
        command: 'npx',
        args: ['-y', 'mcp-remote', ENDPOINT],
      });
    }
    // Other environments keep the default.
    const staging = json<UrlJson>(await pylee(['gateway', 'url', 'weather', '--env', 'staging', '--json']));
    expect(staging.access).toBe('pylee');

    const back = json(
      await pylee(['gateway', 'access', 'weather', 'pylee', '--env', 'production', '--json']),
    );
    expect(back).toEqual({ server: 'weather', environment: 'production', access: 'pylee' });
  });

  it('exits 1 with the API’s reason for an unknown server or environment, or a token without the permission', async () => {
    const cases: [string[], string, string?][] = [
      [['gateway', 'url', 'nope', '--env', 'production'], 'server-not-found'],
      [['gateway', 'url', 'weather', '--env', 'nowhere'], 'environment-not-found'],
      [['gateway', 'access', 'weather', 'public', '--env', 'nowhere'], 'environment-not-found'],
    ];
    const connect = json<{ token: string }>(
      await pylee(['tokens', 'create', '--name', 'claude', '--permission', 'connect', '--json']),
    );
    cases.push(
      [['gateway', 'url', 'weather', '--env', 'production'], 'missing-permission', connect.token],
      [
        ['gateway', 'access', 'weather', 'public', '--env', 'production'],
        'missing-permission',
        connect.token,
      ],
    );
    for (const [args, code, token] of cases) {
      const result = await pylee(args, token);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(1);
      expect(result.stderr).toContain(`(${code})`);
    }
    expect(
      json<UrlJson>(await pylee(['gateway', 'url', 'weather', '--env', 'production', '--json'])).access,
    ).toBe('pylee');
  });

  it('exits 2 on a usage mistake: no --env, or an access mode that does not exist', async () => {
    const noEnv = await pylee(['gateway', 'url', 'weather']);
    expect(noEnv.code).toBe(2);
    expect(noEnv.stderr).toContain('gateway url needs --env E');

    const bad = await pylee(['gateway', 'access', 'weather', 'open', '--env', 'production']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('access open is not one of pylee, passthrough, public');
  });
});

describe('pylee release-health', () => {
  it('prints each version’s sessions and crash-free rates from what went through the gateway', async () => {
    const upstream = await startUpstream('1.0.0');
    try {
      const call = async (method: string, url: string, body?: object) => {
        const res = await fetch(`${platform.apiUrl}/api/v1${url}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        expect(res.status, await res.clone().text()).toBeLessThan(300);
        return (await res.json()) as Record<string, unknown>;
      };
      await call('POST', '/servers', { slug: 'health' });
      await call('POST', '/servers/health/versions', {
        version: '1.0.0',
        remotes: [{ type: 'streamable-http', url: upstream.url }],
      });
      await call('POST', '/servers/health/deployments', { version: '1.0.0', environment: 'development' });
      const { token } = (await call('POST', '/tokens', { name: 'mcp', permissions: ['connect'] })) as {
        token: string;
      };
      // Two sessions ended cleanly, one with a tool error.
      for (const broken of [false, true]) {
        const transport = new StreamableHTTPClientTransport(
          new URL(`${platform.gatewayUrl}/default/health/development/mcp`),
          { requestInit: { headers: { authorization: `Bearer ${token}` } } },
        );
        const client = new Client({ name: 'cli-test', version: '1' });
        await client.connect(transport);
        await client.callTool({ name: broken ? 'broken' : 'whoami', arguments: {} });
        await transport.terminateSession();
        await client.close();
      }
      const report = async () =>
        json<{
          versions: {
            version: string;
            sessions: { total: number; healthy: number; errored: number; crashed: number };
            crashFreeSessions: number;
          }[];
        }>(await pylee(['release-health', 'health', '--env', 'development', '--json']));
      // The rows and session ends reach ClickHouse a moment after the calls.
      await until(
        async () => {
          const sessions = (await report()).versions[0]?.sessions;
          return sessions?.total === 2 && sessions.healthy + sessions.errored === 2;
        },
        { what: 'two ended sessions' },
      );
      expect((await report()).versions[0]).toMatchObject({
        version: '1.0.0',
        sessions: { total: 2, healthy: 1, errored: 1, crashed: 0 },
        crashFreeSessions: 1,
      });
      const human = await pylee(['release-health', 'health', '--env', 'development']);
      expect(human.code, human.stderr).toBe(0);
      expect(human.stdout).toMatch(/^1\.0\.0 .*crash-free sessions 100\.0 %/m);
      expect(human.stdout).toContain('2 sessions (0 crashed, 1 errored, 0 active)');

      const unknown = await pylee(['release-health', 'health', '--env', 'nowhere']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('nowhere');
      expect((await pylee(['release-health', 'health'])).code).toBe(2);
    } finally {
      await upstream.close();
    }
  });
});
