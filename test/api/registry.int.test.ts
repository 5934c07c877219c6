import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import semver from 'semver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Permission } from '#core/auth/principal.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/server-json');
const fixture = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name), 'utf8')) as object;

/** Tables whose content a refused request must leave exactly as it was. */
const TABLES = [
  'servers',
  'versions',
  'version_transitions',
  'version_packages',
  'variables',
  'secret_revisions',
  'audit_events',
] as const;

const npm = (identifier: string, version: string, extra: object = {}) => ({
  registryType: 'npm',
  identifier,
  version,
  transport: { type: 'stdio' },
  ...extra,
});

// chDB binds one data dir per process: one set of shared stores per file, one Db per driver.
let stores: Stores;
beforeAll(async () => {
  stores = await openTestStores();
});
afterAll(async () => {
  await stores?.close();
});

describe.each(DB_DRIVERS)('registry API on $name', (driver) => {
  let db: Db;
  let cleanup: (() => Promise<void>) | undefined;
  let api: TestApi;
  let seq = 0;

  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
  });

  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  const unique = (label: string) => `${label}-${++seq}`;

  const call = (method: Method, url: string, payload?: unknown, token = BOOTSTRAP_TOKEN) =>
    api.app.inject({
      method,
      url,
      headers: bearer(token),
      ...(payload === undefined ? {} : { payload: payload as InjectOptions['payload'] }),
    });

  /** The JSON of a request that must succeed. */
  const ok = async (method: Method, url: string, payload?: unknown, token?: string) => {
    const res = await call(method, url, payload, token);
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };

  const createServer = async (label: string, extra: object = {}) =>
    (await ok('POST', '/api/v1/servers', { slug: unique(label), ...extra })).slug as string;
  const createVersion = (server: string, body: object) =>
    ok('POST', `/api/v1/servers/${server}/versions`, body);
  const versionsUrl = (server: string) => `/api/v1/servers/${server}/versions`;

  /** Row count and a digest of the whole content of each table. */
  const snapshot = async () => {
    const entries = [];
    for (const table of TABLES) {
      const [row] = await db.query<{ n: number; digest: string }>(
        `SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest FROM ${table} t`,
      );
      entries.push([table, row]);
    }
    return Object.fromEntries(entries) as Record<(typeof TABLES)[number], { n: number; digest: string }>;
  };

  /** Runs `action` and checks it changed nothing in the registry's tables (audit trail included). */
  const unchanged = async <T>(action: () => Promise<T>): Promise<T> => {
    const before = await snapshot();
    const result = await action();
    expect(await snapshot()).toEqual(before);
    return result;
  };

  /** Checks a problem+json answer: status, stable code and a detail a person can act on. */
  const expectProblem = (
    res: LightMyRequestResponse,
    status: number,
    code: string,
    ...detail: (string | RegExp)[]
  ) => {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const body = res.json();
    expect(body, res.body).toMatchObject({ status, code });
    expect(body.detail.length, body.detail).toBeGreaterThan(15);
    for (const part of detail) expect(body.detail).toMatch(part);
    return body;
  };

  /** Audit events of this org, newest first, optionally by action and target. */
  const audit = async (filter: { action?: string; target?: string } = {}) => {
    const query = new URLSearchParams({ limit: '500', ...filter });
    return (await ok('GET', `/api/v1/audit?${query}`)).events as {
      action: string;
      actor: { name: string };
      target: { name: string };
      before: unknown;
      after: Record<string, unknown> | null;
    }[];
  };

  const versionNumbers = (body: { versions: { version: string }[] }) => body.versions.map((v) => v.version);

  describe('servers', () => {
    it('creates, lists, gets and updates a server shown as @org/slug, each change audited', async () => {
      const slug = unique('weather');
      const created = await call('POST', '/api/v1/servers', {
        slug,
        name: 'Weather',
        description: 'Forecasts for MCP clients',
        repositoryUrl: 'https://github.com/acme/weather',
        owners: ['alice', 'bob', 'alice'],
      });
      expect(created.statusCode, created.body).toBe(201);
      expect(created.json()).toMatchObject({
        slug,
        fullName: `@default/${slug}`,
        name: 'Weather',
        description: 'Forecasts for MCP clients',
        repositoryUrl: 'https://github.com/acme/weather',
        owners: ['alice', 'bob'],
        archived: false,
        archivedAt: null,
      });

      const list = await ok('GET', '/api/v1/servers');
      expect(list.servers.map((s: { slug: string }) => s.slug)).toContain(slug);
      expect(await ok('GET', `/api/v1/servers/${slug}`)).toEqual(created.json());

      const updated = await ok('PATCH', `/api/v1/servers/${slug}`, {
        description: 'Forecasts and alerts',
        owners: ['carol'],
        repositoryUrl: null,
      });
      expect(updated).toMatchObject({
        slug,
        name: 'Weather',
        description: 'Forecasts and alerts',
        owners: ['carol'],
        repositoryUrl: null,
      });
      expect(await ok('GET', `/api/v1/servers/${slug}`)).toEqual(updated);

      const events = await audit({ target: slug });
      expect(events.map((e) => e.action)).toEqual(['server.update', 'server.create']);
      expect(events[0]).toMatchObject({
        actor: { name: 'bootstrap' },
        before: { description: 'Forecasts for MCP clients', owners: ['alice', 'bob'] },
        after: { description: 'Forecasts and alerts', owners: ['carol'] },
      });
    });

    it('refuses a second server with the same slug in the org with 409 server-exists', async () => {
      const slug = await createServer('dup');
      const res = await unchanged(() => call('POST', '/api/v1/servers', { slug, name: 'Again' }));
      expectProblem(res, 409, 'server-exists', `@default/${slug}`);
      expect((await ok('GET', `/api/v1/servers/${slug}`)).name).toBe(slug);
    });

    it('rejects an invalid slug with a sentence saying what a slug is, and creates nothing', async () => {
      for (const slug of [
        'a',
        'A1',
        'Weather',
        '-ab',
        'ab-',
        'has_underscore',
        'with space',
        'x'.repeat(65),
      ]) {
        const res = await unchanged(() => call('POST', '/api/v1/servers', { slug }));
        expectProblem(res, 400, 'invalid-slug', 'lowercase letters, digits or dashes', 'e.g.');
      }
      const longest = 'x'.repeat(64);
      expect((await ok('POST', '/api/v1/servers', { slug: longest })).slug).toBe(longest);
    });

    it('rejects a repository URL that is not http(s) and changes nothing', async () => {
      const res = await unchanged(() =>
        call('POST', '/api/v1/servers', { slug: unique('repo'), repositoryUrl: 'ftp://example.com/x' }),
      );
      expectProblem(res, 400, 'invalid-repository-url', 'http(s)');
      const slug = await createServer('repo');
      const patch = await unchanged(() =>
        call('PATCH', `/api/v1/servers/${slug}`, { repositoryUrl: 'not a url' }),
      );
      expectProblem(patch, 400, 'invalid-repository-url');
    });

    it('answers 404 server-not-found for an unknown server on every server and version URL', async () => {
      const urls: [Method, string, unknown?][] = [
        ['GET', '/api/v1/servers/nope'],
        ['PATCH', '/api/v1/servers/nope', { description: 'x' }],
        ['POST', '/api/v1/servers/nope/archive'],
        ['GET', '/api/v1/servers/nope/versions'],
        ['POST', '/api/v1/servers/nope/versions', { version: '1.0.0' }],
        ['GET', '/api/v1/servers/nope/versions/latest'],
        ['GET', '/api/v1/servers/nope/versions/next?bump=patch'],
        ['GET', '/api/v1/servers/nope/versions/1.0.0'],
        ['PATCH', '/api/v1/servers/nope/versions/1.0.0', { releaseNotes: 'x' }],
        ['GET', '/api/v1/servers/nope/versions/1.0.0/server.json'],
        ['GET', '/api/v1/servers/nope/versions/1.0.0/resolved-config'],
        ['PUT', '/api/v1/servers/nope/variables/A', { value: 'x' }],
      ];
      for (const [method, url, body] of urls) {
        const res = await unchanged(() => call(method, url, body));
        expectProblem(res, 404, 'server-not-found', 'nope');
      }
    });

    it('archives a server: hidden from lists, no new versions, history kept; unarchive restores it', async () => {
      const slug = await createServer('archive');
      await createVersion(slug, { version: '1.0.0' });
      const archived = await ok('POST', `/api/v1/servers/${slug}/archive`);
      expect(archived).toMatchObject({ archived: true });
      expect(archived.archivedAt).not.toBeNull();

      const slugs = async (query = '') =>
        (await ok('GET', `/api/v1/servers${query}`)).servers.map((s: { slug: string }) => s.slug);
      expect(await slugs()).not.toContain(slug);
      expect(await slugs('?includeArchived=true')).toContain(slug);
      const registry = async (query = '') =>
        (await ok('GET', `/api/v1/registry${query}`)).servers.map(
          (e: { server: { slug: string } }) => e.server.slug,
        );
      expect(await registry()).not.toContain(slug);
      expect(await registry('?includeArchived=true')).toContain(slug);
      expect(await ok('GET', `/api/v1/servers/${slug}`)).toMatchObject({ archived: true });
      expect(versionNumbers(await ok('GET', versionsUrl(slug)))).toEqual(['1.0.0']);

      const refused = await unchanged(() => call('POST', versionsUrl(slug), { version: '1.1.0' }));
      expectProblem(refused, 409, 'server-archived', 'unarchive');

      // Archiving again changes nothing and records nothing.
      await unchanged(() => ok('POST', `/api/v1/servers/${slug}/archive`));

      expect(await ok('POST', `/api/v1/servers/${slug}/unarchive`)).toMatchObject({
        archived: false,
        archivedAt: null,
      });
      expect(await slugs()).toContain(slug);
      expect((await call('POST', versionsUrl(slug), { version: '1.1.0' })).statusCode).toBe(201);
      expect((await audit({ target: slug })).map((e) => e.action)).toEqual([
        'server.unarchive',
        'server.archive',
        'server.create',
      ]);
    });
  });

  describe('creating versions', () => {
    it('creates a version with Markdown release notes and a migration guide, audited as version.create', async () => {
      const slug = await createServer('create');
      const res = await call('POST', versionsUrl(slug), {
        version: '1.0.0',
        releaseNotes: '## Added\n\n- `forecast` tool',
        migrationGuide: '# Nothing to migrate',
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toMatchObject({
        server: slug,
        version: '1.0.0',
        status: 'development',
        prerelease: false,
        releaseNotes: '## Added\n\n- `forecast` tool',
        migrationGuide: '# Nothing to migrate',
        breaking: false,
        semverViolation: null,
        deprecation: null,
        createdFrom: null,
        createdBy: 'bootstrap',
        releasedAt: null,
        remotes: [],
        packages: [],
        variables: [],
        secrets: [],
        transitions: [{ from: null, to: 'development', actor: 'bootstrap' }],
        template: null,
        warnings: [],
      });
      const { warnings: _, ...detail } = res.json();
      expect(await ok('GET', `${versionsUrl(slug)}/1.0.0`)).toEqual(detail);
      const [event] = await audit({ action: 'version.create', target: `${slug}@1.0.0` });
      expect(event?.after).toMatchObject({ version: '1.0.0', status: 'development' });

      const rc = await createVersion(slug, { version: '1.1.0-rc.1' });
      expect(rc).toMatchObject({ status: 'release-candidate', prerelease: true });
      const stable = await createVersion(slug, { version: '1.1.0', status: 'stable' });
      expect(stable.status).toBe('stable');
      expect(stable.releasedAt).not.toBeNull();
    });

    it('rejects versions that are not strict semver, saying what is wrong with a valid example', async () => {
      const slug = await createServer('semver');
      const cases: [string, RegExp][] = [
        ['v1.2', /leading "v"/],
        ['v1.2.0', /leading "v": 1.2.0/],
        ['=1.2.0', /leading "="/],
        ['1.2', /three numbers/],
        ['01.2.3', /leading zeros/],
        ['1.2.3-', /pre-release/],
        ['^1.2.0', /range/],
        ['~1.2.0', /range/],
        ['1.2.x', /range/],
        ['1.2.3-01', /leading zeros/],
        ['1.2.3+', /build/],
        ['latest', /MAJOR\.MINOR\.PATCH/],
        [' 1.2.3', /spaces/],
        ['1.2.3\n', /spaces/],
        ['v 1.2', /three numbers/],
      ];
      for (const [version, why] of cases) {
        const res = await unchanged(() => call('POST', versionsUrl(slug), { version }));
        const body = expectProblem(res, 400, 'invalid-semver', 'not valid semver', why);
        // Every example the message gives is itself a version the API accepts.
        const examples = [...(body.detail as string).matchAll(/(?:e\.g\.|: ) ?(\S+?)[,)]?(?:\s|$)/g)]
          .map((m) => m[1] as string)
          .filter((e) => /^\d/.test(e));
        expect(examples.length, body.detail).toBeGreaterThan(0);
        for (const example of examples) {
          expect(semver.parse(example)?.format(), `${version}: ${body.detail}`).toBe(example.split('+')[0]);
        }
      }
      const valid = [
        '0.0.0',
        '1.2.3',
        '1.2.3-rc.1',
        '1.2.3-alpha.beta.1',
        '1.2.4+build.5',
        '10.20.30-rc.1+sha.abc',
      ];
      for (const version of valid)
        expect((await call('POST', versionsUrl(slug), { version })).statusCode).toBe(201);
    });

    it('refuses a duplicate version with 409 version-exists naming the existing version', async () => {
      const slug = await createServer('duplicate');
      await createVersion(slug, { version: '1.0.0', status: 'stable' });
      const res = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '1.0.0', releaseNotes: 'x' }),
      );
      const body = expectProblem(res, 409, 'version-exists', '1.0.0', 'stable', '1.0.1');
      expect(body.existing).toBe('1.0.0');
    });

    it('treats build metadata as the same number: 1.0.0+b after 1.0.0+a is 409 naming 1.0.0+a', async () => {
      const slug = await createServer('build');
      await createVersion(slug, { version: '1.0.0+a' });
      const res = await unchanged(() => call('POST', versionsUrl(slug), { version: '1.0.0+b' }));
      const body = expectProblem(res, 409, 'version-exists', '1.0.0+a');
      expect(body.existing).toBe('1.0.0+a');
      const plain = await unchanged(() => call('POST', versionsUrl(slug), { version: '1.0.0' }));
      expectProblem(plain, 409, 'version-exists', '1.0.0+a');
    });

    it('gives exactly one 201 and nineteen 409 version-exists for 20 concurrent creates of one number', async () => {
      const slug = await createServer('race');
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          call('POST', versionsUrl(slug), { version: '3.1.4', releaseNotes: `attempt ${i}` }),
        ),
      );
      const statuses = results.map((r) => r.statusCode).sort();
      expect(statuses).toEqual([201, ...Array<number>(19).fill(409)]);
      for (const res of results.filter((r) => r.statusCode === 409)) {
        expectProblem(res, 409, 'version-exists', '3.1.4');
      }
      expect(versionNumbers(await ok('GET', versionsUrl(slug)))).toEqual(['3.1.4']);
      expect(await audit({ action: 'version.create', target: `${slug}@3.1.4` })).toHaveLength(1);
      const [transitions] = await db.query<{ n: number }>(
        `SELECT count(*) AS n FROM version_transitions t JOIN versions v ON v.id = t.version_id
         JOIN servers s ON s.id = v.server_id WHERE s.slug = $1`,
        [slug],
      );
      expect(transitions?.n).toBe(1);
      const chain = await ok('GET', '/api/v1/audit/verify');
      expect(chain).toMatchObject({ ok: true, firstBad: null });
    });

    it('refuses release notes or a migration guide over 256 KiB with 400 notes-too-large', async () => {
      const slug = await createServer('notes');
      const limit = 256 * 1024;
      const big = 'x'.repeat(limit + 1);
      for (const field of ['releaseNotes', 'migrationGuide']) {
        const res = await unchanged(() =>
          call('POST', versionsUrl(slug), { version: '1.0.0', [field]: big }),
        );
        expectProblem(res, 400, 'notes-too-large', field, '256 KiB');
      }
      // The limit counts UTF-8 bytes, not characters.
      const wide = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '1.0.0', releaseNotes: 'é'.repeat(limit / 2 + 1) }),
      );
      expectProblem(wide, 400, 'notes-too-large');

      const atLimit = await createVersion(slug, { version: '1.0.0', releaseNotes: 'y'.repeat(limit) });
      expect(atLimit.releaseNotes).toHaveLength(limit);
      await ok('PATCH', `${versionsUrl(slug)}/1.0.0`, { status: 'stable' });
      const patch = await unchanged(() => call('PATCH', `${versionsUrl(slug)}/1.0.0`, { releaseNotes: big }));
      expectProblem(patch, 400, 'notes-too-large');
    });

    it('refuses a new version that starts deprecated or retired', async () => {
      const slug = await createServer('start');
      for (const status of ['deprecated', 'retired']) {
        const res = await unchanged(() => call('POST', versionsUrl(slug), { version: '1.0.0', status }));
        expectProblem(res, 400, 'invalid-status', status);
      }
    });

    it('refuses with 403 for a read token, and 404 for a token limited to other servers, creating nothing', async () => {
      const slug = await createServer('perm');
      const other = await createServer('perm-other');
      await createVersion(slug, { version: '1.0.0' });
      const read = await api.token(['read'], { name: unique('reader') });
      const limited = await api.token(['write'], { name: unique('limited'), servers: [other] });
      const attempts: [Method, string, unknown][] = [
        ['POST', versionsUrl(slug), { version: '1.1.0' }],
        ['PATCH', `${versionsUrl(slug)}/1.0.0`, { releaseNotes: 'x' }],
        ['PATCH', `/api/v1/servers/${slug}`, { description: 'x' }],
        ['POST', `/api/v1/servers/${slug}/archive`, undefined],
        ['POST', '/api/v1/servers', { slug: unique('perm-new') }],
      ];
      for (const [method, url, body] of attempts) {
        const res = await unchanged(() => call(method, url, body, read));
        expectProblem(res, 403, 'missing-permission', 'write');
      }
      for (const [method, url, body] of attempts.slice(0, 4)) {
        const res = await unchanged(() => call(method, url, body, limited));
        expectProblem(res, 404, 'server-not-found', slug);
      }
      expect((await call('POST', versionsUrl(other), { version: '1.0.0' }, limited)).statusCode).toBe(201);
    });
  });

  describe('listing versions', () => {
    let slug: string;
    beforeAll(async () => {
      slug = await createServer('sorting');
      for (const [version, status] of [
        ['1.9.0', 'stable'],
        ['1.2.0-rc.1', undefined],
        ['1.10.0', 'development'],
        ['1.2.0', 'stable'],
      ] as const) {
        await createVersion(slug, { version, ...(status ? { status } : {}) });
      }
    });

    it('sorts by semver precedence, highest first: 1.10.0 before 1.9.0, 1.2.0 before 1.2.0-rc.1', async () => {
      expect(versionNumbers(await ok('GET', versionsUrl(slug)))).toEqual([
        '1.10.0',
        '1.9.0',
        '1.2.0',
        '1.2.0-rc.1',
      ]);
    });

    it('filters by status, by pre-release and by semver range', async () => {
      const list = async (query: string) => versionNumbers(await ok('GET', `${versionsUrl(slug)}?${query}`));
      expect(await list('status=stable')).toEqual(['1.9.0', '1.2.0']);
      expect(await list('status=release-candidate')).toEqual(['1.2.0-rc.1']);
      expect(await list('status=retired')).toEqual([]);
      expect(await list('prerelease=true')).toEqual(['1.2.0-rc.1']);
      expect(await list('prerelease=false')).toEqual(['1.10.0', '1.9.0', '1.2.0']);
      expect(await list('range=%5E1.2')).toEqual(['1.10.0', '1.9.0', '1.2.0']);
      expect(await list(`range=${encodeURIComponent('>=1.2.0 <1.10.0')}`)).toEqual(['1.9.0', '1.2.0']);
      expect(await list('range=%5E1.2&status=stable')).toEqual(['1.9.0', '1.2.0']);

      // Pre-releases match a range only when asked for (npm's includePrerelease): then ^1.2 holds
      // every pre-release from 1.2.0-0 up to, not including, 2.0.0-0.
      const extra = await createServer('range');
      for (const version of ['1.1.0-rc.1', '1.2.0-rc.1', '1.2.0', '1.3.0-beta.1', '2.0.0-rc.1'])
        await createVersion(extra, { version });
      const ranged = async (query: string) =>
        versionNumbers(await ok('GET', `${versionsUrl(extra)}?${query}`));
      expect(await ranged('range=%5E1.2')).toEqual(['1.2.0']);
      expect(await ranged('range=%5E1.2&prerelease=false')).toEqual(['1.2.0']);
      expect(await ranged('range=%5E1.2&prerelease=true')).toEqual(['1.3.0-beta.1', '1.2.0-rc.1']);
      expect(await ranged(`range=${encodeURIComponent('>=1.3.0-0')}&prerelease=true`)).toEqual([
        '2.0.0-rc.1',
        '1.3.0-beta.1',
      ]);
    });

    it('rejects an invalid range or status with 400', async () => {
      expectProblem(
        await call('GET', `${versionsUrl(slug)}?range=not-a-range`),
        400,
        'invalid-range',
        'e.g. ^1.2',
      );
      expectProblem(await call('GET', `${versionsUrl(slug)}?status=shipped`), 400, 'invalid-request');
    });

    it('answers latest with the highest stable version, or with pre-releases when asked', async () => {
      const server = await createServer('latest');
      const none = await call('GET', `${versionsUrl(server)}/latest`);
      expectProblem(none, 404, 'no-version', 'prerelease=true');

      await createVersion(server, { version: '1.0.0', status: 'stable' });
      await createVersion(server, { version: '1.1.0', status: 'stable' });
      await createVersion(server, { version: '2.0.0-rc.1' });
      const latest = async (query = '') => (await ok('GET', `${versionsUrl(server)}/latest${query}`)).version;
      expect(await latest()).toBe('1.1.0');
      expect(await latest('?prerelease=false')).toBe('1.1.0');
      expect(await latest('?prerelease=true')).toBe('2.0.0-rc.1');

      await ok('PATCH', `${versionsUrl(server)}/1.1.0`, {
        status: 'deprecated',
        deprecation: { message: 'broken forecast units; use 1.0.0 until 2.0.0 ships' },
      });
      expect(await latest()).toBe('1.0.0');
      await ok('PATCH', `${versionsUrl(server)}/2.0.0-rc.1`, { status: 'retired' });
      expect(await latest('?prerelease=true')).toBe('1.0.0');
      const detail = await ok('GET', `${versionsUrl(server)}/latest`);
      expect(detail).toHaveProperty('transitions');
    });

    it('suggests the next version for each bump from the highest existing one', async () => {
      const server = await createServer('next');
      const next = async (query: string) => ok('GET', `${versionsUrl(server)}/next?${query}`);
      expect(await next('bump=minor')).toEqual({ current: null, next: '0.1.0', bump: 'minor' });

      await createVersion(server, { version: '1.2.0' });
      await createVersion(server, { version: '1.10.0' });
      await createVersion(server, { version: '1.9.3' });
      expect(await next('bump=patch')).toEqual({ current: '1.10.0', next: '1.10.1', bump: 'patch' });
      expect((await next('bump=minor')).next).toBe('1.11.0');
      expect((await next('bump=major')).next).toBe('2.0.0');
      expect((await next('bump=prerelease&preid=rc')).next).toBe('1.10.1-rc.0');
      expect((await next('bump=prerelease&preid=beta')).next).toBe('1.10.1-beta.0');

      await createVersion(server, { version: '2.0.0-rc.1' });
      expect((await next('bump=prerelease&preid=rc')).next).toBe('2.0.0-rc.2');
      expect((await next('bump=major')).next).toBe('2.0.0');

      expectProblem(await call('GET', `${versionsUrl(server)}/next?bump=huge`), 400, 'invalid-request');
      expectProblem(await call('GET', `${versionsUrl(server)}/next`), 400, 'invalid-request');
      expectProblem(
        await call('GET', `${versionsUrl(server)}/next?bump=prerelease&preid=a.b`),
        400,
        'invalid-request',
      );
    });
  });

  describe('create from another version', () => {
    it('copies the configuration, replaces the fields given, and records createdFrom', async () => {
      const slug = await createServer('from');
      const packages = [
        npm('@acme/from', '1.0.0', { environmentVariables: [{ name: 'API_KEY', isSecret: true }] }),
      ];
      const remotes = [{ type: 'sse', url: 'https://from.example.com/sse' }];
      await createVersion(slug, {
        version: '1.0.0',
        title: 'From',
        packages,
        remotes,
        releaseNotes: 'first',
        status: 'stable',
      });

      const copy = await createVersion(slug, { version: '1.0.1', from: '1.0.0' });
      expect(copy).toMatchObject({
        createdFrom: '1.0.0',
        title: 'From',
        packages,
        remotes,
        releaseNotes: '',
      });

      const newRemotes = [{ type: 'streamable-http', url: 'https://from.example.com/mcp' }];
      const overridden = await createVersion(slug, {
        version: '1.1.0',
        from: '1.0.0',
        remotes: newRemotes,
        releaseNotes: 'switch to streamable HTTP',
      });
      expect(overridden).toMatchObject({
        createdFrom: '1.0.0',
        title: 'From',
        packages,
        remotes: newRemotes,
        releaseNotes: 'switch to streamable HTTP',
      });
      const [event] = await audit({ action: 'version.create', target: `${slug}@1.1.0` });
      expect(event?.after).toMatchObject({ createdFrom: '1.0.0' });

      // The copy is what package usage sees, too.
      const uses = await ok('GET', '/api/v1/registry/packages?registryType=npm&identifier=%40acme%2Ffrom');
      expect(uses.uses.map((u: { version: string }) => u.version)).toEqual(['1.1.0', '1.0.1', '1.0.0']);

      const missing = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '1.2.0', from: '0.9.0' }),
      );
      expectProblem(missing, 404, 'version-not-found', '0.9.0');
    });
  });

  describe('lifecycle', () => {
    it('walks development → release-candidate → stable → deprecated → retired, each transition listed and audited', async () => {
      const slug = await createServer('life');
      const url = `${versionsUrl(slug)}/1.0.0`;
      await createVersion(slug, { version: '1.0.0' });
      await createVersion(slug, { version: '1.1.0', status: 'stable' });

      const rc = await ok('PATCH', url, { status: 'release-candidate', reason: 'feature complete' });
      expect(rc).toMatchObject({
        status: 'release-candidate',
        releasedAt: null,
        allowedTransitions: ['development', 'stable', 'deprecated', 'retired'],
      });
      const stable = await ok('PATCH', url, { status: 'stable' });
      expect(stable.releasedAt).not.toBeNull();
      expect(stable.allowedTransitions).toEqual(['deprecated', 'retired']);

      const deprecated = await ok('PATCH', url, {
        status: 'deprecated',
        reason: 'superseded',
        deprecation: {
          message: 'upgrade to 1.1.0: the v1.0 forecast API shuts down on 2027-01-31',
          replacement: '1.1.0',
          date: '2027-01-31T00:00:00Z',
        },
      });
      expect(deprecated).toMatchObject({
        status: 'deprecated',
        deprecation: {
          date: '2027-01-31T00:00:00.000Z',
          message: 'upgrade to 1.1.0: the v1.0 forecast API shuts down on 2027-01-31',
          replacement: '1.1.0',
        },
      });
      const retired = await ok('PATCH', url, { status: 'retired', reason: 'end of life' });
      expect(retired).toMatchObject({ status: 'retired', allowedTransitions: [] });

      expect(retired.transitions.map((t: { from: string | null; to: string }) => [t.from, t.to])).toEqual([
        [null, 'development'],
        ['development', 'release-candidate'],
        ['release-candidate', 'stable'],
        ['stable', 'deprecated'],
        ['deprecated', 'retired'],
      ]);
      expect(retired.transitions.every((t: { actor: string }) => t.actor === 'bootstrap')).toBe(true);
      expect(retired.transitions.map((t: { reason: string | null }) => t.reason)).toEqual([
        null,
        'feature complete',
        null,
        'superseded',
        'end of life',
      ]);
      const times = retired.transitions.map((t: { at: string }) => Date.parse(t.at));
      expect([...times].sort((a, b) => a - b)).toEqual(times);

      const events = await audit({ target: `${slug}@1.0.0` });
      expect(events.map((e) => e.action)).toEqual([
        'version.retire',
        'version.deprecate',
        'version.transition',
        'version.transition',
        'version.create',
      ]);
      expect(events[1]).toMatchObject({
        before: { status: 'stable' },
        after: { status: 'deprecated', deprecation: { replacement: '1.1.0' } },
      });
      expect(events[3]).toMatchObject({
        before: { status: 'development' },
        after: { status: 'release-candidate', reason: 'feature complete' },
      });

      for (const to of ['stable', 'deprecated', 'development']) {
        const res = await unchanged(() => call('PATCH', url, { status: to }));
        expectProblem(res, 409, 'invalid-transition', 'retired is final');
      }
    });

    it('refuses transitions the lifecycle does not allow, naming the allowed ones, and changes nothing', async () => {
      const slug = await createServer('deny');
      await createVersion(slug, { version: '1.0.0', status: 'stable' });
      const url = `${versionsUrl(slug)}/1.0.0`;
      for (const to of ['development', 'release-candidate']) {
        const res = await unchanged(() => call('PATCH', url, { status: to }));
        expectProblem(res, 409, 'invalid-transition', `from stable to ${to}`, 'deprecated, retired');
      }
      await ok('PATCH', url, { status: 'deprecated', deprecation: { message: 'use 2.x' } });
      const back = await unchanged(() => call('PATCH', url, { status: 'development' }));
      expectProblem(back, 409, 'invalid-transition', 'from deprecated to development');

      const unknown = await unchanged(() =>
        call('PATCH', `${versionsUrl(slug)}/9.9.9`, { status: 'stable' }),
      );
      expectProblem(unknown, 404, 'version-not-found', '9.9.9');
      expectProblem(await call('GET', `${versionsUrl(slug)}/9.9.9`), 404, 'version-not-found', slug);

      // Withdrawing a deprecation is allowed and clears it.
      const withdrawn = await ok('PATCH', url, { status: 'stable', reason: 'deprecated by mistake' });
      expect(withdrawn).toMatchObject({ status: 'stable', deprecation: null });

      // A failed release candidate goes back to development.
      await createVersion(slug, { version: '1.1.0', status: 'release-candidate' });
      expect((await ok('PATCH', `${versionsUrl(slug)}/1.1.0`, { status: 'development' })).status).toBe(
        'development',
      );
    });

    it('never makes a pre-release stable, and says which release number to cut', async () => {
      const slug = await createServer('pre');
      const created = await createVersion(slug, { version: '2.0.0-rc.1' });
      expect(created.allowedTransitions).not.toContain('stable');
      const res = await unchanged(() =>
        call('PATCH', `${versionsUrl(slug)}/2.0.0-rc.1`, { status: 'stable' }),
      );
      expectProblem(res, 409, 'invalid-transition', 'pre-release', 'cut 2.0.0');

      const direct = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '2.0.0-rc.2+build.7', status: 'stable' }),
      );
      expectProblem(direct, 409, 'invalid-transition', 'cut 2.0.0 ');
      expect((await createVersion(slug, { version: '2.0.0', status: 'stable' })).status).toBe('stable');
    });

    it('requires a deprecation message, and a replacement that is a newer version still in use', async () => {
      const slug = await createServer('deprecate');
      for (const version of ['1.0.0', '1.1.0', '1.2.0', '1.3.0'])
        await createVersion(slug, { version, status: 'stable' });
      await ok('PATCH', `${versionsUrl(slug)}/1.2.0`, {
        status: 'deprecated',
        deprecation: { message: 'old' },
      });
      await ok('PATCH', `${versionsUrl(slug)}/1.3.0`, { status: 'retired' });
      const url = `${versionsUrl(slug)}/1.1.0`;

      const noMessage = await unchanged(() => call('PATCH', url, { status: 'deprecated' }));
      expectProblem(noMessage, 400, 'invalid-deprecation', 'deprecation.message');
      const blank = await unchanged(() =>
        call('PATCH', url, { status: 'deprecated', deprecation: { message: '   ' } }),
      );
      expectProblem(blank, 400, 'invalid-deprecation', 'deprecation.message');

      const replacements: [string, string][] = [
        ['1.0.0', 'newer'],
        ['1.1.0', 'newer'],
        ['1.2.0', 'not deprecated or retired'],
        ['1.3.0', 'not deprecated or retired'],
        ['9.9.9', 'is not a version of'],
      ];
      for (const [replacement, why] of replacements) {
        const res = await unchanged(() =>
          call('PATCH', url, { status: 'deprecated', deprecation: { message: 'move on', replacement } }),
        );
        expectProblem(res, 400, 'invalid-deprecation', replacement, why);
      }
      const badNumber = await unchanged(() =>
        call('PATCH', url, { status: 'deprecated', deprecation: { message: 'move on', replacement: 'v2' } }),
      );
      expectProblem(badNumber, 400, 'invalid-semver');

      // A deprecation on a version that is not being deprecated is refused, not silently dropped.
      const stray = await unchanged(() =>
        call('PATCH', `${versionsUrl(slug)}/1.0.0`, { deprecation: { message: 'x' } }),
      );
      expectProblem(stray, 400, 'invalid-deprecation', 'stable');

      await createVersion(slug, { version: '2.0.0', status: 'stable' });
      const before = Date.now();
      const done = await ok('PATCH', url, {
        status: 'deprecated',
        deprecation: { message: 'upgrade to 2.0.0', replacement: '2.0.0' },
      });
      expect(done.deprecation).toMatchObject({ message: 'upgrade to 2.0.0', replacement: '2.0.0' });
      expect(Date.parse(done.deprecation.date)).toBeGreaterThanOrEqual(before - 1000);
      const [event] = await audit({ action: 'version.deprecate', target: `${slug}@1.1.0` });
      expect(event?.after).toMatchObject({
        deprecation: { message: 'upgrade to 2.0.0', replacement: '2.0.0' },
      });

      // The message can be changed later; that is audited as an update.
      const edited = await ok('PATCH', url, {
        deprecation: { message: 'upgrade to 2.0.0 now', replacement: '2.0.0' },
      });
      expect(edited.deprecation.message).toBe('upgrade to 2.0.0 now');
      expect(await audit({ action: 'version.update', target: `${slug}@1.1.0` })).toHaveLength(1);
    });
  });

  describe('immutability', () => {
    it('refuses content edits of a released version with a sentence saying to cut a new one', async () => {
      const slug = await createServer('immutable');
      const packages = [npm('@acme/immutable', '1.0.0')];
      await createVersion(slug, { version: '1.0.0', status: 'stable', packages });
      await createVersion(slug, { version: '1.1.0-rc.1', packages });
      const edits = [
        { packages: [npm('@acme/immutable', '1.0.1')] },
        { remotes: [{ type: 'sse', url: 'https://example.com/sse' }] },
        { title: 'Renamed' },
        { breaking: true },
      ];
      for (const [version, status] of [
        ['1.0.0', 'stable'],
        ['1.1.0-rc.1', 'release-candidate'],
      ]) {
        for (const edit of edits) {
          const res = await unchanged(() => call('PATCH', `${versionsUrl(slug)}/${version}`, edit));
          expectProblem(res, 409, 'version-immutable', status as string, 'immutable', 'cut a new version');
        }
      }
      const res = await call('PATCH', `${versionsUrl(slug)}/1.0.0`, edits[0]);
      expect(res.json().detail).toContain('1.0.1');
      expect((await ok('GET', `${versionsUrl(slug)}/1.0.0`)).packages).toEqual(packages);
    });

    it('lets status, notes and migration guide of a released version change, each change audited', async () => {
      const slug = await createServer('notes-edit');
      await createVersion(slug, { version: '1.0.0', status: 'stable', releaseNotes: 'first' });
      const url = `${versionsUrl(slug)}/1.0.0`;
      const edited = await ok('PATCH', url, {
        releaseNotes: '## Fixed\n\n- typo',
        migrationGuide: 'none needed',
      });
      expect(edited).toMatchObject({
        releaseNotes: '## Fixed\n\n- typo',
        migrationGuide: 'none needed',
        status: 'stable',
      });
      const events = await audit({ action: 'version.update', target: `${slug}@1.0.0` });
      expect(events).toHaveLength(1);
      expect(events[0]?.before).toMatchObject({ notesBytes: 5 });

      // Sending the same notes again is not a change and records nothing.
      const same = await call('PATCH', url, { releaseNotes: '## Fixed\n\n- typo' });
      expect(same.statusCode).toBe(200);
      expect(await audit({ action: 'version.update', target: `${slug}@1.0.0` })).toHaveLength(1);

      // A status change together with notes records both.
      await ok('PATCH', url, {
        status: 'deprecated',
        releaseNotes: 'see 2.0.0',
        deprecation: { message: 'use 2.x' },
      });
      expect((await audit({ target: `${slug}@1.0.0` })).map((e) => e.action).slice(0, 2)).toEqual([
        'version.update',
        'version.deprecate',
      ]);
      const empty = await unchanged(() => call('PATCH', url, {}));
      expectProblem(empty, 400, 'invalid-request');
    });

    it('lets the content of a development version change, updating package usage and the audit trail', async () => {
      const slug = await createServer('dev-edit');
      const id = `@acme/dev-edit-${seq}`;
      await createVersion(slug, { version: '0.1.0', packages: [npm(id, '0.1.0')] });
      const updated = await ok('PATCH', `${versionsUrl(slug)}/0.1.0`, { packages: [npm(id, '0.1.1')] });
      expect(updated.packages).toEqual([npm(id, '0.1.1')]);
      const uses = await ok(
        'GET',
        `/api/v1/registry/packages?registryType=npm&identifier=${encodeURIComponent(id)}`,
      );
      expect(uses.uses.map((u: { packageVersion: string }) => u.packageVersion)).toEqual(['0.1.1']);
      const [event] = await audit({ action: 'version.update', target: `${slug}@0.1.0` });
      expect(event).toMatchObject({
        before: { packages: [`npm:${id}@0.1.0`] },
        after: { packages: [`npm:${id}@0.1.1`] },
      });
      const bad = await unchanged(() =>
        call('PATCH', `${versionsUrl(slug)}/0.1.0`, { packages: [npm(id, 'latest')] }),
      );
      expectProblem(bad, 400, 'invalid-config', 'packages[0].version');
    });
  });

  describe('breaking changes', () => {
    it('requires a MAJOR bump over the previous stable unless the violation is acknowledged with a reason', async () => {
      const slug = await createServer('breaking');
      await createVersion(slug, { version: '1.2.0', status: 'stable' });

      const refused = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '1.3.0', breaking: true }),
      );
      const body = expectProblem(
        refused,
        409,
        'breaking-without-major',
        '1.2.0',
        'use 2.0.0',
        'acknowledgeSemverViolation',
      );
      expect(body.detail).toMatch(/does not raise MAJOR/);
      const notAcknowledged = await unchanged(() =>
        call('POST', versionsUrl(slug), {
          version: '1.3.0',
          breaking: true,
          acknowledgeSemverViolation: false,
        }),
      );
      expectProblem(notAcknowledged, 409, 'breaking-without-major');

      const major = await createVersion(slug, {
        version: '2.0.0',
        breaking: true,
        migrationGuide: '# From 1.x\n\nRename `city` to `location`.',
      });
      expect(major).toMatchObject({
        breaking: true,
        semverViolation: null,
        migrationGuide: expect.stringContaining('location'),
      });

      const acknowledged = await createVersion(slug, {
        version: '1.3.0',
        breaking: true,
        acknowledgeSemverViolation: true,
        reason: 'security fix: the old auth header leaked tokens',
      });
      expect(acknowledged.breaking).toBe(true);
      expect(acknowledged.semverViolation).toMatch(
        /1\.3\.0 is marked breaking but does not raise MAJOR over the previous stable 1\.2\.0/,
      );
      const [event] = await audit({
        action: 'version.semver-violation-acknowledged',
        target: `${slug}@1.3.0`,
      });
      expect(event?.after).toMatchObject({
        reason: 'security fix: the old auth header leaked tokens',
        violation: expect.stringContaining('does not raise MAJOR'),
      });

      // A pre-release of the next major may break; one of a minor may not.
      expect(
        (await call('POST', versionsUrl(slug), { version: '3.0.0-rc.1', breaking: true })).statusCode,
      ).toBe(201);
      const minorRc = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '1.4.0-rc.1', breaking: true }),
      );
      expectProblem(minorRc, 409, 'breaking-without-major', '1.2.0');

      // Marking a development version breaking later follows the same rule.
      await createVersion(slug, { version: '1.5.0' });
      const patch = await unchanged(() => call('PATCH', `${versionsUrl(slug)}/1.5.0`, { breaking: true }));
      expectProblem(patch, 409, 'breaking-without-major', 'use 2.0.0');
    });

    it('under 1.0.0 requires a MINOR bump instead, and lets the first stable version break freely', async () => {
      const slug = await createServer('zero');
      expect(
        (await createVersion(slug, { version: '0.3.0', status: 'stable', breaking: true })).breaking,
      ).toBe(true);
      const refused = await unchanged(() =>
        call('POST', versionsUrl(slug), { version: '0.3.1', breaking: true }),
      );
      expectProblem(refused, 409, 'breaking-without-major', '0.3.0', '0.4.0');
      expect((await call('POST', versionsUrl(slug), { version: '0.4.0', breaking: true })).statusCode).toBe(
        201,
      );
      expect((await call('POST', versionsUrl(slug), { version: '1.0.0', breaking: true })).statusCode).toBe(
        201,
      );
    });
  });

  describe('configuration', () => {
    it('stores remotes with {placeholders} and headers, and packages for every supported registry', async () => {
      const slug = await createServer('config');
      const remotes = [
        {
          type: 'streamable-http',
          url: 'https://{tenant}.example.com/mcp',
          variables: { tenant: { description: 'Tenant id', isRequired: true } },
          headers: [{ name: 'X-API-Key', isSecret: true, isRequired: true }],
        },
        { type: 'sse', url: 'http://localhost:8080/sse' },
      ];
      const packages = [
        npm('@acme/config', '1.2.3', { environmentVariables: [{ name: 'API_KEY', isSecret: true }] }),
        {
          registryType: 'pypi',
          identifier: 'acme-config',
          version: '1.2.3rc1',
          transport: { type: 'stdio' },
        },
        {
          registryType: 'oci',
          identifier: 'ghcr.io/acme/config',
          version: '1.2.3',
          transport: { type: 'stdio' },
        },
        {
          registryType: 'homebrew',
          identifier: 'acme/tap/config',
          version: '1.2.3',
          transport: { type: 'stdio' },
        },
        { registryType: 'nuget', identifier: 'Acme.Config', version: '1.2.3', transport: { type: 'stdio' } },
      ];
      const created = await createVersion(slug, { version: '1.0.0', remotes, packages });
      expect(created.remotes).toEqual(remotes);
      expect(created.packages).toEqual(packages);
    });

    it('rejects bad configuration with 400 and the JSON path of the problem, changing nothing', async () => {
      const slug = await createServer('bad-config');
      const cases: [object, string, ...(string | RegExp)[]][] = [
        [
          { remotes: [{ type: 'streamable-http', url: 'ftp://example.com/mcp' }] },
          'remotes[0].url',
          'http or https',
        ],
        [{ remotes: [{ type: 'sse', url: 'https://{host}/sse' }] }, 'remotes[0].url', '{host}'],
        [
          { packages: [{ ...npm('@acme/x', '1.0.0'), registryType: 'cargo' }] },
          'packages[0].registryType',
          'cargo',
          'npm, pypi, oci, homebrew, nuget',
        ],
        [
          { packages: [npm('@acme/x', '1.0.0'), npm('@acme/y', 'latest')] },
          'packages[1].version',
          '"latest" is not an exact version',
        ],
        [{ packages: [npm('@acme/x', '^1.0.0')] }, 'packages[0].version', 'range'],
        [
          { remotes: [{ type: 'websocket', url: 'https://example.com/ws' }] },
          'remotes[0].type',
          'streamable-http',
        ],
      ];
      for (const [config, at, ...why] of cases) {
        const res = await unchanged(() => call('POST', versionsUrl(slug), { version: '1.0.0', ...config }));
        const body = expectProblem(res, 400, 'invalid-config', at, ...why);
        expect(body.errors[0]).toMatchObject({ path: at });
      }
    });
  });

  describe('server.json', () => {
    it('exports a version as server.json and imports it into another server unchanged', async () => {
      const source = await createServer('sj-src', { description: 'Weather forecasts' });
      const target = await createServer('sj-dst');
      const config = {
        title: 'Weather',
        websiteUrl: 'https://weather.example.com',
        repository: { url: 'https://github.com/acme/weather', source: 'github', subfolder: 'src/weather' },
        packages: [
          npm('@acme/weather', '1.4.2', {
            runtimeHint: 'npx',
            packageArguments: [{ type: 'named', name: '--port', value: '8080' }],
            environmentVariables: [{ name: 'API_KEY', isSecret: true, isRequired: true }],
          }),
          {
            registryType: 'oci',
            identifier: 'ghcr.io/acme/weather',
            version: '1.4.2',
            transport: { type: 'streamable-http', url: 'http://localhost:{PORT}/mcp' },
            environmentVariables: [{ name: 'PORT', default: '8080' }],
          },
        ],
        remotes: [
          {
            type: 'streamable-http',
            url: 'https://{region}.weather.example.com/mcp',
            variables: { region: { default: 'eu', choices: ['eu', 'us'] } },
            headers: [
              { name: 'Authorization', value: 'Bearer {token}', variables: { token: { isSecret: true } } },
            ],
          },
        ],
      };
      await createVersion(source, { version: '1.4.2', ...config });

      const exported = await ok('GET', `${versionsUrl(source)}/1.4.2/server.json`);
      expect(exported).toEqual({
        $schema: 'https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json',
        name: `default/${source}`,
        description: 'Weather forecasts',
        version: '1.4.2',
        ...config,
      });

      const imported = await call('POST', `${versionsUrl(target)}/import`, exported);
      expect(imported.statusCode, imported.body).toBe(201);
      expect(imported.json()).toMatchObject({ version: '1.4.2', status: 'development', ...config });
      const again = await ok('GET', `${versionsUrl(target)}/1.4.2/server.json`);
      expect({ ...again, name: exported.name, description: exported.description }).toEqual(exported);
      const [event] = await audit({ action: 'version.create', target: `${target}@1.4.2` });
      expect(event).toBeDefined();

      const duplicate = await unchanged(() => call('POST', `${versionsUrl(target)}/import`, exported));
      expectProblem(duplicate, 409, 'version-exists', '1.4.2');
    });

    it('imports the reference server.json documents and refuses invalid ones with the path of the problem', async () => {
      const slug = await createServer('sj-fixtures');
      for (const name of ['minimal.json', 'with-package.json', 'with-remote.json']) {
        const doc = fixture(name) as { version: string; packages?: unknown; remotes?: unknown };
        const res = await call('POST', `${versionsUrl(slug)}/import`, doc);
        expect(res.statusCode, `${name}: ${res.body}`).toBe(201);
        expect(res.json()).toMatchObject({
          version: doc.version,
          packages: doc.packages ?? [],
          remotes: doc.remotes ?? [],
        });
      }
      const latest = await unchanged(() =>
        call('POST', `${versionsUrl(slug)}/import`, fixture('package-version-latest.json')),
      );
      expectProblem(latest, 400, 'invalid-server-json', 'packages[0].version', 'latest');
      const badVersion = await unchanged(() =>
        call('POST', `${versionsUrl(slug)}/import`, { ...fixture('minimal.json'), version: 'v1.2' }),
      );
      expect(badVersion.statusCode).toBe(400);
      expect(['invalid-semver', 'invalid-server-json']).toContain(badVersion.json().code);
      const unknown = await unchanged(() =>
        call('POST', `${versionsUrl(slug)}/import`, {
          ...fixture('minimal.json'),
          version: '3.0.0',
          status: 'active',
        }),
      );
      expectProblem(unknown, 400, 'invalid-server-json', 'status');
    });
  });

  describe('registry views', () => {
    it("lists every server with its latest stable and latest pre-release, within a limited token's servers", async () => {
      const a = await createServer('reg-a');
      const b = await createServer('reg-b');
      const c = await createServer('reg-c');
      await createVersion(a, { version: '1.0.0', status: 'stable' });
      await createVersion(a, { version: '1.1.0', status: 'stable' });
      await createVersion(a, { version: '1.2.0' });
      await createVersion(a, { version: '2.0.0-rc.1' });
      await createVersion(b, { version: '0.1.0-beta.1' });
      // A pre-release older than the latest stable is not news.
      await createVersion(c, { version: '1.0.0-rc.1' });
      await createVersion(c, { version: '1.0.0', status: 'stable' });

      const overview = await ok('GET', '/api/v1/registry');
      const entry = (slug: string) =>
        overview.servers.find((e: { server: { slug: string } }) => e.server.slug === slug);
      expect(entry(a)).toMatchObject({
        server: { slug: a, fullName: `@default/${a}` },
        latestStable: '1.1.0',
        latestPrerelease: '2.0.0-rc.1',
        versions: 4,
        statuses: { stable: 2, development: 1, 'release-candidate': 1 },
      });
      expect(entry(b)).toMatchObject({ latestStable: null, latestPrerelease: '0.1.0-beta.1', versions: 1 });
      expect(entry(c)).toMatchObject({ latestStable: '1.0.0', latestPrerelease: null, versions: 2 });

      const limited = await api.token(['read'], { name: unique('only-a'), servers: [a] });
      const seen = await ok('GET', '/api/v1/registry', undefined, limited);
      expect(seen.servers.map((e: { server: { slug: string } }) => e.server.slug)).toEqual([a]);
      const servers = await ok('GET', '/api/v1/servers', undefined, limited);
      expect(servers.servers.map((s: { slug: string }) => s.slug)).toEqual([a]);
      expectProblem(
        await call('GET', `/api/v1/servers/${b}`, undefined, limited),
        404,
        'server-not-found',
        b,
      );
      expectProblem(await call('GET', versionsUrl(b), undefined, limited), 404, 'server-not-found');
    });

    it('answers where a package is used, optionally at one package version', async () => {
      const one = await createServer('pkg-one');
      const two = await createServer('pkg-two');
      const id = `@acme/shared-${seq}`;
      await createVersion(one, { version: '1.0.0', packages: [npm(id, '1.0.0')] });
      await createVersion(one, { version: '1.10.0', packages: [npm(id, '1.1.0')], status: 'stable' });
      await createVersion(one, { version: '1.9.0', packages: [npm('@acme/other', '1.0.0')] });
      await createVersion(two, {
        version: '2.0.0',
        packages: [npm('@acme/other', '1.0.0'), npm(id, '1.0.0')],
      });

      const uses = async (query: string, token?: string) =>
        (
          await ok(
            'GET',
            `/api/v1/registry/packages?registryType=npm&identifier=${encodeURIComponent(id)}${query}`,
            undefined,
            token,
          )
        ).uses;
      expect(await uses('')).toEqual([
        {
          server: one,
          version: '1.10.0',
          status: 'stable',
          registryType: 'npm',
          identifier: id,
          packageVersion: '1.1.0',
        },
        {
          server: one,
          version: '1.0.0',
          status: 'development',
          registryType: 'npm',
          identifier: id,
          packageVersion: '1.0.0',
        },
        {
          server: two,
          version: '2.0.0',
          status: 'development',
          registryType: 'npm',
          identifier: id,
          packageVersion: '1.0.0',
        },
      ]);
      expect(
        (await uses('&version=1.0.0')).map(
          (u: { server: string; version: string }) => `${u.server}@${u.version}`,
        ),
      ).toEqual([`${one}@1.0.0`, `${two}@2.0.0`]);
      expect(await uses('&version=9.9.9')).toEqual([]);
      const pypi = await ok(
        'GET',
        `/api/v1/registry/packages?registryType=pypi&identifier=${encodeURIComponent(id)}`,
      );
      expect(pypi.uses).toEqual([]);
      const limited = await api.token(['read'], { name: unique('only-two'), servers: [two] });
      expect((await uses('', limited)).map((u: { server: string }) => u.server)).toEqual([two]);
      expectProblem(
        await call('GET', `/api/v1/registry/packages?registryType=cargo&identifier=x`),
        400,
        'invalid-request',
      );
    });
  });

  describe('another org', () => {
    it('sees every server and version URL of the default org as not found, and changes nothing', async () => {
      const slug = await createServer('private', { description: 'secret sauce' });
      await createVersion(slug, {
        version: '1.0.0',
        status: 'stable',
        packages: [npm(`@acme/private-${seq}`, '1.0.0')],
      });
      await ok('PUT', `/api/v1/servers/${slug}/variables/REGION`, { value: 'eu' });
      await ok('PUT', `/api/v1/servers/${slug}/secrets/TOKEN`, { value: 'hidden' });
      await ok('PUT', `${versionsUrl(slug)}/1.0.0/variables/REGION`, { value: 'us' });

      const orgSlug = unique('other');
      const created = await call('POST', '/api/v1/orgs', { slug: orgSlug });
      expect(created.statusCode, created.body).toBe(201);
      const other = created.json().token as string;

      const server = `/api/v1/servers/${slug}`;
      const version = `${versionsUrl(slug)}/1.0.0`;
      const urls: [Method, string, unknown?][] = [
        ['GET', server],
        ['PATCH', server, { description: 'mine now' }],
        ['POST', `${server}/archive`],
        ['POST', `${server}/unarchive`],
        ['GET', versionsUrl(slug)],
        ['POST', versionsUrl(slug), { version: '1.0.1' }],
        ['POST', `${versionsUrl(slug)}/import`, { ...fixture('minimal.json'), version: '1.0.2' }],
        ['GET', `${versionsUrl(slug)}/latest`],
        ['GET', `${versionsUrl(slug)}/next?bump=patch`],
        ['GET', version],
        ['PATCH', version, { releaseNotes: 'mine' }],
        ['PATCH', version, { status: 'retired' }],
        ['GET', `${version}/resolved-config?environment=production`],
        ['GET', `${version}/server.json`],
        ['GET', `${server}/variables`],
        ['PUT', `${server}/variables/REGION`, { value: 'xx' }],
        ['DELETE', `${server}/variables/REGION`],
        ['GET', `${server}/secrets`],
        ['PUT', `${server}/secrets/TOKEN`, { value: 'stolen' }],
        ['DELETE', `${server}/secrets/TOKEN`],
        ['GET', `${server}/secrets/TOKEN/history`],
        ['GET', `${version}/variables`],
        ['PUT', `${version}/variables/REGION`, { value: 'xx' }],
        ['DELETE', `${version}/variables/REGION`],
      ];
      for (const [method, url, body] of urls) {
        const res = await unchanged(() => call(method, url, body, other));
        const problem = expectProblem(res, 404, 'server-not-found', slug, `@${orgSlug}`);
        expect(JSON.stringify(problem)).not.toContain('@default');
      }
      expect((await ok('GET', '/api/v1/servers', undefined, other)).servers).toEqual([]);
      expect((await ok('GET', '/api/v1/registry', undefined, other)).servers).toEqual([]);
      const usage = await ok(
        'GET',
        `/api/v1/registry/packages?registryType=npm&identifier=${encodeURIComponent(`@acme/private-${seq}`)}`,
        undefined,
        other,
      );
      expect(usage.uses).toEqual([]);

      // Slugs are unique per org: the other org may use the same one.
      const same = await ok('POST', '/api/v1/servers', { slug }, other);
      expect(same.fullName).toBe(`@${orgSlug}/${slug}`);
      expect((await ok('GET', server)).description).toBe('secret sauce');
    });
  });

  describe('variables and secrets', () => {
    let slug: string;
    let versionUrl: string;
    const secrets = {
      server: `sk-server-${randomBytes(8).toString('hex')}`,
      production: `sk-prod-${randomBytes(8).toString('hex')}`,
    };

    beforeAll(async () => {
      slug = await createServer('vars');
      versionUrl = `${versionsUrl(slug)}/1.0.0`;
      await createVersion(slug, {
        version: '1.0.0',
        packages: [
          npm('@acme/vars', '1.0.0', {
            environmentVariables: [
              { name: 'API_KEY', isRequired: true, isSecret: true },
              { name: 'API_URL', isRequired: true },
              { name: 'LOG_LEVEL' },
              { name: 'DB_URL', isRequired: true },
              { name: 'REGION', isRequired: true, default: 'eu-west-1' },
            ],
          }),
        ],
        remotes: [
          {
            type: 'streamable-http',
            url: 'https://{host}/mcp',
            variables: { host: { isRequired: true } },
            headers: [
              {
                name: 'Authorization',
                value: 'Bearer {API_KEY}',
                variables: { API_KEY: { isRequired: true, isSecret: true } },
              },
            ],
          },
        ],
      });
      const server = `/api/v1/servers/${slug}`;
      const sets: [string, string][] = [
        ['/api/v1/variables/LOG_LEVEL', 'info'],
        ['/api/v1/variables/API_URL', 'https://org.example'],
        ['/api/v1/variables/LOG_LEVEL?environment=production', 'warn'],
        [`${server}/variables/API_URL`, 'https://server.example'],
        [`${server}/variables/host`, 'mcp.example.com'],
        [`${server}/secrets/API_KEY`, secrets.server],
        [`${server}/variables/API_URL?environment=production`, 'https://prod.example'],
        [`${server}/secrets/API_KEY?environment=production`, secrets.production],
        [`${versionUrl}/variables/API_URL`, 'https://version.example'],
      ];
      for (const [url, value] of sets) await ok('PUT', url, { value });
    });

    it('resolves the configuration per environment, the most specific scope winning', async () => {
      const deployer = await api.token(['deploy'], { name: unique('deployer') });
      const production = await ok(
        'GET',
        `${versionUrl}/resolved-config?environment=production`,
        undefined,
        deployer,
      );
      expect(production).toMatchObject({ server: slug, version: '1.0.0', environment: 'production' });
      expect(production.variables).toEqual({
        API_KEY: { value: secrets.production, secret: true, scope: 'server-environment' },
        API_URL: { value: 'https://prod.example', secret: false, scope: 'server-environment' },
        LOG_LEVEL: { value: 'warn', secret: false, scope: 'environment' },
        host: { value: 'mcp.example.com', secret: false, scope: 'server' },
      });
      expect(production.missing.map((m: { name: string }) => m.name)).toEqual(['DB_URL']);
      expect(production.missing[0]).toMatchObject({ isRequired: true, where: 'packages[0] npm:@acme/vars' });
      const env = Object.fromEntries(
        production.config.packages[0].environmentVariables.map((e: { name: string; value?: string }) => [
          e.name,
          e.value,
        ]),
      );
      expect(env).toEqual({
        API_KEY: secrets.production,
        API_URL: 'https://prod.example',
        LOG_LEVEL: 'warn',
        DB_URL: undefined,
        REGION: 'eu-west-1',
      });
      expect(production.config.remotes[0].url).toBe('https://mcp.example.com/mcp');
      expect(production.config.remotes[0].headers[0].value).toBe(`Bearer ${secrets.production}`);

      const staging = await ok(
        'GET',
        `${versionUrl}/resolved-config?environment=staging`,
        undefined,
        deployer,
      );
      expect(staging.variables).toEqual({
        API_KEY: { value: secrets.server, secret: true, scope: 'server' },
        API_URL: { value: 'https://version.example', secret: false, scope: 'version' },
        LOG_LEVEL: { value: 'info', secret: false, scope: 'org' },
        host: { value: 'mcp.example.com', secret: false, scope: 'server' },
      });
      expect(staging.missing.map((m: { name: string }) => m.name)).toEqual(['DB_URL']);

      await ok('PUT', `/api/v1/variables/DB_URL?environment=staging`, { value: 'postgres://staging' });
      const complete = await ok(
        'GET',
        `${versionUrl}/resolved-config?environment=staging`,
        undefined,
        deployer,
      );
      expect(complete.missing).toEqual([]);
      expect(complete.variables.DB_URL).toEqual({
        value: 'postgres://staging',
        secret: false,
        scope: 'environment',
      });
    });

    it('returns secret values only from resolved-config: deploy permission, audited without the values', async () => {
      for (const permissions of [['read'], ['write'], ['read', 'write']] as Permission[][]) {
        const token = await api.token(permissions, { name: unique('no-deploy') });
        const res = await unchanged(() =>
          call('GET', `${versionUrl}/resolved-config?environment=production`, undefined, token),
        );
        expectProblem(res, 403, 'missing-permission', 'deploy');
        expect(res.body).not.toContain(secrets.production);
      }
      const deployer = await api.token(['deploy'], { name: unique('resolver') });
      const resolved = await call(
        'GET',
        `${versionUrl}/resolved-config?environment=production`,
        undefined,
        deployer,
      );
      expect(resolved.statusCode).toBe(200);
      expect(resolved.body).toContain(secrets.production);

      const [event] = await audit({ action: 'version.config.resolve', target: `${slug}@1.0.0` });
      expect(event).toMatchObject({
        actor: { name: expect.stringMatching(/^resolver-/) },
        after: {
          environment: 'production',
          names: ['API_KEY', 'API_URL', 'LOG_LEVEL', 'host'],
          sealed: ['API_KEY'],
          missing: ['DB_URL'],
        },
      });

      // Nowhere else: not in lists, version details, the audit trail or the database.
      const secretList = await ok('GET', `/api/v1/servers/${slug}/secrets?environment=production`);
      expect(secretList.secrets).toEqual([
        expect.objectContaining({
          name: 'API_KEY',
          secret: true,
          scope: 'server-environment',
          fingerprint: expect.any(String),
        }),
      ]);
      expect(secretList.secrets[0]).not.toHaveProperty('value');
      expect(secretList.secrets[0].updatedAt).toEqual(expect.any(String));
      const everywhere = [
        JSON.stringify(secretList),
        (await call('GET', `/api/v1/servers/${slug}/secrets`)).body,
        (await call('GET', `/api/v1/servers/${slug}/variables?environment=production`)).body,
        (await call('GET', versionUrl)).body,
        (await call('GET', `${versionUrl}/server.json`)).body,
        (await call('GET', `/api/v1/servers/${slug}/secrets/API_KEY/history`)).body,
        (await call('GET', '/api/v1/audit?limit=500')).body,
        JSON.stringify(await db.query('SELECT * FROM variables')),
        JSON.stringify(await db.query('SELECT * FROM secret_revisions')),
        JSON.stringify(await db.query('SELECT * FROM audit_events')),
      ];
      for (const text of everywhere) {
        expect(text).not.toContain(secrets.production);
        expect(text).not.toContain(secrets.server);
      }
    });

    it('keeps the history of a rotated secret, newest revision first', async () => {
      const url = `/api/v1/servers/${slug}/secrets/ROTATED`;
      const fingerprints = [];
      for (const value of ['one', 'two', 'three'])
        fingerprints.push((await ok('PUT', url, { value })).fingerprint);
      expect(new Set(fingerprints).size).toBe(3);
      const history = await ok('GET', `${url}/history`);
      expect(history.revisions.map((r: { revision: number }) => r.revision)).toEqual([3, 2, 1]);
      expect(history.revisions.map((r: { fingerprint: string }) => r.fingerprint)).toEqual(
        [...fingerprints].reverse(),
      );
      expect(history.revisions[0]).toMatchObject({ createdBy: 'bootstrap', keyId: expect.any(String) });
      expect(JSON.stringify(history)).not.toMatch(/"(one|two|three)"/);
      const listed = (await ok('GET', `/api/v1/servers/${slug}/secrets`)).secrets.find(
        (s: { name: string }) => s.name === 'ROTATED',
      );
      expect(listed).toMatchObject({ revision: 3, fingerprint: fingerprints[2] });
      const resolved = await ok('GET', `${versionUrl}/resolved-config`);
      expect(resolved.variables.ROTATED).toEqual({ value: 'three', secret: true, scope: 'server' });
      expect(await audit({ action: 'secret.set', target: 'ROTATED' })).toHaveLength(3);
    });

    it('rejects invalid variable and secret names with 400 invalid-variable-name, changing nothing', async () => {
      const bases = ['/api/v1', `/api/v1/servers/${slug}`, versionUrl];
      for (const base of bases) {
        for (const kind of ['variables', 'secrets']) {
          for (const name of ['1BAD', 'bad-name', 'has%20space', 'dot.ted']) {
            const res = await unchanged(() => call('PUT', `${base}/${kind}/${name}`, { value: 'x' }));
            expectProblem(res, 400, 'invalid-variable-name', 'e.g. API_BASE_URL');
          }
        }
      }
    });

    it('rejects an invalid environment, and an environment on a version-scoped variable', async () => {
      const bad = await unchanged(() =>
        call('PUT', '/api/v1/variables/X?environment=Production', { value: 'x' }),
      );
      expectProblem(bad, 400, 'invalid-environment', 'e.g. production');
      const resolve = await unchanged(() => call('GET', `${versionUrl}/resolved-config?environment=prod_1`));
      expectProblem(resolve, 400, 'invalid-environment');
      // A version runs alike everywhere: an environment on a version-scoped variable is refused, not dropped.
      const versionEnv = await unchanged(() =>
        call('PUT', `${versionUrl}/variables/X?environment=production`, { value: 'x' }),
      );
      expectProblem(versionEnv, 400, 'invalid-scope', 'version and an environment');
    });

    it('answers 404 when deleting a secret through /variables, and deletes nothing', async () => {
      const res = await unchanged(() => call('DELETE', `/api/v1/servers/${slug}/variables/API_KEY`));
      expectProblem(res, 404, 'variable-not-found', 'secret', '/secrets/API_KEY');
      const plain = await unchanged(() => call('DELETE', `/api/v1/servers/${slug}/secrets/host`));
      expectProblem(plain, 404, 'variable-not-found', '/variables/host');
      const missing = await unchanged(() => call('DELETE', `/api/v1/servers/${slug}/variables/NOPE`));
      expectProblem(missing, 404, 'variable-not-found', 'NOPE');

      await ok('PUT', `/api/v1/servers/${slug}/secrets/TEMP`, { value: 'temporary' });
      const deleted = await ok('DELETE', `/api/v1/servers/${slug}/secrets/TEMP`);
      expect(deleted).toMatchObject({ name: 'TEMP', secret: true });
      expect(deleted).not.toHaveProperty('value');
      expectProblem(
        await call('GET', `/api/v1/servers/${slug}/secrets/TEMP/history`),
        404,
        'variable-not-found',
      );
      expect(await audit({ action: 'secret.delete', target: 'TEMP' })).toHaveLength(1);
    });

    it('lists the variables and secrets set on a version in its detail', async () => {
      const detail = await ok('GET', versionUrl);
      expect(detail.variables).toEqual([
        expect.objectContaining({ name: 'API_URL', scope: 'version', value: 'https://version.example' }),
      ]);
      expect(detail.secrets).toEqual([]);
    });
  });
});
