import { describe, expect, it } from 'vitest';
import {
  adoption,
  adoptionStage,
  healthFigures,
  SESSION_IDLE_LIMIT_MS,
  sessionStatus,
  type SessionState,
} from '#core/release-health/model.ts';

const NOW = Date.parse('2026-12-02T12:00:00Z');
const HOUR = 3_600_000;
let seq = 0;

function session(over: Partial<SessionState> = {}): SessionState {
  return {
    sessionId: `s${++seq}`,
    version: '1.0.0',
    firstSeen: NOW - 60_000,
    lastSeen: NOW - 1_000,
    requests: 3,
    errors: 0,
    crashes: 0,
    ended: true,
    endReason: 'delete',
    moved: false,
    clientKey: `c${seq}`,
    ...over,
  };
}

describe('sessionStatus', () => {
  it('is healthy for a clean end', () => {
    expect(sessionStatus(session(), NOW)).toBe('healthy');
    expect(sessionStatus(session({ endReason: 'client-closed' }), NOW)).toBe('healthy');
  });

  it('is errored with error responses, ended or not', () => {
    expect(sessionStatus(session({ errors: 2 }), NOW)).toBe('errored');
    expect(sessionStatus(session({ errors: 1, ended: false, endReason: '' }), NOW)).toBe('errored');
  });

  it('is crashed with an upstream failure, over errored', () => {
    expect(sessionStatus(session({ crashes: 1, errors: 1 }), NOW)).toBe('crashed');
    expect(sessionStatus(session({ endReason: 'upstream-failure' }), NOW)).toBe('crashed');
    expect(sessionStatus(session({ crashes: 1, ended: false, endReason: '' }), NOW)).toBe('crashed');
  });

  it('is moved-by-rollout when it migrated away or a rollback ended it, over everything else', () => {
    expect(sessionStatus(session({ moved: true, ended: false, endReason: '', crashes: 1 }), NOW)).toBe(
      'moved-by-rollout',
    );
    expect(sessionStatus(session({ endReason: 'rollback', errors: 3 }), NOW)).toBe('moved-by-rollout');
  });

  it('is active within the idle limit without an end, abnormal after it', () => {
    const open = { ended: false, endReason: '' };
    expect(sessionStatus(session({ ...open, lastSeen: NOW - SESSION_IDLE_LIMIT_MS }), NOW)).toBe('active');
    expect(sessionStatus(session({ ...open, lastSeen: NOW - SESSION_IDLE_LIMIT_MS - 1 }), NOW)).toBe(
      'abnormal',
    );
    expect(sessionStatus(session({ ...open, lastSeen: NOW - 2_000 }), NOW, 1_000)).toBe('abnormal');
  });

  it('defaults the idle limit to 30 minutes', () => {
    expect(SESSION_IDLE_LIMIT_MS).toBe(30 * 60_000);
  });
});

