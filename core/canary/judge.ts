/**
 * The canary judge: compares per-interval samples of a canary with those of its baseline, metric
 * by metric, and turns the classifications into a score and a verdict. Pure and store-free; the
 * analysis job feeds it samples read from the warehouse.
 *
 * It follows Spinnaker Kayenta's NetflixACAJudge (Mann-Whitney classifier, weighted-sum scorer,
 * pass/marginal thresholds) and differs where Kayenta's users report it fails:
 *
 *  1. Low traffic. Kayenta judges whatever samples it gets, so an idle canary (no requests, hence no
 *     errors and no slow requests) passes. Here the judge takes per-interval request counts: request-
 *     derived metrics (`perRequest`) ignore intervals under `minRequestsPerInterval`, need at least
 *     `minIntervals` intervals left, and a window under `minRequestsPerWindow` requests is not judged
 *     at all: the verdict is `inconclusive` with the reason "insufficient traffic (N requests, needs M)".
 *  2. A baseline without errors against an erroring canary. Kayenta's test is on the Hodges-Lehmann
 *     interval: "higher" needs its lower bound above tolerance × |estimate|. When most intervals are
 *     0 in both samples, most pairwise differences are exactly 0, the estimate and the interval sit
 *     on 0 and the canary passes however significant the difference (and the mean ratio, Kayenta's
 *     effect size, is x/0). Here, when an interval bound sits exactly on 0 because the samples share
 *     values (`zeroDifferences`), the one-sided Mann-Whitney p-value decides instead, at the same
 *     confidence; the effect size of a rise from a zero baseline is undefined (`effectSize: null`,
 *     `fromZero: true`) and counts as beyond any allowed or critical increase once the absolute
 *     change exceeds `absoluteTolerance`; `zeroBaseline: 'critical'` makes such a rise fail the
 *     canary outright (the error-rate preset does).
 *  3. Identical or constant samples pass without a test (as Kayenta); NaN handling and IQR outlier
 *     removal are per sample (as Kayenta), but outlier removal never removes anything when the
 *     interquartile range is 0 (it would delete every error of a mostly-error-free sample). The NaN
 *     strategy `replace` fills gaps with 0 only in a series that has values: a metric without a
 *     single value on either side (health-check failures when no health check ran) is `NoData`, not
 *     a pass of two identical rows of zeros.
 *  4. Scores: weighted share of passing metrics (metric weights; optional group weights renormalised
 *     over the groups that have data — Kayenta silently scores a group without data as 0). `NoData`
 *     and `Error` metrics are left out: their weight leaves the denominator. When nothing is left to
 *     score, the score is null, never 100, and the verdict inconclusive.
 */
import { BadRequestError } from '../errors.ts';
import type { NanStrategy } from '../stats/clean.ts';
import { handleMissing, removeOutliers } from '../stats/clean.ts';
import { mean, quantileSorted, sorted } from '../stats/describe.ts';
import { hodgesLehmann } from '../stats/hodges-lehmann.ts';
import { fisherExact } from '../stats/fisher.ts';
import { mannWhitneyU } from '../stats/mann-whitney.ts';
import { fmt, formatDelta, formatPercent, formatValue } from './format.ts';

export type Direction = 'increase' | 'decrease' | 'either';
export type Classification = 'Pass' | 'High' | 'Low' | 'NoData' | 'Error';
export type Verdict = 'pass' | 'marginal' | 'fail' | 'inconclusive';

export interface MetricConfig {
  /** e.g. error_rate, latency_p95, cpu */
  name: string;
  /** groups score separately and can be weighted (default "default") */
  group?: string;
  /** which change is bad (default either, as Kayenta) */
  direction?: Direction;
  /** a failing critical metric fails the canary whatever the score */
  critical?: boolean;
  /** no data for this metric fails the canary (or makes it inconclusive when traffic is the cause) */
  mustHaveData?: boolean;
  /** share in the score (default 1); 0 = report only */
  weight?: number;
  nanStrategy?: NanStrategy;
  /** IQR outlier removal per sample (off by default; Kayenta's judge uses factor 3) */
  outliers?: { factor?: number } | null;
  /** effect sizes as mean ratio canary/baseline: "High" needs ratio ≥ allowedIncrease (default 1) */
  allowedIncrease?: number;
  /** a critical metric fails the canary when ratio ≥ criticalIncrease (default allowedIncrease) */
  criticalIncrease?: number;
  /** "Low" needs ratio ≤ allowedDecrease (default 1) */
  allowedDecrease?: number;
  /** a critical metric fails the canary when ratio ≤ criticalDecrease (default allowedDecrease) */
  criticalDecrease?: number;
  /** Kayenta's tolerance: the interval must clear tolerance × |estimate| (default 0.25) */
  tolerance?: number;
  /** of the Hodges-Lehmann interval and the tie-case test (default 0.98) */
  confidence?: number;
  /** changes of the mean no larger than this pass (default 0) */
  absoluteTolerance?: number;
  /** derived from requests (error rate, latency), so subject to the traffic minimums (default true) */
  perRequest?: boolean;
  /** a significant rise from a zero baseline: a plain High, or a critical failure */
  zeroBaseline?: 'high' | 'critical';
  /**
   * metrics judged on counts (a series with `counts`, e.g. crashed of finished sessions): a rise
   * needs at least this many canary events (default 0)
   */
  minEvents?: number;
  /** for rendering: ms, ratio (shown as %), bytes, count, … */
  unit?: string;
}

