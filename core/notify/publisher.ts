import type { Queue } from 'bullmq';
import type { Db, Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import type { RedisStore } from '../queue/redis.ts';
import type { EventPublisher, PyleeEvent } from './events.ts';
import { eventLabels, eventTypeMatches, matchesAll, type LabelMatcher } from './matchers.ts';
import { enqueueOrLeaveToSweeper, openNotifyQueue, type DeliverJobData } from './queue.ts';

/** What a delivery row keeps of the event: everything a renderer needs, with `occurredAt` as ISO text. */
export interface StoredEvent {
  id: string;
  type: string;
  server: string | null;
  environment: string | null;
  version: string | null;
  labels: Record<string, string>;
  summary: string;
  data: Record<string, unknown>;
  occurredAt: string;
}

export interface PublishResult {
  eventId: string;
  /** Deliveries that will be sent. */
  deliveries: string[];
  /** Deliveries recorded as suppressed by a silence. */
  suppressed: string[];
}

/**
 * Records an event's deliveries in one transaction — one row per channel of the org whose event
 * patterns and label matchers match; rows matching an active silence are stored as `suppressed` —
 * then enqueues the pending ones. Once the transaction commits nothing is lost: the sweeper
 * enqueues any pending delivery Redis does not hold.
 */
export async function recordEvent(
  tx: Queryable,
  event: PyleeEvent,
  /** Only this channel, ignoring its routing and silences: `POST /channels/:id/test`. */
  only?: { channelId: string },
): Promise<{ stored: StoredEvent; pending: string[]; suppressed: string[] }> {
  const stored: StoredEvent = {
    id: newId(),
    type: event.type,
    server: event.server ?? null,
    environment: event.environment ?? null,
    version: event.version ?? null,
    labels: { ...(event.labels ?? {}) },
    summary: event.summary,
    data: event.data,
    occurredAt: (event.occurredAt ?? new Date()).toISOString(),
  };
  const labels = eventLabels(event);
  const channels = await tx.query<{ id: string; events: string[]; matchers: LabelMatcher[] }>(
    'SELECT id, events, matchers FROM notification_channels WHERE org_id = $1 ORDER BY created_at',
    [event.orgId],
  );
  const routed = only
    ? channels.filter((c) => c.id === only.channelId)
    : channels.filter((c) => eventTypeMatches(c.events, event.type) && matchesAll(c.matchers, labels));
  if (routed.length === 0) return { stored, pending: [], suppressed: [] };
  const silences = only
    ? []
    : await tx.query<{ id: string; matchers: LabelMatcher[] }>(
        `SELECT id, matchers FROM notification_silences
      WHERE org_id = $1 AND starts_at <= now() AND ends_at > now() ORDER BY starts_at`,
        [event.orgId],
      );
  const silence = silences.find((s) => matchesAll(s.matchers, labels));
  const pending: string[] = [];
  const suppressed: string[] = [];
  for (const channel of routed) {
    const id = newId();
    (silence ? suppressed : pending).push(id);
    await tx.query(
      `INSERT INTO notification_deliveries (id, org_id, channel_id, event_id, event_type, event, status, silence_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        id,
        event.orgId,
        channel.id,
        stored.id,
        event.type,
        JSON.stringify(stored),
        silence ? 'suppressed' : 'pending',
        silence?.id ?? null,
      ],
    );
  }
  return { stored, pending, suppressed };
}

export interface NotifyPublisher extends EventPublisher {
  /** Like {@link EventPublisher.publish}, and says what became of the event. */
  publishDetailed(event: PyleeEvent): Promise<PublishResult>;
  /**
   * Publishes inside a caller's transaction (so the event commits or rolls back with the change it
   * reports); call the returned `enqueue` after the transaction commits. Forgetting it only delays the
   * deliveries until the sweeper runs.
   */
  publishIn(tx: Queryable, event: PyleeEvent): Promise<PublishResult & { enqueue(): Promise<void> }>;
}

export function createEventPublisher(deps: { db: Db; redis: RedisStore; logger: Logger }): NotifyPublisher {
  const logger = deps.logger.child({ component: 'notify' });
  let queue: Queue<DeliverJobData> | undefined;
  const enqueue = (ids: string[]) =>
    enqueueOrLeaveToSweeper((queue ??= openNotifyQueue(deps.redis, logger)), ids, logger);

  const publishIn: NotifyPublisher['publishIn'] = async (tx, event) => {
    const { stored, pending, suppressed } = await recordEvent(tx, event);
    if (suppressed.length > 0) {
      logger.info({ event: event.type, eventId: stored.id, suppressed: suppressed.length }, 'event silenced');
    }
    return { eventId: stored.id, deliveries: pending, suppressed, enqueue: () => enqueue(pending) };
  };

  const publishDetailed = async (event: PyleeEvent): Promise<PublishResult> => {
    const result = await deps.db.transaction((tx) => publishIn(tx, event));
    await result.enqueue();
    return { eventId: result.eventId, deliveries: result.deliveries, suppressed: result.suppressed };
  };

  return {
    publishDetailed,
    publishIn,
    async publish(event) {
      await publishDetailed(event);
    },
  };
}
