import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, parseRegistryName, registryName } from '#core/registry/mcp-registry.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

// The official generic MCP Registry API document (see test/fixtures/mcp-registry/README.md).
const SPEC_FILE = path.resolve(import.meta.dirname, '../fixtures/mcp-registry/openapi.yaml');
const spec = parseYaml(fs.readFileSync(SPEC_FILE, 'utf8')) as {
  $id: string;
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
};
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema(spec as object);

const pointer = (...parts: string[]) =>
  parts.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');

/** Spec path of one of our URLs: `/v0/servers/x%2Fy/versions/latest` → `/v0.1/servers/{serverName}/versions/{version}`. */
function specPath(url: string): string {
  const p = (url.split('?')[0] as string).replace(/^\/v0(\.1)?\//, '/v0.1/');
  if (p === '/v0.1/servers' || p === '/v0.1/publish') return p;
  if (/^\/v0\.1\/servers\/[^/]+\/status$/.test(p)) return '/v0.1/servers/{serverName}/status';
  const versions = /^\/v0\.1\/servers\/[^/]+\/versions(\/[^/]+)?(\/status)?$/.exec(p);
  if (!versions) throw new Error(`no spec path for ${url}`);
  if (versions[2]) return '/v0.1/servers/{serverName}/versions/{version}/status';
  return versions[1]
    ? '/v0.1/servers/{serverName}/versions/{version}'
    : '/v0.1/servers/{serverName}/versions';
}

/** Validates a response against the schema the official document gives its path, method and status. */
function expectSpecConform(method: string, url: string, res: LightMyRequestResponse): void {
  const op = spec.paths[specPath(url)]?.[method.toLowerCase()];
  expect(op, `${method} ${url} is in the spec`).toBeDefined();
  const declared = op?.responses[String(res.statusCode)];
  if (!declared?.content) return; // a status the document does not describe (400, 401, 409): nothing to hold it to
  const ref = `${spec.$id}#/${pointer('paths', specPath(url), method.toLowerCase(), 'responses', String(res.statusCode), 'content', 'application/json', 'schema')}`;
  const validate = ajv.getSchema(ref) ?? ajv.compile({ $ref: ref });
  const body: unknown = res.json();
  expect(validate(body), `${method} ${url} ${res.statusCode}: ${ajv.errorsText(validate.errors)}`).toBe(true);
}

let stores: Stores;
let api: TestApi;
let read: string;
let write: string;
let otherOrgAdmin: string;

interface Entry {
  server: {
    name: string;
    version: string;
    description: string;
    remotes?: { url: string; headers?: unknown[] }[];
  };
  _meta: {
    'io.modelcontextprotocol.registry/official': {
      status: string;
      isLatest: boolean;
      statusMessage?: string;
    };
    'dev.pylee/registry': {
      server: string;
      status: string;
      runsIn: { environment: string; weight: number }[];
      environments: { environment: string; versions: { version: string; weight: number }[] }[];
      gateway: { url: string | null; pinnedUrl: string } | null;
    };
  };
}
interface List {
  servers: Entry[];
  metadata: { count: number; nextCursor?: string };
}

/** A registry request, checked against the official document whatever its status. */
async function registry(
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
  url: string,
  options: { token?: string | null; body?: unknown } = {},
): Promise<LightMyRequestResponse> {
  const token = options.token === undefined ? read : options.token;
  const res = await api.app.inject({
    method,
    url,
    headers: token ? bearer(token) : {},
    ...(options.body === undefined ? {} : { payload: options.body as InjectOptions['payload'] }),
  });
  expectSpecConform(method, url, res);
  return res;
}

async function v1(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH',
  url: string,
  body?: object,
  token = BOOTSTRAP_TOKEN,
) {
  const res = await api.app.inject({ method, url: `/api/v1${url}`, headers: bearer(token), payload: body });
  expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
  return res.json() as Record<string, unknown>;
}

const NAME = (slug: string, org = 'default') => encodeURIComponent(registryName(org, slug));
const remote = { type: 'streamable-http', url: 'https://weather.example.com/mcp' };

async function count(table: 'servers' | 'versions') {
  const [row] = await stores.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return row?.n;
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  read = await api.token(['read']);
  write = await api.token(['write']);
  for (const slug of ['weather', 'maps', 'search'])
    await v1('POST', '/servers', { slug, name: `The ${slug} server` });
  await v1('POST', '/servers/weather/versions', { version: '1.0.0', status: 'stable', remotes: [remote] });
  await v1('POST', '/servers/weather/versions', { version: '1.1.0', status: 'stable', remotes: [remote] });
  await v1('POST', '/servers/weather/versions', { version: '2.0.0-rc.1', remotes: [remote] });
  await v1('POST', '/servers/maps/versions', { version: '0.1.0' });
  await v1('POST', '/servers/maps/versions', { version: '0.2.0', status: 'stable' });
  await v1('PATCH', '/servers/maps/versions/0.1.0', {
    status: 'deprecated',
    reason: 'old',
    deprecation: { message: 'upgrade to 0.2.0', replacement: '0.2.0' },
  });
  await v1('POST', '/servers/search/versions', { version: '3.0.0', status: 'stable' });
  await v1('PATCH', '/servers/search/versions/3.0.0', { status: 'retired', reason: 'gone' });
  await v1('POST', '/servers/weather/deployments', { version: '1.0.0', environment: 'production' });
  const org = await v1('POST', '/orgs', { slug: 'acme' });
  otherOrgAdmin = org.token as string;
  await v1('POST', '/servers', { slug: 'weather' }, otherOrgAdmin);
  await v1('POST', '/servers/weather/versions', { version: '9.0.0', status: 'stable' }, otherOrgAdmin);
}, 120_000);

