import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores } from '#test/helpers/stores.ts';

// Deployments through the API: environments and gates, the walk development → staging → canary
// (canary steps) → production, the three rollbacks, and every refused input changing nothing.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Tables a refused request must leave exactly as they were. */
const TABLES = ['deployments', 'deployment_events', 'environment_releases', 'environments', 'audit_events'];

interface Deployment {
  id: string;
  version: string;
  environment: string;
  currentEnvironment: string;
  strategy: string;
  kind: string;
  status: string;
  steps: { weight: number; environment?: string }[];
  currentStep: number | null;
  weight: number;
  pause: { kind: string; until?: string } | null;
  awaiting: string | null;
  previousVersion: string | null;
  allowedActions: string[];
  events?: { action: string; from: string | null; to: string; actor: string; reason: string | null }[];
}

interface EnvStatus {
  environment: string;
  stable: { version: string; since: string; by: string } | null;
  canary: { version: string; weight: number; status: string } | null;
  rollbackTarget: string | null;
  desired: { version: string; weight: number }[];
  history: { version: string; kind: string; status: string }[];
}

let stores: Stores;
beforeAll(async () => {
  stores = await openTestStores();
});
afterAll(async () => {
  await stores?.close();
});

describe.each(DB_DRIVERS)('deployments API on $name', (driver) => {
  let db: Db;
  let cleanup: (() => Promise<void>) | undefined;
  let api: TestApi;

  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  async function call(method: Method, url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
    const options: InjectOptions = { method, url: `/api/v1${url}`, headers: bearer(token) };
    if (payload !== undefined) options.payload = payload;
    return api.app.inject(options);
  }
  async function ok<T = Record<string, unknown>>(
    method: Method,
    url: string,
    payload?: object,
    token?: string,
  ) {
    const res = await call(method, url, payload, token);
    expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    return res.json() as T;
  }
  const deploy = (server: string, body: object, token?: string) =>
    ok<Deployment>('POST', `/servers/${server}/deployments`, body, token);
  const act = (server: string, id: string, action: string, body: object = {}) =>
    ok<Deployment>('POST', `/servers/${server}/deployments/${id}/${action}`, body);
  const where = async (server: string) =>
    Object.fromEntries(
      (await ok<{ environments: EnvStatus[] }>('GET', `/servers/${server}/environments`)).environments.map(
        (e) => [e.environment, e],
      ),
    ) as Record<string, EnvStatus>;
  const stableIn = async (server: string) =>
    Object.fromEntries(Object.entries(await where(server)).map(([k, v]) => [k, v.stable?.version ?? null]));

  async function snapshot() {
    const out: Record<string, unknown[]> = {};
    for (const table of TABLES) out[table] = await db.query(`SELECT * FROM ${table} ORDER BY id`);
    return JSON.stringify(out);
  }
  /** Sends a request that must be refused with `status` and `code`, and checks that nothing changed. */
  async function refused(
    status: number,
    code: string,
    method: Method,
    url: string,
    payload?: object,
    token?: string,
  ) {
    const before = await snapshot();
    const res: LightMyRequestResponse = await call(method, url, payload, token);
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const problem = res.json() as { code: string; detail: string };
    expect(problem.code, res.body).toBe(code);
    expect(await snapshot()).toBe(before);
    return problem;
  }

  async function server(slug: string, versions: [string, string?][]) {
    await ok('POST', '/servers', { slug });
    for (const [version, status] of versions) {
      await ok('POST', `/servers/${slug}/versions`, { version, ...(status ? { status } : {}) });
    }
  }

  it('gives every org the four default environments in pipeline order, production protected', async () => {
    const { environments } = await ok<{
      environments: { name: string; position: number; protected: boolean }[];
    }>('GET', '/environments');
    expect(environments.map((e) => [e.name, e.position, e.protected])).toEqual([
      ['development', 1, false],
      ['staging', 2, false],
      ['canary', 3, false],
      ['production', 4, true],
    ]);
    const org = await ok<{ token: string }>('POST', '/orgs', { slug: 'acme' });
    const theirs = await ok<{ environments: { name: string }[] }>(
      'GET',
      '/environments',
      undefined,
      org.token,
    );
    expect(theirs.environments.map((e) => e.name)).toEqual([
      'development',
      'staging',
      'canary',
      'production',
    ]);
  });

  it('inserts a custom environment into the pipeline and checks gates', async () => {
    const created = await ok<{ name: string; position: number }>('POST', '/environments', {
      name: 'qa',
      after: 'staging',
      gates: [{ type: 'soak', environment: 'staging', duration: '1h' }],
    });
    expect(created.position).toBe(3);
    const { environments } = await ok<{ environments: { name: string }[] }>('GET', '/environments');
    expect(environments.map((e) => e.name)).toEqual(['development', 'staging', 'qa', 'canary', 'production']);
    await refused(400, 'invalid-gate', 'PATCH', '/environments/qa', {
      gates: [{ type: 'soak', environment: 'nope', duration: '1h' }],
    });
    await refused(400, 'invalid-duration', 'PATCH', '/environments/qa', {
      gates: [{ type: 'soak', environment: 'staging', duration: 'forever' }],
    });
    await refused(400, 'invalid-gate', 'PATCH', '/environments/qa', { gates: [{ type: 'vibes' }] });
    await refused(409, 'environment-exists', 'POST', '/environments', { name: 'qa' });
    await refused(409, 'environment-in-use', 'DELETE', '/environments/staging');
    await ok('DELETE', '/environments/qa');
    const after = await ok<{ environments: { name: string; position: number }[] }>('GET', '/environments');
    expect(after.environments.map((e) => [e.name, e.position])).toEqual([
      ['development', 1],
      ['staging', 2],
      ['canary', 3],
      ['production', 4],
    ]);
  });

  it('walks a version development → staging → canary (canary steps) → production', async () => {
    await server('weather', [
      ['1.0.0', 'stable'],
      ['1.1.0', 'stable'],
    ]);
    for (const env of ['development', 'staging', 'canary', 'production']) {
      const d = await deploy('weather', { version: '1.0.0', environment: env });
      expect(d).toMatchObject({ status: 'succeeded', weight: 100, strategy: 'immediate', kind: 'deploy' });
    }
    // 1.1.0 through the pipeline.
    await deploy('weather', { version: '1.1.0', environment: 'development' });
    await deploy('weather', { version: '1.1.0', environment: 'staging' });
    let canary = await deploy('weather', {
      version: '1.1.0',
      environment: 'canary',
      strategy: 'canary',
      steps: [
        { weight: 5, pause: { approval: true } },
        { weight: 25, pause: { approval: true } },
        { weight: 50, pause: '1h' },
        { weight: 100 },
      ],
    });
    expect(canary).toMatchObject({
      status: 'paused',
      currentStep: 0,
      weight: 5,
      pause: { kind: 'approval' },
      previousVersion: '1.0.0',
    });
    let status = await where('weather');
    expect(status.canary?.desired).toEqual([
      { version: '1.0.0', weight: 95 },
      { version: '1.1.0', weight: 5 },
    ]);
    expect(status.canary?.canary).toMatchObject({ version: '1.1.0', weight: 5, status: 'paused' });

    canary = await act('weather', canary.id, 'promote');
    expect(canary).toMatchObject({ status: 'paused', currentStep: 1, weight: 25 });
    canary = await act('weather', canary.id, 'promote');
    expect(canary).toMatchObject({ status: 'paused', currentStep: 2, weight: 50, pause: { kind: 'timer' } });
    // A manual pause stops the clock; resume starts it again; a step pause is left with promote.
    canary = await act('weather', canary.id, 'pause', { reason: 'watching the error rate' });
    expect(canary).toMatchObject({ status: 'paused', pause: { kind: 'manual' } });
    canary = await act('weather', canary.id, 'resume');
    expect(canary).toMatchObject({ status: 'paused', pause: { kind: 'timer' } });
    canary = await act('weather', canary.id, 'promote');
    expect(canary).toMatchObject({ status: 'succeeded', currentStep: 3, weight: 100, allowedActions: [] });

    const prod = await deploy('weather', {
      version: '1.1.0',
      environment: 'production',
      strategy: 'canary',
      steps: [{ weight: 20, pause: { approval: true } }, { weight: 100 }],
    });
    const full = await act('weather', prod.id, 'promote', { full: true });
    expect(full).toMatchObject({ status: 'succeeded', weight: 100 });

    expect(await stableIn('weather')).toEqual({
      development: '1.1.0',
      staging: '1.1.0',
      canary: '1.1.0',
      production: '1.1.0',
    });
    status = await where('weather');
    expect(status.production).toMatchObject({
      stable: { version: '1.1.0', by: 'bootstrap' },
      canary: null,
      rollbackTarget: '1.0.0',
      desired: [{ version: '1.1.0', weight: 100 }],
    });
    expect(status.production?.history.map((h) => `${h.version} ${h.status}`)).toEqual([
      '1.1.0 succeeded',
      '1.0.0 succeeded',
    ]);

    // The timeline of the canary: every transition with its actor and reason, also in the audit trail.
    const detail = await ok<Deployment>('GET', `/servers/weather/deployments/${canary.id}`);
    expect(detail.events?.map((e) => `${e.action}:${e.from ?? '-'}→${e.to}`)).toEqual([
      'create:-→pending',
      'start:pending→paused',
      'promote:paused→paused',
      'promote:paused→paused',
      'pause:paused→paused',
      'resume:paused→paused',
      'promote:paused→succeeded',
    ]);
    expect(detail.events?.find((e) => e.action === 'pause')?.reason).toBe('watching the error rate');
    const audit = await ok<{ events: { action: string }[] }>('GET', `/audit?target=${canary.id}`);
    expect(audit.events.map((e) => e.action).reverse()).toEqual([
      'deployment.create',
      'deployment.start',
      'deployment.promote',
      'deployment.promote',
      'deployment.pause',
      'deployment.resume',
      'deployment.promote',
    ]);
  });

  it('rolls back immediately, selectively and in stages', async () => {
    // Immediate: production goes back to its last known good version at once.
    const immediate = await ok<{
      environments: { environment: string; from: string; to: string; deployment: Deployment }[];
    }>('POST', '/servers/weather/rollback', {
      mode: 'immediate',
      environment: 'production',
      reason: 'error rate up',
    });
    expect(immediate.environments).toMatchObject([
      {
        environment: 'production',
        from: '1.1.0',
        to: '1.0.0',
        deployment: { kind: 'rollback', status: 'succeeded', version: '1.0.0' },
      },
    ]);
    expect(await stableIn('weather')).toEqual({
      development: '1.1.0',
      staging: '1.1.0',
      canary: '1.1.0',
      production: '1.0.0',
    });
    // 1.1.0 was rolled back in production: it is no longer a known good version there.
    expect((await where('weather')).production?.rollbackTarget).toBe(null);

    // Selective: only canary and staging; development keeps 1.1.0.
    const selective = await ok<{ environments: { environment: string; to: string }[] }>(
      'POST',
      '/servers/weather/rollback',
      {
        mode: 'selective',
        environments: ['canary', 'staging'],
      },
    );
    expect(selective.environments.map((e) => `${e.environment}:${e.to}`)).toEqual([
      'canary:1.0.0',
      'staging:1.0.0',
    ]);
    expect(await stableIn('weather')).toEqual({
      development: '1.1.0',
      staging: '1.0.0',
      canary: '1.0.0',
      production: '1.0.0',
    });

    // Staged: in development 1.1.0's weight steps down 60 → 20 → 0 while 1.0.0 comes back.
    const staged = await ok<{ environments: { deployment: Deployment }[] }>(
      'POST',
      '/servers/weather/rollback',
      {
        mode: 'staged',
        environment: 'development',
        steps: [60, 20, 0],
        pause: '10m',
      },
    );
    let d = staged.environments[0]?.deployment as Deployment;
    expect(d).toMatchObject({ kind: 'rollback', version: '1.0.0', status: 'paused', weight: 40 });
    expect((await where('weather')).development?.desired).toEqual([
      { version: '1.1.0', weight: 60 },
      { version: '1.0.0', weight: 40 },
    ]);
    d = await act('weather', d.id, 'promote');
    expect((await where('weather')).development?.desired).toEqual([
      { version: '1.1.0', weight: 20 },
      { version: '1.0.0', weight: 80 },
    ]);
    // An immediate rollback while a staged one runs completes it at once.
    await ok('POST', '/servers/weather/rollback', { environment: 'development' });
    expect(await stableIn('weather')).toEqual({
      development: '1.0.0',
      staging: '1.0.0',
      canary: '1.0.0',
      production: '1.0.0',
    });
    expect((await ok<Deployment>('GET', `/servers/weather/deployments/${d.id}`)).status).toBe('succeeded');
  });

  it('rolls back an active canary: its traffic returns to the stable version', async () => {
    const d = await deploy('weather', {
      version: '1.1.0',
      environment: 'staging',
      strategy: 'canary',
      steps: [{ weight: 30, pause: { approval: true } }, { weight: 100 }],
    });
    const rolled = await act('weather', d.id, 'rollback', { reason: 'latency' });
    expect(rolled).toMatchObject({ status: 'rolled-back', weight: 0, allowedActions: [] });
    expect((await where('weather')).staging).toMatchObject({ stable: { version: '1.0.0' }, canary: null });
  });

  it('records deploying an earlier version again as a rollback', async () => {
    await deploy('weather', { version: '1.1.0', environment: 'development' });
    const back = await deploy('weather', {
      version: '1.0.0',
      environment: 'development',
      reason: 'back to 1.0',
    });
    expect(back).toMatchObject({ kind: 'rollback', previousVersion: '1.1.0', status: 'succeeded' });
    const audit = await ok<{ events: { action: string }[] }>('GET', `/audit?target=${back.id}`);
    expect(audit.events.map((e) => e.action)).toContain('deployment.rollback');
  });

  it('walks a staged rollout through the pipeline as gates pass', async () => {
    await server('staged', [
      ['2.0.0', 'stable'],
      ['2.1.0', 'stable'],
    ]);
    await ok('PATCH', '/environments/canary', {
      gates: [{ type: 'soak', environment: 'staging', duration: '30m' }],
    });
    try {
      const d = await deploy('staged', { version: '2.0.0', environment: 'production', strategy: 'staged' });
      // Development and staging at once; canary waits for staging's soak.
      expect(d).toMatchObject({
        status: 'progressing',
        awaiting: 'gates',
        currentEnvironment: 'staging',
        currentStep: 1,
      });
      expect(d.steps.map((s) => s.environment)).toEqual(['development', 'staging', 'canary', 'production']);
      expect(await stableIn('staged')).toMatchObject({
        development: '2.0.0',
        staging: '2.0.0',
        canary: null,
      });
      const early = await refused(409, 'gate-not-met', 'POST', `/servers/staged/deployments/${d.id}/promote`);
      expect(early.detail).toContain('soak');
      // Half an hour later (written directly): the sweep moves it on.
      await db.query(`UPDATE environment_releases SET released_at = released_at - interval '31 minutes'`);
      const { sweepDue } = await import('#core/deploy/system-events.ts');
      const { noScheduler } = await import('#core/deploy/scheduler.ts');
      const { loggingPublisher } = await import('#core/deploy/wiring.ts');
      const { silentLogger } = await import('#test/helpers/stores.ts');
      await sweepDue({ db, scheduler: noScheduler, publisher: loggingPublisher(silentLogger) });
      const done = await ok<Deployment>('GET', `/servers/staged/deployments/${d.id}`);
      expect(done).toMatchObject({ status: 'succeeded', currentEnvironment: 'production' });
      expect(await stableIn('staged')).toEqual({
        development: '2.0.0',
        staging: '2.0.0',
        canary: '2.0.0',
        production: '2.0.0',
      });
    } finally {
      await ok('PATCH', '/environments/canary', { gates: [] });
    }
  });

  describe('bad input gets a clear error and changes nothing', () => {
    beforeAll(async () => {
      await server('bad', [['1.0.0', 'stable'], ['1.1.0', 'stable'], ['1.2.0-rc.1'], ['0.9.0', 'stable']]);
      await ok('PATCH', '/servers/bad/versions/0.9.0', { status: 'retired', reason: 'old' });
      await deploy('bad', { version: '1.0.0', environment: 'staging' });
    });

    it('unknown or retired version', async () => {
      await refused(404, 'version-not-found', 'POST', '/servers/bad/deployments', {
        version: '9.9.9',
        environment: 'staging',
      });
      const retired = await refused(409, 'version-retired', 'POST', '/servers/bad/deployments', {
        version: '0.9.0',
        environment: 'staging',
      });
      expect(retired.detail).toContain('retired');
      await refused(404, 'environment-not-found', 'POST', '/servers/bad/deployments', {
        version: '1.0.0',
        environment: 'moon',
      });
      await refused(404, 'server-not-found', 'POST', '/servers/nope/deployments', {
        version: '1.0.0',
        environment: 'staging',
      });
    });

    it('a pre-release into a protected environment', async () => {
      const p = await refused(409, 'protected-environment', 'POST', '/servers/bad/deployments', {
        version: '1.2.0-rc.1',
        environment: 'production',
      });
      expect(p.detail).toContain('pre-release');
    });

    it('a gate not met names the gate', async () => {
      await ok('PATCH', '/environments/production', {
        gates: [{ type: 'soak', environment: 'staging', duration: '30m' }],
      });
      try {
        const p = await refused(409, 'gate-not-met', 'POST', '/servers/bad/deployments', {
          version: '1.1.0',
          environment: 'production',
        });
        expect(p.detail).toContain('gate soak of production (30m in staging)');
        expect(p).toMatchObject({ gate: { type: 'soak', environment: 'staging', duration: '30m' } });
        const soaked = await refused(409, 'gate-not-met', 'POST', '/servers/bad/deployments', {
          version: '1.0.0',
          environment: 'production',
        });
        expect(soaked.detail).toContain('passes at');
      } finally {
        await ok('PATCH', '/environments/production', { gates: [] });
      }
    });

    it('deploy permission on one environment only', async () => {
      const limited = await ok<{ token: string; environments: string[] }>('POST', '/tokens', {
        name: 'staging-deployer',
        permissions: ['deploy'],
        environments: ['staging'],
      });
      expect(limited.environments).toEqual(['staging']);
      const p = await refused(
        403,
        'environment-not-permitted',
        'POST',
        '/servers/bad/deployments',
        { version: '1.1.0', environment: 'production' },
        limited.token,
      );
      expect(p.detail).toContain('staging');
      // With the environment-permission gate, a general deploy token is refused too.
      await ok('PATCH', '/environments/canary', { gates: [{ type: 'environment-permission' }] });
      try {
        const general = await ok<{ token: string }>('POST', '/tokens', {
          name: 'deployer',
          permissions: ['deploy'],
        });
        const g = await refused(
          409,
          'gate-not-met',
          'POST',
          '/servers/bad/deployments',
          { version: '1.1.0', environment: 'canary' },
          general.token,
        );
        expect(g.detail).toContain('environment-permission');
        const named = await ok<{ token: string }>('POST', '/tokens', {
          name: 'canary-deployer',
          permissions: ['deploy'],
          environments: ['canary'],
        });
        await deploy('bad', { version: '1.1.0', environment: 'canary' }, named.token);
      } finally {
        await ok('PATCH', '/environments/canary', { gates: [] });
      }
    });

    it('a second concurrent rollout names the active one', async () => {
      const active = await deploy('bad', {
        version: '1.1.0',
        environment: 'staging',
        strategy: 'canary',
        steps: [{ weight: 10, pause: { approval: true } }, { weight: 100 }],
      });
      const p = await refused(409, 'rollout-active', 'POST', '/servers/bad/deployments', {
        version: '1.2.0-rc.1',
        environment: 'staging',
      });
      expect(p.detail).toContain(active.id);
      expect(p).toMatchObject({ activeDeployment: active.id });
      await act('bad', active.id, 'abort');
    });

    it('rollback with no earlier good version', async () => {
      const p = await refused(409, 'no-known-good-version', 'POST', '/servers/bad/rollback', {
        environment: 'canary',
      });
      expect(p.detail).toContain('no earlier good version');
      await refused(409, 'no-known-good-version', 'POST', '/servers/bad/rollback', {
        environment: 'production',
      });
      // Selective is all or nothing: staging could roll back, canary cannot.
      await refused(409, 'no-known-good-version', 'POST', '/servers/bad/rollback', {
        mode: 'selective',
        environments: ['staging', 'canary'],
      });
    });

    it('weights that do not rise or exceed 100', async () => {
      const url = '/servers/bad/deployments';
      const base = { version: '1.1.0', environment: 'development', strategy: 'canary' };
      const p = await refused(400, 'invalid-steps', 'POST', url, {
        ...base,
        steps: [{ weight: 50 }, { weight: 25 }, { weight: 100 }],
      });
      expect(p.detail).toContain('does not rise');
      await refused(400, 'invalid-steps', 'POST', url, { ...base, steps: [{ weight: 50 }, { weight: 150 }] });
      await refused(400, 'invalid-steps', 'POST', url, {
        ...base,
        steps: [{ weight: 50 }, { weight: 50 }, { weight: 100 }],
      });
      await refused(400, 'invalid-steps', 'POST', url, { ...base, steps: [{ weight: 10 }, { weight: 50 }] });
      await refused(400, 'invalid-steps', 'POST', url, { ...base, steps: [] });
      await refused(400, 'invalid-duration', 'POST', url, {
        ...base,
        steps: [{ weight: 10, pause: 'soon' }, { weight: 100 }],
      });
      await refused(400, 'invalid-steps', 'POST', '/servers/bad/rollback', {
        mode: 'staged',
        environment: 'staging',
        steps: [50, 60, 0],
      });
    });

    it('an action the state does not allow names the state', async () => {
      const d = await deploy('bad', {
        version: '1.1.0',
        environment: 'development',
        strategy: 'canary',
        steps: [{ weight: 10, pause: { approval: true } }, { weight: 100 }],
      });
      const resume = await refused(
        409,
        'invalid-state',
        'POST',
        `/servers/bad/deployments/${d.id}/resume`,
        {},
      );
      expect(resume.detail).toContain('paused at step 1 (waiting for approval)');
      expect(resume).toMatchObject({ state: 'paused', action: 'resume' });
      await act('bad', d.id, 'abort');
      const promote = await refused(
        409,
        'invalid-state',
        'POST',
        `/servers/bad/deployments/${d.id}/promote`,
        {},
      );
      expect(promote.detail).toContain('aborted');
      expect(promote).toMatchObject({ state: 'aborted' });
      await refused(
        404,
        'deployment-not-found',
        'POST',
        `/servers/bad/deployments/00000000-0000-0000-0000-000000000000/promote`,
        {},
      );
      await refused(409, 'already-running', 'POST', '/servers/bad/deployments', {
        version: '1.0.0',
        environment: 'staging',
      });
    });
  });
});
