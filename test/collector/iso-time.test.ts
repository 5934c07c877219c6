import { describe, expect, it } from 'vitest';
import { isoTime } from '#collector/mapping.ts';

/** The reference: what `isoTime` returned before it cached per second. */
const reference = (nanos: bigint) => new Date(Number(nanos / 1_000_000n)).toISOString();

describe('isoTime', () => {
  it('writes exactly what toISOString writes, across seconds, days, years and the cache', () => {
    const samples: bigint[] = [
      1n,
      999_999n,
      1_000_000n,
      1767323045678000000n,
      1767323045678999999n,
      1767323045999999999n,
      1767323046000000000n,
      // Leap day, end of year, the year-9999 edge of four-digit years, int64's largest time.
      1709164800000000000n,
      1798761599999999999n,
      253402300799999000000n,
      253402300800000000000n,
      2n ** 63n - 1n,
    ];
    let x = 0x2545f491;
    for (let i = 0; i < 5000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      // Times clustered in a few seconds (cache hits) and spread over centuries (misses).
      samples.push(
        i % 2 === 0
          ? 1767323045000000000n + BigInt(x % 3_000_000_000)
          : BigInt(x) * 1_000_000_000n + BigInt(x % 1_000_000_000) * 7n,
      );
    }
    for (const nanos of [...samples, ...samples.slice().reverse()]) {
      expect(isoTime(nanos), String(nanos)).toBe(reference(nanos));
    }
  });
});
