import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { SecretBox, Sealed } from '#core/crypto/secret-box.ts';
import { ForbiddenError } from '#core/errors.ts';

// Below both the auth plugin (which reads a request's session) and the session routes (which make
// and end sessions), so that each imports it and neither imports the other for it.

/** Name of the httpOnly cookie that holds the opaque session id. */
export const SESSION_COOKIE = 'pylee_session';
/** Header a cookie-authenticated unsafe request must carry, holding the session's CSRF token. */
export const CSRF_HEADER = 'x-pylee-csrf';
/** Sessions end this long after sign-in, whatever happens; the token's own expiry and revocation apply too. */
export const SESSION_TTL_SECONDS = 12 * 3600;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const keyOf = (sessionId: string) => `pylee:session:${createHash('sha256').update(sessionId).digest('hex')}`;

interface StoredSession {
  token: Sealed;
  csrf: string;
}

/**
 * Browser sessions for the web UI: an opaque random id in an httpOnly, SameSite=Strict cookie,
 * mapped in Redis (under the id's hash) to the API token sealed with the SecretBox. The token never
 * reaches the page's JavaScript, URLs or storage, and a Redis dump reveals neither ids nor tokens.
 * Each request re-authenticates the token, so revoking or expiring it ends its sessions at once.
 */
export class SessionStore {
  readonly #redis: Redis;
  readonly #box: SecretBox;

  constructor(redis: Redis, box: SecretBox) {
    this.#redis = redis;
    this.#box = box;
  }

  async create(token: string): Promise<{ id: string; csrf: string }> {
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const key = keyOf(id);
    const stored: StoredSession = { token: this.#box.seal(token, key), csrf };
    await this.#redis.set(key, JSON.stringify(stored), 'EX', SESSION_TTL_SECONDS);
    return { id, csrf };
  }

  async read(id: string): Promise<{ token: string; csrf: string } | undefined> {
    const key = keyOf(id);
    const raw = await this.#redis.get(key);
    if (!raw) return undefined;
    try {
      const stored = JSON.parse(raw) as StoredSession;
      return { token: this.#box.open(stored.token, key), csrf: stored.csrf };
    } catch {
      return undefined; // sealed under another key, or tampered with: as good as absent
    }
  }

  async delete(id: string): Promise<void> {
    await this.#redis.del(keyOf(id));
  }

  /**
   * The token a request's session cookie stands for, or undefined without a (live) session. An
   * unsafe method must also carry the session's CSRF token in `x-pylee-csrf`: SameSite=Strict already
   * keeps the cookie off cross-site requests, and the header (which another origin cannot read or
   * set without CORS) covers browsers and same-site subdomains where SameSite is not enough.
   */
  async tokenOf(req: FastifyRequest): Promise<string | undefined> {
    const id = req.cookies?.[SESSION_COOKIE];
    if (!id) return undefined;
    const session = await this.read(id);
    if (!session) return undefined;
    if (!SAFE_METHODS.has(req.method)) {
      const header = req.headers[CSRF_HEADER];
      if (typeof header !== 'string' || !sameSecret(header, session.csrf)) {
        throw new ForbiddenError(
          `a request signed in with a session cookie must send the session's CSRF token in ${CSRF_HEADER}; reload the page`,
          'csrf-token-mismatch',
        );
      }
    }
    return session.token;
  }
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
