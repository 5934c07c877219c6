import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ForbiddenError } from '#core/errors.ts';
import { bearerToken, contextOf } from '../plugins/auth.ts';
import { Nullable, Permission, problems } from '../schemas.ts';
import { CSRF_HEADER, SESSION_COOKIE, SESSION_TTL_SECONDS, type SessionStore } from '../session-store.ts';

const Session = Type.Object({
  authenticated: Type.Literal(true),
  org: Type.Object({ id: Type.String(), slug: Type.String() }),
  token: Type.Object({ id: Nullable(Type.String()), name: Type.String() }),
  permissions: Type.Array(Permission),
  servers: Nullable(Type.Array(Type.String())),
  csrfToken: Nullable(
    Type.String({ description: `Send it as ${CSRF_HEADER} on unsafe requests signed in by the cookie` }),
  ),
});

const SignedOut = Type.Object(
  { authenticated: Type.Literal(false) },
  { description: 'No bearer token and no live session: nobody is signed in' },
);

function cookieOptions(req: FastifyRequest, maxAge: number) {
  return {
    path: '/',
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: req.protocol === 'https',
    maxAge,
  };
}

/**
 * Sign-in for the web UI: POST with `Authorization: Bearer <token>` (authenticated like any
 * request) sets the session cookie; GET says who the session is, or `{ authenticated: false }`
 * without one (the UI's probe, answered 200 so a signed-out page load logs no failed request);
 * DELETE ends it.
 */
export function sessionRoutes(sessions: SessionStore): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['auth'];
    const view = async (req: FastifyRequest, csrfToken: string | null) => {
      const { principal } = contextOf(req);
      return {
        authenticated: true as const,
        org: { id: principal.orgId, slug: principal.orgSlug },
        token: { id: principal.tokenId, name: principal.tokenName },
        permissions: principal.permissions,
        servers: principal.servers,
        csrfToken,
      };
    };
    const currentCsrf = async (req: FastifyRequest) => {
      const id = req.cookies?.[SESSION_COOKIE];
      return (id && !bearerToken(req) && (await sessions.read(id))?.csrf) || null;
    };

    app.post(
      '/session',
      {
        schema: {
          tags,
          summary: 'Signs the web UI in: the bearer token becomes an httpOnly session cookie',
          response: { 200: Session, ...problems },
        },
      },
      async (req, reply: FastifyReply) => {
        const token = bearerToken(req);
        if (!token) {
          throw new ForbiddenError(
            'sign in by sending the API token as `Authorization: Bearer <token>`, not a session cookie',
            'token-required',
          );
        }
        const old = req.cookies?.[SESSION_COOKIE];
        if (old) await sessions.delete(old);
        const { id, csrf } = await sessions.create(token);
        reply.setCookie(SESSION_COOKIE, id, cookieOptions(req, SESSION_TTL_SECONDS));
        return view(req, csrf);
      },
    );

    app.get(
      '/session',
      {
        schema: {
          tags,
          summary:
            'Who this session (or token) is, and the CSRF token for unsafe requests; `{ authenticated: false }` when signed out',
          response: { 200: Type.Union([Session, SignedOut]), ...problems },
        },
        config: { auth: 'optional' },
      },
      async (req) => (req.principal ? view(req, await currentCsrf(req)) : { authenticated: false as const }),
    );

    app.delete(
      '/session',
      {
        schema: {
          tags,
          summary: 'Signs the web UI out: ends the session and clears its cookie',
          response: { 204: Type.Null(), ...problems },
        },
      },
      async (req, reply) => {
        const id = req.cookies?.[SESSION_COOKIE];
        if (id) await sessions.delete(id);
        reply.clearCookie(SESSION_COOKIE, cookieOptions(req, 0));
        return reply.code(204).send(null);
      },
    );
  };
}
