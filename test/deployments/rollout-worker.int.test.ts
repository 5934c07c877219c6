import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNotifyWorker, type NotifyWorker } from '#alerts/processors/notify.ts';
import { startRolloutWorker, type RolloutWorker } from '#alerts/processors/rollout-step.ts';
import { noScheduler } from '#core/deploy/scheduler.ts';
import type { DeployDeps } from '#core/deploy/records.ts';
import { reportAnalysisResult, reportStartupResult } from '#core/deploy/system-events.ts';
import { loggingPublisher } from '#core/deploy/wiring.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { startSink, verifyWebhook, type Sink } from '#test/helpers/sink.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';

// The rollout queue with a real BullMQ worker and redis-server: timed pauses advance on their own,
// and every step is announced as a signed webhook through core/notify's publisher and worker.

type Stores = Awaited<ReturnType<typeof openTestStores>>;

interface Deployment {
  id: string;
  status: string;
  currentStep: number | null;
  weight: number;
  awaiting: string | null;
  statusReason: string | null;
  verification: { passes: number; deadline: string | null; detail: string | null } | null;
  events: { action: string; to: string; actor: string }[];
}

let stores: Stores;
let api: TestApi;
let sink: Sink;
let rollout: RolloutWorker;
let notify: NotifyWorker;
let deps: DeployDeps;

async function call(method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) {
  const res = await api.app.inject({
    method,
    url: `/api/v1${url}`,
    headers: bearer(BOOTSTRAP_TOKEN),
    payload,
  });
  expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
  return res.json() as Record<string, unknown>;
}
const get = async (id: string) =>
  (await call('GET', `/servers/weather/deployments/${id}`)) as unknown as Deployment;

async function eventually<T>(check: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  sink = await startSink();
  rollout = await startRolloutWorker({
    db: stores.db,
    redis: stores.redis,
    logger: silentLogger,
    sweepEveryMs: 60_000,
  });
  notify = await startNotifyWorker({
    db: stores.db,
    redis: stores.redis,
    logger: silentLogger,
    box: testSecretBox,
    policy: { allowPrivate: true },
  });
  deps = { db: stores.db, publisher: loggingPublisher(silentLogger), scheduler: noScheduler };
  await call('POST', '/servers', { slug: 'weather' });
  for (const version of ['1.0.0', '1.1.0', '1.2.0']) {
    await call('POST', '/servers/weather/versions', { version, status: 'stable' });
  }
});

afterAll(async () => {
  await rollout?.close();
  await notify?.close();
  await sink?.close();
  await api?.app.close();
  await stores?.close();
});

describe('rollout worker', () => {
  let secret: string;

  it('advances timed pauses through delayed jobs and announces every step as a signed webhook', async () => {
    const channel = await call('POST', '/channels', {
      name: 'rollouts',
      kind: 'webhook',
      url: `${sink.url}/hooks/rollouts`,
      events: ['deployment.*'],
    });
    secret = channel.secret as string;
    await call('POST', '/servers/weather/deployments', { version: '1.0.0', environment: 'staging' });
    const created = (await call('POST', '/servers/weather/deployments', {
      version: '1.1.0',
      environment: 'staging',
      strategy: 'canary',
      steps: [{ weight: 10, pause: '1s' }, { weight: 50, pause: '1s' }, { weight: 100 }],
    })) as unknown as Deployment;
    expect(created).toMatchObject({ status: 'paused', currentStep: 0, weight: 10 });

    const done = await eventually(async () => {
      const d = await get(created.id);
      expect(d.status).toBe('succeeded');
      return d;
    });
    expect(done.weight).toBe(100);
    const advances = done.events.filter((e) => e.action === 'advance');
    expect(advances.map((e) => e.to)).toEqual(['paused', 'succeeded']);
    expect(advances.every((e) => e.actor === 'pylee')).toBe(true);

    // Webhooks: deployment.step and deployment.status, each verifiable with the channel's secret.
    const received = await eventually(async () => {
      const requests = sink.on('/hooks/rollouts');
      const bodies = requests.map(
        (r) =>
          r.json as { type: string; data: { deployment: { id: string; weight: number; status: string } } },
      );
      const mine = bodies.filter((b) => b.data.deployment.id === created.id);
      expect(
        mine.some((b) => b.type === 'deployment.status' && b.data.deployment.status === 'succeeded'),
      ).toBe(true);
      return requests;
    });
    for (const request of received) {
      const payload = verifyWebhook(request, secret) as { type: string };
      expect(payload.type).toMatch(/^deployment\./);
    }
    const bodies = received.map(
      (r) =>
        r.json as {
          type: string;
          server: string;
          environment: string;
          version: string;
          data: {
            deployment: { id: string; weight: number };
            desired: Record<string, { version: string; weight: number }[]>;
          };
        },
    );
    const steps = bodies.filter((b) => b.type === 'deployment.step' && b.data.deployment.id === created.id);
    expect(steps.map((b) => b.data.deployment.weight)).toEqual([10, 50, 100]);
    const tenth = steps[0];
    expect(tenth).toMatchObject({ server: 'weather', environment: 'staging', version: '1.1.0' });
    expect(tenth?.data.desired.staging).toEqual([
      { version: '1.0.0', weight: 90 },
      { version: '1.1.0', weight: 10 },
    ]);
    // A tampered body fails verification.
    const forged = {
      ...(received[0] as (typeof received)[number]),
      body: (received[0]?.body ?? '').replace('weather', 'w3ather'),
    };
    expect(() => verifyWebhook(forged, secret)).toThrow();
  });

  it('a timer job delivered late, twice or after a promote changes nothing', async () => {
    const created = (await call('POST', '/servers/weather/deployments', {
      version: '1.2.0',
      environment: 'staging',
      strategy: 'canary',
      steps: [{ weight: 20, pause: '1h' }, { weight: 100 }],
    })) as unknown as Deployment;
    // The job for this pause exists, an hour out; running its processor now does nothing.
    const { onTimer } = await import('#core/deploy/system-events.ts');
    expect((await onTimer(deps, created.id, 0))?.status).toBe('paused');
    await call('POST', `/servers/weather/deployments/${created.id}/promote`);
    expect((await onTimer(deps, created.id, 0))?.status).toBe('succeeded');
    expect((await get(created.id)).events.filter((e) => e.action === 'advance')).toEqual([]);
  });
});

