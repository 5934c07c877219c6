/** Per-version request statistics over a window, as DESIGN.md's comparison shape has them. */
export interface VersionStats {
  version: string;
  requests: number;
  errors: number;
  /** 0..1 */
  errorRate: number;
  /** requests per second */
  throughput: number;
  /** milliseconds; null without requests */
  latency: { p50: number | null; p95: number | null; p99: number | null };
}

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

export function statsDeltas(
  baseline: VersionStats | undefined,
  candidate: VersionStats | undefined,
): StatsDeltas {
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

export interface OperationComparison {
  operation: string;
  baseline: VersionStats | null;
  candidate: VersionStats | null;
  deltas: StatsDeltas;
}

/**
 * Pairs per-operation stats of two versions: every operation either version served, busiest
 * (by candidate, then baseline requests) first. An operation only one side has shows null on the other.
 */
export function compareOperations(
  baseline: readonly (VersionStats & { operation: string })[],
  candidate: readonly (VersionStats & { operation: string })[],
): OperationComparison[] {
  const names = [...new Set([...candidate.map((o) => o.operation), ...baseline.map((o) => o.operation)])];
  return names
    .map((operation) => {
      const b = baseline.find((o) => o.operation === operation);
      const c = candidate.find((o) => o.operation === operation);
      return {
        operation,
        baseline: b ? strip(b) : null,
        candidate: c ? strip(c) : null,
        deltas: statsDeltas(b, c),
      };
    })
    .sort(
      (x, y) =>
        (y.candidate?.requests ?? 0) - (x.candidate?.requests ?? 0) ||
        (y.baseline?.requests ?? 0) - (x.baseline?.requests ?? 0) ||
        (x.operation < y.operation ? -1 : 1),
    );
}

function strip({ operation: _operation, ...stats }: VersionStats & { operation: string }): VersionStats {
  return stats;
}

export interface ErrorTypeCount {
  errorType: string;
  count: number;
}

/** Error types the candidate shows that the baseline never did in the window: "new errors". */
export function newErrorTypes(
  baseline: readonly ErrorTypeCount[],
  candidate: readonly ErrorTypeCount[],
): ErrorTypeCount[] {
  const known = new Set(baseline.map((e) => e.errorType));
  return candidate.filter((e) => !known.has(e.errorType));
}
