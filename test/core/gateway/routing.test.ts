import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseVersion, clientKeyOf, uniformHash, type VersionWeight } from '#core/gateway/routing.ts';
import { weightsOf } from '#core/deploy/releases.ts';

const clients = Array.from({ length: 1000 }, (_, i) => clientKeyOf({ tokenId: `tok_${i}` })!);

function share(weights: VersionWeight[], version: string, keys = clients): number {
  return keys.filter((k) => chooseVersion(weights, k) === version).length / keys.length;
}

const version = fc.stringMatching(/^[0-9]\.[0-9]{1,2}\.[0-9]$/);
/** Weight lists of distinct versions, some with weight 0. */
const weightLists = fc.uniqueArray(fc.record({ version, weight: fc.integer({ min: 0, max: 100 }) }), {
  selector: (w) => w.version,
  minLength: 1,
  maxLength: 5,
});

describe('chooseVersion', () => {
  it('puts 30 ± 4 % of 1,000 clients on a 30 % canary', () => {
    const weights = weightsOf('1.0.0', { version: '1.1.0', weight: 30 });
    expect(weights).toEqual([
      { version: '1.0.0', weight: 70 },
      { version: '1.1.0', weight: 30 },
    ]);
    const canary = share(weights, '1.1.0');
    // Measured: 0.309 for these keys (309 of 1,000).
    expect(canary).toBeGreaterThanOrEqual(0.26);
    expect(canary).toBeLessThanOrEqual(0.34);
  });

  it('splits three versions by their weights', () => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `addr:10.0.${i >> 8}.${i & 255}`);
    const weights = [
      { version: 'a', weight: 5 },
      { version: 'b', weight: 3 },
      { version: 'c', weight: 2 },
    ];
    expect(share(weights, 'a', keys)).toBeCloseTo(0.5, 1);
    expect(share(weights, 'b', keys)).toBeCloseTo(0.3, 1);
    expect(share(weights, 'c', keys)).toBeCloseTo(0.2, 1);
  });

  it('moves only clients onto the canary when it rises from 30 % to 60 %, about the needed share', () => {
    const before = clients.map((k) => chooseVersion(weightsOf('1.0.0', { version: '1.1.0', weight: 30 }), k));
    const after = clients.map((k) => chooseVersion(weightsOf('1.0.0', { version: '1.1.0', weight: 60 }), k));
    const left = before.filter((v, i) => v === '1.1.0' && after[i] !== '1.1.0').length;
    const moved = before.filter((v, i) => v === '1.0.0' && after[i] === '1.1.0').length;
    expect(left).toBe(0);
    // 30 % of all clients must move; measured: 0.296 (296 of 1,000), and 605 on the canary after.
    expect(moved / clients.length).toBeGreaterThanOrEqual(0.25);
    expect(moved / clients.length).toBeLessThanOrEqual(0.35);
  });

  it('only ever moves clients onto a version whose weight rises', () => {
    fc.assert(
      fc.property(
        weightLists,
        fc.nat(),
        fc.integer({ min: 1, max: 100 }),
        fc.string(),
        (weights, pick, raise, key) => {
          const target = weights[pick % weights.length]!;
          const raised = weights.map((w) => (w === target ? { ...w, weight: w.weight + raise } : w));
          const before = chooseVersion(weights, key);
          const after = chooseVersion(raised, key);
          if (before === target.version) expect(after).toBe(target.version);
          if (after !== before) expect(after).toBe(target.version);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('is deterministic and ignores the order of the versions', () => {
    fc.assert(
      fc.property(weightLists, fc.string(), (weights, key) => {
        const chosen = chooseVersion(weights, key);
        expect(chooseVersion([...weights].reverse(), key)).toBe(chosen);
        expect(chooseVersion(structuredClone(weights), key)).toBe(chosen);
      }),
      { numRuns: 500 },
    );
  });

  it('never chooses a version with weight 0, and chooses one whenever any has weight', () => {
    fc.assert(
      fc.property(weightLists, fc.string(), (weights, key) => {
        const chosen = chooseVersion(weights, key);
        const weighted = weights.filter((w) => w.weight > 0).map((w) => w.version);
        if (weighted.length === 0) expect(chosen).toBeUndefined();
        else expect(weighted).toContain(chosen);
      }),
      { numRuns: 500 },
    );
  });

  it('gives everyone the single version with weight', () => {
    const weights = [
      { version: '1.0.0', weight: 0 },
      { version: '1.1.0', weight: 100 },
    ];
    expect(share(weights, '1.1.0')).toBe(1);
    expect(share([{ version: '2.0.0', weight: 1 }], '2.0.0')).toBe(1);
  });

  it('chooses nothing when nothing has weight, or the weights are not usable numbers', () => {
    expect(chooseVersion([], 'token:a')).toBeUndefined();
    expect(chooseVersion([{ version: '1.0.0', weight: 0 }], 'token:a')).toBeUndefined();
    for (const weight of [-5, Number.NaN, Infinity, -Infinity]) {
      expect(chooseVersion([{ version: '1.0.0', weight }], 'token:a')).toBeUndefined();
    }
  });
});

describe('uniformHash', () => {
  it('stays strictly inside (0, 1) and is stable', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (key, v) => {
        const u = uniformHash(key, v);
        expect(u).toBeGreaterThan(0);
        expect(u).toBeLessThan(1);
        expect(uniformHash(key, v)).toBe(u);
      }),
    );
    // A known answer: a changed hash would silently reassign every session-less client.
    expect(uniformHash('token:tok_1', '1.0.0')).toBe(0.13489590332167378);
  });

  it('does not confuse a key and version that join into the same text', () => {
    expect(uniformHash('a:b', 'c')).not.toBe(uniformHash('a', 'b:c'));
    expect(uniformHash('a\0b', 'c')).not.toBe(uniformHash('a', 'b\0c'));
  });
});

describe('clientKeyOf', () => {
  it('takes the token id, else the client key header, else the address', () => {
    expect(clientKeyOf({ tokenId: 't1', clientKeyHeader: 'k1', address: '10.0.0.1' })).toBe('token:t1');
    expect(clientKeyOf({ clientKeyHeader: 'k1', address: '10.0.0.1' })).toBe('key:k1');
    expect(clientKeyOf({ tokenId: '', clientKeyHeader: '', address: '::1' })).toBe('addr:::1');
    expect(clientKeyOf({})).toBeUndefined();
  });

  it('never lets one kind of key collide with another', () => {
    expect(clientKeyOf({ tokenId: 'x' })).not.toBe(clientKeyOf({ address: 'x' }));
    expect(clientKeyOf({ clientKeyHeader: 'x' })).not.toBe(clientKeyOf({ address: 'x' }));
  });
});