describe('healthFigures', () => {
  it('counts statuses and leaves moved and active sessions out of the rates', () => {
    const sessions = [
      session(),
      session(),
      session({ errors: 1 }),
      session({ crashes: 1 }),
      session({ moved: true, ended: false }),
      session({ ended: false, endReason: '' }),
      session({ ended: false, endReason: '', lastSeen: NOW - 2 * HOUR }),
    ];
    const f = healthFigures(sessions, NOW);
    expect(f.sessions).toEqual({
      total: 7,
      healthy: 2,
      errored: 1,
      crashed: 1,
      abnormal: 1,
      'moved-by-rollout': 1,
      active: 1,
    });
    // Denominator 7 − 1 moved − 1 active = 5.
    expect(f.crashFreeSessions).toBeCloseTo(1 - 1 / 5);
    expect(f.erroredRate).toBeCloseTo(1 / 5);
    expect(f.users).toBe(7);
    expect(f.crashFreeUsers).toBeCloseTo(1 - 1 / 5);
  });

  it('has null rates when every session is moved or active, and null durations without ended ones', () => {
    const f = healthFigures([session({ moved: true }), session({ ended: false, endReason: '' })], NOW);
    expect(f.crashFreeSessions).toBeNull();
    expect(f.crashFreeUsers).toBeNull();
    expect(f.erroredRate).toBeNull();
    expect(f.duration).toEqual({ p50: null, p90: null });
    expect(healthFigures([], NOW).crashFreeSessions).toBeNull();
  });

  it('counts a user crashed when any of their sessions crashed, and users without a key not at all', () => {
    const f = healthFigures(
      [
        session({ clientKey: 'alice' }),
        session({ clientKey: 'alice', crashes: 1 }),
        session({ clientKey: 'bob' }),
        session({ clientKey: 'carol', moved: true }),
        session({ clientKey: '' }),
      ],
      NOW,
    );
    expect(f.users).toBe(3);
    // alice (crashed) and bob decided; carol only moved.
    expect(f.crashFreeUsers).toBeCloseTo(1 / 2);
    expect(f.crashFreeSessions).toBeCloseTo(1 - 1 / 4);
  });

  it('measures duration from first to last seen of ended sessions only', () => {
    const at = (ms: number, over: Partial<SessionState> = {}) =>
      session({ firstSeen: NOW - 100_000, lastSeen: NOW - 100_000 + ms, ...over });
    const f = healthFigures(
      [
        at(1_000),
        at(2_000),
        at(3_000, { errors: 1 }),
        at(4_000, { crashes: 1 }),
        at(50_000, { ended: false, endReason: '' }),
        at(60_000, { moved: true }),
      ],
      NOW,
    );
    expect(f.duration.p50).toBe(2_500);
    expect(f.duration.p90).toBeCloseTo(3_700);
  });
});

describe('adoption and stage', () => {
  const spread = (version: string, count: number, at: number) =>
    Array.from({ length: count }, () => session({ version, firstSeen: at - 1_000, lastSeen: at }));

  it('is the share of the sessions and users seen in the window', () => {
    const all = [
      ...spread('1.0.0', 3, NOW - HOUR),
      ...spread('1.1.0', 1, NOW - HOUR),
      ...spread('1.1.0', 5, NOW - 30 * HOUR),
    ];
    expect(adoption(all, '1.1.0', NOW - 24 * HOUR, NOW)).toEqual({ sessions: 0.25, users: 0.25 });
    expect(adoption(all, '2.0.0', NOW - 24 * HOUR, NOW)).toEqual({ sessions: 0, users: 0 });
    expect(adoption([], '1.0.0', NOW - 24 * HOUR, NOW)).toEqual({ sessions: null, users: null });
  });

  it('is adopted at 10 % of the last 6 hours, low-adoption below', () => {
    const all = [...spread('1.0.0', 9, NOW - HOUR), ...spread('1.1.0', 1, NOW - HOUR)];
    expect(adoptionStage(all, '1.1.0', NOW, NOW - 24 * HOUR)).toBe('adopted');
    const less = [...spread('1.0.0', 10, NOW - HOUR), ...spread('1.1.0', 1, NOW - HOUR)];
    expect(adoptionStage(less, '1.1.0', NOW, NOW - 24 * HOUR)).toBe('low-adoption');
  });

  it('is replaced when an earlier 6-hour window in the look-back had it adopted and now it is below', () => {
    const all = [...spread('1.0.0', 10, NOW - 10 * HOUR), ...spread('1.1.0', 20, NOW - HOUR)];
    expect(adoptionStage(all, '1.0.0', NOW, NOW - 24 * HOUR)).toBe('replaced');
    expect(adoptionStage(all, '1.1.0', NOW, NOW - 24 * HOUR)).toBe('adopted');
    // Outside the look-back it is forgotten.
    expect(adoptionStage(all, '1.0.0', NOW, NOW - 8 * HOUR)).toBe('low-adoption');
  });
});
