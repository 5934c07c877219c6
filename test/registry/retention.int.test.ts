import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkers } from '#alerts/workers.ts';
import { retentionApplyProcessor } from '#alerts/processors/retention-apply.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { systemPrincipal } from '#core/orgs.ts';
import { applyRetention } from '#core/registry/retention.ts';
import { putLine } from '#core/registry/server-lines.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { pyleeEnv, runPylee } from '#test/helpers/pylee-process.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';

// Version retention over real stores: policies through the API (bad inputs, permissions, another
// org's server), the dry run listing exactly what a seeded history should lose and keep with the
// reasons, the daily job retiring it (audited with the policy, actor pylee) and a second run doing
// nothing, two runs at once, and the job through a real BullMQ worker.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Decision {
  version: string;
  status: string;
  line: string;
  reasons: string[];
}
interface Preview {
  server: string;
  policy: { id: string; scope: string; keepPerLine: number } | null;
  retire: Decision[];
  keep: Decision[];
}

let stores: Stores;
// The stores' own Postgres is the PGlite driver's, so the file opens one PGlite, not two.
let pglite: Awaited<ReturnType<(typeof DB_DRIVERS)[number]['open']>>;
beforeAll(async () => {
  pglite = await (DB_DRIVERS[0] as (typeof DB_DRIVERS)[number]).open();
  stores = await openTestStores({ db: pglite.db });
});
afterAll(async () => {
  await stores?.close();
  await pglite?.cleanup();
});

