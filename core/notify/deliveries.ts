import { appendAudit } from '../audit/log.ts';
import type { Context } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import type { StoredEvent } from './publisher.ts';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead', 'suppressed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface DeliveryView {
  /** Also the `webhook-id` header: receivers drop duplicates by it. */
  id: string;
  channelId: string;
  channelName: string;
  eventId: string;
  eventType: string;
  summary: string;
  server: string | null;
  environment: string | null;
  version: string | null;
  status: DeliveryStatus;
  silenceId: string | null;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
}

interface DeliveryRow {
  id: string;
  org_id: string;
  channel_id: string;
  channel_name: string;
  event_id: string;
  event_type: string;
  event: StoredEvent;
  status: DeliveryStatus;
  silence_id: string | null;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
}

const toView = (row: DeliveryRow): DeliveryView => ({
  id: row.id,
  channelId: row.channel_id,
  channelName: row.channel_name,
  eventId: row.event_id,
  eventType: row.event_type,
  summary: row.event.summary,
  server: row.event.server,
  environment: row.event.environment,
  version: row.event.version,
  status: row.status,
  silenceId: row.silence_id,
  attempts: row.attempts,
  lastStatusCode: row.last_status_code,
  lastError: row.last_error,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
  nextAttemptAt: row.next_attempt_at?.toISOString() ?? null,
  deliveredAt: row.delivered_at?.toISOString() ?? null,
});

const SELECT = `SELECT d.*, c.name AS channel_name FROM notification_deliveries d
  JOIN notification_channels c ON c.id = d.channel_id`;

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  channelId?: string | undefined;
  eventId?: string | undefined;
  /** Newest first; pass the last id seen to page on. */
  before?: string | undefined;
  limit?: number | undefined;
}

/** Deliveries newest first. A token limited to some servers sees only deliveries about them. */
export async function listDeliveries(
  db: Queryable,
  ctx: Context,
  filter: DeliveryFilter = {},
): Promise<DeliveryView[]> {
  const limit = Math.min(filter.limit ?? 100, 500);
  const rows = await db.query<DeliveryRow>(
    `${SELECT}
     WHERE d.org_id = $1 AND ($2::text IS NULL OR d.status = $2) AND ($3::uuid IS NULL OR d.channel_id = $3)
       AND ($4::uuid IS NULL OR d.event_id = $4) AND ($5::uuid IS NULL OR d.id < $5)
       AND ($6::text[] IS NULL OR d.event->>'server' = ANY($6))
     ORDER BY d.id DESC LIMIT $7`,
    [
      ctx.principal.orgId,
      filter.status ?? null,
      filter.channelId ?? null,
      filter.eventId ?? null,
      filter.before ?? null,
      ctx.principal.servers,
      limit,
    ],
  );
  return rows.map(toView);
}

async function findDelivery(tx: Queryable, ctx: Context, id: string, lock = false): Promise<DeliveryRow> {
  const [row] = await tx.query<DeliveryRow>(
    `${SELECT} WHERE d.id = $1 AND d.org_id = $2${lock ? ' FOR UPDATE OF d' : ''}`,
    [id, ctx.principal.orgId],
  );
  const servers = ctx.principal.servers;
  if (!row || (servers !== null && !servers.includes(row.event.server ?? ''))) {
    throw new NotFoundError(
      `delivery ${id} was not found in @${ctx.principal.orgSlug}`,
      'delivery-not-found',
    );
  }
  return row;
}

export async function getDelivery(db: Queryable, ctx: Context, id: string): Promise<DeliveryView> {
  return toView(await findDelivery(db, ctx, id));
}

/**
 * Puts a dead (or suppressed) delivery back to pending with its attempts reset; it keeps its id, so a
 * receiver that somehow got it already can still drop it. The caller enqueues it after the commit.
 */
