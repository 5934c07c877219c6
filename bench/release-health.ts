// Release-health query over many sessions (issue 15's benchmark): `releaseHealth` (every version's
// sessions by status, crash-free sessions and users, durations, adoption and stage) over 10 million
// sessions of one server × environment spread over 7 days, in embedded stores (chDB + PGlite in a
// temp dir). Measured from the rollups of settled sessions (what the API reads) and from the raw
// merged states only (`settled: 0`), beside references over the same rows in the same run: one plain
// `count()` grouped by version of the raw states, and the same over the rollups.
// Run: npm run bench:release-health   (BENCH_SESSIONS=1000000 for a quicker run; prints a table,
// writes bench/results/release-health.json)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openPglite } from '../core/db/client.ts';
import { migrateDb } from '../core/db/migrate.ts';
import { bootstrap, systemPrincipal } from '../core/orgs.ts';
import { createServer } from '../core/registry/servers.ts';
import { createVersion } from '../core/registry/versions.ts';
import { releaseHealth, sessionFigures } from '../core/release-health/queries.ts';
import { settleSessions } from '../core/release-health/rollups.ts';
import { openWarehouse, type Warehouse } from '../core/warehouse/client.ts';
import { migrateWarehouse } from '../core/warehouse/migrate.ts';
import { time, type TimedRow } from './timing.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const print = (line: string) => process.stdout.write(`${line}\n`);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const DAYS = 7;
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '2.0.0-rc.1'];
const DAY_MS = 86_400_000;

/** Times a case and prints its line. */
async function measure(name: string, runs: number, fn: () => Promise<unknown>): Promise<TimedRow> {
  const row = await time(name, runs, fn);
  print(`${name.padEnd(58)} ${String(row.medianMs).padStart(9)} ${String(row.p99Ms).padStart(9)}`);
  return row;
}

/**
 * Writes `count` merged session states of `orgId` in batches of 1 M rows (several parts, as a
 * live table has), last seen over the `DAYS` before `now`: 5 % with errors, 1 % crashed, 80 % ended,
 * 0.5 % moved by a rollout, users out of 200,000 client keys.
 */
