// Synthetic canaries for the judge's tests and the bench: per-minute samples built from simulated
// requests (log-normal latencies, binomial errors), seeded so every run sees the same data.
import type { JudgeInput, MetricConfig, MetricSeries } from '#core/canary/judge.ts';
import { SERVER_METRICS } from '#core/canary/metric-presets.ts';
import { quantileSorted } from '#core/stats/describe.ts';
import { seededRandom } from '#test/helpers/random.ts';

export const rng = seededRandom;

export function normal(rand: () => number): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export interface Side {
  /** mean requests per interval (0 = idle) */
  requests: number;
  errorRate: number;
  /** median latency in ms */
  latencyMs: number;
  cpu?: number;
  memory?: number;
  /** probability that an interval has a failed health check */
  healthFailure?: number;
}

export interface SideSamples {
  requests: number[];
  errorRate: (number | null)[];
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
  cpu: number[];
  memory: number[];
  health: number[];
}

export function simulate(side: Side, intervals: number, seed: number): SideSamples {
  const rand = rng(seed);
  const out: SideSamples = {
    requests: [],
    errorRate: [],
    p50: [],
    p95: [],
    p99: [],
    cpu: [],
    memory: [],
    health: [],
  };
  for (let i = 0; i < intervals; i++) {
    const n =
      side.requests === 0
        ? 0
        : Math.max(0, Math.round(side.requests + Math.sqrt(side.requests) * normal(rand)));
    let errors = 0;
    const lat = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      if (rand() < side.errorRate) errors++;
      lat[r] = side.latencyMs * Math.exp(0.5 * normal(rand));
    }
    lat.sort();
    out.requests.push(n);
    out.errorRate.push(n ? errors / n : null);
    out.p50.push(n ? quantileSorted(lat, 0.5) : null);
    out.p95.push(n ? quantileSorted(lat, 0.95) : null);
    out.p99.push(n ? quantileSorted(lat, 0.99) : null);
    out.cpu.push((side.cpu ?? 0.3) * (1 + 0.05 * normal(rand)));
    out.memory.push((side.memory ?? 200e6) * (1 + 0.02 * normal(rand)));
    out.health.push(rand() < (side.healthFailure ?? 0) ? 1 : 0);
  }
  return out;
}

const pick = (s: SideSamples, name: string): (number | null)[] => {
  switch (name) {
    case 'error_rate':
      return s.errorRate;
    case 'latency_p50':
      return s.p50;
    case 'latency_p95':
      return s.p95;
    case 'latency_p99':
      return s.p99;
    case 'cpu':
      return s.cpu;
    case 'memory':
      return s.memory;
    case 'health_check_failures':
      return s.health;
    default:
      throw new Error(`no synthetic metric ${name}`);
  }
};

/** A judge input with the standard server metrics for a canary and a baseline. */
export function canaryInput(
  canary: Side,
  baseline: Side,
  opts: {
    intervals?: number;
    seed?: number;
    metrics?: readonly MetricConfig[];
    /** false: no health check ran (no value in any interval), as for a server without checks */
    healthChecks?: boolean;
    /** false: neither version exports CPU or memory */
    resources?: boolean;
    /** crashed of finished sessions per side; without it session_crash_rate is left out */
    sessions?: MetricSeries['counts'];
  } = {},
): JudgeInput {
  const intervals = opts.intervals ?? 60;
  const seed = opts.seed ?? 1;
  const c = simulate(canary, intervals, seed * 2 + 1);
  const b = simulate(baseline, intervals, seed * 2 + 2);
  const absent = (name: string) =>
    (opts.healthChecks === false && name === 'health_check_failures') ||
    (opts.resources === false && (name === 'cpu' || name === 'memory'));
  const values = (s: SideSamples, name: string) =>
    absent(name) ? Array<null>(intervals).fill(null) : pick(s, name);
  const metrics: MetricSeries[] = (opts.metrics ?? SERVER_METRICS)
    .filter((config) => config.name !== 'session_crash_rate' || opts.sessions)
    .map((config) =>
      config.name === 'session_crash_rate'
        ? { config, canary: [], baseline: [], counts: opts.sessions }
        : { config, canary: values(c, config.name), baseline: values(b, config.name) },
    );
  return { metrics, traffic: { canary: c.requests, baseline: b.requests } };
}

export const HEALTHY: Side = { requests: 100, errorRate: 0.01, latencyMs: 120 };
