import fs from 'node:fs';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installStatic, WEB_BUILD_DIR } from '#api/static.ts';
import { CSRF_HEADER, SESSION_COOKIE } from '#api/session-store.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
});

afterAll(async () => {
  await api?.app.close();
  await stores?.close();
});

async function signIn(token: string) {
  const res = await api.app.inject({ method: 'POST', url: '/api/v1/session', headers: bearer(token) });
  expect(res.statusCode, res.body).toBe(200);
  const cookie = res.cookies.find((c) => c.name === SESSION_COOKIE);
  if (!cookie) throw new Error('no session cookie');
  return { cookie, body: res.json() as { csrfToken: string; permissions: string[] }, raw: res };
}

const withCookie = (value: string, extra: Record<string, string> = {}) => ({
  cookie: `${SESSION_COOKIE}=${value}`,
  ...extra,
});

describe('web UI sessions', () => {
  it('turns a bearer token into an httpOnly, SameSite=Strict cookie that is not the token', async () => {
    const { cookie, body, raw } = await signIn(BOOTSTRAP_TOKEN);
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.sameSite).toBe('Strict');
    expect(cookie.path).toBe('/');
    expect(cookie.secure).toBeFalsy(); // plain http here; https requests get Secure
    expect(cookie.value).not.toContain(BOOTSTRAP_TOKEN);
    expect(raw.body).not.toContain(BOOTSTRAP_TOKEN);
    expect(body.csrfToken).toMatch(/^[\w-]{20,}$/);
    expect(body.permissions).toContain('admin');
  });

  it('keeps neither the token nor the session id in Redis in the clear', async () => {
    const { cookie } = await signIn(BOOTSTRAP_TOKEN);
    const keys = await stores.redis.client.keys('pylee:session:*');
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).not.toContain(cookie.value);
      expect(await stores.redis.client.get(key)).not.toContain(BOOTSTRAP_TOKEN);
    }
  });

  it('authenticates reads with the cookie and says who the session is', async () => {
    const { cookie, body } = await signIn(BOOTSTRAP_TOKEN);
    const who = await api.app.inject({
      method: 'GET',
      url: '/api/v1/session',
      headers: withCookie(cookie.value),
    });
    expect(who.statusCode).toBe(200);
    expect(who.json()).toMatchObject({
      authenticated: true,
      org: { slug: 'default' },
      csrfToken: body.csrfToken,
    });
    const servers = await api.app.inject({
      method: 'GET',
      url: '/api/v1/servers',
      headers: withCookie(cookie.value),
    });
    expect(servers.statusCode).toBe(200);
  });

  it('refuses a cookie-authenticated change without the CSRF header, and changes nothing', async () => {
    const { cookie, body } = await signIn(BOOTSTRAP_TOKEN);
    for (const headers of [withCookie(cookie.value), withCookie(cookie.value, { [CSRF_HEADER]: 'wrong' })]) {
      const res = await api.app.inject({
        method: 'POST',
        url: '/api/v1/servers',
        headers,
        payload: { slug: 'csrf-victim' },
      });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'csrf-token-mismatch' });
    }
    const absent = await api.app.inject({
      method: 'GET',
      url: '/api/v1/servers/csrf-victim',
      headers: bearer(BOOTSTRAP_TOKEN),
    });
    expect(absent.statusCode).toBe(404);

    const ok = await api.app.inject({
      method: 'POST',
      url: '/api/v1/servers',
      headers: withCookie(cookie.value, { [CSRF_HEADER]: body.csrfToken }),
      payload: { slug: 'csrf-ok' },
    });
    expect(ok.statusCode, ok.body).toBe(201);
  });

  it('keeps the token permissions: a read-only session cannot deploy or write', async () => {
    const { cookie, body } = await signIn(await api.token(['read']));
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/servers',
      headers: withCookie(cookie.value, { [CSRF_HEADER]: body.csrfToken }),
      payload: { slug: 'read-only-attempt' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'missing-permission' });
  });

  it('ends the session when its token is revoked', async () => {
    const token = await api.token(['read'], { name: 'to-revoke' });
    const { cookie } = await signIn(token);
    const me = await api.app.inject({ method: 'GET', url: '/api/v1/session', headers: bearer(token) });
    const id = (me.json() as { token: { id: string } }).token.id;
    const revoked = await api.app.inject({
      method: 'DELETE',
      url: `/api/v1/tokens/${id}`,
      headers: bearer(BOOTSTRAP_TOKEN),
    });
    expect(revoked.statusCode).toBe(200);
    const res = await api.app.inject({
      method: 'GET',
      url: '/api/v1/servers',
      headers: withCookie(cookie.value),
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'revoked-token' });
    // The UI's probe: the session is over, which is an answer, not an error.
    const probe = await api.app.inject({
      method: 'GET',
      url: '/api/v1/session',
      headers: withCookie(cookie.value),
    });
    expect(probe.statusCode).toBe(200);
    expect(probe.json()).toEqual({ authenticated: false });
  });

  it('signs out: DELETE clears the cookie and the session no longer works', async () => {
    const { cookie, body } = await signIn(BOOTSTRAP_TOKEN);
    const out = await api.app.inject({
      method: 'DELETE',
      url: '/api/v1/session',
      headers: withCookie(cookie.value, { [CSRF_HEADER]: body.csrfToken }),
    });
    expect(out.statusCode).toBe(204);
    const cleared = out.cookies.find((c) => c.name === SESSION_COOKIE);
    expect(cleared?.value).toBe('');
    const probe = await api.app.inject({
      method: 'GET',
      url: '/api/v1/session',
      headers: withCookie(cookie.value),
    });
    expect(probe.statusCode).toBe(200);
    expect(probe.json()).toEqual({ authenticated: false });
    const res = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: withCookie(cookie.value) });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'missing-token' });
  });

  it('answers the signed-out probe GET /session with 200 { authenticated: false }, not 401', async () => {
    for (const headers of [{}, withCookie('forged')]) {
      const res = await api.app.inject({ method: 'GET', url: '/api/v1/session', headers });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toContain('application/json');
      expect(res.json()).toEqual({ authenticated: false });
      expect(res.cookies).toHaveLength(0);
    }
    // Routes that need a session still answer 401, and so does the probe given a bad token.
    for (const url of ['/api/v1/me', '/api/v1/servers']) {
      const res = await api.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toMatchObject({ code: 'missing-token' });
    }
    const bad = await api.app.inject({ method: 'GET', url: '/api/v1/session', headers: bearer('pyl_nope') });
    expect(bad.statusCode).toBe(401);
    expect(bad.json()).toMatchObject({ code: 'invalid-token' });
    // Signing out without a session stays a 401: only the probe answers for nobody.
    const out = await api.app.inject({ method: 'DELETE', url: '/api/v1/session' });
    expect(out.statusCode).toBe(401);
  });

  it('documents both answers of GET /session in the OpenAPI document', async () => {
    type Schema = { anyOf?: Schema[]; properties?: Record<string, Schema>; enum?: unknown[] };
    const doc = (await api.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content: Record<string, { schema: Schema }> }> }>
      >;
    };
    const schema = doc.paths['/api/v1/session']?.get?.responses['200']?.content['application/json']?.schema;
    const answers = (schema?.anyOf ?? []).map((s) => s.properties?.authenticated?.enum);
    expect(answers).toEqual([[true], [false]]);
  });

  it('refuses to make a session from a session (a token is needed) and from a bad token', async () => {
    const { cookie, body } = await signIn(BOOTSTRAP_TOKEN);
    const again = await api.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      headers: withCookie(cookie.value, { [CSRF_HEADER]: body.csrfToken }),
    });
    expect(again.statusCode).toBe(403);
    expect(again.json()).toMatchObject({ code: 'token-required' });
    const bad = await api.app.inject({ method: 'POST', url: '/api/v1/session', headers: bearer('pyl_nope') });
    expect(bad.statusCode).toBe(401);
    expect(bad.cookies).toHaveLength(0);
  });

  it('ignores a forged or unknown session cookie', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: withCookie('forged') });
    expect(res.statusCode).toBe(401);
  });
});