/** Events out of trials over the whole window, e.g. crashed sessions of the finished ones. */
export interface EventCounts {
  events: number;
  total: number;
}

export interface Traffic {
  /** requests per interval, aligned with the metric samples */
  canary: readonly number[];
  baseline: readonly number[];
}

export interface MetricSeries {
  config: MetricConfig;
  /** MCP tool for per-operation metrics; null/absent for the whole server */
  operation?: string | null;
  /** one value per interval; null or NaN where the interval has no value */
  canary: readonly (number | null)[];
  baseline: readonly (number | null)[];
  /** the requests behind this metric (per-operation metrics); defaults to the window's traffic */
  traffic?: Traffic;
  /**
   * A rate judged over the whole window from counts instead of per-interval values (which are then
   * ignored): Fisher's exact test on events / total of canary and baseline.
   */
  counts?: { canary: EventCounts; baseline: EventCounts };
}

export interface JudgeOptions {
  passThreshold?: number;
  marginalThreshold?: number;
  minRequestsPerInterval?: number;
  minRequestsPerWindow?: number;
  minIntervals?: number;
  /** group name → weight; groups not listed share what is left of 100 (as Kayenta) */
  groupWeights?: Record<string, number>;
}

export interface JudgeInput {
  metrics: readonly MetricSeries[];
  traffic: Traffic;
  options?: JudgeOptions;
}

export interface JudgeSettings {
  passThreshold: number;
  marginalThreshold: number;
  minRequestsPerInterval: number;
  minRequestsPerWindow: number;
  minIntervals: number;
  groupWeights: Record<string, number> | null;
}

export const DEFAULT_SETTINGS: Readonly<JudgeSettings> = {
  passThreshold: 95,
  marginalThreshold: 75,
  // A minute with fewer than 5 requests has no meaningful p95; 100 requests is the least a window
  // needs before "no errors, no slow requests" says anything.
  minRequestsPerInterval: 5,
  minRequestsPerWindow: 100,
  // Below 5 intervals a side the Mann-Whitney test cannot reach 98% confidence at all.
  minIntervals: 5,
  groupWeights: null,
};

export type ResolvedMetricConfig = Required<Omit<MetricConfig, 'outliers' | 'unit'>> & {
  outliers: { factor: number } | null;
  unit: string | null;
};

export interface SampleSummary {
  count: number;
  mean: number;
  median: number;
  min: number;
  max: number;
  p95: number;
}

export interface MetricResult {
  metric: string;
  operation: string | null;
  group: string;
  weight: number;
  direction: Direction;
  critical: boolean;
  mustHaveData: boolean;
  unit: string | null;
  classification: Classification;
  /** this result alone fails the canary */
  criticalFailure: boolean;
  /** why there is no data: too little traffic, or the samples are missing */
  noData: 'traffic' | 'missing' | null;
  reason: string;
  canary: SampleSummary | null;
  baseline: SampleSummary | null;
  /** canary mean − baseline mean, and that over |baseline mean| (null from a zero baseline) */
  change: { absolute: number | null; relative: number | null };
  /** mean ratio canary/baseline, Kayenta's effect size; null when the baseline mean is ≤ 0 */
  effectSize: number | null;
  /** the baseline mean is 0: a rise has no ratio */
  fromZero: boolean;
  /** two-sided Mann-Whitney p-value */
  pValue: number | null;
  /** Hodges-Lehmann shift canary − baseline with its interval */
  shift: { estimate: number; lower: number; upper: number; confidence: number; method: string } | null;
  /** the counts a count-based metric was judged on */
  counts?: { canary: EventCounts; baseline: EventCounts };
  /** intervals left out, per reason */
  dropped: {
    lowTraffic: { canary: number; baseline: number };
    missing: { canary: number; baseline: number };
    outliers: { canary: number; baseline: number };
  };
}

export interface GroupScore {
  name: string;
  /** weighted share of passing metrics, 0–100; null when no metric of the group had data */
  score: number | null;
  /** the group's weight in the overall score (null: overall = share over all metrics) */
  weight: number | null;
  counts: Record<Classification, number>;
}

