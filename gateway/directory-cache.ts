import type { SecretBox } from '#core/crypto/secret-box.ts';
import type { Queryable } from '#core/db/client.ts';
import {
  loadServerRouting,
  resolveUpstream,
  type NoUpstream,
  type ServerRouting,
  type Upstream,
} from '#core/gateway/directory.ts';

interface Entry<T> {
  value: Promise<T>;
  loadedAt: number;
  orgId?: string | undefined;
  server: string;
}

/**
 * The gateway's read-through cache of the control plane: servers' routing and versions' upstreams.
 * An entry lives `ttlMs` (the safety net) unless a routing change for its server drops it sooner
 * (the Redis signal, in force within a second). Misses for the same key share one load.
 */
export class DirectoryCache {
  readonly #db: Queryable;
  readonly #box: SecretBox;
  readonly #ttlMs: number;
  readonly #servers = new Map<string, Entry<ServerRouting | undefined>>();
  readonly #upstreams = new Map<string, Entry<Upstream | NoUpstream>>();
  readonly #listeners = new Set<(orgId: string, server: string) => void>();

  constructor(db: Queryable, box: SecretBox, options: { ttlMs?: number } = {}) {
    this.#db = db;
    this.#box = box;
    this.#ttlMs = options.ttlMs ?? 10_000;
  }

  server(orgSlug: string, serverSlug: string): Promise<ServerRouting | undefined> {
    return this.#get(this.#servers, `${orgSlug}/${serverSlug}`, serverSlug, async () =>
      loadServerRouting(this.#db, orgSlug, serverSlug),
    );
  }

  upstream(
    routing: ServerRouting,
    version: string,
    environment: string | null,
    transport?: 'streamable-http' | 'sse',
  ): Promise<Upstream | NoUpstream> {
    const known = routing.versions.get(version);
    if (!known) return Promise.resolve({ problem: `version ${version} of ${routing.server} was not found` });
    const key = `${routing.orgId}/${routing.server}@${version}/${environment ?? ''}/${transport ?? ''}`;
    return this.#get(
      this.#upstreams,
      key,
      routing.server,
      async () =>
        resolveUpstream(this.#db, this.#box, routing, { id: known.id, version }, environment, transport),
      routing.orgId,
    );
  }

  /** Calls `listener` after every {@link invalidate}, e.g. for streams that must end on a rollback. */
  onInvalidate(listener: (orgId: string, server: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Forgets everything about `server` of `orgId`: the next request reads it again. */
  invalidate(orgId: string, server: string): void {
    for (const [key, entry] of this.#servers) if (entry.server === server) this.#servers.delete(key);
    for (const [key, entry] of this.#upstreams)
      if (entry.server === server && entry.orgId === orgId) this.#upstreams.delete(key);
    for (const listener of this.#listeners) listener(orgId, server);
  }

  #get<T>(
    map: Map<string, Entry<T>>,
    key: string,
    server: string,
    load: () => Promise<T>,
    orgId?: string,
  ): Promise<T> {
    const now = Date.now();
    const hit = map.get(key);
    if (hit && now - hit.loadedAt < this.#ttlMs) return hit.value;
    const value = load();
    const entry: Entry<T> = { value, loadedAt: now, orgId, server };
    map.set(key, entry);
    // A failed load is not remembered: the next request tries again.
    value.catch(() => {
      if (map.get(key) === entry) map.delete(key);
    });
    return value;
  }
}
