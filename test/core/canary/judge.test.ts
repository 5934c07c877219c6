import { describe, expect, it } from 'vitest';
import type { JudgeInput, MetricConfig, MetricSeries } from '#core/canary/judge.ts';
import { judge, resolveMetricConfig } from '#core/canary/judge.ts';
import { SERVER_METRICS } from '#core/canary/metric-presets.ts';
import { BadRequestError } from '#core/errors.ts';
import { hodgesLehmann } from '#core/stats/hodges-lehmann.ts';
import { canaryInput, HEALTHY, normal, rng } from './synthetic.ts';

const row = (r: ReturnType<typeof judge>, metric: string, operation: string | null = null) => {
  const found = r.metrics.find((m) => m.metric === metric && m.operation === operation);
  if (!found) throw new Error(`no row ${metric}`);
  return found;
};

/** n per-interval values around `center` with relative noise, seeded. */
function series(n: number, center: number, seed: number, noise = 0.05): number[] {
  const rand = rng(seed);
  return Array.from({ length: n }, () => center * (1 + noise * normal(rand)));
}

const steady = (n: number, perInterval = 100) => Array.from({ length: n }, () => perInterval);

function single(
  config: MetricConfig,
  canary: (number | null)[],
  baseline: (number | null)[],
  extra: Partial<JudgeInput> = {},
) {
  return judge({
    metrics: [{ config, canary, baseline }],
    traffic: { canary: steady(canary.length), baseline: steady(baseline.length) },
    ...extra,
  });
}