export interface JudgeResult {
  verdict: Verdict;
  /** 0–100; null when nothing could be judged */
  score: number | null;
  reasons: string[];
  metrics: MetricResult[];
  groups: GroupScore[];
  traffic: { canaryRequests: number; baselineRequests: number; intervals: number };
  settings: JudgeSettings;
}

const invalid = (detail: string) => new BadRequestError(detail, 'invalid-canary-config');

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Fills in defaults and refuses settings the judge cannot use, with a sentence saying why. */
export function resolveMetricConfig(config: MetricConfig): ResolvedMetricConfig {
  if (typeof config.name !== 'string' || config.name.trim() === '')
    throw invalid('every metric needs a name');
  const label = `metric ${JSON.stringify(config.name)}`;
  const allowedIncrease = config.allowedIncrease ?? 1;
  const allowedDecrease = config.allowedDecrease ?? 1;
  const r: ResolvedMetricConfig = {
    name: config.name,
    group: config.group ?? 'default',
    direction: config.direction ?? 'either',
    critical: config.critical ?? false,
    mustHaveData: config.mustHaveData ?? false,
    weight: config.weight ?? 1,
    nanStrategy: config.nanStrategy ?? 'remove',
    outliers: config.outliers ? { factor: config.outliers.factor ?? 3 } : null,
    allowedIncrease,
    criticalIncrease: config.criticalIncrease ?? allowedIncrease,
    allowedDecrease,
    criticalDecrease: config.criticalDecrease ?? allowedDecrease,
    tolerance: config.tolerance ?? 0.25,
    confidence: config.confidence ?? 0.98,
    absoluteTolerance: config.absoluteTolerance ?? 0,
    perRequest: config.perRequest ?? true,
    zeroBaseline: config.zeroBaseline ?? 'high',
    minEvents: config.minEvents ?? 0,
    unit: config.unit ?? null,
  };
  if (!Number.isInteger(r.minEvents) || r.minEvents < 0)
    throw invalid(`${label}: minEvents must be a whole number ≥ 0`);
  if (!['increase', 'decrease', 'either'].includes(r.direction))
    throw invalid(`${label}: direction must be increase, decrease or either`);
  if (!['remove', 'replace'].includes(r.nanStrategy))
    throw invalid(`${label}: nanStrategy must be remove or replace`);
  if (!['high', 'critical'].includes(r.zeroBaseline))
    throw invalid(`${label}: zeroBaseline must be high or critical`);
  if (!isNum(r.weight) || r.weight < 0) throw invalid(`${label}: weight must be a number ≥ 0`);
  if (!isNum(r.confidence) || r.confidence <= 0 || r.confidence >= 1)
    throw invalid(`${label}: confidence must be between 0 and 1, e.g. 0.98`);
  if (!isNum(r.tolerance) || r.tolerance < 0) throw invalid(`${label}: tolerance must be ≥ 0, e.g. 0.25`);
  if (!isNum(r.absoluteTolerance) || r.absoluteTolerance < 0)
    throw invalid(`${label}: absoluteTolerance must be ≥ 0`);
  if (r.outliers && (!isNum(r.outliers.factor) || r.outliers.factor <= 0))
    throw invalid(`${label}: the outlier factor must be > 0, e.g. 3`);
  if (!isNum(r.allowedIncrease) || r.allowedIncrease < 1)
    throw invalid(`${label}: allowedIncrease is a mean ratio ≥ 1, e.g. 1.1 for +10%`);
  if (!isNum(r.criticalIncrease) || r.criticalIncrease < r.allowedIncrease)
    throw invalid(`${label}: criticalIncrease must be ≥ allowedIncrease (${r.allowedIncrease})`);
  if (!isNum(r.allowedDecrease) || r.allowedDecrease > 1 || r.allowedDecrease < 0)
    throw invalid(`${label}: allowedDecrease is a mean ratio between 0 and 1, e.g. 0.9 for −10%`);
  if (!isNum(r.criticalDecrease) || r.criticalDecrease > r.allowedDecrease || r.criticalDecrease < 0)
    throw invalid(`${label}: criticalDecrease must be between 0 and allowedDecrease (${r.allowedDecrease})`);
  return r;
}

