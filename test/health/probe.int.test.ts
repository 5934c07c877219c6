import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import { assertTargetAddressesAllowed } from '#core/health/target-guard.ts';
import { canonicalJson, runProbe, toolsHash, type Probe } from '#core/health/probe.ts';
import type { Resolve } from '#core/net/ssrf.ts';
import { fixedDns } from './guard-fixtures.ts';
import { closedPort, startHttpTarget, startMcpTarget, type HttpTarget, type McpTarget } from './targets.ts';

let mcp: McpTarget;
let web: HttpTarget;

beforeAll(async () => {
  mcp = await startMcpTarget('1.2.0');
  web = await startHttpTarget();
});

afterAll(async () => {
  await mcp?.close();
  await web?.close();
});

describe('mcp probe', () => {
  it('initializes, lists tools and records protocol version, tool count and schema hash', async () => {
    mcp.mode = 'ok';
    const result = await runProbe({ kind: 'mcp', target: { url: mcp.url }, timeoutMs: 5_000 });
    expect(result).toMatchObject({ ok: true, error: '', statusCode: 200, toolCount: 2 });
    expect(result.protocolVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(result.serverInfo).toEqual({ name: 'weather', version: '1.2.0' });
    expect(result.tools?.map((t) => t.name)).toEqual(['alerts', 'forecast']);
    expect(result.toolsHash).toBe(toolsHash(result.tools ?? []));
    expect(result.toolsHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('gives the same hash over SSE and a different one when a tool is added', async () => {
    mcp.mode = 'ok';
    const streamable = await runProbe({ kind: 'mcp', target: { url: mcp.url }, timeoutMs: 5_000 });
    const sse = await runProbe({
      kind: 'mcp',
      target: { url: mcp.sseUrl, transport: 'sse' },
      timeoutMs: 5_000,
    });
    expect(sse).toMatchObject({ ok: true, toolCount: 2, toolsHash: streamable.toolsHash });
    mcp.mode = 'extra-tool';
    const changed = await runProbe({ kind: 'mcp', target: { url: mcp.url }, timeoutMs: 5_000 });
    expect(changed).toMatchObject({ ok: true, toolCount: 3 });
    expect(changed.toolsHash).not.toBe(streamable.toolsHash);
  });

  it('fails when tools/list throws, with the server message', async () => {
    mcp.mode = 'throw';
    const result = await runProbe({ kind: 'mcp', target: { url: mcp.url }, timeoutMs: 5_000 });
    expect(result.ok).toBe(false);
    expect(result.error).toContain('tool registry is unavailable');
  });

  it('fails on HTTP 500 and keeps the status', async () => {
    mcp.mode = 'http500';
    const result = await runProbe({ kind: 'mcp', target: { url: mcp.url }, timeoutMs: 5_000 });
    expect(result).toMatchObject({ ok: false, statusCode: 500 });
    expect(result.error).toContain('500');
  });

  it('gives up at the timeout when the server hangs', async () => {
    mcp.mode = 'hang';
    const result = await runProbe({ kind: 'mcp', target: { url: mcp.url }, timeoutMs: 300 });
    expect(result).toMatchObject({ ok: false, error: 'timed out after 300 ms' });
    const sse = await runProbe({
      kind: 'mcp',
      target: { url: mcp.sseUrl, transport: 'sse' },
      timeoutMs: 300,
    });
    expect(sse).toMatchObject({ ok: false, error: 'timed out after 300 ms' });
    mcp.mode = 'ok';
  });

  it('fails with a clear reason when nothing listens', async () => {
    const port = await closedPort();
    const result = await runProbe({
      kind: 'mcp',
      target: { url: `http://127.0.0.1:${port}/mcp` },
      timeoutMs: 2_000,
    });
    expect(result).toMatchObject({ ok: false, statusCode: 0 });
    expect(result.error).toContain('ECONNREFUSED');
  });
});

describe('http probe', () => {
  it('passes on a 2xx whose body matches', async () => {
    Object.assign(web, { status: 200, hang: false, body: '{"status":"ok"}' });
    const result = await runProbe({
      kind: 'http',
      target: { url: web.url, bodyContains: '"ok"', bodyMatches: 'status"\\s*:' },
      timeoutMs: 2_000,
    });
    expect(result).toMatchObject({ ok: true, statusCode: 200, error: '' });
    expect(result.latencyMs).toBeGreaterThan(0);
  });

  it('fails on a status outside the expected set', async () => {
    Object.assign(web, { status: 503, hang: false });
    const result = await runProbe({ kind: 'http', target: { url: web.url }, timeoutMs: 2_000 });
    expect(result).toMatchObject({ ok: false, statusCode: 503, error: 'expected status 2xx, got 503' });
    const accepted = await runProbe({
      kind: 'http',
      target: { url: web.url, expectedStatus: '200,503' },
      timeoutMs: 2_000,
    });
    expect(accepted.ok).toBe(true);
  });

  it('fails when the body does not contain or match what is expected', async () => {
    Object.assign(web, { status: 200, hang: false, body: '{"status":"degraded"}' });
    const contains = await runProbe({
      kind: 'http',
      target: { url: web.url, bodyContains: '"ok"' },
      timeoutMs: 2_000,
    });
    expect(contains).toMatchObject({ ok: false, statusCode: 200 });
    expect(contains.error).toBe('response body does not contain "\\"ok\\""');
    const matches = await runProbe({
      kind: 'http',
      target: { url: web.url, bodyMatches: '^ok$' },
      timeoutMs: 2_000,
    });
    expect(matches.error).toBe('response body does not match /^ok$/');
  });

  it('times out on a server that never answers', async () => {
    Object.assign(web, { hang: true });
    const result = await runProbe({ kind: 'http', target: { url: web.url }, timeoutMs: 250 });
    expect(result).toMatchObject({ ok: false, statusCode: 0, error: 'timed out after 250 ms' });
    web.hang = false;
  });
});

describe('dependency probe', () => {
  it('passes when a TCP port accepts a connection', async () => {
    const server = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const result = await runProbe({
      kind: 'dependency',
      target: { url: `tcp://127.0.0.1:${port}` },
      timeoutMs: 2_000,
    });
    expect(result).toMatchObject({ ok: true, statusCode: 0, error: '' });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('fails on a closed TCP port', async () => {
    const port = await closedPort();
    const result = await runProbe({
      kind: 'dependency',
      target: { url: `tcp://127.0.0.1:${port}` },
      timeoutMs: 2_000,
    });
    expect(result).toMatchObject({ ok: false, error: 'connection refused (ECONNREFUSED)' });
  });

  it('treats any HTTP answer below 500 as reachable', async () => {
    Object.assign(web, { status: 404, hang: false });
    expect(await runProbe({ kind: 'dependency', target: { url: web.url }, timeoutMs: 2_000 })).toMatchObject({
      ok: true,
      statusCode: 404,
    });
    web.status = 502;
    expect(await runProbe({ kind: 'dependency', target: { url: web.url }, timeoutMs: 2_000 })).toMatchObject({
      ok: false,
      statusCode: 502,
      error: 'answered 502',
    });
  });
});

describe('the SSRF guard when a probe connects', () => {
  const portOf = (url: string) => new URL(url).port;
  // svc.test is this machine; rebound.test a name whose DNS now answers the metadata address.
  const dns = fixedDns({
    'svc.test': ['127.0.0.1'],
    'rebound.test': ['169.254.169.254'],
    'mixed.test': ['127.0.0.1', '169.254.169.254'],
  });
  const probe = (kind: Probe['kind'], url: string, resolve: Resolve = dns, extra = {}) =>
    runProbe({ kind, target: { url, ...extra }, timeoutMs: 2_000 }, { resolve });

  it('refuses link-local, metadata and unspecified targets without connecting, for every kind', async () => {
    const cases: [Probe['kind'], string, RegExp][] = [
      ['http', 'http://169.254.169.254/latest/meta-data/', /link-local/],
      ['http', 'http://[::ffff:a9fe:a9fe]/', /link-local/],
      ['http', 'http://metadata.google.internal/computeMetadata/v1/', /cloud metadata host/],
      ['mcp', 'http://169.254.169.254/mcp', /link-local/],
      ['mcp', 'http://[fe80::1]/mcp', /link-local/],
      ['dependency', 'http://2852039166/', /link-local/],
      ['dependency', 'tcp://169.254.169.254:80', /link-local/],
      ['dependency', 'tcp://0xA9FEA9FE:80', /link-local/],
      ['dependency', 'tcp://[fe80::1]:22', /link-local/],
      ['dependency', 'tcp://metadata.google.internal:80', /cloud metadata host/],
    ];
    for (const [kind, url, why] of cases) {
      const result = await probe(kind, url);
      expect(result, `${kind} ${url}`).toMatchObject({ ok: false, statusCode: 0 });
      expect(result.error, `${kind} ${url}`).toMatch(/^refused: /);
      expect(result.error, `${kind} ${url}`).toMatch(why);
    }
  });

  it('refuses 0.0.0.0, which would reach this machine', async () => {
    Object.assign(web, { status: 200, hang: false, body: 'ok' });
    const requests = web.requests;
    const port = portOf(web.url);
    for (const [kind, url] of [
      ['http', `http://0.0.0.0:${port}/health`],
      ['dependency', `tcp://0.0.0.0:${port}`],
      ['dependency', `tcp://0:${port}`],
    ] as const) {
      const result = await probe(kind, url);
      expect(result, url).toMatchObject({ ok: false, statusCode: 0 });
      expect(result.error, url).toMatch(/^refused: .*unspecified/);
    }
    expect(web.requests).toBe(requests);
  });

  it('connects to the address its lookup checked, so a name rebound to link-local gets nowhere', async () => {
    Object.assign(web, { status: 200, hang: false, body: 'ok' });
    mcp.mode = 'ok';
    const webPort = portOf(web.url);
    const mcpPort = portOf(mcp.url);
    // The probe's own lookup is what it connects with: svc.test exists only in it.
    expect(await probe('http', `http://svc.test:${webPort}/health`)).toMatchObject({
      ok: true,
      statusCode: 200,
    });
    expect(await probe('mcp', `http://svc.test:${mcpPort}/mcp`)).toMatchObject({ ok: true, toolCount: 2 });
    expect(await probe('mcp', `http://svc.test:${mcpPort}/sse`, dns, { transport: 'sse' })).toMatchObject({
      ok: true,
      toolCount: 2,
    });
    expect(await probe('dependency', `tcp://svc.test:${webPort}`)).toMatchObject({ ok: true });

    const requests = web.requests;
    const initializes = mcp.initializeCount;
    for (const [kind, url] of [
      ['http', `http://rebound.test:${webPort}/health`],
      ['http', `http://mixed.test:${webPort}/health`],
      ['mcp', `http://rebound.test:${mcpPort}/mcp`],
      ['dependency', `http://rebound.test:${webPort}/health`],
      ['dependency', `tcp://rebound.test:${webPort}`],
    ] as const) {
      const result = await probe(kind, url);
      expect(result, url).toMatchObject({ ok: false, statusCode: 0 });
      expect(result.error, url).toMatch(
        /^refused: (rebound|mixed)\.test resolves to 169\.254\.169\.254 is a link-local/,
      );
    }
    expect(web.requests).toBe(requests);
    expect(mcp.initializeCount).toBe(initializes);
  });

  it('refuses a name that passed the check at save and resolves to link-local by the time it runs', async () => {
    let answer = '127.0.0.1';
    const rebinding: Resolve = (hostname, options, callback) => {
      const current = answer;
      answer = '169.254.169.254'; // a short TTL, then the attacker's second answer
      fixedDns({ [hostname]: [current] })(hostname, options, callback);
    };
    const url = `http://flip.test:${portOf(web.url)}/health`;
    await expect(assertTargetAddressesAllowed(url, { resolve: rebinding })).resolves.toBeUndefined();
    const result = await probe('http', url, rebinding);
    expect(result).toMatchObject({ ok: false, statusCode: 0 });
    expect(result.error).toMatch(/^refused: flip\.test resolves to 169\.254\.169\.254/);
  });

  it('checks every redirect hop the same way', async () => {
    Object.assign(web, { status: 200, hang: false, body: 'ok' });
    const redirector = http.createServer((req, res) => {
      const to: Record<string, string> = {
        '/to-metadata': 'http://169.254.169.254/latest/meta-data/',
        '/to-rebound': `http://rebound.test:${portOf(web.url)}/health`,
        '/to-service': `http://svc.test:${portOf(web.url)}/health`,
      };
      res.writeHead(302, { location: to[req.url ?? ''] ?? '/' }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
    try {
      expect(await probe('http', `${base}/to-service`)).toMatchObject({ ok: true, statusCode: 200 });
      for (const path of ['/to-metadata', '/to-rebound']) {
        const result = await probe('http', `${base}${path}`);
        expect(result, path).toMatchObject({ ok: false, statusCode: 0 });
        expect(result.error, path).toMatch(/^refused: .*link-local/);
        const dependency = await probe('dependency', `${base}${path}`);
        expect(dependency.error, path).toMatch(/^refused: .*link-local/);
      }
    } finally {
      redirector.closeAllConnections();
      await new Promise<void>((resolve) => redirector.close(() => resolve()));
    }
  });
});

describe('tool schema hash', () => {
  it('ignores key order and tool order but not schema changes', () => {
    const a = [
      { name: 'b', inputSchema: { type: 'object', properties: { x: { type: 'string' } } } },
      { name: 'a', inputSchema: { properties: {}, type: 'object' } },
    ];
    const b = [
      { name: 'a', inputSchema: { type: 'object', properties: {} } },
      { name: 'b', inputSchema: { properties: { x: { type: 'string' } }, type: 'object' } },
    ];
    expect(toolsHash(a)).toBe(toolsHash(b));
    const c = [a[1]!, { name: 'b', inputSchema: { type: 'object', properties: { x: { type: 'number' } } } }];
    expect(toolsHash(c)).not.toBe(toolsHash(a));
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: null }] })).toBe('{"a":[{"c":null,"d":2}],"b":1}');
  });
});