export async function markForRedelivery(db: Db, ctx: Context, id: string): Promise<DeliveryView> {
  return db.transaction(async (tx) => {
    const row = await findDelivery(tx, ctx, id, true);
    if (row.status === 'pending')
      throw new ConflictError(`delivery ${id} is still pending`, 'delivery-pending');
    if (row.status === 'delivered') {
      throw new ConflictError(
        `delivery ${id} was delivered at ${row.delivered_at?.toISOString()}; publish a new event to send again`,
        'delivery-delivered',
      );
    }
    const [updated] = await tx.query<DeliveryRow>(
      `UPDATE notification_deliveries SET status = 'pending', attempts = 0, last_error = NULL,
         next_attempt_at = NULL, updated_at = now() WHERE id = $1 RETURNING *, $2::text AS channel_name`,
      [id, row.channel_name],
    );
    await appendAudit(tx, ctx, {
      action: 'delivery.redeliver',
      target: { type: 'delivery', id },
      before: { status: row.status, attempts: row.attempts },
      after: { status: 'pending' },
    });
    return toView(updated as DeliveryRow);
  });
}

export function parseDeliveryStatus(value: string | undefined): DeliveryStatus | undefined {
  if (value === undefined) return undefined;
  if (!(DELIVERY_STATUSES as readonly string[]).includes(value)) {
    throw new BadRequestError(`status must be one of ${DELIVERY_STATUSES.join(', ')}`);
  }
  return value as DeliveryStatus;
}

/** The worker's view of one delivery. */
export interface DeliveryWork {
  id: string;
  orgId: string;
  channelId: string;
  status: DeliveryStatus;
  attempts: number;
  event: StoredEvent;
}

export async function loadDeliveryWork(db: Queryable, id: string): Promise<DeliveryWork | undefined> {
  const [row] = await db.query<{
    id: string;
    org_id: string;
    channel_id: string;
    status: DeliveryStatus;
    attempts: number;
    event: StoredEvent;
  }>('SELECT id, org_id, channel_id, status, attempts, event FROM notification_deliveries WHERE id = $1', [
    id,
  ]);
  if (!row) return undefined;
  return {
    id: row.id,
    orgId: row.org_id,
    channelId: row.channel_id,
    status: row.status,
    attempts: row.attempts,
    event: row.event,
  };
}

export async function markDelivered(db: Queryable, id: string, statusCode: number): Promise<void> {
  await db.query(
    `UPDATE notification_deliveries SET status = 'delivered', attempts = attempts + 1, last_status_code = $2,
       last_error = NULL, next_attempt_at = NULL, delivered_at = now(), updated_at = now()
     WHERE id = $1 AND status = 'pending'`,
    [id, statusCode],
  );
}

/**
 * Records a failed attempt; the delivery turns `dead` when it was the last one allowed. Returns the
 * attempts made and whether it is dead (undefined when the delivery is no longer pending).
 */
export async function markAttemptFailed(
  db: Queryable,
  id: string,
  failure: { statusCode: number | null; error: string; nextAttemptAt: Date; maxAttempts: number },
): Promise<{ attempts: number; dead: boolean } | undefined> {
  const [row] = await db.query<{ attempts: number; status: DeliveryStatus }>(
    `UPDATE notification_deliveries SET attempts = attempts + 1, last_status_code = $2, last_error = $3,
       status = CASE WHEN attempts + 1 >= $5 THEN 'dead' ELSE 'pending' END,
       next_attempt_at = CASE WHEN attempts + 1 >= $5 THEN NULL ELSE $4::timestamptz END, updated_at = now()
     WHERE id = $1 AND status = 'pending' RETURNING attempts, status`,
    [id, failure.statusCode, failure.error.slice(0, 1000), failure.nextAttemptAt, failure.maxAttempts],
  );
  return row ? { attempts: row.attempts, dead: row.status === 'dead' } : undefined;
}

/** Pending deliveries not touched for `olderThanMs`: candidates for re-enqueueing. */
export async function stalePendingDeliveries(
  db: Queryable,
  olderThanMs: number,
  limit = 1000,
): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM notification_deliveries
      WHERE status = 'pending' AND updated_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2`,
    [olderThanMs / 1000, limit],
  );
  return rows.map((r) => r.id);
}
