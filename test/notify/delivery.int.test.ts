import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNotifyWorker, type NotifyWorker } from '#alerts/processors/notify.ts';
import { createLogger } from '#core/logger.ts';
import { createChannel } from '#core/notify/channels.ts';
import type { AlertGroupData } from '#core/notify/events.ts';
import { postJson } from '#core/notify/http-post.ts';
import { createEventPublisher, type NotifyPublisher } from '#core/notify/publisher.ts';
import { systemPrincipal } from '#core/orgs.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { startSink, verifyWebhook, type Sink } from '#test/helpers/sink.ts';
import { openTestStores } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
let api: TestApi;
let sink: Sink;
let worker: NotifyWorker;
let publisher: NotifyPublisher;
const logs: string[] = [];
const logger = createLogger(
  'debug',
  new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  }),
);

const MAX_ATTEMPTS = 3;
const SLACK_INTERVAL_MS = 300;
let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;

async function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) {
  const res = await api.app.inject({ method, url, headers: bearer(BOOTSTRAP_TOKEN), payload });
  return {
    status: res.statusCode,
    body: res.body,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies of many shapes
    json: res.body ? (res.json() as Record<string, any>) : {},
  };
}

async function channel(kind: 'slack' | 'webhook', path: string, extra: Record<string, unknown> = {}) {
  const res = await call('POST', '/api/v1/channels', {
    name: fresh(kind),
    kind,
    url: `${sink.url}${path}`,
    ...extra,
  });
  expect(res.status, res.body).toBe(201);
  return res.json as { id: string; secret: string | null };
}

const orgId = () => api.org.id;
const event = (over: Record<string, unknown> = {}) => ({
  type: 'deployment.step',
  orgId: orgId(),
  server: 'matrix',
  environment: 'production',
  version: '1.3.0',
  labels: { severity: 'info' },
  summary: 'matrix 1.3.0 at 25 % in production',
  data: { status: 'progressing', weight: 25, strategy: 'canary' },
  ...over,
});

async function delivery(id: string) {
  return (await call('GET', `/api/v1/deliveries/${id}`)).json;
}

async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

const untilStatus = (id: string, status: string, timeoutMs?: number) =>
  eventually(async () => {
    const d = await delivery(id);
    expect(d.status).toBe(status);
    return d;
  }, timeoutMs);

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  sink = await startSink();
  publisher = createEventPublisher({ db: stores.db, redis: stores.redis, logger });
  worker = await startNotifyWorker({
    db: stores.db,
    redis: stores.redis,
    logger,
    box: testSecretBox,
    policy: { allowPrivate: true },
    publicUrl: 'https://pylee.example.com',
    maxAttempts: MAX_ATTEMPTS,
    timeoutMs: 1_000,
    backoffBaseMs: 50,
    backoffMaxMs: 200,
    slackIntervalMs: SLACK_INTERVAL_MS,
    sweepEveryMs: 300,
    staleAfterMs: 0,
    stalledIntervalMs: 1_000,
  });
});

afterAll(async () => {
  await worker?.close();
  await sink?.close();
  await api?.app.close();
  await stores?.close();
});

