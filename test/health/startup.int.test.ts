import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkers, type Workers } from '#alerts/workers.ts';
import { loadCheck } from '#core/health/checks.ts';
import { listResults } from '#core/health/results.ts';
import { firstStartupJob, startupRound, type StartupJob } from '#core/health/startup.ts';
import { startupRequirement } from '#core/health/verification.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { startHttpTarget, startMcpTarget, type HttpTarget, type McpTarget } from './targets.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
// Response bodies are read field by field; their schemas are checked by the API itself.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;
let stores: Stores;
let api: TestApi;
let mcp: McpTarget;
let web: HttpTarget;
let workers: Workers | undefined;

const admin = bearer(BOOTSTRAP_TOKEN);

async function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  const res = await api.app.inject({ method, url, payload, headers: admin });
  return { status: res.statusCode, body: res.json() as Body };
}

async function ok(method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  const res = await call(method, url, payload);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function settle(server: string, id: string, ms = 45_000): Promise<Body> {
  const until = Date.now() + ms;
  for (;;) {
    const { body } = await call('GET', `/api/v1/servers/${server}/deployments/${id}`);
    if (!['pending', 'verifying'].includes(body.status as string)) return body;
    if (Date.now() > until) throw new Error(`deployment ${id} still ${body.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  mcp = await startMcpTarget('1.2.0');
  web = await startHttpTarget();
  for (const slug of ['weather', 'plain']) {
    await ok('POST', '/api/v1/servers', { slug });
    for (const version of ['1.2.0', '1.3.0', '1.4.0'])
      await ok('POST', `/api/v1/servers/${slug}/versions`, { version });
  }
});

afterAll(async () => {
  await workers?.close();
  await api?.app.close();
  await mcp?.close();
  await web?.close();
  await stores?.close();
});

describe('startup rounds', () => {
  it('needs N passes in a row: a failure starts the count again', async () => {
    const check = await ok('POST', '/api/v1/servers/weather/health-checks', {
      name: 'flaky',
      kind: 'http',
      url: web.url,
      phase: 'startup',
      environment: 'development',
      interval: '1s',
      timeout: '500ms',
      requiredPasses: 3,
      startupTimeout: '1m',
    });
    const target = {
      deploymentId: '00000000-0000-7000-8000-000000000001',
      orgId: api.org.id,
      server: 'weather',
      environment: 'development',
      version: '1.2.0',
    };
    let job = (await firstStartupJob(stores.db, target)) as StartupJob;
    expect(job).toMatchObject({ round: 0, passes: {}, deadline: job.startedAt + 60_000 });
    const statuses = [200, 500, 200, 200, 200];
    const seen: number[] = [];
    for (const [i, status] of statuses.entries()) {
      web.status = status;
      const outcome = await startupRound(stores, job);
      if ('done' in outcome) {
        expect(i).toBe(statuses.length - 1);
        expect(outcome.done).toMatchObject({
          passed: true,
          detail: 'the startup check passed 3 times in a row',
        });
        expect(outcome.done.checks).toEqual([
          {
            checkId: check.id,
            name: 'flaky',
            passes: 3,
            required: 3,
            lastError: 'expected status 2xx, got 500',
          },
        ]);
        break;
      }
      expect(outcome.delayMs).toBe(1_000);
      job = outcome.next;
      seen.push(job.passes[check.id] ?? 0);
    }
    expect(seen).toEqual([1, 0, 1, 2]);
    const results = await listResults(stores.warehouse, {
      orgId: api.org.id,
      server: 'weather',
      checkId: check.id,
      from: Date.now() - 60_000,
      to: Date.now() + 1_000,
      limit: 10,
    });
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false, true]);
    expect(results[0]).toMatchObject({
      phase: 'startup',
      environment: 'development',
      version: '1.2.0',
      deploymentId: target.deploymentId,
    });
    await ok('DELETE', `/api/v1/servers/weather/health-checks/${check.id}`);
  });

  it('fails, naming the check and its last error, when no further round fits before the deadline', async () => {
    web.status = 503;
    const check = await ok('POST', '/api/v1/servers/weather/health-checks', {
      name: 'down',
      kind: 'http',
      url: web.url,
      phase: 'startup',
      environment: 'development',
      interval: '1s',
      timeout: '500ms',
    });
    const start = Date.now();
    let clock = start;
    const job = (await firstStartupJob(
      stores.db,
      {
        deploymentId: '00000000-0000-7000-8000-000000000002',
        orgId: api.org.id,
        server: 'weather',
        environment: 'development',
        version: '1.2.0',
      },
      { timeoutMs: 2_500 },
      start,
    )) as StartupJob;
    const first = await startupRound(stores, job, () => clock);
    expect('next' in first).toBe(true);
    clock = start + 2_000;
    const last = await startupRound(stores, (first as { next: StartupJob }).next, () => clock);
    expect(last).toEqual({
      done: {
        passed: false,
        detail:
          'startup check "down" passed 0 of 3 times in a row within 3s; last error: expected status 2xx, got 503',
        checks: [
          {
            checkId: check.id,
            name: 'down',
            passes: 0,
            required: 3,
            lastError: 'expected status 2xx, got 503',
          },
        ],
      },
    });
    web.status = 200;
    await ok('DELETE', `/api/v1/servers/weather/health-checks/${check.id}`);
    expect(await loadCheck(stores.db, check.id)).toBeUndefined();
  });

  it('applies checks by environment and version selector, and requires verification only then', async () => {
    const check = await ok('POST', '/api/v1/servers/weather/health-checks', {
      name: 'v2 only',
      kind: 'http',
      url: web.url,
      phase: 'startup',
      versionSelector: '>=2.0.0',
      requiredPasses: 2,
      startupTimeout: '45s',
    });
    const scope = { orgId: api.org.id, serverId: '', server: 'weather', environment: 'staging' };
    expect(await startupRequirement(stores.db, { ...scope, version: '1.3.0' })).toEqual({ required: false });
    expect(await startupRequirement(stores.db, { ...scope, version: '2.1.0-rc.1' })).toEqual({
      required: true,
      passes: 2,
      timeoutMs: 45_000,
    });
    await ok('DELETE', `/api/v1/servers/weather/health-checks/${check.id}`);
  });
});

describe('deployments wait for their startup checks', () => {
  beforeAll(async () => {
    workers = await startWorkers({
      db: stores.db,
      redis: stores.redis,
      warehouse: stores.warehouse,
      logger: silentLogger,
      startupSweepEveryMs: 200,
    });
    mcp.mode = 'ok';
    await ok('POST', '/api/v1/servers/weather/health-checks', {
      name: 'boot',
      kind: 'mcp',
      url: mcp.url,
      phase: 'startup',
      environment: 'staging',
      interval: '1s',
      timeout: '1s',
      requiredPasses: 3,
      startupTimeout: '30s',
    });
  });

  it('a deployment verifies once its MCP startup check passes 3 times in a row', async () => {
    const created = await ok('POST', '/api/v1/servers/weather/deployments', {
      version: '1.2.0',
      environment: 'staging',
    });
    expect(created.status).toBe('verifying');
    expect(created.policy.verification).toEqual({ required: true, passes: 3, timeoutMs: 30_000 });
    const done = await settle('weather', created.id);
    expect(done.status).toBe('succeeded');
    const verify = (done.events as { action: string; detail: { detail?: string } | null }[]).filter(
      (e) => e.action === 'verify',
    );
    expect(verify.at(-1)?.detail?.detail).toBe('the startup check passed 3 times in a row');
    const checks = (await call('GET', '/api/v1/servers/weather/health-checks?phase=startup')).body.checks;
    const results = await listResults(stores.warehouse, {
      orgId: api.org.id,
      server: 'weather',
      checkId: checks[0].id,
      from: Date.now() - 120_000,
      to: Date.now() + 1_000,
      limit: 100,
    });
    const mine = results.filter((r) => r.deploymentId === created.id);
    expect(mine.map((r) => r.ok)).toEqual([true, true, true]);
    expect(mine[0]).toMatchObject({
      phase: 'startup',
      environment: 'staging',
      version: '1.2.0',
      toolCount: 2,
    });
  });

  it('a failing startup check fails the deployment, and rolls it back when its policy says so', async () => {
    mcp.mode = 'throw';
    const failed = await ok('POST', '/api/v1/servers/weather/deployments', {
      version: '1.3.0',
      environment: 'staging',
      verification: { timeout: '3s' },
    });
    expect(failed.status).toBe('verifying');
    const end = await settle('weather', failed.id);
    expect(end.status).toBe('failed');
    expect(end.statusReason).toContain('startup check "boot" passed 0 of 3 times in a row within 3s');
    expect(end.statusReason).toContain('tool registry is unavailable');

    const rolled = await ok('POST', '/api/v1/servers/weather/deployments', {
      version: '1.4.0',
      environment: 'staging',
      rollbackOnFailure: true,
      verification: { timeout: '3s' },
    });
    const back = await settle('weather', rolled.id);
    expect(back.status).toBe('rolled-back');
    expect(back.statusReason).toContain('tool registry is unavailable');
    mcp.mode = 'ok';
  });

  it('a server without startup checks deploys without waiting', async () => {
    const plain = await ok('POST', '/api/v1/servers/plain/deployments', {
      version: '1.2.0',
      environment: 'staging',
    });
    expect(plain.policy.verification.required).toBe(false);
    expect(plain.status).not.toBe('verifying');
  });
});
