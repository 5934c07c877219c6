import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { buildApi } from '#api/app.ts';
import { openRedis } from '#core/queue/redis.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
let api: TestApi;
const admin = bearer(BOOTSTRAP_TOKEN);

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores, { bodyLimit: 4096 });
});

afterAll(async () => {
  await api?.app.close();
  await stores?.close();
});

const inject = (options: InjectOptions) => api.app.inject(options);
const countEvents = async () =>
  (await stores.db.query<{ n: number }>('SELECT count(*) AS n FROM audit_events'))[0]?.n ?? 0;

describe('tokens', () => {
  it('shows a token limited to environments what it may deploy to on /me', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: admin,
      payload: { name: 'prod-deployer', permissions: ['deploy'], environments: ['production'] },
    });
    expect(res.statusCode).toBe(201);

    const me = await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(res.json().token) });
    expect(me.json()).toMatchObject({ permissions: ['deploy'], servers: null, environments: ['production'] });
  });

  it('creates a token shown once, usable at once, stored only as a hash, and audited', async () => {
    const before = await countEvents();
    const res = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: admin,
      payload: { name: 'ci', permissions: ['deploy', 'read'], servers: ['weather', 'search'] },
    });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created.token).toMatch(/^pyl_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({
      name: 'ci',
      permissions: ['read', 'deploy'],
      servers: ['search', 'weather'],
      active: true,
    });
    expect(created.prefix).toBe(created.token.slice(0, 12));

    const me = await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(created.token) });
    expect(me.json()).toMatchObject({
      org: { slug: 'default' },
      token: { name: 'ci' },
      servers: ['search', 'weather'],
      environments: null,
    });

    const get = await inject({ method: 'GET', url: `/api/v1/tokens/${created.id}`, headers: admin });
    expect(get.json()).not.toHaveProperty('token');
    const rows = await stores.db.query('SELECT * FROM tokens WHERE id = $1', [created.id]);
    expect(JSON.stringify(rows)).not.toContain(created.token);

    expect(await countEvents()).toBe(before + 1);
    const audit = await inject({
      method: 'GET',
      url: '/api/v1/audit?action=token.create&limit=1',
      headers: admin,
    });
    const [event] = audit.json().events;
    expect(event).toMatchObject({
      action: 'token.create',
      target: { type: 'token', id: created.id },
      actor: { name: 'bootstrap' },
    });
    expect(JSON.stringify(event)).not.toContain(created.token);
    expect(event.requestId).toBe(res.headers['x-request-id']);
    expect(event.clientAddress).toBe('127.0.0.1');
  });

  it('revokes a token: it stops working at once, stays listed with includeRevoked, and a second revoke changes nothing', async () => {
    const token = await api.token(['read'], { name: 'to-revoke' });
    const id = (await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(token) })).json().token.id;
    const revoked = await inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: admin });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ active: false });
    expect(revoked.json().revokedAt).not.toBeNull();

    const me = await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(token) });
    expect(me.statusCode).toBe(401);
    expect(me.json()).toMatchObject({ code: 'revoked-token' });

    const events = await countEvents();
    const again = await inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: admin });
    expect(again.json().revokedAt).toBe(revoked.json().revokedAt);
    expect(await countEvents()).toBe(events);

    const active = await inject({ method: 'GET', url: '/api/v1/tokens', headers: admin });
    expect(active.json().tokens.map((t: { id: string }) => t.id)).not.toContain(id);
    const all = await inject({ method: 'GET', url: '/api/v1/tokens?includeRevoked=true', headers: admin });
    expect(all.json().tokens.map((t: { id: string }) => t.id)).toContain(id);
  });

  it('refuses an expired token with 401 expired-token', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: admin,
      payload: {
        name: 'short-lived',
        permissions: ['read'],
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      },
    });
    const { token, id } = res.json();
    expect((await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(token) })).statusCode).toBe(200);
    await stores.db.query("UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [id]);
    const me = await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(token) });
    expect(me.statusCode).toBe(401);
    expect(me.json()).toMatchObject({ code: 'expired-token' });
  });

  it('rejects bad token requests with a clear error and creates nothing', async () => {
    const before = (await stores.db.query<{ n: number }>('SELECT count(*) AS n FROM tokens'))[0]?.n;
    const cases: [unknown, number, string][] = [
      [{ name: 'x', permissions: [] }, 400, 'invalid-request'],
      [{ name: 'x', permissions: ['superuser'] }, 400, 'invalid-request'],
      [{ name: '', permissions: ['read'] }, 400, 'invalid-request'],
      [{ name: 'x', permissions: ['read'], colour: 'blue' }, 400, 'invalid-request'],
      [{ name: 'x', permissions: ['read'], servers: ['Not A Slug'] }, 400, 'invalid-request'],
      [{ name: 'x', permissions: ['read'], expiresAt: '2001-01-01T00:00:00Z' }, 400, 'invalid-expiry'],
      [{ name: 'x', permissions: ['read'], expiresAt: 'tomorrow' }, 400, 'invalid-request'],
    ];
    for (const [payload, status, code] of cases) {
      const res = await inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: admin,
        payload: payload as object,
      });
      expect(res.statusCode, JSON.stringify(payload)).toBe(status);
      expect(res.json(), JSON.stringify(payload)).toMatchObject({ code });
      expect(res.json().detail.length).toBeGreaterThan(10);
    }
    const unknownProperty = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: admin,
      payload: { name: 'x', permissions: ['read'], colour: 'blue' },
    });
    expect(unknownProperty.json().errors[0]).toMatchObject({ property: 'colour' });
    expect((await stores.db.query<{ n: number }>('SELECT count(*) AS n FROM tokens'))[0]?.n).toBe(before);
  });

  it('answers 404 for a token id that does not exist and 400 for one that is not a UUID', async () => {
    const missing = await inject({
      method: 'GET',
      url: '/api/v1/tokens/01900000-0000-7000-8000-000000000000',
      headers: admin,
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'token-not-found' });
    const malformed = await inject({ method: 'DELETE', url: '/api/v1/tokens/abc', headers: admin });
    expect(malformed.statusCode).toBe(400);
  });
});

