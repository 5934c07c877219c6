import fc from 'fast-check';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { branchId, inLine, lineOf, nextBranchVersion, nextInLine, parseLine } from '#core/registry/lines.ts';

describe('maintenance lines', () => {
  it('parses MAJOR.x and MAJOR.MINOR.x, and refuses anything else with an example', () => {
    expect(parseLine('1.4.x')).toEqual({ pattern: '1.4.x', major: 1, minor: 4 });
    expect(parseLine('2.x')).toEqual({ pattern: '2.x', major: 2, minor: null });
    for (const bad of ['1.4', '1.4.*', 'v1.x', '1.4.2', 'x', '01.x', '1.x.x', ''])
      expect(() => parseLine(bad), bad).toThrow(/is not MAJOR\.x or MAJOR\.MINOR\.x, e\.g\. 2\.x or 1\.4\.x/);
  });

  it('puts a version in its most specific declared line, else its major', () => {
    const declared = [parseLine('1.x'), parseLine('1.4.x')];
    expect(lineOf('1.4.7', declared)).toBe('1.4.x');
    expect(lineOf('1.5.0', declared)).toBe('1.x');
    expect(lineOf('2.0.0-rc.1', declared)).toBe('2.x');
    expect(inLine('1.4.0-rc.1', parseLine('1.4.x'))).toBe(true);
  });

  it('suggests a hotfix inside an old line and refuses a bump that leaves it', () => {
    const versions = ['1.4.0', '1.4.1', '1.4.2', '2.0.0', '2.1.0'];
    expect(nextInLine(versions, parseLine('1.4.x'), 'patch')).toBe('1.4.3');
    expect(nextInLine(versions, parseLine('2.x'), 'minor')).toBe('2.2.0');
    expect(nextInLine(versions, parseLine('1.5.x'), 'patch')).toBe('1.5.0');
    expect(() => nextInLine(versions, parseLine('1.4.x'), 'minor')).toThrow(
      'a minor bump of 1.4.2 gives 1.5.0, outside line 1.4.x; use patch there',
    );
  });

  it('numbers development versions of a branch X.Y.Z-<branch>.N with N rising', () => {
    expect(branchId('feat/Login_v2')).toBe('feat-login-v2');
    for (const bad of ['///', '---', '123'])
      expect(() => branchId(bad)).toThrow(/no usable pre-release name/);
    const versions = ['1.4.2', '2.1.0', '2.1.1-feat-x.0', '2.1.1-feat-x.1', '2.1.1-other.5'];
    expect(nextBranchVersion(versions, 'feat/x')).toBe('2.1.1-feat-x.2');
    expect(nextBranchVersion(versions, 'fix/y')).toBe('2.1.1-fix-y.0');
    expect(nextBranchVersion(versions, 'feat/x', parseLine('1.4.x'))).toBe('1.4.3-feat-x.0');
  });

  it('keeps every branch number valid semver, above the releases it follows and above its predecessors', () => {
    const release = fc.tuple(fc.nat(3), fc.nat(5), fc.nat(5)).map(([a, b, c]) => `${a}.${b}.${c}`);
    fc.assert(
      fc.property(fc.uniqueArray(release, { minLength: 1, maxLength: 8 }), fc.nat(6), (releases, n) => {
        let versions = [...releases];
        let previous: string | undefined;
        for (let i = 0; i <= n; i++) {
          const next = nextBranchVersion(versions, 'feat/x');
          expect(semver.valid(next)).toBe(next);
          expect(versions).not.toContain(next);
          for (const r of releases) expect(semver.gt(next, r)).toBe(true);
          if (previous) expect(semver.gt(next, previous)).toBe(true);
          previous = next;
          versions = [...versions, next];
        }
      }),
    );
  });
});
