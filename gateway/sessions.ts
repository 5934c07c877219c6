import type { Redis } from 'ioredis';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import type { EnvironmentRouting, ServerRouting, Upstream } from '#core/gateway/directory.ts';
import { chooseVersion } from '#core/gateway/routing.ts';
import { openSession, sealSession, type InitParams, type SessionClaims } from '#core/gateway/session-id.ts';
import { EventStreamReader } from '#core/gateway/sse.ts';
import { recordGatewaySession } from '#core/telemetry/metrics.ts';
import type { DirectoryCache } from './directory-cache.ts';
import type { Recorder } from './recorder.ts';
import { UpstreamFailure, type UpstreamClient } from './upstream-client.ts';

/** Gateway session ids older than this are refused (the client re-initializes). */
export const SESSION_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const MOVED_PREFIX = 'pylee:gateway:moved:';
const OPENED_CACHE_MAX = 50_000;

/** Where a live session's requests go now. */
export interface SessionRoute {
  claims: SessionClaims;
  /** The version it runs on now: its own, or the one a rollback migrated it to. */
  version: string;
  upstreamSessionId: string | undefined;
  /** {@link Recorder.sessionKey} of the session. */
  key: string;
  /** Set on the request that migrated the session: the version it left. */
  migratedFrom?: string;
}

export type SessionRefused = { refused: 'unknown' | 'terminated' };

/** A session moved to another version, as kept in Redis under its key (any replica finds it). */
interface Moved {
  version: string;
  upstreamSessionId?: string | undefined;
}

/**
 * Issues and follows gateway sessions. The id carries the routing (sealed, see session-id.ts); the
 * only shared state is the record of sessions a rollback migrated, read only when a session's own
 * version has lost its traffic.
 */
export class Sessions {
  readonly #box: SecretBox;
  readonly #redis: Redis;
  readonly #directory: DirectoryCache;
  readonly #client: UpstreamClient;
  readonly #recorder: Recorder;
  readonly #cache = new Map<string, { claims: SessionClaims; key: string }>();

  constructor(deps: {
    box: SecretBox;
    redis: Redis;
    directory: DirectoryCache;
    client: UpstreamClient;
    recorder: Recorder;
  }) {
    this.#box = deps.box;
    this.#redis = deps.redis;
    this.#directory = deps.directory;
    this.#client = deps.client;
    this.#recorder = deps.recorder;
  }