export function resolveSettings(options: JudgeOptions = {}): JudgeSettings {
  const s: JudgeSettings = {
    passThreshold: options.passThreshold ?? DEFAULT_SETTINGS.passThreshold,
    marginalThreshold: options.marginalThreshold ?? DEFAULT_SETTINGS.marginalThreshold,
    minRequestsPerInterval: options.minRequestsPerInterval ?? DEFAULT_SETTINGS.minRequestsPerInterval,
    minRequestsPerWindow: options.minRequestsPerWindow ?? DEFAULT_SETTINGS.minRequestsPerWindow,
    minIntervals: options.minIntervals ?? DEFAULT_SETTINGS.minIntervals,
    groupWeights: options.groupWeights ?? null,
  };
  if (
    !isNum(s.passThreshold) ||
    !isNum(s.marginalThreshold) ||
    s.marginalThreshold < 0 ||
    s.passThreshold > 100
  )
    throw invalid('score thresholds are numbers from 0 to 100, e.g. pass 95 and marginal 75');
  if (s.marginalThreshold > s.passThreshold)
    throw invalid(
      `the marginal threshold (${s.marginalThreshold}) must not exceed the pass threshold (${s.passThreshold})`,
    );
  for (const key of ['minRequestsPerInterval', 'minRequestsPerWindow'] as const) {
    if (!Number.isInteger(s[key]) || s[key] < 0) throw invalid(`${key} must be a whole number ≥ 0`);
  }
  if (!Number.isInteger(s.minIntervals) || s.minIntervals < 1)
    throw invalid('minIntervals must be a whole number ≥ 1');
  if (s.groupWeights) {
    for (const [g, w] of Object.entries(s.groupWeights)) {
      if (!isNum(w) || w < 0) throw invalid(`group weight of ${JSON.stringify(g)} must be a number ≥ 0`);
    }
  }
  return s;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + (isNum(b) ? b : 0), 0);

export const metricLabel = (metric: string, operation: string | null) =>
  operation ? `${metric} (${operation})` : metric;

/** The reason a request-derived sample cannot be judged: the exact wording reports and CI logs show. */
export const insufficientTraffic = (
  requests: number,
  needs: number,
  side: 'canary' | 'baseline' = 'canary',
) => `insufficient ${side === 'baseline' ? 'baseline ' : ''}traffic (${requests} requests, needs ${needs})`;

function summary(values: readonly number[]): SampleSummary | null {
  if (values.length === 0) return null;
  const s = sorted(values);
  return {
    count: s.length,
    mean: mean(s),
    median: quantileSorted(s, 0.5),
    min: s[0] as number,
    max: s[s.length - 1] as number,
    p95: quantileSorted(s, 0.95),
  };
}

function sameMultiset(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  const sa = sorted(a);
  const sb = sorted(b);
  for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return false;
  return true;
}

interface Verdictless {
  classification: Classification;
  criticalFailure: boolean;
  reason: string;
  pValue: number | null;
  shift: MetricResult['shift'];
}

/**
 * Kayenta's Mann-Whitney classification with the tie rule and effect-size gates described at the
 * top of this file. c = canary, b = baseline, both cleaned and non-empty.
 */
