import type { Db, Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { applyGroupChanges, type GroupChange } from './groups.ts';
import { heldResolutionMessages, writeNotification, type HeldResolution } from './held.ts';
import { instanceKey, type InstanceRow } from './instances.ts';
import type { Rule } from './model.ts';
import { attachSessions, fingerprintOf, instanceLabels, noticeOf, type InstanceSnapshot } from './notices.ts';
import { attachChanges } from './changes-notice.ts';
import { correlationsAt, type Correlation } from './correlation.ts';
import { batchReader } from './reader.ts';
import { NO_ROLLOUTS, type RolloutContext, type ServerRollouts } from './rollouts.ts';
import { toRule } from './rules.ts';
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

interface Read {
  rule: Rule;
  summary: EvaluationSummary;
  samples: Sample[] | null;
  idle: boolean;
  rollouts: ServerRollouts;
  took: number;
}

/** The rollout that keeps an instance's notifications back, per the rule's `duringRollout`. */
function holdingRollout(rule: Rule, rollout: RolloutContext | null): string | null {
  if (!rollout) return null;
  if (rule.duringRollout === 'inhibit') return rollout.deploymentId;
  if (rule.duringRollout === 'hold' && rollout.analysisRunning) return rollout.deploymentId;
  return null;
}

/** An active instance of a version that no longer takes traffic ends now, whatever `keepFiringFor` says. */
function endedByTraffic(prev: InstanceState, now: number, reason: string) {
  if (prev.state === 'firing')
    return { ...prev, state: 'resolved' as const, activeAt: null, resolvedAt: now, reason };
  return { ...prev, state: 'inactive' as const, activeAt: null, reason };
}

const json = (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value));

/**
 * Moves each instance of one rule to its next state and records instances and history in the
 * caller's transaction, which holds the rule's row lock. Returns the notification-group changes.
 */
async function applyReadings(
  tx: Queryable,
  locked: Rule,
  existing: InstanceRow[],
  { summary, samples, idle, rollouts }: Read,
  now: number,
  heldResolutions: HeldResolution[],
): Promise<GroupChange[]> {
  const ruleId = locked.id;
  const byFingerprint = new Map(existing.map((r) => [r.fingerprint, r]));
  const changes: GroupChange[] = [];
  for (const reading of readings(locked, existing, samples, summary.error, idle)) {
    const fingerprint = fingerprintOf(ruleId, reading.key);
    const row = byFingerprint.get(fingerprint);
    const prev = stateOf(row);
    const { environment, version } = reading.key;
    const lost = environment !== null && version !== null ? rollouts.trafficLost(environment, version) : null;
    // A version that no longer takes traffic gets no new alerts; its active ones end now, saying why.
    if (lost !== null && !row) continue;
    // Its errors stay in the window for a while: they must not fire it again.
    const next =
      lost === null
        ? nextState(prev, reading.outcome, locked, now)
        : ACTIVE.includes(prev.state)
          ? endedByTraffic(prev, now, lost)
          : nextState(prev, 'false', locked, now);
    // Series that are fine are not stored: only instances that have been active are.
    if (!row && next.state === 'inactive') continue;
    const candidate = environment !== null ? rollouts.active.get(environment) : undefined;
    const rollout = candidate && candidate.version === version ? candidate : null;
    const began = !ACTIVE.includes(prev.state) && ACTIVE.includes(next.state);
    const correlation: Correlation[] | null =
      began && environment !== null && locked.correlationWindowMs > 0
        ? await correlationsAt(
            tx,
            { orgId: locked.orgId, server: locked.server, environment, version },
            rollouts,
            locked.correlationWindowMs,
            next.activeAt ?? now,
          )
        : (row?.correlation ?? null);
    // Only notifications not yet sent are held: an alert already announced stays announced.
    const firing = next.state === 'firing';
    const holdBy = holdingRollout(locked, rollout);
    const wasHeld = row?.held_by ?? null;
    const heldBy = firing && holdBy !== null && (prev.state !== 'firing' || wasHeld !== null) ? holdBy : null;
    const heldSince = heldBy ? (row?.held_since ?? new Date(now)) : null;
    if (heldBy && !wasHeld) {
      next.reason = `${next.reason}; held: ${locked.duringRollout === 'hold' ? 'a canary analysis' : 'the rollout'} of deployment ${heldBy} decides`;
    } else if (firing && wasHeld && !heldBy) {
      next.reason = `${next.reason}; released: deployment ${wasHeld} no longer holds it`;
    }
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
      rollout,
      correlation,
      resolution: lost,
    };
    const changed = prev.state !== next.state;
    const instanceId = row?.id ?? newId();
    const errorText = reading.outcome === 'error' ? summary.error : null;
    if (!row) {
      await tx.query(
        `INSERT INTO alert_instances (id, org_id, rule_id, fingerprint, server, environment, version, operation, labels,
           state, value, threshold, baseline_version, active_at, fired_at, resolved_at, last_true_at, last_evaluated_at,
           state_changed_at, last_error, rollout, correlation, held_by, held_since)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19,
           $20, $21, $22, $23)`,
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
          json(rollout),
          json(correlation),
          heldBy,
          heldSince,
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
           rollout = $15, correlation = $16, held_by = $17, held_since = $18,
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
          json(rollout),
          json(correlation),
          heldBy,
          heldSince,
        ],
      );
      // The rule lock makes this unreachable; if it ever is, the whole evaluation rolls back.
      if (updated.length === 0) throw new Error(`alert instance ${row.id} changed under evaluation`);
    }
    if (changed || (heldBy !== null) !== (wasHeld !== null)) {
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
    if (heldBy) continue;
    if (firing && (prev.state !== 'firing' || wasHeld)) {
      changes.push({ rule: locked, notice: noticeOf(locked, snapshot, 'firing'), change: 'firing' });
    } else if (prev.state === 'firing' && !firing && wasHeld) {
      // Never announced: nothing to resolve, unless it ended with its version's traffic (one message says so).
      if (lost !== null) {
        heldResolutions.push({
          rule: locked,
          notice: noticeOf(locked, { ...snapshot, resolvedAt: next.resolvedAt ?? now }, 'resolved'),
          deploymentId: wasHeld,
        });
      }
    } else if (prev.state === 'firing' && !firing) {
      changes.push({
        rule: locked,
        notice: noticeOf(locked, { ...snapshot, resolvedAt: next.resolvedAt ?? now }, 'resolved'),
        change: 'resolved',
      });
    } else if (next.state === 'firing' && value !== null) {
      changes.push({ rule: locked, notice: noticeOf(locked, snapshot, 'firing'), change: 'update' });
    }
  }
  return changes;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
