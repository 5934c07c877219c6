/**
 * The Mann-Whitney U test (Wilcoxon rank-sum test) of two independent samples, with the same
 * conventions as scipy.stats.mannwhitneyu (checked against it in test/fixtures/stats/):
 *  - the statistic is U of the first sample x: the number of pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties ½;
 *  - `greater` means x is stochastically greater than y, `less` the opposite;
 *  - `asymptotic`: normal approximation with the tie-corrected variance and a ½ continuity correction;
 *  - `exact`: the exact null distribution of U (no tie correction, so only right without ties);
 *  - `auto`: exact when one sample has at most 8 values and there are no ties, asymptotic otherwise.
 */
import { normalSf } from './normal.ts';
import { rankAverage, tieTerm } from './rank.ts';

export type Alternative = 'two-sided' | 'greater' | 'less';
export type TestMethod = 'auto' | 'exact' | 'asymptotic';

export interface MannWhitneyOptions {
  alternative?: Alternative;
  /** ½ continuity correction in the normal approximation (default true) */
  continuity?: boolean;
  method?: TestMethod;
}

export interface MannWhitneyResult {
  /** U of the first sample */
  u: number;
  /** U of the second sample (nx·ny − u) */
  uY: number;
  pValue: number;
  /** standardized statistic of the normal approximation (null for the exact test) */
  z: number | null;
  method: 'exact' | 'asymptotic';
  alternative: Alternative;
  /** whether any value occurs more than once in the pooled samples */
  ties: boolean;
  nx: number;
  ny: number;
}

/** U of x and the tie groups of the pooled sample. */
export function uStatistic(x: ArrayLike<number>, y: ArrayLike<number>): { u: number; tieGroups: number[] } {
  const nx = x.length;
  const pooled = new Float64Array(nx + y.length);
  for (let i = 0; i < nx; i++) pooled[i] = x[i] as number;
  for (let j = 0; j < y.length; j++) pooled[nx + j] = y[j] as number;
  const { ranks, tieGroups } = rankAverage(pooled);
  let r1 = 0;
  for (let i = 0; i < nx; i++) r1 += ranks[i] as number;
  return { u: r1 - (nx * (nx + 1)) / 2, tieGroups };
}

/** √Var(U) under the null hypothesis, corrected for ties. */
export function uSigma(nx: number, ny: number, tieGroups: readonly number[]): number {
  const n = nx + ny;
  const variance = ((nx * ny) / 12) * (n + 1 - tieTerm(tieGroups) / (n * (n - 1)));
  return Math.sqrt(Math.max(variance, 0));
}

// Work bound for building an exact distribution: min(nx,ny) · nx·ny/2 steps.
const EXACT_WORK_LIMIT = 2e7;
const cache = new Map<string, Float64Array>();

const exactWork = (nx: number, ny: number) => (Math.min(nx, ny) * nx * ny) / 2;

/**
 * P(U ≤ u) for u = 0 … ⌊nx·ny/2⌋ under the null hypothesis without ties. The frequencies of U are
 * the coefficients of the Gaussian binomial [nx+ny choose nx]_q, built one factor at a time with
 * [N choose k]_q = [N−1 choose k−1]_q · (1 − q^N)/(1 − q^k); rescaling by k/N each step keeps them
 * probabilities (no overflow, whatever the sizes). Symmetry gives the upper half.
 */
export function exactCdfTable(nx: number, ny: number): Float64Array {
  const small = Math.min(nx, ny);
  const large = Math.max(nx, ny);
  const key = `${small}x${large}`;
  const hit = cache.get(key);
  if (hit) return hit;
  if (exactWork(nx, ny) > EXACT_WORK_LIMIT) {
    throw new RangeError(
      `the exact Mann-Whitney distribution for samples of ${nx} and ${ny} is too large to build; use the normal approximation`,
    );
  }
  const half = Math.floor((small * large) / 2);
  const f = new Float64Array(half + 1);
  f[0] = 1;
  for (let k = 1; k <= small; k++) {
    const N = large + k;
    for (let u = half; u >= N; u--) f[u] = (f[u] as number) - (f[u - N] as number);
    for (let u = k; u <= half; u++) f[u] = (f[u] as number) + (f[u - k] as number);
    const scale = k / N;
    for (let u = 0; u <= half; u++) f[u] = (f[u] as number) * scale;
  }
  for (let u = 1; u <= half; u++) f[u] = (f[u] as number) + (f[u - 1] as number);
  if (cache.size >= 64) cache.delete(cache.keys().next().value as string);
  cache.set(key, f);
  return f;
}

/** P(U ≤ u) for integer u, exact, no ties. */
export function exactCdf(u: number, nx: number, ny: number): number {
  const mn = nx * ny;
  if (u < 0) return 0;
  if (u >= mn) return 1;
  const table = exactCdfTable(nx, ny);
  if (u < table.length) return table[u] as number;
  // P(U ≤ u) = 1 − P(U ≥ u+1) = 1 − P(U ≤ mn − u − 1), by symmetry
  return 1 - (table[mn - u - 1] as number);
}

/** P(U ≥ u) for integer u, exact, no ties; the upper tail by symmetry so tiny p-values keep their digits. */
export function exactSf(u: number, nx: number, ny: number): number {
  const mn = nx * ny;
  if (u <= 0) return 1;
  if (u > mn) return 0;
  const table = exactCdfTable(nx, ny);
  // P(U ≥ u) = P(U ≤ mn − u)
  if (mn - u < table.length) return table[mn - u] as number;
  return 1 - (table[u - 1] as number);
}

export function mannWhitneyU(
  x: readonly number[] | Float64Array,
  y: readonly number[] | Float64Array,
  options: MannWhitneyOptions = {},
): MannWhitneyResult {
  const alternative = options.alternative ?? 'two-sided';
  const continuity = options.continuity ?? true;
  const nx = x.length;
  const ny = y.length;
  if (nx === 0 || ny === 0) throw new RangeError('Mann-Whitney U needs at least one value in each sample');
  for (const sample of [x, y]) {
    for (let i = 0; i < sample.length; i++) {
      if (!Number.isFinite(sample[i]))
        throw new RangeError('Mann-Whitney U needs finite values; handle NaN first');
    }
  }
  const { u, tieGroups } = uStatistic(x, y);
  const uY = nx * ny - u;
  const ties = tieGroups.some((t) => t > 1);
  let method = options.method ?? 'auto';
  if (method === 'auto') {
    method = (nx <= 8 || ny <= 8) && !ties && exactWork(nx, ny) <= EXACT_WORK_LIMIT ? 'exact' : 'asymptotic';
  }
  // As scipy: the p-value is always a survival function of the statistic on the alternative's side.
  const [stat, factor] =
    alternative === 'greater' ? [u, 1] : alternative === 'less' ? [uY, 1] : [Math.max(u, uY), 2];
  let p: number;
  let z: number | null = null;
  if (method === 'exact') {
    p = exactSf(Math.trunc(stat), nx, ny);
  } else {
    const sigma = uSigma(nx, ny, tieGroups);
    const numerator = stat - (nx * ny) / 2 - (continuity ? 0.5 : 0);
    if (sigma === 0) {
      // Every value tied: no evidence either way (scipy gives 1 with the correction, NaN without).
      z = 0;
      p = 1;
    } else {
      z = numerator / sigma;
      p = normalSf(z);
    }
  }
  return {
    u,
    uY,
    pValue: Math.min(1, Math.max(0, p * factor)),
    z,
    method,
    alternative,
    ties,
    nx,
    ny,
  };
}
