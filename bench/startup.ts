// Start-up time of `pylee start` (all roles, embedded stores) until /readyz answers 200 and every
// role has started, cold
// (empty data dir: initdb, migrations, bootstrap), warm (existing data dir) and grown (a data dir
// holding BENCH_GROWN_ROWS request rows and BENCH_GROWN_VERSIONS versions), next to a reference
// measured in the same run: opening the three embedded stores bare, with no Pylee code.
// Run: npm run bench:startup   (prints a table, writes bench/results/startup.json)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { openDb } from '../core/db/client.ts';
import { systemPrincipal, type Org } from '../core/orgs.ts';
import { createServer } from '../core/registry/servers.ts';
import { createVersion } from '../core/registry/versions.ts';
import { openWarehouse } from '../core/warehouse/client.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const GROWN_ROWS = Number(process.env.BENCH_GROWN_ROWS ?? 10_000_000);
const GROWN_VERSIONS = Number(process.env.BENCH_GROWN_VERSIONS ?? 1000);

async function waitReady(url: string, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${url} not ready in time`);
}

/**
 * Milliseconds from spawn until the platform is up: /readyz answers 200 and every role has started
 * (the "pylee started" log line: the alerts role starts after the API answers), then a clean
 * SIGTERM stop.
 */
async function pyleeStart(dataDir: string, port: number): Promise<number> {
  const began = performance.now();
  const child = spawn(process.execPath, ['cli/main.ts', 'start'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      PYLEE_DATA_DIR: dataDir,
      PYLEE_API_PORT: String(port),
      PYLEE_OTLP_PORT: String(port + 1),
      PYLEE_LOG_LEVEL: 'info',
      PYLEE_LOG_FORMAT: 'json',
      PYLEE_BOOTSTRAP_TOKEN: 'pyl_bench-bootstrap-token-000000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const started = new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('"msg":"pylee started"')) resolve();
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A start that dies says so at once instead of leaving the bench polling a closed port.
  const died = exited.then(() => {
    throw new Error(`pylee start exited (${child.exitCode ?? child.signalCode}) before /readyz answered`);
  });
  const up = Promise.all([waitReady(`http://127.0.0.1:${port}/readyz`, Date.now() + 120_000), started]);
  await Promise.race([up, died]);
  died.catch(() => {});
  const elapsed = performance.now() - began;
  child.kill('SIGTERM');
  await exited;
  return elapsed;
}

/** The same three stores opened bare: PGlite initdb/open, chDB first query, redis-server PING. */
async function bareStores(dataDir: string): Promise<number> {
  const began = performance.now();
  const script = `
    const { createClient } = await import('@clickhouse/client');
    const { createChdbConnection } = await import('chdb/connection');
    const c = createClient({ connection: createChdbConnection({ path: ${JSON.stringify(path.join(dataDir, 'ch'))} }) });
    await (await c.query({ query: 'SELECT 1', format: 'JSONEachRow' })).json();
    await c.close();`;
  const chdb = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  // Listened for at once: the child may well be done before PGlite is.
  const chdbDone = new Promise((r) => chdb.once('exit', r));
  const sock = path.join(dataDir, 'r.sock');
  const redis = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', sock, '--dir', dataDir, '--appendonly', 'yes', '--save', ''],
    {
      stdio: 'ignore',
    },
  );
  const pg = await PGlite.create({ dataDir: path.join(dataDir, 'pg') });
  await pg.query('SELECT 1');
  await pg.close();
  await chdbDone;
  while (spawnSync('redis-cli', ['-s', sock, 'ping'], { encoding: 'utf8' }).stdout.trim() !== 'PONG') {
    await new Promise((r) => setTimeout(r, 10));
  }
  const elapsed = performance.now() - began;
  const redisDone = new Promise((r) => redis.once('exit', r));
  redis.kill('SIGTERM');
  await redisDone;
  return elapsed;
}

