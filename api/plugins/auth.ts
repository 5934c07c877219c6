import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { assertPermission, type Context, type Permission, type Principal } from '#core/auth/principal.ts';
import { authenticate } from '#core/auth/tokens.ts';
import type { Db } from '#core/db/client.ts';
import { UnauthorizedError } from '#core/errors.ts';
import type { SessionStore } from '../session-store.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    requirePermission(permission: Permission): preHandlerAsyncHookHandler;
  }
  interface FastifyContextConfig {
    /**
     * `optional`: a request without a bearer token and without a live session goes on with
     * `principal` null instead of a 401 (a bearer token that is not valid is still refused).
     */
    auth?: 'optional';
  }
}

/** The bearer token of a request, or undefined. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

/** The principal and request metadata a core function records its change with. */
export function contextOf(req: FastifyRequest): Context {
  if (!req.principal) throw new Error('route has no authenticated principal');
  return { principal: req.principal, requestId: req.id, clientAddress: req.ip };
}

/**
 * Every route in the scope this is installed in needs a valid token (401 otherwise), unless its
 * config says `auth: 'optional'`; a route adds `preHandler: app.requirePermission(...)` for the
 * permission it needs (403 otherwise). Without a bearer token, the web UI's session cookie stands
 * for the token it was signed in with (unsafe methods then need the CSRF header, see
 * {@link SessionStore.tokenOf}).
 */
export function installAuth(app: FastifyInstance, db: Db, sessions?: SessionStore): void {
  app.decorateRequest('principal', null);
  app.decorate('requirePermission', (permission: Permission): preHandlerAsyncHookHandler => {
    return async (req) => {
      assertPermission(req.principal as Principal, permission);
    };
  });
  app.addHook('onRequest', async (req) => {
    const bearer = bearerToken(req);
    if (bearer !== undefined) {
      req.principal = await authenticate(db, bearer);
      return;
    }
    const token = await sessions?.tokenOf(req);
    if (req.routeOptions.config.auth !== 'optional') {
      req.principal = await authenticate(db, token);
      return;
    }
    // A session whose token was revoked or expired is over: signed out, not an error.
    req.principal =
      token === undefined
        ? null
        : await authenticate(db, token).catch((error: unknown) => {
            if (error instanceof UnauthorizedError) return null;
            throw error;
          });
  });
}
