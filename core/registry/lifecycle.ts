import { ConflictError } from '../errors.ts';

/** A version's lifecycle, in order. */
export const STATUSES = ['development', 'release-candidate', 'stable', 'deprecated', 'retired'] as const;
export type Status = (typeof STATUSES)[number];

/**
 * Allowed moves. Forward through the lifecycle, with two ways back: a release candidate that
 * failed returns to development, and a deprecation can be withdrawn (deprecated → stable).
 * Retired is final.
 */
const TRANSITIONS: Record<Status, readonly Status[]> = {
  development: ['release-candidate', 'stable', 'deprecated', 'retired'],
  'release-candidate': ['development', 'stable', 'deprecated', 'retired'],
  stable: ['deprecated', 'retired'],
  deprecated: ['stable', 'retired'],
  retired: [],
};

/** Content (configuration, breaking flag) is frozen once a version leaves development. */
export const isReleased = (status: Status) => status !== 'development';

export function allowedTransitions(from: Status, prerelease: boolean): Status[] {
  return TRANSITIONS[from].filter((to) => !(prerelease && to === 'stable'));
}

/**
 * Checks a status change. A pre-release number (1.2.0-rc.1) is never stable: semver says it is
 * not ready for production, so its stable form is a new version (1.2.0).
 */
export function assertTransition(version: string, from: Status, to: Status, prerelease: boolean): void {
  if (prerelease && to === 'stable') {
    const release = version.split(/[-+]/)[0];
    throw new ConflictError(
      `${version} is a pre-release and cannot be stable; cut ${release} to release it`,
      'invalid-transition',
    );
  }
  if (!TRANSITIONS[from].includes(to)) {
    const allowed = allowedTransitions(from, prerelease);
    throw new ConflictError(
      `${version} cannot go from ${from} to ${to}; from ${from} it can go to ${allowed.length ? allowed.join(', ') : 'nothing (retired is final)'}`,
      'invalid-transition',
    );
  }
}

/** The status a new version starts in when none is given. */
export const initialStatus = (prerelease: boolean): Status =>
  prerelease ? 'release-candidate' : 'development';
