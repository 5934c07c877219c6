import { randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AccessMode } from '#core/gateway/access.ts';
import type { EnvironmentRouting, ServerRouting, Upstream } from '#core/gateway/directory.ts';
import {
  parseBody,
  parseMessage,
  type ExchangeMessage,
  type JsonRpcId,
  type RequestMessage,
} from '#core/gateway/exchange.ts';
import { chooseVersion } from '#core/gateway/routing.ts';
import type { InitParams } from '#core/gateway/session-id.ts';
import { EventStreamReader } from '#core/gateway/sse.ts';
import { recordGatewaySession } from '#core/telemetry/metrics.ts';
import type { DirectoryCache } from './directory-cache.ts';
import { GatewayError, SESSION_NOT_FOUND } from './errors.ts';
import type { ExchangeScope, PendingCall, Recorder } from './recorder.ts';
import { header, type Sessions } from './sessions.ts';
import { UpstreamFailure, failureOf, type UpstreamClient, type UpstreamResponse } from './upstream-client.ts';
import { writeQueue } from './write-queue.ts';

/** What a request is addressed to: a server's environment, or one pinned version of it. */
export interface Target {
  routing: ServerRouting;
  /** null for a pinned version. */
  env: EnvironmentRouting | null;
  pinned?: string | undefined;
  access: AccessMode;
}

/** Who is calling: the key the client is hashed by, and what goes upstream as its credentials. */
export interface Caller {
  /** {@link clientKeyOf} the caller; undefined when nothing identifies it. */
  clientKey: string | undefined;
  /** The client's own `Authorization`, forwarded only in `passthrough` mode. */
  authorization?: string | undefined;
}

export interface ForwardDeps {
  directory: DirectoryCache;
  sessions: Sessions;
  client: UpstreamClient;
  recorder: Recorder;
  /** How often an idle stream gets a keep-alive comment. */
  keepAliveMs: number;
}

/** Request headers that go upstream as the client sent them (credentials only in passthrough). */
const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'content-type',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
  'traceparent',
  'tracestate',
  'user-agent',
];
/** Response headers that come back to the client; the session id is the gateway's own. */
const FORWARDED_RESPONSE_HEADERS = [
  'content-type',
  'cache-control',
  'mcp-protocol-version',
  'retry-after',
  'www-authenticate',
];
const MAX_JSON_RESPONSE_BYTES = 64 * 1024 * 1024;
/**
 * Sent to a client whose session a rollback moved to another version (MCP's notification that the
 * tool list changed): its tools may differ, and it lists them again.
 */
const LIST_CHANGED_EVENT = `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' })}\n\n`;

/** `text` as one line of JSON (an SSE data line), or undefined when it is not JSON. */
function compactJson(text: string): string | undefined {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return undefined;
  }
}

function acceptsEventStream(req: FastifyRequest): boolean {
  return (header(req.headers.accept) ?? '').includes('text/event-stream');
}

/**
 * Forwards one streamable-HTTP request (POST, GET or DELETE on `…/mcp`) to the version its session
 * or the weights say, and measures it: every JSON-RPC request in the body becomes a row once its
 * response is seen, in a JSON body or in the SSE stream, which reaches the client event by event.
 */