type RuleRow = Parameters<typeof toRule>[0];

const blank = (ruleId: string, now: number): EvaluationSummary => ({
  ruleId,
  skipped: null,
  evaluatedAt: new Date(now).toISOString(),
  series: 0,
  error: null,
  transitions: [],
  groupDueAt: null,
});

/**
 * Evaluates rules at one time `now`, as Prometheus evaluates a rule group: reads ClickHouse
 * (outside any transaction) with one grouped query per org × window × shape for all the rules
 * (reader.ts), then, holding the rules' row locks (taken in id order), moves each instance to its
 * next state and records transitions, history and notification-group changes in one transaction.
 * Each rule's outcome is what evaluating it alone at `now` gives. Evaluations of the same rule by
 * several workers queue on its lock; one that is not newer than the last stored evaluation changes
 * nothing, so each transition happens once. Should the batch's transaction fail, each rule is
 * evaluated alone, so one rule cannot hold back the others. Summaries come in `ruleIds` order.
 */
export async function evaluateRules(
  deps: { db: Db; warehouse: Warehouse },
  ruleIds: readonly string[],
  options: { now?: number } = {},
): Promise<EvaluationSummary[]> {
  const now = options.now ?? Date.now();
  const ids = [...new Set(ruleIds.filter((id) => UUID.test(id)))];
  const found =
    ids.length === 0
      ? []
      : (await deps.db.query<RuleRow>('SELECT * FROM alert_rules WHERE id = ANY($1::uuid[])', [ids])).map(
          toRule,
        );
  const rules = found.filter((r) => r.enabled);
  const reader = batchReader(deps, rules, now);
  const reads = await Promise.all(
    rules.map(async (rule): Promise<Read> => {
      const summary = blank(rule.id, now);
      const started = performance.now();
      let samples: Sample[] | null = null;
      let idle = false;
      let rollouts = NO_ROLLOUTS;
      try {
        rollouts = await reader.rollouts(rule.orgId, rule.server);
        ({ samples, idle } = await evaluateSamples(deps, rule, now, reader));
        summary.series = samples.length;
      } catch (error) {
        summary.error = (error as Error).message || String(error);
      }
      return { rule, summary, samples, idle, rollouts, took: performance.now() - started };
    }),
  );
  const done = new Map<string, EvaluationSummary>();
  for (const rule of found)
    if (!rule.enabled) done.set(rule.id, { ...blank(rule.id, now), skipped: 'disabled' });
  if (reads.length > 0) {
    try {
      for (const summary of await record(deps, reads, now)) done.set(summary.ruleId, summary);
    } catch (error) {
      if (reads.length === 1) throw error;
      for (const { rule } of reads) {
        const [alone] = await evaluateRules(deps, [rule.id], { now });
        if (alone) done.set(rule.id, alone);
      }
    }
  }
  // A rule listed twice is evaluated once: the repeat is not newer than that evaluation.
  const seen = new Set<string>();
  return ruleIds.map((id) => {
    const summary = done.get(id) ?? { ...blank(id, now), skipped: 'missing' as const };
    if (seen.has(id) && summary.skipped === null) return { ...blank(id, now), skipped: 'stale' as const };
    seen.add(id);
    return summary;
  });
}