describe('Slack channels', () => {
  it('deliver Block Kit messages Slack accepts, for alerts firing and resolved', async () => {
    const path = sink.slack('/slack/alerts');
    await channel('slack', path, {
      events: ['alert.*'],
      matchers: [{ name: 'server', op: '=', value: 'slack-alerts' }],
    });
    const group = (status: 'firing' | 'resolved'): AlertGroupData => ({
      groupKey: 'g1',
      status,
      alerts: [
        {
          fingerprint: 'f1',
          ruleId: 'r1',
          ruleName: 'Error rate',
          status,
          severity: 'critical',
          server: 'matrix',
          environment: 'production',
          version: '1.3.0',
          operation: null,
          labels: {},
          annotations: { summary: 'Errors above 5 %' },
          value: 0.12,
          threshold: 0.05,
          metric: 'error rate',
          baselineVersion: null,
          startsAt: new Date().toISOString(),
          endsAt: status === 'resolved' ? new Date().toISOString() : null,
          comparePath: '/servers/matrix/compare?a=1.2.0&b=1.3.0',
        },
      ],
    });
    const firing = await publisher.publishDetailed(
      event({
        type: 'alert.firing',
        server: 'slack-alerts',
        labels: { severity: 'critical' },
        summary: 'Error rate firing',
        data: group('firing'),
      }),
    );
    const resolved = await publisher.publishDetailed(
      event({
        type: 'alert.resolved',
        server: 'slack-alerts',
        labels: { severity: 'critical' },
        summary: 'Error rate resolved',
        data: group('resolved'),
      }),
    );
    const got = await sink.waitForDelivered(path, 2);
    expect(got.map((r) => r.slackErrors)).toEqual([[], []]);
    expect(got.map((r) => r.headers['x-pylee-delivery-id']).sort()).toEqual(
      [...firing.deliveries, ...resolved.deliveries].sort(),
    );
    const texts = got.map((r) => JSON.stringify(r.json));
    expect(texts.some((t) => t.includes('FIRING · CRITICAL · Error rate'))).toBe(true);
    expect(texts.some((t) => t.includes('RESOLVED · CRITICAL · Error rate'))).toBe(true);
    expect(texts[0]).toContain('https://pylee.example.com/servers/matrix/compare?a=1.2.0&b=1.3.0');
    const d = await untilStatus(firing.deliveries[0] as string, 'delivered');
    expect(d).toMatchObject({ attempts: 1, lastStatusCode: 200, lastError: null });
  });

  it('send at most one message per interval to one Slack webhook', async () => {
    const path = sink.slack('/slack/burst');
    await channel('slack', path, {
      events: ['deployment.*'],
      matchers: [{ name: 'server', op: '=', value: 'burst' }],
    });
    for (let i = 0; i < 4; i++) await publisher.publish(event({ server: 'burst', summary: `step ${i}` }));
    const got = await sink.waitForDelivered(path, 4);
    const times = got.map((r) => r.receivedAt).sort((a, b) => a - b);
    for (let i = 1; i < times.length; i++) {
      // A lower bound only: the limiter may space them further, never closer.
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(SLACK_INTERVAL_MS - 20);
    }
  });
});

