import type { Context } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { BadRequestError } from '../errors.ts';
import { newId } from '../ids.ts';
import { checkChain, GENESIS_HASH, hashEvent, type ChainBreak, type ChainedEvent } from './chain.ts';

export interface AuditTarget {
  type: string;
  id?: string | null;
  name?: string | null;
}

export interface AuditEntry {
  action: string;
  target: AuditTarget;
  before?: Record<string, unknown> | null;
  after?: Record<string, unknown> | null;
}

export interface AuditEvent {
  id: string;
  seq: number;
  at: string;
  actor: { type: string; id: string | null; name: string };
  action: string;
  target: { type: string; id: string | null; name: string | null };
  before: unknown;
  after: unknown;
  requestId: string | null;
  clientAddress: string | null;
  hash: string;
  prevHash: string;
}

const SECRET_KEY = /secret|token|password|passphrase|private.?key|^key$|credential|authorization/i;

/** Summaries never hold secret values, whatever a caller passes: such keys are kept, values masked. */
export function redactSummary(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSummary);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      SECRET_KEY.test(k) && v !== null && v !== undefined ? '[redacted]' : redactSummary(v),
    ]),
  );
}

/**
 * Appends one event to the org's hash chain. Call it with the transaction that makes the change,
 * so the change and its record commit together or not at all.
 */
