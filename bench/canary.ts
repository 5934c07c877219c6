// Canary judge time: 100 metrics × 60 one-minute intervals (canary and baseline), median and p99
// over repeated runs, next to references measured in the same run on the same samples: sorting
// them, a naive O(n·m) Mann-Whitney U count, and the pairwise differences the Hodges-Lehmann
// interval needs (built and sorted) — the judge's inner cost.
// Run: npm run bench:canary   (prints a table, writes bench/results/canary.json)
//
// End to end (warehouse read → judge → stored report): createAnalysis over a realistic data set in
// embedded stores (chDB + PGlite in a temp dir): one hour of a server at 600 requests/min over 8 MCP
// tools, 90 % on the baseline and 10 % on the canary, with CPU and memory points; next to a reference
// measured in the same run on the same rows (one plain per-version aggregate query over the window).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MetricSeries } from '../core/canary/judge.ts';
import { judge } from '../core/canary/judge.ts';
import { endToEnd } from './canary-end-to-end.ts';
import { pairwiseDifferences } from '../core/stats/hodges-lehmann.ts';
import { seededRandom as rng } from '#test/helpers/random.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const RUNS = Number(process.env.BENCH_RUNS ?? 50);

/** 100 latency-like metrics (log-normal per interval); every tenth regressed by 30%. */
function dataset(metrics: number, intervals: number) {
  const rand = rng(42);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const series: MetricSeries[] = [];
  for (let m = 0; m < metrics; m++) {
    const center = 50 + 10 * m;
    const shift = m % 10 === 0 ? 1.3 : 1;
    series.push({
      config: { name: `metric_${m}`, group: `g${m % 5}`, direction: 'increase', unit: 'ms' },
      canary: Array.from({ length: intervals }, () => center * shift * Math.exp(0.2 * gauss())),
      baseline: Array.from({ length: intervals }, () => center * Math.exp(0.2 * gauss())),
    });
  }
  const traffic = { canary: Array(intervals).fill(200), baseline: Array(intervals).fill(1800) };
  return { metrics: series, traffic };
}

const quantile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
};

interface Row {
  case: string;
  runs: number;
  medianMs: number;
  p99Ms: number;
}
const rows: Row[] = [];

function measure(name: string, runs: number, fn: () => unknown): void {
  for (let i = 0; i < Math.min(5, runs); i++) fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  const r = (x: number) => Math.round(x * 1000) / 1000;
  rows.push({ case: name, runs, medianMs: r(quantile(times, 0.5)), p99Ms: r(quantile(times, 0.99)) });
}

let sink = 0;
const small = dataset(100, 60);
const values = (s: MetricSeries) => [s.canary as number[], s.baseline as number[]] as const;

measure('reference: sort every sample (100 × 2 × 60 values)', RUNS, () => {
  for (const s of small.metrics) for (const v of values(s)) sink += Float64Array.from(v).sort()[0] as number;
});
measure('reference: naive O(n·m) U count, 100 metrics', RUNS, () => {
  for (const s of small.metrics) {
    const [c, b] = values(s);
    let u = 0;
    for (const x of c) for (const y of b) u += x > y ? 1 : x === y ? 0.5 : 0;
    sink += u;
  }
});
measure('reference: 3600 pairwise differences sorted, 100 metrics', RUNS, () => {
  for (const s of small.metrics) sink += pairwiseDifferences(...values(s))[0] as number;
});
let verdict = '';
measure('judge: 100 metrics × 60 intervals', RUNS, () => {
  verdict = judge(small).verdict;
});
const large = dataset(100, 240);
measure('judge: 100 metrics × 240 intervals (4 h window)', Math.max(5, Math.round(RUNS / 5)), () =>
  judge(large),
);

const width = Math.max(...rows.map((r) => r.case.length));
process.stdout.write(`${'case'.padEnd(width)}  median ms    p99 ms  runs\n`);
for (const r of rows) {
  process.stdout.write(
    `${r.case.padEnd(width)}  ${r.medianMs.toFixed(3).padStart(9)}  ${r.p99Ms.toFixed(3).padStart(8)}  ${r.runs}\n`,
  );
}
process.stdout.write(`(verdict of the 100 × 60 set: ${verdict}; checksum ${sink > 0 ? 'ok' : '?'})\n`);

const file = path.join(ROOT, 'bench/results/canary.json');
const e2e = await endToEnd(Number(process.env.BENCH_E2E_RUNS ?? 10));
const w2 = Math.max(...e2e.rows.map((r) => r.case.length));
process.stdout.write(
  `\nend to end: ${e2e.dataset.requests} requests and ${e2e.dataset.metricPoints} metric points over ${e2e.dataset.minutes} min, ${e2e.dataset.tools} tools (verdict ${e2e.verdict})\n`,
);
process.stdout.write(`${'case'.padEnd(w2)}  median ms    p99 ms  runs\n`);
for (const r of e2e.rows) {
  process.stdout.write(
    `${r.case.padEnd(w2)}  ${r.medianMs.toFixed(2).padStart(9)}  ${r.p99Ms.toFixed(2).padStart(8)}  ${r.runs}\n`,
  );
}
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(
  file,
  JSON.stringify(
    {
      bench: 'canary',
      at: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      judge: rows,
      endToEnd: e2e,
    },
    null,
    2,
  ) + '\n',
);
