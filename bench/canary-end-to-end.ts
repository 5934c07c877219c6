// The end-to-end part of `npm run bench:canary`: createAnalysis (warehouse read → judge → stored
// report) on a realistic data set in embedded stores, with its parts and a same-run reference.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAnalysis, type CanaryDeps } from '../core/canary/analysis.ts';
import { judge } from '../core/canary/judge.ts';
import { readSamples, toJudgeSeries } from '../core/canary/samples.ts';
import { openPglite } from '../core/db/client.ts';
import { migrateDb } from '../core/db/migrate.ts';
import { bootstrap, systemPrincipal } from '../core/orgs.ts';
import { createServer } from '../core/registry/servers.ts';
import { createVersion } from '../core/registry/versions.ts';
import { openWarehouse } from '../core/warehouse/client.ts';
import { migrateWarehouse } from '../core/warehouse/migrate.ts';
import { seededRandom as rng } from '#test/helpers/random.ts';
import { time, type TimedRow } from './timing.ts';

const MINUTES = 60;
const PER_MINUTE = 600;
const TOOLS = ['search', 'fetch', 'summarize', 'translate', 'weather', 'calendar', 'email', 'files'];

export type EndToEndRow = TimedRow;

export interface EndToEndResult {
  dataset: { requests: number; metricPoints: number; minutes: number; tools: number; intervals: number };
  verdict: string;
  rows: EndToEndRow[];
}

export async function endToEnd(runs: number): Promise<EndToEndResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-bench-canary-'));
  const db = await openPglite(path.join(dir, 'postgres'));
  const warehouse = await openWarehouse({ dataDir: dir });
  try {
    await migrateDb(db);
    await migrateWarehouse(warehouse);
    const { org } = await bootstrap(db);
    const ctx = { principal: systemPrincipal(org) };
    await createServer(db, ctx, { slug: 'bench' });
    for (const version of ['1.0.0', '1.1.0'])
      await createVersion(db, ctx, 'bench', { version, status: 'stable' });

    const end = Math.floor(Date.now() / 60_000) * 60_000;
    const start = end - MINUTES * 60_000;
    const rand = rng(7);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const requests: object[] = [];
    const points: object[] = [];
    const base = { org_id: org.id, server: 'bench', environment: 'production' };
    for (let m = 0; m < MINUTES; m++) {
      for (let r = 0; r < PER_MINUTE; r++) {
        const canary = rand() < 0.1;
        const tool = TOOLS[r % TOOLS.length] as string;
        const error = rand() < 0.01;
        requests.push({
          ...base,
          version: canary ? '1.1.0' : '1.0.0',
          operation: `tools/call ${tool}`,
          time: new Date(start + m * 60_000 + Math.floor(rand() * 59_000)).toISOString(),
          duration_ms: (canary ? 110 : 100) * Math.exp(0.5 * gauss()),
          error: error ? 1 : 0,
          error_type: error ? 'tool_error' : '',
          http_status: 200,
          mcp_method: 'tools/call',
          tool,
          trace_id: '',
          span_id: '',
          session_id: '',
          source: 'otlp',
          client_key: '',
          counted: 1,
        });
      }
      for (const version of ['1.0.0', '1.1.0']) {
        for (const [metric, value] of [
          ['process.cpu.utilization', 0.3 * (1 + 0.05 * gauss())],
          ['process.memory.usage', 2e8 * (1 + 0.02 * gauss())],
        ] as const) {
          points.push({
            ...base,
            version,
            operation: '',
            metric,
            unit: '',
            kind: 'gauge',
            start_time: new Date(start + m * 60_000).toISOString(),
            time: new Date(start + m * 60_000 + 30_000).toISOString(),
            count: 0,
            sum: 0,
            value,
            bounds: [],
            bucket_counts: [],
          });
        }
      }
    }
    const settings = { date_time_input_format: 'best_effort' } as const;
    await warehouse.client.insert({
      table: 'requests',
      values: requests,
      format: 'JSONEachRow',
      clickhouse_settings: settings,
    });
    await warehouse.client.insert({
      table: 'metric_points',
      values: points,
      format: 'JSONEachRow',
      clickhouse_settings: settings,
    });

    const deps: CanaryDeps = {
      db,
      warehouse,
      publisher: { publish: async () => {} },
      scheduler: { schedule: async () => {} },
    };
    const input = {
      candidate: '1.1.0',
      baseline: '1.0.0',
      environment: 'production',
      from: new Date(start).toISOString(),
      to: new Date(end).toISOString(),
    };
    const scope = {
      orgId: org.id,
      server: 'bench',
      environment: 'production',
      baseline: '1.0.0',
      candidate: '1.1.0',
      from: start,
      to: end,
      intervalSeconds: 60,
    };
    let verdict = '';
    const samples = await readSamples(warehouse, scope);
    const judged = toJudgeSeries(samples);
    const metrics = judged.metrics.length;
    const rows = [
      await time('reference: one per-version aggregate over the window', runs, async () => {
        const r = await warehouse.client.query({
          query: `SELECT version, count(), sum(error), quantilesTDigest(0.5, 0.95, 0.99)(duration_ms) FROM requests
                  WHERE org_id = {org:String} AND server = 'bench' AND time >= fromUnixTimestamp64Milli({from:Int64})
                    AND time < fromUnixTimestamp64Milli({to:Int64}) GROUP BY version`,
          query_params: { org: org.id, from: start, to: end },
          format: 'JSONEachRow',
        });
        await r.json();
      }),
      await time('read samples (4 queries: server, per tool, resources, health)', runs, () =>
        readSamples(warehouse, scope),
      ),
      await time(`judge (${metrics} server and per-tool metrics × ${MINUTES} intervals)`, runs, async () =>
        judge(judged),
      ),
      await time('end to end: createAnalysis (read, judge, contract, store)', runs, async () => {
        verdict = (await createAnalysis(deps, ctx, 'bench', input)).verdict ?? '';
      }),
    ];
    return {
      dataset: {
        requests: requests.length,
        metricPoints: points.length,
        minutes: MINUTES,
        tools: TOOLS.length,
        intervals: MINUTES,
      },
      verdict,
      rows,
    };
  } finally {
    await warehouse.close();
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