afterAll(async () => {
  await api?.app.close();
  await stores?.close();
});

describe('names', () => {
  it('map @org/slug to dev.pylee.<org>/<slug> and back, one to one', () => {
    for (const [org, slug] of [
      ['default', 'weather'],
      ['acme-labs', 'a1'],
      ['x9', 'weather-api-v2'],
    ] as const) {
      const name = registryName(org, slug);
      expect(name).toMatch(/^[a-zA-Z0-9.-]+\/[a-zA-Z0-9._-]+$/);
      expect(parseRegistryName(name)).toEqual({ org, slug });
    }
    for (const bad of [
      'io.github.x/weather',
      'dev.pylee/weather',
      'dev.pylee.a.b/weather',
      'dev.pylee.Acme/x1',
      'dev.pylee.acme/we/x',
    ])
      expect(parseRegistryName(bad), bad).toBeUndefined();
  });

  it('cursors round-trip and anything else is refused', () => {
    const id = '0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b';
    expect(decodeCursor(encodeCursor('dev.pylee.default/weather', id))).toEqual({
      name: 'dev.pylee.default/weather',
      id,
    });
    for (const bad of ['nope', encodeCursor('x/y', id), Buffer.from('[1,2]').toString('base64url'), '%%'])
      expect(() => decodeCursor(bad)).toThrow(/cursor/);
  });
});

describe('the official schema', () => {
  it('is a real check: it refuses entries without server, with a bad name or an unknown official field', () => {
    const ref = `${spec.$id}#/${pointer('paths', '/v0.1/servers', 'get', 'responses', '200', 'content', 'application/json', 'schema')}`;
    const validate = ajv.getSchema(ref) ?? ajv.compile({ $ref: ref });
    const server = { name: 'dev.pylee.default/weather', description: 'd', version: '1.0.0' };
    expect(validate({ servers: [{ server }] })).toBe(true);
    expect(validate({ servers: [{}] })).toBe(false);
    expect(validate({ servers: [{ server: { ...server, name: 'no-slash' } }] })).toBe(false);
    expect(
      validate({ servers: [{ server, _meta: { 'io.modelcontextprotocol.registry/official': { x: 1 } } }] }),
    ).toBe(false);
  });
});

