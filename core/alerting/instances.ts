/**
 * Alert instances as stored (`alert_instances`), and ending them when their rule goes: what both
 * the rule store (rules.ts, on delete or disable) and the evaluation (engine.ts) build on.
 */
import type { Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import { applyGroupChanges, type GroupChange } from './groups.ts';
import type { Rule } from './model.ts';
import { noticeOf, type InstanceSnapshot } from './notices.ts';
import type { SeriesKey } from './samples.ts';
import type { Correlation } from './correlation.ts';
import type { RolloutContext } from './rollouts.ts';
import type { AlertState } from './state.ts';

export interface InstanceRow {
  id: string;
  org_id: string;
  rule_id: string;
  fingerprint: string;
  server: string;
  environment: string | null;
  version: string | null;
  operation: string | null;
  labels: Record<string, string>;
  state: AlertState;
  value: number | null;
  threshold: number | null;
  baseline_version: string | null;
  active_at: Date | null;
  fired_at: Date | null;
  resolved_at: Date | null;
  last_true_at: Date | null;
  last_evaluated_at: Date | null;
  state_changed_at: Date;
  last_error: string | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  ack_comment: string | null;
  rollout: RolloutContext | null;
  correlation: Correlation[] | null;
  held_by: string | null;
  held_since: Date | null;
  row_version: number;
}

/** The series an instance reports on. */
export function instanceKey(row: InstanceRow): SeriesKey {
  return { environment: row.environment, version: row.version, operation: row.operation };
}

/**
 * Ends every active instance of a rule that is being deleted or disabled: firing ones are resolved
 * (and their groups told), the rest become inactive. Runs in the caller's transaction.
 */
export async function closeRuleInstances(tx: Queryable, rule: Rule, reason: string, now = Date.now()) {
  const rows = await tx.query<InstanceRow>(
    `SELECT * FROM alert_instances WHERE rule_id = $1 AND state <> 'inactive' FOR UPDATE`,
    [rule.id],
  );
  const changes: GroupChange[] = [];
  for (const row of rows) {
    const to: AlertState = row.state === 'firing' ? 'resolved' : 'inactive';
    if (to === row.state) continue;
    await tx.query(
      `UPDATE alert_instances SET state = $2, resolved_at = CASE WHEN $2 = 'resolved' THEN $3 ELSE resolved_at END,
         active_at = NULL, state_changed_at = $3, row_version = row_version + 1 WHERE id = $1`,
      [row.id, to, new Date(now)],
    );
    await tx.query(
      `INSERT INTO alert_history (id, org_id, instance_id, rule_id, rule_name, fingerprint, server, environment,
         version, operation, from_state, to_state, value, threshold, reason, at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
      [
        newId(),
        rule.orgId,
        row.id,
        rule.id,
        rule.name,
        row.fingerprint,
        row.server,
        row.environment,
        row.version,
        row.operation,
        row.state,
        to,
        row.value,
        row.threshold,
        reason,
        new Date(now),
      ],
    );
    if (row.state === 'firing') {
      const snapshot: InstanceSnapshot = {
        fingerprint: row.fingerprint,
        key: instanceKey(row),
        labels: row.labels,
        value: row.value,
        threshold: row.threshold,
        baselineVersion: row.baseline_version,
        firedAt: row.fired_at?.getTime() ?? null,
        resolvedAt: now,
      };
      changes.push({ rule, notice: noticeOf(rule, snapshot, 'resolved'), change: 'resolved' });
    }
  }
  return applyGroupChanges(tx, changes, now);
}
