import type { Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { AlertNotice } from '../notify/events.ts';
import { firingSources, inhibitedBy, inhibitionRules } from './inhibitions.ts';

/**
 * Why a firing alert of a notification group is left out of its notifications. Today one reason,
 * an inhibition rule; another reason (a hold during a canary, say) adds a member with its own
 * `kind` and a branch in {@link mutedAlerts}.
 */
export interface InhibitionMute {
  kind: 'inhibition';
  /** One sentence for the alert's history. */
  reason: string;
  inhibitionId: string;
  inhibitionName: string | null;
  /** The firing alert that inhibits it. */
  source: { alertId: string; fingerprint: string; alertname: string; labels: Record<string, string> };
}
export type Mute = InhibitionMute;

/** A mute as stored on the group alert: since when. */
export type StoredMute = Mute & { since: string };

/** `{environment="production", server="checkout"}`: the labels that say which alert, sorted. */
export function showLabels(labels: Record<string, string>): string {
  const pairs = Object.entries(labels)
    .filter(([k]) => k !== 'alertname')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `{${pairs.join(', ')}}`;
}

/**
 * Which of a group's firing `alerts` (by fingerprint) must not be notified now, and why: those an
 * inhibition rule of the org inhibits because a source alert (an alert instance of the same org in
 * state firing) fires. Reads the org's rules and, when it has any, its firing alerts.
 */
export async function mutedAlerts(
  tx: Queryable,
  orgId: string,
  alerts: readonly AlertNotice[],
  _now: number,
): Promise<Map<string, Mute>> {
  const muted = new Map<string, Mute>();
  if (alerts.length === 0) return muted;
  const rules = await inhibitionRules(tx, orgId);
  if (rules.length === 0) return muted;
  const sources = await firingSources(tx, orgId);
  for (const alert of alerts) {
    const hit = inhibitedBy(rules, sources, alert.labels);
    if (!hit) continue;
    const alertname = hit.source.labels.alertname ?? 'alert';
    const rule = `inhibition rule ${hit.rule.id}${hit.rule.name ? ` "${hit.rule.name}"` : ''}`;
    muted.set(alert.fingerprint, {
      kind: 'inhibition',
      reason: `inhibited by ${alertname} ${showLabels(hit.source.labels)} (${rule}); not notified while it fires`,
      inhibitionId: hit.rule.id,
      inhibitionName: hit.rule.name,
      source: { ...hit.source, alertname },
    });
  }
  return muted;
}

/** Why a mute ended: its source stopped firing, its rule was deleted, or the labels no longer match. */
async function releaseReason(tx: Queryable, prev: StoredMute): Promise<string> {
  const [rule] = await tx.query<{ id: string }>('SELECT id FROM alert_inhibition_rules WHERE id = $1', [
    prev.inhibitionId,
  ]);
  const [source] = await tx.query<{ state: string }>('SELECT state FROM alert_instances WHERE id = $1', [
    prev.source.alertId,
  ]);
  const by = `${prev.source.alertname} ${showLabels(prev.source.labels)}`;
  const why = !rule
    ? `inhibition rule ${prev.inhibitionId} was deleted`
    : source?.state !== 'firing'
      ? `${by} stopped firing`
      : `inhibition rule ${prev.inhibitionId} no longer matches`;
  return `no longer inhibited by ${by}: ${why}; notified`;
}

const sameMute = (a: StoredMute, b: Mute) =>
  a.kind === b.kind && a.inhibitionId === b.inhibitionId && a.source.alertId === b.source.alertId;

/**
 * Stores the mutes of a group's firing alerts and records each one that begins or ends in the
 * alert's history (from and to state firing, with `muted_by`), so an inhibited notification is
 * visible with the alert that inhibited it instead of silently missing.
 */
export async function recordMutes(
  tx: Queryable,
  orgId: string,
  groupKey: string,
  firing: readonly { fingerprint: string; notice: AlertNotice; muted_by: StoredMute | null }[],
  muted: ReadonlyMap<string, Mute>,
  now: number,
): Promise<void> {
  for (const row of firing) {
    const prev = row.muted_by;
    const next = muted.get(row.fingerprint) ?? null;
    if (!prev && !next) continue;
    if (prev && next && sameMute(prev, next)) continue;
    const stored: StoredMute | null = next
      ? { ...next, since: prev?.since ?? new Date(now).toISOString() }
      : null;
    await tx.query(
      'UPDATE alert_group_alerts SET muted_by = $4 WHERE org_id = $1 AND group_key = $2 AND fingerprint = $3',
      [orgId, groupKey, row.fingerprint, stored ? JSON.stringify(stored) : null],
    );
    // A mute moving to another source or rule is not news; beginning and ending are.
    if (prev && next) continue;
    const n = row.notice;
    const [instance] = await tx.query<{ id: string }>(
      'SELECT id FROM alert_instances WHERE rule_id = $1 AND fingerprint = $2',
      [n.ruleId, n.fingerprint],
    );
    if (!instance) continue;
    const mute = (next ?? prev) as Mute;
    const reason = next ? next.reason : await releaseReason(tx, prev as StoredMute);
    const { reason: _, ...detail } = mute;
    await tx.query(
      `INSERT INTO alert_history (id, org_id, instance_id, rule_id, rule_name, fingerprint, server, environment,
         version, operation, from_state, to_state, value, threshold, reason, at, muted_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'firing', 'firing', $11, $12, $13, $14, $15)`,
      [
        newId(),
        orgId,
        instance.id,
        n.ruleId,
        n.ruleName,
        n.fingerprint,
        n.server ?? '',
        n.environment,
        n.version,
        n.operation,
        n.value,
        n.threshold,
        reason,
        new Date(now),
        JSON.stringify({ ...detail, state: next ? 'muted' : 'released' }),
      ],
    );
  }
}
