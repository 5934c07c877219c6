import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import type { InstanceRow } from './instances.ts';
import { acknowledgeInGroups } from './groups.ts';
import { ALERT_STATES, type AlertState } from './state.ts';

/** An alert instance as the API shows it. */
export function alertView(row: InstanceRow & { rule_name: string; severity: string; annotations: unknown }) {
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return {
    id: row.id,
    fingerprint: row.fingerprint,
    ruleId: row.rule_id,
    ruleName: row.rule_name,
    severity: row.severity,
    state: row.state,
    server: row.server,
    environment: row.environment,
    version: row.version,
    operation: row.operation,
    labels: row.labels,
    annotations: row.annotations as Record<string, string>,
    value: row.value,
    threshold: row.threshold,
    baselineVersion: row.baseline_version,
    activeAt: iso(row.active_at),
    firedAt: iso(row.fired_at),
    resolvedAt: iso(row.resolved_at),
    lastEvaluatedAt: iso(row.last_evaluated_at),
    stateChangedAt: row.state_changed_at.toISOString(),
    lastError: row.last_error,
    acknowledgement: row.acknowledged_at
      ? { at: row.acknowledged_at.toISOString(), by: row.acknowledged_by as string, comment: row.ack_comment }
      : null,
    /** The rollout its version is the candidate of, while it is. */
    rollout: row.rollout,
    /** Rollout steps and configuration changes shortly before it began. */
    correlation: row.correlation ?? [],
    /** Notifications kept back by this deployment's rollout (`duringRollout: hold | inhibit`). */
    heldBy: row.held_by ? { deploymentId: row.held_by, since: iso(row.held_since) } : null,
  };
}
export type AlertView = ReturnType<typeof alertView>;

const SELECT = `SELECT i.*, r.name AS rule_name, r.severity, r.annotations
  FROM alert_instances i JOIN alert_rules r ON r.id = i.rule_id`;

export interface AlertFilter {
  state?: string | undefined;
  server?: string | undefined;
  environment?: string | undefined;
  version?: string | undefined;
  rule?: string | undefined;
}

function serverScope(principal: Principal, where: string[], params: unknown[], column: string) {
  if (principal.servers !== null) {
    params.push(principal.servers);
    where.push(`${column} = ANY($${params.length})`);
  }
}

/**
 * Alert instances of the org, firing first. Without `state`, every state but inactive; `state`
 * may list several, comma-separated (`firing,pending`).
 */
