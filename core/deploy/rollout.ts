/**
 * The rollout state machine, pure: no clock (the caller passes `now`), no store. `apply.ts` loads
 * a deployment, applies one event here and stores what comes out, in one transaction.
 *
 *   pending → verifying → progressing (step i) ⇄ paused → succeeded | failed | aborted | rolled-back
 *
 * Entering step i sets the new version's traffic weight to steps[i].weight; the step then waits
 * (a timed pause, an approval, an analysis, or for staged rollouts the next environment's gates) or
 * moves straight on. Entering past the last step is success.
 */

export const ACTIVE_STATUSES = ['pending', 'verifying', 'progressing', 'paused'] as const;
export const FINAL_STATUSES = ['succeeded', 'failed', 'aborted', 'rolled-back'] as const;
export const STATUSES = [...ACTIVE_STATUSES, ...FINAL_STATUSES] as const;
export type RolloutStatus = (typeof STATUSES)[number];

export const isActive = (status: RolloutStatus) => (ACTIVE_STATUSES as readonly string[]).includes(status);

/** A step as stored: `pause` is a duration (`10m`) or an approval; staged steps name their environment. */
export interface Step {
  weight: number;
  pause?: string | { approval: true } | undefined;
  analyze?: boolean | undefined;
  /** Staged rollouts: the environment this step deploys to (at weight 100). */
  environment?: string | undefined;
}

export type Pause =
  | { kind: 'timer'; until: number }
  | { kind: 'approval' }
  /** Paused by a person; `remainingMs` is what was left of a timed pause, to resume with. */
  | { kind: 'manual'; remainingMs: number | null };

export type Awaiting = 'verification' | 'analysis' | 'gates';

export interface RolloutState {
  status: RolloutStatus;
  /** Index of the current step; -1 before the first. */
  step: number;
  /** Share of traffic (percent) the new version gets where the rollout currently is. */
  weight: number;
  pause: Pause | null;
  /** What an active rollout waits for; kept through a manual pause. */
  awaiting: Awaiting | null;
}

export type RolloutEvent =
  | { type: 'start'; verify: boolean }
  | { type: 'verification-passed' }
  | { type: 'verification-failed'; rollback: boolean }
  | { type: 'timer-elapsed'; step: number }
  | { type: 'analysis-passed'; step: number }
  | { type: 'analysis-failed'; step: number; rollback: boolean }
  /** Staged: the next environment's gates pass (the service checked them). */
  | { type: 'gates-passed'; step: number }
  | { type: 'promote'; full?: boolean }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'abort' }
  | { type: 'rollback' };

export type UserAction = 'promote' | 'pause' | 'resume' | 'abort' | 'rollback';
export const USER_ACTIONS: readonly UserAction[] = ['promote', 'pause', 'resume', 'abort', 'rollback'];

export interface Outcome {
  state: RolloutState;
  /** False when the event does not apply any more (a late timer, a duplicate report): nothing to store. */
  changed: boolean;
  /** Steps entered by this event, in order (each sets a weight; staged ones deploy to an environment). */
  entered: number[];
  /** A timer to schedule: the step's pause ends at `at` (epoch ms). */
  timer: { step: number; at: number } | null;
}

/** An action that the rollout's state does not allow; `message` names the state. */
export class InvalidAction extends Error {
  readonly status: RolloutStatus;
  readonly action: string;
  constructor(action: string, state: RolloutState, why: string) {
    super(why);
    this.name = 'InvalidAction';
    this.action = action;
    this.status = state.status;
  }
}

export const initialState = (): RolloutState => ({
  status: 'pending',
  step: -1,
  weight: 0,
  pause: null,
  awaiting: null,
});

/** A pause written as a duration: its milliseconds, via the caller's parser (durations are validated on input). */
export type DurationOf = (text: string) => number;

interface Machine {
  steps: readonly Step[];
  now: number;
  durationOf: DurationOf;
}

const unchanged = (state: RolloutState): Outcome => ({ state, changed: false, entered: [], timer: null });

