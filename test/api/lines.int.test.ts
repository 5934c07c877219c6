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

async function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) {
  const res = await api.app.inject({
    method,
    url: `/api/v1${url}`,
    headers: bearer(BOOTSTRAP_TOKEN),
    payload,
  });
  return { status: res.statusCode, body: res.body ? (res.json() as Record<string, unknown>) : {} };
}
async function ok(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) {
  const res = await call(method, url, payload);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

describe('maintenance lines, hotfixes and branch versions', () => {
  const S = '/servers/billing';
  beforeAll(async () => {
    await ok('POST', '/servers', { slug: 'billing' });
    for (const version of ['1.4.0', '1.4.1', '1.4.2', '2.0.0', '2.1.0'])
      await ok('POST', `${S}/versions`, { version, status: 'stable' });
  });

  it('declares lines with an end of support and flags the lines past it', async () => {
    await ok('PUT', `${S}/lines/1.4.x`, { endOfSupport: '2026-01-31', description: 'LTS for EU customers' });
    expect(await ok('PUT', `${S}/lines/2.x`, {})).toMatchObject({
      pattern: '2.x',
      endOfSupport: null,
      supported: true,
      latest: '2.1.0',
      versions: 2,
    });
    const { lines } = (await ok('GET', `${S}/lines`)) as { lines: Record<string, unknown>[] };
    expect(lines.map((l) => [l.pattern, l.supported, l.latest])).toEqual([
      ['2.x', true, '2.1.0'],
      ['1.4.x', false, '1.4.2'],
    ]);
    expect(await ok('GET', `${S}/versions/1.4.1`)).toMatchObject({
      line: { pattern: '1.4.x', declared: true, endOfSupport: '2026-01-31', supported: false },
    });
    // A version outside every declared line belongs to its major's line, supported.
    await ok('POST', '/servers', { slug: 'solo' });
    await ok('POST', '/servers/solo/versions', { version: '3.2.0' });
    expect((await ok('GET', '/servers/solo/versions/3.2.0')).line).toEqual({
      pattern: '3.x',
      declared: false,
      endOfSupport: null,
      supported: true,
    });
  });

  it('suggests and cuts a hotfix on an old line that never becomes the server’s latest', async () => {
    expect(await ok('GET', `${S}/versions/next?bump=patch&line=1.4.x`)).toEqual({
      current: '1.4.2',
      next: '1.4.3',
      bump: 'patch',
      line: '1.4.x',
    });
    await ok('POST', `${S}/versions`, { version: '1.4.3', line: '1.4.x', status: 'stable' });
    expect((await ok('GET', `${S}/versions/latest`)).version).toBe('2.1.0');
    expect((await ok('GET', `${S}/versions/latest?line=1.4.x`)).version).toBe('1.4.3');
    expect((await ok('GET', `${S}/versions/next?bump=minor&line=2.x`)).next).toBe('2.2.0');
    expect((await ok('GET', `${S}/versions/next?bump=patch`)).next).toBe('2.1.1');
  });

  it('numbers development versions from a branch, in a line too', async () => {
    const first = await ok('POST', `${S}/versions`, { prerelease: { branch: 'feat/Login_v2' } });
    expect(first).toMatchObject({
      version: '2.1.1-feat-login-v2.0',
      status: 'development',
      prerelease: true,
    });
    expect((await ok('POST', `${S}/versions`, { prerelease: { branch: 'feat/Login_v2' } })).version).toBe(
      '2.1.1-feat-login-v2.1',
    );
    expect(
      (await ok('POST', `${S}/versions`, { prerelease: { branch: 'fix/rounding' }, line: '1.4.x' })).version,
    ).toBe('1.4.4-fix-rounding.0');
    // Pipelines numbering the same branch at once each get their own number.
    const together = await Promise.all(
      [1, 2, 3].map(() => ok('POST', `${S}/versions`, { prerelease: { branch: 'ci' } })),
    );
    expect(together.map((v) => v.version).sort()).toEqual(['2.1.1-ci.0', '2.1.1-ci.1', '2.1.1-ci.2']);
  });

  it('refuses bad lines, bumps and references with a clear error and stores nothing', async () => {
    const count = async () =>
      Number((await stores.db.query<{ n: number }>('SELECT count(*)::int AS n FROM versions'))[0]?.n ?? 0);
    const before = await count();
    const cases: [string, string, string, object | undefined, number, RegExp][] = [
      [
        'PUT',
        `${S}/lines/1.4`,
        'pattern',
        {},
        400,
        /not MAJOR\.x or MAJOR\.MINOR\.x, e\.g\. 2\.x or 1\.4\.x/,
      ],
      ['PUT', `${S}/lines/3.x`, 'date', { endOfSupport: '31/01/2027' }, 400, /not a date such as 2027-06-30/],
      ['PUT', `${S}/lines/3.x`, 'unknown property', { eol: '2027-01-01' }, 400, /eol|additional/i],
      [
        'GET',
        `${S}/versions/next?bump=minor&line=1.4.x`,
        'bump',
        undefined,
        400,
        /outside line 1\.4\.x; use patch/,
      ],
      ['GET', `${S}/versions/latest?line=9.x`, 'undeclared', undefined, 404, /declares no line 9\.x/],
      [
        'POST',
        `${S}/versions`,
        'not in line',
        { version: '2.2.0', line: '1.4.x' },
        400,
        /2\.2\.0 is not in line 1\.4\.x/,
      ],
      ['POST', `${S}/versions`, 'no number', { status: 'development' }, 400, /version is required/],
      [
        'POST',
        `${S}/versions`,
        'branch',
        { prerelease: { branch: '///' } },
        400,
        /no usable pre-release name/,
      ],
      ['DELETE', `${S}/lines/7.x`, 'missing', undefined, 404, /declares no line 7\.x/],
      ['GET', '/servers/nowhere/lines', 'server', undefined, 404, /server nowhere was not found/],
    ];
    for (const [method, url, what, body, status, detail] of cases) {
      const res = await call(method as 'GET', url, body);
      expect(res.status, what).toBe(status);
      expect(String(res.body.detail), what).toMatch(detail);
    }
    expect(await count()).toBe(before);
    expect((await ok('GET', `${S}/lines`)).lines).toHaveLength(2);
  });

  it('removes a line (its versions stay), audited', async () => {
    await ok('PUT', `${S}/lines/1.x`, {});
    expect((await call('DELETE', `${S}/lines/1.x`)).status).toBe(204);
    const audit = await stores.db.query<{ action: string; target_name: string }>(
      `SELECT action, target_name FROM audit_events WHERE action LIKE 'line.%' ORDER BY seq`,
    );
    expect(audit.map((a) => `${a.action} ${a.target_name}`)).toEqual([
      'line.create billing@1.4.x',
      'line.create billing@2.x',
      'line.create billing@1.x',
      'line.delete billing@1.x',
    ]);
    expect((await ok('GET', `${S}/versions/1.4.3`)).status).toBe('stable');
  });
});
