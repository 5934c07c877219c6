// The web UI: production bundle size (raw and gzip, JS + CSS: everything, and what the overview loads
// first) and the time to first meaningful render of the on-call overview with 50 servers in real
// Chromium (navigation start → all 50 server × environment rows on screen with their versions), next
// to a reference measured in the same run: a static HTML table of the same 50 rows from a bare
// node:http server. Also the time until the rows in view show their figures and sparklines.
// Run: npm run bench:web   (prints a table, writes bench/results/web.json; needs web/build and chromium)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { ADMIN_TOKEN, launchChromium, seedServer, signIn, startPlatform } from '#test/web/platform.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const BUILD = path.join(ROOT, 'web', 'build');
const SERVERS = 50;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : [p];
  });
}

function sizes(list: string[]) {
  let raw = 0;
  let gzip = 0;
  for (const f of list) {
    const data = fs.readFileSync(f);
    raw += data.length;
    gzip += gzipSync(data, { level: 9 }).length;
  }
  return { files: list.length, rawBytes: raw, gzipBytes: gzip };
}

if (!fs.existsSync(path.join(BUILD, 'index.html'))) {
  process.stderr.write('web/build is missing: run `npm run build:web` first\n');
  process.exit(1);
}
const assets = files(path.join(BUILD, '_app')).filter((f) => /\.(js|css)$/.test(f));
const total = sizes(assets);
// The app shell every first load fetches: index.html's preloads, entry scripts and styles (routes load after).
const index = fs.readFileSync(path.join(BUILD, 'index.html'), 'utf8');
const referenced = [...index.matchAll(/(?:href|import\()\s*=?\s*"(\/_app\/[^"]+\.(?:js|css))"/g)].map((m) =>
  path.join(BUILD, m[1] as string),
);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const round = (x: number) => Math.round(x * 10) / 10;

const platform = await startPlatform();
try {
  const { key } = await platform.call<{ key: string }>('POST', '/ingest-keys', { name: 'bench' });
  for (let i = 0; i < SERVERS; i++) {
    await seedServer(platform, key, {
      slug: `server-${String(i).padStart(2, '0')}`,
      canary: i % 5 === 0,
      regress: i % 10 === 0,
      minutes: 10,
      perMinute: 6,
    });
  }
  const rows = (
    await Promise.all(
      Array.from({ length: SERVERS }, (_, i) => `server-${String(i).padStart(2, '0')}`).map(async (slug) => {
        const { environments } = await platform.call<{
          environments: {
            environment: string;
            stable: { version: string } | null;
            canary: { version: string; weight: number } | null;
          }[];
        }>('GET', `/servers/${slug}/environments`);
        return environments
          .filter((e) => e.stable || e.canary)
          .map((e) => ({
            slug,
            env: e.environment,
            stable: e.stable?.version ?? '',
            canary: e.canary ? `${e.canary.version} (${e.canary.weight} %)` : '',
          }));
      }),
    )
  ).flat();

  // Reference: the same rows as a static HTML table, no script, no API.
  const table = `<!doctype html><meta charset=utf-8><title>ref</title><table id=ref><tbody>${rows
    .map((r) => `<tr><td>${r.slug}<td>${r.env}<td>${r.stable}<td>${r.canary}`)
    .join('')}</tbody></table>`;
  const reference = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end(table),
  );
  await new Promise<void>((resolve) => reference.listen(0, '127.0.0.1', resolve));
  const refUrl = `http://127.0.0.1:${(reference.address() as AddressInfo).port}/`;

  const browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await signIn(page, platform.apiUrl, ADMIN_TOKEN);
  const overviewFirst: number[] = [];
  const overviewFigures: number[] = [];
  const staticTable: number[] = [];
  for (let run = 0; run < RUNS + 1; run++) {
    await page.goto('about:blank');
    await page.goto(`${platform.apiUrl}/`, { waitUntil: 'commit' });
    const first = await page.waitForFunction(
      (n) =>
        document.querySelectorAll('[data-testid=overview-grid] tbody tr').length >= n && performance.now(),
      rows.length,
      { polling: 'raf', timeout: 60_000 },
    );
    // Rows in view have loaded their figures when each shows a sparkline.
    const figures = await page.waitForFunction(
      () => {
        const inView = Array.from(document.querySelectorAll('[data-testid=overview-grid] tbody tr')).filter(
          (tr) => tr.getBoundingClientRect().top < innerHeight,
        );
        return inView.length > 0 && inView.every((tr) => tr.querySelector('svg.spark')) && performance.now();
      },
      undefined,
      { polling: 'raf', timeout: 60_000 },
    );
    await page.goto(refUrl, { waitUntil: 'commit' });
    const ref = await page.waitForFunction(
      (n) => document.querySelectorAll('#ref tr').length >= n && performance.now(),
      rows.length,
      { polling: 'raf' },
    );
    if (run === 0) continue; // warm-up: browser and API caches
    overviewFirst.push(Number(await first.jsonValue()));
    overviewFigures.push(Number(await figures.jsonValue()));
    staticTable.push(Number(await ref.jsonValue()));
  }
  await browser.close();
  reference.close();

  const result = {
    date: new Date().toISOString(),
    bundle: {
      all: total,
      firstLoad: sizes(referenced),
    },
    overview: {
      servers: SERVERS,
      rows: rows.length,
      runs: RUNS,
      firstMeaningfulRenderMs: { median: round(median(overviewFirst)), runs: overviewFirst.map(round) },
      figuresInViewMs: { median: round(median(overviewFigures)), runs: overviewFigures.map(round) },
      referenceStaticTableMs: { median: round(median(staticTable)), runs: staticTable.map(round) },
    },
  };
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const out = process.stdout;
  out.write(`bundle (JS + CSS)          files   raw         gzip\n`);
  out.write(
    `  everything               ${String(total.files).padStart(5)}   ${kib(total.rawBytes).padEnd(10)}  ${kib(total.gzipBytes)}\n`,
  );
  out.write(
    `  app shell (index.html)   ${String(result.bundle.firstLoad.files).padStart(5)}   ${kib(result.bundle.firstLoad.rawBytes).padEnd(10)}  ${kib(result.bundle.firstLoad.gzipBytes)}\n`,
  );
  out.write(`\noverview with ${SERVERS} servers (${rows.length} rows), median of ${RUNS} runs in Chromium\n`);
  out.write(
    `  first meaningful render (all rows with versions)   ${result.overview.firstMeaningfulRenderMs.median} ms\n`,
  );
  out.write(
    `  rows in view with figures and sparklines           ${result.overview.figuresInViewMs.median} ms\n`,
  );
  out.write(
    `  reference: static HTML table of the same rows      ${result.overview.referenceStaticTableMs.median} ms\n`,
  );
  fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'bench/results/web.json'), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await platform.stop();
}
