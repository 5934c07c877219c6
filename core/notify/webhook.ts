import { Webhook } from 'standardwebhooks';
import type { StoredEvent } from './publisher.ts';

/**
 * The JSON a webhook receives: Standard Webhooks' `{ type, timestamp, data }` plus the delivery id
 * (also the `webhook-id` header), the event id and the routing context.
 */
export function webhookPayload(deliveryId: string, event: StoredEvent, publicUrl?: string) {
  // Alert groups carry the path per alert; deployments and verdicts in `data`.
  const alerts = Array.isArray(event.data.alerts) ? (event.data.alerts as { comparePath?: unknown }[]) : [];
  const path = event.data.comparePath ?? alerts[0]?.comparePath;
  const comparePath = typeof path === 'string' && path !== '' ? path : undefined;
  return {
    id: deliveryId,
    eventId: event.id,
    type: event.type,
    timestamp: event.occurredAt,
    server: event.server,
    environment: event.environment,
    version: event.version,
    labels: event.labels,
    summary: event.summary,
    data: event.data,
    ...(publicUrl
      ? { links: { ui: publicUrl, ...(comparePath ? { compare: `${publicUrl}${comparePath}` } : {}) } }
      : {}),
  };
}

/**
 * Standard Webhooks headers. Each secret adds a `v1,<sig>` to `webhook-signature` (space-separated),
 * so during a secret rotation receivers holding either secret verify the message.
 */
export function signedHeaders(deliveryId: string, secrets: readonly string[], body: string, at = new Date()) {
  const signature = secrets.map((secret) => new Webhook(secret).sign(deliveryId, at, body)).join(' ');
  return {
    'webhook-id': deliveryId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}
