/**
 * Maintenance lines and branch numbering, pure: a line is `MAJOR.x` or `MAJOR.MINOR.x` (the
 * versions a team still patches, e.g. `1.4.x` while `2.x` is current); a hotfix is the next patch
 * inside a line; a development version from a branch is `X.Y.Z-<branch>.N` with N rising.
 */
import semver from 'semver';
import { BadRequestError } from '../errors.ts';
import { nextVersion, sortDescending, type Bump } from './semver-policy.ts';

const LINE = /^(0|[1-9]\d*)\.(?:(0|[1-9]\d*)\.)?x$/;

export interface LinePattern {
  pattern: string;
  major: number;
  /** null for a `MAJOR.x` line. */
  minor: number | null;
}

/** `1.4.x` or `2.x`, or a 400 with an example. */
export function parseLine(pattern: string): LinePattern {
  const m = LINE.exec(pattern);
  if (!m) {
    throw new BadRequestError(
      `line ${JSON.stringify(pattern)} is not MAJOR.x or MAJOR.MINOR.x, e.g. 2.x or 1.4.x`,
      'invalid-line',
    );
  }
  return { pattern, major: Number(m[1]), minor: m[2] === undefined ? null : Number(m[2]) };
}

/** Whether `version` (pre-releases too) belongs to the line. */
export function inLine(version: string, line: LinePattern): boolean {
  const v = semver.parse(version);
  return v !== null && v.major === line.major && (line.minor === null || v.minor === line.minor);
}

/**
 * The line a version belongs to: the most specific declared line holding it (`1.4.x` before `1.x`),
 * else its major's implicit line (`1.x`), so every version has one for retention and the UI.
 */
export function lineOf(version: string, declared: readonly LinePattern[]): string {
  const holding = declared.filter((l) => inLine(version, l));
  const specific = holding.find((l) => l.minor !== null) ?? holding[0];
  return specific?.pattern ?? `${semver.major(version)}.x`;
}

/** The highest version of `versions` inside the line (pre-releases only with `prerelease`). */
export function latestInLine(
  versions: readonly string[],
  line: LinePattern,
  prerelease = false,
): string | undefined {
  const inside = versions.filter((v) => inLine(v, line) && (prerelease || semver.prerelease(v) === null));
  return sortDescending(inside, (v) => v)[0];
}

/**
 * The next version inside a line: a patch (a hotfix) or, in a `MAJOR.x` line, a minor. A bump
 * that would leave the line is refused with the bump that stays in it.
 */
export function nextInLine(
  versions: readonly string[],
  line: LinePattern,
  bump: Bump,
  preid?: string,
): string {
  const highest = sortDescending(
    versions.filter((v) => inLine(v, line)),
    (v) => v,
  )[0];
  const base = highest ?? `${line.major}.${line.minor ?? 0}.0`;
  const next =
    highest === undefined && (bump === 'patch' || bump === 'minor') ? base : nextVersion(base, bump, preid);
  if (!inLine(next, line)) {
    throw new BadRequestError(
      `a ${bump} bump of ${base} gives ${next}, outside line ${line.pattern}; use ${line.minor === null ? 'minor or patch' : 'patch'} there`,
      'bump-leaves-line',
    );
  }
  return next;
}

/** A branch name as a semver pre-release identifier: `feat/Login_v2` → `feat-login-v2`. */
export function branchId(branch: string): string {
  const id = branch
    .toLowerCase()
    .replace(/[^0-9a-z]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  // A purely numeric identifier would compare as a number and could not have leading zeros.
  if (id === '' || /^\d+$/.test(id)) {
    throw new BadRequestError(
      `branch ${JSON.stringify(branch)} gives no usable pre-release name; use letters, e.g. feat/login`,
      'invalid-branch',
    );
  }
  return id;
}

/**
 * The next development version of a branch: the next patch after the highest release (of the line,
 * when given), then `-<branch>.N` with N one above the branch's highest on that base.
 */
export function nextBranchVersion(versions: readonly string[], branch: string, line?: LinePattern): string {
  const id = branchId(branch);
  const pool = line ? versions.filter((v) => inLine(v, line)) : versions;
  const released = sortDescending(
    pool.filter((v) => semver.prerelease(v) === null),
    (v) => v,
  )[0];
  const base = released
    ? (semver.inc(released, 'patch') as string)
    : line
      ? `${line.major}.${line.minor ?? 0}.0`
      : '0.1.0';
  let n = -1;
  for (const v of versions) {
    const pre = semver.prerelease(v);
    if (pre?.length === 2 && pre[0] === id && typeof pre[1] === 'number' && v.startsWith(`${base}-`))
      n = Math.max(n, pre[1]);
  }
  return `${base}-${id}.${n + 1}`;
}
