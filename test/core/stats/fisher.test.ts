import { describe, expect, it } from 'vitest';
import { fisherExact } from '#core/stats/fisher.ts';

// Exact answers from the hypergeometric sums in rational arithmetic (Python's math.comb).
describe("Fisher's exact test", () => {
  it.each([
    [3, 4, 1, 4, 'greater', 0.24285714285714285],
    [2, 3, 0, 30, 'greater', 0.005681818181818182],
    [1, 3, 0, 100, 'greater', 0.02912621359223301],
    [2, 10, 0, 100, 'greater', 0.007506255212677231],
    [40, 1000, 20, 1000, 'greater', 0.006069770757779366],
    [5, 2000, 30, 3000, 'less', 0.0009197267821989891],
    [120, 50000, 80, 50000, 'greater', 0.0028186458673110943],
  ] as const)('%i of %i against %i of %i (%s) has the exact p-value', (a, n1, b, n2, alternative, p) => {
    expect(fisherExact(a, n1, b, n2, alternative)).toBeCloseTo(p, 10);
  });

  it('is 1 when the canary has no events to rise by, and refuses impossible counts', () => {
    expect(fisherExact(0, 10, 3, 10, 'greater')).toBeCloseTo(1, 12);
    expect(() => fisherExact(4, 3, 0, 3)).toThrow(RangeError);
    expect(() => fisherExact(1.5, 3, 0, 3)).toThrow(RangeError);
  });
});
