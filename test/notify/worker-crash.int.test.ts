import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNotifyWorker, type NotifyWorker } from '#alerts/processors/notify.ts';
import { createSecretBox } from '#core/crypto/secret-box.ts';
import { openPostgres, type Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { createChannel, listChannels, rotateChannelSecret } from '#core/notify/channels.ts';
import {
  listDeliveries,
  loadDeliveryWork,
  markForRedelivery,
  stalePendingDeliveries,
} from '#core/notify/deliveries.ts';
import { createSilence, expireSilence, listSilences } from '#core/notify/silences.ts';
import { createEventPublisher } from '#core/notify/publisher.ts';
import { openRedis, type RedisStore } from '#core/queue/redis.ts';
import { bootstrap, systemPrincipal, type Org } from '#core/orgs.ts';
import { createTestDatabase, POSTGRES_ADMIN_URL, type TestDatabase } from '#test/helpers/postgres.ts';
import { NODE_BIN, ROOT } from '#test/helpers/pylee-process.ts';
import { startSink, verifyWebhook, type Sink } from '#test/helpers/sink.ts';
import { silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// Two processes share the stores here, which PGlite (one process) cannot: this runs on PostgreSQL.
describe.skipIf(!POSTGRES_ADMIN_URL)('a notify worker killed mid-delivery (PostgreSQL)', () => {
  const key = randomBytes(32);
  const box = createSecretBox(key);
  let database: TestDatabase;
  let db: Db;
  let redis: RedisStore;
  let sink: Sink;
  let org: Org;
  let child: ChildProcess | undefined;
  let worker: NotifyWorker | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openPostgres(database.url);
    await migrateDb(db);
    redis = await openRedis({ dataDir: tempDir('pylee-notify-crash'), redisUrl: undefined }, silentLogger);
    sink = await startSink();
    ({ org } = await bootstrap(db, 'pyl_crash-test-bootstrap-token-0123456789'));
  });

  afterAll(async () => {
    child?.kill('SIGKILL');
    await worker?.close();
    await sink?.close();
    await redis?.close();
    await db?.close();
    await database?.drop();
  });

  it('delivers the message after a restart, with the same webhook-id', async () => {
    const { view, secret } = await createChannel(
      { db, box, policy: { allowPrivate: true } },
      { principal: systemPrincipal(org) },
      { name: 'crash', kind: 'webhook', url: `${sink.url}/crash` },
    );
    expect(view.kind).toBe('webhook');
    // The first attempt reaches the receiver, which never answers: the worker is mid-delivery when killed.
    sink.script('/crash', 'hang');

    const redisUrl = `unix://${(await redis.client.config('GET', 'unixsocket'))[1]}`;
    child = spawn(NODE_BIN, [path.join(ROOT, 'test/notify/fixtures/notify-worker.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl,
        SECRET_KEY: key.toString('hex'),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child!.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
      child!.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
    });

    const publisher = createEventPublisher({ db, redis, logger: silentLogger });
    const { deliveries } = await publisher.publishDetailed({
      type: 'deployment.status',
      orgId: org.id,
      server: 'matrix',
      environment: 'production',
      version: '2.0.0',
      summary: 'matrix 2.0.0 promoted in production',
      data: { status: 'succeeded' },
    });
    const id = deliveries[0] as string;
    await sink.waitForRequests('/crash', 1);
    const killed = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGKILL');
    await killed;
    child = undefined;
    expect((await loadDeliveryWork(db, id))?.status).toBe('pending');

    // A worker started afterwards finds the job stalled (its lock expired with the dead process).
    worker = await startNotifyWorker({
      db,
      redis,
      logger: silentLogger,
      box,
      policy: { allowPrivate: true },
      stalledIntervalMs: 500,
      sweepEveryMs: 60_000,
    });
    const [first, second] = await sink.waitForDelivered('/crash', 1, 30_000).then(() => sink.on('/crash'));
    expect(first!.status).toBeUndefined(); // the hung request of the killed worker
    expect(second!.status).toBe(200);
    expect(second!.headers['webhook-id']).toBe(id);
    expect(first!.headers['webhook-id']).toBe(id);
    expect(verifyWebhook(second!, secret as string)).toMatchObject({ id, type: 'deployment.status' });
    for (let i = 0; i < 40 && (await loadDeliveryWork(db, id))?.status !== 'delivered'; i++) await sleep(50);
    expect(await loadDeliveryWork(db, id)).toMatchObject({ status: 'delivered', attempts: 1 });
  }, 60_000);

  it('runs the notification queries on PostgreSQL too', async () => {
    const ctx = { principal: systemPrincipal(org) };
    const [channel] = await listChannels(db, ctx);
    const rotated = await rotateChannelSecret({ db, box }, ctx, channel!.id, 60);
    expect(rotated.view.signing).toMatchObject({
      secretVersion: 2,
      previousSecretExpiresAt: expect.any(String),
    });
    const silence = await createSilence(db, ctx, {
      matchers: [{ name: 'server', op: '=~', value: 'matrix|weather' }],
      endsAt: new Date(Date.now() + 60_000).toISOString(),
      comment: 'pg',
    });
    const publisher = createEventPublisher({ db, redis, logger: silentLogger });
    const silenced = await publisher.publishDetailed({
      type: 'deployment.status',
      orgId: org.id,
      server: 'matrix',
      summary: 'silenced',
      data: {},
    });
    expect(silenced.suppressed).toHaveLength(1);
    await expireSilence(db, ctx, silence.id);
    expect((await listSilences(db, ctx, { state: 'expired' })).map((s) => s.id)).toEqual([silence.id]);
    const listed = await listDeliveries(db, ctx, { status: 'suppressed', channelId: channel!.id });
    expect(listed.map((d) => d.id)).toEqual(silenced.suppressed);
    const again = await markForRedelivery(db, ctx, silenced.suppressed[0] as string);
    expect(again).toMatchObject({ status: 'pending', attempts: 0 });
    expect(await stalePendingDeliveries(db, 0)).toContain(again.id);
    const limited = { principal: { ...systemPrincipal(org), servers: ['weather'] } };
    expect(await listDeliveries(db, limited)).toEqual([]);
  });
});
