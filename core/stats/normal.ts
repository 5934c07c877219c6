/**
 * The standard normal distribution, accurate to about 1e-14 relative in both tails: p-values of a
 * large canary (1e-30 and smaller) keep their digits instead of rounding to 0 or 1. Checked against
 * scipy's `ndtr` / `ndtri` in test/fixtures/stats/mann-whitney.json.
 */

const SQRT_PI = Math.sqrt(Math.PI);

/**
 * Complementary error function. Below 1.25 the positive-term series for erf (no cancellation:
 * erf(x) = 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!!); from 1.25 up the continued fraction for erfc,
 * evaluated with Lentz's method (about 120 terms at 1.25, fewer further out), which keeps full
 * relative precision deep into the tail where 1 − erf would lose it.
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 1.25) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x * x) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return 1 - (2 / SQRT_PI) * Math.exp(-x * x) * sum;
  }
  if (x > 27) return 0; // below the smallest double
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 1000; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / SQRT_PI / f;
}

/** P(Z ≤ z) for a standard normal Z. */
export const normalCdf = (z: number): number => 0.5 * erfc(-z / Math.SQRT2);

/** P(Z ≥ z): used for p-values so a far tail is not computed as 1 − (almost 1). */
export const normalSf = (z: number): number => 0.5 * erfc(z / Math.SQRT2);

// Acklam's rational approximation (relative error 1.15e-9), then one Halley step on normalCdf.
const A = [
  -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
  2.506628277459239,
];
const B = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
const C = [
  -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
  2.938163982698783,
];
const D = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
const P_LOW = 0.02425;

const poly = (coef: number[], x: number) => coef.reduce((acc, k) => acc * x + k, 0);

/** The z with P(Z ≤ z) = p (the probit); −∞ at 0 and +∞ at 1. */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  let x: number;
  if (p < P_LOW) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = poly(C, q) / (poly(D, q) * q + 1);
  } else if (p <= 1 - P_LOW) {
    const q = p - 0.5;
    const r = q * q;
    x = (poly(A, r) * q) / (poly(B, r) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log1p(-p));
    x = -poly(C, q) / (poly(D, q) * q + 1);
  }
  // Halley refinement; in the upper tail work on the survival function to keep precision.
  const e = p > 0.5 ? -(normalSf(x) - (1 - p)) : normalCdf(x) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}