describe('webhook channels', () => {
  it('sign every message per Standard Webhooks with the secret shown at creation', async () => {
    const path = '/hooks/signed';
    const { id, secret } = await channel('webhook', path, {
      events: ['deployment.*'],
      matchers: [{ name: 'server', op: '=', value: 'signed' }],
    });
    expect(secret).toMatch(/^whsec_/);
    const published = await publisher.publishDetailed(event({ server: 'signed' }));
    const [req] = await sink.waitForDelivered(path);
    const payload = verifyWebhook(req!, secret as string) as Record<string, unknown>;
    expect(req!.headers['webhook-id']).toBe(published.deliveries[0]);
    expect(payload).toMatchObject({
      id: published.deliveries[0],
      eventId: published.eventId,
      type: 'deployment.step',
      server: 'signed',
      environment: 'production',
      version: '1.3.0',
      data: { status: 'progressing', weight: 25 },
    });
    expect(() => verifyWebhook(req!, 'whsec_' + Buffer.alloc(32).toString('base64'))).toThrow();

    // Rotation: the new secret signs, and the old one too until its grace period ends.
    const rotated = await call('POST', `/api/v1/channels/${id}/rotate-secret`);
    expect(rotated.status, rotated.body).toBe(200);
    const next = rotated.json.secret as string;
    expect(next).not.toBe(secret);
    expect(rotated.json.signing.secretVersion).toBe(2);
    await publisher.publish(event({ server: 'signed' }));
    const [, second] = await sink.waitForDelivered(path, 2);
    expect(verifyWebhook(second!, next)).toBeTruthy();
    expect(verifyWebhook(second!, secret as string)).toBeTruthy();
    await call('POST', `/api/v1/channels/${id}/rotate-secret?previousValidSeconds=0`).then((r) =>
      expect(r.json.signing.previousSecretExpiresAt).toBeNull(),
    );
  });

  it('honour Retry-After on 429', async () => {
    const path = '/hooks/429';
    sink.script(path, { status: 429, retryAfter: '1', body: 'slow down' });
    await channel('webhook', path, { matchers: [{ name: 'server', op: '=', value: 'limited' }] });
    const { deliveries } = await publisher.publishDetailed(event({ server: 'limited' }));
    const [first, second] = await sink.waitForRequests(path, 2);
    expect(first!.status).toBe(429);
    expect(second!.status).toBe(200);
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(950);
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(await untilStatus(deliveries[0] as string, 'delivered')).toMatchObject({
      attempts: 2,
      lastStatusCode: 200,
    });
  });

  it('retry a 500 with backoff, then dead-letter it; redeliver sends it again with the same id', async () => {
    const path = '/hooks/500';
    sink.script(path, ...Array.from({ length: MAX_ATTEMPTS }, () => ({ status: 500, body: 'boom' })));
    const { id: channelId } = await channel('webhook', path, {
      matchers: [{ name: 'server', op: '=', value: 'broken' }],
    });
    const { deliveries } = await publisher.publishDetailed(event({ server: 'broken' }));
    const id = deliveries[0] as string;
    const dead = await untilStatus(id, 'dead');
    expect(dead).toMatchObject({ attempts: MAX_ATTEMPTS, lastStatusCode: 500, lastError: 'HTTP 500: boom' });
    expect(sink.on(path).map((r) => r.status)).toEqual([500, 500, 500]);
    const list = await call('GET', `/api/v1/deliveries?status=dead&channelId=${channelId}`);
    expect(list.json.deliveries.map((d: { id: string }) => d.id)).toEqual([id]);

    const again = await call('POST', `/api/v1/deliveries/${id}/redeliver`);
    expect(again.status, again.body).toBe(202);
    await untilStatus(id, 'delivered');
    const all = sink.on(path);
    expect(all.at(-1)!.status).toBe(200);
    expect(new Set(all.map((r) => r.headers['webhook-id']))).toEqual(new Set([id]));
    const conflict = await call('POST', `/api/v1/deliveries/${id}/redeliver`);
    expect(conflict.status).toBe(409);
  });

  it('dead-letter an unreachable receiver and one that never answers, with the reason', async () => {
    const closed = await channel('webhook', '/nowhere', {
      matchers: [{ name: 'server', op: '=', value: 'unreachable' }],
    });
    // Point the channel at a port nothing listens on (the sink's port, once closed, could be reused).
    const unreachable = await startSink();
    const url = `${unreachable.url}/gone`;
    await unreachable.close();
    await call('PATCH', `/api/v1/channels/${closed.id}`, { url });
    const a = await publisher.publishDetailed(event({ server: 'unreachable' }));
    const deadA = await untilStatus(a.deliveries[0] as string, 'dead');
    expect(deadA.lastStatusCode).toBeNull();
    expect(deadA.lastError).toMatch(/ECONNREFUSED/);

    const path = '/hooks/hang';
    sink.script(path, ...Array.from({ length: MAX_ATTEMPTS }, () => 'hang' as const));
    await channel('webhook', path, { matchers: [{ name: 'server', op: '=', value: 'hanging' }] });
    const b = await publisher.publishDetailed(event({ server: 'hanging' }));
    const deadB = await untilStatus(b.deliveries[0] as string, 'dead');
    expect(deadB.lastError).toMatch(/no complete answer within 1000 ms/);
    expect(sink.on(path)).toHaveLength(MAX_ATTEMPTS);
  });
});

