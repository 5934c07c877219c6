/**
 * Fisher's exact test on a 2×2 table: `a` events of `n1` trials against `b` of `n2`. Exact for any
 * counts (no normal approximation), so a handful of sessions is judged as fairly as thousands.
 */

// Lanczos approximation (g = 7, n = 9): ln Γ(x) to about 15 significant digits for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0] as number;
  for (let i = 1; i < 9; i++) sum += (LANCZOS[i] as number) / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

const lnChoose = (n: number, k: number) => lnGamma(n + 1) - lnGamma(k + 1) - lnGamma(n - k + 1);

/**
 * One-sided p-value of Fisher's exact test: the probability, with the margins fixed, of at least
 * `a` events in the first group (`alternative: 'greater'`) or at most `a` (`'less'`).
 */
export function fisherExact(
  a: number,
  n1: number,
  b: number,
  n2: number,
  alternative: 'greater' | 'less' = 'greater',
): number {
  for (const [name, v] of [
    ['a', a],
    ['n1', n1],
    ['b', b],
    ['n2', n2],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a whole number ≥ 0`);
  }
  if (a > n1 || b > n2) throw new RangeError('events cannot exceed trials');
  const n = n1 + n2;
  const k = a + b;
  const lo = Math.max(0, k - n2);
  const hi = Math.min(k, n1);
  const lnTotal = lnChoose(n, n1);
  const p = (x: number) => Math.exp(lnChoose(k, x) + lnChoose(n - k, n1 - x) - lnTotal);
  let sum = 0;
  if (alternative === 'greater') for (let x = a; x <= hi; x++) sum += p(x);
  else for (let x = lo; x <= a; x++) sum += p(x);
  return Math.min(1, sum);
}