describe('synthetic canaries', () => {
  it('a clear regression fails, with every regressed metric named', () => {
    const r = judge(canaryInput({ ...HEALTHY, latencyMs: 180, errorRate: 0.03 }, HEALTHY));
    expect(r.verdict).toBe('fail');
    expect(row(r, 'error_rate')).toMatchObject({ classification: 'High', criticalFailure: true });
    for (const m of ['latency_p50', 'latency_p95', 'latency_p99'])
      expect(row(r, m).classification).toBe('High');
    expect(row(r, 'cpu').classification).toBe('Pass');
    expect(r.reasons[0]).toBe(
      'error_rate: canary higher: mean 2.974% vs 0.8865% (×3.354, +235.4%), 98% interval of the shift [+1.19 pp, +2.655 pp]; critical',
    );
    expect(r.reasons.some((x) => x.startsWith('latency_p95: canary higher'))).toBe(true);
  });

  it('no difference passes with a perfect score, whatever the seed', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const r = judge(canaryInput(HEALTHY, HEALTHY, { seed }));
      expect(r.verdict, `seed ${seed}: ${r.reasons.join('; ')}`).toBe('pass');
      expect(r.score).toBe(100);
      expect(r.metrics.every((m) => m.classification === 'Pass')).toBe(true);
    }
  });

  it('a moderate latency regression is caught even without a critical metric failing', () => {
    const r = judge(canaryInput({ ...HEALTHY, latencyMs: 144 }, HEALTHY));
    expect(r.verdict).toBe('fail');
    expect(r.score).toBeCloseTo((4 / 7) * 100, 6);
    expect(row(r, 'latency_p95')).toMatchObject({ classification: 'High', criticalFailure: false });
    expect(row(r, 'latency_p95').effectSize).toBeCloseTo(1.2, 1);
    expect(r.reasons[0]).toBe('score 57.1 is below the marginal threshold 75');
  });

  it('tiny traffic is inconclusive with the exact reason, never a pass', () => {
    const r = judge(canaryInput({ ...HEALTHY, requests: 1 }, HEALTHY));
    const requests = r.traffic.canaryRequests;
    expect(requests).toBeGreaterThan(0);
    expect(requests).toBeLessThan(100);
    expect(r.verdict).toBe('inconclusive');
    expect(r.reasons).toEqual([`insufficient traffic (${requests} requests, needs 100)`]);
    for (const m of ['error_rate', 'latency_p50', 'latency_p95', 'latency_p99']) {
      expect(row(r, m)).toMatchObject({ classification: 'NoData', noData: 'traffic' });
      expect(row(r, m).reason).toBe(`insufficient traffic (${requests} requests, needs 100)`);
    }
    // resource metrics are still judged and shown
    expect(row(r, 'cpu').classification).toBe('Pass');
  });

  it('an idle canary (no requests, no errors, no latency) is inconclusive', () => {
    const r = judge(canaryInput({ ...HEALTHY, requests: 0 }, HEALTHY));
    expect(r.verdict).toBe('inconclusive');
    expect(r.reasons).toEqual(['insufficient traffic (0 requests, needs 100)']);
  });

  it('an idle canary whose health checks fail is a fail, not merely inconclusive', () => {
    const r = judge(canaryInput({ ...HEALTHY, requests: 0, healthFailure: 0.5 }, HEALTHY));
    expect(r.verdict).toBe('fail');
    expect(row(r, 'health_check_failures')).toMatchObject({
      classification: 'High',
      criticalFailure: true,
      fromZero: true,
    });
    expect(r.reasons[0]).toMatch(
      /^health_check_failures: canary averaged 0\.\d+ where the baseline had 0: an increase from zero/,
    );
  });

  it('an idle canary without health checks or resource metrics has no score, not Score 100', () => {
    const r = judge(
      canaryInput({ ...HEALTHY, requests: 0 }, HEALTHY, { healthChecks: false, resources: false }),
    );
    expect(r.verdict).toBe('inconclusive');
    expect(r.score).toBeNull();
    expect(r.reasons).toEqual([
      'insufficient traffic (0 requests, needs 100)',
      'no metric had data to judge',
    ]);
    expect(r.metrics.every((m) => m.classification === 'NoData')).toBe(true);
    expect(row(r, 'health_check_failures')).toMatchObject({
      noData: 'missing',
      reason: 'no canary and baseline data',
      canary: null,
      baseline: null,
    });
    expect(r.groups.every((g) => g.score === null)).toBe(true);
  });

  it('no health checks configured: health_check_failures is no data, not a pass of identical zeros', () => {
    const r = judge(canaryInput(HEALTHY, HEALTHY, { healthChecks: false }));
    expect(row(r, 'health_check_failures')).toMatchObject({
      classification: 'NoData',
      noData: 'missing',
      reason: 'no canary and baseline data',
    });
    expect(r.groups.find((g) => g.name === 'health')).toMatchObject({
      score: null,
      counts: { Pass: 0, High: 0, Low: 0, NoData: 1, Error: 0 },
    });
    expect(r).toMatchObject({ verdict: 'pass', score: 100 });
    // Checks that ran and never failed are zeros on both sides: that is a pass, and scored.
    const checked = judge(canaryInput(HEALTHY, HEALTHY));
    expect(row(checked, 'health_check_failures').classification).toBe('Pass');
  });

  it('a failing canary without health checks is scored without them: no points for checks that do not exist', () => {
    const slow = { ...HEALTHY, latencyMs: 144 };
    const r = judge(canaryInput(slow, HEALTHY, { healthChecks: false }));
    expect(row(r, 'health_check_failures').classification).toBe('NoData');
    // error rate, CPU and memory pass; p50, p95 and p99 are high: 3 of 6, health's weight gone.
    expect(r.score).toBeCloseTo(50, 10);
    expect(r.verdict).toBe('fail');
    expect(r.reasons[0]).toBe('score 50 is below the marginal threshold 75');
    // With checks that ran, the same canary had 4 of 7.
    expect(judge(canaryInput(slow, HEALTHY)).score).toBeCloseTo((4 / 7) * 100, 10);
  });

  it('an idle baseline is inconclusive too, and says it is the baseline', () => {
    const r = judge(canaryInput(HEALTHY, { ...HEALTHY, requests: 0 }));
    expect(r.verdict).toBe('inconclusive');
    expect(r.reasons).toEqual(['insufficient baseline traffic (0 requests, needs 100)']);
  });

  it('traffic in a short burst is inconclusive: too few intervals have enough requests', () => {
    const input = canaryInput(HEALTHY, HEALTHY);
    const requests = input.traffic.canary.map((n, i) => (i < 3 ? 400 : 1));
    const r = judge({ ...input, traffic: { ...input.traffic, canary: requests } });
    expect(r.verdict).toBe('inconclusive');
    expect(r.reasons).toEqual(['insufficient traffic (3 intervals with 5+ requests, needs 5)']);
    expect(row(r, 'latency_p95').dropped.lowTraffic).toEqual({ canary: 57, baseline: 0 });
  });

  it('the traffic minimums are configurable', () => {
    const input = canaryInput({ ...HEALTHY, requests: 3 }, HEALTHY);
    const r = judge({ ...input, options: { minRequestsPerWindow: 50, minRequestsPerInterval: 1 } });
    expect(r.verdict).toBe('pass');
    expect(r.settings).toMatchObject({
      minRequestsPerWindow: 50,
      minRequestsPerInterval: 1,
      minIntervals: 5,
    });
  });

  it('a zero-error baseline against an erroring canary fails (Kayenta passes it)', () => {
    const r = judge(canaryInput({ ...HEALTHY, errorRate: 0.01 }, { ...HEALTHY, errorRate: 0 }));
    const err = row(r, 'error_rate');
    expect(r.verdict).toBe('fail');
    expect(err).toMatchObject({
      classification: 'High',
      criticalFailure: true,
      fromZero: true,
      effectSize: null,
    });
    expect(err.change.relative).toBeNull();
    expect(err.reason).toBe(
      'canary averaged 1.013% where the baseline had 0%: an increase from zero (p = 1.62e-13); critical',
    );
    expect(r.reasons[0]).toBe(`error_rate: ${err.reason}`);
  });

  it('Kayenta’s interval rule alone cannot see errors in a minority of intervals against a zero baseline', () => {
    const baseline = Array.from({ length: 60 }, () => 0);
    const canary = baseline.map((_, i) => (i % 3 === 0 ? 0.05 : 0)); // errors in a third of the minutes
    const hl = hodgesLehmann(canary, baseline, { confidence: 0.98 });
    expect([hl.estimate, hl.lower, hl.upper]).toEqual([0, 0, 0]); // lower bound not > 0.25·|estimate|
    const config: MetricConfig = { name: 'error_rate', direction: 'increase' };
    const r = single(config, canary, baseline);
    expect(row(r, 'error_rate')).toMatchObject({
      classification: 'High',
      fromZero: true,
      criticalFailure: false,
    });
    expect(r.verdict).toBe('fail'); // the only metric fails: score 0
    expect(
      single({ ...config, zeroBaseline: 'critical' }, canary, baseline).metrics[0]?.criticalFailure,
    ).toBe(true);
  });

  it('also catches errors spreading from a mostly-clean baseline (ties pin the interval at 0)', () => {
    const baseline = Array.from({ length: 60 }, (_, i) => (i % 20 === 0 ? 0.01 : 0));
    const canary = Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? 0.02 : 0));
    const hl = hodgesLehmann(canary, baseline);
    expect(hl.lower).toBe(0);
    const r = single({ name: 'error_rate', direction: 'increase', critical: true }, canary, baseline);
    expect(r.metrics[0]).toMatchObject({ classification: 'High', criticalFailure: true, fromZero: false });
    expect(r.verdict).toBe('fail');
  });

  it('a few errors from a zero baseline within the absolute tolerance, or not significant, pass', () => {
    const baseline = Array.from({ length: 60 }, () => 0);
    const oneBlip = baseline.map((_, i) => (i === 7 ? 0.01 : 0));
    expect(
      single({ name: 'error_rate', direction: 'increase', zeroBaseline: 'critical' }, oneBlip, baseline)
        .verdict,
    ).toBe('pass');
    const small = baseline.map((_, i) => (i % 2 ? 0.0005 : 0));
    const r = single(
      { name: 'error_rate', direction: 'increase', absoluteTolerance: 0.001, unit: 'ratio' },
      small,
      baseline,
    );
    expect(r.metrics[0]?.classification).toBe('Pass');
    expect(r.metrics[0]?.reason).toBe('canary higher by +0.025 pp, within the absolute tolerance 0.1%');
  });
});

