import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workers } from '#alerts/workers.ts';
import type { Rule } from '#core/alerting/model.ts';
import { createRule } from '#core/alerting/rules.ts';
import { schedulerId } from '#core/alerting/schedule.ts';
import type { Context } from '#core/auth/principal.ts';
import type { AlertGroupData } from '#core/notify/events.ts';
import { createChannel } from '#core/notify/channels.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { testSecretBox } from '#test/helpers/api.ts';
import { startSink, verifyWebhook, type Sink, type SinkRequest } from '#test/helpers/sink.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { startTestWorkers } from '#test/helpers/workers.ts';
import { requests } from './helpers.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let writer: TelemetryWriter;
let sink: Sink;
let workers: Workers;
let ctx: Context;
let orgId: string;
let secret: string;
let slackPath: string;

beforeAll(async () => {
  stores = await openTestStores();
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
  sink = await startSink();
  const { org } = await bootstrap(stores.db);
  orgId = org.id;
  ctx = { principal: systemPrincipal(org) };
  const notifyDeps = { db: stores.db, box: testSecretBox, policy: { allowPrivate: true } };
  const hook = await createChannel(notifyDeps, ctx, {
    name: 'on-call webhook',
    kind: 'webhook',
    url: `${sink.url}/hook`,
    events: ['alert.*'],
  });
  secret = hook.secret as string;
  slackPath = sink.slack('/slack');
  await createChannel(notifyDeps, ctx, {
    name: 'slack',
    kind: 'slack',
    url: `${sink.url}${slackPath}`,
    events: ['alert.*'],
  });
  workers = await startTestWorkers(stores);
});

afterAll(async () => {
  await workers?.close();
  await writer?.close();
  await sink?.close();
  await stores?.close();
});

const payloads = (path: string, type: string, server: string) =>
  sink
    .on(path)
    .filter((r) => r.status !== undefined && r.status < 300)
    .map((r) => r.json as { type: string; data: AlertGroupData & { server?: string } })
    .filter((p) => p?.type === type && JSON.stringify(p).includes(`"${server}"`));

async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 45_000,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Sends a second of requests ending now, every 200 ms, until stopped. */
function keepSending(server: string, errorRate: number) {
  let on = true;
  const loop = (async () => {
    while (on) {
      const now = Date.now();
      await writer.writeRequests(
        requests({ orgId, server, version: '2.0.0', from: now - 200, to: now, count: 10, errorRate }),
      );
      await sleep(200);
    }
  })();
  return async () => {
    on = false;
    await loop;
  };
}

const newRule = (server: string): Promise<Rule> =>
  createRule(stores.db, ctx, {
    name: `errors on ${server}`,
    server,
    kind: 'threshold',
    metric: 'errorRate',
    threshold: 0.2,
    interval: '1s',
    window: '3s',
    groupWait: '0s',
    groupInterval: '1s',
    severity: 'critical',
    annotations: { summary: 'error rate {{ $value }}', runbookUrl: 'https://runbooks.example.com/errors' },
  });

describe('alert workers', () => {
  it('evaluate on a job scheduler per rule and deliver firing and resolved notifications to real sinks', async () => {
    const rule = await newRule('checkout');
    await until('the rule scheduler', async () =>
      (await workers.queues.alerts?.getJobSchedulers())?.some((s) => s.key === schedulerId(rule.id)),
    );
    const stop = keepSending('checkout', 0.6);
    const firing = await until('a firing webhook', () => payloads('/hook', 'alert.firing', 'checkout')[0]);
    await stop();
    expect(firing.data.alerts[0]).toMatchObject({
      ruleId: rule.id,
      status: 'firing',
      severity: 'critical',
      version: '2.0.0',
    });
    const signed = sink
      .on('/hook')
      .find((r: SinkRequest) => (r.json as { type?: string })?.type === 'alert.firing');
    expect(() => verifyWebhook(signed as SinkRequest, secret)).not.toThrow();
    await until('a Slack message', () =>
      sink.on(slackPath).find((r) => r.status === 200 && r.body.includes('checkout')),
    );
    expect(sink.on(slackPath).flatMap((r) => r.slackErrors)).toEqual([]);

    const recover = keepSending('checkout', 0);
    const resolved = await until(
      'a resolved webhook',
      () => payloads('/hook', 'alert.resolved', 'checkout')[0],
    );
    await recover();
    expect(resolved.data.alerts[0]).toMatchObject({ ruleId: rule.id, status: 'resolved' });
    // One notification each way: the same fingerprint was not sent twice.
    expect(payloads('/hook', 'alert.firing', 'checkout')).toHaveLength(1);
  });

  it('keeps evaluating and notifying after redis-server is killed mid-evaluation', async () => {
    const rule = await newRule('search');
    await until('the rule scheduler', async () =>
      (await workers.queues.alerts?.getJobSchedulers())?.some((s) => s.key === schedulerId(rule.id)),
    );
    const evaluations = async () =>
      Number(
        (
          await stores.db.query<{ evaluations: number }>(
            'SELECT evaluations FROM alert_rules WHERE id = $1',
            [rule.id],
          )
        )[0]?.evaluations,
      );
    await until('evaluations', async () => (await evaluations()) > 0);
    const info = await stores.redis.client.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    process.kill(pid, 'SIGKILL');
    const stop = keepSending('search', 0.8);
    // The embedded redis-server is restarted; BullMQ reconnects and the schedulers run again.
    await until('redis back', () =>
      stores.redis.ping().then(
        () => true,
        () => false,
      ),
    );
    const before = await evaluations();
    await until('evaluations after the restart', async () => (await evaluations()) > before + 2);
    const firing = await until(
      'a firing webhook after the restart',
      () => payloads('/hook', 'alert.firing', 'search')[0],
    );
    await stop();
    expect(firing.data.alerts[0]).toMatchObject({ ruleId: rule.id, status: 'firing' });
  });
});