/** Fills a data dir Pylee made (and stopped) with request rows over 7 days and many versions. */
async function grow(dataDir: string): Promise<void> {
  const db = await openDb({ dataDir });
  const [org] = await db.query<Org>("SELECT * FROM orgs WHERE slug = 'default'");
  const principal = systemPrincipal(org as Org);
  for (let s = 0; s < GROWN_VERSIONS / 100; s++) {
    await createServer(db, { principal }, { slug: `server-${s}` });
    for (let v = 0; v < 100; v++)
      await createVersion(db, { principal }, `server-${s}`, { version: `1.${v}.0` });
  }
  await db.close();
  const warehouse = await openWarehouse({ dataDir });
  for (let offset = 0; offset < GROWN_ROWS; offset += 1_000_000) {
    await warehouse.client.command({
      query: `INSERT INTO requests (org_id, server, environment, version, operation, time, duration_ms, error,
          error_type, http_status, mcp_method, tool, trace_id, span_id, session_id)
        SELECT {org:String}, concat('server-', toString(n % 10)), 'production', concat('1.', toString(n % 100), '.0'),
          'tools/call forecast', fromUnixTimestamp64Milli(toInt64({now:Int64}) - toInt64(cityHash64(n) % 604800000), 'UTC'),
          cityHash64(n, 2) % 1000, cityHash64(n, 3) % 100 = 0, '', 200, 'tools/call', 'forecast', '', '', ''
        FROM (SELECT number + {offset:UInt64} AS n FROM numbers({rows:UInt64}))`,
      query_params: {
        org: (org as Org).id,
        now: Date.now(),
        offset,
        rows: Math.min(1_000_000, GROWN_ROWS - offset),
      },
    });
  }
  await warehouse.close();
}

// The growth runs in its own process: chDB stays attached to its path for the life of a process.
if (process.argv[2] === '--grow') {
  await grow(process.argv[3] as string);
  process.exit(0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const rows: { case: string; runs: number[]; medianMs: number }[] = [];
const measure = async (name: string, fn: (i: number) => Promise<number>) => {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(Math.round(await fn(i)));
  rows.push({ case: name, runs, medianMs: median(runs) });
};

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-bench-'));
try {
  await measure('reference: bare PGlite + chDB + redis-server, cold', async (i) =>
    bareStores(fs.mkdtempSync(path.join(base, `bare${i}-`))),
  );
  await measure('pylee start → /readyz 200, cold data dir', async (i) =>
    pyleeStart(fs.mkdtempSync(path.join(base, `cold${i}-`)), 28080),
  );
  const warm = fs.mkdtempSync(path.join(base, 'warm-'));
  await pyleeStart(warm, 28080);
  await measure('pylee start → /readyz 200, warm data dir', () => pyleeStart(warm, 28080));
  const grown = fs.mkdtempSync(path.join(base, 'grown-'));
  await pyleeStart(grown, 28080);
  const grew = spawnSync(process.execPath, [import.meta.filename, '--grow', grown], { stdio: 'inherit' });
  if (grew.status !== 0) throw new Error(`growing the data dir failed (${grew.status})`);
  await measure(
    `pylee start → /readyz 200, ${GROWN_ROWS.toLocaleString('en')} rows and ${GROWN_VERSIONS} versions`,
    () => pyleeStart(grown, 28080),
  );
} finally {
  fs.rmSync(base, { recursive: true, force: true });
}

const width = Math.max(...rows.map((r) => r.case.length));
process.stdout.write(`${'case'.padEnd(width)}  median ms  runs\n`);
for (const r of rows)
  process.stdout.write(`${r.case.padEnd(width)}  ${String(r.medianMs).padStart(9)}  ${r.runs.join(', ')}\n`);
fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
fs.writeFileSync(
  path.join(ROOT, 'bench/results/startup.json'),
  JSON.stringify(
    { bench: 'startup', at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rows },
    null,
    2,
  ) + '\n',
);
