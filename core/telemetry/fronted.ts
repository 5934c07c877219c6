import type { Redis } from 'ioredis';

/**
 * Which server × environment pairs the gateway fronts, so that no request is counted twice. A
 * server whose MCP traffic goes through the gateway is measured by the gateway (every exchange is a
 * `source = 'gateway'` row); if the server also exports OTLP, the collector keeps the SERVER spans
 * of its MCP calls with `counted = 0`. The gateway marks a pair on every exchange; the mark lives
 * in Redis for {@link GatewayFrontingOptions.ttlSeconds}, so a pair taken off the gateway is
 * counted from OTLP again once its traffic has stopped for that long.
 */

/** The Redis key of a pair: `pylee:gateway:fronted:<org>:<server>:<environment>`. */
export function frontedKey(orgId: string, server: string, environment: string): string {
  return `pylee:gateway:fronted:${orgId}:${server}:${environment}`;
}

export interface GatewayFrontingOptions {
  /** How long a pair stays fronted after the gateway's last mark. @defaultValue 600 */
  ttlSeconds?: number;
  /** How long {@link GatewayFronting.isFronted} trusts an answer from Redis. @defaultValue 10000 */
  cacheMs?: number;
  /**
   * Longest {@link GatewayFronting.isFronted} waits for Redis; past it the answer is false (counted)
   * and the reply, when it comes, fills the cache. An unreachable Redis can hold a command for
   * seconds, and the collector's export requests wait on this. @defaultValue 250
   */
  lookupTimeoutMs?: number;
}

/** A pair is marked at most this often per process: the TTL is minutes, the exchanges many a second. */
const MARK_INTERVAL_MS = 30_000;
/** Past this many remembered pairs, stale entries are swept (pair names in OTLP are the client's). */
const MAX_ENTRIES = 10_000;

interface Answer {
  fronted: boolean;
  until: number;
}

/** The gateway's side ({@link mark}) and the collector's ({@link isFronted}) of the fronting rule. */
export class GatewayFronting {
  readonly #redis: Redis;
  readonly #ttlSeconds: number;
  readonly #cacheMs: number;
  readonly #lookupTimeoutMs: number;
  /** Key → when this process last sent its mark. */
  readonly #marked = new Map<string, number>();
  readonly #answers = new Map<string, Answer>();
  /** Lookups in flight: concurrent misses of one key share one. */
  readonly #lookups = new Map<string, Promise<boolean>>();

  constructor(redis: Redis, options: GatewayFrontingOptions = {}) {
    this.#redis = redis;
    this.#ttlSeconds = positiveInteger('ttlSeconds', options.ttlSeconds ?? 600);
    this.#cacheMs = nonNegative('cacheMs', options.cacheMs ?? 10_000);
    this.#lookupTimeoutMs = nonNegative('lookupTimeoutMs', options.lookupTimeoutMs ?? 250);
  }

  /**
   * The gateway carried an exchange for this pair: marks it fronted for `ttlSeconds`. Sends at most
   * one `SET … EX` per pair per 30 s, does not wait for it, and never throws (a lost mark only means
   * OTLP rows are counted until the next one lands).
   */
  mark(orgId: string, server: string, environment: string): void {
    const key = frontedKey(orgId, server, environment);
    const now = Date.now();
    const last = this.#marked.get(key);
    if (last !== undefined && now - last < MARK_INTERVAL_MS) return;
    if (this.#marked.size >= MAX_ENTRIES) sweep(this.#marked, (at) => now - at >= MARK_INTERVAL_MS);
    this.#marked.set(key, now);
    try {
      this.#redis.set(key, '1', 'EX', this.#ttlSeconds).catch(() => {
        // Not marked after all: the next exchange tries again.
        if (this.#marked.get(key) === now) this.#marked.delete(key);
      });
    } catch {
      this.#marked.delete(key);
    }
  }

  /**
   * Whether the gateway fronts this pair. One Redis lookup per pair per `cacheMs` at most;
   * concurrent calls share it. Never rejects: when Redis fails or is slower than
   * `lookupTimeoutMs`, the answer is false, so the rows are counted (fail open).
   */
  isFronted(orgId: string, server: string, environment: string): Promise<boolean> {
    const key = frontedKey(orgId, server, environment);
    const answer = this.#answers.get(key);
    if (answer && answer.until > Date.now()) return Promise.resolve(answer.fronted);
    return this.#lookups.get(key) ?? this.#lookup(key);
  }

  #lookup(key: string): Promise<boolean> {
    let reply: Promise<boolean>;
    try {
      reply = this.#redis.exists(key).then(
        (n) => n > 0,
        () => false,
      );
    } catch {
      reply = Promise.resolve(false);
    }
    const settled = reply.then((fronted) => {
      this.#remember(key, fronted, Date.now());
      if (this.#lookups.get(key) === lookup) this.#lookups.delete(key);
      return fronted;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        // Answer now and for cacheMs; a late reply still replaces this.
        this.#remember(key, false, Date.now());
        if (this.#lookups.get(key) === lookup) this.#lookups.delete(key);
        resolve(false);
      }, this.#lookupTimeoutMs);
      timer.unref();
    });
    const lookup = Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
    this.#lookups.set(key, lookup);
    return lookup;
  }

  #remember(key: string, fronted: boolean, now: number): void {
    if (this.#answers.size >= MAX_ENTRIES && !this.#answers.has(key)) {
      sweep(this.#answers, (a) => a.until <= now);
    }
    this.#answers.set(key, { fronted, until: now + this.#cacheMs });
  }
}

/** Deletes the entries `stale` picks; everything if that frees nothing (a flood of distinct names). */
function sweep<V>(map: Map<string, V>, stale: (value: V) => boolean): void {
  for (const [key, value] of map) if (stale(value)) map.delete(key);
  if (map.size >= MAX_ENTRIES) map.clear();
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`${name} must be a whole number above 0, got ${value}`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be 0 or more, got ${value}`);
  return value;
}
