/**
 * Tells every gateway process that a server's routing changed (a rollout step, a promotion, an
 * abort, a rollback), over Redis pub/sub, so the change is in force everywhere within a second.
 * Pub/sub is fire-and-forget: a gateway that misses a message (reconnecting) still picks the change
 * up at its next periodic refresh.
 */
import type { Redis } from 'ioredis';

export const ROUTING_CHANNEL = 'pylee:gateway:routing';

export interface RoutingChange {
  orgId: string;
  /** Server slug. */
  server: string;
}

/** Announces that `server`'s routing changed; never throws (the refresh is the safety net). */
export async function announceRoutingChange(redis: Redis, change: RoutingChange): Promise<void> {
  await redis.publish(ROUTING_CHANNEL, JSON.stringify(change)).catch(() => undefined);
}

/**
 * Calls `onChange` for every announced change, on `subscriber`, a connection of its own (a
 * subscribed ioredis connection can run no other commands). Resolves once subscribed.
 */
export async function subscribeRoutingChanges(
  subscriber: Redis,
  onChange: (change: RoutingChange) => void,
): Promise<void> {
  subscriber.on('message', (channel: string, message: string) => {
    if (channel !== ROUTING_CHANNEL) return;
    const change = parseChange(message);
    if (change) onChange(change);
  });
  await subscriber.subscribe(ROUTING_CHANNEL);
}

function parseChange(message: string): RoutingChange | undefined {
  try {
    const value = JSON.parse(message) as Partial<RoutingChange>;
    if (typeof value.orgId === 'string' && typeof value.server === 'string') {
      return { orgId: value.orgId, server: value.server };
    }
  } catch {
    // Not ours, or damaged: the periodic refresh covers it.
  }
  return undefined;
}
