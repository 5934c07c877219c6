import type { AddressInfo } from 'node:net';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext } from '#cli/client.ts';
import { versionCommands } from '#cli/commands/versions.ts';
import { configurationEvents } from '#core/changes/index.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { saveToolSnapshot } from '#core/health/tools.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { HEALTHY, requestRows } from '#test/canary/telemetry.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores } from '#test/helpers/stores.ts';

// `GET …/changes` and compare's `changes` over real stores: a server whose 2.0.0 bumps, adds and
// drops packages, moves its remote, declares an input and breaks its contract, with variables and
// secrets set at every scope (and some that must not show: another environment, another server,
// another version). Every secret value below is a string the whole answer must never contain.

const SECRETS = [
  'hunter2-plain-db-password',
  'hunter3-plain-db-password',
  'sk-baseline-9f8e7d',
  'sk-candidate-1a2b3c',
];

const pkg = (registryType: string, identifier: string, version: string, env: object[] = []) => ({
  registryType,
  identifier,
  version,
  transport: { type: 'stdio' },
  ...(env.length ? { environmentVariables: env } : {}),
});
const TIMEOUT = { name: 'TIMEOUT_MS', default: '30000' };
const DB_PASSWORD = { name: 'DB_PASSWORD', isRequired: true, isSecret: true };
const remote = (url: string) => ({
  type: 'streamable-http',
  url,
  headers: [{ name: 'Authorization', isSecret: true, isRequired: true }],
});
const tool = (name: string, required: string[]) => ({
  name,
  inputSchema: {
    type: 'object',
    properties: { amount: { type: 'number' }, currency: { type: 'string' } },
    required,
  },
});

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let writer: TelemetryWriter;
beforeAll(async () => {
  stores = await openTestStores();
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
});
afterAll(async () => {
  await writer?.close();
  await stores?.close();
});

