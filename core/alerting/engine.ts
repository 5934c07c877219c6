import type { Db } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { applyGroupChanges, type GroupChange } from './groups.ts';
import { instanceKey, type InstanceRow } from './instances.ts';
import type { Rule } from './model.ts';
import { attachSessions, fingerprintOf, instanceLabels, noticeOf, type InstanceSnapshot } from './notices.ts';
import { findRule } from './rules.ts';
import { evaluateSamples, type Sample, type SeriesKey } from './samples.ts';
import { INACTIVE, nextState, type AlertState, type InstanceState, type Outcome } from './state.ts';

export interface Transition {
  fingerprint: string;
  labels: Record<string, string>;
  from: AlertState;
  to: AlertState;
  value: number | null;
  threshold: number | null;
  reason: string;
}

export interface EvaluationSummary {
  ruleId: string;
  /** Why nothing was evaluated: the rule is gone or disabled, or a newer evaluation already ran. */
  skipped: 'missing' | 'disabled' | 'stale' | null;
  evaluatedAt: string;
  series: number;
  error: string | null;
  transitions: Transition[];
  /** The earliest time a notification group touched by this evaluation is due, epoch ms. */
  groupDueAt: number | null;
}

const ms = (d: Date | null) => (d === null ? null : d.getTime());
const date = (n: number | null) => (n === null ? null : new Date(n));

function stateOf(row: InstanceRow | undefined): InstanceState {
  if (!row) return INACTIVE;
  return {
    state: row.state,
    activeAt: ms(row.active_at),
    firedAt: ms(row.fired_at),
    resolvedAt: ms(row.resolved_at),
    lastTrueAt: ms(row.last_true_at),
  };
}

interface Reading {
  key: SeriesKey;
  outcome: Outcome;
  value: number | null;
  threshold: number | null;
  baselineVersion: string | null;
}

const ACTIVE: AlertState[] = ['pending', 'firing', 'nodata', 'error'];

/** The instance a rule reports on when it has no series at all (no data, or a failed query). */
function ruleLevelKey(rule: Rule): SeriesKey {
  const op = rule.condition.operation;
  return {
    environment: rule.environment,
    version: rule.version === '*' ? null : rule.version,
    operation: op === '*' ? null : op,
  };
}

/** What each instance's outcome is: from the samples, or no data / error for the rule's active instances. */
function readings(
  rule: Rule,
  existing: InstanceRow[],
  samples: Sample[] | null,
  error: string | null,
  idle = false,
): Reading[] {
  const out = new Map<string, Reading>();
  const active = existing.filter((i) => ACTIVE.includes(i.state));
  const blanket = (outcome: 'nodata' | 'error', createWhen: boolean) => {
    for (const row of active) {
      out.set(row.fingerprint, {
        key: instanceKey(row),
        outcome,
        value: null,
        threshold: row.threshold,
        baselineVersion: null,
      });
    }
    if (active.length === 0 && createWhen) {
      const key = ruleLevelKey(rule);
      out.set(fingerprintOf(rule.id, key), {
        key,
        outcome,
        value: null,
        threshold: null,
        baselineVersion: null,
      });
    }
  };
  if (error !== null) {
    blanket('error', rule.execErrState !== 'KeepLast');
    return [...out.values()];
  }
  // Idle (a `canary` rule between rollouts): no series by design, so active alerts end below.
  if (!samples || (samples.length === 0 && !idle)) {
    blanket('nodata', rule.noDataState === 'NoData' || rule.noDataState === 'Alerting');
    return [...out.values()];
  }
  for (const s of samples) {
    out.set(fingerprintOf(rule.id, s.key), {
      key: s.key,
      outcome: s.noData ? 'nodata' : s.holds ? 'true' : 'false',
      value: s.value,
      threshold: s.threshold,
      baselineVersion: s.baselineVersion,
    });
  }
  // A series that is gone (its version stopped serving, say) is over, as in Prometheus.
  for (const row of existing) {
    if (!out.has(row.fingerprint) && row.state !== 'inactive') {
      out.set(row.fingerprint, {
        key: instanceKey(row),
        outcome: 'false',
        value: null,
        threshold: row.threshold,
        baselineVersion: row.baseline_version,
      });
    }
  }
  return [...out.values()];
}