describe('HTTP conventions', () => {
  it('answers malformed JSON with 400 invalid-json', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: { ...admin, 'content-type': 'application/json' },
      payload: '{"name": "x", ',
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'invalid-json', status: 400 });
  });

  it('answers an oversized body with 413 and creates nothing', async () => {
    const before = await countEvents();
    const res = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: admin,
      payload: { name: 'x'.repeat(5000), permissions: ['read'] },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'body-too-large' });
    expect(res.json().detail).toContain('4096');
    expect(await countEvents()).toBe(before);
  });

  it('answers an unsupported content type with 415', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: { ...admin, 'content-type': 'application/xml' },
      payload: '<token/>',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: 'unsupported-media-type' });
  });

  it('answers unknown routes with 404 problem+json', async () => {
    const res = await inject({ method: 'GET', url: '/api/v1/nothing-here', headers: admin });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'route-not-found' });
  });

  it('gives every response a request id, keeping a well-formed one the client sent', async () => {
    const generated = await inject({ method: 'GET', url: '/healthz' });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const kept = await inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { ...admin, 'x-request-id': 'ci-run-42.step-3' },
    });
    expect(kept.headers['x-request-id']).toBe('ci-run-42.step-3');
    const replaced = await inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    expect(replaced.headers['x-request-id']).not.toBe('bad id with spaces');
  });

  it('serves the OpenAPI document and the docs page', async () => {
    const doc = await inject({ method: 'GET', url: '/api/v1/openapi.json' });
    expect(doc.statusCode).toBe(200);
    const json = doc.json();
    expect(json.openapi).toBe('3.1.0');
    expect(Object.keys(json.paths)).toEqual(
      expect.arrayContaining(['/api/v1/tokens', '/api/v1/me', '/api/v1/audit']),
    );
    expect(json.paths['/api/v1/tokens'].post.requestBody).toBeDefined();
    const docs = await inject({ method: 'GET', url: '/api/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.body).toContain('swagger');
  });

  it('reports ready with each store and its driver', async () => {
    const res = await inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ready',
      stores: {
        postgres: { ok: true, driver: 'pglite' },
        clickhouse: { ok: true, driver: 'chdb' },
        redis: { ok: true, driver: 'embedded' },
      },
    });
  });
});

