import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '#core/deploy/duration.ts';
import {
  allowedActions,
  FINAL_STATUSES,
  initialState,
  InvalidAction,
  isActive,
  STATUSES,
  transition,
  type RolloutEvent,
  type RolloutState,
  type Step,
} from '#core/deploy/rollout.ts';
import { checkCanarySteps, stepDownSteps } from '#core/deploy/strategies.ts';

const durationOf = (text: string) => parseDuration('pause', text);

/** Everything that must hold in every state the machine can reach. */
function checkInvariants(state: RolloutState, steps: readonly Step[]): void {
  expect(STATUSES).toContain(state.status);
  expect(state.weight).toBeGreaterThanOrEqual(0);
  expect(state.weight).toBeLessThanOrEqual(100);
  expect(state.step).toBeGreaterThanOrEqual(-1);
  expect(state.step).toBeLessThan(steps.length);
  expect(state.status === 'paused').toBe(state.pause !== null);
  if (state.status === 'pending' || state.status === 'verifying') {
    expect(state.step).toBe(-1);
    expect(state.weight).toBe(0);
  }
  if (state.status === 'progressing') {
    expect(state.awaiting).not.toBeNull();
    expect(state.weight).toBe(steps[state.step]?.weight);
  }
  if (state.status === 'paused') expect(state.weight).toBe(steps[state.step]?.weight);
  if (state.status === 'succeeded') expect(state.weight).toBe(100);
  if (['failed', 'aborted', 'rolled-back'].includes(state.status)) expect(state.weight).toBe(0);
  if (!isActive(state.status)) {
    expect(state.pause).toBeNull();
    expect(state.awaiting).toBeNull();
    expect(allowedActions(state)).toEqual([]);
  }
  if (state.pause?.kind === 'timer') expect(steps[state.step]?.pause).toBeTypeOf('string');
  if (state.pause?.kind === 'approval') expect(steps[state.step]?.pause).toEqual({ approval: true });
}

const stepArb = fc
  .uniqueArray(fc.integer({ min: 1, max: 99 }), { minLength: 0, maxLength: 6 })
  .chain((weights) => {
    const sorted = [...weights.sort((a, b) => a - b), 100];
    return fc.tuple(
      ...sorted.map((weight) =>
        fc.record({
          weight: fc.constant(weight),
          pause: fc.constantFrom<Step['pause']>(undefined, '10m', '1s', { approval: true }),
          analyze: fc.boolean(),
        }),
      ),
    );
  });

const stagedArb = fc
  .integer({ min: 1, max: 5 })
  .map((n) => Array.from({ length: n }, (_, i): Step => ({ weight: 100, environment: `env-${i}` })));

const eventArb: fc.Arbitrary<RolloutEvent> = fc.oneof(
  fc.record({ type: fc.constant('start' as const), verify: fc.boolean() }),
  fc.constant({ type: 'verification-passed' as const }),
  fc.record({ type: fc.constant('verification-failed' as const), rollback: fc.boolean() }),
  fc.record({ type: fc.constant('timer-elapsed' as const), step: fc.integer({ min: -1, max: 7 }) }),
  fc.record({ type: fc.constant('analysis-passed' as const), step: fc.integer({ min: -1, max: 7 }) }),
  fc.record({
    type: fc.constant('analysis-failed' as const),
    step: fc.integer({ min: -1, max: 7 }),
    rollback: fc.boolean(),
  }),
  fc.record({ type: fc.constant('gates-passed' as const), step: fc.integer({ min: -1, max: 7 }) }),
  fc.record({ type: fc.constant('promote' as const), full: fc.boolean() }),
  fc.constant({ type: 'pause' as const }),
  fc.constant({ type: 'resume' as const }),
  fc.constant({ type: 'abort' as const }),
  fc.constant({ type: 'rollback' as const }),
);

