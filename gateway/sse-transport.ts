/**
 * The older HTTP+SSE transport (MCP 2024-11-05), for versions whose remote is of type `sse`: the
 * client holds a GET event stream, the server names a message endpoint in its first `endpoint`
 * event, and the client POSTs its messages there while the answers come down the stream.
 *
 * The gateway rewrites that endpoint to its own (`…/messages?session=<sealed id>`, the upstream's
 * message URL sealed inside, so any replica can forward a POST and nobody can aim one elsewhere).
 * A session of this transport is bound to one upstream stream, so it cannot migrate: when its
 * version loses its traffic by a rollback (`migrate` or `terminate`), its stream is closed and the
 * client connects again, onto a version that runs; under `drain` it stays.
 */
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseBody, type JsonRpcId, type RequestMessage } from '#core/gateway/exchange.ts';
import { chooseVersion } from '#core/gateway/routing.ts';
import { EventStreamReader, type ServerSentEvent } from '#core/gateway/sse.ts';
import { recordGatewaySession } from '#core/telemetry/metrics.ts';
import { GATEWAY_ERROR, GatewayError, SESSION_NOT_FOUND } from './errors.ts';
import {
  answer,
  readBounded,
  upstreamError,
  upstreamHeaders,
  type Caller,
  type ForwardDeps,
  type Target,
} from './mcp.ts';
import type { ExchangeScope, PendingCall } from './recorder.ts';
import { isLive } from './sessions.ts';
import { failureOf } from './upstream-client.ts';
import { writeQueue } from './write-queue.ts';

/** Calls POSTed through this process whose answers will come down a stream this process holds. */
type Waiting = Map<string, Map<JsonRpcId, PendingCall>>;

export class SseTransport {
  readonly #deps: ForwardDeps;
  readonly #waiting: Waiting = new Map();

  constructor(deps: ForwardDeps) {
    this.#deps = deps;
  }