async function writeSessions(warehouse: Warehouse, orgId: string, now: number, count: number) {
  const batch = 1_000_000;
  for (let offset = 0; offset < count; offset += batch) {
    await warehouse.client.command({
      query: `INSERT INTO session_states
        SELECT {org:String}, 'bench', 'production',
          {versions:Array(String)}[1 + (cityHash64(n, 1) % length({versions:Array(String)}))] AS version,
          concat('s', toString(n)) AS session_id,
          last - toIntervalMillisecond(cityHash64(n, 2) % 1800000) AS first_seen,
          last AS last_seen,
          1 + cityHash64(n, 3) % 8 AS requests,
          toUInt64(cityHash64(n, 4) % 100 < 5) AS errors,
          toUInt64(cityHash64(n, 5) % 100 < 1) AS crashes,
          toUInt8(cityHash64(n, 6) % 100 < 80) AS ended,
          arrayReduce('argMaxState', [if(cityHash64(n, 6) % 100 < 80, 'delete', '')], [last]) AS end_reason,
          toUInt8(cityHash64(n, 7) % 1000 < 5) AS moved,
          concat('u', toString(cityHash64(n, 8) % 200000)) AS client_key
        FROM (
          SELECT number + {offset:UInt64} AS n,
            fromUnixTimestamp64Milli(toInt64({now:Int64} - cityHash64(number + {offset:UInt64}, 0) % {span:UInt64}), 'UTC') AS last
          FROM numbers({rows:UInt64})
        )`,
      query_params: {
        org: orgId,
        versions: VERSIONS,
        offset,
        rows: Math.min(batch, count - offset),
        now,
        span: DAYS * DAY_MS - 60_000,
      },
    });
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-bench-release-health-'));
  const db = await openPglite(path.join(dir, 'postgres'));
  const warehouse = await openWarehouse({ dataDir: dir });
  try {
    await migrateDb(db);
    await migrateWarehouse(warehouse);
    const { org } = await bootstrap(db);
    const principal = systemPrincipal(org);
    await createServer(db, { principal }, { slug: 'bench' });
    for (const version of VERSIONS) await createVersion(db, { principal }, 'bench', { version });

    const now = Date.now();
    let t0 = performance.now();
    await writeSessions(warehouse, org.id, now, SESSIONS);
    const writeMs = performance.now() - t0;
    print(
      `wrote ${SESSIONS.toLocaleString('en')} sessions over ${DAYS} days in ${(writeMs / 1000).toFixed(1)} s`,
    );
    t0 = performance.now();
    const settled = await settleSessions(warehouse, { now, maxChunkMs: (DAYS + 1) * DAY_MS });
    const settleMs = performance.now() - t0;
    const tail = now - settled.settledUntil;
    print(
      `settled into rollups in ${(settleMs / 1000).toFixed(1)} s; the raw tail is the last ${Math.round(tail / 60_000)} min`,
    );
    const parts = async (table: string) => {
      const result = await warehouse.client.query({
        query: `SELECT count() AS parts, sum(rows) AS rows FROM system.parts WHERE active AND table = {table:String}`,
        query_params: { table },
        format: 'JSONEachRow',
      });
      const [row] = await result.json<{ parts: string | number; rows: string | number }>();
      return { parts: Number(row?.parts), rows: Number(row?.rows) };
    };
    const states = await parts('session_states');
    const rollups = await parts('session_rollups');
    print(
      `session_states: ${states.rows.toLocaleString('en')} rows in ${states.parts} parts; session_rollups: ${rollups.rows.toLocaleString('en')} rows in ${rollups.parts} parts`,
    );

    const input = (windowMs: number) => ({ server: 'bench', environment: 'production', windowMs, now });
    const scope = { orgId: org.id, server: 'bench', environment: 'production', now, idleMs: 30 * 60_000 };
    const countByVersion = (table: string, column: string, windowMs: number) => () =>
      warehouse.client
        .query({
          query: `SELECT version, ${column} AS n FROM ${table}
            WHERE org_id = {org:String} AND server = 'bench' AND environment = 'production'
              AND ${table === 'session_rollups' ? 'time' : 'last_seen'} >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
            GROUP BY version`,
          query_params: { org: org.id, from: now - windowMs },
          format: 'JSONEachRow',
        })
        .then((r) => r.json());
    print(`${'case'.padEnd(58)} ${'median ms'.padStart(9)} ${'p99 ms'.padStart(9)}`);
    const rows: TimedRow[] = [];
    for (const [label, windowMs] of [
      ['24h', DAY_MS],
      ['7d', DAYS * DAY_MS],
    ] as const) {
      rows.push(
        await measure(`release health, ${label}, rollups + raw tail (the API)`, RUNS, () =>
          releaseHealth(db, warehouse, principal, input(windowMs)),
        ),
        await measure(
          `reference: count() by version, rollups, ${label}`,
          RUNS,
          countByVersion('session_rollups', 'sum(sessions)', windowMs),
        ),
        await measure(
          `reference: count() by version, raw states, ${label}`,
          RUNS,
          countByVersion('session_states', 'count()', windowMs),
        ),
        await measure(`figures, raw states only (settled: 0), ${label}`, Math.min(RUNS, 3), () =>
          sessionFigures(warehouse, { ...scope, from: now - windowMs, to: now, settled: 0 }),
        ),
      );
    }
    const file = path.join(ROOT, 'bench/results/release-health.json');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(
      file,
      `${JSON.stringify(
        {
          measuredAt: new Date().toISOString(),
          machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version },
          dataset: { sessions: SESSIONS, days: DAYS, versions: VERSIONS.length, states, rollups },
          writeSeconds: Math.round(writeMs / 100) / 10,
          settleSeconds: Math.round(settleMs / 100) / 10,
          rawTailMinutes: Math.round(tail / 60_000),
          target: { medianMs: 300 },
          rows,
        },
        null,
        2,
      )}\n`,
    );
    print(`wrote ${path.relative(ROOT, file)}`);
  } finally {
    await warehouse.close();
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
