/** Descriptive statistics over plain arrays of finite numbers. */

/** A sorted copy, numeric order (Float64Array sorts numerically and is much faster than Array#sort). */
export function sorted(values: readonly number[]): Float64Array {
  return Float64Array.from(values).sort();
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  return sum / values.length;
}

/**
 * Quantile `p` (0..1) of already sorted values by linear interpolation between closest ranks:
 * Hyndman & Fan type 7, the default of R's `quantile` and numpy's `quantile`.
 */
export function quantileSorted(sortedValues: ArrayLike<number>, p: number): number {
  const n = sortedValues.length;
  if (n === 0 || !(p >= 0 && p <= 1)) return NaN;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const a = sortedValues[lo] as number;
  if (lo + 1 >= n) return a;
  const b = sortedValues[lo + 1] as number;
  return a + (h - lo) * (b - a);
}

export const quantile = (values: readonly number[], p: number): number => quantileSorted(sorted(values), p);

export const median = (values: readonly number[]): number => quantile(values, 0.5);

export interface Summary {
  count: number;
  mean: number;
  median: number;
  min: number;
  max: number;
  p95: number;
  stdev: number;
}

/** Count, mean, median, extremes, p95 and sample standard deviation (NaN when undefined). */
export function summarize(values: readonly number[]): Summary {
  const s = sorted(values);
  const m = mean(s);
  let ss = 0;
  for (const v of s) ss += (v - m) * (v - m);
  return {
    count: s.length,
    mean: m,
    median: quantileSorted(s, 0.5),
    min: s.length ? (s[0] as number) : NaN,
    max: s.length ? (s[s.length - 1] as number) : NaN,
    p95: quantileSorted(s, 0.95),
    stdev: s.length > 1 ? Math.sqrt(ss / (s.length - 1)) : NaN,
  };
}
