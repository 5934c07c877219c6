import { DelayedError, Worker, type Job, type Queue } from 'bullmq';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import { openChannelTarget } from '#core/notify/channels.ts';
import {
  loadDeliveryWork,
  markAttemptFailed,
  markDelivered,
  stalePendingDeliveries,
} from '#core/notify/deliveries.ts';
import { postJson, retryAfterMs, type PostResult } from '#core/notify/http-post.ts';
import { NOTIFY_JOBS, openNotifyQueue, requeueDeliveries, type DeliverJobData } from '#core/notify/queue.ts';
import { renderSlack } from '#core/notify/slack.ts';
import { WebhookTargetRefused, type SsrfPolicy } from '#core/notify/ssrf.ts';
import { signedHeaders, webhookPayload } from '#core/notify/webhook.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { RedisStore } from '#core/queue/redis.ts';

export interface NotifyWorkerDeps {
  db: Db;
  redis: RedisStore;
  logger: Logger;
  box: SecretBox;
  policy: SsrfPolicy;
  /** `PYLEE_PUBLIC_URL`, for links in messages. */
  publicUrl?: string | undefined;
  /** Attempts before a delivery is dead. @defaultValue 8 */
  maxAttempts?: number;
  /** Timeout of one HTTP call, connect to last byte. @defaultValue 10 s */
  timeoutMs?: number;
  /** First retry delay, doubled per attempt with ±20 % jitter, capped by `backoffMaxMs`. @defaultValue 5 s */
  backoffBaseMs?: number;
  /** @defaultValue 1 hour */
  backoffMaxMs?: number;
  /** Longest `Retry-After` honoured as given; longer ones are capped. @defaultValue 1 hour */
  retryAfterMaxMs?: number;
  /** Least time between two messages to one Slack webhook URL (Slack allows about one per second). @defaultValue 1 s */
  slackIntervalMs?: number;
  /** How often pending deliveries Redis does not hold are re-enqueued. @defaultValue 30 s */
  sweepEveryMs?: number;
  /** A pending delivery untouched this long is checked by the sweeper. @defaultValue 60 s */
  staleAfterMs?: number;
  /** @defaultValue 8 */
  concurrency?: number;
  /** BullMQ lock of a running delivery; a dead worker's delivery is taken over after about this long. @defaultValue 30 s */
  lockDurationMs?: number;
  /** @defaultValue 15 s */
  stalledIntervalMs?: number;
}

export type DeliveryOutcome =
  | { outcome: 'delivered'; status: number }
  | { outcome: 'dead'; attempts: number; error: string }
  | { outcome: 'skipped'; reason: string };

/** 4xx answers a retry cannot change (a deleted Slack webhook, a refused payload); these three can. */
const RETRYABLE_4XX = new Set([408, 425, 429]);
const isPermanent = (status: number) => status >= 400 && status < 500 && !RETRYABLE_4XX.has(status);

/** The next retry delay: exponential from `base`, ±20 % jitter so retries of a burst spread out. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

/** An error's message without anything secret: Node's network errors name the address, never the URL path. */
function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (error instanceof WebhookTargetRefused) return `refused: ${e.message}`;
  return e.code ? `${e.code}: ${e.message}` : (e.message ?? String(error));
}

/**
 * Sends one delivery. A failure is counted in Postgres and retried through `job.moveToDelayed` (the
 * job keeps its id, the delivery its `webhook-id`); after `maxAttempts` the delivery is dead.
 */
