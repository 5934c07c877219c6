import type { ExecErrState, NoDataState } from './model.ts';

/**
 * The state of one alert instance, as Prometheus and Grafana keep it: inactive → pending (the
 * condition holds, waiting out `for`) → firing → resolved (condition false for `keepFiringFor`)
 * → inactive. `nodata` and `error` are Grafana's NoData / Error states, entered only when the rule
 * says so (noDataState = NoData, execErrState = Error).
 */
export const ALERT_STATES = ['inactive', 'pending', 'firing', 'resolved', 'nodata', 'error'] as const;
export type AlertState = (typeof ALERT_STATES)[number];

export interface InstanceState {
  state: AlertState;
  /** When the condition started to hold (pending since). */
  activeAt: number | null;
  firedAt: number | null;
  resolvedAt: number | null;
  /** Last evaluation where the condition held: keepFiringFor counts from it. */
  lastTrueAt: number | null;
}

/** What one evaluation said about an instance. */
export type Outcome = 'true' | 'false' | 'nodata' | 'error';

export interface Timing {
  forMs: number;
  keepFiringForMs: number;
  noDataState: NoDataState;
  execErrState: ExecErrState;
}

/** A resolved instance is listed as resolved this long, then becomes inactive (Prometheus keeps 15 min). */
export const RESOLVED_RETENTION_MS = 15 * 60_000;

export const INACTIVE: InstanceState = {
  state: 'inactive',
  activeAt: null,
  firedAt: null,
  resolvedAt: null,
  lastTrueAt: null,
};

export interface Step extends InstanceState {
  /** Why the state is what it is, for the history. */
  reason: string;
}

/** The next state of an instance after one evaluation at `now`. Pure. */
export function nextState(prev: InstanceState, outcome: Outcome, timing: Timing, now: number): Step {
  let effective: 'true' | 'false';
  let reason: string;
  if (outcome === 'nodata') {
    if (timing.noDataState === 'KeepLast') return { ...prev, reason: 'no data; kept the last state' };
    if (timing.noDataState === 'NoData') return special(prev, 'nodata', now, 'no data in the window');
    effective = timing.noDataState === 'Alerting' ? 'true' : 'false';
    reason = `no data, treated as ${timing.noDataState === 'Alerting' ? 'alerting' : 'OK'}`;
  } else if (outcome === 'error') {
    if (timing.execErrState === 'KeepLast')
      return { ...prev, reason: 'evaluation failed; kept the last state' };
    if (timing.execErrState === 'Error') return special(prev, 'error', now, 'evaluation failed');
    effective = 'true';
    reason = 'evaluation failed, treated as alerting';
  } else {
    effective = outcome;
    reason = outcome === 'true' ? 'condition met' : 'condition not met';
  }

  if (effective === 'true') {
    const held = { ...prev, lastTrueAt: now };
    if (prev.state === 'firing') return { ...held, reason };
    if (prev.state === 'pending') {
      const since = prev.activeAt ?? now;
      if (now - since >= timing.forMs)
        return { ...held, state: 'firing', firedAt: now, resolvedAt: null, reason };
      return { ...held, reason };
    }
    if (timing.forMs === 0) {
      return { ...held, state: 'firing', activeAt: now, firedAt: now, resolvedAt: null, reason };
    }
    return { ...held, state: 'pending', activeAt: now, firedAt: null, resolvedAt: null, reason };
  }

  switch (prev.state) {
    case 'firing':
      if (
        timing.keepFiringForMs > 0 &&
        prev.lastTrueAt !== null &&
        now - prev.lastTrueAt < timing.keepFiringForMs
      ) {
        return { ...prev, reason: `${reason}; keeps firing for ${timing.keepFiringForMs} ms` };
      }
      return { ...prev, state: 'resolved', activeAt: null, resolvedAt: now, reason };
    case 'pending':
      return { ...prev, state: 'inactive', activeAt: null, reason };
    case 'resolved':
      if (prev.resolvedAt !== null && now - prev.resolvedAt >= RESOLVED_RETENTION_MS) {
        return { ...prev, state: 'inactive', reason };
      }
      return { ...prev, reason };
    case 'nodata':
    case 'error':
      return { ...prev, state: 'inactive', activeAt: null, reason };
    default:
      return { ...prev, reason };
  }
}

function special(prev: InstanceState, state: 'nodata' | 'error', now: number, reason: string): Step {
  if (prev.state === state) return { ...prev, reason };
  // Leaving firing resolves the notification that went out; Grafana does the same.
  return {
    ...prev,
    state,
    activeAt: null,
    resolvedAt: prev.state === 'firing' ? now : prev.resolvedAt,
    reason,
  };
}

/** Whether `value comparator threshold` holds. */
export function compare(value: number, comparator: '>' | '>=' | '<' | '<=', threshold: number): boolean {
  switch (comparator) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
  }
}
