import fs from 'node:fs';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '#api/app.ts';
import { assertConnect } from '#core/auth/principal.ts';
import { authenticate } from '#core/auth/tokens.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { accessModes, gatewayBaseUrl, gatewayEndpoints } from '#core/gateway/access.ts';
import { LIVE_WINDOW_SECONDS } from '#core/gateway/live-split.ts';
import { systemPrincipal } from '#core/orgs.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import type { RequestRow } from '#core/warehouse/rows.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

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
const NO_TRAFFIC = { windowSeconds: LIVE_WINDOW_SECONDS, sessions: [], requests: [] };

/** Request rows as the gateway's recorder writes them, through the real telemetry writer. */
async function writeRows(rows: Partial<RequestRow>[]): Promise<void> {
  const dataDir = tempDir('pylee-gateway-rows');
  const writer = new TelemetryWriter(stores.warehouse, { dataDir, wal: false });
  try {
    await writer.writeRequests(
      rows.map((row) => ({
        org_id: '',
        server: '',
        environment: 'production',
        version: '1.0.0',
        operation: 'tools/call forecast',
        time: new Date(Date.now() - 30_000).toISOString(),
        duration_ms: 12,
        error: 0,
        error_type: '',
        http_status: 200,
        mcp_method: 'tools/call',
        tool: 'forecast',
        trace_id: '',
        span_id: '',
        session_id: '',
        source: 'gateway',
        client_key: '',
        counted: 1,
        ...row,
      })),
    );
    await writer.flush();
  } finally {
    await writer.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

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
        snippets: {
          vscode: {
            servers: {
              weather: {
                type: 'http',
                url: `${BASE}/default/weather/${environment}/mcp`,
                headers: { Authorization: 'Bearer ${input:pylee-token}' },
              },
            },
            inputs: [
              {
                type: 'promptString',
                id: 'pylee-token',
                description: 'Pylee token with the connect permission',
                password: true,
              },
            ],
          },
          claudeDesktop: {
            mcpServers: {
              weather: {
                command: 'npx',
                args: [
                  '-y',
                  'mcp-remote',
                  `${BASE}/default/weather/${environment}/mcp`,
                  '--allow-http',
                  '--header',
                  'Authorization: Bearer ${PYLEE_TOKEN}',
                ],
                env: { PYLEE_TOKEN: '<a Pylee token with the connect permission>' },
              },
            },
          },
        },
        live: NO_TRAFFIC,
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

  it('leaves the Authorization out of the snippets when the access mode needs no Pylee token', async () => {
    await put('files', 'canary', { access: 'public' });
    const canary = (
      (await get('files')).json().environments as { environment: string; snippets: unknown }[]
    ).find((e) => e.environment === 'canary');
    const url = `${BASE}/default/files/canary/mcp`;
    expect(canary?.snippets).toEqual({
      vscode: { servers: { files: { type: 'http', url } } },
      claudeDesktop: {
        mcpServers: { files: { command: 'npx', args: ['-y', 'mcp-remote', url, '--allow-http'] } },
      },
    });
  });

  it('splits the last five minutes of gateway sessions and requests per version, per environment', async () => {
    // Its own server: the warehouse is shared by both database drivers, whose org ids may match.
    const slug = `live-${driver.name}`;
    await call({ method: 'POST', url: '/api/v1/servers', headers: admin, payload: { slug } });
    const here = { org_id: api.org.id, server: slug };
    const ago = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString();
    await writeRows([
      // production, 1.0.0: three sessions of two requests each, and a request without a session.
      ...['s1', 's2', 's3'].flatMap((session_id) => [
        { ...here, session_id },
        { ...here, session_id, operation: 'tools/list', time: ago(200) },
      ]),
      { ...here, session_id: '' },
      // production, 1.1.0: one session of three requests, one of them failed.
      { ...here, version: '1.1.0', session_id: 's4' },
      { ...here, version: '1.1.0', session_id: 's4', error: 1, error_type: 'tool_error' },
      { ...here, version: '1.1.0', session_id: 's4', time: ago(10) },
      // staging: one session on 1.0.0.
      { ...here, environment: 'staging', session_id: 's5' },
      // Not counted: older than the window, measured by OTLP, pinned (no environment), another server.
      { ...here, session_id: 'old', time: ago(LIVE_WINDOW_SECONDS + 60) },
      { ...here, version: '1.1.0', session_id: 'otlp', source: 'otlp' },
      { ...here, environment: '', version: '1.1.0', session_id: 'pinned' },
      { ...here, server: 'not-a-server', session_id: 'elsewhere' },
    ]);

    const res = await get(slug, bearer(await api.token(['read'])));

    expect(res.statusCode, res.body).toBe(200);
    const live = Object.fromEntries(
      (res.json().environments as { environment: string; live: unknown }[]).map((e) => [
        e.environment,
        e.live,
      ]),
    );
    expect(live).toEqual({
      development: NO_TRAFFIC,
      staging: {
        windowSeconds: LIVE_WINDOW_SECONDS,
        sessions: [{ version: '1.0.0', sessions: 1, share: 1 }],
        requests: [{ version: '1.0.0', requests: 1 }],
      },
      canary: NO_TRAFFIC,
      production: {
        windowSeconds: LIVE_WINDOW_SECONDS,
        sessions: [
          { version: '1.0.0', sessions: 3, share: 0.75 },
          { version: '1.1.0', sessions: 1, share: 0.25 },
        ],
        requests: [
          { version: '1.0.0', requests: 7 },
          { version: '1.1.0', requests: 3 },
        ],
      },
    });
  });

  it('still gives the endpoints when the warehouse does not answer, with no live split', async () => {
    const down = new Error('connect ECONNREFUSED');
    const warehouse = {
      ...stores.warehouse,
      client: { query: () => Promise.reject(down) },
    } as unknown as Warehouse;
    const errors: unknown[] = [];

    const endpoints = await gatewayEndpoints(db, systemPrincipal(api.org), 'weather', BASE, {
      warehouse,
      onLiveError: (error) => errors.push(error),
    });

    expect(endpoints.environments.map((e) => [e.environment, e.live])).toEqual(
      PIPELINE.map((environment) => [environment, null]),
    );
    expect(endpoints.environments[3]?.url).toBe(`${BASE}/default/weather/production/mcp`);
    expect(errors).toEqual([down]);
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