describe('classification rules', () => {
  const base = series(60, 100, 11);

  it('direction: a decrease fails only metrics that watch decreases', () => {
    const lower = series(60, 70, 12);
    expect(single({ name: 'm', direction: 'increase' }, lower, base).metrics[0]).toMatchObject({
      classification: 'Pass',
      reason: 'canary lower (mean 70.14 vs 98.98), but only increases count against this metric',
    });
    expect(single({ name: 'm', direction: 'either' }, lower, base).metrics[0]?.classification).toBe('Low');
    expect(single({ name: 'm', direction: 'decrease' }, lower, base).metrics[0]?.classification).toBe('Low');
    expect(
      single({ name: 'm', direction: 'decrease' }, series(60, 130, 13), base).metrics[0]?.classification,
    ).toBe('Pass');
  });

  it('effect size: a significant change within the allowed ratio passes', () => {
    const up = series(60, 105, 14, 0.02);
    const tight = series(60, 100, 15, 0.02);
    expect(single({ name: 'm', direction: 'increase' }, up, tight).metrics[0]?.classification).toBe('High');
    const r = single({ name: 'm', direction: 'increase', allowedIncrease: 1.1 }, up, tight);
    expect(r.metrics[0]?.classification).toBe('Pass');
    expect(r.metrics[0]?.reason).toMatch(/within the allowed increase ×1\.1$/);
    const down = series(60, 95, 16, 0.02);
    expect(single({ name: 'm', allowedDecrease: 0.9 }, down, tight).metrics[0]?.classification).toBe('Pass');
    expect(single({ name: 'm', allowedDecrease: 0.97 }, down, tight).metrics[0]?.classification).toBe('Low');
  });

  it('a critical metric fails the canary only beyond its critical ratio', () => {
    const up = series(60, 130, 17);
    const others: MetricSeries[] = Array.from({ length: 30 }, (_, i) => ({
      config: { name: `ok${i}` },
      canary: series(60, 50, 100 + i),
      baseline: series(60, 50, 200 + i),
    }));
    const run = (config: MetricConfig) =>
      judge({
        metrics: [{ config, canary: up, baseline: base }, ...others],
        traffic: { canary: steady(60), baseline: steady(60) },
      });
    const plain = run({ name: 'latency_p95', direction: 'increase' });
    expect(plain.verdict).toBe('pass'); // 30 of 31 pass: 96.8
    const critical = run({ name: 'latency_p95', direction: 'increase', critical: true });
    expect(critical.verdict).toBe('fail');
    expect(critical.reasons[0]).toMatch(/^latency_p95: canary higher: .*; critical$/);
    expect(critical.reasons[1]).toBe('score 96.8 reaches the pass threshold 95');
    const lenient = run({
      name: 'latency_p95',
      direction: 'increase',
      critical: true,
      criticalIncrease: 1.5,
    });
    expect(lenient.verdict).toBe('pass');
    expect(row(lenient, 'latency_p95')).toMatchObject({ classification: 'High', criticalFailure: false });
  });

  it('identical and constant samples pass without a test', () => {
    expect(single({ name: 'm' }, [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]).metrics[0]).toMatchObject({
      classification: 'Pass',
      reason: 'canary and baseline data are identical',
      pValue: null,
    });
    expect(single({ name: 'm' }, [2, 2, 2, 2, 2, 2], [2, 2, 2, 2, 2]).metrics[0]?.reason).toBe(
      'every value is 2',
    );
  });

  it('NaN strategy: remove drops empty intervals, replace counts them as 0', () => {
    const baseline = Array.from({ length: 30 }, () => 0);
    const canary = Array.from({ length: 30 }, (_, i) => (i % 2 ? 1 : null));
    const removed = single(
      { name: 'failures', direction: 'increase', nanStrategy: 'remove' },
      canary,
      baseline,
    );
    expect(removed.metrics[0]).toMatchObject({
      classification: 'High',
      dropped: { missing: { canary: 15, baseline: 0 } },
    });
    expect(removed.metrics[0]?.canary).toMatchObject({ count: 15, mean: 1 });
    const replaced = single(
      { name: 'failures', direction: 'increase', nanStrategy: 'replace' },
      canary,
      baseline,
    );
    expect(replaced.metrics[0]?.canary).toMatchObject({ count: 30, mean: 0.5 });
    expect(replaced.metrics[0]?.classification).toBe('High');
    // Infinity is no value either
    const inf = single({ name: 'm' }, [...series(10, 5, 1), Infinity], series(10, 5, 2));
    expect(inf.metrics[0]?.dropped.missing.canary).toBe(1);
  });

  it('outliers: IQR removal keeps one spike from turning a small shift into a failing ratio', () => {
    const baseline = series(60, 100, 21, 0.02);
    const canary = series(60, 103, 22, 0.02);
    canary[5] = 5000; // one pathological interval
    const cfg: MetricConfig = { name: 'latency_p50', direction: 'increase', allowedIncrease: 1.1 };
    const kept = single(cfg, canary, baseline);
    expect(kept.metrics[0]?.classification).toBe('High');
    expect(kept.metrics[0]?.effectSize).toBeGreaterThan(1.1);
    const cleaned = single({ ...cfg, outliers: { factor: 3 } }, canary, baseline);
    expect(cleaned.metrics[0]?.classification).toBe('Pass');
    expect(cleaned.metrics[0]?.dropped.outliers).toEqual({ canary: 1, baseline: 0 });
  });

  it('no data: a metric without samples is NoData; required → fail; otherwise left out of the score', () => {
    const empty = [null, null, null, null, null, null];
    const metrics: MetricSeries[] = [
      { config: { name: 'cpu', perRequest: false }, canary: empty, baseline: [1, 2, 3, 4, 5, 6] },
      {
        config: { name: 'mem', perRequest: false },
        canary: [1, 2, 3, 4, 5, 6],
        baseline: [1, 2, 3, 4, 5, 6],
      },
    ];
    const traffic = { canary: steady(6), baseline: steady(6) };
    const r = judge({ metrics, traffic });
    expect(r.verdict).toBe('pass');
    expect(row(r, 'cpu')).toMatchObject({
      classification: 'NoData',
      noData: 'missing',
      reason: 'no canary data',
    });
    const required = judge({
      metrics: [
        { ...metrics[0]!, config: { name: 'cpu', perRequest: false, mustHaveData: true } },
        metrics[1]!,
      ],
      traffic,
    });
    expect(required.verdict).toBe('fail');
    expect(required.reasons[0]).toBe('cpu has no data but must have data: no canary data');
    const none = judge({ metrics: [metrics[0]!], traffic });
    expect(none.verdict).toBe('inconclusive');
    expect(none.reasons).toEqual(['no metric had data to judge']);
    expect(none.score).toBeNull();
    // Only report-only metrics with data: nothing counts in the score either.
    const unweighted = judge({ metrics: [{ ...metrics[1]!, config: { name: 'mem', weight: 0 } }], traffic });
    expect(unweighted).toMatchObject({ verdict: 'inconclusive', score: null });
    expect(unweighted.reasons).toEqual(['no metric that counts in the score could be judged']);
  });

  it('NaN strategy replace fills gaps of a series, but no value on either side is no data', () => {
    const gappy = Array.from({ length: 30 }, (_, i) => (i % 5 === 0 ? 0 : null));
    const nothing = Array.from({ length: 30 }, () => null);
    const cfg: MetricConfig = { name: 'failures', perRequest: false, nanStrategy: 'replace' };
    expect(single(cfg, gappy, gappy).metrics[0]).toMatchObject({
      classification: 'Pass',
      dropped: { missing: { canary: 24, baseline: 24 } },
    });
    const none = single(cfg, nothing, nothing);
    expect(none.metrics[0]).toMatchObject({
      classification: 'NoData',
      noData: 'missing',
      reason: 'no canary and baseline data',
      dropped: { missing: { canary: 30, baseline: 30 } },
    });
    expect(none).toMatchObject({ verdict: 'inconclusive', score: null });
    // One side with values: the other side's empty intervals are zeros, as before.
    expect(single(cfg, gappy, nothing).metrics[0]?.classification).toBe('Pass');
  });

  it('too few intervals are no data rather than a weak pass', () => {
    const r = single({ name: 'm', perRequest: false }, [1, 2, 3], [1, 2, 3, 4, 5, 6]);
    expect(r.metrics[0]?.reason).toBe('too few values (canary 3, baseline 6 intervals with data, needs 5)');
  });

  it('samples that do not line up with the request counts are an Error row', () => {
    const r = judge({
      metrics: [
        { config: { name: 'latency_p95', critical: true }, canary: [1, 2], baseline: series(60, 1, 3) },
        { config: { name: 'cpu', perRequest: false }, canary: series(60, 1, 4), baseline: series(60, 1, 5) },
      ],
      traffic: { canary: steady(60), baseline: steady(60) },
    });
    expect(row(r, 'latency_p95')).toMatchObject({ classification: 'Error' });
    expect(row(r, 'latency_p95').reason).toBe(
      'could not judge: samples do not line up with the request counts (canary 2 values for 60 intervals, baseline 60 for 60)',
    );
    expect(r.verdict).toBe('inconclusive'); // a critical metric could not be judged
  });
});

