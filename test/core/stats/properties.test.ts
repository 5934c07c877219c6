import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { handleMissing, removeOutliers } from '#core/stats/clean.ts';
import { hodgesLehmann, pairwiseDifferences, SortedDifferences } from '#core/stats/hodges-lehmann.ts';
import { exactCdf, exactSf, mannWhitneyU } from '#core/stats/mann-whitney.ts';

// Small integer grids produce many ties; doubles produce none.
const tied = fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1, maxLength: 40 });
const spread = fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 40 });
const sample = fc.oneof(tied, spread);

describe('pairwise-difference selection', () => {
  it('every order statistic equals the one of the fully sorted differences', () => {
    fc.assert(
      fc.property(sample, sample, (x, y) => {
        const full = pairwiseDifferences(x, y);
        const sel = new SortedDifferences(x, y);
        for (let k = 1; k <= full.length; k += Math.max(1, Math.floor(full.length / 17))) {
          expect(sel.kth(k)).toBe(full[k - 1]);
        }
        expect(sel.kth(full.length)).toBe(full[full.length - 1]);
        expect(sel.count(0) - sel.count(0, true)).toBe(full.filter((d) => d === 0).length);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses out-of-range order statistics', () => {
    expect(() => new SortedDifferences([1], [2]).kth(2)).toThrow(/out of 1…1/);
  });
});

describe('Mann-Whitney invariants', () => {
  it('U of x and U of y add up to nx·ny; p-values are probabilities; swapping samples swaps the sides', () => {
    fc.assert(
      fc.property(sample, sample, (x, y) => {
        const r = mannWhitneyU(x, y);
        expect(r.u + r.uY).toBe(x.length * y.length);
        expect(r.pValue).toBeGreaterThanOrEqual(0);
        expect(r.pValue).toBeLessThanOrEqual(1);
        const g = mannWhitneyU(x, y, { alternative: 'greater' }).pValue;
        const l = mannWhitneyU(y, x, { alternative: 'less' }).pValue;
        expect(g).toBeCloseTo(l, 12);
        expect(mannWhitneyU(y, x).pValue).toBeCloseTo(r.pValue, 12);
      }),
    );
  });

  it('the exact distribution is a symmetric distribution function', () => {
    for (const [nx, ny] of [
      [1, 1],
      [3, 7],
      [8, 8],
      [12, 30],
    ] as const) {
      const mn = nx * ny;
      let prev = 0;
      for (let u = 0; u <= mn; u++) {
        const c = exactCdf(u, nx, ny);
        expect(c).toBeGreaterThanOrEqual(prev - 1e-15);
        expect(exactSf(mn - u, nx, ny)).toBeCloseTo(c, 12); // P(U ≥ mn−u) = P(U ≤ u)
        prev = c;
      }
      expect(exactCdf(mn, nx, ny)).toBe(1);
      expect(exactCdf(0, nx, ny)).toBeCloseTo(1 / binom(nx + ny, nx), 15);
    }
    expect(() => exactCdf(10, 2000, 2000)).toThrow(/too large/);
  });
});

function binom(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

describe('Hodges-Lehmann invariants', () => {
  it('the interval contains the estimate; shifting x shifts the estimate', () => {
    fc.assert(
      fc.property(tied, tied, fc.integer({ min: -100, max: 100 }), (x, y, c) => {
        const a = hodgesLehmann(x, y, { confidence: 0.95 });
        expect(a.lower).toBeLessThanOrEqual(a.estimate);
        expect(a.estimate).toBeLessThanOrEqual(a.upper);
        const b = hodgesLehmann(
          x.map((v) => v + c),
          y,
          { confidence: 0.95 },
        );
        // (the interval may move differently: a shift changes which values tie, hence σ and k)
        expect(b.estimate).toBe(a.estimate + c);
      }),
    );
  });

  it('without ties, shifting x shifts the whole interval', () => {
    // even x, odd y and an even shift: x and y can never tie
    const evens = fc.uniqueArray(fc.integer({ min: -500, max: 500 }), { minLength: 1, maxLength: 60 });
    fc.assert(
      fc.property(evens, evens, fc.integer({ min: -100, max: 100 }), (xs, ys, c) => {
        const x = xs.map((v) => 2 * v);
        const y = ys.map((v) => 2 * v + 1);
        const a = hodgesLehmann(x, y);
        const b = hodgesLehmann(
          x.map((v) => v + 2 * c),
          y,
        );
        expect([b.estimate, b.lower, b.upper, b.k]).toEqual([
          a.estimate + 2 * c,
          a.lower + 2 * c,
          a.upper + 2 * c,
          a.k,
        ]);
      }),
    );
  });

  it('a higher confidence never gives a narrower interval', () => {
    fc.assert(
      fc.property(sample, sample, (x, y) => {
        const a = hodgesLehmann(x, y, { confidence: 0.9 });
        const b = hodgesLehmann(x, y, { confidence: 0.99 });
        expect(b.lower).toBeLessThanOrEqual(a.lower);
        expect(b.upper).toBeGreaterThanOrEqual(a.upper);
      }),
    );
  });
});

describe('cleaning', () => {
  it('remove drops missing values, replace zeroes them; both count them', () => {
    expect(handleMissing([1, null, NaN, undefined, Infinity, 2], 'remove')).toEqual({
      values: [1, 2],
      missing: 4,
    });
    expect(handleMissing([1, null, 2], 'replace')).toEqual({ values: [1, 0, 2], missing: 1 });
  });
  it('outlier removal never removes from fewer than 4 values or a zero IQR', () => {
    expect(removeOutliers([1, 2, 1000]).removed).toBe(0);
    expect(removeOutliers([0, 0, 0, 0, 0, 0, 5]).removed).toBe(0);
    expect(removeOutliers([10, 11, 12, 13, 14, 15, 1000], 1.5)).toMatchObject({
      removed: 1,
      fences: { q1: 11.5, q3: 14.5 },
    });
  });
});
