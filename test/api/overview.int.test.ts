import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateRule } from '#core/alerting/engine.ts';
import { writeResults } from '#core/health/results.ts';
import { regressions, ROLLBACK_RULE } from '#core/overview.ts';
import type { SessionEventRow } from '#core/warehouse/rows.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { requests } from '#test/alerting/helpers.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';

// GET /api/v1/overview over real stores: deployments and alert rules through the API, telemetry
// through the TelemetryWriter, health results and a canary analysis as the workers store them.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely by the assertions
type Json = Record<string, any>;

const MINUTE = 60_000;
let stores: Stores;
let db: Db;
let api: TestApi;
let writer: TelemetryWriter;
const now = Date.now();

async function call(method: string, url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
  const res = await api.app.inject({
    method: method as 'GET',
    url: `/api/v1${url}`,
    headers: bearer(token),
    ...(payload ? { payload } : {}),
  });
  return { status: res.statusCode, body: res.json() as Json, type: res.headers['content-type'] };
}
async function ok(method: string, url: string, payload?: object, token?: string): Promise<Json> {
  const res = await call(method, url, payload, token);
  expect(res.status, `${method} ${url}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
  return res.body;
}
const row = (body: Json, server: string, environment: string) =>
  (body.servers as Json[])
    .find((s) => s.slug === server)
    ?.environments.find((e: Json) => e.environment === environment) as Json;

/** `count` requests of one version spread over the last 50 minutes. */
async function traffic(
  server: string,
  version: string,
  spec: { count: number; errorRate: number; latencyMs: number; environment?: string; orgId?: string },
) {
  await writer.writeRequests(
    requests({
      orgId: spec.orgId ?? api.org.id,
      server,
      version,
      environment: spec.environment ?? 'production',
      from: now - 50 * MINUTE,
      to: now - MINUTE,
      count: spec.count,
      errorRate: spec.errorRate,
      latencyMs: spec.latencyMs,
    }),
  );
}

/**
 * Gateway sessions of one version as their session events: a start and, unless `end` is null (still
 * active), an end. No request rows, so the request figures stay as `traffic` makes them.
 */
async function sessions(
  server: string,
  version: string,
  list: { client: string; end: 'delete' | 'upstream-failure' | null }[],
  orgId = api.org.id,
) {
  const events = list.flatMap((s, i): SessionEventRow[] => {
    const event = (at: number, kind: 'start' | 'end', reason: string): SessionEventRow => ({
      org_id: orgId,
      server,
      environment: 'production',
      version,
      session_id: `${server}-${version}-${i}-${orgId}`,
      time: new Date(at).toISOString(),
      event: kind,
      reason,
      client_key: s.client,
      source: 'gateway',
    });
    const start = s.end === null ? now - MINUTE : now - 40 * MINUTE + i * MINUTE;
    return [event(start, 'start', ''), ...(s.end === null ? [] : [event(start + 30_000, 'end', s.end)])];
  });
  await writer.writeSessionEvents(events);
}

beforeAll(async () => {
  stores = await openTestStores();
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 50 });
}, 120_000);

afterAll(async () => {
  await writer?.close();
  await stores?.close();
});

/** Servers, deployments, telemetry, a failed health check and a firing alert in a fresh org. */
async function seed() {
  for (const slug of ['weather', 'search', 'maps', 'idle']) {
    await ok('POST', '/servers', { slug, name: `The ${slug} server` });
    for (const version of ['1.0.0', '1.1.0'])
      await ok('POST', `/servers/${slug}/versions`, { version, status: 'stable' });
  }
  // weather: 1.0.0 stable in production, 1.1.0 a canary at 25 % waiting for approval.
  await ok('POST', '/servers/weather/deployments', { version: '1.0.0', environment: 'production' });
  await ok('POST', '/servers/weather/deployments', {
    version: '1.1.0',
    environment: 'production',
    strategy: 'canary',
    steps: [{ weight: 25, pause: { approval: true } }, { weight: 100 }],
  });
  // search: 1.0.0 then 1.1.0 at 100 % in production (1.0.0 is the last known good), 1.1.0 in staging.
  await ok('POST', '/servers/search/deployments', { version: '1.0.0', environment: 'production' });
  await ok('POST', '/servers/search/deployments', { version: '1.1.0', environment: 'production' });
  await ok('POST', '/servers/search/deployments', { version: '1.1.0', environment: 'staging' });
  // maps: 1.0.0 in staging, with a health check that just failed; idle: nothing deployed.
  await ok('POST', '/servers/maps/deployments', { version: '1.0.0', environment: 'staging' });

  await traffic('weather', '1.0.0', { count: 200, errorRate: 0.01, latencyMs: 40 });
  await traffic('weather', '1.1.0', { count: 100, errorRate: 0.3, latencyMs: 250 });
  await traffic('search', '1.0.0', { count: 100, errorRate: 0.01, latencyMs: 40 });
  await traffic('search', '1.1.0', { count: 100, errorRate: 0.02, latencyMs: 44 });
  await traffic('search', '1.1.0', { count: 10, errorRate: 0, latencyMs: 10, environment: 'staging' });
  // Another org's weather, same slug and versions: must never show up in this org's figures.
  const stranger = randomUUID();
  await traffic('weather', '1.1.0', { count: 500, errorRate: 0, latencyMs: 1, orgId: stranger });
  await sessions('weather', '1.1.0', [{ client: 'x', end: 'upstream-failure' }], stranger);
  // weather's sessions: 1.0.0 ten clean ones of five users; the canary 1.1.0
  // two crashed, two clean and one still active, of five users.
  await sessions(
    'weather',
    '1.0.0',
    Array.from({ length: 10 }, (_, i) => ({ client: `u${i % 5}`, end: 'delete' as const })),
  );
  await sessions('weather', '1.1.0', [
    { client: 'c0', end: 'upstream-failure' },
    { client: 'c1', end: 'upstream-failure' },
    { client: 'c2', end: 'delete' },
    { client: 'c3', end: 'delete' },
    { client: 'c4', end: null },
  ]);
  await writer.flush();

  const check = await ok('POST', '/servers/maps/health-checks', {
    name: 'http',
    kind: 'http',
    url: 'http://maps.test/healthz',
    environment: 'staging',
  });
  await writeResults(stores.warehouse, [
    {
      orgId: api.org.id,
      server: 'maps',
      environment: 'staging',
      version: '1.0.0',
      checkId: check.id as string,
      checkName: 'http',
      kind: 'http',
      phase: 'runtime',
      time: new Date(now - 5_000).toISOString(),
      ok: false,
      latencyMs: 12,
      statusCode: 503,
      error: 'expected 2xx, got 503',
      protocolVersion: '',
      toolCount: 0,
      toolsHash: '',
      deploymentId: '',
      runId: randomUUID(),
    },
  ]);

  // A critical rule on weather's canary fires on the next evaluation.
  const rule = await ok('POST', '/alert-rules', {
    name: 'Weather canary errors',
    server: 'weather',
    environment: 'production',
    version: '1.1.0',
    kind: 'threshold',
    metric: 'errorRate',
    comparator: '>',
    threshold: 0.1,
    window: '1h',
    for: '0s',
    severity: 'critical',
    annotations: { summary: 'error rate above 10 %' },
  });
  await evaluateRule({ db, warehouse: stores.warehouse }, rule.id as string);
}

// Each driver gets its own database, so its own org: the org's telemetry is apart from the other run's.
describe.each(DB_DRIVERS)('GET /api/v1/overview on $name', (driver) => {
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
    await seed();
  }, 120_000);
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  it('shows every server × environment with exact figures and flags the regressed canary', async () => {
    const body = await ok('GET', '/overview');
    expect(body.servers.map((s: Json) => s.slug)).toEqual(['idle', 'maps', 'search', 'weather']);
    expect(body.servers.map((s: Json) => s.environments.map((e: Json) => e.environment))).toEqual([
      [],
      ['staging'],
      ['staging', 'production'],
      ['production'],
    ]);
    expect(Date.parse(body.window.to) - Date.parse(body.window.from)).toBe(3_600_000);
    expect(body.stepSeconds).toBe(120);
    expect(body.times.length).toBeGreaterThanOrEqual(30);
    expect(body.times.length).toBeLessThanOrEqual(31);

    const weather = row(body, 'weather', 'production');
    expect(weather).toMatchObject({
      stable: { version: '1.0.0' },
      rollout: { version: '1.1.0', weight: 25, status: 'paused', strategy: 'canary' },
      current: '1.1.0',
      previous: '1.0.0',
      health: null,
      alerts: { firing: 1, critical: 1, items: [{ ruleName: 'Weather canary errors', version: '1.1.0' }] },
      canaryVerdict: null,
      rollbackRecommended: true,
    });
    const cur = weather.metrics.current;
    const prev = weather.metrics.previous;
    expect(cur).toMatchObject({ version: '1.1.0', requests: 100, errors: 30, errorRate: 0.3 });
    expect(cur.throughput).toBeCloseTo(100 / 3600, 10);
    expect(cur.latency.p95).toBeCloseTo(250, 3);
    expect(prev).toMatchObject({ version: '1.0.0', requests: 200, errors: 2, errorRate: 0.01 });
    expect(prev.latency.p95).toBeCloseTo(40, 3);
    expect(weather.deltas.errorRate).toBeCloseTo(0.29, 10);
    expect(weather.deltas.p95).toBeCloseTo(250 / 40 - 1, 3);
    // The sparkline series add up to the totals, one value per step.
    for (const figures of [cur, prev]) {
      for (const values of Object.values(figures.series) as unknown[][])
        expect(values).toHaveLength(body.times.length);
      expect(figures.series.requests.reduce((a: number, b: number) => a + b, 0)).toBe(figures.requests);
    }
    expect(weather.reasons.map((r: Json) => r.code)).toEqual([
      'critical-alert',
      'error-rate-regression',
      'latency-regression',
    ]);
    expect(weather.reasons[1].message).toBe('error rate 30.0 % on 1.1.0 against 1.0 % on 1.0.0');
    expect(weather.reasons[2].message).toBe('p95 250 ms on 1.1.0 against 40 ms on 1.0.0');
    // Crash-free sessions: 1.1.0 2 crashed of 4 finished (the active one waits), 1.0.0 none of 10;
    // pooled 2 of 14 sessions and 2 of 9 users.
    const close = (value: number) => expect.closeTo(value, 12) as unknown as number;
    expect(weather.sessions).toEqual({
      current: {
        version: '1.1.0',
        sessions: 5,
        active: 1,
        crashed: 2,
        users: 5,
        crashFreeSessions: 0.5,
        crashFreeUsers: 0.5,
        change: { crashFreeSessions: close(0.5 - 12 / 14), crashFreeUsers: close(0.5 - 7 / 9) },
      },
      previous: {
        version: '1.0.0',
        sessions: 10,
        active: 0,
        crashed: 0,
        users: 5,
        crashFreeSessions: 1,
        crashFreeUsers: 1,
        change: { crashFreeSessions: close(1 - 12 / 14), crashFreeUsers: close(1 - 7 / 9) },
      },
      average: { sessions: 15, crashFreeSessions: close(12 / 14), crashFreeUsers: close(7 / 9) },
    });
    // The fleet-wide query gives what the Releases view gives for this server and environment.
    const health = await ok('GET', '/servers/weather/release-health?environment=production&window=1h');
    expect(health.average).toEqual({ ...weather.sessions.average, sessions: undefined, erroredRate: 0 });
    for (const v of [weather.sessions.current, weather.sessions.previous]) {
      const h = health.versions.find((x: Json) => x.version === v.version);
      expect(h).toMatchObject({
        sessions: { total: v.sessions, active: v.active, crashed: v.crashed },
        users: v.users,
        crashFreeSessions: v.crashFreeSessions,
        crashFreeUsers: v.crashFreeUsers,
      });
    }

    const search = row(body, 'search', 'production');
    expect(search).toMatchObject({
      stable: { version: '1.1.0' },
      rollout: null,
      current: '1.1.0',
      previous: '1.0.0',
      alerts: { firing: 0, critical: 0, items: [] },
      rollbackRecommended: false,
      reasons: [],
      metrics: {
        current: { requests: 100, errors: 2, errorRate: 0.02 },
        previous: { requests: 100, errors: 1, errorRate: 0.01 },
      },
    });
    // Staging: the first release there has nothing before it to compare with or return to.
    expect(row(body, 'search', 'staging')).toMatchObject({
      current: '1.1.0',
      previous: null,
      metrics: { current: { requests: 10, errors: 0 }, previous: null },
      sessions: null,
      deltas: { errorRate: null, p95: null },
      rollbackRecommended: false,
    });
    expect(row(body, 'maps', 'staging')).toMatchObject({
      stable: { version: '1.0.0' },
      health: 'down',
      metrics: { current: null, previous: null },
      rollbackRecommended: false,
    });
  });

  it('filters by environment and server, and sizes the window and sparklines', async () => {
    const staging = await ok('GET', '/overview?environment=staging');
    expect(
      staging.servers.flatMap((s: Json) => s.environments.map((e: Json) => `${s.slug}/${e.environment}`)),
    ).toEqual(['maps/staging', 'search/staging']);
    const one = await ok('GET', '/overview?server=weather&window=15m&points=5');
    expect(one.servers.map((s: Json) => s.slug)).toEqual(['weather']);
    expect(one.stepSeconds).toBe(180);
    expect(one.times.length).toBeGreaterThanOrEqual(5);
    expect(one.times.length).toBeLessThanOrEqual(6);
    // 14 of the canary's 100 requests fall in the last 15 minutes (one every 29.4 s, the last a minute ago).
    const canary = row(one, 'weather', 'production').metrics.current;
    expect(canary.requests).toBe(
      requests({
        orgId: api.org.id,
        server: 'weather',
        version: '1.1.0',
        from: now - 50 * MINUTE,
        to: now - MINUTE,
        count: 100,
      }).filter((r) => Date.parse(r.time) >= Date.parse(one.window.from)).length,
    );
  });

  it('gives a step without requests a null error rate, not 0 %, in the sparklines and the metric series', async () => {
    // The hour starts about 10 minutes before the first request, so it has empty steps.
    const weather = row(await ok('GET', '/overview'), 'weather', 'production');
    for (const figures of [weather.metrics.current, weather.metrics.previous]) {
      const { requests: counts, errorRate } = figures.series as { requests: number[]; errorRate: unknown[] };
      expect(counts).toContain(0);
      counts.forEach((n, i) => expect(errorRate[i] === null, `step ${i}: ${n} requests`).toBe(n === 0));
    }
    // The series the compare page and the canary report draw.
    const metrics = await ok(
      'GET',
      '/servers/weather/metrics?version=1.1.0&environment=production&window=1h&step=60',
    );
    const points = metrics.points as Json[];
    expect(points.filter((p) => p.requests === 0).length).toBeGreaterThan(5);
    for (const p of points) {
      if (p.requests === 0) expect(p).toMatchObject({ errorRate: null, throughput: 0, p95: null });
      else expect(p.errorRate).toBeTypeOf('number');
    }
    // And the API document says so.
    const doc = (await call('GET', '/openapi.json')).body;
    const schemaOf = (path: string) =>
      JSON.stringify(doc.paths[path].get.responses['200'].content['application/json'].schema);
    expect(schemaOf('/api/v1/servers/{server}/metrics')).toMatch(
      /"errorRate":\{"anyOf":\[\{"enum":\[null\]\},\{"type":"number","description":"errors \/ requests, 0\.\.1; null for a step without requests"/,
    );
    expect(schemaOf('/api/v1/overview')).toContain('null for a step without requests');
  });

  it('flags a failed canary analysis of the running version', async () => {
    const [search] = await db.query<{ id: string }>('SELECT id FROM servers WHERE slug = $1', ['search']);
    const id = randomUUID();
    await db.query(
      `INSERT INTO canary_analyses (id, org_id, server_id, environment, baseline, candidate, baseline_source,
         status, verdict, score, config, window_start, window_end, created_by, finished_at)
       VALUES ($1, $2, $3, 'production', '1.0.0', '1.1.0', 'explicit', 'completed', 'fail', 31, '{}',
         now() - interval '30 minutes', now(), 'test', now())`,
      [id, api.org.id, search?.id],
    );
    const production = row(await ok('GET', '/overview?server=search'), 'search', 'production');
    expect(production).toMatchObject({
      canaryVerdict: { id, verdict: 'fail' },
      rollbackRecommended: true,
      reasons: [{ code: 'canary-analysis-failed', message: 'the canary analysis of 1.1.0 failed' }],
    });
    await db.query('DELETE FROM canary_analyses WHERE id = $1', [id]);
  });

  it('shows a server-limited token only its servers, and 404s the others', async () => {
    const token = await api.token(['read'], { servers: ['search'] });
    const body = await ok('GET', '/overview', undefined, token);
    expect(body.servers.map((s: Json) => s.slug)).toEqual(['search']);
    const hidden = await call('GET', '/overview?server=weather', undefined, token);
    expect(hidden.status).toBe(404);
    expect(hidden.body.code).toBe('server-not-found');
  });

  it("never shows another org's servers, alerts or telemetry", async () => {
    const org = await ok('POST', '/orgs', { slug: 'acme' });
    const theirs = await ok('GET', '/overview', undefined, org.token as string);
    expect(theirs.servers).toEqual([]);
    const probe = await call('GET', '/overview?server=weather', undefined, org.token as string);
    expect(probe.status).toBe(404);
    // Their own weather, with no telemetry of ours.
    await ok('POST', '/servers', { slug: 'weather' }, org.token as string);
    await ok('POST', '/servers/weather/versions', { version: '1.1.0' }, org.token as string);
    await ok(
      'POST',
      '/servers/weather/deployments',
      { version: '1.1.0', environment: 'staging' },
      org.token as string,
    );
    const own = await ok('GET', '/overview', undefined, org.token as string);
    expect(row(own, 'weather', 'staging')).toMatchObject({
      current: '1.1.0',
      alerts: { firing: 0 },
      metrics: { current: null },
    });
  });

  it('refuses bad input with a problem', async () => {
    for (const [query, code] of [
      ['environment=nowhere', 'unknown-environment'],
      ['window=forever', 'invalid-window'],
      ['window=60d', 'invalid-window'],
      ['points=1', 'FST_ERR_VALIDATION'],
    ] as const) {
      const res = await call('GET', `/overview?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.type).toContain('application/problem+json');
      if (code !== 'FST_ERR_VALIDATION') expect(res.body.code, query).toBe(code);
    }
    expect((await call('GET', '/overview?server=nope')).body.code).toBe('server-not-found');
  });
});

