import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamTimeouts } from '#gateway/upstream-client.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { until } from '#test/helpers/until.ts';
import { startMcpTarget } from '../health/targets.ts';
import { apiFixture, startTestGateway, whoami } from './harness.ts';
import { startUpstream, type Upstream } from './upstream.ts';

// The gateway with real parts: MCP SDK servers (one per version) and SDK clients over real HTTP,
// the real API changing the rollout, Redis carrying the change, chDB receiving the rows.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let gateway: FastifyInstance;
let base: string;
let connectToken: string;
const upstreams: Upstream[] = [];
const clients: Client[] = [];

const { ok, serverWith, canary } = apiFixture(() => api, upstreams);
/** Rows reach chDB within a second when the machine is idle; a loaded CI machine may take longer. */
const ROWS_TIMEOUT_MS = 30_000;
const startGateway = (timeouts?: UpstreamTimeouts, rateLimitMax?: number) =>
  startTestGateway(stores, { timeouts, rateLimitMax, allowedOrigins: ['https://app.example.com'] });

const act = (slug: string, id: string, action: string) =>
  ok('POST', `/servers/${slug}/deployments/${id}/${action}`, {});

async function connect(
  slug: string,
  token = connectToken,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/default/${slug}/development/mcp`), {
    requestInit: { headers: bearer(token) },
  });
  const client = new Client({ name: 'test-client', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

/** A raw initialize through the gateway: the version it landed on and the session it got. */
async function initialize(slug: string): Promise<{ version: string; session: string }> {
  const res = await fetch(`${base}/default/${slug}/development/mcp`, {
    method: 'POST',
    headers: {
      ...bearer(connectToken),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  await res.text();
  expect(res.status).toBe(200);
  return {
    version: res.headers.get('x-pylee-version') ?? '',
    session: res.headers.get('mcp-session-id') ?? '',
  };
}

/** Where the gateway sends the next new session now. */
async function split(slug: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(Array.from({ length: Math.min(25, n - i) }, () => initialize(slug)));
    for (const { version } of batch) counts[version] = (counts[version] ?? 0) + 1;
  }
  return counts;
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  connectToken = await api.token(['connect']);
  ({ app: gateway, base } = await startGateway());
});
afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await gateway?.close();
  await api?.app.close();
  for (const upstream of upstreams) await upstream.close();
  await stores?.close();
});

describe('routing by the rollout', () => {
  it('keeps a session on one version, with its own sealed session id', async () => {
    const v = await serverWith('sticky', ['1.0.0']);
    const { client, transport } = await connect('sticky');
    expect(await whoami(client)).toBe('1.0.0');
    const gatewaySession = transport.sessionId ?? '';
    const [upstreamSession] = [...(v['1.0.0']?.sessions.keys() ?? [])];
    expect(gatewaySession.length).toBeGreaterThan(100);
    expect(gatewaySession).not.toContain(upstreamSession);
    for (let i = 0; i < 5; i++) expect(await whoami(client)).toBe('1.0.0');
    // The gateway's token is stripped: the upstream never sees it.
    expect(v['1.0.0']?.authorizations.every((a) => a === undefined)).toBe(true);
  });

  it('splits 1,000 new sessions 30 ± 4 % onto a canary at 30 %, and a weight change moves only new sessions', async () => {
    await serverWith('split', ['1.0.0', '1.1.0']);
    const deployment = await canary('split', '1.1.0', [30, 60]);
    const counts = await split('split', 1000);
    expect(counts['1.1.0'] ?? 0).toBeGreaterThanOrEqual(260);
    expect(counts['1.1.0'] ?? 0).toBeLessThanOrEqual(340);
    expect((counts['1.0.0'] ?? 0) + (counts['1.1.0'] ?? 0)).toBe(1000);

    // Twenty live SDK sessions, then the canary goes to 60 %: each stays where it was.
    const live: { client: Client; version: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const { client } = await connect('split');
      live.push({ client, version: await whoami(client) });
    }
    await act('split', deployment.id, 'promote');
    await until(async () => ((await split('split', 100))['1.1.0'] ?? 0) > 45, {
      what: 'the 60 % step at the gateway',
    });
    for (const { client, version } of live) expect(await whoami(client)).toBe(version);
    const after = await split('split', 500);
    expect(after['1.1.0'] ?? 0).toBeGreaterThanOrEqual(270);
    expect(after['1.1.0'] ?? 0).toBeLessThanOrEqual(330);
  });
});

describe('rollbacks move live sessions', () => {
  it('migrates the canary’s SDK sessions to the stable version with no error, keeping the session id', async () => {
    const v = await serverWith('migrate', ['1.0.0', '1.1.0']);
    const deployment = await canary('migrate', '1.1.0', [50]);
    const onCanary: { client: Client; transport: StreamableHTTPClientTransport }[] = [];
    while (onCanary.length < 3) {
      const c = await connect('migrate');
      if ((await whoami(c.client)) === '1.1.0') onCanary.push(c);
    }
    let listChanged = 0;
    for (const { client } of onCanary)
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        listChanged++;
      });
    const initsBefore = v['1.0.0']?.initializeCount ?? 0;
    await act('migrate', deployment.id, 'rollback');
    await until(async () => (await split('migrate', 10))['1.1.0'] === undefined, {
      what: 'the rollback at the gateway',
    });
    for (const { client, transport } of onCanary) {
      const session = transport.sessionId;
      expect(await whoami(client)).toBe('1.0.0');
      expect(await whoami(client)).toBe('1.0.0');
      expect(transport.sessionId).toBe(session);
    }
    // Each migrated client heard once that its tools may have changed.
    await until(() => listChanged === onCanary.length, { what: 'tools/list_changed per migrated client' });
    expect(listChanged).toBe(3);
    // One new upstream session per migrated client (plus the ten probes), opened with its initialize.
    expect((v['1.0.0']?.initializeCount ?? 0) - initsBefore).toBe(3 + 10);
  });

  it('ends them with 404 under `terminate`', async () => {
    await serverWith('terminate', ['1.0.0', '1.1.0']);
    const deployment = await canary('terminate', '1.1.0', [50], { sessions: 'terminate' });
    let onCanary: Client | undefined;
    while (!onCanary) {
      const { client } = await connect('terminate');
      if ((await whoami(client)) === '1.1.0') onCanary = client;
    }
    await act('terminate', deployment.id, 'abort');
    await until(async () => (await split('terminate', 10))['1.1.0'] === undefined, {
      what: 'the abort at the gateway',
    });
    await expect(whoami(onCanary)).rejects.toThrow(/404|session/i);
  });
});

describe('drain and session-less clients', () => {
  it('lets the old version’s sessions drain when another is promoted to 100 %', async () => {
    await serverWith('drain', ['1.0.0', '1.1.0']);
    const deployment = await canary('drain', '1.1.0', [50]);
    let onStable: Client | undefined;
    while (!onStable) {
      const { client } = await connect('drain');
      if ((await whoami(client)) === '1.0.0') onStable = client;
    }
    await act('drain', deployment.id, 'promote');
    await until(async () => (await split('drain', 10))['1.0.0'] === undefined, {
      what: 'the promotion at the gateway',
    });
    expect(await whoami(onStable)).toBe('1.0.0');
  });

  it('sends requests without a session by client key, one client to one version, split by the weights', async () => {
    const targets = await Promise.all(['1.0.0', '1.1.0'].map((v) => startMcpTarget(v)));
    for (const t of targets) upstreams.push({ close: () => t.close() } as Upstream);
    await ok('POST', '/servers', { slug: 'stateless' });
    for (const [i, version] of ['1.0.0', '1.1.0'].entries()) {
      await ok('POST', '/servers/stateless/versions', {
        version,
        remotes: [{ type: 'streamable-http', url: targets[i]?.url }],
      });
    }
    await ok('POST', '/servers/stateless/deployments', { version: '1.0.0', environment: 'development' });
    await canary('stateless', '1.1.0', [30]);
    // Public, so the client key header is what identifies a client (a token's id would come first).
    await ok('PUT', '/servers/stateless/environments/development/gateway', { access: 'public' });
    const versionFor = async (key: string) => {
      const res = await fetch(`${base}/default/stateless/development/mcp`, {
        method: 'POST',
        headers: {
          'x-pylee-client-key': key,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      await res.text();
      if (res.status !== 200) return `HTTP ${res.status}`;
      expect(res.headers.get('mcp-session-id')).toBeNull();
      return res.headers.get('x-pylee-version');
    };
    await until(async () => (await versionFor('probe')) !== 'HTTP 401', {
      what: 'public access at the gateway',
    });
    let onCanary = 0;
    for (let i = 0; i < 200; i++) {
      const key = `client-${i}`;
      const first = await versionFor(key);
      for (let j = 0; j < 2; j++) expect(await versionFor(key)).toBe(first);
      if (first === '1.1.0') onCanary++;
    }
    // 200 clients at 30 %: 60 expected, 3.5 standard deviations either way.
    expect(onCanary).toBeGreaterThanOrEqual(38);
    expect(onCanary).toBeLessThanOrEqual(82);
  });
});

describe('the protocol through the gateway', () => {
  it('passes progress notifications through before the final response', async () => {
    await serverWith('progress', ['1.0.0']);
    const { client } = await connect('progress');
    const seen: number[] = [];
    const result = (await client.callTool({ name: 'slow', arguments: { steps: 4 } }, undefined, {
      onprogress: (p) => seen.push(p.progress),
    })) as { content: { text: string }[] };
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(result.content[0]?.text).toBe('done after 4');
  });

  it('turns a killed upstream into JSON-RPC errors of that version, and records them', async () => {
    const v = await serverWith('flaky', ['1.0.0']);
    const { client } = await connect('flaky');
    expect(await whoami(client)).toBe('1.0.0');
    await v['1.0.0']?.kill();
    await expect(whoami(client)).rejects.toThrow(/1\.0\.0 of flaky failed/);
    await until(async () => (await rows('flaky')).some((r) => r.error_type === '502'), {
      what: 'the 502 row',
      timeoutMs: ROWS_TIMEOUT_MS,
    });
  });

  it('writes one row per call, by tool and outcome, marked as the gateway’s', async () => {
    await serverWith('rows', ['1.0.0']);
    const { client } = await connect('rows');
    for (let i = 0; i < 3; i++) await whoami(client);
    for (let i = 0; i < 2; i++) await client.callTool({ name: 'broken', arguments: {} });
    await client.callTool({ name: 'forecast', arguments: { city: 'Oslo' } });
    const expected = [
      'initialize|0||1',
      'tools/call broken|1|tool_error|2',
      'tools/call forecast|0||1',
      'tools/call whoami|0||3',
    ];
    await until(async () => summary(await rows('rows')).length >= expected.length, {
      what: 'the rows',
      timeoutMs: ROWS_TIMEOUT_MS,
    });
    expect(summary(await rows('rows'))).toEqual(expected);
    const [row] = await rows('rows');
    expect(row).toMatchObject({
      source: 'gateway',
      environment: 'development',
      version: '1.0.0',
      counted: 1,
    });
    expect(row?.session_id).toMatch(/^[0-9a-f]{16}$/);
  });
});

interface Row {
  operation: string;
  error: number;
  error_type: string;
  source: string;
  environment: string;
  version: string;
  session_id: string;
  counted: number;
}

async function rows(server: string): Promise<Row[]> {
  const result = await stores.warehouse.client.query({
    query: `SELECT operation, error, error_type, source, environment, version, session_id, counted
            FROM requests WHERE server = {server:String} ORDER BY time`,
    query_params: { server },
    format: 'JSONEachRow',
  });
  return (await result.json<Row>()).map((r) => ({
    ...r,
    error: Number(r.error),
    counted: Number(r.counted),
  }));
}

/** `operation|error|error_type|count`, sorted; notifications/initialized is no exchange and has no row. */
function summary(list: Row[]): string[] {
  const counts = new Map<string, number>();
  for (const r of list) {
    const key = `${r.operation}|${r.error}|${r.error_type}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${k}|${n}`).sort();
}

describe('bad input gets a clear JSON-RPC error and reaches no upstream', () => {
  let v: Record<string, Upstream>;
  const endpoint = () => `${base}/default/refusals/development/mcp`;
  const post = (url: string, body: string, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'POST',
      headers: {
        ...bearer(connectToken),
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body,
    });
  const INIT = JSON.stringify({
    jsonrpc: '2.0',
    id: 7,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });

  beforeAll(async () => {
    v = await serverWith('refusals', ['1.0.0']);
  });

  async function refused(res: Response, status: number, pattern: RegExp, rpcCode?: number) {
    const text = await res.text();
    expect(res.status, text).toBe(status);
    const body = JSON.parse(text) as { jsonrpc: string; error: { code: number; message: string } };
    expect(body.jsonrpc).toBe('2.0');
    expect(body.error.message).toMatch(pattern);
    if (rpcCode !== undefined) expect(body.error.code).toBe(rpcCode);
    return body;
  }

  it('answers an unknown org, server or environment, and an archived server, with the same 404', async () => {
    const before = v['1.0.0']?.initializeCount;
    await ok('POST', '/servers', { slug: 'archived' });
    await ok('POST', '/servers/archived/archive');
    const bodies = [];
    for (const path of [
      '/nope/refusals/development/mcp',
      '/default/nope/development/mcp',
      '/default/refusals/nowhere/mcp',
      '/default/archived/development/mcp',
    ]) {
      bodies.push(await refused(await post(`${base}${path}`, INIT), 404, /no such MCP server here/));
    }
    // Nothing tells them apart.
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    expect(v['1.0.0']?.initializeCount).toBe(before);
  });

  it('refuses missing, wrong and insufficient tokens', async () => {
    const missing = await fetch(endpoint(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: INIT,
    });
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    await refused(missing, 401, /no API token/);
    await refused(
      await post(endpoint(), INIT, bearer('pyl_not-a-real-token-000000000000')),
      401,
      /not valid/,
    );
    await refused(await post(endpoint(), INIT, bearer(await api.token(['read']))), 403, /connect permission/);
    await refused(
      await post(endpoint(), INIT, bearer(await api.token(['connect'], { servers: ['other'] }))),
      404,
      /no such MCP server/,
    );
    const other = await api.app.inject({
      method: 'POST',
      url: '/api/v1/orgs',
      headers: bearer(BOOTSTRAP_TOKEN),
      payload: { slug: 'gateway-other-org', name: 'Other' },
    });
    const otherAdmin = (other.json() as { token: string }).token;
    await refused(await post(endpoint(), INIT, bearer(otherAdmin)), 404, /no such MCP server here/);
  });

  it('refuses bodies that are not JSON, not JSON-RPC, or over the limit', async () => {
    await refused(await post(endpoint(), '{"jsonrpc": "2.0",'), 400, /./, -32700);
    await refused(
      await post(endpoint(), JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'x' })),
      400,
      /./,
      -32600,
    );
    const huge = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'x'.repeat(70_000) },
    });
    await refused(await post(endpoint(), huge), 413, /larger than/);
  });

  it('refuses forged, altered and other servers’ session ids with 404', async () => {
    const { session } = await initialize('refusals');
    const call = (id: string, url = endpoint()) =>
      post(url, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }), {
        'mcp-session-id': id,
        'mcp-protocol-version': '2025-06-18',
      });
    expect((await call(session)).status).toBe(200);
    const flipped = session.slice(0, 40) + (session[40] === 'A' ? 'B' : 'A') + session.slice(41);
    await refused(await call(flipped), 404, /session is not known/, -32001);
    await refused(await call('not-a-session'), 404, /session is not known/, -32001);
    await serverWith('refusals-b', ['1.0.0']);
    await refused(
      await call(session, `${base}/default/refusals-b/development/mcp`),
      404,
      /session is not known/,
    );
  });

  it('refuses browser origins that are not allowed', async () => {
    await refused(
      await post(endpoint(), INIT, { origin: 'https://evil.example' }),
      403,
      /origin https:\/\/evil\.example/,
    );
    expect((await post(endpoint(), INIT, { origin: 'https://app.example.com' })).status).toBe(200);
  });

  it('serves a pinned version, and refuses unknown and retired ones', async () => {
    await serverWith('pinned', ['1.0.0', '1.1.0']);
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/default/pinned@1.1.0/mcp`), {
      requestInit: { headers: bearer(connectToken) },
    });
    const client = new Client({ name: 'pinned', version: '1' });
    await client.connect(transport);
    clients.push(client);
    expect(await whoami(client)).toBe('1.1.0');
    await refused(
      await post(`${base}/default/pinned@9.9.9/mcp`, INIT),
      404,
      /9\.9\.9 of pinned was not found/,
    );
    await ok('PATCH', '/servers/pinned/versions/1.1.0', { status: 'retired' });
    await until(async () => (await post(`${base}/default/pinned@1.1.0/mcp`, INIT)).status === 404, {
      what: 'the retirement at the gateway',
    });
    await refused(await post(`${base}/default/pinned@1.1.0/mcp`, INIT), 404, /retired/);
  });

  it('says so when a version has no remote, and when nothing runs', async () => {
    await ok('POST', '/servers', { slug: 'no-remote' });
    await ok('POST', '/servers/no-remote/versions', { version: '1.0.0' });
    await refused(
      await post(`${base}/default/no-remote/development/mcp`, INIT),
      503,
      /nothing runs in development/,
    );
    await ok('POST', '/servers/no-remote/deployments', { version: '1.0.0', environment: 'development' });
    await until(async () => (await post(`${base}/default/no-remote/development/mcp`, INIT)).status === 404, {
      what: 'the deployment at the gateway',
    });
    await refused(
      await post(`${base}/default/no-remote/development/mcp`, INIT),
      404,
      /1\.0\.0 has no remote/,
    );
  });
});

