// Dashboard and analysis queries over 10 M request rows (issue 17's benchmark): `compare`, the version
// series, the overview's fleet query and a canary's samples, over 10 M raw rows in a 5 h window and
// over 10 M rows spread across 7 days read through 24 h and 7 d windows, each on the freshly written
// tables (many parts, as right after a burst) and again after every table is merged. Beside each
// case, the floor for the same rows in the same run: a bare `count()` with the same quantiles, read
// the cheapest way the table allows, and the parts and rows ClickHouse plans to read
// (`EXPLAIN ESTIMATE`). Embedded chDB in a temp dir.
// Run: npm run bench:queries   (BENCH_ROWS=1000000 for a quicker run; prints a table, writes
// bench/results/queries.json)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readSamples } from '../core/canary/samples.ts';
import { openWarehouse, type Warehouse } from '../core/warehouse/client.ts';
import { migrateWarehouse } from '../core/warehouse/migrate.ts';
import { compareVersions, fleetStats, resolution, series } from '../core/warehouse/telemetry-queries.ts';
import { time, type TimedRow } from './timing.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const print = (line: string) => process.stdout.write(`${line}\n`);
const ROWS = Number(process.env.BENCH_ROWS ?? 10_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const HOUR_MS = 3_600_000;
const ORG = 'org-bench';
const BATCH = 1_000_000;

/**
 * Writes `rows` requests of `server` over the `spanMs` before `now` in 1 M-row inserts, oldest first
 * as a collector writes them (each insert covers its own slice of time): several parts per table.
 */
async function writeRequests(warehouse: Warehouse, server: string, now: number, spanMs: number) {
  const batches = Math.ceil(ROWS / BATCH);
  for (let offset = 0; offset < ROWS; offset += BATCH) {
    const slice = spanMs / batches;
    const sliceEnd = now - spanMs + (offset / BATCH + 1) * slice;
    await warehouse.client.command({
      query: `INSERT INTO requests (org_id, server, environment, version, operation, time, duration_ms,
          error, error_type, http_status, mcp_method, tool, trace_id, span_id, session_id, source, client_key, counted)
        SELECT {org:String}, {server:String}, 'production',
          if(n % 2 = 0, '1.0.0', '1.1.0') AS v,
          concat('tools/call tool_', toString(intDiv(n, 2) % 20)) AS op,
          fromUnixTimestamp64Milli(toInt64({end:Int64}) - toInt64(cityHash64(n, 1) % {slice:UInt64}), 'UTC'),
          round(5 + (cityHash64(n, 2) % 10000) / 100 * if(v = '1.1.0', 1.2, 1.0), 3),
          cityHash64(n, 3) % 1000 < if(v = '1.1.0', 30, 10) AS failed,
          if(failed, if(v = '1.1.0' AND cityHash64(n, 4) % 3 = 0, 'rate_limited', 'timeout'), ''),
          0, 'tools/call', substring(op, 12),
          lower(hex(cityHash64(n, 5))), lower(hex(cityHash64(n, 7))),
          concat('session-', toString(cityHash64(n, 8) % 5000)), 'otlp', '', 1
        FROM (SELECT number + {offset:UInt64} AS n FROM numbers({rows:UInt64}))`,
      query_params: {
        org: ORG,
        server,
        end: Math.round(sliceEnd),
        slice: Math.round(slice),
        offset,
        rows: Math.min(BATCH, ROWS - offset),
      },
    });
  }
}

async function rowsOf<T>(warehouse: Warehouse, query: string, params: Record<string, unknown> = {}) {
  return (await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' })).json<T>();
}

/** Parts and rows ClickHouse plans to read for `query` (summed over the tables it reads). */
async function estimate(warehouse: Warehouse, query: string, params: Record<string, unknown>) {
  const rows = await rowsOf<{ table: string; parts: number; rows: number }>(
    warehouse,
    `EXPLAIN ESTIMATE ${query}`,
    params,
  );
  return {
    parts: rows.reduce((n, r) => n + Number(r.parts), 0),
    rows: rows.reduce((n, r) => n + Number(r.rows), 0),
  };
}

const partsOf = async (warehouse: Warehouse, table: string) =>
  Number(
    (
      await rowsOf<{ n: number }>(
        warehouse,
        `SELECT count() AS n FROM system.parts WHERE active AND database = currentDatabase() AND table = {t:String}`,
        { t: table },
      )
    )[0]?.n ?? 0,
  );

interface Case extends TimedRow {
  floorMs: number;
  ratio: number;
  parts: number;
  rows: number;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-bench-queries-'));
  const warehouse = await openWarehouse({ dataDir: dir });
  await migrateWarehouse(warehouse);
  const now = Date.now();
  const t0 = performance.now();
  await writeRequests(warehouse, 'five-hours', now, 5 * HOUR_MS);
  await writeRequests(warehouse, 'seven-days', now, 7 * 24 * HOUR_MS - 60_000);
  const writeMs = performance.now() - t0;
  print(`wrote ${ROWS.toLocaleString('en')} rows twice in ${Math.round(writeMs)} ms (1 M rows per insert)`);

  const windows = [
    { name: '5 h', server: 'five-hours', hours: 5 },
    { name: '24 h', server: 'seven-days', hours: 24 },
    { name: '7 d', server: 'seven-days', hours: 7 * 24 },
  ];
  const results: Record<string, unknown>[] = [];
  const header = `${'case'.padEnd(44)} ${'median'.padStart(8)} ${'p99'.padStart(8)} ${'floor'.padStart(8)} ${'ratio'.padStart(6)} ${'parts'.padStart(6)} ${'rows'.padStart(11)}`;

  for (const phase of ['fresh', 'merged'] as const) {
    if (phase === 'merged') {
      const m0 = performance.now();
      for (const table of [
        'requests',
        'requests_1m',
        'requests_1h',
        'request_errors_1m',
        'request_errors_1h',
      ]) {
        await warehouse.client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
      }
      print(`\nmerged every table in ${Math.round(performance.now() - m0)} ms`);
    }
    const parts = Object.fromEntries(
      await Promise.all(
        ['requests', 'requests_1m', 'requests_1h'].map(
          async (t) => [t, await partsOf(warehouse, t)] as const,
        ),
      ),
    );
    print(`\n${phase}: active parts ${JSON.stringify(parts)}\n${header}`);
    for (const w of windows) {
      const scope = {
        orgId: ORG,
        server: w.server,
        environment: 'production',
        from: now - w.hours * HOUR_MS,
        to: now + 1000,
      };
      const res = resolution(scope);
      const table = res === 'raw' ? 'requests' : res === 'minute' ? 'requests_1m' : 'requests_1h';
      const floorSql =
        res === 'raw'
          ? `SELECT count(), quantilesTDigest(0.5, 0.95, 0.99)(duration_ms) FROM requests
             WHERE org_id = {org:String} AND server = {server:String} AND environment = 'production'
               AND time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`
          : `SELECT countMerge(requests), quantilesTDigestMerge(0.5, 0.95, 0.99)(duration_ms) FROM ${table}
             WHERE org_id = {org:String} AND server = {server:String} AND environment = 'production'
               AND time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
      const floorParams = { org: ORG, server: w.server, from: scope.from, to: scope.to };
      const floor = await time('floor', RUNS, () => rowsOf(warehouse, floorSql, floorParams));
      const est = await estimate(warehouse, floorSql, floorParams);
      const step = Math.max(60, Math.ceil((w.hours * 3600) / 120 / 60) * 60);
      const cases: [string, () => Promise<unknown>][] = [
        ['compare', () => compareVersions(warehouse, { ...scope, baseline: '1.0.0', candidate: '1.1.0' })],
        ['series', () => series(warehouse, { ...scope, version: '1.1.0', stepSeconds: step })],
        ['overview', () => fleetStats(warehouse, { ...scope, servers: [w.server], points: 60 })],
      ];
      // A canary judges intervals of minutes over hours, not a week.
      if (w.hours <= 24) {
        cases.push([
          'canary samples',
          () =>
            readSamples(warehouse, {
              ...scope,
              baseline: '1.0.0',
              candidate: '1.1.0',
              intervalSeconds: Math.min(step, 3600),
            }),
        ]);
      }
      print(
        `${`floor ${w.name} (${res}: count + quantiles)`.padEnd(44)} ${String(floor.medianMs).padStart(8)} ${String(floor.p99Ms).padStart(8)} ${''.padStart(8)} ${''.padStart(6)} ${String(est.parts).padStart(6)} ${est.rows.toLocaleString('en').padStart(11)}`,
      );
      for (const [name, fn] of cases) {
        const row = await time(`${name} ${w.name}`, RUNS, fn);
        const c: Case = {
          ...row,
          floorMs: floor.medianMs,
          ratio: Math.round((row.medianMs / Math.max(0.01, floor.medianMs)) * 10) / 10,
          parts: est.parts,
          rows: est.rows,
        };
        results.push({ phase, window: w.name, resolution: res, ...c });
        print(
          `${`${name} ${w.name} (${res})`.padEnd(44)} ${String(c.medianMs).padStart(8)} ${String(c.p99Ms).padStart(8)} ${String(c.floorMs).padStart(8)} ${`${c.ratio}×`.padStart(6)}`,
        );
      }
    }
  }
  const out = path.join(ROOT, 'bench/results/queries.json');
  fs.writeFileSync(
    out,
    `${JSON.stringify({ at: new Date().toISOString(), rows: ROWS, runs: RUNS, cpus: os.cpus().length, writeMs: Math.round(writeMs), results }, null, 2)}\n`,
  );
  print(`\nwrote ${path.relative(ROOT, out)}`);
  await warehouse.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

await main();