describe('rollout state machine (property)', () => {
  for (const [name, arb] of [
    ['canary', stepArb],
    ['staged', stagedArb],
  ] as const) {
    it(`never reaches an invalid state under random action sequences (${name})`, () => {
      fc.assert(
        fc.property(
          arb as fc.Arbitrary<Step[]>,
          fc.array(fc.tuple(eventArb, fc.integer({ min: 0, max: 3_600_000 })), { maxLength: 40 }),
          (steps, events) => {
            let state = initialState();
            let now = 1_700_000_000_000;
            let lastWeight = 0;
            for (const [event, elapse] of events) {
              now += elapse;
              const before = state;
              let outcome;
              try {
                outcome = transition(state, event, steps, now, durationOf);
              } catch (error) {
                // Refusals are only for user actions, name the state, and change nothing.
                expect(error).toBeInstanceOf(InvalidAction);
                expect(['promote', 'pause', 'resume', 'abort', 'rollback']).toContain(event.type);
                expect((error as InvalidAction).status).toBe(before.status);
                expect(allowedActions(before)).not.toContain(event.type);
                continue;
              }
              if (['promote', 'pause', 'resume', 'abort', 'rollback'].includes(event.type)) {
                expect(allowedActions(before)).toContain(event.type);
              }
              state = outcome.state;
              if (!outcome.changed) expect(state).toBe(before);
              // Final states are final.
              if (!isActive(before.status)) expect(state).toEqual(before);
              checkInvariants(state, steps);
              // While active, the new version's weight only rises (it falls to 0 only when the rollout ends).
              if (isActive(state.status)) {
                expect(state.weight).toBeGreaterThanOrEqual(lastWeight);
                lastWeight = state.weight;
              }
              // Steps are entered in order, without skipping (promote full enters them all).
              for (const [i, entered] of outcome.entered.entries()) {
                expect(entered).toBe(before.step + 1 + i);
              }
              if (outcome.timer) {
                expect(state.pause).toEqual({ kind: 'timer', until: outcome.timer.at });
                expect(outcome.timer.at).toBeGreaterThanOrEqual(now);
              }
            }
          },
        ),
        { numRuns: 500 },
      );
    });
  }

  it('always can finish: from any reachable state, abort or promotions end it', () => {
    fc.assert(
      fc.property(stepArb, fc.array(eventArb, { maxLength: 20 }), (steps, events) => {
        let state = initialState();
        for (const event of events) {
          try {
            state = transition(state, event, steps, 0, durationOf).state;
          } catch {
            // refused: unchanged
          }
        }
        if (isActive(state.status)) {
          expect(transition(state, { type: 'abort' }, steps, 0, durationOf).state.status).toBe('aborted');
        }
        expect(FINAL_STATUSES.length).toBe(4);
      }),
    );
  });
});

