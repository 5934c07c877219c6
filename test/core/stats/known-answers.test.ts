// Known answers from scipy / numpy, computed offline by test/fixtures/stats/generate.py (see its header).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeOutliers } from '#core/stats/clean.ts';
import { quantile } from '#core/stats/describe.ts';
import { hodgesLehmann } from '#core/stats/hodges-lehmann.ts';
import type { Alternative, TestMethod } from '#core/stats/mann-whitney.ts';
import { exactCdf, mannWhitneyU } from '#core/stats/mann-whitney.ts';
import { erfc, normalCdf, normalQuantile } from '#core/stats/normal.ts';

interface Fixture {
  generator: { scipy: string };
  mannWhitney: {
    name: string;
    x: number[];
    y: number[];
    ties: boolean;
    tests: {
      alternative: Alternative;
      method: TestMethod;
      continuity: boolean;
      u: number;
      pValue: number | null;
    }[];
    shifts: {
      confidence: number;
      method: 'exact' | 'asymptotic';
      k: number;
      estimate: number;
      lower: number;
      upper: number;
      achievedConfidence: number;
    }[];
  }[];
  exactCdf: { nx: number; ny: number; points: { u: number; cdf: number }[] }[];
  quantiles: { values: number[]; p: number[]; expected: number[] }[];
  outliers: { values: number[]; factor: number; kept: number[] }[];
  normal: {
    cdf: { z: number; p: number }[];
    quantile: { p: number; z: number }[];
    erfc: { x: number; y: number }[];
  };
}

const fixture = JSON.parse(
  fs.readFileSync(path.join(import.meta.dirname, '../../fixtures/stats/mann-whitney.json'), 'utf8'),
) as Fixture;

/** |actual − expected| within a relative tolerance (absolute near 0). */
function close(actual: number, expected: number, rel = 1e-10, abs = 1e-300): void {
  const tol = Math.max(abs, rel * Math.abs(expected));
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(tol);
}

describe('normal distribution (scipy.special)', () => {
  it('cdf matches ndtr to 1e-12 relative, deep into both tails', () => {
    for (const { z, p } of fixture.normal.cdf) close(normalCdf(z), p, 1e-12);
  });
  it('quantile matches ndtri', () => {
    for (const { p, z } of fixture.normal.quantile) close(normalQuantile(p), z, 1e-12, 1e-15);
    expect(normalQuantile(0)).toBe(-Infinity);
    expect(normalQuantile(1)).toBe(Infinity);
    expect(normalQuantile(1.5)).toBeNaN();
  });
  it('erfc matches scipy', () => {
    for (const { x, y } of fixture.normal.erfc) close(erfc(x), y, 1e-13);
  });
});

describe('Mann-Whitney U (scipy.stats.mannwhitneyu)', () => {
  it(`was generated with scipy ${fixture.generator.scipy}`, () => {
    expect(fixture.mannWhitney.length).toBeGreaterThanOrEqual(12);
  });
  for (const c of fixture.mannWhitney) {
    it(`${c.name}: U and p-values for every alternative and method`, () => {
      for (const t of c.tests) {
        const r = mannWhitneyU(c.x, c.y, {
          alternative: t.alternative,
          method: t.method,
          continuity: t.continuity,
        });
        expect(r.u).toBe(t.u);
        expect(r.ties).toBe(c.ties);
        // exact sums of probabilities and the tail of the normal: 1e-9 relative covers both.
        // null: every value tied without a continuity correction, where scipy gives NaN.
        if (t.pValue === null) expect(r.pValue).toBe(1);
        else close(r.pValue, t.pValue, 1e-9);
      }
    });
    it(`${c.name}: Hodges-Lehmann estimate and interval`, () => {
      for (const s of c.shifts) {
        const r = hodgesLehmann(c.x, c.y, { confidence: s.confidence, method: s.method });
        expect(r.method).toBe(s.method);
        expect(r.k).toBe(s.k);
        expect(r.estimate).toBe(s.estimate);
        expect(r.lower).toBe(s.lower);
        expect(r.upper).toBe(s.upper);
        close(r.achievedConfidence, s.achievedConfidence, 1e-9, 1e-12);
      }
    });
  }

  it('auto picks the exact distribution for small samples without ties, as scipy does', () => {
    expect(mannWhitneyU([1, 2, 3], [4, 5, 6, 7]).method).toBe('exact');
    expect(mannWhitneyU([1, 2, 3], [3, 5, 6, 7]).method).toBe('asymptotic');
    expect(hodgesLehmann([1, 2, 3], [4, 5, 6, 7]).method).toBe('exact');
  });

  it('exact null distribution matches scipy, including 49 × 49 and 8 × 300', () => {
    for (const d of fixture.exactCdf) for (const p of d.points) close(exactCdf(p.u, d.nx, d.ny), p.cdf, 1e-9);
  });

  it('refuses empty or non-finite samples', () => {
    expect(() => mannWhitneyU([], [1])).toThrow(/at least one value/);
    expect(() => mannWhitneyU([1, NaN], [1])).toThrow(/finite/);
    expect(() => hodgesLehmann([1], [])).toThrow(/at least one value/);
    expect(() => hodgesLehmann([1, Infinity], [2])).toThrow(/finite/);
    expect(() => hodgesLehmann([1], [2], { confidence: 1 })).toThrow(/confidence/);
  });
});

describe('quantiles and outliers (numpy)', () => {
  it('quantile is numpy.quantile (linear, type 7)', () => {
    for (const q of fixture.quantiles)
      q.p.forEach((p, i) => close(quantile(q.values, p), q.expected[i] as number, 1e-12, 1e-15));
    expect(quantile([], 0.5)).toBeNaN();
  });
  it('IQR outlier removal keeps what Tukey fences keep, and nothing is removed when the IQR is 0', () => {
    for (const o of fixture.outliers) expect(removeOutliers(o.values, o.factor).values).toEqual(o.kept);
  });
});