describe('routing and silences', () => {
  it('route by event type and label matchers', async () => {
    const prod = '/route/prod';
    const critical = '/route/critical';
    await channel('webhook', prod, {
      events: ['deployment.*'],
      matchers: [{ name: 'environment', op: '=', value: 'prod-r' }],
    });
    await channel('webhook', critical, {
      events: ['alert.*', 'canary.verdict'],
      matchers: [
        { name: 'severity', op: '=~', value: 'critical|page' },
        { name: 'server', op: '!=', value: 'ignored' },
      ],
    });
    const r1 = await publisher.publishDetailed(event({ environment: 'prod-r' }));
    const r2 = await publisher.publishDetailed(event({ environment: 'staging-r' }));
    const r3 = await publisher.publishDetailed(
      event({ type: 'alert.firing', environment: 'x', labels: { severity: 'critical' } }),
    );
    const r4 = await publisher.publishDetailed(
      event({ type: 'alert.firing', environment: 'x', labels: { severity: 'warning' } }),
    );
    const r5 = await publisher.publishDetailed(
      event({
        type: 'canary.verdict',
        server: 'ignored',
        environment: 'x',
        labels: { severity: 'critical' },
      }),
    );
    expect([r1, r2, r3, r4, r5].map((r) => r.deliveries.length)).toEqual([1, 0, 1, 0, 0]);
    await sink.waitForDelivered(prod);
    await sink.waitForDelivered(critical);
    expect(sink.on(prod).map((r) => (r.json as { eventId: string }).eventId)).toEqual([r1.eventId]);
    expect(sink.on(critical).map((r) => (r.json as { eventId: string }).eventId)).toEqual([r3.eventId]);
  });

  it('record silenced events as suppressed instead of sending them, until the silence expires', async () => {
    const path = '/silenced';
    await channel('webhook', path, { matchers: [{ name: 'server', op: '=~', value: 'quiet|loud' }] });
    const created = await call('POST', '/api/v1/silences', {
      matchers: [{ name: 'server', op: '=', value: 'quiet' }],
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      comment: 'maintenance window',
    });
    expect(created.status, created.body).toBe(201);
    expect(created.json).toMatchObject({
      state: 'active',
      createdBy: 'bootstrap',
      comment: 'maintenance window',
    });
    const silenced = await publisher.publishDetailed(event({ server: 'quiet' }));
    const loud = await publisher.publishDetailed(event({ server: 'loud' }));
    expect(silenced.deliveries).toEqual([]);
    expect(silenced.suppressed).toHaveLength(1);
    await sink.waitForDelivered(path);
    const suppressed = await delivery(silenced.suppressed[0] as string);
    expect(suppressed).toMatchObject({ status: 'suppressed', silenceId: created.json.id, attempts: 0 });
    expect(sink.on(path).map((r) => r.headers['webhook-id'])).toEqual(loud.deliveries);

    const expired = await call('DELETE', `/api/v1/silences/${created.json.id}`);
    expect(expired.json.state).toBe('expired');
    expect((await call('DELETE', `/api/v1/silences/${created.json.id}`)).status).toBe(409);
    const after = await publisher.publishDetailed(event({ server: 'quiet' }));
    expect(after.deliveries).toHaveLength(1);
    await sink.waitForDelivered(path, 2);
    const listed = await call('GET', '/api/v1/silences?state=expired');
    expect(listed.json.silences.map((s: { id: string }) => s.id)).toContain(created.json.id);
  });

  it('refuse silences without matchers, already over, or without a comment', async () => {
    const endsAt = new Date(Date.now() + 60_000).toISOString();
    const bad = [
      { matchers: [], endsAt, comment: 'x' },
      {
        matchers: [{ name: 'server', op: '=', value: 'a' }],
        endsAt: new Date(Date.now() - 1000).toISOString(),
        comment: 'x',
      },
      { matchers: [{ name: 'server', op: '=~', value: '(' }], endsAt, comment: 'x' },
      { matchers: [{ name: 'server', op: '=', value: 'a' }], endsAt, comment: ' ' },
    ];
    for (const body of bad) expect((await call('POST', '/api/v1/silences', body)).status).toBe(400);
  });
});