describe('rollout state machine (examples)', () => {
  const steps = checkCanarySteps([
    { weight: 5, pause: '10m' },
    { weight: 25, pause: { approval: true } },
    { weight: 50, analyze: true },
    { weight: 100 },
  ]);
  const t = (s: RolloutState, e: RolloutEvent, now = 0) => transition(s, e, steps, now, durationOf);

  it('walks pending → verifying → progressing → paused → succeeded', () => {
    let o = t(initialState(), { type: 'start', verify: true });
    expect(o.state).toMatchObject({ status: 'verifying', awaiting: 'verification', weight: 0 });
    o = t(o.state, { type: 'verification-passed' }, 1000);
    expect(o.state).toMatchObject({
      status: 'paused',
      step: 0,
      weight: 5,
      pause: { kind: 'timer', until: 601_000 },
    });
    expect(o.timer).toEqual({ step: 0, at: 601_000 });
    // A timer for another step, or a second one, does nothing.
    expect(t(o.state, { type: 'timer-elapsed', step: 1 }).changed).toBe(false);
    o = t(o.state, { type: 'timer-elapsed', step: 0 });
    expect(o.state).toMatchObject({ status: 'paused', step: 1, weight: 25, pause: { kind: 'approval' } });
    expect(t(o.state, { type: 'timer-elapsed', step: 0 }).changed).toBe(false);
    o = t(o.state, { type: 'promote' });
    expect(o.state).toMatchObject({ status: 'progressing', step: 2, weight: 50, awaiting: 'analysis' });
    o = t(o.state, { type: 'analysis-passed', step: 2 });
    expect(o.state).toMatchObject({ status: 'succeeded', step: 3, weight: 100 });
    expect(o.entered).toEqual([3]);
  });

  it('a manual pause keeps what was left of a timed pause', () => {
    let s = t(initialState(), { type: 'start', verify: false }, 0).state;
    s = t(s, { type: 'pause' }, 240_000).state;
    expect(s.pause).toEqual({ kind: 'manual', remainingMs: 360_000 });
    const resumed = t(s, { type: 'resume' }, 1_000_000);
    expect(resumed.state.pause).toEqual({ kind: 'timer', until: 1_360_000 });
    expect(resumed.timer).toEqual({ step: 0, at: 1_360_000 });
  });

  it('refuses actions the state does not allow, naming the state', () => {
    const paused = t(t(initialState(), { type: 'start', verify: false }).state, {
      type: 'timer-elapsed',
      step: 0,
    }).state;
    expect(() => t(paused, { type: 'resume' })).toThrow(/paused at step 2 \(waiting for approval\).*promote/);
    const verifying = t(initialState(), { type: 'start', verify: true }).state;
    expect(() => t(verifying, { type: 'promote' })).toThrow(/verifying/);
    const aborted = t(paused, { type: 'abort' }).state;
    expect(() => t(aborted, { type: 'rollback' })).toThrow(/aborted, which is final/);
    expect(allowedActions(paused)).toEqual(
      ['promote', 'pause', 'abort', 'rollback'].filter((a) => a !== 'pause'),
    );
  });

  it('a failed verification rolls back when the policy says so', () => {
    const verifying = t(initialState(), { type: 'start', verify: true }).state;
    expect(t(verifying, { type: 'verification-failed', rollback: true }).state.status).toBe('rolled-back');
    expect(t(verifying, { type: 'verification-failed', rollback: false }).state.status).toBe('failed');
  });

  it('staged steps wait for the next environment’s gates', () => {
    const staged: Step[] = ['dev', 'staging', 'prod'].map((environment) => ({ weight: 100, environment }));
    let o = transition(initialState(), { type: 'start', verify: false }, staged, 0, durationOf);
    expect(o.state).toMatchObject({ status: 'progressing', step: 0, awaiting: 'gates' });
    expect(o.entered).toEqual([0]);
    o = transition(o.state, { type: 'gates-passed', step: 0 }, staged, 0, durationOf);
    expect(o.state).toMatchObject({ status: 'progressing', step: 1, awaiting: 'gates' });
    o = transition(o.state, { type: 'gates-passed', step: 1 }, staged, 0, durationOf);
    expect(o.state).toMatchObject({ status: 'succeeded', step: 2 });
  });
});

describe('strategies', () => {
  it('checks canary steps', () => {
    expect(() => checkCanarySteps([{ weight: 50 }, { weight: 25 }, { weight: 100 }])).toThrow(
      /does not rise/,
    );
    expect(() => checkCanarySteps([{ weight: 50 }, { weight: 101 }])).toThrow(/from 1 to 100/);
    expect(() => checkCanarySteps([{ weight: 10 }, { weight: 50 }])).toThrow(/ends at 100/);
    expect(() => checkCanarySteps([{ weight: 10, pause: '5 minutes' }, { weight: 100 }])).toThrow(
      /not a duration/,
    );
    expect(() => checkCanarySteps([{ weight: 10, pause: { approval: false } }, { weight: 100 }])).toThrow(
      /approval/,
    );
    expect(checkCanarySteps([{ weight: 5, pause: '10m', analyze: true }, { weight: 100 }])).toEqual([
      { weight: 5, pause: '10m', analyze: true },
      { weight: 100 },
    ]);
  });

  it('turns a staged rollback’s falling weights into the restored version’s rising ones', () => {
    expect(stepDownSteps([60, 20, 0], '5m')).toEqual([
      { weight: 40, pause: '5m' },
      { weight: 80, pause: '5m' },
      { weight: 100 },
    ]);
    expect(() => stepDownSteps([50, 60, 0], '5m')).toThrow(/does not fall/);
    expect(() => stepDownSteps([50, 20], '5m')).toThrow(/ends at 0/);
  });
});