describe('GET /v0/servers', () => {
  it('lists every version of the token’s org with the official and Pylee _meta, retired ones left out', async () => {
    const res = await registry('GET', '/v0/servers');
    expect(res.statusCode, res.body).toBe(200);
    const list = res.json() as List;
    const ids = list.servers.map((e) => `${e.server.name}@${e.server.version}`);
    expect(ids).toEqual(
      expect.arrayContaining([
        'dev.pylee.default/weather@1.0.0',
        'dev.pylee.default/weather@2.0.0-rc.1',
        'dev.pylee.default/maps@0.1.0',
      ]),
    );
    expect(ids.some((id) => id.includes('search'))).toBe(false);
    expect(ids.some((id) => id.includes('acme'))).toBe(false);
    expect(list.metadata.count).toBe(list.servers.length);
    const deprecated = list.servers.find(
      (e) => e.server.name.endsWith('/maps') && e.server.version === '0.1.0',
    );
    expect(deprecated?._meta['io.modelcontextprotocol.registry/official']).toMatchObject({
      status: 'deprecated',
      statusMessage: 'upgrade to 0.2.0',
      isLatest: false,
    });
    expect(deprecated?._meta['dev.pylee/registry']).toMatchObject({
      server: '@default/maps',
      status: 'deprecated',
    });
    expect(deprecated?.server.description).toBe('The maps server');
  });

  it('offers the production gateway endpoint as a remote of the version that runs there', async () => {
    const list = (await registry('GET', '/v0/servers?search=default/weather')).json() as List;
    const running = list.servers.find((e) => e.server.version === '1.0.0') as Entry;
    const idle = list.servers.find((e) => e.server.version === '1.1.0') as Entry;
    expect(running.server.remotes?.[0]).toMatchObject({
      type: 'streamable-http',
      url: 'http://127.0.0.1:8081/default/weather/production/mcp',
      headers: [expect.objectContaining({ name: 'Authorization', isSecret: true })],
    });
    expect(running.server.remotes?.[1]).toEqual(remote);
    expect(running._meta['dev.pylee/registry'].runsIn).toEqual([{ environment: 'production', weight: 100 }]);
    expect(idle.server.remotes).toEqual([remote]);
    expect(idle._meta['dev.pylee/registry']).toMatchObject({
      runsIn: [],
      gateway: {
        url: 'http://127.0.0.1:8081/default/weather/production/mcp',
        pinnedUrl: 'http://127.0.0.1:8081/default/weather@1.1.0/mcp',
      },
    });
    expect(idle._meta['dev.pylee/registry'].environments).toContainEqual({
      environment: 'production',
      versions: [{ version: '1.0.0', weight: 100 }],
    });
  });

  it('version=latest gives each server its highest stable version, marked isLatest', async () => {
    const list = (await registry('GET', '/v0/servers?version=latest')).json() as List;
    expect(list.servers.map((e) => `${e.server.name}@${e.server.version}`)).toEqual([
      'dev.pylee.default/maps@0.2.0',
      'dev.pylee.default/weather@1.1.0',
    ]);
    expect(list.servers.every((e) => e._meta['io.modelcontextprotocol.registry/official'].isLatest)).toBe(
      true,
    );
    const paged = (await registry('GET', '/v0/servers?version=latest&limit=1')).json() as List;
    expect(paged.servers).toHaveLength(1);
    const next = (
      await registry('GET', `/v0/servers?version=latest&limit=1&cursor=${paged.metadata.nextCursor}`)
    ).json() as List;
    expect(next.servers.map((e) => e.server.version)).toEqual(['1.1.0']);
    expect(next.metadata.nextCursor).toBeUndefined();
  });

  it('search matches a substring of the name, in any case; version= an exact version', async () => {
    const list = (await registry('GET', '/v0/servers?search=WEATH')).json() as List;
    expect(new Set(list.servers.map((e) => e.server.name))).toEqual(new Set(['dev.pylee.default/weather']));
    expect(((await registry('GET', '/v0/servers?search=nothing-like-it')).json() as List).servers).toEqual(
      [],
    );
    const exact = (await registry('GET', '/v0/servers?version=0.2.0')).json() as List;
    expect(exact.servers.map((e) => e.server.name)).toEqual(['dev.pylee.default/maps']);
  });

  it('updated_since gives what changed since then, retired versions included', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect(((await registry('GET', `/v0/servers?updated_since=${future}`)).json() as List).servers).toEqual(
      [],
    );
    const since = new Date().toISOString();
    await v1('PATCH', '/servers/maps/versions/0.2.0', { releaseNotes: 'touched' });
    const changed = (
      await registry('GET', `/v0/servers?updated_since=${encodeURIComponent(since)}`)
    ).json() as List;
    expect(changed.servers.map((e) => `${e.server.name}@${e.server.version}`)).toEqual([
      'dev.pylee.default/maps@0.2.0',
    ]);
    const all = (await registry('GET', '/v0/servers?updated_since=2000-01-01T00:00:00Z')).json() as List;
    const retired = all.servers.find((e) => e.server.name.endsWith('/search'));
    expect(retired?._meta['io.modelcontextprotocol.registry/official'].status).toBe('deleted');
  });

  it('pages stay stable while versions are added between them', async () => {
    await v1('POST', '/servers', { slug: 'zeta' });
    await v1('POST', '/servers/zeta/versions', { version: '1.0.0' });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const url = `/v0/servers?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await registry('GET', url)).json() as List;
      seen.push(...page.servers.map((e) => `${e.server.name}@${e.server.version}`));
      cursor = page.metadata.nextCursor;
      pages += 1;
      if (pages === 1) {
        // Behind the cursor (maps sorts first) and ahead of it (zeta sorts last).
        await v1('POST', '/servers/maps/versions', { version: '0.3.0' });
        await v1('POST', '/servers/zeta/versions', { version: '1.1.0' });
      }
    } while (cursor && pages < 20);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toContain('dev.pylee.default/zeta@1.1.0');
    expect(seen).toEqual(
      expect.arrayContaining(['dev.pylee.default/maps@0.1.0', 'dev.pylee.default/weather@2.0.0-rc.1']),
    );
    // Everything in one page now is what the pages gave, plus what was added behind the cursor.
    const whole = (await registry('GET', '/v0/servers?limit=100')).json() as List;
    const names = whole.servers.map((e) => `${e.server.name}@${e.server.version}`);
    expect(names.filter((n) => n !== 'dev.pylee.default/maps@0.3.0')).toEqual(
      seen.filter((n) => n !== 'dev.pylee.default/maps@0.3.0'),
    );
  });

  it('refuses unknown parameters, bad cursors, limits and timestamps with 400', async () => {
    for (const [query, code] of [
      ['?page=2', 'invalid-request'],
      ['?cursor=not-a-cursor', 'invalid-cursor'],
      ['?limit=0', 'invalid-request'],
      ['?limit=101', 'invalid-request'],
      ['?updated_since=yesterday', 'invalid-request'],
    ] as const) {
      const res = await registry('GET', `/v0/servers${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toMatchObject({ code });
    }
  });

  it('is served at /v0.1 too, and nothing under /v0 falls through to the web UI', async () => {
    const a = (await registry('GET', '/v0/servers?version=latest')).json() as List;
    const b = (await registry('GET', '/v0.1/servers?version=latest')).json() as List;
    expect(b).toEqual(a);
    for (const url of ['/v0', '/v0/', '/v0/nothing', '/v0.1/servers/x/y/z']) {
      const res = await api.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toContain('application/problem+json');
    }
  });
});