function classify(c: number[], b: number[], cfg: ResolvedMetricConfig): Verdictless {
  const mc = mean(c);
  const mb = mean(b);
  if (sameMultiset(c, b)) {
    return {
      classification: 'Pass',
      criticalFailure: false,
      reason: 'canary and baseline data are identical',
      pValue: null,
      shift: null,
    };
  }
  const first = c[0] as number;
  if (c.every((v) => v === first) && b.every((v) => v === first)) {
    return {
      classification: 'Pass',
      criticalFailure: false,
      reason: `every value is ${formatValue(first, cfg.unit)}`,
      pValue: null,
      shift: null,
    };
  }
  const alpha = 1 - cfg.confidence;
  const twoSided = mannWhitneyU(c, b).pValue;
  const hl = hodgesLehmann(c, b, { confidence: cfg.confidence });
  const shift = {
    estimate: hl.estimate,
    lower: hl.lower,
    upper: hl.upper,
    confidence: cfg.confidence,
    method: hl.method,
  };
  const bound = cfg.tolerance * Math.abs(hl.estimate);
  const tied = hl.zeroDifferences > 0;
  const higher =
    hl.lower > bound ||
    (tied && hl.lower === 0 && mannWhitneyU(c, b, { alternative: 'greater' }).pValue < alpha / 2);
  const lower =
    hl.upper < -bound ||
    (tied && hl.upper === 0 && mannWhitneyU(c, b, { alternative: 'less' }).pValue < alpha / 2);
  const watchUp = cfg.direction !== 'decrease';
  const watchDown = cfg.direction !== 'increase';
  const unit = cfg.unit;
  const interval = `${fmt(cfg.confidence * 100)}% interval of the shift [${formatDelta(hl.lower, unit)}, ${formatDelta(hl.upper, unit)}]`;
  const ratio = mb > 0 && mc >= 0 ? mc / mb : null;
  const ratioText = ratio === null ? '' : ` (×${fmt(ratio)}, ${formatPercent(ratio - 1)})`;
  const means = `mean ${formatValue(mc, unit)} vs ${formatValue(mb, unit)}`;
  const pass = (reason: string): Verdictless => ({
    classification: 'Pass',
    criticalFailure: false,
    reason,
    pValue: twoSided,
    shift,
  });

  if (higher && watchUp) {
    const change = mc - mb;
    if (change <= 0) return pass(`canary ranks higher but its mean is not: ${means}`);
    if (change <= cfg.absoluteTolerance) {
      return pass(
        `canary higher by ${formatDelta(change, unit)}, within the absolute tolerance ${formatValue(cfg.absoluteTolerance, unit)}`,
      );
    }
    if (ratio !== null && ratio < cfg.allowedIncrease) {
      return pass(
        `canary higher: ${means}${ratioText}, within the allowed increase ×${fmt(cfg.allowedIncrease)}`,
      );
    }
    // No ratio from a baseline mean ≤ 0: the rise counts as beyond any allowed or critical ratio.
    const fromZero = mb === 0;
    const critical =
      (cfg.critical && (ratio === null || ratio >= cfg.criticalIncrease)) ||
      (fromZero && cfg.zeroBaseline === 'critical');
    const reason = fromZero
      ? `canary averaged ${formatValue(mc, unit)} where the baseline had ${formatValue(mb, unit)}: an increase from zero (p = ${fmt(twoSided)})`
      : `canary higher: ${means}${ratioText}, ${interval}`;
    return {
      classification: 'High',
      criticalFailure: critical,
      reason: critical ? `${reason}; critical` : reason,
      pValue: twoSided,
      shift,
    };
  }
  if (lower && watchDown) {
    const change = mc - mb;
    if (change >= 0) return pass(`canary ranks lower but its mean is not: ${means}`);
    if (-change <= cfg.absoluteTolerance) {
      return pass(
        `canary lower by ${formatDelta(change, unit)}, within the absolute tolerance ${formatValue(cfg.absoluteTolerance, unit)}`,
      );
    }
    if (ratio !== null && ratio > cfg.allowedDecrease) {
      return pass(
        `canary lower: ${means}${ratioText}, within the allowed decrease ×${fmt(cfg.allowedDecrease)}`,
      );
    }
    const critical = cfg.critical && (ratio === null || ratio <= cfg.criticalDecrease);
    const reason = `canary lower: ${means}${ratioText}, ${interval}`;
    return {
      classification: 'Low',
      criticalFailure: critical,
      reason: critical ? `${reason}; critical` : reason,
      pValue: twoSided,
      shift,
    };
  }
  if (higher) return pass(`canary higher (${means}), but only decreases count against this metric`);
  if (lower) return pass(`canary lower (${means}), but only increases count against this metric`);
  return pass(`no significant difference: ${means}, p = ${fmt(twoSided)}`);
}