export async function appendAudit(
  tx: Queryable,
  ctx: Context,
  entry: AuditEntry,
  orgId = ctx.principal.orgId,
) {
  // Locking the head row serialises appends per org; the insert creates it on an org's first event.
  await tx.query(
    'INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (org_id) DO NOTHING',
    [orgId, GENESIS_HASH],
  );
  const [head] = await tx.query<{ seq: number; hash: string }>(
    'SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE',
    [orgId],
  );
  if (!head) throw new Error(`audit head of org ${orgId} is missing`);
  const { principal } = ctx;
  const event: ChainedEvent = {
    id: newId(),
    orgId,
    seq: head.seq + 1,
    at: new Date().toISOString(),
    actorType: principal.tokenId ? 'token' : 'system',
    actorId: principal.tokenId,
    actorName: principal.tokenName,
    action: entry.action,
    targetType: entry.target.type,
    targetId: entry.target.id ?? null,
    targetName: entry.target.name ?? null,
    before: entry.before ? redactSummary(entry.before) : null,
    after: entry.after ? redactSummary(entry.after) : null,
    requestId: ctx.requestId ?? null,
    clientAddress: ctx.clientAddress ?? null,
    prevHash: head.hash,
  };
  const hash = hashEvent(event);
  await tx.query(
    `INSERT INTO audit_events (id, org_id, seq, at, actor_type, actor_id, actor_name, action, target_type,
       target_id, target_name, before, after, request_id, client_address, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
    [
      event.id,
      orgId,
      event.seq,
      event.at,
      event.actorType,
      event.actorId,
      event.actorName,
      event.action,
      event.targetType,
      event.targetId,
      event.targetName,
      event.before === null ? null : JSON.stringify(event.before),
      event.after === null ? null : JSON.stringify(event.after),
      event.requestId,
      event.clientAddress,
      event.prevHash,
      hash,
    ],
  );
  await tx.query('UPDATE audit_heads SET seq = $2, hash = $3 WHERE org_id = $1', [orgId, event.seq, hash]);
}

/** A row of `audit_events` as the drivers return it. */
export interface AuditRow {
  id: string;
  org_id: string;
  seq: number;
  at: Date;
  actor_type: string;
  actor_id: string | null;
  actor_name: string;
  action: string;
  target_type: string;
  target_id: string | null;
  target_name: string | null;
  before: unknown;
  after: unknown;
  request_id: string | null;
  client_address: string | null;
  prev_hash: string;
  hash: string;
}

/** The fields of a row that its hash covers. */
export function toChained(row: AuditRow): ChainedEvent {
  return {
    id: row.id,
    orgId: row.org_id,
    seq: row.seq,
    at: row.at.toISOString(),
    actorType: row.actor_type,
    actorId: row.actor_id,
    actorName: row.actor_name,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    targetName: row.target_name,
    before: row.before,
    after: row.after,
    requestId: row.request_id,
    clientAddress: row.client_address,
    prevHash: row.prev_hash,
  };
}

function toEvent(row: AuditRow): AuditEvent {
  return {
    id: row.id,
    seq: row.seq,
    at: row.at.toISOString(),
    actor: { type: row.actor_type, id: row.actor_id, name: row.actor_name },
    action: row.action,
    target: { type: row.target_type, id: row.target_id, name: row.target_name },
    before: row.before,
    after: row.after,
    requestId: row.request_id,
    clientAddress: row.client_address,
    hash: row.hash,
    prevHash: row.prev_hash,
  };
}

export interface AuditFilter {
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** Events older than this sequence number (the previous page's `nextCursor`). */
  before?: number | undefined;
  limit?: number | undefined;
}

/**
 * Newest first. `actor` matches the actor's name or id; `action` matches exactly or, ending in
 * `.*`, by prefix (`token.*`); `target` matches the target's type, id or name.
 */
export async function listAudit(db: Queryable, orgId: string, filter: AuditFilter = {}) {
  const where = ['org_id = $1'];
  const params: unknown[] = [orgId];
  const add = (clause: (n: string) => string, value: unknown) => {
    params.push(value);
    where.push(clause(`$${params.length}`));
  };
  if (filter.actor) add((p) => `(actor_name = ${p} OR actor_id = ${p})`, filter.actor);
  if (filter.action?.endsWith('.*')) add((p) => `starts_with(action, ${p})`, filter.action.slice(0, -1));
  else if (filter.action) add((p) => `action = ${p}`, filter.action);
  if (filter.target)
    add((p) => `(target_type = ${p} OR target_id = ${p} OR target_name = ${p})`, filter.target);
  if (filter.since) add((p) => `at >= ${p}`, timestamp('since', filter.since));
  if (filter.until) add((p) => `at < ${p}`, timestamp('until', filter.until));
  if (filter.before !== undefined) add((p) => `seq < ${p}`, filter.before);
  if (filter.before !== undefined && !Number.isSafeInteger(filter.before)) {
    throw new BadRequestError(`cursor ${filter.before} is not a nextCursor value`, 'invalid-cursor');
  }
  const limit = Number.isSafeInteger(filter.limit) ? Math.min(Math.max(filter.limit as number, 1), 500) : 50;
  const rows = await db.query<AuditRow>(
    `SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ${limit + 1}`,
    params,
  );
  const page = rows.slice(0, limit).map(toEvent);
  return { events: page, nextCursor: rows.length > limit ? String(page.at(-1)?.seq) : null };
}

function timestamp(name: string, value: string): string {
  if (Number.isNaN(Date.parse(value))) {
    throw new BadRequestError(
      `${name}=${value} is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)`,
      'invalid-time',
    );
  }
  return new Date(value).toISOString();
}

export interface ChainReport {
  ok: boolean;
  checked: number;
  firstBad: ChainBreak | null;
}

/** Recomputes the org's whole chain, page by page, and names the first event that does not fit. */
export async function verifyAuditChain(db: Queryable, orgId: string, pageSize = 1000): Promise<ChainReport> {
  let state = { seq: 0, hash: GENESIS_HASH };
  let lastId: string | null = null;
  let checked = 0;
  for (;;) {
    const rows = await db.query<AuditRow>(
      'SELECT * FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [orgId, state.seq, pageSize],
    );
    if (rows.length === 0) break;
    const result = checkChain(
      rows.map((r) => ({ ...toChained(r), hash: r.hash })),
      state,
    );
    if ('break' in result)
      return { ok: false, checked: checked + (result.break.seq - state.seq - 1), firstBad: result.break };
    checked += rows.length;
    state = result;
    lastId = rows.at(-1)?.id ?? null;
  }
  const [head] = await db.query<{ seq: number; hash: string }>(
    'SELECT seq, hash FROM audit_heads WHERE org_id = $1',
    [orgId],
  );
  if (head && head.seq > state.seq) {
    return {
      ok: false,
      checked,
      firstBad: { seq: state.seq + 1, id: null, reason: `events ${state.seq + 1}..${head.seq} are missing` },
    };
  }
  if (head && head.hash !== state.hash) {
    const reason = 'the newest event does not match the chain head (changed after it was written)';
    return { ok: false, checked: Math.max(checked - 1, 0), firstBad: { seq: state.seq, id: lastId, reason } };
  }
  return { ok: true, checked, firstBad: null };
}