describe('GET /v0/servers/{serverName}/versions[/{version}]', () => {
  it('lists a server’s versions newest first', async () => {
    const res = await registry('GET', `/v0/servers/${NAME('weather')}/versions`);
    expect(res.statusCode, res.body).toBe(200);
    expect((res.json() as List).servers.map((e) => e.server.version)).toEqual([
      '2.0.0-rc.1',
      '1.1.0',
      '1.0.0',
    ]);
  });

  it('gives one version, and latest', async () => {
    const one = await registry('GET', `/v0/servers/${NAME('weather')}/versions/1.0.0`);
    expect(one.statusCode).toBe(200);
    expect((one.json() as Entry).server).toMatchObject({
      name: 'dev.pylee.default/weather',
      version: '1.0.0',
    });
    const latest = await registry('GET', `/v0.1/servers/${NAME('weather')}/versions/latest`);
    expect((latest.json() as Entry).server.version).toBe('1.1.0');
    expect((latest.json() as Entry)._meta['io.modelcontextprotocol.registry/official'].isLatest).toBe(true);
  });

  it('hides retired versions unless include_deleted=true', async () => {
    expect((await registry('GET', `/v0/servers/${NAME('search')}/versions/3.0.0`)).statusCode).toBe(404);
    const shown = await registry('GET', `/v0/servers/${NAME('search')}/versions/3.0.0?include_deleted=true`);
    expect(shown.statusCode).toBe(200);
    expect((shown.json() as Entry)._meta['io.modelcontextprotocol.registry/official'].status).toBe('deleted');
  });

  it('answers 404 for an unknown server or version, another org’s server and a name that is not Pylee’s', async () => {
    for (const url of [
      `/v0/servers/${NAME('nope')}/versions`,
      `/v0/servers/${NAME('weather')}/versions/7.7.7`,
      `/v0/servers/${NAME('weather', 'acme')}/versions`,
      `/v0/servers/${NAME('weather', 'acme')}/versions/9.0.0`,
      `/v0/servers/${encodeURIComponent('io.github.x/weather')}/versions/latest`,
    ]) {
      const res = await registry('GET', url);
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    const other = await registry('GET', `/v0/servers/${NAME('weather', 'acme')}/versions/9.0.0`, {
      token: otherOrgAdmin,
    });
    expect(other.statusCode).toBe(200);
  });

  it('refuses a token without read (connect only) with 403, an unknown parameter with 400', async () => {
    const connect = await api.token(['connect']);
    expect(
      (await registry('GET', `/v0/servers/${NAME('weather')}/versions`, { token: connect })).statusCode,
    ).toBe(403);
    expect((await registry('GET', `/v0/servers/${NAME('weather')}/versions?x=1`)).statusCode).toBe(400);
  });
});

describe('POST /v0/publish', () => {
  const doc = (version: string, extra: object = {}) => ({
    $schema: 'https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json',
    name: 'dev.pylee.default/published',
    description: 'Published through the MCP registry API',
    version,
    packages: [{ registryType: 'npm', identifier: '@acme/published', version, transport: { type: 'stdio' } }],
    ...extra,
  });

  it('creates the server and the version, visible at once', async () => {
    const res = await registry('POST', '/v0/publish', { token: write, body: doc('1.0.0') });
    expect(res.statusCode, res.body).toBe(200);
    expect((res.json() as Entry)._meta['dev.pylee/registry']).toMatchObject({
      server: '@default/published',
      status: 'stable',
    });
    const got = await registry('GET', `/v0/servers/${NAME('published')}/versions/latest`);
    expect((got.json() as Entry).server).toMatchObject({
      version: '1.0.0',
      description: 'Published through the MCP registry API',
    });
    const pre = await registry('POST', '/v0/publish', { token: write, body: doc('1.1.0-rc.1') });
    expect((pre.json() as Entry)._meta['dev.pylee/registry'].status).toBe('release-candidate');
    const again = await registry('POST', '/v0/publish', { token: write, body: doc('1.0.0') });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'version-exists' });
  });

  it('refuses a body that fails server.json validation with the JSON paths, storing nothing', async () => {
    const before = [await count('servers'), await count('versions')];
    for (const [body, paths] of [
      [
        doc('1.0.0', {
          name: 'dev.pylee.default/fresh',
          packages: [
            { registryType: 'npm', identifier: 'x', version: 'latest', transport: { type: 'stdio' } },
          ],
        }),
        ['packages[0].version'],
      ],
      [
        { ...doc('1.0.0', { name: 'dev.pylee.default/fresh' }), description: undefined, extra: 1 },
        ['description', 'extra'],
      ],
      [doc('v1', { name: 'dev.pylee.default/fresh', packages: [] }), ['version']],
      [doc('1.0.0', { name: 'io.github.someone/fresh' }), ['name']],
    ] as const) {
      const res = await registry('POST', '/v0/publish', { token: write, body });
      expect(res.statusCode, res.body).toBe(400);
      const errors = (res.json() as { errors: { path: string }[] }).errors.map((e) => e.path);
      for (const p of paths) expect(errors.join(' '), res.body).toContain(p);
    }
    expect([await count('servers'), await count('versions')]).toEqual(before);
  });

  it('needs the write permission in the token’s own namespace', async () => {
    const refused = await registry('POST', '/v0/publish', { token: read, body: doc('2.0.0') });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'missing-permission' });
    expect((await registry('POST', '/v0/publish', { token: null, body: doc('2.0.0') })).statusCode).toBe(401);
    const elsewhere = await registry('POST', '/v0/publish', {
      token: write,
      body: doc('2.0.0', { name: 'dev.pylee.acme/published' }),
    });
    expect(elsewhere.statusCode).toBe(403);
    expect(elsewhere.json()).toMatchObject({ code: 'wrong-namespace' });
  });
});