describe('scores, weights and groups', () => {
  const good = (name: string, group: string, weight = 1): MetricSeries => ({
    config: { name, group, weight, direction: 'increase' },
    canary: series(60, 10, name.length * 7 + 1),
    baseline: series(60, 10, name.length * 7 + 2),
  });
  const bad = (name: string, group: string, weight = 1): MetricSeries => ({
    config: { name, group, weight, direction: 'increase' },
    canary: series(60, 20, 5),
    baseline: series(60, 10, 6),
  });
  const traffic = { canary: steady(60), baseline: steady(60) };

  it('score is the weighted share of passing metrics', () => {
    const r = judge({ metrics: [good('a', 'x'), good('bb', 'x'), good('ccc', 'y'), bad('d', 'y')], traffic });
    expect(r.score).toBe(75);
    expect(r.verdict).toBe('marginal');
    expect(r.reasons[0]).toBe('score 75 is below the pass threshold 95 (marginal from 75)');
    const weighted = judge({
      metrics: [good('a', 'x', 3), good('bb', 'x'), good('ccc', 'y'), bad('d', 'y', 0.5)],
      traffic,
    });
    expect(weighted.score).toBeCloseTo((5 / 5.5) * 100, 10);
    expect(weighted.groups).toEqual([
      { name: 'x', score: 100, weight: null, counts: { Pass: 2, High: 0, Low: 0, NoData: 0, Error: 0 } },
      {
        name: 'y',
        score: expect.closeTo(66.6667, 3),
        weight: null,
        counts: { Pass: 1, High: 1, Low: 0, NoData: 0, Error: 0 },
      },
    ]);
  });

  it('weight 0 is report-only: shown but not scored', () => {
    const r = judge({ metrics: [good('a', 'x'), bad('d', 'x', 0)], traffic });
    expect(r.score).toBe(100);
    expect(r.verdict).toBe('pass');
    expect(row(r, 'd').classification).toBe('High');
  });

  it('group weights: listed groups take their weight, the rest share what is left; groups without data drop out', () => {
    const metrics = [good('a', 'x'), good('bb', 'y'), bad('d', 'y'), good('e', 'z')];
    const r = judge({ metrics, traffic, options: { groupWeights: { y: 60 } } });
    expect(r.groups.map((g) => [g.name, g.weight, g.score])).toEqual([
      ['x', 20, 100],
      ['y', 60, 50],
      ['z', 20, 100],
    ]);
    expect(r.score).toBeCloseTo(70, 10);
    const noZ = judge({
      metrics: [
        ...metrics.slice(0, 3),
        {
          ...metrics[3]!,
          canary: [null, null],
          baseline: [null, null],
          config: { name: 'e', group: 'z', perRequest: false },
        },
      ],
      traffic,
      options: { groupWeights: { y: 60 } },
    });
    expect(noZ.score).toBeCloseTo((20 * 100 + 60 * 50) / 80, 10);
  });

  it('thresholds are configurable', () => {
    const metrics = [good('a', 'x'), good('bb', 'x'), good('ccc', 'y'), bad('d', 'y')];
    expect(judge({ metrics, traffic, options: { passThreshold: 70, marginalThreshold: 50 } }).verdict).toBe(
      'pass',
    );
    expect(judge({ metrics, traffic, options: { passThreshold: 90, marginalThreshold: 80 } }).verdict).toBe(
      'fail',
    );
  });

  it('per-operation metrics use their own traffic: a rarely used tool is NoData without blocking the verdict', () => {
    const rare = { canary: steady(60, 0).map((_, i) => (i % 10 === 0 ? 2 : 0)), baseline: steady(60, 1) };
    const r = judge({
      metrics: [
        good('a', 'x'),
        {
          config: { name: 'latency_p95', group: 'x' },
          operation: 'search',
          canary: series(60, 5, 1),
          baseline: series(60, 5, 2),
          traffic: rare,
        },
      ],
      traffic,
    });
    expect(row(r, 'latency_p95', 'search')).toMatchObject({
      classification: 'NoData',
      noData: 'traffic',
      reason: 'insufficient traffic (12 requests, needs 100)',
    });
    expect(r.verdict).toBe('pass');
    // … unless the tool's metric must have data
    const required = judge({
      metrics: [
        good('a', 'x'),
        {
          config: { name: 'latency_p95', group: 'x', mustHaveData: true },
          operation: 'search',
          canary: series(60, 5, 1),
          baseline: series(60, 5, 2),
          traffic: rare,
        },
      ],
      traffic,
    });
    expect(required.verdict).toBe('inconclusive');
    expect(required.reasons).toEqual(['latency_p95 (search): insufficient traffic (12 requests, needs 100)']);
  });

  it('an Error on an ordinary metric leaves it out of the score without blocking the verdict', () => {
    const r = judge({
      metrics: [good('a', 'x'), { config: { name: 'broken' }, canary: [1], baseline: [1] }],
      traffic,
    });
    expect(row(r, 'broken').classification).toBe('Error');
    expect(r.verdict).toBe('pass');
    expect(r.groups[0]?.counts).toEqual({ Pass: 1, High: 0, Low: 0, NoData: 0, Error: 0 });
  });
});

