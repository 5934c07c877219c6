import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRetention, DEFAULT_RETENTION } from '#core/warehouse/telemetry-queries.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import type { RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import type { ReleaseHealthJson } from '#api/routes/release-health.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { until } from '#test/helpers/until.ts';
import { apiFixture, startTestGateway, whoami } from '../gateway/harness.ts';
import type { Upstream } from '../gateway/upstream.ts';

// Known sessions through the real gateway (SDK clients and SDK servers over HTTP, the real API
// changing the rollout, chDB receiving the rows) give exact release-health figures.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let gateway: FastifyInstance;
let base: string;
const upstreams: Upstream[] = [];
const clients: Client[] = [];

type Health = ReleaseHealthJson;

async function call(url: string) {
  return api.app.inject({ method: 'GET', url: `/api/v1${url}`, headers: bearer(BOOTSTRAP_TOKEN) });
}

const { ok, serverWith, canary: canaryAt } = apiFixture(() => api, upstreams);
const canary = (slug: string, version: string, weight: number) => canaryAt(slug, version, [weight]);

async function health(slug: string): Promise<Health> {
  const res = await call(`/servers/${slug}/release-health?environment=development&window=1h`);
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Health;
}

interface Sessions {
  series: ({ time: string; movedByRollout: number } & Record<'total' | 'healthy' | 'errored', number>)[];
  sessions: {
    status: string;
    endReason: string | null;
    requests: number;
    errors: number;
    durationMs: number | null;
    user: string | null;
  }[];
}

async function sessionsOf(slug: string, version: string): Promise<Sessions> {
  const res = await call(`/servers/${slug}/versions/${version}/sessions?environment=development&window=1h`);
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Sessions;
}

/** Sessions of every version. */
const total = (h: Health) => h.versions.reduce((sum, v) => sum + v.sessions.total, 0);

interface Session {
  client: Client;
  transport: StreamableHTTPClientTransport;
  version: string;
}

