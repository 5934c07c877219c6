import { appendAudit } from '../audit/log.ts';
import type { Context } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { validateMatchers, type LabelMatcher } from './matchers.ts';

export type SilenceState = 'pending' | 'active' | 'expired';

export interface SilenceView {
  id: string;
  matchers: LabelMatcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  createdAt: string;
  state: SilenceState;
}

interface SilenceRow {
  id: string;
  matchers: LabelMatcher[];
  starts_at: Date;
  ends_at: Date;
  created_by: string;
  comment: string;
  created_at: Date;
}

function stateOf(row: SilenceRow, now = new Date()): SilenceState {
  if (row.ends_at <= now) return 'expired';
  return row.starts_at > now ? 'pending' : 'active';
}

const toView = (row: SilenceRow): SilenceView => ({
  id: row.id,
  matchers: row.matchers,
  startsAt: row.starts_at.toISOString(),
  endsAt: row.ends_at.toISOString(),
  createdBy: row.created_by,
  comment: row.comment,
  createdAt: row.created_at.toISOString(),
  state: stateOf(row),
});

export interface SilenceInput {
  matchers: LabelMatcher[];
  startsAt?: string | undefined;
  endsAt: string;
  comment: string;
}

function parseTime(value: string, field: string): Date {
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw new BadRequestError(`${field} "${value}" is not a date-time`);
  return at;
}

/**
 * A token limited to some servers may only silence its own servers: one matcher must be
 * `server="<one of them>"`, so it cannot mute notifications about servers it cannot see.
 */
function assertSilenceScope(ctx: Context, matchers: LabelMatcher[]): void {
  const servers = ctx.principal.servers;
  if (servers === null) return;
  const ok = matchers.some((m) => m.name === 'server' && m.op === '=' && servers.includes(m.value));
  if (!ok) {
    throw new BadRequestError(
      `this token is limited to servers ${servers.join(', ')}; add a matcher server="<one of them>"`,
      'silence-out-of-scope',
    );
  }
}

export async function createSilence(db: Db, ctx: Context, input: SilenceInput): Promise<SilenceView> {
  if (input.matchers.length === 0) {
    throw new BadRequestError('a silence needs at least one matcher; one without would mute everything');
  }
  const matchers = validateMatchers(input.matchers);
  assertSilenceScope(ctx, matchers);
  const now = new Date();
  const startsAt = input.startsAt ? parseTime(input.startsAt, 'startsAt') : now;
  const endsAt = parseTime(input.endsAt, 'endsAt');
  if (endsAt <= startsAt) throw new BadRequestError('endsAt must be after startsAt');
  if (endsAt <= now) throw new BadRequestError('endsAt is in the past; the silence would never apply');
  if (input.comment.trim() === '')
    throw new BadRequestError('comment must say why notifications are silenced');
  return db.transaction(async (tx) => {
    const [row] = await tx.query<SilenceRow>(
      `INSERT INTO notification_silences (id, org_id, matchers, starts_at, ends_at, created_by, comment)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        JSON.stringify(matchers),
        startsAt,
        endsAt,
        ctx.principal.tokenName,
        input.comment,
      ],
    );
    const view = toView(row as SilenceRow);
    await appendAudit(tx, ctx, {
      action: 'silence.create',
      target: { type: 'silence', id: view.id },
      after: { matchers: view.matchers, startsAt: view.startsAt, endsAt: view.endsAt, comment: view.comment },
    });
    return view;
  });
}

export async function listSilences(
  db: Queryable,
  ctx: Context,
  filter: { state?: SilenceState | undefined } = {},
): Promise<SilenceView[]> {
  const rows = await db.query<SilenceRow>(
    'SELECT * FROM notification_silences WHERE org_id = $1 ORDER BY starts_at DESC, id DESC LIMIT 1000',
    [ctx.principal.orgId],
  );
  const views = rows.map(toView);
  return filter.state ? views.filter((v) => v.state === filter.state) : views;
}

async function findSilence(tx: Queryable, ctx: Context, id: string): Promise<SilenceRow> {
  const [row] = await tx.query<SilenceRow>(
    'SELECT * FROM notification_silences WHERE id = $1 AND org_id = $2 FOR UPDATE',
    [id, ctx.principal.orgId],
  );
  if (!row)
    throw new NotFoundError(`silence ${id} was not found in @${ctx.principal.orgSlug}`, 'silence-not-found');
  return row;
}

export async function getSilence(db: Db, ctx: Context, id: string): Promise<SilenceView> {
  return db.transaction(async (tx) => toView(await findSilence(tx, ctx, id)));
}

/** Ends a silence now (Alertmanager's "expire"); the record stays, with its end moved to now. */
export async function expireSilence(db: Db, ctx: Context, id: string): Promise<SilenceView> {
  return db.transaction(async (tx) => {
    const row = await findSilence(tx, ctx, id);
    if (stateOf(row) === 'expired')
      throw new ConflictError(`silence ${id} has already expired`, 'silence-expired');
    assertSilenceScope(ctx, row.matchers);
    const [updated] = await tx.query<SilenceRow>(
      `UPDATE notification_silences SET ends_at = now(), starts_at = LEAST(starts_at, now()), expired_at = now()
       WHERE id = $1 RETURNING *`,
      [id],
    );
    const view = toView(updated as SilenceRow);
    await appendAudit(tx, ctx, {
      action: 'silence.expire',
      target: { type: 'silence', id },
      before: { endsAt: row.ends_at.toISOString() },
      after: { endsAt: view.endsAt },
    });
    return view;
  });
}
