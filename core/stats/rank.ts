export interface Ranked {
  /** 1-based ranks in input order; tied values share the average of their ranks */
  ranks: Float64Array;
  /** size of every group of tied values (groups of 1 included) */
  tieGroups: number[];
}

/**
 * Average ranks ("midranks") of the values, and the sizes of their tie groups. Sorts a typed copy
 * (native numeric sort) and finds each value's run of equal values by binary search, which is
 * several times faster than sorting an index array with a comparator.
 */
export function rankAverage(values: ArrayLike<number>): Ranked {
  const n = values.length;
  const s = Float64Array.from(values as ArrayLike<number>).sort();
  const tieGroups = runLengths(s);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i] as number;
    // first index with s[k] >= v, then first with s[k] > v: the run of v is [lo, hi)
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((s[mid] as number) < v) lo = mid + 1;
      else hi = mid;
    }
    let end = lo;
    hi = n;
    while (end < hi) {
      const mid = (end + hi) >>> 1;
      if ((s[mid] as number) <= v) end = mid + 1;
      else hi = mid;
    }
    ranks[i] = (lo + 1 + end) / 2; // ranks lo+1 … end
  }
  return { ranks, tieGroups };
}

/** Sizes of the runs of equal values in a sorted array. */
function runLengths(s: Float64Array): number[] {
  const groups: number[] = [];
  for (let i = 0; i < s.length;) {
    let j = i + 1;
    while (j < s.length && s[j] === s[i]) j++;
    groups.push(j - i);
    i = j;
  }
  return groups;
}

/** The tie groups of values (all groups, size 1 included), without computing ranks. */
export const tieGroupsOf = (values: ArrayLike<number>): number[] =>
  runLengths(Float64Array.from(values as ArrayLike<number>).sort());

/** Σ(t³ − t) over tie groups: the tie correction of rank-test variances. */
export function tieTerm(tieGroups: readonly number[]): number {
  let s = 0;
  for (const t of tieGroups) if (t > 1) s += t * t * t - t;
  return s;
}