export async function forward(
  deps: ForwardDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  target: Target,
  caller: Caller,
): Promise<void> {
  const method = req.method as 'POST' | 'GET' | 'DELETE';
  const { routing, env } = target;
  let messages: ExchangeMessage[] = [];
  let batch = false;
  if (method === 'POST') {
    const parsed = parseBody((req.body as Buffer | undefined) ?? Buffer.alloc(0));
    if (!parsed.ok)
      throw new GatewayError(400, parsed.error.error.code, parsed.error.error.message, parsed.error.id);
    messages = parsed.messages;
    batch = parsed.batch;
  }
  const requests = messages.filter((m): m is RequestMessage => m.kind === 'request');
  const firstId = requests[0]?.id ?? null;
  const clientKeyHash = deps.recorder.clientKey(caller.clientKey);

  // Which version, and which upstream session.
  const sessionId = header(req.headers['mcp-session-id']);
  let version: string | undefined;
  let upstreamSessionId: string | undefined;
  let sessionKey = '';
  /** This request moved the session to another version: the client hears that its tools may differ. */
  let migrated = false;
  if (sessionId !== undefined) {
    const route = await deps.sessions.route(sessionId, routing, env, target.pinned, clientKeyHash);
    if ('refused' in route) {
      const why =
        route.refused === 'terminated'
          ? 'the session ended: its version lost its traffic in a rollback; initialize a new session'
          : 'the session is not known here (ended, expired, or not issued by this gateway); initialize a new session';
      throw new GatewayError(404, SESSION_NOT_FOUND, why, firstId);
    }
    ({ version, upstreamSessionId } = route);
    sessionKey = route.key;
    migrated = route.migratedFrom !== undefined;
  } else if (method === 'DELETE') {
    throw new GatewayError(400, -32600, 'DELETE ends a session: send the Mcp-Session-Id header', null);
  } else if (target.pinned !== undefined) {
    version = target.pinned;
  } else {
    const initializing = requests.some((r) => r.method === 'initialize');
    // A new session is placed at random by the weights (so 1,000 sessions of one client split as
    // the rollout says); a request without a session goes where its client always goes.
    const key = initializing || caller.clientKey === undefined ? `session:${randomUUID()}` : caller.clientKey;
    version = chooseVersion(env?.weights ?? [], key);

    if (version === undefined) {
      throw new GatewayError(
        503,
        -32000,
        `nothing runs in ${env?.name} of ${routing.server} yet: deploy a version there first`,
        firstId,
      );
    }
  }

  const scope: ExchangeScope = {
    orgId: routing.orgId,
    server: routing.server,
    environment: env?.name ?? '',
    version,
    sessionKey,
    clientKey: clientKeyHash,
  };
  const upstream = await deps.directory.upstream(routing, version, env?.name ?? null);
  if ('problem' in upstream) throw new GatewayError(404, -32000, upstream.problem, firstId);

  const headers = upstreamHeaders(req, caller, upstream);
  if (upstreamSessionId !== undefined) headers['mcp-session-id'] = upstreamSessionId;

  const startedAt = Date.now();
  const startedAtMonotonic = performance.now();
  const pending = new Map<JsonRpcId, PendingCall>(
    requests.map((message) => [message.id, { message, startedAt, startedAtMonotonic }]),
  );
  const abort = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) abort.abort();
  });

  let res: UpstreamResponse;
  try {
    res = await deps.client.send(upstream, {
      method,
      headers,
      body: method === 'POST' ? (req.body as Buffer) : undefined,
      signal: abort.signal,
      stream: method === 'GET',
    });
  } catch (error) {
    const failure = failureOf(error);
    for (const call of pending.values())
      deps.recorder.failed(scope, call, String(failure.status), failure.status);
    if (sessionKey) deps.recorder.session(scope, 'end', 'upstream-failure');
    await deps.recorder.logged();
    throw upstreamError(failure, routing.server, version, firstId);
  }

  if (res.status >= 500) {
    const status = res.status === 503 || res.status === 504 ? res.status : 502;
    const text = await readBounded(res.body).catch(() => '');
    const answered = recordResponses(deps.recorder, scope, pending, text, status);
    for (const call of pending.values())
      if (!answered.has(call.message.id)) deps.recorder.failed(scope, call, String(res.status), status);
    await deps.recorder.logged();
    throw upstreamError(
      new UpstreamFailure(status, `it answered HTTP ${res.status}`),
      routing.server,
      version,
      firstId,
    );
  }

  // The session the client holds: the one it sent, or a new one when the upstream opened one.
  let clientSession = sessionId;
  const init = requests.find((r) => r.method === 'initialize');
  const upstreamSession = header(res.headers['mcp-session-id']);
  if (sessionId === undefined && res.status < 300 && (init !== undefined || upstreamSession !== undefined)) {
    clientSession = deps.sessions.issue({
      org: routing.orgId,
      server: routing.server,
      environment: env?.name ?? '',
      version,
      upstreamSessionId: upstreamSession,
      ...(init ? { init: initParamsOf(init) } : {}),
    });
    scope.sessionKey = deps.recorder.sessionKey(clientSession);
    deps.recorder.session(scope, 'start', '');
    recordGatewaySession('started', version);
  }
  if (method === 'DELETE' && sessionKey && (res.status < 300 || res.status === 404)) {
    deps.recorder.session(scope, 'end', 'delete');
    recordGatewaySession('ended', version);
  }

  reply.code(res.status);
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = res.headers[name];
    if (value !== undefined) reply.header(name, value);
  }
  if (clientSession !== undefined) reply.header('mcp-session-id', clientSession);
  reply.header('x-pylee-version', version);

  const contentType = String(res.headers['content-type'] ?? '');
  if (contentType.includes('text/event-stream')) {
    reply.header('x-accel-buffering', 'no');
    reply.header('cache-control', 'no-cache, no-transform');
    return relayStream(deps, req, reply, res, scope, pending, {
      keepAlive: method === 'GET',
      first: migrated ? LIST_CHANGED_EVENT : undefined,
    });
  }
  const text = await readBounded(res.body).catch((error: unknown) => {
    throw upstreamError(failureOf(error), routing.server, version, firstId);
  });
  const answered = recordResponses(deps.recorder, scope, pending, text, res.status);
  for (const call of pending.values())
    if (!answered.has(call.message.id)) deps.recorder.failed(scope, call, String(res.status), res.status);
  // Answered means kept: the client hears only once the calls' rows are in the log.
  await deps.recorder.logged();
  if (batch && text === '') return reply.send();
  // A JSON answer becomes a two-event stream when the client accepts one, so it hears first.
  const compact = migrated && res.status === 200 && acceptsEventStream(req) ? compactJson(text) : undefined;
  if (compact !== undefined) {
    reply.header('content-type', 'text/event-stream');
    reply.header('cache-control', 'no-cache, no-transform');
    return reply.send(`${LIST_CHANGED_EVENT}event: message\ndata: ${compact}\n\n`);
  }
  return reply.send(text);
}