describe('rollback rule', () => {
  const v = (version: string, requests: number, errorRate: number, p95: number | null) => ({
    version,
    requests,
    errorRate,
    latency: { p50: null, p95, p99: null },
  });
  it('needs both limits crossed and enough requests from each version', () => {
    const base = v('1.0.0', 100, 0.01, 40);
    expect(regressions(v('1.1.0', 100, 0.06, 40), base).map((r) => r.code)).toEqual([
      'error-rate-regression',
    ]);
    // +4.9 points, or 5 points but below twice the baseline: no flag.
    expect(regressions(v('1.1.0', 100, 0.059, 40), base)).toEqual([]);
    expect(regressions(v('1.1.0', 100, 0.15, 40), v('1.0.0', 100, 0.1, 40))).toEqual([]);
    expect(regressions(v('1.1.0', 100, 0.01, 90), base).map((r) => r.code)).toEqual(['latency-regression']);
    // 1.5 × but under 50 ms slower, or 50 ms slower but under 1.5 ×: no flag.
    expect(regressions(v('1.1.0', 100, 0.01, 15), v('1.0.0', 100, 0.01, 10))).toEqual([]);
    expect(regressions(v('1.1.0', 100, 0.01, 260), v('1.0.0', 100, 0.01, 200))).toEqual([]);
    expect(regressions(v('1.1.0', ROLLBACK_RULE.minRequests - 1, 0.5, 900), base)).toEqual([]);
    expect(regressions(v('1.1.0', 100, 0.5, 900), v('1.0.0', 19, 0, 10))).toEqual([]);
  });
});
