// Vulnerability scanning: the import of one ecosystem's OSV export, then a scan of 1,000 versions.
// The export is synthetic (no network here): BENCH_RECORDS npm records (default 20,000, about the
// size of the GitHub-reviewed npm advisories) made from a real record's shape (GHSA-6chw-6frg-f759:
// three SEMVER ranges, CVSS v3), spread over 5,000 package names, zipped as osv.dev's all.zip. The
// versions (server.json packages) each reference 3 npm packages among them and one PyPI package.
// Embedded PGlite in a temp dir; the real fixture exports are imported first as a reference.
// Run: npm run bench:scan   (prints a table, writes bench/results/scan.json)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { zipSync } from 'fflate';
import { openPglite } from '../core/db/client.ts';
import { migrateDb } from '../core/db/migrate.ts';
import { newId } from '../core/ids.ts';
import { bootstrap, systemPrincipal } from '../core/orgs.ts';
import { createServer } from '../core/registry/servers.ts';
import { importAdvisories } from '../core/vulns/advisories.ts';
import { scanVersions } from '../core/vulns/scan.ts';
import { seededRandom } from '#test/helpers/random.ts';
import { exportsZip, OSV_FIXTURES } from '#test/vulns/osv-zip.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RECORDS = Number(process.env.BENCH_RECORDS ?? 20_000);
const VERSIONS = Number(process.env.BENCH_VERSIONS ?? 1_000);
const PACKAGES = 5_000;

const template = JSON.parse(
  fs.readFileSync(path.join(OSV_FIXTURES, 'npm/GHSA-6chw-6frg-f759.json'), 'utf8'),
) as {
  affected: { package: { name: string; purl?: string }; ranges: { events: Record<string, string>[] }[] }[];
} & Record<string, unknown>;

function syntheticExport(): Uint8Array {
  const rand = seededRandom(7);
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < RECORDS; i++) {
    const name = `pkg-${i % PACKAGES}`;
    const major = Math.floor(rand() * 5);
    const record = {
      ...template,
      id: `BENCH-${i}`,
      modified: '2025-01-01T00:00:00Z',
      affected: template.affected.map((a, j) => ({
        ...a,
        package: { ecosystem: 'npm', name, purl: `pkg:npm/${name}` },
        ranges: [
          {
            type: 'SEMVER',
            events: [
              { introduced: `${major + j}.0.0` },
              { fixed: `${major + j}.${Math.floor(rand() * 9)}.1` },
            ],
          },
        ],
      })),
    };
    files[`BENCH-${i}.json`] = new TextEncoder().encode(JSON.stringify(record));
  }
  return zipSync(files);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-bench-scan-'));
const db = await openPglite(path.join(dir, 'postgres'));
await migrateDb(db);
const { org } = await bootstrap(db, 'pyl_bench-scan-token-0123456789');
const ctx = { principal: systemPrincipal(org) };
const rows: { case: string; ms: number; detail: string }[] = [];
const time = async <T>(name: string, fn: () => Promise<T>, detail: (r: T) => string) => {
  const t0 = performance.now();
  const result = await fn();
  rows.push({ case: name, ms: Math.round(performance.now() - t0), detail: detail(result) });
  return result;
};

await time(
  'import fixture exports (real records)',
  () => importAdvisories(db, ctx, { zip: exportsZip(['npm', 'PyPI', 'NuGet']) }, { source: 'fixtures' }),
  (r) => `${r.records} records, ${r.imported} stored`,
);
const data = syntheticExport();
await time(
  `import npm export (${RECORDS} records)`,
  () => importAdvisories(db, ctx, { zip: data }, { source: 'npm/all.zip' }),
  (r) => `${(data.length / 1024 / 1024).toFixed(1)} MiB zip, ${r.imported} stored`,
);

// 1,000 versions, written directly (the registry's own path is benchmarked elsewhere).
await createServer(db, ctx, { slug: 'bench', name: 'Bench' });
const [server] = await db.query<{ id: string }>("SELECT id FROM servers WHERE slug = 'bench'");
const rand = seededRandom(11);
await db.transaction(async (tx) => {
  for (let i = 0; i < VERSIONS; i++) {
    const id = newId();
    const packages = [0, 1, 2].map(() => ({
      registryType: 'npm',
      identifier: `pkg-${Math.floor(rand() * PACKAGES)}`,
      version: `${Math.floor(rand() * 6)}.${Math.floor(rand() * 9)}.0`,
    }));
    packages.push({ registryType: 'pypi', identifier: 'Django', version: '3.2.3' });
    await tx.query(
      `INSERT INTO versions (id, org_id, server_id, version, version_key, prerelease, status, config, created_by)
       VALUES ($1, $2, $3, $4, $4, false, 'stable', $5, 'bench')`,
      [id, org.id, server?.id, `1.${i}.0`, JSON.stringify({ packages })],
    );
    for (const p of packages) {
      await tx.query(
        `INSERT INTO version_packages (version_id, org_id, registry_type, identifier, package_version)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
        [id, org.id, p.registryType, p.identifier, p.version],
      );
    }
  }
});
const scanned = await time(
  `scan ${VERSIONS} versions (first)`,
  () => scanVersions(db),
  (r) =>
    `${r.filter((v) => v.advisories.length > 0).length} vulnerable, ${r.reduce((n, v) => n + v.advisories.length, 0)} findings`,
);
await time(
  `scan ${VERSIONS} versions (again)`,
  () => scanVersions(db),
  (r) => `${r.length} versions, ${r.filter((v) => v.added.length > 0).length} with new findings`,
);
await db.close();
fs.rmSync(dir, { recursive: true, force: true });

const width = Math.max(...rows.map((r) => r.case.length));
process.stdout.write(
  `${rows.map((r) => `${r.case.padEnd(width)}  ${String(r.ms).padStart(7)} ms  ${r.detail}`).join('\n')}\n`,
);
fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
fs.writeFileSync(
  path.join(ROOT, 'bench/results/scan.json'),
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, records: RECORDS, versions: VERSIONS, vulnerable: scanned.filter((v) => v.advisories.length).length, rows }, null, 2)}\n`,
);