  /** `GET …/sse`: opens a stream to a version chosen by the weights. */
  async stream(
    req: FastifyRequest,
    reply: FastifyReply,
    target: Target,
    caller: Caller,
    messagesPath: string,
  ) {
    const { routing, env } = target;
    if (!env) throw new GatewayError(404, GATEWAY_ERROR, 'pinned versions use streamable HTTP (…/mcp)');
    const version = chooseVersion(env.weights, `session:${randomUUID()}`);
    if (version === undefined) {
      throw new GatewayError(
        503,
        GATEWAY_ERROR,
        `nothing runs in ${env.name} of ${routing.server} yet: deploy a version there first`,
      );
    }
    const upstream = await this.#deps.directory.upstream(routing, version, env.name, 'sse');
    if ('problem' in upstream) throw new GatewayError(404, GATEWAY_ERROR, upstream.problem);
    const abort = new AbortController();
    let res;
    try {
      res = await this.#deps.client.send(upstream, {
        method: 'GET',
        headers: { ...upstreamHeaders(req, caller, upstream), accept: 'text/event-stream' },
        signal: abort.signal,
        stream: true,
      });
    } catch (error) {
      throw upstreamError(failureOf(error), routing.server, version, null);
    }
    if (res.status !== 200) {
      await res.body.dump();
      throw new GatewayError(
        502,
        GATEWAY_ERROR,
        `version ${version} of ${routing.server} failed: its SSE endpoint answered HTTP ${res.status}`,
      );
    }

    const scope: ExchangeScope = {
      orgId: routing.orgId,
      server: routing.server,
      environment: env.name,
      version,
      sessionKey: '',
      clientKey: this.#deps.recorder.clientKey(caller.clientKey),
    };
    const out = new PassThrough();
    const reader = new EventStreamReader();
    const waiting = new Map<JsonRpcId, PendingCall>();
    let ended = false;
    // Writes leave in order; an event that answers a call waits until the call's row is in the log.
    const inOrder = writeQueue(() => this.#deps.recorder.logged());
    const write = (text: string | undefined, afterLog: boolean) =>
      inOrder(() => void (text === undefined ? out.end() : out.write(text)), afterLog);
    const keepAlive = setInterval(() => write(': keep-alive\n\n', false), this.#deps.keepAliveMs);
    keepAlive.unref();
    let stopListening = () => {};
    const end = (reason: string) => {
      if (ended) return;
      ended = true;
      clearInterval(keepAlive);
      stopListening();
      abort.abort();
      if (scope.sessionKey) {
        this.#waiting.delete(scope.sessionKey);
        this.#deps.recorder.session(scope, 'end', reason);
        recordGatewaySession('ended', version);
      }
      for (const call of waiting.values())
        this.#deps.recorder.failed(scope, call, 'upstream_disconnected', 200);
      write(undefined, true);
    };
    const send = (event: ServerSentEvent, afterLog = false) => write(serialize(event), afterLog);

    res.body.on('data', (chunk: Buffer) => {
      for (const event of reader.push(chunk)) {
        if (event.event === 'endpoint' && !scope.sessionKey) {
          const endpoint = new URL(event.data, upstream.url);
          // The upstream may only name a message endpoint of its own origin.
          if (endpoint.origin !== new URL(upstream.url).origin) return end('upstream-failure');
          const session = this.#deps.sessions.issue({
            org: routing.orgId,
            server: routing.server,
            environment: env.name,
            version,
            upstreamSessionId: endpoint.toString(),
          });
          scope.sessionKey = this.#deps.recorder.sessionKey(session);
          this.#waiting.set(scope.sessionKey, waiting);
          this.#deps.recorder.session(scope, 'start', '');
          recordGatewaySession('started', version);
          send({ event: 'endpoint', data: `${messagesPath}?session=${session}`, id: undefined });
          continue;
        }
        const answered = new Set<JsonRpcId>();
        if (event.event === 'message' && waiting.size > 0) {
          try {
            answer(this.#deps.recorder, scope, waiting, JSON.parse(event.data), 200, answered);
          } catch {
            // Not JSON: passed on untouched.
          }
        }
        send(event, answered.size > 0);
      }
    });
    res.body.on('end', () => end('upstream-failure'));
    res.body.on('error', () => end('upstream-failure'));
    reply.raw.on('close', () => end('client-closed'));
    // A rollback ends the stream of a version that lost its traffic, unless its sessions drain.
    stopListening = this.#deps.directory.onInvalidate((orgId, server) => {
      if (orgId !== routing.orgId || server !== routing.server) return;
      void this.#deps.directory.server(routing.orgSlug, routing.server).then((fresh) => {
        const now = fresh?.environments.get(env.name);
        if (!now || (!isLive(now, version) && (now.lost[version] ?? 'drain') !== 'drain')) end('rollback');
      });
    });

    reply.code(200);
    reply.header('content-type', 'text/event-stream');
    reply.header('cache-control', 'no-cache, no-transform');
    reply.header('x-accel-buffering', 'no');
    reply.header('x-pylee-version', version);
    return reply.send(out);
  }

  /** `POST …/messages?session=…`: one message to the upstream's message endpoint. */
  async message(req: FastifyRequest, reply: FastifyReply, target: Target, caller: Caller, sessionId: string) {
    const { routing, env } = target;
    const claims = env ? this.#deps.sessions.open(sessionId, routing, env.name) : undefined;
    if (!env || !claims?.upstreamSessionId?.startsWith('http')) {
      throw new GatewayError(404, SESSION_NOT_FOUND, 'the session is not known here; connect to …/sse again');
    }
    const version = claims.version;
    if (!isLive(env, version) && (env.lost[version] ?? 'drain') !== 'drain') {
      throw new GatewayError(
        404,
        SESSION_NOT_FOUND,
        'the session ended: its version lost its traffic in a rollback; connect to …/sse again',
      );
    }
    const parsed = parseBody((req.body as Buffer | undefined) ?? Buffer.alloc(0));
    if (!parsed.ok)
      throw new GatewayError(400, parsed.error.error.code, parsed.error.error.message, parsed.error.id);
    const upstream = await this.#deps.directory.upstream(routing, version, env.name, 'sse');
    if ('problem' in upstream) throw new GatewayError(404, GATEWAY_ERROR, upstream.problem);
    const scope: ExchangeScope = {
      orgId: routing.orgId,
      server: routing.server,
      environment: env.name,
      version,
      sessionKey: this.#deps.sessions.keyOf(sessionId),
      clientKey: this.#deps.recorder.clientKey(caller.clientKey),
    };
    const startedAt = Date.now();
    const startedAtMonotonic = performance.now();
    const calls = parsed.messages
      .filter((m): m is RequestMessage => m.kind === 'request')
      .map((message) => ({ message, startedAt, startedAtMonotonic }));
    // The answers come down the stream; when this process holds it, they are measured there.
    const waiting = this.#waiting.get(scope.sessionKey);
    for (const call of calls) waiting?.set(call.message.id, call);
    let res;
    try {
      res = await this.#deps.client.send(upstream, {
        method: 'POST',
        url: claims.upstreamSessionId,
        headers: { ...upstreamHeaders(req, caller, upstream), 'content-type': 'application/json' },
        body: req.body as Buffer,
      });
    } catch (error) {
      const failure = failureOf(error);
      for (const call of calls) {
        waiting?.delete(call.message.id);
        this.#deps.recorder.failed(scope, call, String(failure.status), failure.status);
      }
      await this.#deps.recorder.logged();
      throw upstreamError(failure, routing.server, version, calls[0]?.message.id ?? null);
    }
    const text = await readBounded(res.body);
    if (res.status >= 300) {
      for (const call of calls) {
        waiting?.delete(call.message.id);
        this.#deps.recorder.failed(scope, call, String(res.status), res.status);
      }
      await this.#deps.recorder.logged();
    }
    reply.code(res.status >= 500 ? 502 : res.status);
    const type = res.headers['content-type'];
    if (type !== undefined) reply.header('content-type', type);
    return reply.send(text);
  }
}

function serialize(event: ServerSentEvent): string {
  let text = event.event === 'message' ? '' : `event: ${event.event}\n`;
  if (event.id !== undefined) text += `id: ${event.id}\n`;
  for (const line of event.data.split('\n')) text += `data: ${line}\n`;
  return `${text}\n`;
}