/** What goes upstream: the client's protocol headers, its credentials in passthrough, the remote's own headers. */
export function upstreamHeaders(
  req: FastifyRequest,
  caller: Caller,
  upstream: Upstream,
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = header(req.headers[name]);
    if (value !== undefined) headers[name] = value;
  }
  if (caller.authorization !== undefined) headers.authorization = caller.authorization;
  return Object.assign(headers, upstream.headers);
}

export function upstreamError(
  failure: UpstreamFailure,
  server: string,
  version: string,
  id: JsonRpcId | null,
) {
  return new GatewayError(
    failure.status,
    -32000,
    `version ${version} of ${server} failed: ${failure.reason}`,
    id,
  );
}

function initParamsOf(init: RequestMessage): InitParams {
  const params = (init.params ?? {}) as Record<string, unknown>;
  const obj = (v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  return {
    protocolVersion: typeof params.protocolVersion === 'string' ? params.protocolVersion : '',
    capabilities: obj(params.capabilities),
    clientInfo: obj(params.clientInfo),
  };
}

/** Records every response in a JSON body against its pending request; returns the ids answered. */
function recordResponses(
  recorder: Recorder,
  scope: ExchangeScope,
  pending: Map<JsonRpcId, PendingCall>,
  text: string,
  status: number,
): Set<JsonRpcId> {
  const answered = new Set<JsonRpcId>();
  if (pending.size === 0 || text === '') return answered;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return answered;
  }
  for (const item of Array.isArray(value) ? value : [value])
    answer(recorder, scope, pending, item, status, answered);
  return answered;
}

