import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

/**
 * How the MCP target behaves: `ok`; `throw` (tools/list answers a JSON-RPC error); `http500` (every
 * request answers 500); `hang` (requests never answer); `extra-tool` (one more tool, so the hash changes).
 */
export type McpMode = 'ok' | 'throw' | 'http500' | 'hang' | 'extra-tool';

export interface McpTarget {
  /** Streamable HTTP endpoint. */
  url: string;
  /** SSE endpoint (the older HTTP+SSE transport). */
  sseUrl: string;
  mode: McpMode;
  /** initialize requests received, streamable and SSE together. */
  initializeCount: number;
  close(): Promise<void>;
}

/** A real MCP server (McpServer, tools defined with zod) on a local port, whose behaviour a test switches. */
export async function startMcpTarget(version = '1.2.0'): Promise<McpTarget> {
  const target = { mode: 'ok' as McpMode, initializeCount: 0 };

  const build = (): McpServer => {
    const server = new McpServer({ name: 'weather', version });
    server.registerTool(
      'forecast',
      {
        description: 'Forecast for a city',
        inputSchema: { city: z.string(), days: z.number().int().min(1).max(7) },
      },
      async ({ city, days }) => ({ content: [{ type: 'text', text: `${city}: sunny for ${days} days` }] }),
    );
    server.registerTool(
      'alerts',
      { description: 'Weather alerts for a region', inputSchema: { region: z.string() } },
      async ({ region }) => ({ content: [{ type: 'text', text: `no alerts in ${region}` }] }),
    );
    if (target.mode === 'extra-tool') {
      server.registerTool(
        'radar',
        { description: 'Radar image', inputSchema: { lat: z.number(), lon: z.number() } },
        async () => ({ content: [{ type: 'text', text: 'radar' }] }),
      );
    }
    if (target.mode === 'throw') {
      server.server.setRequestHandler(ListToolsRequestSchema, () => {
        throw new Error('tool registry is unavailable');
      });
    }
    return server;
  };

  const sseSessions = new Map<string, SSEServerTransport>();
  const hanging = new Set<http.ServerResponse>();

  const httpServer = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (target.mode === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (target.mode === 'http500') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
        return;
      }
      if (url.pathname === '/mcp') {
        const body = req.method === 'POST' ? await readJson(req) : undefined;
        if (isInitialize(body)) target.initializeCount++;
        // Stateless: a new server and transport per request, as the SDK's stateless example does.
        const server = build();
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
        res.on('close', () => {
          void transport.close();
          void server.close();
        });
        await server.connect(transport);
        await transport.handleRequest(req, res, body);
        return;
      }
      if (url.pathname === '/sse' && req.method === 'GET') {
        const transport = new SSEServerTransport('/messages', res);
        sseSessions.set(transport.sessionId, transport);
        res.on('close', () => sseSessions.delete(transport.sessionId));
        await build().connect(transport);
        return;
      }
      if (url.pathname === '/messages' && req.method === 'POST') {
        const transport = sseSessions.get(url.searchParams.get('sessionId') ?? '');
        if (!transport) {
          res.writeHead(404).end('no such session');
          return;
        }
        const body = await readJson(req);
        if (isInitialize(body)) target.initializeCount++;
        await transport.handlePostMessage(req, res, body);
        return;
      }
      res.writeHead(404).end();
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  return Object.assign(target, {
    url: `http://127.0.0.1:${port}/mcp`,
    sseUrl: `http://127.0.0.1:${port}/sse`,
    async close() {
      for (const res of hanging) res.destroy();
      for (const transport of sseSessions.values()) await transport.close();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  });
}

const isInitialize = (body: unknown) =>
  typeof body === 'object' && body !== null && (body as { method?: unknown }).method === 'initialize';

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

/** A plain HTTP target: answers `status` with `body`, or never answers while `hang` is set. */
export interface HttpTarget {
  url: string;
  status: number;
  body: string;
  hang: boolean;
  requests: number;
  close(): Promise<void>;
}

export async function startHttpTarget(): Promise<HttpTarget> {
  const target = { status: 200, body: '{"status":"ok","db":"connected"}', hang: false, requests: 0 };
  const server = http.createServer((req, res) => {
    target.requests++;
    if (target.hang) return;
    res.writeHead(target.status, { 'content-type': 'application/json' }).end(target.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(target, {
    url: `http://127.0.0.1:${port}/health`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** A TCP port nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