/**
 * Evaluates one rule at `now`: reads ClickHouse (outside any transaction), then, holding the
 * rule's row lock, moves each instance to its next state and records transitions, history and
 * notification-group changes in one transaction. Evaluations of the same rule by several workers
 * queue on that lock; one that is not newer than the last stored evaluation changes nothing, so
 * each transition happens once.
 */
export async function evaluateRule(
  deps: { db: Db; warehouse: Warehouse },
  ruleId: string,
  options: { now?: number } = {},
): Promise<EvaluationSummary> {
  const now = options.now ?? Date.now();
  const summary: EvaluationSummary = {
    ruleId,
    skipped: null,
    evaluatedAt: new Date(now).toISOString(),
    series: 0,
    error: null,
    transitions: [],
    groupDueAt: null,
  };
  const rule = await findRule(deps.db, null, ruleId);
  if (!rule) return { ...summary, skipped: 'missing' };
  if (!rule.enabled) return { ...summary, skipped: 'disabled' };

  const started = performance.now();
  let samples: Sample[] | null = null;
  let idle = false;
  try {
    ({ samples, idle } = await evaluateSamples(deps, rule, now));
    summary.series = samples.length;
  } catch (error) {
    summary.error = (error as Error).message || String(error);
  }
  const took = performance.now() - started;

  return deps.db.transaction(async (tx) => {
    const locked = await findRule(tx, null, ruleId, { lock: true });
    if (!locked) return { ...summary, skipped: 'missing' as const };
    if (!locked.enabled) return { ...summary, skipped: 'disabled' as const };
    // Older than what is stored, or read with a rule that has since changed: drop it.
    if (
      (locked.lastEvaluatedAt !== null && locked.lastEvaluatedAt.getTime() >= now) ||
      locked.updatedAt.getTime() !== rule.updatedAt.getTime()
    ) {
      return { ...summary, skipped: 'stale' as const };
    }
    const existing = await tx.query<InstanceRow>('SELECT * FROM alert_instances WHERE rule_id = $1', [
      ruleId,
    ]);
    const byFingerprint = new Map(existing.map((r) => [r.fingerprint, r]));
    const changes: GroupChange[] = [];
    for (const reading of readings(locked, existing, samples, summary.error, idle)) {
      const fingerprint = fingerprintOf(ruleId, reading.key);
      const row = byFingerprint.get(fingerprint);
      const prev = stateOf(row);
      const next = nextState(prev, reading.outcome, locked, now);
      // Series that are fine are not stored: only instances that have been active are.
      if (!row && next.state === 'inactive') continue;
      const labels = instanceLabels(locked, reading.key);
      const value = reading.outcome === 'nodata' || reading.outcome === 'error' ? null : reading.value;
      const threshold = reading.threshold;
      const snapshot: InstanceSnapshot = {
        fingerprint,
        key: reading.key,
        labels,
        value,
        threshold,
        baselineVersion: reading.baselineVersion,
        firedAt: next.firedAt,
        resolvedAt: next.resolvedAt,
      };
      const changed = prev.state !== next.state;
      const instanceId = row?.id ?? newId();
      const errorText = reading.outcome === 'error' ? summary.error : null;
      if (!row) {
        await tx.query(
          `INSERT INTO alert_instances (id, org_id, rule_id, fingerprint, server, environment, version, operation, labels,
             state, value, threshold, baseline_version, active_at, fired_at, resolved_at, last_true_at, last_evaluated_at,
             state_changed_at, last_error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19)`,
          [
            instanceId,
            locked.orgId,
            ruleId,
            fingerprint,
            locked.server,
            reading.key.environment,
            reading.key.version,
            reading.key.operation,
            JSON.stringify(labels),
            next.state,
            value,
            threshold,
            reading.baselineVersion,
            date(next.activeAt),
            date(next.firedAt),
            date(next.resolvedAt),
            date(next.lastTrueAt),
            new Date(now),
            errorText,
          ],
        );
      } else {
        const leftFiring = prev.state === 'firing' && next.state !== 'firing';
        const updated = await tx.query<{ id: string }>(
          `UPDATE alert_instances SET labels = $3, state = $4, value = $5, threshold = $6, baseline_version = $7,
             active_at = $8, fired_at = $9, resolved_at = $10, last_true_at = $11, last_evaluated_at = $12,
             state_changed_at = CASE WHEN state = $4 THEN state_changed_at ELSE $12 END, last_error = $13,
             acknowledged_at = CASE WHEN $14 THEN NULL ELSE acknowledged_at END,
             acknowledged_by = CASE WHEN $14 THEN NULL ELSE acknowledged_by END,
             ack_comment = CASE WHEN $14 THEN NULL ELSE ack_comment END,
             row_version = row_version + 1
           WHERE id = $1 AND row_version = $2 RETURNING id`,
          [
            row.id,
            row.row_version,
            JSON.stringify(labels),
            next.state,
            value,
            threshold,
            reading.baselineVersion ?? row.baseline_version,
            date(next.activeAt),
            date(next.firedAt),
            date(next.resolvedAt),
            date(next.lastTrueAt),
            new Date(now),
            errorText,
            leftFiring,
          ],
        );
        // The rule lock makes this unreachable; if it ever is, the whole evaluation rolls back.
        if (updated.length === 0) throw new Error(`alert instance ${row.id} changed under evaluation`);
      }
      if (changed) {
        await tx.query(
          `INSERT INTO alert_history (id, org_id, instance_id, rule_id, rule_name, fingerprint, server, environment,
             version, operation, from_state, to_state, value, threshold, reason, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
          [
            newId(),
            locked.orgId,
            instanceId,
            ruleId,
            locked.name,
            fingerprint,
            locked.server,
            reading.key.environment,
            reading.key.version,
            reading.key.operation,
            prev.state,
            next.state,
            value,
            threshold,
            reading.outcome === 'error' ? `${next.reason}: ${summary.error}` : next.reason,
            new Date(now),
          ],
        );
        summary.transitions.push({
          fingerprint,
          labels,
          from: prev.state,
          to: next.state,
          value,
          threshold,
          reason: next.reason,
        });
      }
      if (next.state === 'firing' && prev.state !== 'firing') {
        changes.push({ rule: locked, notice: noticeOf(locked, snapshot, 'firing'), change: 'firing' });
      } else if (prev.state === 'firing' && next.state !== 'firing') {
        changes.push({
          rule: locked,
          notice: noticeOf(locked, { ...snapshot, resolvedAt: next.resolvedAt ?? now }, 'resolved'),
          change: 'resolved',
        });
      } else if (next.state === 'firing' && value !== null) {
        changes.push({ rule: locked, notice: noticeOf(locked, snapshot, 'firing'), change: 'update' });
      }
    }
    // Only the notified changes read sessions (a firing alert's few versions), under the rule lock
    // so the stored notice is the one sent.
    await attachSessions(
      deps.warehouse,
      locked,
      changes.map((c) => c.notice),
      now,
    );
    summary.groupDueAt = await applyGroupChanges(tx, changes, now);
    await tx.query(
      `UPDATE alert_rules SET last_evaluated_at = $2, last_eval_duration_ms = $3, last_error = $4,
         evaluations = evaluations + 1 WHERE id = $1`,
      [ruleId, new Date(now), took, summary.error],
    );
    return summary;
  });
}