describe('configuration errors', () => {
  const traffic = { canary: steady(10), baseline: steady(10) };
  const bad = (config: Partial<MetricConfig>) => () =>
    resolveMetricConfig({ name: 'm', ...config } as MetricConfig);

  it('refuses settings the judge cannot use, with a sentence that says why', () => {
    expect(bad({ name: '' })).toThrow('every metric needs a name');
    expect(bad({ confidence: 1.2 })).toThrow('metric "m": confidence must be between 0 and 1, e.g. 0.98');
    expect(bad({ allowedIncrease: 0.9 })).toThrow(/allowedIncrease is a mean ratio ≥ 1/);
    expect(bad({ allowedIncrease: 1.5, criticalIncrease: 1.2 })).toThrow(
      'criticalIncrease must be ≥ allowedIncrease (1.5)',
    );
    expect(bad({ allowedDecrease: 1.2 })).toThrow(/allowedDecrease/);
    expect(bad({ weight: -1 })).toThrow(/weight/);
    expect(bad({ direction: 'up' as never })).toThrow(/direction/);
    expect(bad({ nanStrategy: 'zero' as never })).toThrow(/nanStrategy/);
    expect(bad({ outliers: { factor: 0 } })).toThrow(/outlier factor/);
    try {
      bad({ tolerance: -1 })();
    } catch (err) {
      expect(err).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).code).toBe('invalid-canary-config');
    }
  });

  it('refuses bad thresholds, duplicate metrics and missing traffic', () => {
    const m: MetricSeries = { config: { name: 'm' }, canary: [1], baseline: [1] };
    expect(() =>
      judge({ metrics: [m], traffic, options: { passThreshold: 50, marginalThreshold: 60 } }),
    ).toThrow('the marginal threshold (60) must not exceed the pass threshold (50)');
    expect(() => judge({ metrics: [m], traffic, options: { minIntervals: 0 } })).toThrow(/minIntervals/);
    expect(() => judge({ metrics: [m, m], traffic })).toThrow('metric m is listed twice');
    expect(() => judge({ metrics: [m, { ...m, operation: 'search' }], traffic })).not.toThrow();
    expect(() => judge({ metrics: [m], traffic: undefined as never })).toThrow(/request counts/);
    expect(() => judge({ metrics: {} as never, traffic })).toThrow('metrics must be a list of metric series');
    expect(() => judge({ metrics: [{ canary: [], baseline: [] } as never], traffic })).toThrow(
      'every metric needs a config',
    );
  });

  it('the standard presets are valid', () => {
    for (const c of SERVER_METRICS) expect(() => resolveMetricConfig(c)).not.toThrow();
  });
});

