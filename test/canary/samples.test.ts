import { describe, expect, it } from 'vitest';
import { checkConfig } from '#core/canary/analysis.ts';
import { SERVER_METRICS } from '#core/canary/metric-presets.ts';
import { mergeMetricConfigs, toJudgeSeries, type Samples, type SideValues } from '#core/canary/samples.ts';

const side = (n: number, requests: number, p95: number): SideValues => ({
  requests: Array(n).fill(requests),
  errorRate: Array(n).fill(0.01),
  p50: Array(n).fill(p95 / 2),
  p95: Array(n).fill(p95),
  p99: Array(n).fill(p95 * 1.5),
  cpu: Array(n).fill(null),
  memory: Array(n).fill(null),
  healthFailures: Array(n).fill(null),
});

const samples = (): Samples => ({
  buckets: [0, 60, 120],
  intervalSeconds: 60,
  resolution: 'raw',
  canary: side(3, 10, 120),
  baseline: side(3, 90, 100),
  operations: [
    {
      operation: 'tools/call search',
      canary: { requests: [5, 5, 5], errorRate: [0, 0, 0], p95: [1, 2, 3] },
      baseline: { requests: [40, 40, 40], errorRate: [0, 0, 0], p95: [1, 1, 1] },
    },
  ],
});

describe('metric selection', () => {
  it('merges overrides into the presets by name, keeping the other settings', () => {
    const merged = mergeMetricConfigs(
      SERVER_METRICS,
      [{ name: 'latency_p95', allowedIncrease: 1.3 }],
      ['latency_p95'],
      'server',
    );
    const p95 = merged.find((m) => m.name === 'latency_p95');
    expect(p95).toMatchObject({ allowedIncrease: 1.3, critical: true, criticalIncrease: 1.5, unit: 'ms' });
    expect(merged).toHaveLength(SERVER_METRICS.length);
  });

  it('refuses a metric Pylee does not sample, naming the known ones', () => {
    expect(() =>
      mergeMetricConfigs(SERVER_METRICS, [{ name: 'latency_p42' }], ['latency_p95'], 'server'),
    ).toThrow(/metric "latency_p42" is not one Pylee samples; known: latency_p95/);
  });

  it('lines up server metrics with the window traffic and tool metrics with their own', () => {
    const { metrics, traffic } = toJudgeSeries(samples());
    expect(traffic).toEqual({ canary: [10, 10, 10], baseline: [90, 90, 90] });
    const p95 = metrics.find((m) => m.config.name === 'latency_p95' && !m.operation);
    expect(p95?.canary).toEqual([120, 120, 120]);
    const tool = metrics.find((m) => m.config.name === 'latency_p95' && m.operation === 'tools/call search');
    expect(tool?.traffic).toEqual({ canary: [5, 5, 5], baseline: [40, 40, 40] });
    expect(tool?.canary).toEqual([1, 2, 3]);
    expect(toJudgeSeries(samples(), { operationMetrics: false }).metrics.every((m) => !m.operation)).toBe(
      true,
    );
  });

  it('checks thresholds and metric settings before anything runs', () => {
    expect(checkConfig({ thresholds: { pass: 90, marginal: 70 } }, 60, 300_000)).toMatchObject({
      intervalSeconds: 60,
      options: { passThreshold: 90, marginalThreshold: 70 },
    });
    expect(() => checkConfig({ thresholds: { pass: 50, marginal: 80 } }, 60, 1000)).toThrow(
      /must not exceed/,
    );
    expect(() => checkConfig({ metrics: [{ name: 'cpu', weight: -1 }] }, 60, 1000)).toThrow(/weight/);
    expect(() => checkConfig({ operationMetrics: [{ name: 'cpu' }] }, 60, 1000)).toThrow(
      /operation metric "cpu"/,
    );
  });
});