describe('scale-out', () => {
  let second: { app: FastifyInstance; base: string };
  // Its own token: the rate limit counts every gateway's requests per token.
  let scaleToken: string;
  beforeAll(async () => {
    scaleToken = await api.token(['connect'], { name: 'scale-out' });
    // Another gateway on the same stores, with a short wait for upstreams and a low rate limit.
    second = await startGateway({ firstByteMs: 300 }, 3);
  });
  afterAll(async () => {
    await second?.app.close();
  });

  it('limits requests per token, shared by every gateway, with a JSON-RPC 429', async () => {
    await serverWith('limited', ['1.0.0']);
    const token = await api.token(['connect'], { name: 'limited' });
    const send = () =>
      fetch(`${second.base}/default/limited/development/mcp`, {
        method: 'POST',
        headers: {
          ...bearer(token),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await send()).status);
    expect(statuses.slice(0, 3).every((s) => s !== 429)).toBe(true);
    const limited = await send();
    expect(limited.status).toBe(429);
    expect(((await limited.json()) as { error: { message: string } }).error.message).toMatch(
      /more than 3 requests/,
    );
  });

  it('a second gateway honours sessions the first issued', async () => {
    await serverWith('replicas', ['1.0.0']);
    const { session } = await initialize('replicas');
    const res = await fetch(`${second.base}/default/replicas/development/mcp`, {
      method: 'POST',
      headers: {
        ...bearer(scaleToken),
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-06-18',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method: 'tools/call',
        params: { name: 'whoami', arguments: {} },
      }),
    });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(text).toContain('"text":"1.0.0"');
  });

  it('answers 504 naming the version when the upstream does not answer', async () => {
    const hanging = http.createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/mcp`;
      await ok('POST', '/servers', { slug: 'hangs' });
      await ok('POST', '/servers/hangs/versions', {
        version: '2.0.0',
        remotes: [{ type: 'streamable-http', url }],
      });
      await ok('POST', '/servers/hangs/deployments', { version: '2.0.0', environment: 'development' });
      const res = await fetch(`${second.base}/default/hangs/development/mcp`, {
        method: 'POST',
        headers: {
          ...bearer(scaleToken),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      const body = (await res.json()) as { id: number; error: { message: string } };
      expect(res.status).toBe(504);
      expect(body.id).toBe(9);
      expect(body.error.message).toBe('version 2.0.0 of hangs failed: it did not start answering in time');
    } finally {
      hanging.closeAllConnections();
      hanging.close();
    }
  });
});

describe('the older HTTP+SSE transport', () => {
  it('streams a version whose remote is of type sse, rewriting its message endpoint, and records the calls', async () => {
    const target = await startMcpTarget('3.0.0');
    upstreams.push({ close: () => target.close() } as Upstream);
    await ok('POST', '/servers', { slug: 'legacy' });
    await ok('POST', '/servers/legacy/versions', {
      version: '3.0.0',
      remotes: [{ type: 'sse', url: target.sseUrl }],
    });
    await ok('POST', '/servers/legacy/deployments', { version: '3.0.0', environment: 'development' });
    const transport = new SSEClientTransport(new URL(`${base}/default/legacy/development/sse`), {
      requestInit: { headers: bearer(connectToken) },
    });
    const client = new Client({ name: 'legacy-client', version: '1' });
    await client.connect(transport);
    clients.push(client);
    const result = (await client.callTool({ name: 'forecast', arguments: { city: 'Oslo', days: 2 } })) as {
      content: { text: string }[];
    };
    expect(result.content[0]?.text).toBe('Oslo: sunny for 2 days');
    expect(target.initializeCount).toBe(1);
    await until(async () => (await rows('legacy')).some((r) => r.operation === 'tools/call forecast'), {
      what: 'the SSE call row',
      timeoutMs: ROWS_TIMEOUT_MS,
    });
    expect(summary(await rows('legacy'))).toEqual(['initialize|0||1', 'tools/call forecast|0||1']);

    // A message endpoint the client made up is not forwarded anywhere.
    const forged = await fetch(`${base}/default/legacy/development/messages?session=made-up`, {
      method: 'POST',
      headers: { ...bearer(connectToken), 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(forged.status).toBe(404);
  });
});

describe('who may connect', () => {
  const call = (slug: string, headers: Record<string, string>) =>
    fetch(`${base}/default/${slug}/development/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
      }),
    });

  it('fills the remote’s URL variables and headers from the environment’s variables and secrets', async () => {
    const upstream = await startUpstream('4.0.0');
    upstreams.push(upstream);
    const port = new URL(upstream.url).port;
    await ok('POST', '/servers', { slug: 'templated' });
    await ok('POST', '/servers/templated/versions', {
      version: '4.0.0',
      remotes: [
        {
          type: 'streamable-http',
          url: 'http://127.0.0.1:{port}/mcp',
          variables: { port: { description: 'port', isRequired: true } },
          headers: [
            {
              name: 'X-Api-Key',
              value: '{API_KEY}',
              variables: { API_KEY: { description: 'key', isRequired: true, isSecret: true } },
            },
          ],
        },
      ],
    });
    await ok('PUT', '/servers/templated/variables/port?environment=development', { value: port });
    await ok('PUT', '/servers/templated/secrets/API_KEY?environment=development', { value: 'k-123' });
    await ok('POST', '/servers/templated/deployments', { version: '4.0.0', environment: 'development' });
    const { client } = await connect('templated');
    expect(await whoami(client)).toBe('4.0.0');
    expect(upstream.lastHeaders['x-api-key']).toBe('k-123');
  });

  it('passthrough hands the client’s own Authorization to the upstream; public needs none', async () => {
    const v = await serverWith('modes', ['1.0.0']);
    const upstream = v['1.0.0'] as Upstream;
    // pylee (the default): no token, no entry; the Pylee token never reaches the upstream.
    expect((await call('modes', {})).status).toBe(401);
    expect((await call('modes', bearer(connectToken))).status).toBe(200);
    expect(upstream.authorizations.at(-1)).toBeUndefined();

    await ok('PUT', '/servers/modes/environments/development/gateway', { access: 'passthrough' });
    await until(
      async () => (await call('modes', { authorization: 'Bearer upstream-oauth-token' })).status === 200,
      {
        what: 'passthrough at the gateway',
      },
    );
    expect(upstream.authorizations.at(-1)).toBe('Bearer upstream-oauth-token');

    await ok('PUT', '/servers/modes/environments/development/gateway', { access: 'public' });
    await until(async () => (await call('modes', {})).status === 200, { what: 'public at the gateway' });
    const audit = await ok<{ events: { action: string }[] }>('GET', '/audit?action=gateway.access.set');
    expect(audit.events.filter((e) => e.action === 'gateway.access.set').length).toBeGreaterThanOrEqual(2);
  });
});
