import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkers, type Workers } from '#alerts/workers.ts';
import { checkFailures, writeResults, type HealthResult } from '#core/health/results.ts';
import { schedulerId } from '#core/health/schedule.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { REFUSED_HTTP_URLS, REFUSED_TCP_URLS } from './guard-fixtures.ts';
import { closedPort, startHttpTarget, startMcpTarget, type HttpTarget, type McpTarget } from './targets.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
// Response bodies are read field by field; their schemas are checked by the API itself.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;
let stores: Stores;
let api: TestApi;
let queue: Queue;
let mcp: McpTarget;
let web: HttpTarget;
let workers: Workers | undefined;

const BASE = '/api/v1/servers/weather';
const admin = bearer(BOOTSTRAP_TOKEN);

async function call(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
  headers = admin,
) {
  const res = await api.app.inject({ method, url, payload, headers });
  return { status: res.statusCode, body: res.json() as Body };
}

const create = async (payload: object) => {
  const res = await call('POST', `${BASE}/health-checks`, payload);
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
};

const schedulers = async () =>
  (await queue.getJobSchedulers(0, -1)).filter((s) => s.key.startsWith('health-check:'));

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  queue = new Queue(QUEUES.health, { connection: stores.redis.connection(), prefix: QUEUE_PREFIX });
  mcp = await startMcpTarget('1.2.0');
  web = await startHttpTarget();
  await call('POST', '/api/v1/servers', { slug: 'weather' });
  await call('POST', `${BASE}/versions`, { version: '1.2.0' });
});

afterAll(async () => {
  await workers?.close();
  await queue?.close();
  await api?.app.close();
  await mcp?.close();
  await web?.close();
  await stores?.close();
});

describe('bad input changes nothing', () => {
  const cases: [string, object, number, string][] = [
    ['a URL that is not http(s)', { kind: 'http', url: 'ftp://example.com/x' }, 400, 'invalid-url'],
    ['text that is not a URL', { kind: 'mcp', url: 'not a url' }, 400, 'invalid-url'],
    ['a tcp URL without a port', { kind: 'dependency', url: 'tcp://db.internal' }, 400, 'invalid-url'],
    [
      'an interval below 5s',
      { kind: 'http', url: 'http://x.test/', interval: '2s' },
      400,
      'invalid-interval',
    ],
    [
      'an interval that is no duration',
      { kind: 'http', url: 'http://x.test/', interval: '10x' },
      400,
      'invalid-interval',
    ],
    [
      'an interval above a day',
      { kind: 'http', url: 'http://x.test/', interval: '2d' },
      400,
      'invalid-interval',
    ],
    [
      'a timeout above the interval',
      { kind: 'http', url: 'http://x.test/', interval: '5s', timeout: '10s' },
      400,
      'invalid-timeout',
    ],
    [
      'a field of another kind',
      { kind: 'http', url: 'http://x.test/', transport: 'sse' },
      400,
      'invalid-check',
    ],
    [
      'a bad expected status',
      { kind: 'http', url: 'http://x.test/', expectedStatus: '2x' },
      400,
      'invalid-expected-status',
    ],
    [
      'a bad body pattern',
      { kind: 'http', url: 'http://x.test/', bodyMatches: '(' },
      400,
      'invalid-body-pattern',
    ],
    [
      'a bad version selector',
      { kind: 'http', url: 'http://x.test/', versionSelector: 'latest!' },
      400,
      'invalid-version-selector',
    ],
    [
      'an unknown environment',
      { kind: 'http', url: 'http://x.test/', environment: 'moon' },
      400,
      'unknown-environment',
    ],
  ];
  for (const [what, body, status, code] of cases) {
    it(`refuses ${what} (${code})`, async () => {
      const res = await call('POST', `${BASE}/health-checks`, { name: `bad ${code}`, ...body });
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.code).toBe(code);
      expect(res.body.detail).toEqual(expect.any(String));
      expect((await call('GET', `${BASE}/health-checks`)).body.checks).toEqual([]);
      expect(await schedulers()).toEqual([]);
    });
  }

  it('refuses an unknown server with 404', async () => {
    const res = await call('POST', '/api/v1/servers/nope/health-checks', {
      name: 'x',
      kind: 'http',
      url: 'http://x.test/',
    });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('server-not-found');
    expect((await call('GET', '/api/v1/servers/nope/health')).status).toBe(404);
  });

  it('refuses a duplicate name (409) and a bad change, leaving the check as it was', async () => {
    const check = await create({ name: 'dup', kind: 'http', url: web.url, interval: '1m' });
    const dup = await call('POST', `${BASE}/health-checks`, { name: 'dup', kind: 'http', url: web.url });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe('health-check-exists');
    const bad = await call('PATCH', `${BASE}/health-checks/${check.id}`, { interval: '1s' });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('invalid-interval');
    const kind = await call('PATCH', `${BASE}/health-checks/${check.id}`, { kind: 'mcp' });
    expect(kind.status).toBe(400);
    expect((await call('GET', `${BASE}/health-checks/${check.id}`)).body).toEqual(check);
    expect((await schedulers()).map((s) => [s.key, s.every])).toEqual([[schedulerId(check.id), 60_000]]);
    await call('DELETE', `${BASE}/health-checks/${check.id}`);
  });
});