describe('verification seam (results written directly)', () => {
  it('waits in verifying until enough consecutive passes, then rolls out', async () => {
    await call('POST', '/servers/weather/deployments', { version: '1.0.0', environment: 'development' });
    const d = (await call('POST', '/servers/weather/deployments', {
      version: '1.1.0',
      environment: 'development',
      verification: { required: true, passes: 2, timeout: '1h' },
    })) as unknown as Deployment;
    expect(d).toMatchObject({
      status: 'verifying',
      awaiting: 'verification',
      weight: 0,
      verification: { passes: 0 },
    });
    expect((await reportStartupResult(deps, d.id, { passed: true, detail: 'GET /health 200' }))?.status).toBe(
      'verifying',
    );
    expect((await reportStartupResult(deps, d.id, { passed: true, detail: 'GET /health 200' }))?.status).toBe(
      'succeeded',
    );
    // A late report changes nothing.
    expect((await reportStartupResult(deps, d.id, { passed: false }))?.status).toBe('succeeded');
  });

  it('a failed startup check fails the deployment, or rolls it back by policy', async () => {
    for (const [rollbackOnFailure, status] of [
      [false, 'failed'],
      [true, 'rolled-back'],
    ] as const) {
      const d = (await call('POST', '/servers/weather/deployments', {
        version: '1.2.0',
        environment: 'development',
        rollbackOnFailure,
        verification: { required: true },
      })) as unknown as Deployment;
      const after = await reportStartupResult(deps, d.id, { passed: false, detail: 'connection refused' });
      expect(after).toMatchObject({
        status,
        weight: 0,
        statusReason: 'startup check failed: connection refused',
      });
    }
  });

  it('times out through the verification deadline job', async () => {
    const d = (await call('POST', '/servers/weather/deployments', {
      version: '1.2.0',
      environment: 'development',
      verification: { required: true, timeout: '1s' },
    })) as unknown as Deployment;
    const failed = await eventually(async () => {
      const now = await get(d.id);
      expect(now.status).toBe('failed');
      return now;
    });
    expect(failed.statusReason).toBe('startup checks did not pass in time');
  });

  it('an analysis step waits for its verdict', async () => {
    const d = (await call('POST', '/servers/weather/deployments', {
      version: '1.2.0',
      environment: 'development',
      strategy: 'canary',
      steps: [{ weight: 25, analyze: true }, { weight: 100 }],
    })) as unknown as Deployment;
    expect(d).toMatchObject({ status: 'progressing', awaiting: 'analysis', weight: 25 });
    expect((await reportAnalysisResult(deps, d.id, 1, { passed: true }))?.status).toBe('progressing');
    expect((await reportAnalysisResult(deps, d.id, 0, { passed: true }))?.status).toBe('succeeded');
  });
});