describe('PATCH /v0/servers/{serverName}/versions/{version}/status', () => {
  it('deprecates, reactivates and retires on Pylee’s lifecycle, refusing what it does not allow with 400', async () => {
    await v1('POST', '/servers', { slug: 'lifecycle' });
    await v1('POST', '/servers/lifecycle/versions', { version: '1.0.0', status: 'stable' });
    const url = `/v0/servers/${NAME('lifecycle')}/versions/1.0.0/status`;
    const official = (res: LightMyRequestResponse) =>
      (res.json() as Entry)._meta['io.modelcontextprotocol.registry/official'];
    const deprecated = await registry('PATCH', url, {
      token: write,
      body: { status: 'deprecated', statusMessage: 'use 2.0.0' },
    });
    expect(deprecated.statusCode, deprecated.body).toBe(200);
    expect(official(deprecated)).toMatchObject({ status: 'deprecated', statusMessage: 'use 2.0.0' });
    const again = await registry('PATCH', url, { token: write, body: { status: 'deprecated' } });
    expect(again.statusCode).toBe(400);
    expect(again.json()).toMatchObject({ code: 'no-change' });
    const active = await registry('PATCH', url, { token: write, body: { status: 'active' } });
    expect((active.json() as Entry)._meta['dev.pylee/registry'].status).toBe('stable');
    const deleted = await registry('PATCH', url, { token: write, body: { status: 'deleted' } });
    expect(official(deleted).status).toBe('deleted');
    const back = await registry('PATCH', url, { token: write, body: { status: 'active' } });
    expect(back.statusCode).toBe(400);
    expect(back.json()).toMatchObject({ code: 'invalid-transition' });
    expect((await registry('PATCH', url, { token: read, body: { status: 'active' } })).statusCode).toBe(403);
    expect((await registry('PATCH', url, { token: null, body: { status: 'active' } })).statusCode).toBe(401);
    const bad = await registry('PATCH', url, { token: write, body: { status: 'gone' } });
    expect(bad.statusCode).toBe(400);
    const audit = (await v1('GET', '/audit?action=version.*&target=lifecycle@1.0.0')) as {
      events: unknown[];
    };
    expect(audit.events.length).toBeGreaterThanOrEqual(4);
  });

  it('answers 501 for the optional edit and delete endpoints Pylee does not offer', async () => {
    const version = `/v0/servers/${NAME('weather')}/versions/1.0.0`;
    const put = await registry('PUT', version, { token: write, body: { name: 'x' } });
    expect(put.statusCode).toBe(501);
    expect(put.json()).toMatchObject({
      code: 'not-implemented',
      error: expect.stringContaining('immutable'),
    });
    expect((await registry('DELETE', version, { token: write })).statusCode).toBe(501);
    const bulk = await registry('PATCH', `/v0/servers/${NAME('weather')}/status`, {
      token: write,
      body: { status: 'deprecated' },
    });
    expect(bulk.statusCode).toBe(501);
  });
});

