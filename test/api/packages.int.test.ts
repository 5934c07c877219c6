import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';

// The shared packages catalogue end to end: entries with allowed ranges, owners and deprecations,
// the usage page per package, warnings on version creation and the allowed-packages gate.

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

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies of many shapes
type Json = Record<string, any>;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
async function call(method: Method, url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
  const res = await api.app.inject({ method, url: `/api/v1${url}`, headers: bearer(token), payload });
  return { status: res.statusCode, body: (res.body ? res.json() : {}) as Json };
}
async function ok(method: Method, url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
  const res = await call(method, url, payload, token);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
const pkg = (registryType: string, identifier: string, version: string) => ({
  registryType,
  identifier,
  version,
  transport: { type: 'stdio' },
});
const path = (registryType: string, identifier: string) =>
  `/packages/${registryType}/${encodeURIComponent(identifier)}`;
const SDK = path('npm', '@acme/sdk');
const audit = async (action: string) =>
  (await ok('GET', `/audit?action=${action}&limit=100`)).events as Json[];
/** The catalogue as it is, to show that a refused request changed nothing. */
const catalogue = async () =>
  stores.db.query('SELECT * FROM package_catalog ORDER BY registry_type, identifier, org_id');

describe('the package catalogue', () => {
  beforeAll(async () => {
    for (const slug of ['billing', 'search', 'images']) await ok('POST', '/servers', { slug });
  });

  it('catalogues a package with an allowed range, owners and deprecations; updates keep what is left out; audited', async () => {
    const created = await call('PUT', SDK, {
      description: 'The Acme SDK',
      owners: ['platform-team', 'platform-team', ' sdk@acme.io '],
      allowed: '^2.0.0',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      registryType: 'npm',
      identifier: '@acme/sdk',
      description: 'The Acme SDK',
      owners: ['platform-team', 'sdk@acme.io'],
      allowed: '^2.0.0',
      deprecations: [],
      updatedBy: 'bootstrap',
      usage: { servers: 0, versions: 0, notAllowed: 0, deprecated: 0 },
    });
    const updated = await call('PUT', SDK, {
      deprecations: [{ versions: '2.0.x', message: 'leaks tokens in logs', replacement: '2.1.0' }],
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({
      owners: ['platform-team', 'sdk@acme.io'],
      allowed: '^2.0.0',
      deprecations: [{ versions: '2.0.x', message: 'leaks tokens in logs', replacement: '2.1.0' }],
    });
    const { packages } = await ok('GET', '/packages');
    expect(packages.map((p: Json) => `${p.registryType}:${p.identifier}`)).toEqual(['npm:@acme/sdk']);

    const [create] = await audit('package.create');
    expect(create).toMatchObject({
      target: { type: 'package', name: 'npm:@acme/sdk' },
      after: { allowed: '^2.0.0', owners: ['platform-team', 'sdk@acme.io'] },
    });
    const [update] = await audit('package.update');
    expect(update).toMatchObject({
      before: { deprecations: [] },
      after: { deprecations: [{ versions: '2.0.x', message: 'leaks tokens in logs' }] },
    });
  });

  it('warns on version creation about not-allowed and deprecated package versions, never about uncatalogued ones', async () => {
    const notAllowed = await ok('POST', '/servers/billing/versions', {
      version: '1.0.0',
      status: 'stable',
      packages: [pkg('npm', '@acme/sdk', '1.9.0'), pkg('npm', 'left-pad', '1.3.0')],
    });
    expect(notAllowed.warnings).toEqual([
      {
        code: 'package-not-allowed',
        registryType: 'npm',
        identifier: '@acme/sdk',
        version: '1.9.0',
        message: expect.stringContaining('allowed: ^2.0.0'),
      },
    ]);
    const deprecated = await ok('POST', '/servers/billing/versions', {
      version: '1.1.0',
      status: 'stable',
      packages: [pkg('npm', '@acme/sdk', '2.0.3')],
    });
    expect(deprecated.warnings).toEqual([
      expect.objectContaining({
        code: 'package-deprecated',
        message: '@acme/sdk@2.0.3 is deprecated: leaks tokens in logs (use 2.1.0)',
      }),
    ]);
    const fine = await ok('POST', '/servers/search/versions', {
      version: '3.0.0',
      status: 'stable',
      packages: [pkg('npm', '@acme/sdk', '2.1.0'), pkg('npm', 'left-pad', '1.3.0')],
    });
    expect(fine.warnings).toEqual([]);
    const audited = (await audit('version.create')).find((e) => e.target.name === 'billing@1.0.0');
    expect(audited?.after.warnings).toEqual([
      '@acme/sdk@1.9.0 is not an allowed version of npm package @acme/sdk (allowed: ^2.0.0)',
    ]);
  });

  it('lists usage counts with not-allowed and deprecated uses, and the uncatalogued packages in use', async () => {
    const list = await ok('GET', '/packages');
    expect(list.packages[0].usage).toEqual({ servers: 2, versions: 3, notAllowed: 1, deprecated: 1 });
    expect(list.uncatalogued).toEqual([
      {
        registryType: 'npm',
        identifier: 'left-pad',
        usage: { servers: 2, versions: 2 },
        packageVersions: ['1.3.0'],
      },
    ]);
    expect((await ok('GET', '/packages?q=PAD')).packages).toEqual([]);
    expect((await ok('GET', '/packages?q=PAD')).uncatalogued).toHaveLength(1);
    expect((await ok('GET', '/packages?q=acme%20sdk')).packages).toHaveLength(1);
    expect(await ok('GET', '/packages?registryType=pypi')).toEqual({ packages: [], uncatalogued: [] });
  });

  it('shows the usage page: every use flagged, newest first per server, and the package versions in use', async () => {
    const page = await ok('GET', SDK);
    expect(page.entry).toMatchObject({ identifier: '@acme/sdk', allowed: '^2.0.0' });
    expect(
      page.uses.map((u: Json) => [u.server, u.version, u.packageVersion, u.allowed, u.deprecated]),
    ).toEqual([
      ['billing', '1.1.0', '2.0.3', true, true],
      ['billing', '1.0.0', '1.9.0', false, false],
      ['search', '3.0.0', '2.1.0', true, false],
    ]);
    expect(page.uses[0].deprecation).toEqual({
      versions: '2.0.x',
      message: 'leaks tokens in logs',
      replacement: '2.1.0',
    });
    expect(page.summary).toEqual([
      { packageVersion: '2.1.0', servers: 1, versions: 1, allowed: true, deprecated: false },
      { packageVersion: '2.0.3', servers: 1, versions: 1, allowed: true, deprecated: true },
      { packageVersion: '1.9.0', servers: 1, versions: 1, allowed: false, deprecated: false },
    ]);
    // Uncatalogued but used: the page, with a null entry and every use allowed.
    const pad = await ok('GET', path('npm', 'left-pad'));
    expect(pad.entry).toBeNull();
    expect(pad.uses.every((u: Json) => u.allowed && !u.deprecated)).toBe(true);
    // The older "where is this used" route still answers in its own shape.
    const { uses } = await ok('GET', '/registry/packages?registryType=npm&identifier=%40acme%2Fsdk');
    expect(uses[0]).toEqual({
      server: 'billing',
      version: '1.1.0',
      status: 'stable',
      registryType: 'npm',
      identifier: '@acme/sdk',
      packageVersion: '2.0.3',
    });
  });

  it('takes identifiers with slashes URL-encoded (OCI images), in the list syntax with wildcards', async () => {
    const img = path('oci', 'ghcr.io/acme/img');
    expect(img).toBe('/packages/oci/ghcr.io%2Facme%2Fimg');
    expect((await call('PUT', img, { allowed: '1.4.*, 1.5.0' })).status).toBe(201);
    const v = await ok('POST', '/servers/images/versions', {
      version: '1.0.0',
      packages: [pkg('oci', 'ghcr.io/acme/img', '1.3.9')],
    });
    expect(v.warnings.map((w: Json) => w.code)).toEqual(['package-not-allowed']);
    await ok('POST', '/servers/images/versions', {
      version: '1.1.0',
      packages: [pkg('oci', 'ghcr.io/acme/img', '1.4.12')],
    });
    const page = await ok('GET', img);
    expect(page.identifier).toBe('ghcr.io/acme/img');
    expect(page.uses.map((u: Json) => [u.packageVersion, u.allowed])).toEqual([
      ['1.4.12', true],
      ['1.3.9', false],
    ]);
    // Unencoded, the slashes are path segments: not a route.
    expect((await call('GET', '/packages/oci/ghcr.io/acme/img')).status).toBe(404);
  });

  it('compares PyPI names the way PyPI does: Requests and requests are one entry', async () => {
    expect((await call('PUT', path('pypi', 'Requests'), { allowed: '>=2.31,<3' })).status).toBe(201);
    const v = await ok('POST', '/servers/search/versions', {
      version: '3.1.0',
      packages: [pkg('pypi', 'requests', '2.19.1')],
    });
    expect(v.warnings).toEqual([
      expect.objectContaining({ code: 'package-not-allowed', identifier: 'requests', version: '2.19.1' }),
    ]);
    const again = await call('PUT', path('pypi', 'requests'), {
      deprecations: [{ versions: '<2.32', message: 'CVE-2024-35195' }],
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      identifier: 'Requests',
      allowed: '>=2.31,<3',
      usage: { versions: 1, notAllowed: 1, deprecated: 1 },
    });
    const page = await ok('GET', path('pypi', 'REQUESTS'));
    expect(page.entry.identifier).toBe('Requests');
    expect(page.uses.map((u: Json) => [u.identifier, u.packageVersion])).toEqual([['requests', '2.19.1']]);
    const { packages, uncatalogued } = await ok('GET', '/packages?registryType=pypi');
    expect(packages.map((p: Json) => p.identifier)).toEqual(['Requests']);
    expect(uncatalogued).toEqual([]);
  });

  it('refuses bad input with a 400 naming the problem, and changes nothing', async () => {
    const before = await catalogue();
    const cases: [string, object, string, string[]][] = [
      [path('maven', 'x'), {}, 'invalid-registry-type', ['maven', 'npm, pypi, oci, homebrew, nuget']],
      [SDK, { allowed: 'latest' }, 'invalid-range', ['allowed', 'semver range', '^2.1.0']],
      [path('pypi', 'requests'), { allowed: '2.0' }, 'invalid-range', ['allowed', 'PEP 440', '>=2.31,<3']],
      [
        path('oci', 'ghcr.io/acme/img'),
        { allowed: '1.4 1.5' },
        'invalid-range',
        ['allowed', 'comma-separated'],
      ],
      [SDK, { allowed: '' }, 'invalid-range', ['allowed']],
      [
        SDK,
        { deprecations: [{ versions: 'old', message: 'm' }] },
        'invalid-range',
        ['deprecations[0].versions'],
      ],
      [
        SDK,
        { deprecations: [{ versions: '1.x', message: '  ' }] },
        'deprecation-message-required',
        ['deprecations[0].message', 'e.g.'],
      ],
      [SDK, { deprecations: [{ versions: '1.x' }] }, 'deprecation-message-required', ['message']],
      [SDK, { allowed: '*', colour: 'red' }, 'invalid-request', ['colour']],
      [
        SDK,
        { deprecations: [{ versions: '1.x', message: 'm', since: 'now' }] },
        'invalid-request',
        ['since'],
      ],
      [path('npm', ' padded '), {}, 'invalid-identifier', ['surrounding spaces']],
    ];
    for (const [url, body, code, words] of cases) {
      const res = await call('PUT', url, body);
      expect(res.status, `${url} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body.code).toBe(code);
      for (const w of words) expect(JSON.stringify(res.body)).toContain(w);
    }
    expect((await call('GET', '/packages?registryType=maven')).body.code).toBe('invalid-registry-type');
    expect((await call('GET', path('maven', 'x'))).body.code).toBe('invalid-registry-type');
    expect(await catalogue()).toEqual(before);
  });

  it('answers 404 naming an unknown package, 403 to tokens that may not change the catalogue', async () => {
    const before = await catalogue();
    const missing = await call('GET', path('npm', '@acme/nope'));
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('package-not-found');
    expect(missing.body.detail).toContain('npm package @acme/nope');
    expect(missing.body.detail).toContain('PUT /api/v1/packages/npm/%40acme%2Fnope');
    const gone = await call('DELETE', path('npm', '@acme/nope'));
    expect(gone.status).toBe(404);
    expect(gone.body.detail).toContain('@acme/nope');
    // Used but not catalogued: nothing to delete.
    expect((await call('DELETE', path('npm', 'left-pad'))).status).toBe(404);

    const reader = await api.token(['read']);
    expect((await call('GET', '/packages', undefined, reader)).status).toBe(200);
    const refused = await call('PUT', SDK, { allowed: '*' }, reader);
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('missing-permission');
    expect((await call('DELETE', SDK, undefined, reader)).status).toBe(403);
    const scoped = await api.token(['write'], { servers: ['billing'] });
    const orgWide = await call('PUT', SDK, { allowed: '*' }, scoped);
    expect(orgWide.status).toBe(403);
    expect(orgWide.body.code).toBe('org-wide-token-required');
    // A token limited to servers sees the usage of those servers only.
    expect((await ok('GET', SDK, undefined, scoped)).uses.map((u: Json) => u.server)).toEqual([
      'billing',
      'billing',
    ]);
    expect(await catalogue()).toEqual(before);
  });

  it("never shows another org's catalogue", async () => {
    const org = await ok('POST', '/orgs', { slug: 'acme' });
    const token = org.token as string;
    expect(await ok('GET', '/packages', undefined, token)).toEqual({ packages: [], uncatalogued: [] });
    expect((await call('GET', SDK, undefined, token)).status).toBe(404);
    expect((await call('DELETE', SDK, undefined, token)).status).toBe(404);
    // Their own entry of the same name is theirs alone.
    expect((await call('PUT', SDK, { allowed: '^9.0.0' }, token)).status).toBe(201);
    expect((await ok('GET', SDK)).entry.allowed).toBe('^2.0.0');
  });

  it('removes an entry (its uses stay, no longer flagged), audited', async () => {
    const tmp = path('nuget', 'Acme.Tools');
    await ok('PUT', tmp, { allowed: '1.*' });
    expect((await call('DELETE', path('nuget', 'acme.tools'))).status).toBe(204);
    expect((await call('GET', tmp)).status).toBe(404);
    const [deleted] = await audit('package.delete');
    expect(deleted).toMatchObject({
      target: { type: 'package', name: 'nuget:Acme.Tools' },
      before: { allowed: '1.*' },
    });
  });
});

describe('the allowed-packages gate', () => {
  const deploy = (server: string, version: string) =>
    call('POST', `/servers/${server}/deployments`, { version, environment: 'staging' });
  const deployed = async (server: string) =>
    (await ok('GET', `/servers/${server}/deployments?environment=staging`)).deployments as Json[];

  beforeAll(async () => {
    await ok('POST', '/servers', { slug: 'gated' });
    await ok('PUT', path('npm', '@acme/gate-sdk'), {
      allowed: '>=2.0.0',
      deprecations: [{ versions: '2.0.x', message: 'slow start', replacement: '2.1.0' }],
    });
    for (const [version, sdk] of [
      ['1.0.0', '1.5.0'],
      ['1.1.0', '2.0.1'],
    ] as const) {
      await ok('POST', '/servers/gated/versions', {
        version,
        status: 'stable',
        packages: [pkg('npm', '@acme/gate-sdk', sdk)],
      });
    }
  });

  it('checks the gate as it is given', async () => {
    for (const gate of [
      { type: 'allowed-packages', allowDeprecated: 'yes' },
      { type: 'allowed-packages', severity: 'high' },
    ]) {
      const res = await call('PATCH', '/environments/staging', { gates: [gate] });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('invalid-gate');
    }
    const set = await ok('PATCH', '/environments/staging', { gates: [{ type: 'allowed-packages' }] });
    expect(set.gates).toEqual([{ type: 'allowed-packages', allowDeprecated: false }]);
  });

  it('refuses a version outside the allowed range or deprecated, deploying nothing', async () => {
    const outside = await deploy('gated', '1.0.0');
    expect(outside.status).toBe(409);
    expect(outside.body.code).toBe('gate-not-met');
    expect(outside.body.detail).toContain('gate allowed-packages of staging');
    expect(outside.body.detail).toContain('npm @acme/gate-sdk@1.5.0 (outside the allowed >=2.0.0)');
    expect(outside.body.detail).toContain('cut a version with allowed package versions');
    expect(outside.body.detail).toContain('PUT /api/v1/packages/npm/%40acme%2Fgate-sdk');
    const old = await deploy('gated', '1.1.0');
    expect(old.status).toBe(409);
    expect(old.body.detail).toContain('@acme/gate-sdk@2.0.1 (deprecated: slow start (use 2.1.0))');
    expect(await deployed('gated')).toEqual([]);
  });

  it('lets a deprecated but allowed version through with allowDeprecated', async () => {
    await ok('PATCH', '/environments/staging', {
      gates: [{ type: 'allowed-packages', allowDeprecated: true }],
    });
    expect((await deploy('gated', '1.1.0')).status).toBe(201);
    const refused = await deploy('gated', '1.0.0');
    expect(refused.status).toBe(409);
    expect(refused.body.detail).toContain('(deprecated allowed)');
  });

  it('passes once the catalogue allows the package version', async () => {
    await ok('PUT', path('npm', '@acme/gate-sdk'), { allowed: '>=1.5.0' });
    const res = await deploy('gated', '1.0.0');
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect((await deployed('gated')).map((d) => d.version)).toContain('1.0.0');
    await ok('PATCH', '/environments/staging', { gates: [{ type: 'allowed-packages' }] });
  });

  it('lets a rollback to a version that ran here through, and checks a lower version that never ran', async () => {
    await ok('POST', '/servers', { slug: 'rollback' });
    for (const [version, sdk] of [
      ['1.9.0', '1.0.0'],
      ['2.0.0', '1.0.0'],
      ['2.1.0', '1.1.0'],
    ] as const) {
      await ok('POST', '/servers/rollback/versions', {
        version,
        status: 'stable',
        packages: [pkg('npm', '@acme/rb-sdk', sdk)],
      });
    }
    // Not catalogued yet: both pass the gate and run in staging in turn.
    for (const version of ['2.0.0', '2.1.0']) expect((await deploy('rollback', version)).status).toBe(201);
    await ok('PUT', path('npm', '@acme/rb-sdk'), { allowed: '>=1.1.0' });
    const never = await deploy('rollback', '1.9.0');
    expect(never.status).toBe(409);
    expect(never.body.detail).toContain('@acme/rb-sdk@1.0.0 (outside the allowed >=1.1.0)');
    const back = await call('POST', '/servers/rollback/rollback', { environment: 'staging' });
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    expect(back.body.environments[0]).toMatchObject({ from: '2.1.0', to: '2.0.0' });
    expect((await deployed('rollback'))[0]).toMatchObject({ version: '2.0.0' });
    await ok('PATCH', '/environments/staging', { gates: [] });
  });
});