describe('SSRF guard', () => {
  it('refuses link-local, metadata and unsupported URLs at channel creation, naming why', async () => {
    const cases: [string, RegExp][] = [
      ['http://169.254.169.254/latest/meta-data/', /link-local/],
      ['http://[fe80::1]/', /link-local/],
      ['http://0.0.0.0:8080/', /unspecified/],
      ['http://metadata.google.internal/', /metadata/],
      ['http://224.0.0.1/', /multicast/],
      ['gopher://example.com/', /http or https/],
    ];
    for (const [url, why] of cases) {
      const res = await call('POST', '/api/v1/channels', { name: fresh('ssrf'), kind: 'webhook', url });
      expect(res.status, url).toBe(400);
      expect(res.json.code).toBe('webhook-url-refused');
      expect(res.json.detail).toMatch(why);
    }
    const patched = await channel('webhook', '/ok', {
      matchers: [{ name: 'server', op: '=', value: 'never' }],
    });
    const res = await call('PATCH', `/api/v1/channels/${patched.id}`, { url: 'http://169.254.169.254/' });
    expect(res.status).toBe(400);
  });

  it('checks the address again when connecting, so a host whose DNS changed is refused', async () => {
    const strict = { allowPrivate: false };
    const before = sink.requests.length;
    const port = new URL(sink.url).port;
    await expect(
      postJson(`http://localhost:${port}/x`, '{}', {}, { timeoutMs: 1000, policy: strict }),
    ).rejects.toThrow(/localhost resolves to .*loopback/);
    await expect(postJson(`${sink.url}/x`, '{}', {}, { timeoutMs: 1000, policy: strict })).rejects.toThrow(
      /loopback/,
    );
    expect(sink.requests.length).toBe(before);
  });

  it('dead-letters a delivery whose target became a refused address, without retrying', async () => {
    const ctx = { principal: systemPrincipal(api.org) };
    const { view } = await createChannel(
      { db: stores.db, box: testSecretBox, policy: { allowPrivate: true } },
      ctx,
      {
        name: fresh('rebind'),
        kind: 'webhook',
        url: `${sink.url}/rebind`,
        matchers: [{ name: 'server', op: '=', value: 'rebind' }],
      },
    );
    // What a DNS change would do: the stored target now points at the metadata service.
    const sealed = testSecretBox.seal(
      'http://169.254.169.254/latest/meta-data/',
      `notification-channel:${view.id}:url`,
    );
    await stores.db.query(
      'UPDATE notification_channels SET url_ciphertext = $2, url_iv = $3, url_tag = $4 WHERE id = $1',
      [view.id, sealed.ciphertext, sealed.iv, sealed.tag],
    );
    const { deliveries } = await publisher.publishDetailed(event({ server: 'rebind' }));
    const dead = await untilStatus(deliveries[0] as string, 'dead');
    expect(dead.attempts).toBe(1);
    expect(dead.lastError).toMatch(/^refused: .*link-local/);
  });
});

describe('at least once', () => {
  it('the sweeper enqueues pending deliveries Redis does not hold', async () => {
    const path = '/swept';
    await channel('webhook', path, { matchers: [{ name: 'server', op: '=', value: 'swept' }] });
    // Recorded in Postgres but never enqueued: what a publish during a Redis outage leaves.
    const { deliveries } = await stores.db.transaction((tx) =>
      publisher.publishIn(tx, event({ server: 'swept' })),
    );
    const [req] = await sink.waitForDelivered(path);
    expect(req!.headers['webhook-id']).toBe(deliveries[0]);
    expect(logs.join('')).toContain('re-enqueued pending notification deliveries');
  });

  it('loses nothing when redis-server is killed mid-delivery and restarted', async () => {
    const path = '/redis-restart';
    await channel('webhook', path, { matchers: [{ name: 'server', op: '=', value: 'restart' }] });
    sink.script(path, { status: 503, retryAfter: '1' });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++)
      ids.push(...(await publisher.publishDetailed(event({ server: 'restart' }))).deliveries);
    await sink.waitForRequests(path, 1);
    const pid = Number(/process_id:(\d+)/.exec(await stores.redis.client.info('server'))?.[1]);
    process.kill(pid, 'SIGKILL');
    // Published while Redis is down: committed in Postgres, enqueued by the sweeper later.
    for (let i = 0; i < 3; i++)
      ids.push(...(await publisher.publishDetailed(event({ server: 'restart' }))).deliveries);
    await eventually(async () => {
      const newPid = Number(/process_id:(\d+)/.exec(await stores.redis.client.info('server'))?.[1]);
      expect(newPid).not.toBe(pid);
    });
    await eventually(async () => {
      const got = new Set(
        sink
          .on(path)
          .filter((r) => r.status === 200)
          .map((r) => r.headers['webhook-id']),
      );
      expect([...got].sort()).toEqual([...ids].sort());
    }, 40_000);
    for (const id of ids) expect((await delivery(id)).status).toBe('delivered');
  }, 60_000);
});

