import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { startLocalRedis, type LocalRedis, type LocalRedisOptions } from './local-redis.ts';
import { QUEUE_PREFIX, QUEUES } from './queues.ts';

/** The work plane: one Redis (a `redis-server` Pylee started itself, or one given by `PYLEE_REDIS_URL`). */
export interface RedisStore {
  /** `'embedded'`: a child process Pylee supervises; `'redis-server'`: an existing server by URL. */
  readonly driver: 'redis-server' | 'embedded';
  /** Shared client for commands (rate limiting, state). */
  readonly client: Redis;
  /** A new connection for BullMQ workers and queues (`maxRetriesPerRequest: null`); closed by {@link close}. */
  connection(): Redis;
  /** Resolves when Redis answers PING; rejects within about 2 s when it does not. */
  ping(): Promise<void>;
  /**
   * Pylee is stopping. From now on a connection Redis drops is not reopened, so commands fail at once
   * instead of waiting for a server that is going away (a signal to the process group stops the
   * embedded redis-server together with Pylee), and the embedded server is not restarted. While Redis
   * stays up nothing changes: workers finish their jobs and {@link close} quits the connections.
   */
  prepareToStop(): void;
  /** Quits every connection this store created, then stops the embedded server if there is one. Idempotent. */
  close(): Promise<void>;
}

const PING_TIMEOUT_MS = 2_000;
const QUIT_TIMEOUT_MS = 2_000;

/**
 * Connects to `config.redisUrl` (`redis://`, `rediss://` or `unix:///path/to.sock`), or, when it is unset,
 * starts a supervised `redis-server` in `<dataDir>/redis` and connects over its unix socket. An unreachable
 * external Redis does not fail the call: the clients keep reconnecting and {@link RedisStore.ping} reports it.
 */
export async function openRedis(
  config: Pick<Config, 'redisUrl' | 'dataDir'>,
  logger: Logger,
  options: Pick<LocalRedisOptions, 'replaceOrphan'> = {},
): Promise<RedisStore> {
  const log = logger.child({ component: 'redis' });
  let local: LocalRedis | undefined;
  let target: string;
  if (config.redisUrl !== undefined) {
    target = toIoredisTarget(config.redisUrl);
  } else {
    const dir = path.join(config.dataDir, 'redis');
    fs.mkdirSync(dir, { recursive: true });
    local = await startLocalRedis({ dir, logger, ...options });
    target = local.socketPath;
  }

  let stopping = false;
  // ioredis's default backoff, until Pylee stops. Duplicates (BullMQ's blocking connections) copy it.
  const retryStrategy = (times: number): number | null => (stopping ? null : Math.min(times * 50, 2_000));
  const connections = new Set<Redis>();
  const create = (name: string, options: RedisOptions): Redis => {
    const redis = new Redis(target, { connectionName: name, retryStrategy, ...options });
    let healthy = true;
    // Without an 'error' listener ioredis prints every reconnect failure to the console.
    redis.on('error', (err: Error) => {
      if (stopping) log.debug({ err, connection: name }, 'Redis connection closed while Pylee stops');
      else if (healthy) log.warn({ err, connection: name }, 'lost the connection to Redis; reconnecting');
      else log.debug({ err, connection: name }, 'Redis is still unreachable');
      healthy = false;
    });
    redis.on('ready', () => {
      if (!healthy) log.info({ connection: name }, 'reconnected to Redis');
      healthy = true;
    });
    return redis;
  };

  // A few retries ride out a restart of the embedded server; more would leave callers waiting for a minute.
  const client = create('pylee', { maxRetriesPerRequest: 3 });
  if (local) {
    // Only a head start: the workers' stalled checks would find these jobs too, later.
    await requeueOrphanedJobs(client, log).catch((err: unknown) =>
      log.warn({ err }, 'could not put back the jobs a killed Pylee process left running; they resume later'),
    );
  }
  let closed: Promise<void> | undefined;

  return {
    driver: local ? 'embedded' : 'redis-server',
    client,
    connection() {
      if (closed) throw new Error('the Redis store is closed');
      const redis = create('pylee:bullmq', { maxRetriesPerRequest: null });
      connections.add(redis);
      redis.once('end', () => connections.delete(redis));
      return redis;
    },
    async ping() {
      // Racing a timer rather than waiting out ioredis's retries: a down Redis answers nothing at all.
      const reply = client.ping();
      reply.catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Redis did not answer PING within ${PING_TIMEOUT_MS / 1000} s`)),
          PING_TIMEOUT_MS,
        );
      });
      try {
        await Promise.race([reply, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    prepareToStop() {
      if (stopping) return;
      stopping = true;
      local?.stopRestarting();
      // A connection already waiting to reconnect ends after its next attempt fails; disconnect() now
      // would strand its queued commands (ioredis rejects them only when a connection closes).
    },
    close() {
      closed ??= (async () => {
        await Promise.all([...connections, client].map(quit));
        connections.clear();
        await local?.stop();
      })();
      return closed;
    },
  };
}

/**
 * Puts back in line the jobs a killed Pylee left `active` in its embedded redis-server. Only for a
 * server this process just started under the data dir's lock, so no other worker can be running them:
 * rather than wait for their locks to expire (30 s) and for two stalled checks, their locks are
 * dropped and they are marked stalled, and each worker's first stalled check, as it starts, moves them
 * back to wait. Every job is idempotent, so one that had in fact finished runs again harmlessly
 * (a notification keeps its `webhook-id`). The keys are BullMQ's layout:
 * `<prefix>:<queue>:{active,stalled,stalled-check}` and `<prefix>:<queue>:<job id>:lock`.
 */
async function requeueOrphanedJobs(redis: Redis, logger: Logger): Promise<void> {
  const requeued: Record<string, number> = {};
  for (const queue of Object.values(QUEUES)) {
    const key = (suffix: string) => `${QUEUE_PREFIX}:${queue}:${suffix}`;
    const active = await redis.lrange(key('active'), 0, -1);
    if (active.length === 0) continue;
    await redis
      .multi()
      .del(key('stalled-check'), ...active.map((id) => key(`${id}:lock`)))
      .sadd(key('stalled'), ...active)
      .exec();
    requeued[queue] = active.length;
  }
  if (Object.keys(requeued).length > 0) {
    logger.info({ requeued }, 'jobs left running by a Pylee process that was killed are back in line');
  }
}

/** ioredis reads `redis://` and `rediss://` URLs itself but takes a unix socket as a bare path. */
function toIoredisTarget(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== 'unix:') return url;
  return decodeURIComponent(parsed.pathname) + parsed.search;
}

/** QUIT lets pending replies arrive; a connection that is already closed or down is just dropped. */
async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => redis.once('end', () => resolve()));
  // Rejects when the connection is already closing (e.g. BullMQ closed it first); 'end' follows anyway.
  redis.quit().catch(() => redis.disconnect());
  const ac = new AbortController();
  await Promise.race([
    ended,
    sleep(QUIT_TIMEOUT_MS, undefined, { signal: ac.signal }).then(
      () => {
        redis.disconnect();
        return Promise.race([ended, sleep(QUIT_TIMEOUT_MS)]);
      },
      () => undefined,
    ),
  ]);
  ac.abort();
}