describe('link-local and cloud metadata targets', () => {
  /** The checks table and the audit trail as they are: a refused change leaves both alone. */
  const state = async () => ({
    checks: await stores.db.query('SELECT * FROM health_checks ORDER BY id'),
    audit: await stores.db.query('SELECT seq FROM audit_events ORDER BY seq'),
    schedulers: (await schedulers()).map((s) => [s.key, s.every]),
  });
  const refused: [string, string, RegExp][] = [
    ...REFUSED_HTTP_URLS.flatMap(([url, why]) =>
      (['http', 'mcp', 'dependency'] as const).map((kind): [string, string, RegExp] => [kind, url, why]),
    ),
    ...REFUSED_TCP_URLS.map(([url, why]): [string, string, RegExp] => ['dependency', url, why]),
  ];

  it('refuses them when a check is created (400, health-check-target-refused), creating nothing', async () => {
    const before = await state();
    for (const [kind, url, why] of refused) {
      const res = await call('POST', `${BASE}/health-checks`, { name: 'metadata', kind, url });
      expect(res.status, `${kind} ${url}`).toBe(400);
      expect(res.body, `${kind} ${url}`).toMatchObject({ status: 400, code: 'health-check-target-refused' });
      expect(res.body.detail).toContain(`url ${JSON.stringify(url)} is refused`);
      expect(res.body.detail).toMatch(why);
    }
    expect(await state()).toEqual(before);
  });

  it('refuses them when a check is changed, leaving it as it was', async () => {
    const target = await create({ name: 'web', kind: 'http', url: web.url, interval: '1m' });
    const dependency = await create({ name: 'db', kind: 'dependency', url: 'tcp://10.0.0.5:5432' });
    const before = await state();
    for (const [kind, url, why] of refused) {
      const check = kind === 'dependency' ? dependency : target;
      if (kind === 'mcp') continue; // one check of each URL scheme is enough here
      const res = await call('PATCH', `${BASE}/health-checks/${check.id}`, { url });
      expect(res.status, url).toBe(400);
      expect(res.body, url).toMatchObject({ code: 'health-check-target-refused' });
      expect(res.body.detail).toMatch(why);
    }
    expect(await state()).toEqual(before);
    expect((await call('GET', `${BASE}/health-checks/${target.id}`)).body).toEqual(target);
    for (const check of [target, dependency]) await call('DELETE', `${BASE}/health-checks/${check.id}`);
  });

  it('allows private and loopback targets', async () => {
    for (const [kind, url] of [
      ['http', 'http://10.1.2.3:8080/health'],
      ['mcp', 'http://192.168.1.20/mcp'],
      ['http', 'http://localhost:8080/health'],
      ['dependency', 'tcp://172.16.0.9:6379'],
      ['dependency', 'tcp://[::1]:5432'],
    ] as const) {
      const check = await create({ name: `private ${kind} ${url.length}`, kind, url, phase: 'startup' });
      expect(check.url).toBe(url);
      await call('DELETE', `${BASE}/health-checks/${check.id}`);
    }
  });

  it('refuses them when a check runs, whatever was stored', async () => {
    // Another server, so its failed run stays out of the figures of weather's checks below.
    await call('POST', '/api/v1/servers', { slug: 'stored-target' });
    const base = '/api/v1/servers/stored-target';
    const created = await call('POST', `${base}/health-checks`, {
      name: 'stored',
      kind: 'http',
      url: web.url,
      phase: 'startup',
    });
    const check = created.body;
    // As a row saved before the guard existed would hold it.
    await stores.db.query(`UPDATE health_checks SET target = $2 WHERE id = $1`, [
      check.id,
      JSON.stringify({ url: 'http://169.254.169.254/latest/meta-data/' }),
    ]);
    const requests = web.requests;
    const run = await call('POST', `${base}/health-checks/${check.id}/run`);
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ ok: false, statusCode: 0 });
    expect(run.body.error).toMatch(/^refused: 169\.254\.169\.254 is a link-local address/);
    expect(web.requests).toBe(requests);
    await call('DELETE', `${base}/health-checks/${check.id}`);
  });
});