export function answer(
  recorder: Recorder,
  scope: ExchangeScope,
  pending: Map<JsonRpcId, PendingCall>,
  item: unknown,
  status: number,
  answered: Set<JsonRpcId>,
): void {
  const message = parseMessage(item);
  if ('problem' in message || message.kind !== 'response' || message.id === null) return;
  const call = pending.get(message.id);
  if (!call) return;
  pending.delete(message.id);
  answered.add(message.id);
  recorder.answered(scope, call, message, status);
}

/**
 * The upstream's SSE stream on its way to the client: every chunk is written as it arrives (no
 * buffering), read for the responses it carries, and, on a long-lived GET stream, interleaved with
 * keep-alive comments while the upstream is quiet, so idle proxies on the way do not cut it.
 *
 * Written to the raw response (fastify's `onResponse` hooks still run) rather than through a
 * stream pipeline: this runs for every SSE answer, and piping costs more than the relaying itself.
 */
function relayStream(
  deps: ForwardDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  res: UpstreamResponse,
  scope: ExchangeScope,
  pending: Map<JsonRpcId, PendingCall>,
  options: { keepAlive: boolean; first: string | undefined },
): void {
  const body = res.body;
  const raw = reply.raw;
  const reader = new EventStreamReader();
  const answered = new Set<JsonRpcId>();
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(timer);
    // Requests the stream ended without answering: the upstream went away mid-answer. A client that
    // hung up is not the version's failure, and is not recorded.
    const clientGone = raw.destroyed && !raw.writableFinished;
    if (!clientGone)
      for (const call of pending.values()) deps.recorder.failed(scope, call, 'upstream_disconnected', 200);
    pending.clear();
  };
  reply.hijack();
  const headers: OutgoingHttpHeaders = { 'x-request-id': req.id };
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) headers[name] = value;
  raw.writeHead(reply.statusCode, headers);
  let first = options.first;
  let corked = false;
  // Chunks leave in order; one that answers a call waits until the call's row is in the log.
  const inOrder = writeQueue(() => deps.recorder.logged());
  const relay = (out: Buffer, cork: boolean) => {
    // Writes of one tick leave in one packet. Not for a write that waited for the log: a cork still
    // held when the response ends would keep its last bytes from the client.
    if (cork && !corked) {
      corked = true;
      raw.cork();
      process.nextTick(() => {
        corked = false;
        raw.uncork();
      });
    }
    if (!raw.write(out)) {
      body.pause();
      raw.once('drain', () => body.resume());
    }
  };
  body.on('data', (chunk: Buffer) => {
    const before = answered.size;
    if (pending.size > 0) {
      for (const event of reader.push(chunk)) {
        if (event.event !== 'message') continue;
        try {
          answer(deps.recorder, scope, pending, JSON.parse(event.data), 200, answered);
        } catch {
          // Not JSON: passed on untouched; nothing to measure.
        }
      }
    } else if (options.keepAlive) reader.push(chunk);
    const out = first === undefined ? chunk : Buffer.concat([Buffer.from(first), chunk]);
    first = undefined;
    inOrder((now) => relay(out, now), answered.size > before);
  });
  body.on('end', () => {
    finish();
    inOrder(() => {
      // A cork still held would keep the last bytes from the client.
      if (corked) {
        corked = false;
        raw.uncork();
      }
      raw.end();
    }, true);
  });
  body.on('error', () => {
    finish();
    raw.destroy();
  });
  raw.on('close', () => {
    if (!body.destroyed) body.destroy();
    finish();
  });
  if (options.keepAlive) {
    timer = setInterval(() => {
      if (reader.atBoundary) inOrder(() => raw.write(': keep-alive\n\n'), false);
    }, deps.keepAliveMs);
    timer.unref();
  }
}

export async function readBounded(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_RESPONSE_BYTES) {
      body.destroy();
      throw new UpstreamFailure(
        502,
        `its answer is larger than ${MAX_JSON_RESPONSE_BYTES / 1024 / 1024} MiB`,
      );
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