describe('audit API', () => {
  it('filters by actor, action prefix and target, and pages with a cursor without gaps', async () => {
    const ci = await api.token(['admin'], { name: 'audit-actor' });
    for (let i = 0; i < 5; i++) {
      await inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: bearer(ci),
        payload: { name: `paged-${i}`, permissions: ['read'] },
      });
    }
    const byActor = await inject({ method: 'GET', url: '/api/v1/audit?actor=audit-actor', headers: admin });
    expect(byActor.json().events).toHaveLength(5);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { json(): { events: { seq: number }[]; nextCursor: string | null } } = await inject({
        method: 'GET',
        url: `/api/v1/audit?actor=audit-actor&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: admin,
      });
      const body = page.json();
      seen.push(...body.events.map((e) => e.seq));
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(byActor.json().events.map((e: { seq: number }) => e.seq));
    const byTarget = await inject({ method: 'GET', url: '/api/v1/audit?target=paged-3', headers: admin });
    expect(byTarget.json().events).toHaveLength(1);
    const byPrefix = await inject({
      method: 'GET',
      url: '/api/v1/audit?action=token.*&actor=audit-actor',
      headers: admin,
    });
    expect(byPrefix.json().events).toHaveLength(5);
  });

  it('rejects an invalid time filter and unknown query parameters', async () => {
    const badTime = await inject({ method: 'GET', url: '/api/v1/audit?since=yesterday', headers: admin });
    expect(badTime.statusCode).toBe(400);
    const unknown = await inject({ method: 'GET', url: '/api/v1/audit?colour=blue', headers: admin });
    expect(unknown.statusCode).toBe(400);
  });

  it('verifies the hash chain and names the first tampered event', async () => {
    const ok = await inject({ method: 'GET', url: '/api/v1/audit/verify', headers: admin });
    expect(ok.json()).toMatchObject({ ok: true, firstBad: null });
    expect(ok.json().checked).toBeGreaterThan(5);
  });
});

describe('access log', () => {
  it('records API requests in ClickHouse, readable by admins of the same org', async () => {
    const token = await api.token(['read'], { name: 'logged' });
    await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(token), remoteAddress: '127.0.0.9' });
    await inject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(token) });
    const id = (await inject({ method: 'GET', url: '/api/v1/me', headers: bearer(token) })).json().token.id;
    // The writer batches in the background; the API exposes no flush, so poll.
    let entries: { route: string; status: number; tokenId: string }[] = [];
    for (let i = 0; i < 50 && entries.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      entries = (
        await inject({ method: 'GET', url: `/api/v1/access-log?tokenId=${id}`, headers: admin })
      ).json().entries;
    }
    expect(entries.map((e) => [e.route, e.status])).toEqual(
      expect.arrayContaining([
        ['/api/v1/me', 200],
        ['/api/v1/tokens', 403],
      ]),
    );
    expect(entries.every((e) => e.tokenId === id)).toBe(true);
  });
});

describe('rate limiting', () => {
  it('answers 429 with Retry-After once a token exceeds its budget, counted in Redis per token', async () => {
    const limited = await buildApi({
      config: { apiBodyLimit: 1024 * 1024, rateLimit: { max: 3, windowMs: 60_000 } },
      stores,
      logger: silentLogger,
      version: 'test',
      secretBox: testSecretBox,
    });
    const a = await api.token(['read'], { name: 'limited-a' });
    const b = await api.token(['read'], { name: 'limited-b' });
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push(
        (await limited.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(a) })).statusCode,
      );
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await limited.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(a) });
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
    expect(refused.json()).toMatchObject({ code: 'rate-limited', status: 429 });
    expect((await limited.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(b) })).statusCode).toBe(
      200,
    );
    const keys = await stores.redis.client.keys('pylee:ratelimit:*');
    expect(keys.length).toBeGreaterThanOrEqual(2);
    expect((await limited.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    await limited.close();
  });
});

describe('readiness when a store is down', () => {
  let redisServer: ChildProcess;
  it('answers /readyz 503 naming redis when Redis stops answering', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    redisServer = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    const redis = await openRedis(
      { redisUrl: `redis://127.0.0.1:${port}`, dataDir: stores.dir },
      silentLogger,
    );
    for (let i = 0; i < 50; i++) {
      if (
        await redis.ping().then(
          () => true,
          () => false,
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const app = await buildApi({
      config: { apiBodyLimit: 1024, rateLimit: { max: 100, windowMs: 60_000 } },
      stores: { ...stores, redis },
      logger: silentLogger,
      version: 'test',
      secretBox: testSecretBox,
    });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    redisServer.kill('SIGKILL');
    await new Promise((r) => redisServer.once('exit', r));
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      code: 'store-unavailable',
      stores: { redis: { ok: false }, postgres: { ok: true } },
    });
    expect(res.json().detail).toContain('redis');
    await app.close();
    await redis.close();
  });
});