describe('check definitions and their job schedulers', () => {
  it('creates, changes, disables and deletes a check, with one scheduler while it is periodic', async () => {
    const check = await create({
      name: 'mcp endpoint',
      kind: 'mcp',
      url: mcp.url,
      interval: '30s',
      timeout: '2s',
    });
    expect(check).toMatchObject({
      server: 'weather',
      kind: 'mcp',
      phase: 'runtime',
      transport: 'streamable-http',
      method: null,
      interval: '30s',
      intervalMs: 30_000,
      timeoutMs: 2_000,
      requiredPasses: 3,
      startupTimeout: '5m',
      enabled: true,
      environment: null,
    });
    expect((await schedulers()).map((s) => [s.key, s.every])).toEqual([[schedulerId(check.id), 30_000]]);

    const slower = await call('PATCH', `${BASE}/health-checks/${check.id}`, { interval: '1m' });
    expect(slower.body).toMatchObject({ interval: '1m', timeout: '2s' });
    expect((await schedulers()).map((s) => s.every)).toEqual([60_000]);

    await call('PATCH', `${BASE}/health-checks/${check.id}`, { enabled: false });
    expect(await schedulers()).toEqual([]);
    await call('PATCH', `${BASE}/health-checks/${check.id}`, { enabled: true, environment: 'production' });
    expect((await schedulers()).map((s) => s.key)).toEqual([schedulerId(check.id)]);

    // A startup check runs after deployments only: no scheduler.
    const startup = await create({ name: 'boot', kind: 'http', url: web.url, phase: 'startup' });
    expect(startup).toMatchObject({ phase: 'startup', interval: '5s', expectedStatus: '2xx', method: 'GET' });
    expect((await schedulers()).map((s) => s.key)).toEqual([schedulerId(check.id)]);

    const deleted = await call('DELETE', `${BASE}/health-checks/${check.id}`);
    expect(deleted.status).toBe(200);
    expect(await schedulers()).toEqual([]);
    expect((await call('GET', `${BASE}/health-checks/${check.id}`)).body.code).toBe('health-check-not-found');
    await call('DELETE', `${BASE}/health-checks/${startup.id}`);

    const audit = await call('GET', '/api/v1/audit?limit=500');
    const actions = (audit.body.events as { action: string; target: { id: string } }[])
      .filter((e) => e.target.id === check.id)
      .map((e) => e.action);
    expect(actions.sort()).toEqual([
      'health-check.create',
      'health-check.delete',
      'health-check.update',
      'health-check.update',
      'health-check.update',
    ]);
  });

  it("hides another org's checks (404) and needs write to change them", async () => {
    const check = await create({ name: 'private', kind: 'http', url: web.url });
    const org = await call('POST', '/api/v1/orgs', { slug: 'other-org' });
    const other = bearer(org.body.token as string);
    expect((await call('GET', `${BASE}/health-checks/${check.id}`, undefined, other)).status).toBe(404);
    expect((await call('DELETE', `${BASE}/health-checks/${check.id}`, undefined, other)).status).toBe(404);
    const reader = bearer(await api.token(['read']));
    const refused = await call('POST', `${BASE}/health-checks/${check.id}/run`, undefined, reader);
    expect(refused.status).toBe(403);
    expect((await call('GET', `${BASE}/health-checks/${check.id}`, undefined, reader)).status).toBe(200);
    await call('DELETE', `${BASE}/health-checks/${check.id}`);
  });
});