/** An SDK client on its own connect token (its own user), after one whoami. */
async function open(slug: string): Promise<Session> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/default/${slug}/development/mcp`), {
    requestInit: { headers: bearer(await api.token(['connect'])) },
  });
  const client = new Client({ name: 'release-health-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport, version: await whoami(client) };
}

/** Ends the session with DELETE, as a client that is done does. */
async function end(s: Session): Promise<void> {
  await s.transport.terminateSession();
  await s.client.close();
}

/** New sessions until `count` of them landed on `version`; the others are returned too. */
async function openOn(
  slug: string,
  version: string,
  count: number,
): Promise<{ on: Session[]; others: Session[] }> {
  const on: Session[] = [];
  const others: Session[] = [];
  while (on.length < count) {
    const s = await open(slug);
    (s.version === version ? on : others).push(s);
  }
  return { on, others };
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  ({ app: gateway, base } = await startTestGateway(stores));
});
afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await gateway?.close();
  await api?.app.close();
  for (const upstream of upstreams) await upstream.close();
  await stores?.close();
});

describe('release health through the gateway', () => {
  it('counts clean ends, tool errors, open sessions and a rollback’s moved sessions exactly', async () => {
    await serverWith('rh', ['1.0.0', '1.1.0']);
    const healthy = await open('rh');
    await end(healthy);
    const errored = await open('rh');
    await errored.client.callTool({ name: 'broken', arguments: {} });
    await end(errored);
    await open('rh'); // left open: active

    const deployment = await canary('rh', '1.1.0', 50);
    // New sessions split; those on 1.0.0 are left open (active), two land on the canary.
    const { on: onCanary, others } = await openOn('rh', '1.1.0', 2);
    await ok('POST', `/servers/rh/deployments/${deployment.id}/rollback`, {});
    // Each canary session's next request migrates it to 1.0.0, once the gateway hears of the rollback.
    for (const s of onCanary)
      await until(async () => (await whoami(s.client)) === '1.0.0', { what: 'migration' });
    await end(onCanary[0] as Session); // continues on 1.0.0 and ends cleanly there

    const openOn100 = 1 + others.length + 1; // the open one, the canary's neighbours, one migrated
    await until(
      async () => {
        const h = await health('rh');
        const v = Object.fromEntries(h.versions.map((x) => [x.version, x.sessions]));
        return (
          v['1.1.0']?.movedByRollout === 2 && v['1.0.0']?.healthy === 2 && v['1.0.0']?.active === openOn100
        );
      },
      { what: 'the sessions in release health' },
    );
    const h = await health('rh');
    expect(h.versions.map((v) => v.version)).toEqual(['1.1.0', '1.0.0']);
    const [canaryHealth, stable] = h.versions;
    expect(canaryHealth).toMatchObject({
      sessions: { total: 2, healthy: 0, errored: 0, crashed: 0, abnormal: 0, movedByRollout: 2, active: 0 },
      users: 2,
      crashFreeSessions: null,
      crashFreeUsers: null,
      erroredRate: null,
      duration: { p50: null, p90: null },
    });
    expect(stable).toMatchObject({
      sessions: {
        total: 3 + others.length + 2,
        healthy: 2,
        errored: 1,
        crashed: 0,
        abnormal: 0,
        movedByRollout: 0,
        active: openOn100,
      },
      users: 3 + others.length + 2,
      crashFreeSessions: 1,
      crashFreeUsers: 1,
    });
    expect(stable?.erroredRate).toBeCloseTo(1 / 3);
    expect(stable?.duration.p50).toBeGreaterThanOrEqual(0);
    // Every session of the environment in the last 24 h: the canary's two are on both versions.
    const all = 3 + others.length + 2;
    expect(stable?.adoption.sessions).toBeCloseTo(all / (all + 2));
    expect(canaryHealth?.adoption.sessions).toBeCloseTo(2 / (all + 2));
    expect(stable?.stage).toBe('adopted');
    expect(h.average).toMatchObject({ crashFreeSessions: 1, crashFreeUsers: 1 });
    expect(h.average.erroredRate).toBeCloseTo(1 / 3);

    // The sessions list says how each one went.
    const moved = await sessionsOf('rh', '1.1.0');
    expect(moved.sessions.map((s) => [s.status, s.endReason])).toEqual([
      ['moved-by-rollout', null],
      ['moved-by-rollout', null],
    ]);
    expect(moved.series.reduce((sum, p) => sum + p.movedByRollout, 0)).toBe(2);
    const stableSessions = await sessionsOf('rh', '1.0.0');
    expect(stableSessions.sessions.filter((s) => s.status === 'errored')).toMatchObject([
      { endReason: 'delete', errors: 1, requests: 3 },
    ]);
    expect(stableSessions.series.reduce((sum, p) => sum + p.total, 0)).toBe(all);
  });

  it('counts a session whose upstream was killed as crashed, for the session and its user', async () => {
    const v = await serverWith('rh-crash', ['1.0.0']);
    await end(await open('rh-crash'));
    const doomed = await open('rh-crash');
    await v['1.0.0']?.kill();
    await expect(whoami(doomed.client)).rejects.toThrow(/failed/);
    await until(async () => (await health('rh-crash')).versions[0]?.sessions.crashed === 1, {
      what: 'the crashed session',
    });
    const [only] = (await health('rh-crash')).versions;
    expect(only).toMatchObject({
      version: '1.0.0',
      sessions: { total: 2, healthy: 1, crashed: 1, errored: 0, abnormal: 0, movedByRollout: 0, active: 0 },
      users: 2,
      crashFreeSessions: 0.5,
      crashFreeUsers: 0.5,
      erroredRate: 0,
    });
    const { sessions } = await sessionsOf('rh-crash', '1.0.0');
    expect(sessions.map((s) => [s.status, s.endReason]).sort()).toEqual([
      ['crashed', 'upstream-failure'],
      ['healthy', 'delete'],
    ]);
    expect(sessions.every((s) => typeof s.durationMs === 'number' && s.user !== null)).toBe(true);

    // The comparison carries the same release health beside its latency and error figures.
    const compare = await call(
      '/servers/rh-crash/compare?candidate=1.0.0&baseline=1.0.0&environment=development&window=1h',
    );
    expect(compare.statusCode, compare.body).toBe(200);
    expect((compare.json() as { sessions: unknown }).sessions).toMatchObject({
      candidate: {
        sessions: { total: 2, crashed: 1 },
        users: 2,
        crashFreeSessions: 0.5,
        crashFreeUsers: 0.5,
      },
      baseline: { crashFreeSessions: 0.5 },
    });
    const noEnvironment = await call('/servers/rh-crash/compare?candidate=1.0.0&baseline=1.0.0&window=1h');
    expect((noEnvironment.json() as { sessions: unknown }).sessions).toBeNull();
  });

  it('counts a session once when its rows are written again by another writer', async () => {
    await serverWith('rh-twice', ['1.0.0']);
    const s = await open('rh-twice');
    await s.client.callTool({ name: 'broken', arguments: {} });
    await end(s);
    await until(async () => (await health('rh-twice')).versions[0]?.sessions.errored === 1, {
      what: 'the session',
    });
    const before = await health('rh-twice');
    const select = async <T>(table: string) =>
      (
        await stores.warehouse.client.query({
          query: `SELECT * FROM ${table} WHERE server = {server:String}`,
          query_params: { server: 'rh-twice' },
          format: 'JSONEachRow',
        })
      ).json<T>();
    const requests = await select<RequestRow>('requests');
    const events = await select<SessionEventRow>('session_events');
    expect(events.map((e) => e.event).sort()).toEqual(['end', 'start']);
    // A second gateway's writer (its own insert tokens) stores the same rows again.
    const writer = new TelemetryWriter(stores.warehouse, {
      dataDir: stores.dir,
      spoolDir: `${stores.dir}/spool-2`,
      wal: false,
      flushIntervalMs: 10,
    });
    await writer.writeRequests(
      requests.map((r) => ({ ...r, time: new Date(`${r.time.replace(' ', 'T')}Z`).toISOString() })),
    );
    await writer.writeSessionEvents(
      events.map((e) => ({ ...e, time: new Date(`${e.time.replace(' ', 'T')}Z`).toISOString() })),
    );
    await writer.close();
    expect((await select<RequestRow>('requests')).length).toBe(requests.length * 2);
    const after = await health('rh-twice');
    expect(after.versions).toEqual(before.versions);
    expect(after.versions[0]?.sessions).toMatchObject({ total: 1, errored: 1 });
  });

  it('moves adoption to a canary as it is promoted', async () => {
    await serverWith('rh-adopt', ['1.0.0', '1.1.0']);
    for (let i = 0; i < 3; i++) await end(await open('rh-adopt'));
    const deployment = await canary('rh-adopt', '1.1.0', 50);
    const { on, others } = await openOn('rh-adopt', '1.1.0', 1);
    const stable = 3 + others.length;
    await until(async () => total(await health('rh-adopt')) === stable + 1, {
      what: 'the canary’s sessions',
    });
    let h = await health('rh-adopt');
    const share = (version: string) => h.versions.find((v) => v.version === version)?.adoption.sessions;
    expect(share('1.1.0')).toBeCloseTo(1 / (stable + 1));
    expect(share('1.0.0')).toBeCloseTo(stable / (stable + 1));

    await ok('POST', `/servers/rh-adopt/deployments/${deployment.id}/promote`, {});
    // At 100 % every new session lands on 1.1.0, once the gateway hears of the promotion.
    const promoted = [...on];
    let streak = 0;
    await until(
      async () => {
        const s = await open('rh-adopt');
        if (s.version === '1.1.0') promoted.push(s);
        else others.push(s);
        streak = s.version === '1.1.0' ? streak + 1 : 0;
        return streak >= 8 && promoted.length >= 12;
      },
      { what: 'the promotion at the gateway' },
    );
    const stableNow = 3 + others.length;
    await until(async () => total(await health('rh-adopt')) === stableNow + promoted.length, {
      what: 'the promoted sessions',
    });
    h = await health('rh-adopt');
    expect(share('1.1.0')).toBeCloseTo(promoted.length / (stableNow + promoted.length));
    expect(share('1.1.0')).toBeGreaterThan(0.5);
    expect(h.versions.find((v) => v.version === '1.1.0')?.stage).toBe('adopted');
  });
});

describe('bad input', () => {
  it('answers 404 for an unknown server or environment, 400 for a bad window or query', async () => {
    await ok('POST', '/servers', { slug: 'rh-input' });
    const unknownServer = await call('/servers/nope/release-health?environment=development');
    expect(unknownServer.statusCode).toBe(404);
    expect(unknownServer.json()).toMatchObject({ code: 'server-not-found' });
    const unknownEnv = await call('/servers/rh-input/release-health?environment=moon');
    expect(unknownEnv.statusCode).toBe(404);
    expect(unknownEnv.json().detail).toMatch(/environment moon/);
    // The figures read the rollups of settled sessions, kept 90 days; the sessions list raw states, 7.
    for (const [window, detail] of [
      ['91d', /at most 90d/],
      ['0s', /not a duration/],
      ['soon', /not a duration/],
    ] as const) {
      const res = await call(`/servers/rh-input/release-health?environment=development&window=${window}`);
      expect(res.statusCode, window).toBe(400);
      expect(res.json().detail).toMatch(detail);
    }
    expect(
      (await call('/servers/rh-input/release-health?environment=development&window=30d')).statusCode,
    ).toBe(200);
    // The limit is the retention in force (the TTLs of session_states and session_rollups).
    await applyRetention(stores.warehouse, { ...DEFAULT_RETENTION, rawDays: 3, minuteDays: 3 });
    const longer = await call('/servers/rh-input/release-health?environment=development&window=4d');
    await applyRetention(stores.warehouse, DEFAULT_RETENTION);
    expect(longer.statusCode).toBe(400);
    expect(longer.json().detail).toMatch(/at most 3d/);
    await ok('POST', '/servers/rh-input/versions', { version: '1.0.0' });
    const unknownVersion = await call('/servers/rh-input/versions/9.9.9/sessions?environment=development');
    expect(unknownVersion.statusCode).toBe(404);
    expect(unknownVersion.json()).toMatchObject({ code: 'version-not-found' });
    const none = await call('/servers/rh-input/versions/1.0.0/sessions?environment=development&window=1h');
    expect(none.statusCode).toBe(200);
    expect(none.json()).toMatchObject({ version: '1.0.0', stepSeconds: 60, sessions: [] });
    expect((none.json() as Sessions).series.length).toBeGreaterThanOrEqual(60);
    const longList = await call(
      '/servers/rh-input/versions/1.0.0/sessions?environment=development&window=8d',
    );
    expect(longList.statusCode).toBe(400);
    expect(longList.json().detail).toMatch(/at most 7d, the retention of raw session data/);
    const tooMany = await call('/servers/rh-input/versions/1.0.0/sessions?environment=development&limit=501');
    expect(tooMany.statusCode).toBe(400);
    const extra = await call('/servers/rh-input/release-health?environment=development&version=1.0.0');
    expect(extra.statusCode).toBe(400);
    const empty = await call('/servers/rh-input/release-health?environment=development&window=6h');
    expect(empty.statusCode).toBe(200);
    expect(empty.json()).toMatchObject({
      server: 'rh-input',
      environment: 'development',
      versions: [],
      average: { crashFreeSessions: null, crashFreeUsers: null, erroredRate: null },
    });
  });
});
