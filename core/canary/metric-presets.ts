import type { MetricConfig } from './judge.ts';

/**
 * What a canary analysis judges by default (issue 7): error rate, p50/p95/p99 latency, CPU,
 * memory, health-check failures and the session crash rate (issue 15) for the whole server, and error rate and p95 latency per MCP
 * tool. Effect sizes are mean ratios canary/baseline: allowedIncrease 1.1 = up to +10% passes.
 * The analysis job reads one value per interval (1 minute by default) for each of these names.
 */
export const SERVER_METRICS: readonly MetricConfig[] = [
  {
    name: 'error_rate',
    group: 'errors',
    direction: 'increase',
    // Any significant rise beyond 0.1 percentage point of errors counts; doubling fails the canary,
    // and so does any significant rise from an error-free baseline.
    critical: true,
    allowedIncrease: 1.2,
    criticalIncrease: 2,
    absoluteTolerance: 0.001,
    zeroBaseline: 'critical',
    unit: 'ratio',
  },
  { name: 'latency_p50', group: 'latency', direction: 'increase', allowedIncrease: 1.1, unit: 'ms' },
  {
    name: 'latency_p95',
    group: 'latency',
    direction: 'increase',
    critical: true,
    allowedIncrease: 1.1,
    criticalIncrease: 1.5,
    unit: 'ms',
  },
  { name: 'latency_p99', group: 'latency', direction: 'increase', allowedIncrease: 1.2, unit: 'ms' },
  // Resource use is reported whether or not requests arrive: not subject to the traffic minimums.
  {
    name: 'cpu',
    group: 'resources',
    direction: 'increase',
    allowedIncrease: 1.2,
    perRequest: false,
    outliers: { factor: 3 },
    unit: 'ratio',
  },
  {
    name: 'memory',
    group: 'resources',
    direction: 'increase',
    allowedIncrease: 1.2,
    perRequest: false,
    unit: 'bytes',
  },
  {
    name: 'health_check_failures',
    group: 'health',
    direction: 'increase',
    critical: true,
    perRequest: false,
    // An interval in which no check ran counts as 0 failures (checks may run less often than once
    // an interval); with no health check at all on either side the metric is no data, not scored.
    nanStrategy: 'replace',
    zeroBaseline: 'critical',
    unit: 'count',
  },
  // Crashed / finished sessions over the whole window (release health's 1 − crash-free sessions),
  // judged on the counts with Fisher's exact test. Critical: a significant rise fails the canary
  // whatever its latency, once at least 2 of its sessions crashed (one crash is never enough, so
  // 1 crash in 3 sessions does not fail it; 2 in 3 against a crash-free baseline does). Sessions,
  // not requests: judged however little traffic the window had.
  {
    name: 'session_crash_rate',
    group: 'sessions',
    direction: 'increase',
    critical: true,
    allowedIncrease: 1.2,
    perRequest: false,
    minEvents: 2,
    zeroBaseline: 'critical',
    unit: 'ratio',
  },
];

/** Per-tool metrics; judged on the tool's own request counts (pass them as the series' traffic). */
export function operationMetrics(): MetricConfig[] {
  return [
    {
      name: 'error_rate',
      group: 'errors',
      direction: 'increase',
      allowedIncrease: 1.2,
      absoluteTolerance: 0.001,
      zeroBaseline: 'critical',
      unit: 'ratio',
    },
    { name: 'latency_p95', group: 'latency', direction: 'increase', allowedIncrease: 1.2, unit: 'ms' },
  ];
}