export function notifyProcessor(deps: NotifyWorkerDeps, queue: () => Queue<DeliverJobData>) {
  const maxAttempts = deps.maxAttempts ?? 8;
  const timeoutMs = deps.timeoutMs ?? 10_000;
  const baseMs = deps.backoffBaseMs ?? 5_000;
  const maxMs = deps.backoffMaxMs ?? 3_600_000;
  const retryAfterMaxMs = deps.retryAfterMaxMs ?? 3_600_000;
  const slackIntervalMs = deps.slackIntervalMs ?? 1_000;
  const logger = deps.logger.child({ component: 'notify' });

  const deliver = async (job: Job<DeliverJobData>, token?: string): Promise<DeliveryOutcome> => {
    const id = job.data.deliveryId;
    const work = await loadDeliveryWork(deps.db, id);
    if (!work) return { outcome: 'skipped', reason: 'no such delivery (its channel was deleted)' };
    if (work.status !== 'pending') return { outcome: 'skipped', reason: `delivery is ${work.status}` };
    const target = await openChannelTarget(deps.db, deps.box, work.channelId);
    if (!target) return { outcome: 'skipped', reason: 'channel deleted' };

    if (target.kind === 'slack' && slackIntervalMs > 0) {
      // One message per interval per URL: the first caller takes the slot, the others wait for it.
      const key = `${QUEUE_PREFIX}:notify:slack-slot:${target.urlFingerprint}`;
      const taken = await deps.redis.client.set(key, id, 'PX', slackIntervalMs, 'NX');
      if (taken !== 'OK') {
        const wait = Math.max(await deps.redis.client.pttl(key), 50);
        await job.moveToDelayed(Date.now() + wait + Math.floor(Math.random() * 50), token);
        throw new DelayedError();
      }
    }

    let body: string;
    let headers: Record<string, string> = {};
    if (target.kind === 'slack') {
      body = JSON.stringify(renderSlack(work.event, { publicUrl: deps.publicUrl }));
    } else {
      body = JSON.stringify(webhookPayload(id, work.event, deps.publicUrl));
      headers = signedHeaders(id, target.secrets, body);
    }
    // Receivers without webhook headers (Slack) can still drop duplicates by this one.
    headers['x-pylee-delivery-id'] = id;

    let result: PostResult | undefined;
    let failure: string | undefined;
    let permanent = false;
    try {
      result = await postJson(target.url, body, headers, { timeoutMs, policy: deps.policy });
    } catch (error) {
      failure = describe(error);
      permanent = error instanceof WebhookTargetRefused;
    }
    if (result && result.status >= 200 && result.status < 300) {
      await markDelivered(deps.db, id, result.status);
      logger.debug({ delivery: id, channel: target.id, status: result.status }, 'notification delivered');
      return { outcome: 'delivered', status: result.status };
    }
    if (result) {
      failure = `HTTP ${result.status}${result.body ? `: ${result.body.replace(/\s+/g, ' ').slice(0, 200)}` : ''}`;
      permanent = isPermanent(result.status);
    }
    const attempt = work.attempts + 1;
    const hinted =
      result && (result.status === 429 || result.status === 503)
        ? retryAfterMs(result.retryAfter)
        : undefined;
    const delay =
      hinted !== undefined ? Math.min(hinted, retryAfterMaxMs) : backoffDelay(attempt, baseMs, maxMs);
    const marked = await markAttemptFailed(deps.db, id, {
      statusCode: result?.status ?? null,
      error: failure ?? 'unknown failure',
      nextAttemptAt: new Date(Date.now() + delay),
      maxAttempts: permanent ? attempt : maxAttempts,
    });
    if (!marked) return { outcome: 'skipped', reason: 'delivery no longer pending' };
    if (marked.dead) {
      logger.warn(
        { delivery: id, channel: target.id, attempts: marked.attempts, error: failure },
        'notification delivery is dead; redeliver it from the API once the receiver is fixed',
      );
      return { outcome: 'dead', attempts: marked.attempts, error: failure ?? '' };
    }
    logger.info(
      { delivery: id, channel: target.id, attempt: marked.attempts, error: failure, retryInMs: delay },
      'notification delivery failed; retrying',
    );
    await job.moveToDelayed(Date.now() + delay, token);
    throw new DelayedError();
  };

  const sweep = async (): Promise<{ requeued: number }> => {
    const stale = await stalePendingDeliveries(deps.db, deps.staleAfterMs ?? 60_000);
    const requeued = await requeueDeliveries(queue(), stale);
    if (requeued.length > 0)
      logger.info({ requeued: requeued.length }, 're-enqueued pending notification deliveries');
    return { requeued: requeued.length };
  };

  return async (job: Job<DeliverJobData>, token?: string) =>
    job.name === NOTIFY_JOBS.sweep ? sweep() : deliver(job, token);
}

export interface NotifyWorker {
  worker: Worker;
  queue: Queue<DeliverJobData>;
  close(): Promise<void>;
}

/** The `notify` queue's worker and the sweeper's job scheduler. */
export async function startNotifyWorker(deps: NotifyWorkerDeps): Promise<NotifyWorker> {
  const queue = openNotifyQueue(deps.redis, deps.logger);
  await queue.upsertJobScheduler(
    NOTIFY_JOBS.sweep,
    { every: deps.sweepEveryMs ?? 30_000 },
    { name: NOTIFY_JOBS.sweep, opts: { removeOnComplete: 10, removeOnFail: 10 } },
  );
  const worker = new Worker<DeliverJobData>(
    QUEUES.notify,
    notifyProcessor(deps, () => queue),
    {
      connection: deps.redis.connection(),
      prefix: QUEUE_PREFIX,
      concurrency: deps.concurrency ?? 8,
      lockDuration: deps.lockDurationMs ?? 30_000,
      stalledInterval: deps.stalledIntervalMs ?? 15_000,
      // A delivery taken over from dead workers this often is left to the sweeper, not failed for good.
      maxStalledCount: 5,
    },
  );
  worker.on('failed', (job, error) =>
    deps.logger.warn({ err: error, job: job?.name, delivery: job?.data.deliveryId }, 'notify job failed'),
  );
  worker.on('error', (error) => deps.logger.warn({ err: error }, 'notify worker error'));
  return {
    worker,
    queue,
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