export async function listAlerts(
  db: Queryable,
  principal: Principal,
  filter: AlertFilter = {},
): Promise<AlertView[]> {
  const where = ['i.org_id = $1'];
  const params: unknown[] = [principal.orgId];
  const add = (clause: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(clause(`$${params.length}`));
  };
  const states = filter.state
    ? filter.state.split(',').map((s) => s.trim())
    : ALERT_STATES.filter((s) => s !== 'inactive');
  for (const s of states) {
    if (!(ALERT_STATES as readonly string[]).includes(s)) {
      throw new BadRequestError(
        `state=${s} is not an alert state; use ${ALERT_STATES.join(', ')}`,
        'invalid-alert-state',
      );
    }
  }
  add((p) => `i.state = ANY(${p})`, states);
  if (filter.server) add((p) => `i.server = ${p}`, filter.server);
  if (filter.environment) add((p) => `i.environment = ${p}`, filter.environment);
  if (filter.version) add((p) => `i.version = ${p}`, filter.version);
  if (filter.rule) add((p) => `(r.name = ${p} OR r.id::text = ${p})`, filter.rule);
  serverScope(principal, where, params, 'i.server');
  const rows = await db.query<Parameters<typeof alertView>[0]>(
    `${SELECT} WHERE ${where.join(' AND ')}
     ORDER BY CASE i.state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 WHEN 'error' THEN 2 WHEN 'nodata' THEN 3 ELSE 4 END,
       i.state_changed_at DESC LIMIT 1000`,
    params,
  );
  return rows.map(alertView);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function findAlert(db: Queryable, principal: Principal, id: string, lock = false) {
  const missing = new NotFoundError(`alert ${id} was not found in @${principal.orgSlug}`, 'alert-not-found');
  if (!UUID.test(id)) throw missing;
  const [row] = await db.query<Parameters<typeof alertView>[0]>(
    `${SELECT} WHERE i.id = $1 AND i.org_id = $2 ${lock ? 'FOR UPDATE OF i' : ''}`,
    [id, principal.orgId],
  );
  if (!row || (principal.servers !== null && !principal.servers.includes(row.server))) throw missing;
  return row;
}

export async function getAlert(db: Queryable, principal: Principal, id: string) {
  const row = await findAlert(db, principal, id);
  const history = await alertHistory(db, principal, { instance: id, limit: 100 });
  return { ...alertView(row), history: history.events };
}

/**
 * Records who acknowledged a firing or pending alert, when and why. An acknowledged alert is not
 * re-sent at repeatInterval; the acknowledgement ends when the alert stops firing.
 */
export async function acknowledgeAlert(db: Db, ctx: Context, id: string, comment: string | null) {
  return db.transaction(async (tx) => {
    const row = await findAlert(tx, ctx.principal, id, true);
    if (row.state !== 'firing' && row.state !== 'pending') {
      throw new ConflictError(
        `alert ${id} is ${row.state}; only firing or pending alerts can be acknowledged`,
        'alert-not-active',
      );
    }
    const now = new Date();
    await tx.query(
      `UPDATE alert_instances SET acknowledged_at = $2, acknowledged_by = $3, ack_comment = $4,
         row_version = row_version + 1 WHERE id = $1`,
      [id, now, ctx.principal.tokenName, comment],
    );
    await acknowledgeInGroups(tx, ctx.principal.orgId, row.fingerprint);
    await appendAudit(tx, ctx, {
      action: 'alert.acknowledge',
      target: { type: 'alert', id, name: `${row.rule_name} ${row.fingerprint}` },
      after: { comment, state: row.state },
    });
    const updated = await findAlert(tx, ctx.principal, id);
    return alertView(updated);
  });
}

export interface HistoryFilter {
  server?: string | undefined;
  environment?: string | undefined;
  version?: string | undefined;
  rule?: string | undefined;
  instance?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  limit?: number | undefined;
}

interface HistoryRow {
  id: string;
  instance_id: string;
  rule_id: string;
  rule_name: string;
  fingerprint: string;
  server: string;
  environment: string | null;
  version: string | null;
  operation: string | null;
  from_state: AlertState;
  to_state: AlertState;
  value: number | null;
  threshold: number | null;
  reason: string;
  at: Date;
  muted_by: Record<string, unknown> | null;
}

function time(name: string, value: string): Date {
  const t = Date.parse(value);
  if (Number.isNaN(t)) {
    throw new BadRequestError(
      `${name}=${value} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)`,
      'invalid-time',
    );
  }
  return new Date(t);
}

/** State changes, newest first: per server, per version, per rule or per alert. Kept after a rule is deleted. */
export async function alertHistory(db: Queryable, principal: Principal, filter: HistoryFilter = {}) {
  const where = ['org_id = $1'];
  const params: unknown[] = [principal.orgId];
  const add = (clause: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(clause(`$${params.length}`));
  };
  if (filter.server) add((p) => `server = ${p}`, filter.server);
  if (filter.environment) add((p) => `environment = ${p}`, filter.environment);
  if (filter.version) add((p) => `version = ${p}`, filter.version);
  if (filter.rule) add((p) => `(rule_name = ${p} OR rule_id::text = ${p})`, filter.rule);
  if (filter.instance) add((p) => `instance_id::text = ${p}`, filter.instance);
  if (filter.since) add((p) => `at >= ${p}`, time('since', filter.since));
  if (filter.until) add((p) => `at < ${p}`, time('until', filter.until));
  serverScope(principal, where, params, 'server');
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
  const rows = await db.query<HistoryRow>(
    `SELECT * FROM alert_history WHERE ${where.join(' AND ')} ORDER BY at DESC, id DESC LIMIT ${limit}`,
    params,
  );
  return {
    events: rows.map((r) => ({
      id: r.id,
      alertId: r.instance_id,
      ruleId: r.rule_id,
      ruleName: r.rule_name,
      fingerprint: r.fingerprint,
      server: r.server,
      environment: r.environment,
      version: r.version,
      operation: r.operation,
      from: r.from_state,
      to: r.to_state,
      value: r.value,
      threshold: r.threshold,
      reason: r.reason,
      at: r.at.toISOString(),
      /** On the rows where its notifications began or stopped being kept back: by what (e.g. the inhibiting alert). */
      mutedBy: r.muted_by,
    })),
  };
}