/** Enters step `index` and every following step that does not wait, collecting what happened. */
function enter(m: Machine, state: RolloutState, index: number, entered: number[]): Outcome {
  let i = index;
  for (;;) {
    if (i >= m.steps.length) {
      const last = m.steps[m.steps.length - 1];
      return {
        state: {
          status: 'succeeded',
          step: m.steps.length - 1,
          weight: last?.weight ?? 100,
          pause: null,
          awaiting: null,
        },
        changed: true,
        entered,
        timer: null,
      };
    }
    const step = m.steps[i] as Step;
    entered.push(i);
    const base = { step: i, weight: step.weight };
    if (typeof step.pause === 'string') {
      const until = m.now + m.durationOf(step.pause);
      return {
        state: { ...base, status: 'paused', pause: { kind: 'timer', until }, awaiting: null },
        changed: true,
        entered,
        timer: { step: i, at: until },
      };
    }
    if (step.pause?.approval) {
      return {
        state: { ...base, status: 'paused', pause: { kind: 'approval' }, awaiting: null },
        changed: true,
        entered,
        timer: null,
      };
    }
    const wait = waitAfter(m, i);
    if (wait) {
      return {
        state: { ...base, status: 'progressing', pause: null, awaiting: wait },
        changed: true,
        entered,
        timer: null,
      };
    }
    i += 1;
  }
}

/** What step `i` waits for once its pause (if any) is over: an analysis, or the next stage's gates. */
function waitAfter(m: Machine, i: number): Awaiting | null {
  if (m.steps[i]?.analyze) return 'analysis';
  if (m.steps[i + 1]?.environment !== undefined) return 'gates';
  return null;
}

/** Leaves step `i` (its pause or analysis is over): waits for the next stage's gates, or enters the next step. */
function advance(m: Machine, state: RolloutState, i: number, skipAnalysis: boolean): Outcome {
  const analysis = !skipAnalysis && m.steps[i]?.analyze;
  if (analysis) {
    return {
      state: { ...state, status: 'progressing', pause: null, awaiting: 'analysis' },
      changed: true,
      entered: [],
      timer: null,
    };
  }
  if (m.steps[i + 1]?.environment !== undefined && state.awaiting !== 'gates') {
    return {
      state: { ...state, status: 'progressing', pause: null, awaiting: 'gates' },
      changed: true,
      entered: [],
      timer: null,
    };
  }
  return enter(m, state, i + 1, []);
}

function describe(state: RolloutState): string {
  const step = state.step >= 0 ? ` at step ${state.step + 1}` : '';
  if (state.status === 'paused' && state.pause) {
    const why =
      state.pause.kind === 'approval'
        ? 'waiting for approval'
        : state.pause.kind === 'timer'
          ? `until ${new Date(state.pause.until).toISOString()}`
          : 'by hand';
    return `paused${step} (${why})`;
  }
  if (state.status === 'progressing' && state.awaiting)
    return `progressing${step} (waiting for ${state.awaiting})`;
  return `${state.status}${step}`;
}

/** Which user actions the state allows (for the API's `allowedActions`). */
export function allowedActions(state: RolloutState): UserAction[] {
  return USER_ACTIONS.filter((action) => {
    try {
      check(state, action);
      return true;
    } catch {
      return false;
    }
  });
}

function check(state: RolloutState, action: UserAction): void {
  const s = state.status;
  if (!isActive(s)) {
    throw new InvalidAction(
      action,
      state,
      `the deployment is ${s}, which is final; start a new deployment instead`,
    );
  }
  if (action === 'promote' && (s === 'pending' || s === 'verifying')) {
    throw new InvalidAction(
      action,
      state,
      `the deployment is ${s}; it can be promoted once its startup checks pass (progressing or paused)`,
    );
  }
  if (action === 'pause') {
    if (s === 'pending' || s === 'verifying')
      throw new InvalidAction(
        action,
        state,
        `the deployment is ${s}; only a progressing rollout can be paused`,
      );
    if (s === 'paused' && state.pause?.kind !== 'timer')
      throw new InvalidAction(action, state, `the deployment is already ${describe(state)}`);
  }
  if (action === 'resume') {
    if (s !== 'paused')
      throw new InvalidAction(
        action,
        state,
        `the deployment is ${describe(state)}; only a paused rollout can be resumed`,
      );
    if (state.pause?.kind !== 'manual') {
      throw new InvalidAction(
        action,
        state,
        `the deployment is ${describe(state)}: that pause is a step of the rollout; promote it to go on`,
      );
    }
  }
}

