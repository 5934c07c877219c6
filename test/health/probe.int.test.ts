import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, runProbe, toolsHash } from '#core/health/probe.ts';
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
