import { quantile } from '../stats/describe.ts';

/**
 * Release health of MCP server versions, after Sentry's release health: the status of each session,
 * crash-free sessions and users, errored rate, adoption and adoption stage. Pure: the state of each
 * session comes from the warehouse (`session_states`, migration 0006) and `now` from the caller.
 */

/** A session not seen for this long and not ended is `abnormal` (its fate is unknown). */
export const SESSION_IDLE_LIMIT_MS = 30 * 60_000;
/** Share of the environment's sessions at which a version counts as adopted. */
export const ADOPTED_SHARE = 0.1;
/** The span over which the adopted share is measured. */
export const ADOPTION_STAGE_WINDOW_MS = 6 * 3_600_000;
/** The span over which adoption % is measured. */
export const ADOPTION_WINDOW_MS = 24 * 3_600_000;
/** Steps between the earlier 6-hour windows that decide `replaced`. */
export const ADOPTION_STAGE_STEP_MS = 3_600_000;

/** One session of one version, merged from all its rows. */
export interface SessionState {
  sessionId: string;
  version: string;
  /** Epoch milliseconds. */
  firstSeen: number;
  lastSeen: number;
  requests: number;
  errors: number;
  /** Requests the upstream failed (502/503/504, stream cut before the answer). */
  crashes: number;
  ended: boolean;
  /** Why the session ended (the latest end event): delete, rollback, upstream-failure, client-closed…; '' if not ended. */
  endReason: string;
  /** The session migrated away from this version (a rollback moved it). */
  moved: boolean;
  /** Keyed hash of the client; '' when nothing identified it. */
  clientKey: string;
}

export const SESSION_STATUSES = [
  'healthy',
  'errored',
  'crashed',
  'abnormal',
  'moved-by-rollout',
  'active',
] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/**
 * The one status of a session at `now`, first match wins:
 * 1. `moved-by-rollout`: it migrated away from this version, or a rollback ended it;
 * 2. `crashed`: a request failed upstream (crashes > 0), or it ended by an upstream failure;
 * 3. `errored`: one or more error responses (JSON-RPC errors, tool errors);
 * 4. `healthy`: it ended (DELETE, client closed);
 * 5. not ended: `active` when last seen within `idleMs` of `now`, else `abnormal`.
 */
export function sessionStatus(
  state: SessionState,
  now: number,
  idleMs: number = SESSION_IDLE_LIMIT_MS,
): SessionStatus {
  if (state.moved || (state.ended && state.endReason === 'rollback')) return 'moved-by-rollout';
  if (state.crashes > 0 || (state.ended && state.endReason === 'upstream-failure')) return 'crashed';
  if (state.errors > 0) return 'errored';
  if (state.ended) return 'healthy';
  return now - state.lastSeen <= idleMs ? 'active' : 'abnormal';
}

export type StatusCounts = Record<SessionStatus, number> & { total: number };

/** Figures of a set of sessions (one version's, or all of an environment's for the average). */
export interface HealthFigures {
  sessions: StatusCounts;
  /** Distinct non-empty client keys among the sessions. */
  users: number;
  /** 1 − crashed / (sessions − moved-by-rollout − active); null when that is 0. */
  crashFreeSessions: number | null;
  /** The same over users with at least one such session; a user is crashed if any session crashed. */
  crashFreeUsers: number | null;
  /** errored / (sessions − moved-by-rollout − active); null when that is 0. */
  erroredRate: number | null;
  /** Milliseconds from first to last seen of ended sessions (healthy, errored, crashed); null without any. */
  duration: { p50: number | null; p90: number | null };
}

const ratio = (part: number, whole: number): number | null => (whole > 0 ? part / whole : null);

/** Sessions of a set by status, and its users whose sessions count in the rates. */
export interface CountedSessions {
  sessions: StatusCounts;
  /** Distinct non-empty client keys with a session that is neither moved-by-rollout nor active. */
  decidedUsers: number;
  /** Of those, the users with a crashed session. */
  crashedUsers: number;
}

/**
 * The rates of a set of sessions: moved-by-rollout and active sessions (their fate is not this
 * version's, or not known yet) are left out of every denominator.
 */
export function rates(
  c: CountedSessions,
): Pick<HealthFigures, 'crashFreeSessions' | 'crashFreeUsers' | 'erroredRate'> {
  const settled = c.sessions.total - c.sessions['moved-by-rollout'] - c.sessions.active;
  const crashFree = (crashed: number, whole: number) => (whole > 0 ? 1 - crashed / whole : null);
  return {
    crashFreeSessions: crashFree(c.sessions.crashed, settled),
    crashFreeUsers: crashFree(c.crashedUsers, c.decidedUsers),
    erroredRate: ratio(c.sessions.errored, settled),
  };
}

