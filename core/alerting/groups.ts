import type { Db, Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import type { AlertGroupData, AlertNotice, EventPublisher, PyleeEvent } from '../notify/events.ts';
import type { Rule } from './model.ts';
import { mutedAlerts, recordMutes, type StoredMute } from './mutes.ts';

/**
 * Alertmanager's aggregation groups, kept in Postgres so any number of alerts processes share them
 * and a restart loses nothing:
 * - alerts with the same values of the rule's `groupBy` labels form one group;
 * - a new group is notified `groupWait` after its first alert, so alerts that fire together go out
 *   together; later changes (a new firing alert, a resolved one) wait for `groupInterval` since the
 *   last notification; an unchanged group with firing alerts is re-sent every `repeatInterval`
 *   (unless all of its firing alerts are acknowledged);
 * - each notification lists the group's firing and resolved alerts, then resolved ones leave it.
 * A notification is decided in one transaction (groups are claimed with FOR UPDATE SKIP LOCKED, so
 * two dispatchers never send the same flush) and written to an outbox; the outbox is published at
 * least once, and each notification carries a `notificationId` receivers can drop duplicates by.
 */

export interface GroupChange {
  rule: Rule;
  notice: AlertNotice;
  /** firing: it fired; resolved: it stopped firing; update: still firing, new value. */
  change: 'firing' | 'resolved' | 'update';
}

/** The group-by labels of an alert and the group key they make. */
export function groupOf(groupBy: string[], labels: Record<string, string>) {
  const names = groupBy.includes('...') ? Object.keys(labels) : groupBy;
  const picked: Record<string, string> = {};
  for (const name of [...names].sort()) if (labels[name] !== undefined) picked[name] = labels[name];
  const key = `{${Object.entries(picked)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',')}}`;
  return { key, labels: picked };
}

interface GroupRow {
  org_id: string;
  group_key: string;
  labels: Record<string, string>;
  group_wait_ms: number;
  group_interval_ms: number;
  repeat_interval_ms: number;
  next_flush_at: Date | null;
  last_flush_at: Date | null;
  last_notified: string;
}

interface GroupAlertRow {
  fingerprint: string;
  status: 'firing' | 'resolved';
  notice: AlertNotice;
  notified_firing: boolean;
  acknowledged: boolean;
  muted_by: StoredMute | null;
}

/**
 * Records alert changes in their groups, inside the evaluation's transaction. Changes are applied
 * in group-key order, so two evaluations touching the same groups lock them in the same order.
 * Returns the earliest time a group is now due; `onDue` hears each change that makes its group due.
 */
export async function applyGroupChanges(
  tx: Queryable,
  changes: GroupChange[],
  now: number,
  onDue?: (change: GroupChange, due: number) => void,
): Promise<number | null> {
  const sorted = changes
    .map((c) => ({ ...c, original: c, group: groupOf(c.rule.groupBy, c.notice.labels) }))
    .sort((a, b) => (a.group.key < b.group.key ? -1 : a.group.key > b.group.key ? 1 : 0));
  let due: number | null = null;
  for (const { rule, notice, change, group, original } of sorted) {
    const orgId = rule.orgId;
    const [existing] = await tx.query<GroupRow>(
      'SELECT * FROM alert_groups WHERE org_id = $1 AND group_key = $2 FOR UPDATE',
      [orgId, group.key],
    );
    if (change === 'update') {
      if (existing) {
        await tx.query(
          `UPDATE alert_group_alerts SET notice = $4, updated_at = $5
            WHERE org_id = $1 AND group_key = $2 AND fingerprint = $3 AND status = 'firing'`,
          [orgId, group.key, notice.fingerprint, JSON.stringify(notice), new Date(now)],
        );
      }
      continue;
    }
    if (change === 'resolved') {
      if (!existing) continue;
      const [row] = await tx.query<GroupAlertRow>(
        'SELECT * FROM alert_group_alerts WHERE org_id = $1 AND group_key = $2 AND fingerprint = $3',
        [orgId, group.key, notice.fingerprint],
      );
      if (!row) continue;
      if (!row.notified_firing) {
        // Never announced: nothing to resolve. A group left empty before its first flush goes too.
        await tx.query(
          'DELETE FROM alert_group_alerts WHERE org_id = $1 AND group_key = $2 AND fingerprint = $3',
          [orgId, group.key, notice.fingerprint],
        );
        const [left] = await tx.query<{ n: number }>(
          'SELECT count(*) AS n FROM alert_group_alerts WHERE org_id = $1 AND group_key = $2',
          [orgId, group.key],
        );
        if (Number(left?.n) === 0 && existing.last_flush_at === null) {
          await tx.query('DELETE FROM alert_groups WHERE org_id = $1 AND group_key = $2', [orgId, group.key]);
        }
        continue;
      }
      await tx.query(
        `UPDATE alert_group_alerts SET status = 'resolved', notice = $4, updated_at = $5
          WHERE org_id = $1 AND group_key = $2 AND fingerprint = $3`,
        [orgId, group.key, notice.fingerprint, JSON.stringify(notice), new Date(now)],
      );
    } else {
      if (!existing) {
        await tx.query(
          `INSERT INTO alert_groups (org_id, group_key, labels, group_wait_ms, group_interval_ms, repeat_interval_ms,
             next_flush_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [
            orgId,
            group.key,
            JSON.stringify(group.labels),
            rule.groupWaitMs,
            rule.groupIntervalMs,
            rule.repeatIntervalMs,
            new Date(now + rule.groupWaitMs),
            new Date(now),
          ],
        );
      }
      await tx.query(
        `INSERT INTO alert_group_alerts (org_id, group_key, fingerprint, status, notice, updated_at)
         VALUES ($1, $2, $3, 'firing', $4, $5)
         ON CONFLICT (org_id, group_key, fingerprint)
         DO UPDATE SET status = 'firing', notice = EXCLUDED.notice, updated_at = EXCLUDED.updated_at,
           acknowledged = false`,
        [orgId, group.key, notice.fingerprint, JSON.stringify(notice), new Date(now)],
      );
      if (!existing) {
        due = Math.min(due ?? Infinity, now + rule.groupWaitMs);
        onDue?.(original, now + rule.groupWaitMs);
        continue;
      }
    }
    // An existing group: the change goes out groupInterval after the last notification (or with the
    // first one, if that is still waiting out groupWait). The group takes this rule's timings.
    const g = existing as GroupRow;
    const next =
      g.last_flush_at === null
        ? (g.next_flush_at?.getTime() ?? now + rule.groupWaitMs)
        : Math.min(
            g.next_flush_at?.getTime() ?? Infinity,
            Math.max(now, g.last_flush_at.getTime() + rule.groupIntervalMs),
          );
    await tx.query(
      `UPDATE alert_groups SET next_flush_at = $3, group_wait_ms = $4, group_interval_ms = $5, repeat_interval_ms = $6
        WHERE org_id = $1 AND group_key = $2`,
      [orgId, group.key, new Date(next), rule.groupWaitMs, rule.groupIntervalMs, rule.repeatIntervalMs],
    );
    due = Math.min(due ?? Infinity, next);
    onDue?.(original, next);
  }
  return due;
}

/** Marks an alert's acknowledgement in its groups: acknowledged alerts are not repeated. */
export async function acknowledgeInGroups(tx: Queryable, orgId: string, fingerprint: string): Promise<void> {
  await tx.query('UPDATE alert_group_alerts SET acknowledged = true WHERE org_id = $1 AND fingerprint = $2', [
    orgId,
    fingerprint,
  ]);
}

function common(records: Record<string, string>[]): Record<string, string> {
  const [first, ...rest] = records;
  if (!first) return {};
  return Object.fromEntries(Object.entries(first).filter(([k, v]) => rest.every((r) => r[k] === v)));
}

function eventOf(group: GroupRow, alerts: AlertNotice[], notificationId: string, now: number): PyleeEvent {
  const firing = alerts.filter((a) => a.status === 'firing');
  const resolved = alerts.filter((a) => a.status === 'resolved');
  const status = firing.length > 0 ? 'firing' : 'resolved';
  const commonLabels = common(alerts.map((a) => a.labels));
  const name = commonLabels.alertname ?? alerts[0]?.ruleName ?? 'alerts';
  const where = [commonLabels.server, commonLabels.environment, commonLabels.version]
    .filter(Boolean)
    .join(' ');
  const counts =
    firing.length > 0
      ? `[FIRING:${firing.length}${resolved.length ? `, RESOLVED:${resolved.length}` : ''}]`
      : `[RESOLVED:${resolved.length}]`;
  const only = alerts.length === 1 ? alerts[0]?.annotations.summary : undefined;
  const data: AlertGroupData = {
    groupKey: group.group_key,
    status,
    // Firing first, then resolved; the most severe first within each.
    alerts: [...firing, ...resolved],
    notificationId,
    groupLabels: group.labels,
    commonLabels,
  };
  return {
    type: status === 'firing' ? 'alert.firing' : 'alert.resolved',
    orgId: group.org_id,
    server: commonLabels.server ?? null,
    environment: commonLabels.environment ?? null,
    version: commonLabels.version ?? null,
    labels: commonLabels,
    summary: only ? `${counts} ${name} · ${only}` : `${counts} ${name}${where ? ` · ${where}` : ''}`,
    data,
    occurredAt: new Date(now),
  };
}

/**
 * Flushes the groups that are due: decides each notification and writes it to the outbox in one
 * transaction. Returns how many notifications it wrote.
 */
export async function flushDueGroups(db: Db, now = Date.now(), limit = 50): Promise<number> {
  return db.transaction(async (tx) => {
    const groups = await tx.query<GroupRow>(
      `SELECT * FROM alert_groups WHERE next_flush_at <= $1 ORDER BY next_flush_at LIMIT ${limit}
       FOR UPDATE SKIP LOCKED`,
      [new Date(now)],
    );
    let written = 0;
    for (const group of groups) {
      const key = [group.org_id, group.group_key];
      const alerts = await tx.query<GroupAlertRow>(
        'SELECT * FROM alert_group_alerts WHERE org_id = $1 AND group_key = $2 ORDER BY fingerprint',
        key,
      );
      // Muted (inhibited) firing alerts stay in the group but out of its notifications until released.
      const allFiring = alerts.filter((a) => a.status === 'firing');
      const muted = await mutedAlerts(
        tx,
        group.org_id,
        allFiring.map((a) => a.notice),
        now,
      );
      await recordMutes(tx, group.org_id, group.group_key, allFiring, muted, now);
      const firing = allFiring.filter((a) => !muted.has(a.fingerprint));
      const resolved = alerts.filter((a) => a.status === 'resolved');
      const firingSet = firing.map((a) => a.fingerprint).join(',');
      const changed = resolved.length > 0 || firingSet !== group.last_notified;
      const repeatDue =
        firing.length > 0 &&
        group.last_flush_at !== null &&
        now - group.last_flush_at.getTime() >= group.repeat_interval_ms &&
        !firing.every((a) => a.acknowledged);
      const send = firing.length + resolved.length > 0 && (changed || repeatDue);
      if (send) {
        const id = newId();
        const severity = { critical: 0, warning: 1, info: 2 };
        const notices = [...firing, ...resolved]
          .map((a) => a.notice)
          .sort((a, b) => severity[a.severity] - severity[b.severity]);
        await tx.query(
          'INSERT INTO alert_notifications (id, org_id, group_key, event, created_at) VALUES ($1, $2, $3, $4, $5)',
          [
            id,
            group.org_id,
            group.group_key,
            JSON.stringify(eventOf(group, notices, id, now)),
            new Date(now),
          ],
        );
        written++;
      }
      await tx.query(
        `DELETE FROM alert_group_alerts WHERE org_id = $1 AND group_key = $2 AND status = 'resolved'`,
        key,
      );
      if (allFiring.length === 0) {
        await tx.query('DELETE FROM alert_groups WHERE org_id = $1 AND group_key = $2', key);
        continue;
      }
      await tx.query(
        `UPDATE alert_group_alerts SET notified_firing = true
          WHERE org_id = $1 AND group_key = $2 AND status = 'firing' AND NOT (fingerprint = ANY($3))`,
        [...key, [...muted.keys()]],
      );
      const lastFlush = send ? now : (group.last_flush_at?.getTime() ?? now);
      // Not sent (acknowledged, or the change undid itself): look again at the next repeat.
      let next = lastFlush + group.repeat_interval_ms;
      if (next <= now) next = now + group.repeat_interval_ms;
      // Muted alerts are looked at again every group_interval, so a release goes out that soon.
      if (muted.size > 0) next = Math.min(next, now + group.group_interval_ms);
      await tx.query(
        `UPDATE alert_groups SET last_flush_at = $3, last_notified = $4, next_flush_at = $5
          WHERE org_id = $1 AND group_key = $2`,
        [...key, new Date(lastFlush), firingSet, new Date(next)],
      );
    }
    return written;
  });
}

interface NotificationRow {
  id: string;
  event: PyleeEvent & { occurredAt?: string | Date };
  attempts: number;
}

const LEASE_MS = 30_000;

/**
 * Hands outbox notifications to the publisher, oldest first. Each is leased while it is being
 * published, so two dispatchers do not publish it at once; a failed one is retried with backoff,
 * a process that died mid-publish leaves a lease that expires. Returns how many were published.
 */
export async function publishPending(
  db: Db,
  publisher: EventPublisher,
  logger: Logger,
  now = Date.now(),
  limit = 50,
): Promise<number> {
  const claimed = await db.transaction((tx) =>
    tx.query<NotificationRow>(
      `UPDATE alert_notifications SET lease_until = $2, attempts = attempts + 1
        WHERE id IN (
          SELECT id FROM alert_notifications
           WHERE published_at IS NULL AND (lease_until IS NULL OR lease_until < $1)
           ORDER BY created_at, id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING id, event, attempts`,
      [new Date(now), new Date(now + LEASE_MS)],
    ),
  );
  claimed.sort((a, b) => (a.id < b.id ? -1 : 1));
  let published = 0;
  for (const row of claimed) {
    const event: PyleeEvent = {
      ...row.event,
      occurredAt: row.event.occurredAt ? new Date(row.event.occurredAt) : new Date(now),
    };
    try {
      await publisher.publish(event);
      await db.query('UPDATE alert_notifications SET published_at = $2, last_error = NULL WHERE id = $1', [
        row.id,
        new Date(),
      ]);
      published++;
    } catch (error) {
      const retryIn = Math.min(1000 * 2 ** Math.min(row.attempts - 1, 6), 60_000);
      logger.warn(
        { err: error, notification: row.id, attempts: row.attempts },
        'publishing an alert notification failed; retrying',
      );
      await db
        .query('UPDATE alert_notifications SET lease_until = $2, last_error = $3 WHERE id = $1', [
          row.id,
          new Date(now + retryIn),
          (error as Error).message,
        ])
        .catch(() => undefined);
    }
  }
  return published;
}