  issue(claims: Omit<SessionClaims, 'issuedAt'>): string {
    return sealSession(this.#box, { ...claims, issuedAt: Date.now() });
  }

  /**
   * The claims of session `id` when it is authentic, current, and was issued for this org, server
   * and environment ('' for a pinned version); undefined otherwise, whatever the reason (404 alike).
   */
  open(id: string, routing: ServerRouting, environment: string): SessionClaims | undefined {
    const claims = this.#opened(id)?.claims;
    if (!claims || Date.now() - claims.issuedAt > SESSION_MAX_AGE_MS) return undefined;
    if (claims.org !== routing.orgId) return undefined;
    if (claims.server !== routing.server || claims.environment !== environment) return undefined;
    return claims;
  }

  /** {@link Recorder.sessionKey} of an id {@link open} accepted. */
  keyOf(id: string): string {
    return this.#opened(id)?.key ?? this.#recorder.sessionKey(id);
  }

  /**
   * Opening an id costs an AES-GCM decryption and its key an HMAC, on every request of a session:
   * authentic ids are remembered (claims are immutable; expiry and route are checked on each use).
   */
  #opened(id: string): { claims: SessionClaims; key: string } | undefined {
    const hit = this.#cache.get(id);
    if (hit) return hit;
    const opened = openSession(this.#box, id, { now: Date.now(), maxAgeMs: SESSION_MAX_AGE_MS });
    if (!opened.ok) return undefined;
    if (this.#cache.size >= OPENED_CACHE_MAX) this.#cache.clear();
    const entry = { claims: opened.claims, key: this.#recorder.sessionKey(id) };
    this.#cache.set(id, entry);
    return entry;
  }

  /**
   * Where the session `id` goes, on the route it came in on (`environment` null for a pinned
   * version). Forged, altered, expired or another route's ids are `unknown` (404, as the spec says
   * for sessions a server does not know). A session whose version lost its traffic follows that
   * loss's policy: `drain` stays, `terminate` is refused, `migrate` moves to a version that runs.
   */
  async route(
    id: string,
    routing: ServerRouting,
    env: EnvironmentRouting | null,
    pinned: string | undefined,
    clientKey: string,
  ): Promise<SessionRoute | SessionRefused> {
    const claims = this.open(id, routing, env?.name ?? '');
    if (!claims) return { refused: 'unknown' };
    if (pinned !== undefined && claims.version !== pinned) return { refused: 'unknown' };
    const key = this.keyOf(id);
    const route: SessionRoute = {
      claims,
      version: claims.version,
      upstreamSessionId: claims.upstreamSessionId,
      key,
    };
    if (!env || isLive(env, route.version)) return route;

    const moved = await this.#moved(key);
    if (moved) {
      route.version = moved.version;
      route.upstreamSessionId = moved.upstreamSessionId;
      if (isLive(env, route.version)) return route;
    }
    const policy = env.lost[route.version] ?? 'drain';
    const scope = {
      orgId: routing.orgId,
      server: routing.server,
      environment: env.name,
      version: route.version,
      sessionKey: key,
      clientKey,
    };
    if (policy === 'drain') return route;
    if (policy === 'terminate') {
      this.#recorder.session(scope, 'end', 'rollback');
      recordGatewaySession('terminated', route.version);
      return { refused: 'terminated' };
    }
    const next = chooseVersion(env.weights, `session:${key}`);
    // Nothing runs here any more: the session stays where it is, as when draining.
    if (next === undefined || !claims.init) return route;
    const upstream = await this.#directory.upstream(routing, next, env.name);
    if ('problem' in upstream) throw new UpstreamFailure(502, upstream.problem);
    const fresh = await this.#initialize(upstream, claims.init);
    const record: Moved = { version: next, upstreamSessionId: fresh };
    const won = await this.#redis.set(
      MOVED_PREFIX + key,
      JSON.stringify(record),
      'PX',
      SESSION_MAX_AGE_MS,
      'NX',
    );
    if (won !== 'OK') {
      // Another replica migrated it first: use its upstream session, end ours.
      const theirs = await this.#moved(key);
      if (fresh) void this.#end(upstream, fresh);
      if (theirs)
        return {
          ...route,
          version: theirs.version,
          upstreamSessionId: theirs.upstreamSessionId,
          migratedFrom: route.version,
        };
    }
    this.#recorder.session({ ...scope, version: next }, 'migrate', route.version);
    recordGatewaySession('migrated', next);
    return { ...route, version: next, upstreamSessionId: fresh, migratedFrom: route.version };
  }

  async #moved(key: string): Promise<Moved | undefined> {
    const raw = await this.#redis.get(MOVED_PREFIX + key);
    if (raw === null) return undefined;
    try {
      const value = JSON.parse(raw) as Moved;
      return typeof value.version === 'string' ? value : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Opens a session on `upstream` with the client's original `initialize` params, as the client
   * did when it connected, and returns the upstream's session id (undefined for a stateless server).
   */
  async #initialize(upstream: Upstream, init: InitParams): Promise<string | undefined> {
    const headers = {
      ...upstream.headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    const res = await this.#client.send(upstream, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 'pylee-migrate', method: 'initialize', params: init }),
    });
    const text = await res.body.text();
    if (res.status !== 200 || !answersInitialize(text, String(res.headers['content-type'] ?? ''))) {
      throw new UpstreamFailure(502, `it did not accept the migrated session (HTTP ${res.status})`);
    }
    const session = header(res.headers['mcp-session-id']);
    const sessionHeaders: Record<string, string> = {
      ...headers,
      'mcp-protocol-version': init.protocolVersion,
    };
    if (session) sessionHeaders['mcp-session-id'] = session;
    const done = await this.#client.send(upstream, {
      method: 'POST',
      headers: sessionHeaders,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    await done.body.dump();
    return session;
  }

  async #end(upstream: Upstream, session: string): Promise<void> {
    try {
      const res = await this.#client.send(upstream, {
        method: 'DELETE',
        headers: { ...upstream.headers, 'mcp-session-id': session },
      });
      await res.body.dump();
    } catch {
      // The upstream expires it on its own.
    }
  }
}

export function isLive(env: EnvironmentRouting, version: string): boolean {
  return env.weights.some((w) => w.version === version && w.weight > 0);
}

export function header(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === '' ? undefined : first;
}

/** Whether an upstream's answer (JSON, or an SSE stream) holds a successful initialize result. */
function answersInitialize(text: string, contentType: string): boolean {
  const bodies = contentType.includes('text/event-stream')
    ? new EventStreamReader().push(`${text}\n\n`).map((e) => e.data)
    : [text];
  return bodies.some((body) => {
    try {
      const message = JSON.parse(body) as { id?: unknown; result?: unknown };
      return message.id === 'pylee-migrate' && typeof message.result === 'object' && message.result !== null;
    } catch {
      return false;
    }
  });
}