describe('run now and the tools list', () => {
  it('runs an MCP check, stores the result and keeps the tools for the version', async () => {
    mcp.mode = 'ok';
    const check = await create({ name: 'mcp now', kind: 'mcp', url: mcp.url, phase: 'startup' });
    const run = await call('POST', `${BASE}/health-checks/${check.id}/run`);
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ ok: true, toolCount: 2, version: '1.2.0', statusCode: 200, error: '' });
    expect(run.body.protocolVersion).toMatch(/^\d{4}-\d{2}-\d{2}$/);

    const tools = await call('GET', `${BASE}/versions/1.2.0/tools`);
    expect(tools.status).toBe(200);
    expect(tools.body).toMatchObject({ version: '1.2.0', toolCount: 2, toolsHash: run.body.toolsHash });
    expect(tools.body.tools.map((t: { name: string }) => t.name)).toEqual(['alerts', 'forecast']);
    expect(tools.body.tools[1].inputSchema.properties).toHaveProperty('city');

    const none = await call('GET', `${BASE}/versions/9.9.9/tools`);
    expect(none.status).toBe(404);
    expect(none.body.code).toBe('tools-not-found');

    const results = await call('GET', `${BASE}/health-checks/${check.id}/results?window=1h`);
    expect(results.body.results).toHaveLength(1);
    expect(results.body.results[0]).toMatchObject({ runId: run.body.runId, ok: true });
    await call('DELETE', `${BASE}/health-checks/${check.id}`);
  });

  it('records a failure of a broken target with its reason', async () => {
    const port = await closedPort();
    const check = await create({ name: 'dead dep', kind: 'dependency', url: `tcp://127.0.0.1:${port}` });
    expect(check.phase).toBe('dependency');
    const run = await call('POST', `${BASE}/health-checks/${check.id}/run`);
    expect(run.body).toMatchObject({
      ok: false,
      phase: 'dependency',
      error: 'connection refused (ECONNREFUSED)',
    });
    await call('DELETE', `${BASE}/health-checks/${check.id}`);
  });
});