describe.each(DB_DRIVERS)('what changed on $name', (driver) => {
  let db: Db;
  let cleanup: (() => Promise<void>) | undefined;
  let api: TestApi;
  let alice: string;
  let reader: string;
  const call = async (
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    token = BOOTSTRAP_TOKEN,
  ) => {
    const res = await api.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: bearer(token),
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, body: res.body, json: () => res.json() as Record<string, unknown> };
  };
  const ok = async (
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    token = BOOTSTRAP_TOKEN,
  ) => {
    const res = await call(method, url, body, token);
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${res.body}`);
    return res.json();
  };
  const set = (path: string, name: string, value: string, environment?: string) =>
    ok('PUT', `${path}/${name}${environment ? `?environment=${environment}` : ''}`, { value }, alice);

  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
    alice = await api.token(['write'], { name: 'alice' });
    reader = await api.token(['read'], { name: 'reader' });
    const ci = await api.token(['write'], { name: 'ci' });

    await ok('POST', '/servers', { slug: 'payments', name: 'Payments' });
    await ok('POST', '/servers', { slug: 'ledger', name: 'Ledger' });
    await ok('POST', '/servers/payments/versions', { version: '1.1.0', status: 'stable' }, ci);
    await ok(
      'POST',
      '/servers/payments/versions',
      {
        version: '1.3.0',
        status: 'stable',
        packages: [
          pkg('npm', '@acme/db', '2.1.0', [TIMEOUT, DB_PASSWORD]),
          pkg('npm', '@acme/legacy', '1.0.0'),
          pkg('pypi', 'acme-tools', '1.4.2'),
        ],
        remotes: [remote('https://a.example.com/mcp')],
      },
      ci,
    );
    await ok(
      'POST',
      '/servers/payments/versions',
      {
        version: '2.0.0',
        status: 'stable',
        breaking: true,
        migrationGuide: '# Move to the v2 charge API\n\nPass currency with every charge.',
        packages: [
          pkg('npm', '@acme/db', '3.0.0', [TIMEOUT, DB_PASSWORD, { name: 'POOL_SIZE', default: '10' }]),
          pkg('pypi', 'acme-tools', '1.5.0'),
          pkg('npm', '@acme/cache', '0.3.0'),
        ],
        remotes: [remote('https://b.example.com/mcp')],
      },
      ci,
    );

    const server = '/servers/payments';
    await set('/variables', 'ORG_REGION', 'eu');
    await set(`${server}/variables`, 'LOG_LEVEL', 'info');
    await set(`${server}/variables`, 'TIMEOUT_MS', '30000', 'production');
    await set(`${server}/variables`, 'TIMEOUT_MS', '1', 'staging'); // another environment
    await set('/servers/ledger/variables', 'LOG_LEVEL', 'debug', 'production'); // another server
    await set(`${server}/versions/1.1.0/variables`, 'OLD_FLAG', '1'); // another version
    await set(`${server}/versions/1.3.0/variables`, 'FEATURE_MODE', 'classic');
    await set(`${server}/versions/2.0.0/variables`, 'FEATURE_MODE', 'v2');
    await set(`${server}/versions/1.3.0/secrets`, 'API_KEY', SECRETS[2] as string);
    await set(`${server}/versions/2.0.0/secrets`, 'API_KEY', SECRETS[3] as string);
    await set(`${server}/secrets`, 'DB_PASSWORD', SECRETS[0] as string, 'production');
    await set(`${server}/variables`, 'TIMEOUT_MS', '5000', 'production');
    await set(`${server}/secrets`, 'DB_PASSWORD', SECRETS[1] as string, 'production');
    await set('/variables', 'SENTRY_ENV', 'prod', 'production');
    await set('/variables', 'SENTRY_ENV', 'stage', 'staging'); // another environment
    await ok('DELETE', `${server}/variables/LOG_LEVEL`, undefined, alice);

    const snapshot = (version: string, tools: object[]) =>
      saveToolSnapshot(db, api.org.id, {
        server: 'payments',
        environment: 'production',
        version,
        checkId: null,
        protocolVersion: '2025-11-25',
        serverInfo: null,
        tools: tools as never,
        toolsHash: version,
        observedAt: new Date().toISOString(),
      });
    await snapshot('1.3.0', [tool('charge', ['amount']), tool('refund', ['amount'])]);
    await snapshot('2.0.0', [tool('charge', ['amount', 'currency'])]);
  });

  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  const CHANGES = '/servers/payments/changes?baseline=1.3.0&candidate=2.0.0&environment=production';
  const project = (rows: Record<string, unknown>[]) =>
    rows.map(({ kind, name, before, after, scope, actor }) => [kind, name, before, after, scope, actor]);

  it('lists exactly the seeded package, remote, variable, secret, contract and configuration changes', async () => {
    const res = await call('GET', CHANGES, undefined, reader);
    expect(res.status).toBe(200);
    for (const secret of SECRETS) expect(res.body).not.toContain(secret);
    const body = res.json() as { changes: Record<string, unknown>[]; [k: string]: unknown };
    expect(body).toMatchObject({
      server: 'payments',
      baseline: '1.3.0',
      candidate: '2.0.0',
      environment: 'production',
      contractCompared: true,
    });
    const v2 = 'version 2.0.0';
    expect(project(body.changes)).toEqual([
      ['breaking', 'breaking', 'no', 'yes', v2, 'ci'],
      ['package-removed', '@acme/legacy', '1.0.0', null, v2, 'ci'],
      ['package-changed', '@acme/db', '2.1.0', '3.0.0', v2, 'ci'],
      ['package-changed', 'acme-tools', '1.4.2', '1.5.0', v2, 'ci'],
      ['package-added', '@acme/cache', null, '0.3.0', v2, 'ci'],
      [
        'remote-changed',
        'https://b.example.com/mcp',
        'https://a.example.com/mcp',
        'https://b.example.com/mcp',
        v2,
        'ci',
      ],
      ['variable-declared', 'POOL_SIZE', null, 'optional, default 10', v2, 'ci'],
      ['secret-changed', 'API_KEY', 'set', 'changed', v2, 'alice'],
      ['resolved-variable-changed', 'FEATURE_MODE', 'classic', 'v2', v2, 'alice'],
      ['resolved-variable-changed', 'POOL_SIZE', null, '10', 'default', null],
      ['contract', 'refund', null, null, v2, null],
      ['contract', 'charge currency', null, null, v2, null],
      ['configuration-event', 'ORG_REGION', null, 'eu', 'org', 'alice'],
      ['configuration-event', 'LOG_LEVEL', null, 'info', 'server', 'alice'],
      ['configuration-event', 'TIMEOUT_MS', null, '30000', 'server+production', 'alice'],
      ['configuration-event', 'FEATURE_MODE', null, 'classic', 'version 1.3.0', 'alice'],
      ['configuration-event', 'FEATURE_MODE', null, 'v2', v2, 'alice'],
      ['configuration-event', 'API_KEY', 'unset', 'set', 'version 1.3.0', 'alice'],
      ['configuration-event', 'API_KEY', 'unset', 'set', v2, 'alice'],
      ['configuration-event', 'DB_PASSWORD', 'unset', 'set', 'server+production', 'alice'],
      ['configuration-event', 'TIMEOUT_MS', '30000', '5000', 'server+production', 'alice'],
      ['configuration-event', 'DB_PASSWORD', 'set', 'rotated', 'server+production', 'alice'],
      ['configuration-event', 'SENTRY_ENV', null, 'prod', 'org+production', 'alice'],
      ['configuration-event', 'LOG_LEVEL', 'info', null, 'server', 'alice'],
    ]);
    const by = (name: string, kind: string) => body.changes.find((r) => r.name === name && r.kind === kind);
    expect(by('@acme/db', 'package-changed')).toMatchObject({
      distance: 'major',
      detail: 'npm, major, environment +POOL_SIZE',
    });
    expect(by('acme-tools', 'package-changed')).toMatchObject({ distance: 'minor', detail: 'pypi, minor' });
    expect(by('breaking', 'breaking')).toMatchObject({
      breaking: true,
      detail: 'migration guide: Move to the v2 charge API',
    });
    expect(by('refund', 'contract')).toMatchObject({ breaking: true, detail: 'tool refund was removed' });
    expect(by('API_KEY', 'secret-changed')?.detail).toMatch(
      /^fingerprint sha256:[0-9a-f]{12} → sha256:[0-9a-f]{12}$/,
    );
    expect(by('DB_PASSWORD', 'configuration-event')).toMatchObject({ detail: 'secret set (revision 1)' });
    expect(body.changes.every((r) => typeof r.at === 'string' || r.at === null)).toBe(true);
    expect(body.summary).toMatch(
      /^Changed: breaking version; @acme\/db 2\.1\.0 → 3\.0\.0; tool refund was removed; \d+ more$/,
    );
  });

  it('gives compare the same rows', async () => {
    const compare = await call(
      'GET',
      '/servers/payments/compare?baseline=1.3.0&candidate=2.0.0&environment=production',
      undefined,
      reader,
    );
    expect(compare.status).toBe(200);
    for (const secret of SECRETS) expect(compare.body).not.toContain(secret);
    const changes = (await ok('GET', CHANGES, undefined, reader)).changes;
    expect((compare.json() as { changes: unknown }).changes).toEqual(changes);
    // A version the registry does not know (telemetry only) has no changes to show.
    const unregistered = await ok(
      'GET',
      '/servers/payments/compare?baseline=1.3.0&candidate=9.0.0',
      undefined,
      reader,
    );
    expect(unregistered.changes).toBeNull();
  });

  it('resolves for no environment when none is given, and narrows the events window', async () => {
    const body = (await ok(
      'GET',
      '/servers/payments/changes?baseline=1.3.0&candidate=2.0.0&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z',
      undefined,
      reader,
    )) as {
      changes: { kind: string; name: string }[];
      environment: null;
    };
    expect(body.environment).toBeNull();
    expect(body.changes.filter((r) => r.kind === 'configuration-event')).toEqual([]);
    expect(body.changes.filter((r) => r.kind === 'resolved-variable-changed').map((r) => r.name)).toEqual([
      'FEATURE_MODE',
      'POOL_SIZE',
    ]);
  });

  it('defaults the baseline to the stable version compare picks', async () => {
    expect(
      (await call('GET', '/servers/payments/changes?candidate=2.0.0', undefined, reader)).json(),
    ).toMatchObject({
      status: 400,
      code: 'baseline-required',
    });
    expect(
      (
        await call('GET', '/servers/payments/changes?candidate=2.0.0&environment=canary', undefined, reader)
      ).json(),
    ).toMatchObject({ status: 404, code: 'no-baseline' });
    const scope = { orgId: api.org.id, server: 'payments', environment: 'production', version: '1.3.0' };
    await writer.writeRequests(
      requestRows(scope, HEALTHY, { from: Date.now() - 20 * 60_000, minutes: 2 }, 7),
    );
    await writer.flush();
    expect(
      await ok('GET', '/servers/payments/changes?candidate=2.0.0&environment=production', undefined, reader),
    ).toMatchObject({
      baseline: '1.3.0',
      candidate: '2.0.0',
    });
  });

  it('answers 404 for another org, an unknown server or version', async () => {
    const other = (await ok('POST', '/orgs', { slug: `other-${driver.name}` })) as { token: string };
    const res = await call('GET', CHANGES, undefined, other.token);
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ code: 'server-not-found' });
    // The other org's own server of that name does not open this org's versions either.
    await ok('POST', '/servers', { slug: 'payments', name: 'Theirs' }, other.token);
    await ok('POST', '/servers/payments/versions', { version: '9.9.9' }, other.token);
    expect((await call('GET', CHANGES, undefined, other.token)).json()).toMatchObject({
      status: 404,
      code: 'version-not-found',
    });
    expect(
      (
        await call('GET', '/servers/payments/changes?baseline=1.3.0&candidate=9.9.9', undefined, reader)
      ).json(),
    ).toMatchObject({ status: 404, code: 'version-not-found' });
    expect(
      (await call('GET', '/servers/nope/changes?baseline=1.3.0&candidate=2.0.0', undefined, reader)).status,
    ).toBe(404);
    const limited = await api.token(['read'], { servers: ['ledger'], name: 'ledger-only' });
    expect((await call('GET', CHANGES, undefined, limited)).status).toBe(404);
  });

  it.each([
    ['an unknown parameter', `${CHANGES}&secret=1`, /secret/],
    ['no candidate', '/servers/payments/changes?baseline=1.3.0', /candidate/],
    [
      'a bad environment',
      '/servers/payments/changes?baseline=1.3.0&candidate=2.0.0&environment=Prod!',
      /environment/,
    ],
    ['a bad time', `${CHANGES}&from=yesterday`, /from/],
    ['a bad window', `${CHANGES}&window=week`, /window/],
    ['from after to', `${CHANGES}&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z`, /before/],
  ])('answers 400 for %s', async (_what, url, names) => {
    const res = await call('GET', url, undefined, reader);
    expect(res.status).toBe(400);
    // The detail, or for an unknown parameter the problem's errors[].property, names the field.
    expect(JSON.stringify(res.json())).toMatch(names);
  });

  it('needs a token', async () => {
    const res = await api.app.inject({ method: 'GET', url: `/api/v1${CHANGES}` });
    expect(res.statusCode).toBe(401);
  });

  it('exposes configurationEvents for correlation messages', async () => {
    const events = await configurationEvents(db, api.org.id, {
      server: 'payments',
      environment: 'production',
      from: new Date(Date.now() - 3_600_000),
      to: new Date(Date.now() + 1000),
    });
    const rotated = events.find((e) => e.name === 'DB_PASSWORD' && e.action === 'rotated');
    expect(rotated).toMatchObject({
      actor: 'alice',
      secret: true,
      scope: 'server-environment',
      scopeLabel: 'server+production',
      environment: 'production',
      revision: 2,
      text: 'secret DB_PASSWORD was rotated in production',
    });
    // Without `versions`, every version's scope of the server counts.
    expect(events.some((e) => e.name === 'OLD_FLAG')).toBe(true);
    expect(events.some((e) => e.environment === 'staging')).toBe(false);
    expect(JSON.stringify(events)).not.toMatch(new RegExp(SECRETS.join('|')));
  });

  describe('pylee versions changes', () => {
    let url: string;
    beforeAll(async () => {
      await api.app.listen({ port: 0, host: '127.0.0.1' });
      url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    });

    async function run(flags: Record<string, string | boolean>) {
      const command = versionCommands.find((c) => c.name === 'versions changes');
      if (!command) throw new Error('versions changes');
      const out: string[] = [];
      const ctx: CommandContext = {
        positionals: ['payments'],
        flags,
        client: { url, token: reader, tokenSource: 'flag' },
        json: false,
        print: (_json, text) => out.push(text),
        warn: () => {},
        usage: (message) => {
          throw new Error(`usage: ${message}`);
        },
      };
      await command.run(ctx);
      return out.join('\n');
    }

    it('prints a table of the changes', async () => {
      const text = await run({ candidate: '2.0.0', baseline: '1.3.0', environment: 'production' });
      expect(text).toMatch(/^1\.3\.0 → 2\.0\.0 in production/);
      expect(text).toMatch(/package-changed\s+@acme\/db\s+2\.1\.0 → 3\.0\.0\s+version 2\.0\.0\s+ci/);
      expect(text).toMatch(/configuration-event\s+DB_PASSWORD\s+set → rotated\s+server\+production\s+alice/);
      expect(text).toMatch(/^Changed: breaking version/m);
      for (const secret of SECRETS) expect(text).not.toContain(secret);
    });

    it('prints JSON with --format json and refuses another format', async () => {
      const json = JSON.parse(await run({ candidate: '2.0.0', baseline: '1.3.0', format: 'json' })) as {
        changes: unknown[];
      };
      expect(json.changes.length).toBeGreaterThan(0);
      await expect(run({ candidate: '2.0.0', format: 'yaml' })).rejects.toThrow(/--format yaml/);
    });
  });
});
