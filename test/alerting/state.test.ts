import { describe, expect, it } from 'vitest';
import {
  INACTIVE,
  nextState,
  RESOLVED_RETENTION_MS,
  type InstanceState,
  type Outcome,
  type Timing,
} from '#core/alerting/state.ts';

const timing: Timing = { forMs: 30_000, keepFiringForMs: 0, noDataState: 'NoData', execErrState: 'Error' };

function run(outcomes: [number, Outcome][], t: Partial<Timing> = {}, start: InstanceState = INACTIVE) {
  let state = start;
  return outcomes.map(([now, outcome]) => {
    state = nextState(state, outcome, { ...timing, ...t }, now);
    return state.state;
  });
}

describe('alert state machine', () => {
  it('waits out `for` in pending, then fires, then resolves', () => {
    expect(
      run([
        [0, 'true'],
        [10_000, 'true'],
        [30_000, 'true'],
        [40_000, 'false'],
      ]),
    ).toEqual(['pending', 'pending', 'firing', 'resolved']);
  });

  it('fires at once with for = 0 and drops back to inactive from pending', () => {
    expect(run([[0, 'true']], { forMs: 0 })).toEqual(['firing']);
    expect(
      run([
        [0, 'true'],
        [10_000, 'false'],
      ]),
    ).toEqual(['pending', 'inactive']);
  });

  it('keeps firing for keepFiringFor since the condition last held', () => {
    expect(
      run(
        [
          [0, 'true'],
          [10_000, 'false'],
          [19_999, 'false'],
          [20_000, 'false'],
        ],
        { forMs: 0, keepFiringForMs: 20_000 },
      ),
    ).toEqual(['firing', 'firing', 'firing', 'resolved']);
    // Holding again restarts the count.
    expect(
      run(
        [
          [0, 'true'],
          [15_000, 'false'],
          [16_000, 'true'],
          [30_000, 'false'],
          [36_000, 'false'],
        ],
        {
          forMs: 0,
          keepFiringForMs: 20_000,
        },
      ),
    ).toEqual(['firing', 'firing', 'firing', 'firing', 'resolved']);
  });

  it('maps no data and errors as Grafana does', () => {
    expect(run([[0, 'nodata']])).toEqual(['nodata']);
    expect(
      run([
        [0, 'nodata'],
        [1, 'false'],
      ]),
    ).toEqual(['nodata', 'inactive']);
    expect(run([[0, 'nodata']], { noDataState: 'OK' })).toEqual(['inactive']);
    expect(
      run(
        [
          [0, 'nodata'],
          [30_000, 'nodata'],
        ],
        { noDataState: 'Alerting' },
      ),
    ).toEqual(['pending', 'firing']);
    expect(
      run(
        [
          [0, 'true'],
          [1, 'nodata'],
        ],
        { forMs: 0, noDataState: 'KeepLast' },
      ),
    ).toEqual(['firing', 'firing']);
    expect(run([[0, 'error']])).toEqual(['error']);
    expect(run([[0, 'error']], { forMs: 0, execErrState: 'Alerting' })).toEqual(['firing']);
    expect(
      run(
        [
          [0, 'true'],
          [1, 'error'],
        ],
        { forMs: 0, execErrState: 'KeepLast' },
      ),
    ).toEqual(['firing', 'firing']);
    const left = nextState(nextState(INACTIVE, 'true', { ...timing, forMs: 0 }, 0), 'error', timing, 5);
    expect(left).toMatchObject({ state: 'error', resolvedAt: 5 });
  });

  it('lists a resolved alert as resolved for a while, then inactive; it can fire again', () => {
    const states = run(
      [
        [0, 'true'],
        [1_000, 'false'],
        [2_000, 'false'],
        [1_000 + RESOLVED_RETENTION_MS, 'false'],
        [1_000 + RESOLVED_RETENTION_MS + 1, 'true'],
      ],
      { forMs: 0 },
    );
    expect(states).toEqual(['firing', 'resolved', 'resolved', 'inactive', 'firing']);
  });
});