/** The write half of {@link evaluateRules}: one transaction for every rule read. */
async function record(deps: { db: Db; warehouse: Warehouse }, reads: Read[], now: number) {
  return deps.db.transaction(async (tx) => {
    const ids = reads.map((r) => r.rule.id);
    const lockedRows = await tx.query<RuleRow>(
      'SELECT * FROM alert_rules WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE',
      [ids],
    );
    const locked = new Map(lockedRows.map((row) => [row.id, toRule(row)]));
    const out: EvaluationSummary[] = [];
    const current: { read: Read; rule: Rule }[] = [];
    for (const read of reads) {
      const rule = locked.get(read.rule.id);
      if (!rule) out.push({ ...read.summary, skipped: 'missing' });
      else if (!rule.enabled) out.push({ ...read.summary, skipped: 'disabled' });
      // Older than what is stored, or read with a rule that has since changed: drop it.
      else if (
        (rule.lastEvaluatedAt !== null && rule.lastEvaluatedAt.getTime() >= now) ||
        rule.updatedAt.getTime() !== read.rule.updatedAt.getTime()
      )
        out.push({ ...read.summary, skipped: 'stale' });
      else current.push({ read, rule });
    }
    if (current.length === 0) return out;
    current.sort((a, b) => (a.rule.id < b.rule.id ? -1 : a.rule.id > b.rule.id ? 1 : 0));
    const instances = await tx.query<InstanceRow>(
      'SELECT * FROM alert_instances WHERE rule_id = ANY($1::uuid[])',
      [current.map((c) => c.rule.id)],
    );
    const byRule = new Map<string, InstanceRow[]>();
    for (const row of instances) byRule.set(row.rule_id, [...(byRule.get(row.rule_id) ?? []), row]);
    const all: GroupChange[] = [];
    const held: HeldResolution[] = [];
    const summaryOf = new Map<GroupChange, EvaluationSummary>();
    for (const { read, rule } of current) {
      const changes = await applyReadings(tx, rule, byRule.get(rule.id) ?? [], read, now, held);
      // Only the notified changes read sessions (a firing alert's few versions), under the rule lock
      // so the stored notice is the one sent.
      if (changes.length > 0) {
        await attachSessions(
          deps.warehouse,
          rule,
          changes.map((c) => c.notice),
          now,
        );
        const began = changes.filter((c) => c.change === 'firing').map((c) => c.notice);
        if (began.length > 0) await attachChanges(tx, rule, began, read.rollouts, now);
      }
      for (const change of changes) summaryOf.set(change, read.summary);
      all.push(...changes);
      out.push(read.summary);
    }
    for (const message of heldResolutionMessages(held, now)) await writeNotification(tx, message, now);
    // One pass over every group the batch touches, in group-key order (see applyGroupChanges).
    await applyGroupChanges(tx, all, now, (change, due) => {
      const summary = summaryOf.get(change) as EvaluationSummary;
      summary.groupDueAt = Math.min(summary.groupDueAt ?? Infinity, due);
    });
    await tx.query(
      `UPDATE alert_rules r SET last_evaluated_at = $2, last_eval_duration_ms = u.took, last_error = u.error,
         evaluations = r.evaluations + 1
       FROM unnest($1::uuid[], $3::float8[], $4::text[]) AS u(id, took, error) WHERE r.id = u.id`,
      [
        current.map((c) => c.rule.id),
        new Date(now),
        current.map((c) => c.read.took),
        current.map((c) => c.read.summary.error),
      ],
    );
    return out;
  });
}

/** Evaluates one rule at `now`: {@link evaluateRules} of that rule alone. */
export async function evaluateRule(
  deps: { db: Db; warehouse: Warehouse },
  ruleId: string,
  options: { now?: number } = {},
): Promise<EvaluationSummary> {
  const [summary] = await evaluateRules(deps, [ruleId], options);
  return summary as EvaluationSummary;
}