describe('status, uptime and latency', () => {
  it('gives exact figures for known results', async () => {
    const check = await create({ name: 'known', kind: 'http', url: web.url, interval: '1h', timeout: '5s' });
    const idle = await create({ name: 'idle', kind: 'http', url: web.url, interval: '1h' });
    const now = Date.now();
    const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
    const base = {
      orgId: api.org.id,
      server: 'weather',
      environment: '',
      version: '1.2.0',
      checkId: check.id as string,
      checkName: 'known',
      kind: 'http' as const,
      phase: 'runtime' as const,
      statusCode: 200,
      error: '',
      protocolVersion: '',
      toolCount: 0,
      toolsHash: '',
      deploymentId: '',
    };
    const rows: HealthResult[] = [
      { ...base, time: at(180), ok: false, latencyMs: 5000, statusCode: 0, error: 'old', runId: 'r0' },
      { ...base, time: at(50), ok: true, latencyMs: 10, runId: 'r1' },
      { ...base, time: at(40), ok: true, latencyMs: 20, runId: 'r2' },
      {
        ...base,
        time: at(30),
        ok: false,
        latencyMs: 5000,
        statusCode: 503,
        error: 'expected status 2xx, got 503',
        runId: 'r3',
      },
      { ...base, time: at(20), ok: true, latencyMs: 40, runId: 'r4' },
      {
        ...base,
        time: at(10),
        ok: false,
        latencyMs: 3000,
        statusCode: 500,
        error: 'expected status 2xx, got 500',
        runId: 'r5',
      },
    ];
    await writeResults(stores.warehouse, rows);

    const health = await call('GET', `${BASE}/health?window=1h`);
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('down');
    const known = health.body.checks.find((c: { id: string }) => c.id === check.id);
    // In the last hour: 3 passed of 5; latency over passed runs [10, 20, 40], linear interpolation.
    expect(known).toMatchObject({
      status: 'down',
      reason: null,
      total: 5,
      failures: 2,
      uptimePercent: 60,
      latency: { p50: 20, p95: 38 },
      lastResult: { runId: 'r5', ok: false, statusCode: 500, error: 'expected status 2xx, got 500' },
    });
    const unknown = health.body.checks.find((c: { id: string }) => c.id === idle.id);
    expect(unknown).toMatchObject({
      status: 'unknown',
      reason: 'the check has not run yet',
      total: 0,
      uptimePercent: null,
      latency: { p50: null, p95: null },
      lastResult: null,
    });

    const day = await call('GET', `${BASE}/health?window=24h`);
    expect(day.body.checks.find((c: { id: string }) => c.id === check.id)).toMatchObject({
      total: 6,
      failures: 3,
      uptimePercent: 50,
    });

    const from = at(45);
    const to = at(20);
    const list = await call('GET', `${BASE}/health-checks/${check.id}/results?from=${from}&to=${to}`);
    expect(list.body.results.map((r: { runId: string }) => r.runId)).toEqual(['r3', 'r2']);
    const bad = await call('GET', `${BASE}/health-checks/${check.id}/results?from=${to}&to=${from}`);
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('invalid-window');

    // What the "failing health check" alert rule reads.
    const failures = await checkFailures(stores.warehouse, {
      orgId: api.org.id,
      server: 'weather',
      checkId: check.id,
      from: now - 3_600_000,
      to: now,
    });
    expect(failures).toEqual([
      {
        checkId: check.id,
        checkName: 'known',
        server: 'weather',
        environment: '',
        phase: 'runtime',
        total: 5,
        failures: 2,
        last: { time: at(10), ok: false, error: 'expected status 2xx, got 500', version: '1.2.0' },
      },
    ]);
    const serverWide = await checkFailures(stores.warehouse, {
      orgId: api.org.id,
      server: 'weather',
      from: now - 3_600_000,
      to: now + 60_000,
    });
    expect(serverWide.map((f) => [f.checkName, f.failures, f.total])).toEqual([
      ['dead dep', 1, 1],
      ['known', 2, 5],
      ['mcp now', 0, 1],
    ]);
    expect(
      await checkFailures(stores.warehouse, {
        orgId: api.org.id,
        server: 'weather',
        checkId: idle.id,
        from: now - 3_600_000,
        to: now,
      }),
    ).toEqual([]);

    await call('PATCH', `${BASE}/health-checks/${check.id}`, { enabled: false });
    const disabled = await call('GET', `${BASE}/health?window=1h`);
    expect(disabled.body.checks.find((c: { id: string }) => c.id === check.id)).toMatchObject({
      status: 'unknown',
      reason: 'the check is disabled',
      total: 5,
    });
    await call('DELETE', `${BASE}/health-checks/${check.id}`);
    await call('DELETE', `${BASE}/health-checks/${idle.id}`);
  });

  it('calls a periodic check unknown once it has missed three runs', async () => {
    const check = await create({ name: 'stale', kind: 'http', url: web.url, interval: '5s', timeout: '1s' });
    await writeResults(stores.warehouse, [
      {
        orgId: api.org.id,
        server: 'weather',
        environment: '',
        version: '',
        checkId: check.id,
        checkName: 'stale',
        kind: 'http',
        phase: 'runtime',
        time: new Date(Date.now() - 60_000).toISOString(),
        ok: true,
        latencyMs: 5,
        statusCode: 200,
        error: '',
        protocolVersion: '',
        toolCount: 0,
        toolsHash: '',
        deploymentId: '',
        runId: 'stale-1',
      },
    ]);
    const health = await call('GET', `${BASE}/health`);
    expect(health.body.checks.find((c: { id: string }) => c.id === check.id)).toMatchObject({
      status: 'unknown',
      reason: 'no run for more than 16s; is an alerts worker running?',
      lastResult: { runId: 'stale-1', ok: true },
    });
    await call('DELETE', `${BASE}/health-checks/${check.id}`);
  });
});