describe('session crash rate (counts over the window)', () => {
  const sessions = (canary: [number, number], baseline: [number, number]) => ({
    canary: { events: canary[0], total: canary[1] },
    baseline: { events: baseline[0], total: baseline[1] },
  });

  it('fails a canary whose sessions crash, whatever its latency and error rate', () => {
    const r = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([4, 20], [0, 200]) }));
    expect(r.verdict).toBe('fail');
    expect(row(r, 'session_crash_rate')).toMatchObject({
      classification: 'High',
      criticalFailure: true,
      fromZero: true,
      counts: { canary: { events: 4, total: 20 }, baseline: { events: 0, total: 200 } },
    });
    expect(row(r, 'latency_p95').classification).toBe('Pass');
    expect(r.reasons[0]).toMatch(/^session_crash_rate: canary 4 of 20 \(20%\) vs baseline 0 of 200 \(0%\)/);
  });

  it('does not fail on one crash in three sessions, but does on two against a crash-free baseline', () => {
    const one = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([1, 3], [0, 100]) }));
    expect(row(one, 'session_crash_rate')).toMatchObject({ classification: 'Pass', criticalFailure: false });
    expect(row(one, 'session_crash_rate').reason).toMatch(/fewer than 2 canary events/);
    expect(one.verdict).toBe('pass');
    const two = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([2, 3], [0, 100]) }));
    expect(two.verdict).toBe('fail');
    // Two of three against two of three baseline sessions is no evidence of anything.
    const same = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([2, 3], [2, 3]) }));
    expect(row(same, 'session_crash_rate').classification).toBe('Pass');
  });

  it('passes a rate no significantly higher than the baseline’s', () => {
    const r = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([3, 100], [20, 1000]) }));
    expect(row(r, 'session_crash_rate')).toMatchObject({ classification: 'Pass' });
    expect(row(r, 'session_crash_rate').reason).toMatch(/not a significant rise/);
    expect(r.verdict).toBe('pass');
  });

  it('is no data, not scored, without finished sessions; judged even when requests are too few', () => {
    const none = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([0, 0], [0, 0]) }));
    expect(row(none, 'session_crash_rate')).toMatchObject({ classification: 'NoData', noData: 'missing' });
    expect(none.score).toBe(100);
    const noBaseline = judge(canaryInput(HEALTHY, HEALTHY, { sessions: sessions([3, 3], [0, 0]) }));
    expect(row(noBaseline, 'session_crash_rate').reason).toBe('no baseline data');
    const idle = judge(
      canaryInput({ ...HEALTHY, requests: 1 }, HEALTHY, { sessions: sessions([3, 4], [0, 50]) }),
    );
    expect(idle.verdict).toBe('fail');
  });
});
