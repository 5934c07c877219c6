import semver from 'semver';
import { BadRequestError } from '../errors.ts';

const EXAMPLE = 'e.g. 1.2.0, 1.2.0-rc.1 or 1.2.0+build.5';

/**
 * Parses a version number strictly: `MAJOR.MINOR.PATCH[-pre][+build]`, nothing else. The error
 * says what is wrong in words a release engineer can act on.
 */
export function parseVersion(input: string): semver.SemVer {
  const parsed = semver.parse(input, { loose: false });
  // Even strict, semver.parse takes "v1.2.0" and " 1.2.3" (keeping them as raw): only the canonical text is a version.
  const canonical = parsed && parsed.version + (parsed.build.length > 0 ? `+${parsed.build.join('.')}` : '');
  if (parsed && canonical === input) return parsed;
  throw new BadRequestError(
    `version ${JSON.stringify(input)} is not valid semver: ${whyInvalid(input)}`,
    'invalid-semver',
  );
}

function whyInvalid(input: string): string {
  if (input.trim() === '') return `it is empty; expected MAJOR.MINOR.PATCH, ${EXAMPLE}`;
  if (input.trim() !== input) {
    const trimmed = input.trim();
    if (semver.valid(trimmed) !== null && /^\d/.test(trimmed))
      return `remove the spaces around it: ${trimmed}`;
    return `remove the spaces around it, and ${whyInvalid(trimmed)}`;
  }
  if (/^[vV=]/.test(input)) {
    // Only suggest the rest when it is itself valid: "v1.2" → "1.2" would be another invalid number.
    const rest = input.slice(1);
    if (semver.valid(rest) !== null && /^\d/.test(rest) && rest.trim() === rest) {
      return `drop the leading "${input[0]}": ${rest}`;
    }
    return `drop the leading "${input[0]}", and ${whyInvalid(rest)}`;
  }
  if (/^[\^~<>*]|\s|\|\||\bx\b|\.x|\.\*/.test(input)) {
    return `it is a range, not a version; give one exact version, ${EXAMPLE}`;
  }
  const core = input.split(/[-+]/)[0] ?? '';
  const parts = core.split('.');
  if (parts.length !== 3) return `expected MAJOR.MINOR.PATCH (three numbers), ${EXAMPLE}`;
  if (parts.some((p) => /^0\d/.test(p))) return `numbers must not have leading zeros (${core}), ${EXAMPLE}`;
  if (parts.some((p) => !/^\d+$/.test(p))) return `MAJOR, MINOR and PATCH must be numbers, ${EXAMPLE}`;
  if (/-$|-\.|\.\.|\.$|-(.*\.)?0\d/.test(input)) {
    return `the pre-release part after "-" must be dot-separated identifiers without leading zeros, e.g. ${core}-rc.1`;
  }
  if (/\+$/.test(input) || /\+.*[^0-9A-Za-z.-]/.test(input))
    return `the build part after "+" must be dot-separated identifiers, e.g. ${core}+build.5`;
  return `expected MAJOR.MINOR.PATCH[-pre][+build], ${EXAMPLE}`;
}

export const isPrerelease = (version: string) => (semver.prerelease(version)?.length ?? 0) > 0;

/** Sorts by semver precedence, highest first (1.10.0 before 1.9.0; 1.2.0 before 1.2.0-rc.1). */
export function sortDescending<T>(items: readonly T[], versionOf: (item: T) => string): T[] {
  return [...items].sort((a, b) => semver.rcompare(versionOf(a), versionOf(b)));
}

/** A semver range (`^1.2`, `>=1.0.0 <2`), or a 400 that says what a range looks like. */
export function parseRange(input: string): semver.Range {
  try {
    return new semver.Range(input);
  } catch {
    throw new BadRequestError(
      `range ${JSON.stringify(input)} is not a semver range, e.g. ^1.2, ~1.4.0 or >=1.0.0 <2.0.0`,
      'invalid-range',
    );
  }
}

export const BUMPS = ['major', 'minor', 'patch', 'prerelease', 'premajor', 'preminor', 'prepatch'] as const;
export type Bump = (typeof BUMPS)[number];

/**
 * The next version to suggest after `current` (the highest existing version, or none): a
 * prerelease bump from a stable version starts the next patch's pre-releases (1.2.0 → 1.2.1-rc.0).
 */
export function nextVersion(current: string | undefined, bump: Bump, preid = 'rc'): string {
  const base = current ?? '0.0.0';
  const next = semver.inc(base, bump, preid, '0');
  if (!next) throw new BadRequestError(`cannot bump ${base} by ${bump}`, 'invalid-bump');
  return next;
}

/**
 * A breaking version must raise MAJOR over the previous stable one. Under 1.0.0 semver allows
 * anything to change, so there a breaking change must raise at least MINOR (0.3.0 → 0.4.0), as
 * Cargo and npm's caret ranges treat it. Returns the violation, or undefined.
 */
export function breakingViolation(version: string, previousStable: string | undefined): string | undefined {
  if (!previousStable) return undefined;
  const v = semver.parse(version) as semver.SemVer;
  const prev = semver.parse(previousStable) as semver.SemVer;
  if (prev.major === 0 && v.major === 0) {
    if (v.minor > prev.minor) return undefined;
    return `${version} is marked breaking but does not raise MINOR over the previous stable ${previousStable} (under 1.0.0 a breaking change needs at least 0.${prev.minor + 1}.0)`;
  }
  if (v.major > prev.major) return undefined;
  return `${version} is marked breaking but does not raise MAJOR over the previous stable ${previousStable}; use ${prev.major + 1}.0.0`;
}
