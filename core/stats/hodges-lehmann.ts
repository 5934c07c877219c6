/**
 * The Hodges-Lehmann estimate of the shift between two samples (the median of all pairwise
 * differences xᵢ − yⱼ) and its distribution-free confidence interval (Moses): the interval between
 * the k-th smallest and the k-th largest pairwise difference, with k from the null distribution of
 * the Mann-Whitney U statistic. This is the estimate and interval Kayenta's Mann-Whitney classifier
 * judges a canary by (its default confidence is 0.98).
 *
 * k is chosen as in R's wilcox.test: the smallest k with P(U ≤ k) ≥ α/2 (at least 1), α = 1 − confidence.
 *  - exact (no ties and both samples under 50 values): from the exact distribution of U;
 *  - asymptotic: the same rule with P(U ≤ k) ≈ Φ((k + ½ − nx·ny/2)/σ), σ the tie-corrected standard
 *    deviation of U (½ is the continuity correction): k = max(1, ⌈nx·ny/2 − ½ − z₁₋α/₂·σ⌉).
 * Kayenta (and R's asymptotic branch) find the interval by root-finding on the normalized rank
 * statistic instead; the order-statistic interval is the textbook form, needs no solver, and is
 * always a pair of observed differences. Reference values: test/fixtures/stats/generate.py.
 */
import { normalCdf, normalQuantile } from './normal.ts';
import { exactCdf, exactCdfTable, uSigma } from './mann-whitney.ts';
import { tieGroupsOf } from './rank.ts';

export interface ShiftEstimate {
  /** median of the pairwise differences x − y */
  estimate: number;
  lower: number;
  upper: number;
  /** the confidence asked for */
  confidence: number;
  /** the coverage the chosen order statistics really give (the distribution of U is discrete) */
  achievedConfidence: number;
  method: 'exact' | 'asymptotic';
  /** rank of the lower bound among the sorted differences (1-based) */
  k: number;
  /** number of pairwise differences that are exactly 0 (x and y share values) */
  zeroDifferences: number;
}

export interface ShiftOptions {
  confidence?: number;
  method?: 'auto' | 'exact' | 'asymptotic';
}

/** All nx·ny differences xᵢ − yⱼ, sorted ascending (the direct way; used as a reference). */
export function pairwiseDifferences(x: ArrayLike<number>, y: ArrayLike<number>): Float64Array {
  const d = new Float64Array(x.length * y.length);
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i] as number;
    for (let j = 0; j < y.length; j++) d[n++] = xi - (y[j] as number);
  }
  return d.sort();
}

/**
 * Order statistics of the pairwise differences without building them: with x and y sorted, the
 * differences form a matrix sorted along both axes, so the number of differences ≤ t is counted in
 * O(nx + ny) with two pointers. The k-th smallest is found by bisecting on the value until few
 * enough differences lie in the bracket to list and sort them (or the bracket is one double wide,
 * which happens with ties). Every comparison uses the same computed xᵢ − yⱼ as a full sort would,
 * so the result is the identical double. O((nx + ny)·log) instead of O(nx·ny·log(nx·ny)).
 */
export class SortedDifferences {
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly size: number;

  constructor(x: ArrayLike<number>, y: ArrayLike<number>) {
    this.x = Float64Array.from(x as ArrayLike<number>).sort();
    this.y = Float64Array.from(y as ArrayLike<number>).sort();
    this.size = this.x.length * this.y.length;
  }

  /** How many xᵢ − yⱼ are ≤ t (or < t when strict). */
  count(t: number, strict = false): number {
    const { x, y } = this;
    const m = y.length;
    let p = 0;
    let total = 0;
    // For ascending xᵢ the differences ≤ t are a suffix of y that starts no earlier than before.
    if (strict) {
      for (let i = 0; i < x.length; i++) {
        const xi = x[i] as number;
        while (p < m && xi - (y[p] as number) >= t) p++;
        total += m - p;
      }
    } else {
      for (let i = 0; i < x.length; i++) {
        const xi = x[i] as number;
        while (p < m && xi - (y[p] as number) > t) p++;
        total += m - p;
      }
    }
    return total;
  }

