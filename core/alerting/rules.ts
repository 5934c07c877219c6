/** Alert rules in Postgres: find, list, create, update and delete, each audited. */
import { appendAudit } from '../audit/log.ts';
import { assertServerAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { closeRuleInstances } from './instances.ts';
import {
  inputOf,
  ruleView,
  validateRule,
  type Annotations,
  type Condition,
  type DuringRollout,
  type ExecErrState,
  type NoDataState,
  type Rule,
  type RuleFields,
  type RuleInput,
  type RuleKind,
  type Severity,
} from './model.ts';

interface RuleRow {
  id: string;
  org_id: string;
  name: string;
  server: string;
  environment: string | null;
  version_selector: string;
  kind: RuleKind;
  condition: Condition;
  interval_ms: number;
  window_ms: number;
  for_ms: number;
  keep_firing_for_ms: number;
  severity: Severity;
  labels: Record<string, string>;
  annotations: Annotations;
  no_data_state: NoDataState;
  exec_err_state: ExecErrState;
  group_by: string[];
  group_wait_ms: number;
  group_interval_ms: number;
  repeat_interval_ms: number;
  during_rollout: DuringRollout;
  correlation_window_ms: number;
  enabled: boolean;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  last_evaluated_at: Date | null;
  last_eval_duration_ms: number | null;
  last_error: string | null;
  evaluations: number;
}

export function toRule(row: RuleRow): Rule {
  return {
    id: row.id,
    orgId: row.org_id,
    name: row.name,
    server: row.server,
    environment: row.environment,
    version: row.version_selector,
    kind: row.kind,
    condition: row.condition,
    intervalMs: row.interval_ms,
    windowMs: row.window_ms,
    forMs: row.for_ms,
    keepFiringForMs: row.keep_firing_for_ms,
    severity: row.severity,
    labels: row.labels,
    annotations: row.annotations,
    noDataState: row.no_data_state,
    execErrState: row.exec_err_state,
    groupBy: row.group_by,
    groupWaitMs: row.group_wait_ms,
    groupIntervalMs: row.group_interval_ms,
    repeatIntervalMs: row.repeat_interval_ms,
    duringRollout: row.during_rollout,
    correlationWindowMs: row.correlation_window_ms,
    enabled: row.enabled,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastEvaluatedAt: row.last_evaluated_at,
    lastEvalDurationMs: row.last_eval_duration_ms,
    lastError: row.last_error,
    evaluations: Number(row.evaluations),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A rule of the org by id, or undefined. `lock` takes the row lock that serialises evaluations. */
export async function findRule(
  db: Queryable,
  orgId: string | null,
  id: string,
  options: { lock?: boolean } = {},
): Promise<Rule | undefined> {
  if (!UUID.test(id)) return undefined;
  const [row] = await db.query<RuleRow>(
    `SELECT * FROM alert_rules WHERE id = $1 ${orgId ? 'AND org_id = $2' : ''} ${options.lock ? 'FOR UPDATE' : ''}`,
    orgId ? [id, orgId] : [id],
  );
  return row ? toRule(row) : undefined;
}

async function visibleRule(db: Queryable, principal: Principal, id: string, lock = false): Promise<Rule> {
  const rule = await findRule(db, principal.orgId, id, { lock });
  if (!rule || (principal.servers !== null && !principal.servers.includes(rule.server))) {
    throw new NotFoundError(
      `alert rule ${id} was not found in @${principal.orgSlug}`,
      'alert-rule-not-found',
    );
  }
  return rule;
}

export async function getRule(db: Queryable, principal: Principal, id: string): Promise<Rule> {
  return visibleRule(db, principal, id);
}

export async function listRules(
  db: Queryable,
  principal: Principal,
  filter: { server?: string | undefined; enabled?: boolean | undefined } = {},
): Promise<Rule[]> {
  const where = ['org_id = $1'];
  const params: unknown[] = [principal.orgId];
  if (filter.server !== undefined) {
    params.push(filter.server);
    where.push(`server = $${params.length}`);
  }
  if (filter.enabled !== undefined) {
    params.push(filter.enabled);
    where.push(`enabled = $${params.length}`);
  }
  if (principal.servers !== null) {
    params.push(principal.servers);
    where.push(`server = ANY($${params.length})`);
  }
  const rows = await db.query<RuleRow>(
    `SELECT * FROM alert_rules WHERE ${where.join(' AND ')} ORDER BY server, name`,
    params,
  );
  return rows.map(toRule);
}

/** Every enabled rule of every org: what the schedulers should hold. */
export async function enabledRules(
  db: Queryable,
): Promise<{ id: string; orgId: string; intervalMs: number }[]> {
  const rows = await db.query<{ id: string; org_id: string; interval_ms: number }>(
    'SELECT id, org_id, interval_ms FROM alert_rules WHERE enabled ORDER BY id',
  );
  return rows.map((r) => ({ id: r.id, orgId: r.org_id, intervalMs: r.interval_ms }));
}

const COLUMNS = `name, server, environment, version_selector, kind, condition, interval_ms, window_ms, for_ms,
  keep_firing_for_ms, severity, labels, annotations, no_data_state, exec_err_state, group_by, group_wait_ms,
  group_interval_ms, repeat_interval_ms, during_rollout, correlation_window_ms, enabled`;
const COLUMN_COUNT = COLUMNS.split(',').length;

function values(f: RuleFields): unknown[] {
  return [
    f.name,
    f.server,
    f.environment,
    f.version,
    f.kind,
    JSON.stringify(f.condition),
    f.intervalMs,
    f.windowMs,
    f.forMs,
    f.keepFiringForMs,
    f.severity,
    JSON.stringify(f.labels),
    JSON.stringify(f.annotations),
    f.noDataState,
    f.execErrState,
    JSON.stringify(f.groupBy),
    f.groupWaitMs,
    f.groupIntervalMs,
    f.repeatIntervalMs,
    f.duringRollout,
    f.correlationWindowMs,
    f.enabled,
  ];
}

async function assertNameFree(tx: Queryable, orgId: string, name: string, except?: string) {
  const [taken] = await tx.query<{ id: string }>(
    'SELECT id FROM alert_rules WHERE org_id = $1 AND name = $2',
    [orgId, name],
  );
  if (taken && taken.id !== except) {
    throw new ConflictError(
      `an alert rule named "${name}" already exists; choose another name`,
      'alert-rule-exists',
    );
  }
}

export async function createRule(db: Db, ctx: Context, input: RuleInput): Promise<Rule> {
  const fields = validateRule(input);
  assertServerAccess(ctx.principal, fields.server);
  return db.transaction(async (tx) => {
    await assertNameFree(tx, ctx.principal.orgId, fields.name);
    const id = newId();
    const [row] = await tx.query<RuleRow>(
      `INSERT INTO alert_rules (id, org_id, created_by, ${COLUMNS})
       VALUES ($1, $2, $3, ${Array.from({ length: COLUMN_COUNT }, (_, i) => `$${i + 4}`).join(', ')}) RETURNING *`,
      [id, ctx.principal.orgId, ctx.principal.tokenName, ...values(fields)],
    );
    const rule = toRule(row as RuleRow);
    await appendAudit(tx, ctx, {
      action: 'alert-rule.create',
      target: { type: 'alert-rule', id, name: rule.name },
      after: ruleView(rule),
    });
    return rule;
  });
}

/**
 * Merges `patch` into the rule and validates the result as a whole. Returns the rule before and
 * after, so callers can close the instances of a rule that was disabled.
 */
export async function updateRule(
  db: Db,
  ctx: Context,
  id: string,
  patch: Partial<RuleInput>,
): Promise<{ before: Rule; after: Rule }> {
  return db.transaction(async (tx) => {
    const before = await visibleRule(tx, ctx.principal, id, true);
    const merged = { ...inputOf(before), ...patch } as RuleInput;
    // Changing kind drops the fields only the old kind had.
    if (patch.kind && patch.kind !== before.kind) {
      for (const key of ['metric', 'threshold', 'factor', 'offset', 'baseline', 'check'] as const) {
        if (!(key in patch)) delete merged[key];
      }
    }
    const fields = validateRule(merged);
    assertServerAccess(ctx.principal, fields.server);
    await assertNameFree(tx, ctx.principal.orgId, fields.name, id);
    const [row] = await tx.query<RuleRow>(
      `UPDATE alert_rules SET (${COLUMNS}, updated_at) =
         (${Array.from({ length: COLUMN_COUNT }, (_, i) => `$${i + 2}`).join(', ')}, now())
       WHERE id = $1 RETURNING *`,
      [id, ...values(fields)],
    );
    const after = toRule(row as RuleRow);
    if (before.enabled && !after.enabled) await closeRuleInstances(tx, after, 'rule disabled');
    await appendAudit(tx, ctx, {
      action: 'alert-rule.update',
      target: { type: 'alert-rule', id, name: after.name },
      before: ruleView(before),
      after: ruleView(after),
    });
    return { before, after };
  });
}

export async function deleteRule(db: Db, ctx: Context, id: string): Promise<Rule> {
  return db.transaction(async (tx) => {
    const rule = await visibleRule(tx, ctx.principal, id, true);
    await closeRuleInstances(tx, rule, 'rule deleted');
    await tx.query('DELETE FROM alert_rules WHERE id = $1', [id]);
    await appendAudit(tx, ctx, {
      action: 'alert-rule.delete',
      target: { type: 'alert-rule', id, name: rule.name },
      before: ruleView(rule),
    });
    return rule;
  });
}
