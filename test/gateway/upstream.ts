import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

/**
 * A real MCP server (the TypeScript SDK's McpServer over its streamable HTTP transport, with
 * sessions) standing in for one version of a server behind the gateway. Its tools say which
 * version answered, fail on request, and send progress notifications before their result.
 */
export interface Upstream {
  version: string;
  url: string;
  /** Sessions the SDK server holds, by its own session id. */
  sessions: Map<string, StreamableHTTPServerTransport>;
  initializeCount: number;
  /** `Authorization` headers received, in order. */
  authorizations: (string | undefined)[];
  /** Every other header of the last request. */
  lastHeaders: http.IncomingHttpHeaders;
  /** Stops answering: every connection is cut, the port closed (a crashed version). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

export async function startUpstream(version: string): Promise<Upstream> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const state = {
    initializeCount: 0,
    authorizations: [] as (string | undefined)[],
    lastHeaders: {} as http.IncomingHttpHeaders,
  };

  const build = (): McpServer => {
    const server = new McpServer({ name: 'weather', version });
    server.registerTool('whoami', { description: 'Which version answers' }, async () => ({
      content: [{ type: 'text', text: version }],
    }));
    server.registerTool(
      'forecast',
      { description: 'Forecast for a city', inputSchema: { city: z.string() } },
      async ({ city }) => ({ content: [{ type: 'text', text: `${city}: sunny (${version})` }] }),
    );
    server.registerTool('broken', { description: 'Always a tool error' }, async () => ({
      content: [{ type: 'text', text: 'the forecast service is down' }],
      isError: true,
    }));
    server.registerTool(
      'slow',
      { description: 'Reports progress, then answers', inputSchema: { steps: z.number().int() } },
      async ({ steps }, extra) => {
        const token = extra._meta?.progressToken;
        for (let i = 1; i <= steps; i++) {
          if (token !== undefined) {
            await extra.sendNotification({
              method: 'notifications/progress',
              params: { progressToken: token, progress: i, total: steps },
            });
          }
        }
        return { content: [{ type: 'text', text: `done after ${steps}` }] };
      },
    );
    return server;
  };

  const handle = sessionHandler(sessions, build, () => state.initializeCount++);
  const httpServer = http.createServer((req, res) => {
    state.authorizations.push(req.headers.authorization);
    state.lastHeaders = req.headers;
    handle(req, res);
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;
  let closed = false;
  const stop = async () => {
    if (closed) return;
    closed = true;
    httpServer.closeAllConnections();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    for (const transport of sessions.values()) await transport.close().catch(() => undefined);
  };
  return Object.assign(state, {
    version,
    url: `http://127.0.0.1:${port}/mcp`,
    sessions,
    kill: stop,
    close: stop,
  }) as Upstream;
}

/**
 * Streamable HTTP with sessions, as the SDK's examples serve it: a transport (and server) per
 * session, created on `initialize`; anything else without a known session is 404.
 */
export function sessionHandler(
  sessions: Map<string, StreamableHTTPServerTransport>,
  build: () => McpServer,
  onInitialize: () => void = () => {},
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const sessionId = req.headers['mcp-session-id'];
      const existing = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
      if (existing) return existing.handleRequest(req, res, body);
      if (sessionId !== undefined || !isInitializeRequest(body)) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }),
        );
        return;
      }
      onInitialize();
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, transport);
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await build().connect(transport);
      await transport.handleRequest(req, res, body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  };
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}