  /** The k-th smallest difference, 1-based. */
  kth(k: number): number {
    const { x, y } = this;
    const n = x.length;
    const m = y.length;
    if (!(k >= 1 && k <= this.size)) throw new RangeError(`order statistic ${k} out of 1…${this.size}`);
    let lo = (x[0] as number) - (y[m - 1] as number); // smallest difference
    let hi = (x[n - 1] as number) - (y[0] as number); // largest
    let below = this.count(lo); // differences ≤ lo
    if (below >= k) return lo;
    let upTo = this.size;
    const listLimit = 4 * (n + m);
    // Invariant: count(lo) < k ≤ count(hi); the answer lies in (lo, hi].
    while (upTo - below > listLimit) {
      const mid = lo + (hi - lo) / 2;
      if (mid <= lo || mid >= hi) return hi; // no double strictly between: every candidate is hi
      const c = this.count(mid);
      if (c >= k) {
        hi = mid;
        upTo = c;
      } else {
        lo = mid;
        below = c;
      }
    }
    const window = new Float64Array(upTo - below);
    let w = 0;
    let p = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[i] as number;
      while (p < m && xi - (y[p] as number) > hi) p++;
      for (let j = p; j < m; j++) {
        const d = xi - (y[j] as number);
        if (d <= lo) break;
        window[w++] = d;
      }
    }
    return select(window, k - below - 1);
  }
}

/** The i-th smallest (0-based) of a, in place (Hoare's quickselect, median-of-three pivot). */
function select(a: Float64Array, i: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    const x = a[lo] as number;
    const y = a[mid] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let l = lo;
    let r = hi;
    while (l <= r) {
      while ((a[l] as number) < pivot) l++;
      while ((a[r] as number) > pivot) r--;
      if (l <= r) {
        const t = a[l] as number;
        a[l] = a[r] as number;
        a[r] = t;
        l++;
        r--;
      }
    }
    if (i <= r) hi = r;
    else if (i >= l) lo = l;
    else return a[i] as number;
  }
  return a[lo] as number;
}

export function hodgesLehmann(
  x: readonly number[] | Float64Array,
  y: readonly number[] | Float64Array,
  options: ShiftOptions = {},
): ShiftEstimate {
  const confidence = options.confidence ?? 0.98;
  if (!(confidence > 0 && confidence < 1)) throw new RangeError('confidence must be between 0 and 1');
  const nx = x.length;
  const ny = y.length;
  if (nx === 0 || ny === 0) throw new RangeError('a shift estimate needs at least one value in each sample');
  for (const sample of [x, y]) {
    for (let i = 0; i < sample.length; i++) {
      if (!Number.isFinite(sample[i]))
        throw new RangeError('a shift estimate needs finite values; handle NaN first');
    }
  }
  const mn = nx * ny;
  const diffs = new SortedDifferences(x, y);
  const mid = mn >> 1;
  const estimate = mn % 2 === 1 ? diffs.kth(mid + 1) : (diffs.kth(mid) + diffs.kth(mid + 1)) / 2;
  const zeroDifferences = diffs.count(0) - diffs.count(0, true);

  const pooled = new Float64Array(nx + ny);
  pooled.set(x);
  pooled.set(y, nx);
  const tieGroups = tieGroupsOf(pooled);
  const ties = tieGroups.some((t) => t > 1);
  const alpha = 1 - confidence;
  let method = options.method ?? 'auto';
  if (method === 'auto') method = !ties && nx < 50 && ny < 50 ? 'exact' : 'asymptotic';

  let k: number;
  let achievedConfidence: number;
  if (method === 'exact') {
    const table = exactCdfTable(nx, ny);
    k = 0;
    while (k < table.length - 1 && (table[k] as number) < alpha / 2) k++;
    k = Math.max(1, k);
    achievedConfidence = 1 - 2 * exactCdf(k - 1, nx, ny);
  } else {
    const sigma = uSigma(nx, ny, tieGroups);
    const z = normalQuantile(1 - alpha / 2);
    k = Math.max(1, Math.ceil(mn / 2 - 0.5 - z * sigma));
    achievedConfidence = sigma === 0 ? 0 : 1 - 2 * normalCdf((k - 0.5 - mn / 2) / sigma);
  }
  k = Math.min(k, Math.ceil(mn / 2));
  return {
    estimate,
    lower: diffs.kth(k),
    upper: diffs.kth(mn - k + 1),
    confidence,
    achievedConfidence: Math.max(0, achievedConfidence),
    method,
    k,
    zeroDifferences,
  };
}
