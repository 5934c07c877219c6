import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '#api/app.ts';
import { assertConnect } from '#core/auth/principal.ts';
import { authenticate } from '#core/auth/tokens.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { accessModes, gatewayBaseUrl } from '#core/gateway/access.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
beforeAll(async () => {
  stores = await openTestStores();
});
afterAll(async () => {
  await stores?.close();
});

const BASE = 'http://127.0.0.1:8081';
const PIPELINE = ['development', 'staging', 'canary', 'production'];

describe('gateway base URL', () => {
  it('is PYLEE_GATEWAY_URL when set, else http://<host>:<gateway port>', () => {
    expect(gatewayBaseUrl({})).toBe(BASE);
    expect(gatewayBaseUrl({ host: '0.0.0.0', gatewayPort: 9000 })).toBe('http://0.0.0.0:9000');
    expect(gatewayBaseUrl({ host: '::1', gatewayPort: 9000 })).toBe('http://[::1]:9000');
    expect(gatewayBaseUrl({ gatewayUrl: 'https://mcp.example.com/', host: 'x', gatewayPort: 1 })).toBe(
      'https://mcp.example.com',
    );
  });
});

describe.each(DB_DRIVERS)('gateway access on $name', (driver) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let api: TestApi;
  const admin = bearer(BOOTSTRAP_TOKEN);
  const call = (options: InjectOptions) => api.app.inject(options);
  const get = (server: string, headers = admin) =>
    call({ method: 'GET', url: `/api/v1/servers/${server}/gateway`, headers });
  const put = (server: string, environment: string, body: unknown, headers = admin) =>
    call({
      method: 'PUT',
      url: `/api/v1/servers/${server}/environments/${environment}/gateway`,
      headers,
      payload: body as object,
    });
  const serverId = async (slug: string) =>
    ((await db.query<{ id: string }>('SELECT id FROM servers WHERE slug = $1', [slug]))[0] as { id: string })
      .id;
  const auditEvents = async () => {
    const res = await call({ method: 'GET', url: '/api/v1/audit?action=gateway.access.set', headers: admin });
    return res.json().events as { target: { name: string }; before: unknown; after: unknown }[];
  };

  beforeAll(async () => {
    ({ db, cleanup } = await driver.open());
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
    for (const slug of ['weather', 'search', 'files']) {
      await call({ method: 'POST', url: '/api/v1/servers', headers: admin, payload: { slug } });
    }
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  it('lists every environment in pipeline order with its endpoints, pylee by default', async () => {
    const res = await get('weather', bearer(await api.token(['read'])));

    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      environments: PIPELINE.map((environment) => ({
        environment,
        access: 'pylee',
        url: `${BASE}/default/weather/${environment}/mcp`,
        sseUrl: `${BASE}/default/weather/${environment}/sse`,
      })),
      pinnedUrlTemplate: `${BASE}/default/weather@{version}/mcp`,
    });
    expect(await accessModes(db, await serverId('weather'))).toEqual({});
  });

  it('sets an access mode (admin), shows it, and audits the change with before and after', async () => {
    const res = await put('weather', 'production', { access: 'public' });

    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ environment: 'production', access: 'public' });
    const listed = (await get('weather')).json().environments as { environment: string; access: string }[];
    expect(listed.map((e) => [e.environment, e.access])).toEqual([
      ['development', 'pylee'],
      ['staging', 'pylee'],
      ['canary', 'pylee'],
      ['production', 'public'],
    ]);
    expect(await accessModes(db, await serverId('weather'))).toEqual({ production: 'public' });
    // Only this server changed.
    expect(await accessModes(db, await serverId('search'))).toEqual({});
    const [event] = await auditEvents();
    expect(event).toMatchObject({
      target: { name: 'weather' },
      before: { environment: 'production', access: 'pylee' },
      after: { environment: 'production', access: 'public' },
    });

    const back = await put('weather', 'production', { access: 'passthrough' });
    expect(back.json()).toEqual({ environment: 'production', access: 'passthrough' });
    expect((await auditEvents())[0]).toMatchObject({
      before: { access: 'public' },
      after: { access: 'passthrough' },
    });
  });

  it('records nothing when the mode asked for is already in force', async () => {
    await put('files', 'staging', { access: 'passthrough' });
    const before = (await auditEvents()).length;

    for (const [environment, access] of [
      ['staging', 'passthrough'],
      ['development', 'pylee'],
    ] as const) {
      const res = await put('files', environment, { access });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ environment, access });
    }
    expect((await auditEvents()).length).toBe(before);
    expect(await accessModes(db, await serverId('files'))).toEqual({ staging: 'passthrough' });
  });

  it('refuses bad input with problem+json and changes nothing', async () => {
    const id = await serverId('search');
    const events = (await auditEvents()).length;
    const cases: { res: Awaited<ReturnType<typeof put>>; status: number; code: string }[] = [
      { res: await put('nope', 'production', { access: 'public' }), status: 404, code: 'server-not-found' },
      {
        res: await put('search', 'nowhere', { access: 'public' }),
        status: 404,
        code: 'environment-not-found',
      },
      { res: await put('search', 'production', { access: 'open' }), status: 400, code: 'invalid-request' },
      { res: await put('search', 'production', {}), status: 400, code: 'invalid-request' },
      {
        res: await put('search', 'production', { access: 'public', extra: 1 }),
        status: 400,
        code: 'invalid-request',
      },
      { res: await get('nope'), status: 404, code: 'server-not-found' },
    ];
    for (const { res, status, code } of cases) {
      expect(res.statusCode, res.body).toBe(status);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json()).toMatchObject({ status, code });
    }
    expect(cases[1]?.res.json().detail).toContain('environments: development, staging, canary, production');
    expect(await accessModes(db, id)).toEqual({});
    expect((await auditEvents()).length).toBe(events);
  });

  it('needs admin to change and read to see; a server-limited token sees other servers as absent', async () => {
    for (const permission of ['read', 'write', 'deploy', 'connect'] as const) {
      const res = await put(
        'search',
        'production',
        { access: 'public' },
        bearer(await api.token([permission])),
      );
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json()).toMatchObject({ code: 'missing-permission' });
    }
    const connectOnly = await get('search', bearer(await api.token(['connect'])));
    expect(connectOnly.statusCode).toBe(403);
    expect(connectOnly.json()).toMatchObject({ code: 'missing-permission' });

    const limited = bearer(await api.token(['admin'], { servers: ['weather'] }));
    expect((await get('weather', limited)).statusCode).toBe(200);
    for (const res of [
      await get('search', limited),
      await put('search', 'production', { access: 'public' }, limited),
    ]) {
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'server-not-found' });
    }
    expect(await accessModes(db, await serverId('search'))).toEqual({});
  });

  it('drops the settings of a removed environment, so one created later under its name starts at pylee', async () => {
    await call({ method: 'POST', url: '/api/v1/environments', headers: admin, payload: { name: 'qa' } });
    expect((await put('weather', 'qa', { access: 'public' })).statusCode).toBe(200);
    await call({ method: 'DELETE', url: '/api/v1/environments/qa', headers: admin });
    await call({ method: 'POST', url: '/api/v1/environments', headers: admin, payload: { name: 'qa' } });

    const qa = ((await get('weather')).json().environments as { environment: string; access: string }[]).find(
      (e) => e.environment === 'qa',
    );
    expect(qa).toMatchObject({ access: 'pylee', url: `${BASE}/default/weather/qa/mcp` });
    expect(await accessModes(db, await serverId('weather'))).not.toHaveProperty('qa');
    await call({ method: 'DELETE', url: '/api/v1/environments/qa', headers: admin });
  });

  it('creates connect tokens, which connect where they are limited to and read nothing', async () => {
    const res = await call({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: admin,
      payload: { name: 'claude', permissions: ['connect'], servers: ['weather'], environments: ['staging'] },
    });
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json() as { token: string; permissions: string[] };
    expect(created.permissions).toEqual(['connect']);

    const principal = await authenticate(db, created.token);
    expect(() => assertConnect(principal, 'weather', 'staging')).not.toThrow();
    expect(() => assertConnect(principal, 'weather', 'production')).toThrow(
      expect.objectContaining({ code: 'environment-not-permitted' }),
    );
    expect(() => assertConnect(principal, 'search', 'staging')).toThrow(
      expect.objectContaining({ code: 'server-not-found' }),
    );
    const servers = await call({ method: 'GET', url: '/api/v1/servers', headers: bearer(created.token) });
    expect(servers.statusCode).toBe(403);
    const me = await call({ method: 'GET', url: '/api/v1/me', headers: bearer(created.token) });
    expect(me.json()).toMatchObject({
      permissions: ['connect'],
      servers: ['weather'],
      environments: ['staging'],
    });
  });

  describe('with PYLEE_GATEWAY_URL', () => {
    let app: FastifyInstance;
    beforeAll(async () => {
      app = await buildApi({
        config: {
          apiBodyLimit: 1024 * 1024,
          rateLimit: { max: 100_000, windowMs: 60_000 },
          gatewayUrl: 'https://mcp.example.com',
          host: '0.0.0.0',
          gatewayPort: 9999,
        },
        stores: { ...stores, db },
        logger: silentLogger,
        version: '0.0.0-test',
        secretBox: testSecretBox,
      });
      await app.ready();
    });
    afterAll(async () => {
      await app?.close();
    });

    it('gives endpoints under the public base URL', async () => {
      const res = await app.inject({ method: 'GET', url: '/api/v1/servers/weather/gateway', headers: admin });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({
        pinnedUrlTemplate: 'https://mcp.example.com/default/weather@{version}/mcp',
      });
      expect(res.json().environments[3]).toMatchObject({
        environment: 'production',
        url: 'https://mcp.example.com/default/weather/production/mcp',
        sseUrl: 'https://mcp.example.com/default/weather/production/sse',
      });
    });
  });
});