describe('another org', () => {
  it("sees this org's channels, silences and deliveries as not found", async () => {
    const other = await call('POST', '/api/v1/orgs', { slug: 'notify-other', name: 'Other' });
    expect(other.status, other.body).toBe(201);
    const as = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
      api.app.inject({ method, url, headers: bearer(other.json.token as string), payload });
    const mine = await channel('webhook', '/other-org', {
      matchers: [{ name: 'server', op: '=', value: 'never' }],
    });
    const test = await call('POST', `/api/v1/channels/${mine.id}/test`);
    const silence = await call('POST', '/api/v1/silences', {
      matchers: [{ name: 'server', op: '=', value: 'x' }],
      endsAt: new Date(Date.now() + 60_000).toISOString(),
      comment: 'x',
    });
    for (const [method, url] of [
      ['GET', `/api/v1/channels/${mine.id}`],
      ['PATCH', `/api/v1/channels/${mine.id}`],
      ['DELETE', `/api/v1/channels/${mine.id}`],
      ['POST', `/api/v1/channels/${mine.id}/rotate-secret`],
      ['GET', `/api/v1/silences/${silence.json.id}`],
      ['DELETE', `/api/v1/silences/${silence.json.id}`],
      ['GET', `/api/v1/deliveries/${test.json.deliveryId}`],
    ] as const) {
      const res = await as(method, url, method === 'PATCH' ? { name: 'stolen' } : undefined);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await as('GET', '/api/v1/channels')).json()).toEqual({ channels: [] });
    expect((await as('GET', '/api/v1/deliveries')).json()).toEqual({ deliveries: [] });
  });
});

describe('secrets', () => {
  it('are never returned by read APIs, the audit trail or logs', async () => {
    const slackUrl = `${sink.url}/services/T000/B000/XXXXSECRETTOKENXXXX`;
    const created = await call('POST', '/api/v1/channels', {
      name: fresh('secret'),
      kind: 'slack',
      url: slackUrl,
      matchers: [{ name: 'server', op: '=', value: 'never' }],
    });
    const hook = await channel('webhook', '/hooks/secret?token=QUERYSECRET', {
      matchers: [{ name: 'server', op: '=', value: 'never' }],
    });
    expect(created.json.secret).toBeNull();
    expect(created.json.target).toBe(`${new URL(sink.url).protocol}//${new URL(sink.url).host}/…`);
    await call('POST', `/api/v1/channels/${created.json.id}/test`);
    await call('POST', `/api/v1/channels/${hook.id}/test`);
    await sink.waitForDelivered('/services/T000/B000/XXXXSECRETTOKENXXXX');
    const reads = [
      await call('GET', '/api/v1/channels'),
      await call('GET', `/api/v1/channels/${created.json.id}`),
      await call('GET', `/api/v1/channels/${hook.id}`),
      await call('GET', '/api/v1/deliveries'),
      await call('GET', '/api/v1/audit?limit=500'),
    ];
    for (const r of reads) {
      expect(r.status).toBe(200);
      for (const secret of ['XXXXSECRETTOKENXXXX', 'QUERYSECRET', hook.secret as string, 'whsec_'])
        expect(r.body).not.toContain(secret);
    }
    const logged = logs.join('');
    expect(logged.length).toBeGreaterThan(0);
    for (const secret of ['XXXXSECRETTOKENXXXX', 'QUERYSECRET', 'whsec_', '/hooks/secret'])
      expect(logged).not.toContain(secret);
  });
});
