import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores } from '#test/helpers/stores.ts';

// A deployment's session policy (what an abort or rollback does to the live MCP sessions of the
// version losing its traffic): given at creation, shown wherever the deployment is, inherited by
// the rollback of it.

interface Deployment {
  id: string;
  version: string;
  kind: string;
  status: string;
  sessions: string;
}

let stores: Awaited<ReturnType<typeof openTestStores>>;
beforeAll(async () => {
  stores = await openTestStores();
});
afterAll(async () => {
  await stores?.close();
});

describe.each(DB_DRIVERS)('deployment session policy on $name', (driver) => {
  let db: Db;
  let cleanup: (() => Promise<void>) | undefined;
  let api: TestApi;

  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
    await ok('POST', '/servers', { slug: 'weather' });
    for (const version of ['1.0.0', '1.1.0'])
      await ok('POST', '/servers/weather/versions', { version, status: 'stable' });
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
    api.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: bearer(BOOTSTRAP_TOKEN),
      ...(payload ? { payload } : {}),
    });
  async function ok<T = Deployment>(method: 'GET' | 'POST', url: string, payload?: object): Promise<T> {
    const res = await call(method, url, payload);
    expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    return res.json() as T;
  }
  const deploy = (body: object) => ok('POST', '/servers/weather/deployments', body);
  const rollback = async (body: object) =>
    (await ok<{ environments: { deployment: Deployment }[] }>('POST', '/servers/weather/rollback', body))
      .environments[0]?.deployment as Deployment;
  const snapshot = async () =>
    JSON.stringify(
      await Promise.all(
        ['deployments', 'deployment_events', 'environment_releases', 'audit_events'].map((t) =>
          db.query(`SELECT * FROM ${t} ORDER BY id`),
        ),
      ),
    );

  it('is migrate by default, takes each of the three, and is shown in GET and the list', async () => {
    const byDefault = await deploy({ version: '1.0.0', environment: 'development' });
    expect(byDefault.sessions).toBe('migrate');
    for (const [env, sessions] of [
      ['development', 'terminate'],
      ['staging', 'drain'],
      ['canary', 'migrate'],
    ] as const) {
      const version = env === 'development' ? '1.1.0' : '1.0.0';
      const created = await deploy({ version, environment: env, sessions });
      expect(created.sessions).toBe(sessions);
      expect((await ok(`GET`, `/servers/weather/deployments/${created.id}`)).sessions).toBe(sessions);
      const [stored] = await db.query<{ sessions: string }>(
        'SELECT sessions FROM deployments WHERE id = $1',
        [created.id],
      );
      expect(stored?.sessions).toBe(sessions);
    }
    const { deployments } = await ok<{ deployments: Deployment[] }>('GET', '/servers/weather/deployments');
    expect(deployments.map((d) => d.sessions)).toEqual(['migrate', 'drain', 'terminate', 'migrate']);
  });

  it('refuses a policy that is none of the three with 400 naming them, creating nothing', async () => {
    for (const [url, body] of [
      ['/servers/weather/deployments', { version: '1.1.0', environment: 'staging', sessions: 'keep' }],
      ['/servers/weather/rollback', { environment: 'development', sessions: 'Migrate' }],
    ] as const) {
      const before = await snapshot();
      const res = await call('POST', url, body);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      const problem = res.json() as { code: string; detail: string };
      expect(problem.code).toBe('invalid-sessions');
      expect(problem.detail).toMatch(/migrate.*terminate.*drain/);
      expect(await snapshot()).toBe(before);
    }
  });

  it('gives a rollback the policy of the deployment it rolls back, unless given one', async () => {
    // development runs 1.1.0 by a deployment with terminate.
    const inherited = await rollback({ environment: 'development' });
    expect(inherited).toMatchObject({ kind: 'rollback', version: '1.0.0', sessions: 'terminate' });

    // staging runs 1.0.0 (drain); 1.1.0 with migrate, rolled back with drain asked for.
    await deploy({ version: '1.1.0', environment: 'staging', sessions: 'migrate' });
    const given = await rollback({ environment: 'staging', sessions: 'drain' });
    expect(given).toMatchObject({ kind: 'rollback', version: '1.0.0', sessions: 'drain' });

    // Deploying an earlier version is a rollback too: it inherits.
    await deploy({ version: '1.0.0', environment: 'production' });
    await deploy({ version: '1.1.0', environment: 'production', sessions: 'drain' });
    const earlier = await deploy({ version: '1.0.0', environment: 'production' });
    expect(earlier).toMatchObject({ kind: 'rollback', sessions: 'drain' });
  });

  it('keeps an active rollout’s own policy when it is rolled back, or takes the one given', async () => {
    const canary = await deploy({
      version: '1.1.0',
      environment: 'canary',
      strategy: 'canary',
      steps: [{ weight: 30, pause: { approval: true } }, { weight: 100 }],
      sessions: 'terminate',
    });
    const kept = await rollback({ environment: 'canary' });
    expect(kept).toMatchObject({ id: canary.id, status: 'rolled-back', sessions: 'terminate' });

    const again = await deploy({
      version: '1.1.0',
      environment: 'canary',
      strategy: 'canary',
      steps: [{ weight: 30, pause: { approval: true } }, { weight: 100 }],
    });
    const changed = await rollback({ environment: 'canary', sessions: 'drain' });
    expect(changed).toMatchObject({ id: again.id, status: 'rolled-back', sessions: 'drain' });
    expect((await ok('GET', `/servers/weather/deployments/${again.id}`)).sessions).toBe('drain');
  });
});
