import type net from 'node:net';
import { Agent, request, errors as undiciErrors, type Dispatcher } from 'undici';
import type { Upstream } from '#core/gateway/directory.ts';
import { guardedLookup, hostOf, hostRefusal, TargetRefused, type SsrfPolicy } from '#core/net/ssrf.ts';

/** How long the gateway waits for an upstream, in milliseconds. */
export interface UpstreamTimeouts {
  /** Until the TCP (and TLS) connection is up. @defaultValue 5000 */
  connectMs?: number;
  /** Until the response's headers arrive: a JSON answer to a slow tool call comes only when it is done. @defaultValue 120000 */
  firstByteMs?: number;
  /** Longest silence inside a response body (an SSE stream's keep-alives reset it). @defaultValue 300000 */
  idleMs?: number;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** A Readable with `text()` and `dump()`. */
  body: Dispatcher.ResponseData['body'];
}

/** An upstream did not answer; `status` is what the client gets (502, 503 or 504). */
export class UpstreamFailure extends Error {
  readonly status: 502 | 503 | 504;
  /** A phrase completing "version 1.2.0 of weather …". */
  readonly reason: string;
  constructor(status: 502 | 503 | 504, reason: string) {
    super(reason);
    this.name = 'UpstreamFailure';
    this.status = status;
    this.reason = reason;
  }
}

/**
 * Pylee's HTTP client for MCP servers' remotes: undici over keep-alive connections, every
 * connection through the SSRF guard. Remotes are usually inside the operator's network, so private
 * and loopback addresses are allowed; link-local addresses (where cloud metadata services live) and
 * metadata hosts never are, also after a DNS change.
 */
export class UpstreamClient {
  readonly #agent: Agent;
  readonly #policy: SsrfPolicy = { allowPrivate: true };
  readonly #firstByteMs: number;
  readonly #idleMs: number;

  constructor(timeouts: UpstreamTimeouts = {}) {
    this.#firstByteMs = timeouts.firstByteMs ?? 120_000;
    this.#idleMs = timeouts.idleMs ?? 300_000;
    this.#agent = new Agent({
      connect: {
        timeout: timeouts.connectMs ?? 5_000,
        lookup: guardedLookup(this.#policy) as unknown as net.LookupFunction,
      },
      keepAliveTimeout: 30_000,
      connections: 256,
    });
  }

  /** Sends one request; rejects with {@link UpstreamFailure} when the upstream cannot be reached. */
  async send(
    upstream: Upstream,
    init: {
      method: 'GET' | 'POST' | 'DELETE';
      url?: string;
      headers: Record<string, string>;
      body?: Buffer | string | undefined;
      signal?: AbortSignal | undefined;
      /** For streams that stay open (GET): no idle limit; the client's own disconnect ends them. */
      stream?: boolean;
    },
  ): Promise<UpstreamResponse> {
    const url = new URL(init.url ?? upstream.url);
    const refusal = hostRefusal(hostOf(url), this.#policy);
    if (refusal) throw new UpstreamFailure(502, `its remote is refused: ${refusal}`);
    try {
      const res = await request(url, {
        dispatcher: this.#agent,
        method: init.method,
        headers: init.headers,
        body: init.body,
        signal: init.signal,
        headersTimeout: this.#firstByteMs,
        bodyTimeout: init.stream ? 0 : this.#idleMs,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (error) {
      throw failureOf(error);
    }
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

/** Names what went wrong in words a client's owner can act on. */
export function failureOf(error: unknown): UpstreamFailure {
  if (error instanceof UpstreamFailure) return error;
  if (error instanceof TargetRefused)
    return new UpstreamFailure(502, `its remote is refused: ${error.message}`);
  if (error instanceof undiciErrors.ConnectTimeoutError)
    return new UpstreamFailure(504, 'it did not accept a connection in time');
  if (error instanceof undiciErrors.HeadersTimeoutError)
    return new UpstreamFailure(504, 'it did not start answering in time');
  if (error instanceof undiciErrors.BodyTimeoutError)
    return new UpstreamFailure(504, 'it stopped sending in the middle of its answer');
  const code = (error as { code?: unknown }).code;
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const why = typeof code === 'string' ? code : typeof cause?.code === 'string' ? cause.code : undefined;
  if (why === 'ECONNREFUSED') return new UpstreamFailure(502, 'it refused the connection (ECONNREFUSED)');
  if (why === 'ENOTFOUND' || why === 'EAI_AGAIN')
    return new UpstreamFailure(502, `its host name does not resolve (${why})`);
  if (why === 'ECONNRESET' || why === 'UND_ERR_SOCKET')
    return new UpstreamFailure(502, 'it closed the connection before answering');
  if (cause instanceof TargetRefused)
    return new UpstreamFailure(502, `its remote is refused: ${cause.message}`);
  const message = error instanceof Error ? error.message : String(error);
  return new UpstreamFailure(502, `it could not be reached (${why ?? message})`);
}