function judgeMetric(
  series: MetricSeries,
  window: Traffic,
  windowShort: string | null,
  s: JudgeSettings,
): MetricResult {
  const cfg = resolveMetricConfig(series.config);
  const operation = series.operation ?? null;
  const result: MetricResult = {
    metric: cfg.name,
    operation,
    group: cfg.group,
    weight: cfg.weight,
    direction: cfg.direction,
    critical: cfg.critical,
    mustHaveData: cfg.mustHaveData,
    unit: cfg.unit,
    classification: 'NoData',
    criticalFailure: false,
    noData: null,
    reason: '',
    canary: null,
    baseline: null,
    change: { absolute: null, relative: null },
    effectSize: null,
    fromZero: false,
    pValue: null,
    shift: null,
    dropped: {
      lowTraffic: { canary: 0, baseline: 0 },
      missing: { canary: 0, baseline: 0 },
      outliers: { canary: 0, baseline: 0 },
    },
  };
  const noData = (cause: 'traffic' | 'missing', reason: string): MetricResult => {
    result.classification = 'NoData';
    result.noData = cause;
    result.reason = reason;
    return result;
  };
  try {
    if (series.counts) return judgeCounts(result, cfg, series.counts);
    let canary: readonly (number | null)[] = series.canary;
    let baseline: readonly (number | null)[] = series.baseline;
    if (!Array.isArray(canary) || !Array.isArray(baseline)) throw new Error('samples must be arrays');
    if (cfg.perRequest) {
      const traffic = series.traffic ?? window;
      if (canary.length !== traffic.canary.length || baseline.length !== traffic.baseline.length) {
        throw new Error(
          `samples do not line up with the request counts (canary ${canary.length} values for ${traffic.canary.length} intervals, baseline ${baseline.length} for ${traffic.baseline.length})`,
        );
      }
      if (!series.traffic && windowShort) return noData('traffic', windowShort);
      if (series.traffic) {
        const cr = sum(traffic.canary);
        const br = sum(traffic.baseline);
        if (cr < s.minRequestsPerWindow)
          return noData('traffic', insufficientTraffic(cr, s.minRequestsPerWindow));
        if (br < s.minRequestsPerWindow)
          return noData('traffic', insufficientTraffic(br, s.minRequestsPerWindow, 'baseline'));
      }
      const enough = (counts: readonly number[]) => (_: unknown, i: number) =>
        (counts[i] ?? 0) >= s.minRequestsPerInterval;
      const keptCanary = canary.filter(enough(traffic.canary));
      const keptBaseline = baseline.filter(enough(traffic.baseline));
      result.dropped.lowTraffic = {
        canary: canary.length - keptCanary.length,
        baseline: baseline.length - keptBaseline.length,
      };
      canary = keptCanary;
      baseline = keptBaseline;
      for (const [side, kept] of [
        ['canary', keptCanary],
        ['baseline', keptBaseline],
      ] as const) {
        if (kept.length < s.minIntervals) {
          return noData(
            'traffic',
            `insufficient ${side === 'baseline' ? 'baseline ' : ''}traffic (${kept.length} intervals with ${s.minRequestsPerInterval}+ requests, needs ${s.minIntervals})`,
          );
        }
      }
    }
    const c = handleMissing(canary, cfg.nanStrategy);
    const b = handleMissing(baseline, cfg.nanStrategy);
    result.dropped.missing = { canary: c.missing, baseline: b.missing };
    // `replace` fills the gaps of a series that reports now and then (a counter's quiet minutes);
    // it cannot make a series out of nothing. Not one value on either side (no health check ran,
    // nothing exported) is no data, not a pass of identical zeros.
    if (c.missing === canary.length && b.missing === baseline.length)
      return noData('missing', 'no canary and baseline data');
    let cv = c.values;
    let bv = b.values;
    if (cfg.outliers) {
      const co = removeOutliers(cv, cfg.outliers.factor);
      const bo = removeOutliers(bv, cfg.outliers.factor);
      result.dropped.outliers = { canary: co.removed, baseline: bo.removed };
      cv = co.values;
      bv = bo.values;
    }
    result.canary = summary(cv);
    result.baseline = summary(bv);
    if (cv.length === 0 || bv.length === 0) {
      const side =
        cv.length === 0 && bv.length === 0 ? 'canary and baseline' : cv.length === 0 ? 'canary' : 'baseline';
      return noData('missing', `no ${side} data`);
    }
    if (cv.length < s.minIntervals || bv.length < s.minIntervals) {
      return noData(
        'missing',
        `too few values (canary ${cv.length}, baseline ${bv.length} intervals with data, needs ${s.minIntervals})`,
      );
    }
    const mc = result.canary?.mean as number;
    const mb = result.baseline?.mean as number;
    result.change = { absolute: mc - mb, relative: mb === 0 ? null : (mc - mb) / Math.abs(mb) };
    result.effectSize = mb > 0 && mc >= 0 ? mc / mb : null;
    result.fromZero = mb === 0;
    const verdict = classify(cv, bv, cfg);
    result.classification = verdict.classification;
    result.criticalFailure = verdict.criticalFailure;
    result.reason = verdict.reason;
    result.pValue = verdict.pValue;
    result.shift = verdict.shift;
    return result;
  } catch (err) {
    result.classification = 'Error';
    result.noData = null;
    result.reason = `could not judge: ${err instanceof Error ? err.message : String(err)}`;
    return result;
  }
}

/**
 * A rate over the whole window from counts (crashed / finished sessions): no data unless both sides
 * have trials; a rise (or fall) counts when Fisher's exact one-sided p is below (1 − confidence) / 2
 * (the tie-case test's level), the canary has at least `minEvents` events, the change exceeds
 * `absoluteTolerance` and the ratio `allowedIncrease`; a critical metric fails the canary at
 * `criticalIncrease`, and on any such rise from a zero baseline with `zeroBaseline: 'critical'`.
 */
