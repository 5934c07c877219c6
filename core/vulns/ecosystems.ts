/**
 * The OSV ecosystems Pylee scans, each with its own version ordering: npm by semver, PyPI by
 * PEP 440, NuGet by NuGet's rules. OCI images and Homebrew formulae have no OSV ecosystem here.
 */
import * as pep440 from '@renovatebot/pep440';
import semver from 'semver';

/** Pylee registry type → OSV ecosystem name. */
export const ECOSYSTEMS = { npm: 'npm', pypi: 'PyPI', nuget: 'NuGet' } as const;
export type Ecosystem = keyof typeof ECOSYSTEMS;
export const OSV_ECOSYSTEMS: readonly string[] = Object.values(ECOSYSTEMS);

export function ecosystemOf(osvName: string): Ecosystem | undefined {
  return (Object.keys(ECOSYSTEMS) as Ecosystem[]).find((e) => ECOSYSTEMS[e] === osvName);
}

export const isEcosystem = (registryType: string): registryType is Ecosystem =>
  Object.hasOwn(ECOSYSTEMS, registryType);

/**
 * A package name as the ecosystem compares it: PyPI by PEP 503 (case-insensitive, runs of `-_.`
 * are one `-`), NuGet case-insensitively, npm exactly.
 */
export function normaliseName(ecosystem: Ecosystem, name: string): string {
  if (ecosystem === 'pypi') return name.toLowerCase().replace(/[-_.]+/g, '-');
  if (ecosystem === 'nuget') return name.toLowerCase();
  return name;
}

/** A total order on one ecosystem's versions; `parse` says whether it can place a version at all. */
export interface Ordering {
  valid(version: string): boolean;
  /** Negative, zero or positive; both versions must be valid. */
  compare(a: string, b: string): number;
}

const semverOrdering: Ordering = {
  valid: (v) => semver.valid(v, { loose: false }) !== null,
  compare: (a, b) => semver.compare(a, b),
};

const pep440Ordering: Ordering = {
  valid: (v) => pep440.valid(v) !== null,
  compare: (a, b) => pep440.compare(a, b),
};

const NUGET =
  /^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-.]*)?$/;

interface NugetVersion {
  numbers: number[];
  pre: string[];
}

function parseNuget(version: string): NugetVersion | undefined {
  const m = NUGET.exec(version.trim());
  if (!m) return undefined;
  return {
    numbers: [1, 2, 3, 4].map((i) => Number(m[i] ?? 0)),
    pre: m[5] ? m[5].split('.') : [],
  };
}

const NUMERIC = /^\d+$/;

function comparePre(a: string[], b: string[]): number {
  // A release sorts after all of its pre-releases.
  if (a.length === 0 || b.length === 0) return b.length - a.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const xn = NUMERIC.test(x);
    const yn = NUMERIC.test(y);
    if (xn && yn) {
      const d = Number(x) - Number(y);
      if (d !== 0) return Math.sign(d);
    } else if (xn !== yn) {
      return xn ? -1 : 1;
    } else {
      const d = x.toLowerCase().localeCompare(y.toLowerCase(), 'en');
      if (d !== 0) return Math.sign(d);
    }
  }
  return 0;
}

/**
 * NuGet's ordering (NuGet.Versioning): SemVer 2.0 with up to four numeric parts (missing ones are
 * 0, so 1.0 = 1.0.0.0), pre-release labels compared case-insensitively, build metadata ignored.
 */
export const nugetOrdering: Ordering = {
  valid: (v) => parseNuget(v) !== undefined,
  compare(a, b) {
    const x = parseNuget(a) as NugetVersion;
    const y = parseNuget(b) as NugetVersion;
    for (let i = 0; i < 4; i++) {
      const d = (x.numbers[i] as number) - (y.numbers[i] as number);
      if (d !== 0) return Math.sign(d);
    }
    return comparePre(x.pre, y.pre);
  },
};

export const ORDERINGS: Record<Ecosystem, Ordering> = {
  npm: semverOrdering,
  pypi: pep440Ordering,
  nuget: nugetOrdering,
};

/** SEMVER-typed ranges are SemVer 2.0 whatever the ecosystem. */
export const SEMVER_ORDERING = semverOrdering;
