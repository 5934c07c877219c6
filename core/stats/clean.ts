import { quantileSorted, sorted } from './describe.ts';

/**
 * What to do with an interval that has no value (null, NaN, ±Infinity), as Kayenta's NaN strategy:
 * `remove` drops it; `replace` counts it as 0 — right for counters where "nothing reported" means
 * "nothing happened" (errors, failed health checks), wrong for gauges and latencies.
 */
export type NanStrategy = 'remove' | 'replace';

export interface Cleaned {
  values: number[];
  /** how many values were missing (removed or replaced) */
  missing: number;
}

export function handleMissing(
  values: readonly (number | null | undefined)[],
  strategy: NanStrategy,
): Cleaned {
  const out: number[] = [];
  let missing = 0;
  for (const v of values) {
    if (typeof v === 'number' && Number.isFinite(v)) out.push(v);
    else {
      missing++;
      if (strategy === 'replace') out.push(0);
    }
  }
  return { values: out, missing };
}

export interface IqrFences {
  q1: number;
  q3: number;
  lower: number;
  upper: number;
}

/** Tukey's fences [Q1 − k·IQR, Q3 + k·IQR] with quartiles by linear interpolation (type 7). */
export function iqrFences(values: readonly number[], factor: number): IqrFences {
  const s = sorted(values);
  const q1 = quantileSorted(s, 0.25);
  const q3 = quantileSorted(s, 0.75);
  const iqr = q3 - q1;
  return { q1, q3, lower: q1 - factor * iqr, upper: q3 + factor * iqr };
}

export interface OutlierResult {
  values: number[];
  removed: number;
  fences: IqrFences | null;
}

/**
 * Removes values outside Tukey's fences (Kayenta's IQR outlier detector; its judge uses factor 3).
 * Nothing is removed when the interquartile range is 0: with mostly-identical samples (an error
 * rate that is 0 in most intervals) every non-zero interval would sit outside the fences, and
 * removing them would hide exactly the errors a canary analysis exists to catch. Fewer than 4
 * values have no meaningful quartiles, so they are kept too.
 */
export function removeOutliers(values: readonly number[], factor = 3): OutlierResult {
  if (values.length < 4) return { values: [...values], removed: 0, fences: null };
  const fences = iqrFences(values, factor);
  if (fences.q3 === fences.q1) return { values: [...values], removed: 0, fences: null };
  const kept = values.filter((v) => v >= fences.lower && v <= fences.upper);
  return { values: kept, removed: values.length - kept.length, fences };
}