describe('runtime checks on job schedulers', () => {
  const waitFor = async <T>(fn: () => Promise<T | undefined>, what: string, ms = 30_000): Promise<T> => {
    const until = Date.now() + ms;
    for (;;) {
      const value = await fn();
      if (value !== undefined) return value;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  it('a real worker runs each check on its scheduler and writes results to ClickHouse', async () => {
    mcp.mode = 'ok';
    Object.assign(web, { status: 200, hang: false, body: '{"status":"ok"}' });
    const mcpCheck = await create({
      name: 'rt mcp',
      kind: 'mcp',
      url: mcp.url,
      interval: '5s',
      timeout: '2s',
    });
    const httpCheck = await create({
      name: 'rt http',
      kind: 'http',
      url: web.url,
      interval: '5s',
      timeout: '300ms',
      bodyContains: '"ok"',
    });
    workers = await startWorkers({
      db: stores.db,
      redis: stores.redis,
      warehouse: stores.warehouse,
      logger: silentLogger,
    });
    const healthOf = async (id: string) => {
      const body = (await call('GET', `${BASE}/health?window=1h`)).body;
      return body.checks.find((c: { id: string }) => c.id === id) as Body;
    };
    // The scheduler runs a check at once, then every interval: two runs each.
    const first = await waitFor(async () => {
      const h = await healthOf(mcpCheck.id);
      return h.total >= 2 ? h : undefined;
    }, 'two runs of the mcp check');
    expect(first).toMatchObject({ status: 'up', failures: 0, uptimePercent: 100 });
    expect(first.lastResult).toMatchObject({ ok: true, toolCount: 2, version: '1.2.0' });
    await waitFor(async () => ((await healthOf(httpCheck.id)).total >= 1 ? true : undefined), 'http run');

    // The target breaks: the next runs fail, and the http check times out instead of hanging.
    mcp.mode = 'throw';
    web.hang = true;
    const broken = await waitFor(async () => {
      const h = await healthOf(mcpCheck.id);
      return h.status === 'down' ? h : undefined;
    }, 'the mcp check to go down');
    expect(broken.lastResult.error).toContain('tool registry is unavailable');
    const timedOut = await waitFor(async () => {
      const h = await healthOf(httpCheck.id);
      return h.status === 'down' ? h : undefined;
    }, 'the http check to go down');
    expect(timedOut.lastResult.error).toBe('timed out after 300 ms');
    web.hang = false;
    mcp.mode = 'ok';

    // Deleting removes the scheduler; a reconcile puts back one lost with Redis's data.
    await call('DELETE', `${BASE}/health-checks/${httpCheck.id}`);
    await queue.removeJobScheduler(schedulerId(mcpCheck.id));
    expect(await schedulers()).toEqual([]);
    const { reconcileSchedules } = await import('#core/health/schedule.ts');
    expect(await reconcileSchedules(stores.db, queue)).toEqual({ upserted: 1, removed: 0 });
    expect((await schedulers()).map((s) => s.key)).toEqual([schedulerId(mcpCheck.id)]);
    await call('DELETE', `${BASE}/health-checks/${mcpCheck.id}`);
    expect(await schedulers()).toEqual([]);
  });
});
