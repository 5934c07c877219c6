import { describe, expect, it } from 'vitest';
import { delta, statsDeltas } from '#core/telemetry/compare.ts';
import type { VersionStats } from '#core/warehouse/telemetry-queries.ts';

const stats = (version: string, requests: number, errors: number, p95: number | null): VersionStats => ({
  version,
  requests,
  errors,
  errorRate: requests ? errors / requests : 0,
  throughput: requests / 60,
  latency: { p50: p95 === null ? null : p95 / 2, p95, p99: p95 === null ? null : p95 * 2 },
});

describe('comparison deltas', () => {
  it('gives absolute and relative change, with no relative change from a zero baseline', () => {
    expect(delta(100, 150)).toEqual({ absolute: 50, relative: 0.5 });
    expect(delta(0.02, 0.01)).toEqual({ absolute: -0.01, relative: -0.5 });
    expect(delta(0, 5)).toEqual({ absolute: 5, relative: null });
    expect(delta(null, 5)).toEqual({ absolute: null, relative: null });
  });

  it('compares every statistic of two versions', () => {
    const d = statsDeltas(stats('1.0.0', 600, 6, 100), stats('1.1.0', 1200, 60, 150));
    expect(d.requests).toEqual({ absolute: 600, relative: 1 });
    expect(d.errorRate.absolute).toBeCloseTo(0.04);
    expect(d.errorRate.relative).toBeCloseTo(4);
    expect(d.latency.p95).toEqual({ absolute: 50, relative: 0.5 });
    expect(statsDeltas(stats('1.0.0', 0, 0, null), stats('1.1.0', 10, 0, 20)).latency.p95).toEqual({
      absolute: null,
      relative: null,
    });
  });
});
