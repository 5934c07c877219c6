import type { VersionStats } from '../warehouse/telemetry-queries.ts';

type Stats = Pick<VersionStats, 'requests' | 'errorRate' | 'throughput' | 'latency'>;

export interface Delta {
  /** candidate − baseline */
  absolute: number | null;
  /** (candidate − baseline) / baseline; null when the baseline is 0 or missing */
  relative: number | null;
}

export interface StatsDeltas {
  requests: Delta;
  errorRate: Delta;
  throughput: Delta;
  latency: { p50: Delta; p95: Delta; p99: Delta };
}

export function delta(baseline: number | null | undefined, candidate: number | null | undefined): Delta {
  if (baseline === null || baseline === undefined || candidate === null || candidate === undefined) {
    return { absolute: null, relative: null };
  }
  const absolute = candidate - baseline;
  return { absolute, relative: baseline === 0 ? null : absolute / baseline };
}

/** How the candidate differs from the baseline, statistic by statistic. */
export function statsDeltas(baseline: Stats | undefined, candidate: Stats | undefined): StatsDeltas {
  return {
    requests: delta(baseline?.requests, candidate?.requests),
    errorRate: delta(baseline?.errorRate, candidate?.errorRate),
    throughput: delta(baseline?.throughput, candidate?.throughput),
    latency: {
      p50: delta(baseline?.latency.p50, candidate?.latency.p50),
      p95: delta(baseline?.latency.p95, candidate?.latency.p95),
      p99: delta(baseline?.latency.p99, candidate?.latency.p99),
    },
  };
}
