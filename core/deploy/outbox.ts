/**
 * A deployment change and what it announces commit together: events and rollout jobs collected in
 * the transaction are sent once it committed.
 */
import type { Queryable } from '../db/client.ts';
import type { EventPublisher, PyleeEvent } from '../notify/events.ts';
import type { DeployDeps } from './records.ts';
import type { RolloutJob } from './scheduler.ts';

/** Announcements and jobs collected inside a transaction, sent once it committed. */
export interface Outbox {
  events: PyleeEvent[];
  jobs: { job: RolloutJob; at: number }[];
}

/**
 * A publisher that can record an event inside the caller's transaction (core/notify's), so the
 * announcement commits or rolls back with the change; `enqueue` is called after the commit.
 */
interface TransactionalPublisher extends EventPublisher {
  publishIn(tx: Queryable, event: PyleeEvent): Promise<{ enqueue(): Promise<void> }>;
}

const isTransactional = (p: EventPublisher): p is TransactionalPublisher =>
  typeof (p as Partial<TransactionalPublisher>).publishIn === 'function';

/** Runs `fn` in a transaction, then schedules and announces what it collected. */
export async function withOutbox<T>(
  deps: DeployDeps,
  fn: (tx: Queryable, outbox: Outbox) => Promise<T>,
): Promise<T> {
  const outbox: Outbox = { events: [], jobs: [] };
  const publisher = deps.publisher;
  const enqueues: (() => Promise<void>)[] = [];
  const result = await deps.db.transaction(async (tx) => {
    const value = await fn(tx, outbox);
    if (isTransactional(publisher)) {
      for (const event of outbox.events) enqueues.push((await publisher.publishIn(tx, event)).enqueue);
    }
    return value;
  });
  for (const { job, at } of outbox.jobs) {
    try {
      await deps.scheduler.schedule(job, at);
    } catch (error) {
      // The sweep picks up what is due even without its job.
      deps.logger?.warn(
        { err: error, job: job.name },
        'could not schedule a rollout job; the sweep will catch up',
      );
    }
  }
  if (isTransactional(publisher)) {
    for (const enqueue of enqueues) {
      // Recorded with the change: a failed enqueue only delays delivery until notify's sweeper runs.
      await enqueue().catch((error: unknown) =>
        deps.logger?.warn(
          { err: error },
          'could not enqueue deployment notifications; the notify sweeper will',
        ),
      );
    }
    return result;
  }
  for (const event of outbox.events) {
    try {
      await publisher.publish(event);
    } catch (error) {
      deps.logger?.error({ err: error, type: event.type }, 'could not publish a deployment event');
    }
  }
  return result;
}