describe('the UI at /', () => {
  const built = fs.existsSync(path.join(WEB_BUILD_DIR, 'index.html'));

  it.runIf(built)('serves index.html with a CSP, and for every app path (SPA fallback)', async () => {
    for (const url of ['/', '/servers/weather/compare?candidate=1.1.0', '/alerts']) {
      const res = await api.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.body).toContain('content-security-policy');
      expect(res.body).toContain("script-src 'self' 'sha256-");
    }
  });

  it.runIf(built)('caches hashed assets for a year', async () => {
    const dir = path.join(WEB_BUILD_DIR, '_app', 'immutable', 'entry');
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.js'));
    const res = await api.app.inject({ method: 'GET', url: `/_app/immutable/entry/${file}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('javascript');
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it.runIf(built)('never falls back for /api paths, and never serves files outside the build', async () => {
    const api404 = await api.app.inject({ method: 'GET', url: '/api/v1/no-such-route' });
    expect(api404.statusCode).toBe(404);
    expect(api404.headers['content-type']).toContain('application/problem+json');
    for (const url of [
      '/..%2f..%2fpackage.json',
      '/%2e%2e/%2e%2e/package.json',
      '/_app/../../package.json',
    ]) {
      const res = await api.app.inject({ method: 'GET', url });
      expect(res.body, url).not.toContain('"name": "pylee"');
    }
  });

  it('answers a one-line hint at / when the UI is not built', async () => {
    const app = Fastify();
    await installStatic(app, path.join(stores.dir, 'no-build-here'));
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/web UI is not built.*npm/);
    await app.close();
  });
});