function judgeCounts(
  result: MetricResult,
  cfg: ResolvedMetricConfig,
  counts: { canary: EventCounts; baseline: EventCounts },
): MetricResult {
  const { canary: c, baseline: b } = counts;
  for (const x of [c, b]) {
    if (!Number.isInteger(x.events) || !Number.isInteger(x.total) || x.events < 0 || x.events > x.total)
      throw new Error('counts must be whole numbers with events ≤ total');
  }
  result.counts = { canary: { ...c }, baseline: { ...b } };
  if (c.total === 0 || b.total === 0) {
    result.noData = 'missing';
    result.reason = `no ${c.total === 0 && b.total === 0 ? 'canary and baseline' : c.total === 0 ? 'canary' : 'baseline'} data`;
    return result;
  }
  const pc = c.events / c.total;
  const pb = b.events / b.total;
  const point = (v: number, n: number): SampleSummary => ({
    count: n,
    mean: v,
    median: v,
    min: v,
    max: v,
    p95: v,
  });
  result.canary = point(pc, c.total);
  result.baseline = point(pb, b.total);
  result.change = { absolute: pc - pb, relative: pb === 0 ? null : (pc - pb) / pb };
  result.effectSize = pb > 0 ? pc / pb : null;
  result.fromZero = pb === 0;
  const greater = fisherExact(c.events, c.total, b.events, b.total, 'greater');
  const less = fisherExact(c.events, c.total, b.events, b.total, 'less');
  result.pValue = Math.min(1, 2 * Math.min(greater, less));
  const alpha = (1 - cfg.confidence) / 2;
  const unit = cfg.unit;
  const evidence = `canary ${c.events} of ${c.total} (${formatValue(pc, unit)}) vs baseline ${b.events} of ${b.total} (${formatValue(pb, unit)})`;
  const ratio = result.effectSize;
  const ratioText = ratio === null ? '' : ` (×${fmt(ratio)})`;
  const verdict = (classification: Classification, reason: string, critical = false) => {
    result.classification = classification;
    result.criticalFailure = critical;
    result.reason = critical ? `${reason}; critical` : reason;
    return result;
  };
  if (pc > pb && cfg.direction !== 'decrease') {
    if (c.events < cfg.minEvents)
      return verdict(
        'Pass',
        `${evidence}: fewer than ${cfg.minEvents} canary events, too few to call a rise`,
      );
    if (greater >= alpha) return verdict('Pass', `${evidence}: not a significant rise (p = ${fmt(greater)})`);
    if (pc - pb <= cfg.absoluteTolerance)
      return verdict(
        'Pass',
        `${evidence}: within the absolute tolerance ${formatValue(cfg.absoluteTolerance, unit)}`,
      );
    if (ratio !== null && ratio < cfg.allowedIncrease)
      return verdict(
        'Pass',
        `${evidence}${ratioText}: within the allowed increase ×${fmt(cfg.allowedIncrease)}`,
      );
    const critical =
      (cfg.critical && (ratio === null || ratio >= cfg.criticalIncrease)) ||
      (result.fromZero && cfg.zeroBaseline === 'critical');
    return verdict('High', `${evidence}${ratioText}: a significant rise (p = ${fmt(greater)})`, critical);
  }
  if (pc < pb && cfg.direction !== 'increase') {
    if (less >= alpha) return verdict('Pass', `${evidence}: not a significant fall (p = ${fmt(less)})`);
    if (pb - pc <= cfg.absoluteTolerance)
      return verdict(
        'Pass',
        `${evidence}: within the absolute tolerance ${formatValue(cfg.absoluteTolerance, unit)}`,
      );
    if (ratio !== null && ratio > cfg.allowedDecrease)
      return verdict(
        'Pass',
        `${evidence}${ratioText}: within the allowed decrease ×${fmt(cfg.allowedDecrease)}`,
      );
    const critical = cfg.critical && (ratio === null || ratio <= cfg.criticalDecrease);
    return verdict('Low', `${evidence}${ratioText}: a significant fall (p = ${fmt(less)})`, critical);
  }
  return verdict('Pass', `${evidence}: no significant difference (p = ${fmt(result.pValue)})`);
}

const SCORED = new Set<Classification>(['Pass', 'High', 'Low']);

function scoreGroups(
  metrics: readonly MetricResult[],
  s: JudgeSettings,
): { groups: GroupScore[]; score: number | null } {
  const names = [...new Set(metrics.map((m) => m.group))];
  const groups: GroupScore[] = names.map((name) => {
    const members = metrics.filter((m) => m.group === name);
    const counts: Record<Classification, number> = { Pass: 0, High: 0, Low: 0, NoData: 0, Error: 0 };
    for (const m of members) counts[m.classification]++;
    const scored = members.filter((m) => SCORED.has(m.classification));
    const total = sum(scored.map((m) => m.weight));
    const passed = sum(scored.filter((m) => m.classification === 'Pass').map((m) => m.weight));
    return { name, score: total > 0 ? (100 * passed) / total : null, weight: null, counts };
  });
  if (s.groupWeights) {
    const listed = s.groupWeights;
    const unlisted = groups.filter((g) => !(g.name in listed));
    const rest = Math.max(0, 100 - sum(Object.values(listed)));
    for (const g of groups)
      g.weight = g.name in listed ? (listed[g.name] as number) : unlisted.length ? rest / unlisted.length : 0;
    const withData = groups.filter((g) => g.score !== null && (g.weight as number) > 0);
    const w = sum(withData.map((g) => g.weight as number));
    return {
      groups,
      score: w > 0 ? sum(withData.map((g) => (g.score as number) * (g.weight as number))) / w : null,
    };
  }
  const scored = metrics.filter((m) => SCORED.has(m.classification));
  const total = sum(scored.map((m) => m.weight));
  const passed = sum(scored.filter((m) => m.classification === 'Pass').map((m) => m.weight));
  return { groups, score: total > 0 ? (100 * passed) / total : null };
}

