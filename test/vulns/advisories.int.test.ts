import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '#core/auth/principal.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import type { RegistryType } from '#core/registry/server-json.ts';
import { createServer } from '#core/registry/servers.ts';
import { createVersion } from '#core/registry/versions.ts';
import { advisoryStatus, importAdvisories } from '#core/vulns/advisories.ts';
import { orgVulnerabilities, versionVulnerabilities } from '#core/vulns/findings.ts';
import { importFromUrls } from '#core/vulns/fetch-import.ts';
import { createIgnore, deleteIgnore } from '#core/vulns/ignores.ts';
import { scanVersions } from '#core/vulns/scan.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { allZip, exportsZip } from './osv-zip.ts';

let db: Db;
let ctx: Context;

const pkg = (registryType: RegistryType, identifier: string, version: string) => ({
  registryType,
  identifier,
  version,
  transport: { type: 'stdio' as const },
});

// On PGlite, and on PostgreSQL too when PYLEE_TEST_DATABASE_URL names one (CI): the same SQL runs on both.
describe.each(DB_DRIVERS)('on $name', (driver) => {
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    const { org } = await bootstrap(db, 'pyl_test-bootstrap-token-0123456789');
    ctx = { principal: systemPrincipal(org) };
    await createServer(db, ctx, { slug: 'weather', name: 'Weather' });
  });
  afterAll(() => cleanup?.());

  const count = async (table: string) =>
    Number((await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))[0]?.n);

  describe('advisory import', () => {
    it('refuses a corrupt zip, a bad record (naming it) and an unknown ecosystem, and changes nothing', async () => {
      const reject = (data: Uint8Array, ecosystem?: string) =>
        importAdvisories(db, ctx, { zip: data }, { source: 'test', ecosystem });
      await expect(reject(new TextEncoder().encode('{"id":"x"}'))).rejects.toThrow('not a zip archive');
      await expect(reject(new Uint8Array([0x50, 0x4b, 3, 4, 1, 2, 3]))).rejects.toThrow(
        'corrupt zip archive',
      );
      // A good export plus one record without `modified`: nothing of it is imported.
      const bad = allZip('npm', { 'GHSA-zzzz-zzzz-zzzz.json': '{"id":"GHSA-zzzz-zzzz-zzzz","affected":[]}' });
      await expect(reject(bad)).rejects.toMatchObject({
        status: 400,
        code: 'invalid-osv-record',
        message: 'GHSA-zzzz-zzzz-zzzz.json: modified must be a string',
      });
      await expect(reject(allZip('npm', { 'broken.json': '{"id":' }))).rejects.toThrow(
        'broken.json: not valid JSON',
      );
      await expect(reject(allZip('npm'), 'crates.io')).rejects.toThrow(
        'ecosystem "crates.io" is not one Pylee scans; use one of npm, PyPI, NuGet',
      );
      expect(await count('advisories')).toBe(0);
      expect(await count('advisory_imports')).toBe(0);
    });

    it('imports the exports: withdrawn dropped, other ecosystems left out, the later modified wins', async () => {
      const first = await importAdvisories(
        db,
        ctx,
        { zip: exportsZip(['npm', 'PyPI', 'NuGet-2022']) },
        {
          source: 'fixtures',
        },
      );
      expect(first).toMatchObject({
        records: 34,
        imported: 33,
        withdrawn: 1, // PYSEC-2021-63
        skipped: 0,
        perEcosystem: { npm: 20, pypi: 12, nuget: 5 }, // NuGet entries of jQuery, bootstrap (2), Moment.js; Newtonsoft.Json
      });
      const [jquery] = await db.query<{ record: { affected: { package: { ecosystem: string } }[] } }>(
        "SELECT record FROM advisories WHERE id = 'GHSA-gxr4-xjj5-5px2'",
      );
      // RubyGems and Maven entries are not kept.
      expect(jquery?.record.affected.map((a) => a.package.ecosystem)).toEqual(['npm', 'NuGet']);

      // The 2024 version of GHSA-5crp-9r3c-p9vr replaces the 2022 one; importing the 2022 one again changes nothing.
      const newer = await importAdvisories(
        db,
        ctx,
        { zip: allZip('NuGet') },
        {
          source: 'NuGet/all.zip',
          ecosystem: 'NuGet',
        },
      );
      expect(newer).toMatchObject({ records: 1, imported: 1, changed: ['GHSA-5crp-9r3c-p9vr'] });
      const older = await importAdvisories(db, ctx, { zip: allZip('NuGet-2022') }, { source: 'old' });
      expect(older).toMatchObject({ imported: 0, unchanged: 1, changed: [] });
      const [json] = await db.query<{ aliases: string[]; severity: string; score: number }>(
        "SELECT aliases, severity, score FROM advisories WHERE id = 'GHSA-5crp-9r3c-p9vr'",
      );
      expect(json).toEqual({ aliases: ['CVE-2024-21907'], severity: 'high', score: 7.5 });

      const status = await advisoryStatus(db, ctx);
      expect(status).toMatchObject({
        advisories: 33,
        perEcosystem: { npm: 20, pypi: 12, nuget: 5 },
        lastImport: { source: 'old', importedBy: 'pylee', stats: { unchanged: 1 } },
      });
      const audit = await db.query<{ action: string }>(
        "SELECT action FROM audit_events WHERE action = 'advisories.import'",
      );
      expect(audit).toHaveLength(3);
    });

    it('refuses an import without admin', async () => {
      const writer = { principal: { ...ctx.principal, permissions: ['write' as const], tokenName: 'ci' } };
      await expect(
        importAdvisories(db, writer, { zip: allZip('npm') }, { source: 'x' }),
      ).rejects.toMatchObject({
        status: 403,
        code: 'missing-permission',
      });
    });
  });

  describe('findings', () => {
    it('scans a version, hides findings by ignore rules until they expire, lists what runs where', async () => {
      await createVersion(db, ctx, 'weather', {
        version: '1.0.0',
        packages: [
          pkg('npm', 'acorn', '6.4.0'), // GHSA-6chw-6frg-f759 high
          pkg('npm', 'jquery', '3.4.1'), // GHSA-gxr4-xjj5-5px2 medium
          pkg('pypi', 'Django', '3.2.3'), // PYSEC-2021-98 (no vector, no label: unknown)
          pkg('pypi', 'cryptography', '3.2'), // only a withdrawn advisory
          pkg('nuget', 'newtonsoft.json', '12.0.3'), // GHSA-5crp-9r3c-p9vr high
          pkg('oci', 'ghcr.io/acme/weather', '1.0.0'),
          pkg('homebrew', 'weather', '1.0.0'),
        ],
      });
      await createVersion(db, ctx, 'weather', { version: '1.0.1', packages: [pkg('npm', 'acorn', '6.4.1')] });
      await scanVersions(db);

      const report = await versionVulnerabilities(db, ctx.principal, 'weather', '1.0.0');
      expect(
        report.findings.map((f) => [f.package.identifier, f.advisory.id, f.advisory.severity, f.fixed]),
      ).toEqual([
        ['acorn', 'GHSA-6chw-6frg-f759', 'high', ['5.7.4', '6.4.1', '7.1.1']],
        ['newtonsoft.json', 'GHSA-5crp-9r3c-p9vr', 'high', ['13.0.1']],
        ['jquery', 'GHSA-gxr4-xjj5-5px2', 'medium', ['3.5.0']],
        ['Django', 'PYSEC-2021-98', 'unknown', ['2.2.24', '3.1.12', '3.2.4']],
      ]);
      expect(report.findings[1]?.advisory).toMatchObject({
        aliases: ['CVE-2024-21907'],
        link: 'https://osv.dev/vulnerability/GHSA-5crp-9r3c-p9vr',
      });
      expect(report.coverage.filter((c) => c.status !== 'scanned')).toEqual([
        expect.objectContaining({ registryType: 'oci', status: 'not-scanned' }),
        expect.objectContaining({ registryType: 'homebrew', status: 'not-covered' }),
      ]);
      const high = await versionVulnerabilities(db, ctx.principal, 'weather', '1.0.0', { severity: 'high' });
      expect(high.findings).toHaveLength(2);
      expect((await versionVulnerabilities(db, ctx.principal, 'weather', '1.0.1')).findings).toEqual([]);
      await expect(
        versionVulnerabilities(db, ctx.principal, 'weather', '1.0.0', { severity: 'severe' }),
      ).rejects.toThrow('severity "severe" is not a level; use one of low, medium, high, critical');

      // An ignore rule by alias, limited to the package and server; one that has expired hides nothing.
      await expect(createIgnore(db, ctx, { advisory: 'CVE-2024-21907' })).rejects.toMatchObject({
        code: 'reason-required',
      });
      const rule = await createIgnore(db, ctx, {
        advisory: 'cve-2024-21907',
        package: 'Newtonsoft.Json',
        server: 'weather',
        reason: 'MaxDepth is set globally',
      });
      await createIgnore(db, ctx, {
        advisory: 'GHSA-6chw-6frg-f759',
        reason: 'parser input is trusted',
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      });
      await db.query(
        "UPDATE vulnerability_ignores SET expires_at = now() - interval '1 second' WHERE advisory = 'GHSA-6CHW-6FRG-F759'",
      );
      const after = await versionVulnerabilities(db, ctx.principal, 'weather', '1.0.0', { severity: 'high' });
      expect(after.findings.map((f) => f.advisory.id)).toEqual(['GHSA-6chw-6frg-f759']);
      expect(after.ignored.map((f) => [f.advisory.id, f.ignoredBy?.reason])).toEqual([
        ['GHSA-5crp-9r3c-p9vr', 'MaxDepth is set globally'],
      ]);
      await deleteIgnore(db, ctx, rule.id);
      await expect(deleteIgnore(db, ctx, rule.id)).rejects.toMatchObject({
        status: 404,
        code: 'ignore-rule-not-found',
      });

      const org = await orgVulnerabilities(db, ctx.principal, { severity: 'high' });
      expect(org.map((v) => [v.server, v.version, v.runningIn, v.counts.high])).toEqual([
        ['weather', '1.0.0', [], 2],
      ]);
      expect(await orgVulnerabilities(db, ctx.principal, { deployed: true })).toEqual([]);
    });
  });

  describe('scheduled import (PYLEE_ADVISORIES_URL)', () => {
    it('downloads each export and imports it; a failing URL is reported, the others still run', async () => {
      const zip = Buffer.from(allZip('PyPI'));
      const served = http.createServer((req, res) => {
        if (req.url === '/PyPI/all.zip') res.writeHead(200, { 'content-type': 'application/zip' }).end(zip);
        else res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => served.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(served.address() as AddressInfo).port}`;
      const events: unknown[] = [];
      try {
        const results = await importFromUrls({
          db,
          publisher: { publish: async (event) => void events.push(event) },
          urls: [`${base}/npm/all.zip`, `${base}/PyPI/all.zip`],
        });
        expect(results).toEqual([
          { url: `${base}/npm/all.zip`, ok: false, error: `${base}/npm/all.zip: HTTP 404 Not Found` },
          expect.objectContaining({
            url: `${base}/PyPI/all.zip`,
            ok: true,
            stats: expect.objectContaining({ records: 13, unchanged: 12, withdrawn: 1, announced: 0 }),
          }),
        ]);
        expect(events).toEqual([]); // nothing new, and nothing runs anywhere
        const [last] = await db.query<{ source: string }>(
          'SELECT source FROM advisory_imports ORDER BY at DESC LIMIT 1',
        );
        expect(last?.source).toBe(`${base}/PyPI/all.zip`);
      } finally {
        await new Promise((resolve) => served.close(resolve));
      }
    });
  });
});