/** Whether an ended session of this status has a duration (its whole life is known). */
export const hasDuration = (s: SessionState, status: SessionStatus): boolean =>
  s.ended && (status === 'healthy' || status === 'errored' || status === 'crashed');

/**
 * Counts, rates and durations of `sessions` at `now`: the reference the warehouse query
 * (queries.ts, which computes the same in SQL) is tested against.
 */
export function healthFigures(
  sessions: readonly SessionState[],
  now: number,
  idleMs: number = SESSION_IDLE_LIMIT_MS,
): HealthFigures {
  const counts: StatusCounts = {
    total: 0,
    healthy: 0,
    errored: 0,
    crashed: 0,
    abnormal: 0,
    'moved-by-rollout': 0,
    active: 0,
  };
  const users = new Set<string>();
  // Users with a session whose fate is known: true when one of those crashed.
  const decided = new Map<string, boolean>();
  const durations: number[] = [];
  for (const s of sessions) {
    const status = sessionStatus(s, now, idleMs);
    counts.total++;
    counts[status]++;
    if (s.clientKey) users.add(s.clientKey);
    if (status === 'moved-by-rollout' || status === 'active') continue;
    if (s.clientKey) decided.set(s.clientKey, (decided.get(s.clientKey) ?? false) || status === 'crashed');
    if (hasDuration(s, status)) durations.push(Math.max(0, s.lastSeen - s.firstSeen));
  }
  return {
    sessions: counts,
    users: users.size,
    ...rates({
      sessions: counts,
      decidedUsers: decided.size,
      crashedUsers: [...decided.values()].filter(Boolean).length,
    }),
    duration: {
      p50: durations.length ? quantile(durations, 0.5) : null,
      p90: durations.length ? quantile(durations, 0.9) : null,
    },
  };
}

const overlaps = (s: SessionState, from: number, to: number) => s.lastSeen >= from && s.firstSeen <= to;

/**
 * A version's share of the environment's sessions and of its users (distinct non-empty client keys)
 * among sessions seen in [from, to]; null when the environment had none.
 */
export function adoption(
  all: readonly SessionState[],
  version: string,
  from: number,
  to: number,
): { sessions: number | null; users: number | null } {
  let sessions = 0;
  let mine = 0;
  const users = new Set<string>();
  const myUsers = new Set<string>();
  for (const s of all) {
    if (!overlaps(s, from, to)) continue;
    sessions++;
    if (s.clientKey) users.add(s.clientKey);
    if (s.version !== version) continue;
    mine++;
    if (s.clientKey) myUsers.add(s.clientKey);
  }
  return { sessions: ratio(mine, sessions), users: ratio(myUsers.size, users.size) };
}

export type AdoptionStage = 'adopted' | 'replaced' | 'low-adoption';

/**
 * The ends of the 6-hour windows that decide the stage at `now`: `now` itself, then 1, 2, 3… hours
 * earlier while the window starts no earlier than `since`.
 */
export function stageWindowEnds(now: number, since: number): number[] {
  const ends = [now];
  for (
    let to = now - ADOPTION_STAGE_STEP_MS;
    to - ADOPTION_STAGE_WINDOW_MS >= since;
    to -= ADOPTION_STAGE_STEP_MS
  )
    ends.push(to);
  return ends;
}

/**
 * The stage from the version's share of sessions in each window of {@link stageWindowEnds}
 * (`shares[0]` the last 6 hours): `adopted` when that is ≥ 10 %; `replaced` when below it now but
 * ≥ 10 % in an earlier window; `low-adoption` otherwise.
 */
export function stageOf(shares: readonly (number | null)[]): AdoptionStage {
  if ((shares[0] ?? 0) >= ADOPTED_SHARE) return 'adopted';
  return shares.slice(1).some((s) => (s ?? 0) >= ADOPTED_SHARE) ? 'replaced' : 'low-adoption';
}

/**
 * The adoption stage of `version` at `now`, from the environment's sessions:
 * - `adopted`: its share of sessions seen in the last 6 hours is ≥ 10 %;
 * - `replaced`: below that now, but ≥ 10 % in an earlier 6-hour window ending at `now` − k hours
 *   (k = 1, 2, …) and starting no earlier than `since` (the start of the query window, or 24 hours
 *   back when the window is shorter);
 * - `low-adoption` otherwise.
 */
export function adoptionStage(
  all: readonly SessionState[],
  version: string,
  now: number,
  since: number,
): AdoptionStage {
  return stageOf(
    stageWindowEnds(now, since).map(
      (to) => adoption(all, version, to - ADOPTION_STAGE_WINDOW_MS, to).sessions,
    ),
  );
}