describe('public access', () => {
  it('refuses requests without a token until an admin makes the org public (audited), then serves that org only', async () => {
    expect((await registry('GET', '/v0/servers', { token: null })).statusCode).toBe(401);
    expect(
      (await registry('GET', `/v0/servers/${NAME('weather')}/versions`, { token: null })).statusCode,
    ).toBe(401);
    expect(await v1('GET', '/mcp-registry', undefined, read)).toEqual({
      public: false,
      namespace: 'dev.pylee.default',
    });
    const refused = await api.app.inject({
      method: 'PUT',
      url: '/api/v1/mcp-registry',
      headers: bearer(write),
      payload: { public: true },
    });
    expect(refused.statusCode).toBe(403);

    expect(await v1('PUT', '/mcp-registry', { public: true })).toEqual({
      public: true,
      namespace: 'dev.pylee.default',
    });
    const open = await registry('GET', '/v0/servers?version=latest', { token: null });
    expect(open.statusCode, open.body).toBe(200);
    const names = (open.json() as List).servers.map((e) => e.server.name);
    expect(names).toContain('dev.pylee.default/weather');
    expect(names.some((n) => n.includes('acme'))).toBe(false);
    expect(
      (await registry('GET', `/v0/servers/${NAME('weather')}/versions/latest`, { token: null })).statusCode,
    ).toBe(200);
    expect((await registry('GET', `/v0/servers/${NAME('nope')}/versions`, { token: null })).statusCode).toBe(
      404,
    );
    expect(
      (await registry('GET', `/v0/servers/${NAME('weather', 'acme')}/versions`, { token: null })).statusCode,
    ).toBe(401);
    expect((await registry('GET', '/v0/servers', { token: 'pyl_nope' })).statusCode).toBe(401);

    await v1('PUT', '/mcp-registry', { public: true }); // already public: nothing to record
    await v1('PUT', '/mcp-registry', { public: false });
    expect((await registry('GET', '/v0/servers', { token: null })).statusCode).toBe(401);
    const audit = (await v1('GET', '/audit?action=org.mcp-registry.access')) as {
      events: { before: unknown; after: unknown }[];
    };
    expect(audit.events.map((e) => [e.before, e.after])).toEqual([
      [{ public: true }, { public: false }],
      [{ public: false }, { public: true }],
    ]);
  });
});
