import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
});
afterAll(async () => {
  await api?.app.close();
  await stores?.close();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(method: Method, url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
  const res = await api.app.inject({ method, url: `/api/v1${url}`, headers: bearer(token), payload });
  return { status: res.statusCode, body: (res.body ? res.json() : {}) as Body };
}
async function ok(method: Method, url: string, payload?: object) {
  const res = await call(method, url, payload);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
const count = async (table: string) =>
  Number((await stores.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n ?? 0);

const remote = (url: string) => [{ type: 'streamable-http', url }];

describe('server templates', () => {
  const T = '/templates/http-service';

  beforeAll(async () => {
    await ok('POST', '/templates', {
      slug: 'http-service',
      name: 'HTTP service',
      description: 'Our standard remote MCP server',
      owners: ['platform'],
    });
    await ok('POST', `${T}/versions`, {
      version: '1.0.0',
      status: 'stable',
      title: 'HTTP service',
      remotes: remote('https://mcp.example.com/v1'),
      variables: [
        { name: 'LOG_LEVEL', description: 'pino level', default: 'info' },
        { name: 'REGION', default: 'eu-west-1' },
      ],
      secrets: [{ name: 'API_KEY', description: 'upstream key' }],
    });
  });

  it('carries a server from 1.0.0 to 1.1.0: defaults, secrets, versions and usage', async () => {
    const created = await call('POST', '/servers', {
      slug: 'billing',
      template: '@default/http-service@1.0.0',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      slug: 'billing',
      template: '@default/http-service@1.0.0',
      secretsToProvide: ['API_KEY'],
    });
    const vars = (await ok('GET', '/servers/billing/variables')) as Body;
    const list = (vars.variables ?? vars) as { name: string; value?: string; scope: string }[];
    expect(list.map((v) => [v.name, v.value, v.scope])).toEqual([
      ['LOG_LEVEL', 'info', 'server'],
      ['REGION', 'eu-west-1', 'server'],
    ]);
    expect((await ok('GET', '/servers/billing')).template).toEqual({
      ref: '@default/http-service@1.0.0',
      latest: '1.0.0',
      behind: false,
      missingSecrets: ['API_KEY'],
    });

    // A version from the template starts from its config; the body's fields replace it.
    const v1 = await ok('POST', '/servers/billing/versions', {
      version: '1.0.0',
      template: '@default/http-service@1.0.0',
      websiteUrl: 'https://billing.example.com',
    });
    expect(v1).toMatchObject({
      template: '@default/http-service@1.0.0',
      title: 'HTTP service',
      websiteUrl: 'https://billing.example.com',
      remotes: remote('https://mcp.example.com/v1'),
      warnings: [],
    });

    await ok('POST', `${T}/versions`, {
      version: '1.1.0',
      status: 'stable',
      remotes: remote('https://mcp.example.com/v2'),
      variables: [{ name: 'LOG_LEVEL', default: 'warn' }],
      secrets: [{ name: 'API_KEY' }],
    });
    await ok('PUT', '/servers/billing/secrets/API_KEY', { value: 'sk-test-123' });
    expect(await ok('GET', `${T}/usage`)).toEqual({
      template: '@default/http-service',
      latest: '1.1.0',
      servers: [
        {
          server: 'billing',
          follows: '1.0.0',
          ref: '@default/http-service@1.0.0',
          behind: true,
          versions: [{ version: '1.0.0', status: 'development', template: '1.0.0' }],
          missingSecrets: [],
        },
      ],
    });
    expect((await ok('GET', '/templates')).templates).toEqual([
      expect.objectContaining({
        fullName: '@default/http-service',
        latest: '1.1.0',
        versionCount: 2,
        servers: 1,
        behind: 1,
      }),
    ]);

    const v2 = await ok('POST', '/servers/billing/versions', {
      version: '1.1.0',
      template: '@default/http-service@1.1.0',
    });
    expect(v2.remotes).toEqual(remote('https://mcp.example.com/v2'));
    const usage = await ok('GET', `${T}/usage`);
    expect(usage.servers[0]).toMatchObject({ follows: '1.1.0', behind: false });
    expect(usage.servers[0].versions.map((v: Body) => [v.version, v.template])).toEqual([
      ['1.1.0', '1.1.0'],
      ['1.0.0', '1.0.0'],
    ]);

    // Rebuilding from an older template version does not move the server back.
    await ok('POST', '/servers/billing/versions', {
      version: '1.0.1',
      template: '@default/http-service@1.0.0',
    });
    expect((await ok('GET', '/servers/billing')).template).toMatchObject({
      ref: '@default/http-service@1.1.0',
      behind: false,
    });
    // @org/slug alone is its latest stable version.
    expect(
      (await ok('POST', '/servers', { slug: 'ledger', template: '@default/http-service' })).template,
    ).toBe('@default/http-service@1.1.0');

    const detail = await ok('GET', T);
    expect(detail.versions.map((v: Body) => [v.version, v.status, v.servers])).toEqual([
      ['1.1.0', 'stable', 2],
      ['1.0.0', 'stable', 0],
    ]);
    expect(detail.versions[1]).toMatchObject({
      ref: '@default/http-service@1.0.0',
      config: { title: 'HTTP service', remotes: remote('https://mcp.example.com/v1') },
      variables: [
        { name: 'LOG_LEVEL', description: 'pino level', default: 'info' },
        { name: 'REGION', description: '', default: 'eu-west-1' },
      ],
      secrets: [{ name: 'API_KEY', description: 'upstream key' }],
    });
  });

  it('warns about a deprecated template version and refuses a retired one, storing nothing', async () => {
    await ok('POST', `${T}/versions`, { version: '0.9.0', status: 'stable' });
    const noMessage = await call('PATCH', `${T}/versions/0.9.0`, { status: 'deprecated' });
    expect(noMessage.status).toBe(400);
    expect(noMessage.body.detail).toMatch(/needs deprecation\.message/);
    const deprecated = await ok('PATCH', `${T}/versions/0.9.0`, {
      status: 'deprecated',
      deprecation: { message: 'move to 1.1.0' },
    });
    expect(deprecated).toMatchObject({ status: 'deprecated', deprecation: { message: 'move to 1.1.0' } });
    await ok('POST', '/servers', { slug: 'legacy' });
    const warned = await ok('POST', '/servers/legacy/versions', {
      version: '0.9.0',
      template: '@default/http-service@0.9.0',
    });
    expect(warned.warnings).toEqual([
      {
        code: 'template-deprecated',
        message: expect.stringContaining('template @default/http-service@0.9.0 is deprecated'),
      },
    ]);

    expect((await ok('PATCH', `${T}/versions/0.9.0`, { status: 'retired' })).status).toBe('retired');
    const [versions, servers] = [await count('versions'), await count('servers')];
    const retiredVersion = await call('POST', '/servers/legacy/versions', {
      version: '0.9.1',
      template: '@default/http-service@0.9.0',
    });
    expect(retiredVersion.status).toBe(409);
    expect(retiredVersion.body).toMatchObject({ code: 'template-retired' });
    const retiredServer = await call('POST', '/servers', {
      slug: 'from-retired',
      template: '@default/http-service@0.9.0',
    });
    expect(retiredServer.status).toBe(409);
    expect([await count('versions'), await count('servers')]).toEqual([versions, servers]);
    // Retired is final.
    const back = await call('PATCH', `${T}/versions/0.9.0`, { status: 'stable' });
    expect(back.status).toBe(409);
    expect(back.body.detail).toMatch(/retired is final/);
  });

  it('refuses bad references and input with a clear error, and creates nothing', async () => {
    const orgSlug = 'other-templates';
    const created = await call('POST', '/orgs', { slug: orgSlug });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const other = created.body.token as string;
    expect((await call('POST', '/templates', { slug: 'theirs' }, other)).status).toBe(201);
    expect(
      (await call('POST', '/templates/theirs/versions', { version: '1.0.0', status: 'stable' }, other))
        .status,
    ).toBe(201);
    // The other org sees none of ours.
    expect((await call('GET', '/templates', undefined, other)).body.templates).toEqual([
      expect.objectContaining({ fullName: `@${orgSlug}/theirs` }),
    ]);
    expect((await call('GET', T, undefined, other)).status).toBe(404);

    const before = [await count('servers'), await count('variables'), await count('template_versions')];
    const cases: [Method, string, object | undefined, number, string, RegExp][] = [
      [
        'POST',
        '/servers',
        { slug: 'x1', template: '@default/nope@1.0.0' },
        404,
        'template-not-found',
        /template @default\/nope was not found/,
      ],
      [
        'POST',
        '/servers',
        { slug: 'x2', template: '@default/http-service@7.0.0' },
        404,
        'template-version-not-found',
        /has no version 7\.0\.0/,
      ],
      [
        'POST',
        '/servers',
        { slug: 'x3', template: `@${orgSlug}/theirs@1.0.0` },
        404,
        'template-not-found',
        /was not found in @default/,
      ],
      [
        'POST',
        '/servers',
        { slug: 'x4', template: 'http-service' },
        400,
        'invalid-template-ref',
        /use @org\/name@version \(e\.g\. @default\/http-service@1\.2\.0\)/,
      ],
      [
        'POST',
        '/servers',
        { slug: 'x5', template: '@default/http-service@1.x' },
        400,
        'invalid-template-ref',
        /not semver/,
      ],
      [
        'POST',
        '/servers/billing/versions',
        { version: '2.0.0', from: '1.0.0', template: '@default/http-service@1.0.0' },
        400,
        'template-and-from',
        /not both/,
      ],
      ['POST', '/templates', { slug: 'Bad Slug' }, 400, 'invalid-slug', /lowercase letters/],
      ['POST', '/templates', { slug: 'http-service' }, 409, 'template-exists', /already exists/],
      ['POST', '/templates', { slug: 'extra', colour: 'blue' }, 400, 'invalid-request', /colour|additional/i],
      [
        'POST',
        `${T}/versions`,
        { version: 'v1.2.0' },
        400,
        'invalid-semver',
        /drop the leading "v": 1\.2\.0/,
      ],
      [
        'POST',
        `${T}/versions`,
        { version: '1.0.0' },
        409,
        'template-version-exists',
        /version 1\.0\.0 of template @default\/http-service already exists/,
      ],
      [
        'POST',
        `${T}/versions`,
        { version: '3.0.0', colour: 'blue' },
        400,
        'invalid-request',
        /colour|additional/i,
      ],
      [
        'POST',
        `${T}/versions`,
        { version: '3.0.0', packages: [{ registryType: 'cargo' }] },
        400,
        'invalid-config',
        /packages\[0\]/,
      ],
      [
        'POST',
        `${T}/versions`,
        { version: '3.0.0', variables: [{ name: 'bad-name', default: '' }] },
        400,
        'invalid-variable-name',
        /variables\[0\]\.name/,
      ],
      [
        'POST',
        `${T}/versions`,
        { version: '3.0.0', variables: [{ name: 'A', default: '' }], secrets: [{ name: 'A' }] },
        400,
        'duplicate-variable',
        /declared twice/,
      ],
      [
        'POST',
        `${T}/versions`,
        { version: '3.0.0-rc.1', status: 'stable' },
        409,
        'invalid-transition',
        /pre-release/,
      ],
      [
        'PATCH',
        `${T}/versions/1.0.0`,
        { remotes: remote('https://x.example.com') },
        409,
        'template-version-immutable',
        /immutable .*create a new version/,
      ],
      [
        'PATCH',
        `${T}/versions/9.9.9`,
        { status: 'retired' },
        404,
        'template-version-not-found',
        /has no version 9\.9\.9/,
      ],
      ['GET', '/templates/nope/usage', undefined, 404, 'template-not-found', /template nope was not found/],
    ];
    for (const [method, url, body, status, code, detail] of cases) {
      const res = await call(method, url, body);
      const what = `${method} ${url} ${JSON.stringify(body)}`;
      expect(res.status, what).toBe(status);
      expect(res.body.code, what).toBe(code);
      expect(String(res.body.detail), what).toMatch(detail);
    }
    expect([await count('servers'), await count('variables'), await count('template_versions')]).toEqual(
      before,
    );
    for (const slug of ['x1', 'x2', 'x3', 'x4', 'x5'])
      expect((await call('GET', `/servers/${slug}`)).status).toBe(404);
  });

  it('lets a read token see but not write', async () => {
    const reader = await api.token(['read']);
    expect((await call('GET', '/templates', undefined, reader)).status).toBe(200);
    expect((await call('GET', `${T}/usage`, undefined, reader)).status).toBe(200);
    for (const [method, url, body] of [
      ['POST', '/templates', { slug: 'sneaky' }],
      ['POST', `${T}/versions`, { version: '5.0.0' }],
      ['PATCH', `${T}/versions/1.0.0`, { status: 'deprecated', deprecation: { message: 'x' } }],
    ] as const) {
      expect((await call(method, url, body, reader)).status, url).toBe(403);
    }
    expect((await ok('GET', `${T}/versions/1.0.0`)).status).toBe('stable');
  });

  it('audits every change', async () => {
    const audit = await stores.db.query<{ action: string; target_name: string }>(
      `SELECT action, target_name FROM audit_events
        WHERE org_id = $1 AND (action LIKE 'template.%' OR action = 'server.template'
           OR (action = 'variable.set' AND after->>'template' IS NOT NULL)) ORDER BY seq`,
      [api.org.id],
    );
    expect(audit.map((a) => `${a.action} ${a.target_name}`)).toEqual([
      'template.create http-service',
      'template.version.create @default/http-service@1.0.0',
      'variable.set LOG_LEVEL',
      'variable.set REGION',
      'server.template billing',
      'template.version.create @default/http-service@1.1.0',
      // A version built from 1.1.0 moves billing on to it.
      'server.template billing',
      'variable.set LOG_LEVEL',
      'server.template ledger',
      'template.version.create @default/http-service@0.9.0',
      'template.version.deprecate @default/http-service@0.9.0',
      'server.template legacy',
      'template.version.retire @default/http-service@0.9.0',
    ]);
  });
});