/**
 * Applies one event. User actions the state does not allow throw {@link InvalidAction}; automatic
 * events that no longer apply (a timer for a step already left, a second verification report)
 * return `changed: false`, so their processors are idempotent.
 */
export function transition(
  state: RolloutState,
  event: RolloutEvent,
  steps: readonly Step[],
  now: number,
  durationOf: DurationOf,
): Outcome {
  const m: Machine = { steps, now, durationOf };
  const s = state.status;
  switch (event.type) {
    case 'start':
      if (s !== 'pending') return unchanged(state);
      if (event.verify) {
        return {
          state: { ...state, status: 'verifying', awaiting: 'verification' },
          changed: true,
          entered: [],
          timer: null,
        };
      }
      return enter(m, state, 0, []);
    case 'verification-passed':
      if (s !== 'verifying') return unchanged(state);
      return enter(m, { ...state, awaiting: null }, 0, []);
    case 'verification-failed':
      if (s !== 'verifying') return unchanged(state);
      return finish(state, event.rollback ? 'rolled-back' : 'failed');
    case 'timer-elapsed':
      if (s !== 'paused' || state.pause?.kind !== 'timer' || state.step !== event.step)
        return unchanged(state);
      return advance(m, state, state.step, false);
    case 'analysis-passed':
      if (s !== 'progressing' || state.awaiting !== 'analysis' || state.step !== event.step)
        return unchanged(state);
      return advance(m, state, state.step, true);
    case 'analysis-failed':
      if (!isActive(s) || state.step !== event.step) return unchanged(state);
      return finish(state, event.rollback ? 'rolled-back' : 'failed');
    case 'gates-passed':
      if (s !== 'progressing' || state.awaiting !== 'gates' || state.step !== event.step)
        return unchanged(state);
      return enter(m, state, state.step + 1, []);
    case 'promote': {
      check(state, 'promote');
      if (event.full) {
        const entered: number[] = [];
        for (let i = state.step + 1; i < steps.length; i++) entered.push(i);
        return {
          state: {
            status: 'succeeded',
            step: steps.length - 1,
            weight: steps.at(-1)?.weight ?? 100,
            pause: null,
            awaiting: null,
          },
          changed: true,
          entered,
          timer: null,
        };
      }
      // A promote skips what the current step waits for (its pause, analysis or the next stage's gates check).
      return enter(m, state, state.step + 1, []);
    }
    case 'pause': {
      check(state, 'pause');
      const remainingMs = state.pause?.kind === 'timer' ? Math.max(state.pause.until - now, 0) : null;
      return {
        state: { ...state, status: 'paused', pause: { kind: 'manual', remainingMs } },
        changed: true,
        entered: [],
        timer: null,
      };
    }
    case 'resume': {
      check(state, 'resume');
      const remaining = state.pause?.kind === 'manual' ? state.pause.remainingMs : null;
      if (remaining !== null) {
        const until = now + remaining;
        return {
          state: { ...state, status: 'paused', pause: { kind: 'timer', until } },
          changed: true,
          entered: [],
          timer: { step: state.step, at: until },
        };
      }
      if (state.awaiting) {
        return {
          state: { ...state, status: 'progressing', pause: null },
          changed: true,
          entered: [],
          timer: null,
        };
      }
      return advance(m, { ...state, pause: null }, state.step, false);
    }
    case 'abort':
      check(state, 'abort');
      return finish(state, 'aborted');
    case 'rollback':
      check(state, 'rollback');
      return finish(state, 'rolled-back');
  }
}

/** A final state other than success: the new version's traffic goes back to zero. */
function finish(state: RolloutState, status: 'failed' | 'aborted' | 'rolled-back'): Outcome {
  return {
    state: { status, step: state.step, weight: 0, pause: null, awaiting: null },
    changed: true,
    entered: [],
    timer: null,
  };
}

export { describe as describeState };