/** Judges every metric, scores them and gives the verdict with the reasons for it. */
export function judge(input: JudgeInput): JudgeResult {
  const s = resolveSettings(input.options);
  const { traffic } = input;
  if (!traffic || !Array.isArray(traffic.canary) || !Array.isArray(traffic.baseline))
    throw invalid('the judge needs per-interval request counts for canary and baseline');
  if (!Array.isArray(input.metrics)) throw invalid('metrics must be a list of metric series');
  const seen = new Set<string>();
  for (const m of input.metrics) {
    if (!m || typeof m.config !== 'object' || m.config === null) throw invalid('every metric needs a config');
    const key = `${m.config.name}\u0000${m.operation ?? ''}`;
    if (seen.has(key))
      throw invalid(`metric ${metricLabel(m.config.name, m.operation ?? null)} is listed twice`);
    seen.add(key);
    resolveMetricConfig(m.config);
  }
  const canaryRequests = sum(traffic.canary);
  const baselineRequests = sum(traffic.baseline);
  const windowReasons: string[] = [];
  if (canaryRequests < s.minRequestsPerWindow)
    windowReasons.push(insufficientTraffic(canaryRequests, s.minRequestsPerWindow));
  if (baselineRequests < s.minRequestsPerWindow)
    windowReasons.push(insufficientTraffic(baselineRequests, s.minRequestsPerWindow, 'baseline'));

  const metrics = input.metrics.map((m) => judgeMetric(m, traffic, windowReasons[0] ?? null, s));
  const { groups, score } = scoreGroups(metrics, s);
  const label = (m: MetricResult) => metricLabel(m.metric, m.operation);
  const reasons: string[] = [];
  const add = (r: string) => {
    if (!reasons.includes(r)) reasons.push(r);
  };
  const usesWindow = (i: number) => !input.metrics[i]?.traffic;

  const failures = metrics.filter((m) => m.criticalFailure);
  const missing = metrics.filter((m) => m.mustHaveData && m.noData === 'missing');
  const result = (verdict: Verdict): JudgeResult => ({
    verdict,
    score,
    reasons,
    metrics,
    groups,
    traffic: {
      canaryRequests,
      baselineRequests,
      intervals: Math.max(traffic.canary.length, traffic.baseline.length),
    },
    settings: s,
  });
  const failing = metrics.filter((m) => m.classification === 'High' || m.classification === 'Low');
  const scoreLine = () => {
    if (score === null) return;
    const text = fmt(Math.round(score * 10) / 10);
    if (score >= s.passThreshold) add(`score ${text} reaches the pass threshold ${s.passThreshold}`);
    else if (score >= s.marginalThreshold)
      add(
        `score ${text} is below the pass threshold ${s.passThreshold} (marginal from ${s.marginalThreshold})`,
      );
    else add(`score ${text} is below the marginal threshold ${s.marginalThreshold}`);
  };

  // A critical failure or a required metric without data fails whatever the score (as Kayenta),
  // even when traffic is short: a canary whose health checks fail has failed, busy or idle.
  if (failures.length > 0 || missing.length > 0) {
    for (const m of failures) add(`${label(m)}: ${m.reason}`);
    for (const m of missing) add(`${label(m)} has no data but must have data: ${m.reason}`);
    scoreLine();
    for (const m of failing) add(`${label(m)}: ${m.reason}`);
    return result('fail');
  }
  // Never pass what was not really exercised.
  for (const r of windowReasons) add(r);
  metrics.forEach((m, i) => {
    // Window-level request metrics share the window's traffic: their reason is the window's.
    if (m.noData === 'traffic' && usesWindow(i)) add(m.reason);
    else if (m.noData === 'traffic' && m.mustHaveData) add(`${label(m)}: ${m.reason}`);
    if (m.classification === 'Error' && (m.critical || m.mustHaveData)) add(`${label(m)} ${m.reason}`);
  });
  // Nothing scored is no score (never 100), and says so, after whatever else held the verdict.
  if (score === null) {
    add(
      metrics.every((m) => m.classification === 'NoData')
        ? 'no metric had data to judge'
        : 'no metric that counts in the score could be judged',
    );
    return result('inconclusive');
  }
  if (reasons.length > 0) return result('inconclusive');
  scoreLine();
  for (const m of failing) add(`${label(m)}: ${m.reason}`);
  return result(score >= s.passThreshold ? 'pass' : score >= s.marginalThreshold ? 'marginal' : 'fail');
}
