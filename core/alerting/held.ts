/**
 * Alerts a rule held during a rollout (`duringRollout: hold | inhibit`) that ended with their
 * version's traffic — the canary failed and was rolled back, say — were never announced, so there is
 * nothing to resolve in their groups. Instead one message per rollout says they were held and why
 * they are over, written to the same outbox as group notifications (published at least once).
 */
import type { Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { AlertNotice, PyleeEvent } from '../notify/events.ts';
import type { Rule } from './model.ts';

/** A held alert that resolved because its version lost its traffic: told in one message per rollout. */
export interface HeldResolution {
  rule: Rule;
  notice: AlertNotice;
  deploymentId: string;
}

const SEVERITY = { critical: 0, warning: 1, info: 2 } as const;

/** One `alert.rolled-back` event per rollout among `held`. */
export function heldResolutionMessages(held: readonly HeldResolution[], now: number): PyleeEvent[] {
  const byRollout = new Map<string, HeldResolution[]>();
  for (const h of held) byRollout.set(h.deploymentId, [...(byRollout.get(h.deploymentId) ?? []), h]);
  return [...byRollout].map(([deploymentId, list]) => {
    const notices = list.map((h) => h.notice).sort((a, b) => SEVERITY[a.severity] - SEVERITY[b.severity]);
    const first = notices[0] as (typeof notices)[number];
    const reason = first.resolution ?? `${first.version ?? 'the version'} no longer receives traffic`;
    const names = [...new Set(notices.map((n) => n.ruleName))].join(', ');
    const notificationId = newId();
    return {
      type: 'alert.rolled-back',
      orgId: (list[0] as HeldResolution).rule.orgId,
      server: first.server,
      environment: first.environment,
      version: first.version,
      labels: { severity: first.severity, deployment: deploymentId },
      summary: `[RESOLVED:${notices.length}] ${reason}; held during the rollout and never sent: ${names}`,
      data: {
        status: 'resolved',
        reason,
        deploymentId,
        groupKey: `rollout:${deploymentId}`,
        notificationId,
        alerts: notices,
      },
      occurredAt: new Date(now),
    };
  });
}

/** Writes a notification to the alert outbox (`alert_notifications`) in the caller's transaction. */
export async function writeNotification(tx: Queryable, event: PyleeEvent, now: number): Promise<void> {
  const id = typeof event.data.notificationId === 'string' ? event.data.notificationId : newId();
  await tx.query(
    'INSERT INTO alert_notifications (id, org_id, group_key, event, created_at) VALUES ($1, $2, $3, $4, $5)',
    [id, event.orgId, String(event.data.groupKey ?? ''), JSON.stringify(event), new Date(now)],
  );
}