describe.each(DB_DRIVERS)('version retention on $name', (driver) => {
  let db: Db;
  let cleanup: (() => Promise<void>) | undefined;
  let api: TestApi;
  let readOnly: string;

  async function call(method: Method, url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
    const options: InjectOptions = { method, url: `/api/v1${url}`, headers: bearer(token) };
    if (payload !== undefined) options.payload = payload;
    return api.app.inject(options);
  }
  async function ok<T = Record<string, unknown>>(method: Method, url: string, payload?: object) {
    const res = await call(method, url, payload);
    expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    return res.json() as T;
  }
  const versions = (server: string, list: string[]) =>
    Promise.all(
      list.map((version) =>
        ok('POST', `/servers/${server}/versions`, {
          version,
          ...(version.includes('-') ? {} : { status: 'stable' }),
        }),
      ),
    );
  const deploy = (server: string, version: string, environment: string, extra: object = {}) =>
    ok<{ id: string; status: string }>('POST', `/servers/${server}/deployments`, {
      version,
      environment,
      ...extra,
    });
  const approval = {
    strategy: 'canary',
    steps: [{ weight: 10, pause: { approval: true } }, { weight: 100 }],
  };
  /** Moves a server's whole deployment history `days` into the past. */
  async function age(server: string, days: number) {
    const shift = `interval '${days} days'`;
    const sub = `(SELECT id FROM servers WHERE slug = $1)`;
    await db.query(
      `UPDATE environment_releases SET released_at = released_at - ${shift}, replaced_at = replaced_at - ${shift}
       WHERE server_id = ${sub}`,
      [server],
    );
    await db.query(`UPDATE deployments SET created_at = created_at - ${shift} WHERE server_id = ${sub}`, [
      server,
    ]);
  }
  const statuses = async (server: string) =>
    Object.fromEntries(
      (
        await db.query<{ version: string; status: string }>(
          'SELECT v.version, v.status FROM versions v JOIN servers s ON s.id = v.server_id WHERE s.slug = $1',
          [server],
        )
      ).map((r) => [r.version, r.status]),
    );

  let openId: string;
  beforeAll(async () => {
    if (driver.name === 'pglite') db = stores.db;
    else {
      const opened = await driver.open();
      db = opened.db;
      cleanup = opened.cleanup;
      await migrateDb(db);
    }
    api = await buildTestApi({ ...stores, db });
    readOnly = await api.token(['read']);

    await ok('POST', '/servers', { slug: 'weather', name: 'Weather' });
    await putLine(db, { principal: systemPrincipal(api.org) }, 'weather', { pattern: '1.4.x' });
    await versions('weather', [
      '0.9.0',
      '1.0.0',
      '1.1.0',
      '1.2.0',
      '1.2.1',
      '1.2.2',
      '1.3.0',
      '1.4.0',
      '1.5.0',
      '2.0.0-rc.1',
      '2.0.0-rc.2',
      '2.0.0',
      '2.1.0',
      '2.2.0',
    ]);
    await ok('PATCH', '/servers/weather/versions/0.9.0', { status: 'retired', reason: 'end of life' });
    // Two months ago: production ran 1.0.0 then 1.1.0; development 1.2.1, 1.2.2, then 2.2.0; staging
    // runs 2.0.0-rc.1 with a canary of 1.2.0 still waiting for approval there.
    await deploy('weather', '1.0.0', 'production');
    await deploy('weather', '1.1.0', 'production');
    await deploy('weather', '1.2.1', 'development');
    await deploy('weather', '1.2.2', 'development');
    await deploy('weather', '2.2.0', 'development');
    await deploy('weather', '2.0.0-rc.1', 'staging');
    openId = (await deploy('weather', '1.2.0', 'staging', approval)).id;
    await age('weather', 60);
    // Today: a canary of 2.0.0 that was aborted (deployed, never ran at 100 %).
    const aborted = await deploy('weather', '2.0.0', 'canary', approval);
    await ok('POST', `/servers/weather/deployments/${aborted.id}/abort`, { reason: 'test' });
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  it('has no policy at first: the preview keeps everything, saying so', async () => {
    expect(await ok('GET', '/servers/weather/retention')).toEqual({
      server: 'weather',
      policy: null,
      orgDefault: null,
      effective: null,
    });
    const preview = await ok<Preview>('GET', '/servers/weather/retention/preview');
    expect(preview.policy).toBeNull();
    expect(preview.retire).toEqual([]);
    expect(preview.keep.find((d) => d.version === '1.2.1')?.reasons).toEqual(['no retention policy applies']);
    expect(preview.keep.find((d) => d.version === '0.9.0')?.reasons).toEqual(['already retired']);
  });

  it('refuses bad policies with why, and changes nothing', async () => {
    const zero = await call('PUT', '/servers/weather/retention', {
      keepPerLine: 0,
      keepDeployedWithinDays: 30,
    });
    expect(zero.statusCode).toBe(400);
    expect(zero.json()).toMatchObject({ code: 'invalid-retention', field: 'keepPerLine' });
    expect(zero.json().detail).toMatch(/keepPerLine 0 would keep no version of a line/);
    const negative = await call('PUT', '/retention', { keepPerLine: 2, keepDeployedWithinDays: -1 });
    expect(negative.statusCode).toBe(400);
    expect(negative.json().detail).toMatch(/keepDeployedWithinDays must be a whole number of days from 0/);
    const unknown = await call('PUT', '/servers/weather/retention', {
      keepPerLine: 2,
      keepDeployedWithinDays: 30,
      keepForever: true,
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors[0]).toMatchObject({ property: 'keepForever' });
    const missing = await call('PUT', '/retention', { keepPerLine: 2 });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().detail).toMatch(/keepDeployedWithinDays/);
    const fraction = await call('PUT', '/retention', { keepPerLine: 1.5, keepDeployedWithinDays: 3 });
    expect(fraction.statusCode).toBe(400);
    // A read token may look, not change.
    const denied = await call(
      'PUT',
      '/servers/weather/retention',
      { keepPerLine: 2, keepDeployedWithinDays: 30 },
      readOnly,
    );
    expect(denied.statusCode).toBe(403);
    expect((await call('DELETE', '/retention', undefined, readOnly)).statusCode).toBe(403);
    // A token limited to some servers may set their policies, not the org default every server gets.
    const limited = await api.token(['write'], { servers: ['weather'], name: 'weather-only' });
    const orgWide = await call('PUT', '/retention', { keepPerLine: 2, keepDeployedWithinDays: 30 }, limited);
    expect(orgWide.statusCode).toBe(403);
    expect(orgWide.json()).toMatchObject({ code: 'org-wide-change' });
    expect((await call('GET', '/servers/weather/retention/preview', undefined, readOnly)).statusCode).toBe(
      200,
    );
    expect((await call('DELETE', '/servers/weather/retention')).statusCode).toBe(404);
    expect(await db.query('SELECT * FROM retention_policies')).toEqual([]);
    expect(await db.query(`SELECT * FROM audit_events WHERE action LIKE 'retention.%'`)).toEqual([]);
  });

  it("answers 404 for an unknown server and another org's", async () => {
    for (const url of ['/servers/nope/retention', '/servers/nope/retention/preview']) {
      expect((await call('GET', url)).statusCode).toBe(404);
    }
    expect(
      (await call('PUT', '/servers/nope/retention', { keepPerLine: 2, keepDeployedWithinDays: 1 }))
        .statusCode,
    ).toBe(404);
    // A server of another org is the same 404 as a missing one.
    const [other] = await db.query<{ id: string }>(
      `INSERT INTO orgs (id, slug, name) VALUES (gen_random_uuid(), 'retention-other', 'Other') RETURNING id`,
    );
    await db.query(
      `INSERT INTO servers (id, org_id, slug, name) VALUES (gen_random_uuid(), $1, 'theirs', 'Theirs')`,
      [other?.id],
    );
    const theirs = await call('GET', '/servers/theirs/retention/preview');
    expect(theirs.statusCode).toBe(404);
    expect(theirs.json().code).toBe('server-not-found');
    expect(
      (await call('PUT', '/servers/theirs/retention', { keepPerLine: 2, keepDeployedWithinDays: 1 }))
        .statusCode,
    ).toBe(404);
  });

  it('an org default applies to servers without their own; a server policy replaces it', async () => {
    const org = await ok<{ id: string; scope: string; enabled: boolean }>('PUT', '/retention', {
      keepPerLine: 5,
      keepDeployedWithinDays: 90,
      enabled: false,
    });
    expect(org).toMatchObject({ scope: 'org', server: null, keepPerLine: 5, enabled: false });
    expect((await ok<{ effective: { id: string } }>('GET', '/servers/weather/retention')).effective.id).toBe(
      org.id,
    );
    const own = await ok<{ id: string }>('PUT', '/servers/weather/retention', {
      keepPerLine: 2,
      keepDeployedWithinDays: 30,
    });
    expect(await ok('GET', '/servers/weather/retention')).toMatchObject({
      policy: {
        id: own.id,
        scope: 'server',
        server: 'weather',
        keepPerLine: 2,
        keepDeployedWithinDays: 30,
        enabled: true,
      },
      orgDefault: { id: org.id },
      effective: { id: own.id },
    });
    expect(await ok('GET', '/retention')).toMatchObject({ policy: { id: org.id, keepPerLine: 5 } });
    const audit = await db.query<{ action: string; target_name: string; actor_name: string }>(
      `SELECT action, target_name, actor_name FROM audit_events WHERE action LIKE 'retention.%' ORDER BY seq`,
    );
    expect(audit).toEqual([
      { action: 'retention.create', target_name: '@default', actor_name: 'bootstrap' },
      { action: 'retention.create', target_name: 'weather', actor_name: 'bootstrap' },
    ]);
  });

  it('the preview lists exactly what goes and what stays, with why', async () => {
    const preview = await ok<Preview>('GET', '/servers/weather/retention/preview');
    expect(preview.policy).toMatchObject({ scope: 'server', keepPerLine: 2 });
    expect(preview.retire.map((d) => [d.version, d.line])).toEqual([
      ['2.0.0-rc.2', '2.x'],
      ['1.2.1', '1.x'],
    ]);
    expect(preview.retire[1]?.reasons).toEqual([
      '4th newest of line 1.x, beyond the newest 2; not deployed anywhere in the last 30 days; not running, pinned or last known good anywhere',
    ]);
    const keep = Object.fromEntries(preview.keep.map((d) => [d.version, d.reasons]));
    expect(keep).toEqual({
      '2.2.0': ['running in development', 'newest 2 of line 2.x'],
      '2.1.0': ['newest 2 of line 2.x'],
      '2.0.0': ['deployed to canary less than an hour ago'],
      '2.0.0-rc.1': [
        'running in staging',
        `pinned by open deployment ${openId} (staging, the version it replaces)`,
      ],
      '1.5.0': ['newest 2 of line 1.x'],
      '1.4.0': ['newest 2 of line 1.4.x'],
      '1.3.0': ['newest 2 of line 1.x'],
      '1.2.2': ['last known good in development'],
      '1.2.0': [`pinned by open deployment ${openId} (staging)`],
      '1.1.0': ['running in production'],
      '1.0.0': ['last known good in production'],
      '0.9.0': ['already retired'],
    });
    // Nothing changed.
    expect((await statuses('weather'))['1.2.1']).toBe('stable');
  });

  it('the daily job retires them, audited with the policy; a second run does nothing', async () => {
    const processor = retentionApplyProcessor({ db, logger: silentLogger });
    const first = await processor({} as never);
    expect(first.retired).toEqual({ 'default/weather': ['2.0.0-rc.2', '1.2.1'] });
    const after = await statuses('weather');
    expect([after['2.0.0-rc.2'], after['1.2.1'], after['1.2.2'], after['1.0.0']]).toEqual([
      'retired',
      'retired',
      'stable',
      'stable',
    ]);
    const [own] = await db.query<{ id: string }>(
      'SELECT id FROM retention_policies WHERE server_id IS NOT NULL',
    );
    const audit = await db.query<{
      action: string;
      target_name: string;
      actor_name: string;
      actor_type: string;
      after: { reason?: string; policy?: { id: string } };
    }>(
      `SELECT action, target_name, actor_name, actor_type, after FROM audit_events
       WHERE action IN ('version.retire', 'retention.apply') AND actor_name = 'pylee' ORDER BY seq`,
    );
    expect(audit.map((a) => [a.action, a.target_name, a.actor_type])).toEqual([
      ['version.retire', 'weather@2.0.0-rc.2', 'system'],
      ['version.retire', 'weather@1.2.1', 'system'],
      ['retention.apply', 'weather', 'system'],
    ]);
    expect(audit[1]?.after.reason).toBe(
      `retired by weather's retention policy (keep the newest 2 per line and anything deployed in the last 30 days; policy ${own?.id}): 4th newest of line 1.x, beyond the newest 2; not deployed anywhere in the last 30 days; not running, pinned or last known good anywhere`,
    );
    expect(audit[2]?.after).toMatchObject({
      policy: { id: own?.id, scope: 'server', keepPerLine: 2 },
      retired: ['2.0.0-rc.2', '1.2.1'],
    });
    // The transition is on the version like a person's, with its actor and reason.
    const version = await ok<{
      status: string;
      transitions: { to: string; actor: string; reason: string }[];
    }>('GET', '/servers/weather/versions/1.2.1');
    expect(version.status).toBe('retired');
    expect(version.transitions.at(-1)).toMatchObject({ to: 'retired', actor: 'pylee' });

    const second = await applyRetention(db);
    expect(second.retired).toEqual({});
    expect((await ok<Preview>('GET', '/servers/weather/retention/preview')).retire).toEqual([]);
  });

  it('a disabled policy is skipped by the job; two runs at once retire each version once', async () => {
    await ok('POST', '/servers', { slug: 'tides', name: 'Tides' });
    await versions('tides', ['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    await ok('PUT', '/servers/tides/retention', {
      keepPerLine: 1,
      keepDeployedWithinDays: 0,
      enabled: false,
    });
    expect((await applyRetention(db)).retired).toEqual({});
    expect(
      (await ok<Preview>('GET', '/servers/tides/retention/preview')).retire.map((d) => d.version),
    ).toEqual(['1.2.0', '1.1.0', '1.0.0']);
    await ok('PUT', '/servers/tides/retention', { keepPerLine: 1, keepDeployedWithinDays: 0 });
    const runs = await Promise.all([applyRetention(db), applyRetention(db)]);
    expect(runs.flatMap((r) => r.retired['default/tides'] ?? []).sort()).toEqual(['1.0.0', '1.1.0', '1.2.0']);
    const retirements = await db.query<{ n: number }>(
      `SELECT count(*) AS n FROM audit_events WHERE action = 'version.retire' AND target_name LIKE 'tides@%'`,
    );
    expect(retirements).toEqual([{ n: 3 }]);
    // Removing the server's policy leaves it to the (disabled) org default: nothing more happens.
    expect((await ok('DELETE', '/servers/tides/retention')).scope).toBe('server');
    expect(
      (await ok<{ effective: { scope: string } }>('GET', '/servers/tides/retention')).effective.scope,
    ).toBe('org');
  });

  it('runs on a schedule in the alerts workers', async () => {
    await ok('POST', '/servers', { slug: 'scheduled', name: 'Scheduled' });
    await versions('scheduled', ['3.0.0', '3.1.0', '3.2.0']);
    await ok('PUT', '/servers/scheduled/retention', { keepPerLine: 2, keepDeployedWithinDays: 7 });
    const workers = await startWorkers({
      db,
      redis: stores.redis,
      logger: silentLogger,
      retentionEveryMs: 200,
    });
    try {
      await until(async () => (await statuses('scheduled'))['3.0.0'] === 'retired', {
        what: 'the scheduled retention run',
      });
    } finally {
      await workers.close();
    }
    expect(await statuses('scheduled')).toEqual({ '3.0.0': 'retired', '3.1.0': 'stable', '3.2.0': 'stable' });
  });

  it.runIf(driver.name === 'pglite')('pylee retention set, get, preview and delete', async () => {
    await ok('POST', '/servers', { slug: 'cli-demo', name: 'CLI demo' });
    await versions('cli-demo', ['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
    const env = pyleeEnv({
      PYLEE_URL: url,
      PYLEE_TOKEN: BOOTSTRAP_TOKEN,
      XDG_CONFIG_HOME: tempDir('pylee-retention-cli'),
    });
    const pylee = (...args: string[]) => runPylee(args, env);

    const set = await pylee(
      'retention',
      'set',
      'cli-demo',
      '--keep-per-line',
      '2',
      '--keep-deployed-days',
      '0',
      '--json',
    );
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({
      scope: 'server',
      server: 'cli-demo',
      keepPerLine: 2,
      enabled: true,
    });
    // Flags not given keep their value.
    const disabled = await pylee('retention', 'set', 'cli-demo', '--disable');
    expect(disabled.stdout).toContain(
      'keep the newest 2 per line and anything deployed in the last 0 days (disabled',
    );
    const preview = await pylee('retention', 'preview', 'cli-demo');
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toMatch(
      /would retire 2:\nVERSION +STATUS +LINE +WHY\n1\.1\.0 +stable +1\.x +3rd newest of line 1\.x/,
    );
    expect(preview.stdout).toMatch(/keeps 2:\n.*\n1\.3\.0 +stable +1\.x +newest 2 of line 1\.x/);
    const got = await pylee('retention', 'get', 'cli-demo');
    expect(got.stdout).toContain("applies: cli-demo's own policy");

    const zero = await pylee('retention', 'set', 'cli-demo', '--keep-per-line', '0');
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain('keepPerLine 0 would keep no version of a line');
    const typo = await pylee('retention', 'set', 'cli-demo', '--keep-per-line', 'three');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('--keep-per-line needs a whole number');

    // Without a server: the org default.
    const org = await pylee(
      'retention',
      'set',
      '--keep-per-line',
      '4',
      '--keep-deployed-days',
      '1',
      '--enable',
    );
    expect(org.stdout.trim()).toBe(
      'org default: keep the newest 4 per line and anything deployed in the last 1 day',
    );
    expect((await pylee('retention', 'get', '--json')).stdout).toContain('"keepPerLine": 4');

    const deleted = await pylee('retention', 'delete', 'cli-demo');
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await pylee('retention', 'delete', 'cli-demo')).code).toBe(1);
    expect(await statuses('cli-demo')).toEqual({
      '1.0.0': 'stable',
      '1.1.0': 'stable',
      '1.2.0': 'stable',
      '1.3.0': 'stable',
    });
  });
});
