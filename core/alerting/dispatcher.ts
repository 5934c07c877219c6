import type { Db } from '../db/client.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher } from '../notify/events.ts';
import { flushDueGroups, publishPending } from './groups.ts';

export interface AlertDispatcher {
  /** Runs a pass now (or right after the current one), e.g. when an evaluation made a group due. */
  kick(at?: number | null): void;
  /** One pass: flush due groups, publish the outbox. Resolves with what it published. */
  runOnce(now?: number): Promise<{ flushed: number; published: number }>;
  close(): Promise<void>;
}

/**
 * Sends due notification groups. Every alerts process runs one; they share the groups through
 * Postgres (SKIP LOCKED claims), so running several neither loses nor doubles a notification.
 * It polls every `tickMs` and runs early when kicked, so group timers are kept to about a tick.
 */
export function startAlertDispatcher(deps: {
  db: Db;
  publisher: EventPublisher;
  logger: Logger;
  /** @defaultValue 500 */
  tickMs?: number;
}): AlertDispatcher {
  const tickMs = deps.tickMs ?? 500;
  let closed = false;
  let running: Promise<unknown> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let early: NodeJS.Timeout | undefined;

  const runOnce = async (now = Date.now()) => {
    const flushed = await flushDueGroups(deps.db, now);
    const published = await publishPending(deps.db, deps.publisher, deps.logger, now);
    return { flushed, published };
  };

  const pass = () => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = runOnce()
      .catch((error: unknown) => deps.logger.warn({ err: error }, 'alert dispatch pass failed'))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          pass();
        }
      });
  };

  timer = setInterval(pass, tickMs);
  timer.unref();
  return {
    kick(at) {
      if (closed) return;
      const delay = at === null || at === undefined ? 0 : Math.max(0, at - Date.now());
      if (delay >= tickMs) return;
      clearTimeout(early);
      early = setTimeout(pass, delay);
      early.unref();
    },
    runOnce,
    async close() {
      closed = true;
      clearInterval(timer);
      clearTimeout(early);
      timer = undefined;
      await running;
    },
  };
}
