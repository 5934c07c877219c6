import { appendAudit } from '../audit/log.ts';
import type { Context } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { matchesAll, validateMatchers, type LabelMatcher } from '../notify/matchers.ts';

/**
 * Inhibition rules, Alertmanager's `inhibit_rules`: while an alert matching `sourceMatchers` fires,
 * alerts matching `targetMatchers` whose `equal` labels have the source's values are inhibited —
 * their notifications are kept back (and recorded in their history) until nothing inhibits them.
 */
export interface InhibitionView {
  id: string;
  name: string | null;
  sourceMatchers: LabelMatcher[];
  targetMatchers: LabelMatcher[];
  equal: string[];
  comment: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

/** A matcher as a request gives it: the operator is checked with the rest. */
export type MatcherInput = Omit<LabelMatcher, 'op'> & { op: string };

export interface InhibitionInput {
  name?: string | null | undefined;
  sourceMatchers: MatcherInput[];
  targetMatchers: MatcherInput[];
  equal?: string[] | undefined;
  comment?: string | null | undefined;
}

/** What {@link inhibitedBy} needs of a rule. */
export type InhibitionRule = Pick<
  InhibitionView,
  'id' | 'name' | 'sourceMatchers' | 'targetMatchers' | 'equal'
>;

/** A firing alert that may inhibit others. */
export interface SourceAlert {
  alertId: string;
  fingerprint: string;
  labels: Record<string, string>;
}

export interface Inhibition {
  rule: Pick<InhibitionRule, 'id' | 'name'>;
  source: SourceAlert;
}

/**
 * The first rule and firing source alert that inhibit an alert with `labels`, or null. As
 * Alertmanager's inhibitor: the target matchers must hold for `labels`; a source must match the
 * source matchers and have the same value of every `equal` label (a label missing on both sides is
 * equal); when `labels` also match the source matchers, sources that match the target matchers too
 * are disregarded, so an alert matching both sides never inhibits itself nor one of its own kind.
 */
export function inhibitedBy(
  rules: readonly InhibitionRule[],
  sources: readonly SourceAlert[],
  labels: Record<string, string>,
): Inhibition | null {
  for (const rule of rules) {
    if (!matchesAll(rule.targetMatchers, labels)) continue;
    const twoSided = matchesAll(rule.sourceMatchers, labels);
    for (const source of sources) {
      if (!matchesAll(rule.sourceMatchers, source.labels)) continue;
      if (!rule.equal.every((name) => (source.labels[name] ?? '') === (labels[name] ?? ''))) continue;
      if (twoSided && matchesAll(rule.targetMatchers, source.labels)) continue;
      return { rule: { id: rule.id, name: rule.name }, source };
    }
  }
  return null;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_.]*$/;
const MAX_MATCHERS = 20;

/** Checks and normalises a rule: 400s name the field and the matcher (`sourceMatchers[1].value …`). */
export function validateInhibition(input: InhibitionInput) {
  const side = (field: 'sourceMatchers' | 'targetMatchers', matchers: MatcherInput[]) => {
    if (matchers.length === 0) {
      throw new BadRequestError(
        field === 'sourceMatchers'
          ? 'sourceMatchers must list at least one matcher; without one every firing alert would inhibit'
          : 'targetMatchers must list at least one matcher; without one every alert could be inhibited',
        'invalid-inhibition',
      );
    }
    if (matchers.length > MAX_MATCHERS) {
      throw new BadRequestError(`${field} lists more than ${MAX_MATCHERS} matchers`, 'invalid-inhibition');
    }
    try {
      return validateMatchers(matchers as LabelMatcher[], field);
    } catch (error) {
      throw new BadRequestError((error as Error).message, 'invalid-matcher');
    }
  };
  const sourceMatchers = side('sourceMatchers', input.sourceMatchers);
  const targetMatchers = side('targetMatchers', input.targetMatchers);
  const equal = input.equal ?? [];
  for (const [i, name] of equal.entries()) {
    if (!LABEL_NAME.test(name)) {
      throw new BadRequestError(
        `equal[${i}] "${name}" is not a label name (letters, digits, _ and ., not starting with a digit)`,
        'invalid-inhibition',
      );
    }
  }
  const name = input.name?.trim() || null;
  const comment = input.comment?.trim() || null;
  return { name, sourceMatchers, targetMatchers, equal: [...new Set(equal)], comment };
}

/**
 * A token limited to some servers may only inhibit alerts of its own servers: one target matcher
 * must be `server="<one of them>"` (as for silences).
 */
function assertScope(ctx: Context, targetMatchers: LabelMatcher[]): void {
  const servers = ctx.principal.servers;
  if (servers === null) return;
  if (targetMatchers.some((m) => m.name === 'server' && m.op === '=' && servers.includes(m.value))) return;
  throw new BadRequestError(
    `this token is limited to servers ${servers.join(', ')}; add a target matcher server="<one of them>"`,
    'inhibition-out-of-scope',
  );
}

interface InhibitionRow {
  id: string;
  name: string | null;
  source_matchers: LabelMatcher[];
  target_matchers: LabelMatcher[];
  equal_labels: string[];
  comment: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

const toView = (row: InhibitionRow): InhibitionView => ({
  id: row.id,
  name: row.name,
  sourceMatchers: row.source_matchers,
  targetMatchers: row.target_matchers,
  equal: row.equal_labels,
  comment: row.comment,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

const summary = (v: ReturnType<typeof validateInhibition>) => ({
  name: v.name,
  sourceMatchers: v.sourceMatchers,
  targetMatchers: v.targetMatchers,
  equal: v.equal,
  comment: v.comment,
});

const UNIQUE_VIOLATION = '23505';

async function nameTaken<T>(name: string | null, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
      throw new ConflictError(`an inhibition rule named "${name}" already exists`, 'inhibition-name-taken');
    }
    throw error;
  }
}

export async function createInhibition(
  db: Db,
  ctx: Context,
  input: InhibitionInput,
): Promise<InhibitionView> {
  const valid = validateInhibition(input);
  assertScope(ctx, valid.targetMatchers);
  return nameTaken(valid.name, () =>
    db.transaction(async (tx) => {
      const [row] = await tx.query<InhibitionRow>(
        `INSERT INTO alert_inhibition_rules (id, org_id, name, source_matchers, target_matchers, equal_labels,
           comment, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        [
          newId(),
          ctx.principal.orgId,
          valid.name,
          JSON.stringify(valid.sourceMatchers),
          JSON.stringify(valid.targetMatchers),
          valid.equal,
          valid.comment,
          ctx.principal.tokenName,
        ],
      );
      const view = toView(row as InhibitionRow);
      await appendAudit(tx, ctx, {
        action: 'inhibition.create',
        target: { type: 'inhibition', id: view.id, name: view.name },
        after: summary(valid),
      });
      return view;
    }),
  );
}

/** The org's inhibition rules, oldest first (the order they are applied in). */
export async function listInhibitions(db: Queryable, ctx: Context): Promise<InhibitionView[]> {
  const rows = await db.query<InhibitionRow>(
    'SELECT * FROM alert_inhibition_rules WHERE org_id = $1 ORDER BY created_at, id LIMIT 1000',
    [ctx.principal.orgId],
  );
  return rows.map(toView);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function findInhibition(tx: Queryable, ctx: Context, id: string, lock = false): Promise<InhibitionRow> {
  const [row] = UUID.test(id)
    ? await tx.query<InhibitionRow>(
        `SELECT * FROM alert_inhibition_rules WHERE id = $1 AND org_id = $2 ${lock ? 'FOR UPDATE' : ''}`,
        [id, ctx.principal.orgId],
      )
    : [];
  if (!row) {
    throw new NotFoundError(
      `inhibition rule ${id} was not found in @${ctx.principal.orgSlug}`,
      'inhibition-not-found',
    );
  }
  return row;
}

export async function getInhibition(db: Queryable, ctx: Context, id: string): Promise<InhibitionView> {
  return toView(await findInhibition(db, ctx, id));
}

/** Replaces a rule's matchers, `equal`, name and comment (PUT). */
export async function replaceInhibition(
  db: Db,
  ctx: Context,
  id: string,
  input: InhibitionInput,
): Promise<InhibitionView> {
  const valid = validateInhibition(input);
  assertScope(ctx, valid.targetMatchers);
  return nameTaken(valid.name, () =>
    db.transaction(async (tx) => {
      const before = await findInhibition(tx, ctx, id, true);
      assertScope(ctx, before.target_matchers);
      const [row] = await tx.query<InhibitionRow>(
        `UPDATE alert_inhibition_rules SET name = $2, source_matchers = $3, target_matchers = $4, equal_labels = $5,
           comment = $6, updated_at = now()
         WHERE id = $1 RETURNING *`,
        [
          id,
          valid.name,
          JSON.stringify(valid.sourceMatchers),
          JSON.stringify(valid.targetMatchers),
          valid.equal,
          valid.comment,
        ],
      );
      const view = toView(row as InhibitionRow);
      const was = toView(before);
      await appendAudit(tx, ctx, {
        action: 'inhibition.update',
        target: { type: 'inhibition', id, name: view.name },
        before: summary(was),
        after: summary(valid),
      });
      return view;
    }),
  );
}

/**
 * Deletes a rule. The alerts it held are released at their group's next look (within one
 * group_interval), which records the release in their history.
 */
export async function deleteInhibition(db: Db, ctx: Context, id: string): Promise<InhibitionView> {
  return db.transaction(async (tx) => {
    const row = await findInhibition(tx, ctx, id, true);
    assertScope(ctx, row.target_matchers);
    await tx.query('DELETE FROM alert_inhibition_rules WHERE id = $1', [id]);
    await appendAudit(tx, ctx, {
      action: 'inhibition.delete',
      target: { type: 'inhibition', id, name: row.name },
      before: summary(toView(row)),
    });
    return toView(row);
  });
}

/** The org's rules in the order they apply, for evaluation at notification time. */
export async function inhibitionRules(tx: Queryable, orgId: string): Promise<InhibitionRule[]> {
  const rows = await tx.query<InhibitionRow>(
    'SELECT * FROM alert_inhibition_rules WHERE org_id = $1 ORDER BY created_at, id',
    [orgId],
  );
  return rows.map(toView);
}

/** The org's firing alerts, the candidates to inhibit others. */
export async function firingSources(tx: Queryable, orgId: string): Promise<SourceAlert[]> {
  const rows = await tx.query<{ id: string; fingerprint: string; labels: Record<string, string> }>(
    `SELECT id, fingerprint, labels FROM alert_instances WHERE org_id = $1 AND state = 'firing'
      ORDER BY fired_at, id`,
    [orgId],
  );
  return rows.map((r) => ({ alertId: r.id, fingerprint: r.fingerprint, labels: r.labels }));
}
