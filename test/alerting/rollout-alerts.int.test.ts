import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workers } from '#alerts/workers.ts';
import { getAlert } from '#core/alerting/alerts.ts';
import type { RuleInput } from '#core/alerting/model.ts';
import { createRule } from '#core/alerting/rules.ts';
import type { Context } from '#core/auth/principal.ts';
import { evaluateAnalysis, startStepAnalyses, type CanaryDeps } from '#core/canary/analysis.ts';
import { canaryScheduler } from '#core/canary/queue.ts';
import { createDeployment } from '#core/deploy/create.ts';
import { openDeployDeps } from '#core/deploy/wiring.ts';
import type { AlertNotice } from '#core/notify/events.ts';
import { createChannel } from '#core/notify/channels.ts';
import { renderSlack } from '#core/notify/slack.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import { createServer } from '#core/registry/servers.ts';
import { setVariable } from '#core/registry/variables.ts';
import { createVersion } from '#core/registry/versions.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { testSecretBox } from '#test/helpers/api.ts';
import { startSink, type Sink } from '#test/helpers/sink.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { startTestWorkers } from '#test/helpers/workers.ts';
import { HEALTHY, requestRows, type Traffic } from '../canary/telemetry.ts';

// Rollout-aware alerting end to end: real alert workers on BullMQ evaluating every second, a real
// canary analysis driving a real rollout, notifications through the real publisher to a webhook sink.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let writer: TelemetryWriter;
let sink: Sink;
let workers: Workers;
let ctx: Context;
let orgId: string;
let canary: CanaryDeps;
let queue: Queue;
let closeDeploy: () => Promise<void>;

const MINUTES = 30;
const end = Math.floor(Date.now() / 60_000) * 60_000;
const start = end - MINUTES * 60_000;
const FAILING: Traffic = { perMinute: 60, errorRate: 0.12, latencyMs: 300 };

beforeAll(async () => {
  stores = await openTestStores();
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
  sink = await startSink();
  const { org } = await bootstrap(stores.db);
  orgId = org.id;
  ctx = { principal: systemPrincipal(org) };
  await createChannel({ db: stores.db, box: testSecretBox, policy: { allowPrivate: true } }, ctx, {
    name: 'on-call webhook',
    kind: 'webhook',
    url: `${sink.url}/hook`,
    events: ['alert.*'],
  });
  workers = await startTestWorkers(stores, {
    alerts: { reconcileEveryMs: 200, dispatchTickMs: 100 },
    // The test starts and judges analyses itself, when the alerts are where it wants them.
    canary: { sweepEveryMs: 3_600_000 },
  });
  const deploy = openDeployDeps({ db: stores.db, redis: stores.redis, logger: silentLogger });
  closeDeploy = deploy.close;
  queue = new Queue(QUEUES.canary, { connection: stores.redis.connection(), prefix: QUEUE_PREFIX });
  canary = {
    db: stores.db,
    warehouse: stores.warehouse,
    publisher: { publish: async () => {} },
    scheduler: canaryScheduler(queue),
    deploy: deploy.deps,
  };
}, 60_000);

afterAll(async () => {
  await workers?.close();
  await queue?.close();
  await closeDeploy?.();
  await writer?.close();
  await sink?.close();
  await stores?.close();
});

interface Payload {
  type: string;
  data: { alerts?: AlertNotice[]; reason?: string; deploymentId?: string; status?: string };
}
const payloads = (type: string, server: string) =>
  sink
    .on('/hook')
    .filter((r) => r.status !== undefined && r.status < 300)
    .map((r) => r.json as Payload)
    .filter((p) => p?.type === type && JSON.stringify(p).includes(`"${server}"`));

async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>) {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** 1.0.0 stable in production, 1.1.0 rolling out as a canary at 10 % with an analysis step. */
async function canaryRollout(server: string, candidate: Traffic, seeds = [2, 3]) {
  await createServer(stores.db, ctx, { slug: server });
  // 1.1.0 bumps its database driver a major: the change the messages should name.
  for (const [version, db] of [
    ['1.0.0', '2.1.0'],
    ['1.1.0', '3.0.0'],
  ] as const) {
    await createVersion(stores.db, ctx, server, {
      version,
      packages: [{ registryType: 'npm', identifier: '@acme/db', version: db, transport: { type: 'stdio' } }],
    });
  }
  // A secret set for production just before the rollout: the alerts say they began after it.
  await setVariable(
    stores.db,
    ctx,
    testSecretBox,
    { serverSlug: server, environment: 'production' },
    'DB_PASSWORD',
    {
      value: 'hunter2-rotated',
      secret: true,
    },
  );
  const deps = canary.deploy as NonNullable<CanaryDeps['deploy']>;
  await createDeployment(deps, ctx, server, { version: '1.0.0', environment: 'production' });
  const scope = { orgId, server, environment: 'production' };
  const w = { from: start, minutes: MINUTES };
  await writer.writeRequests(requestRows({ ...scope, version: '1.0.0' }, HEALTHY, w, seeds[0] as number));
  await writer.writeRequests(requestRows({ ...scope, version: '1.1.0' }, candidate, w, seeds[1] as number));
  await writer.flush();
  return createDeployment(deps, ctx, server, {
    version: '1.1.0',
    environment: 'production',
    strategy: 'canary',
    steps: [{ weight: 10, analyze: true }, { weight: 100 }],
    rollbackOnFailure: true,
  });
}

const rule = (server: string, input: Partial<RuleInput>) =>
  createRule(stores.db, ctx, {
    name: `${input.duringRollout ?? 'notify'} errors on ${server}`,
    server,
    environment: 'production',
    version: '1.1.0',
    kind: 'threshold',
    metric: 'errorRate',
    threshold: 0.05,
    interval: '1s',
    window: '30m',
    groupWait: '0s',
    groupInterval: '1s',
    ...input,
  } as RuleInput);

const instance = async (ruleId: string) =>
  (
    await stores.db.query<{ id: string; state: string; held_by: string | null }>(
      'SELECT id, state, held_by FROM alert_instances WHERE rule_id = $1',
      [ruleId],
    )
  )[0];

/** Waits for `more` further evaluations of the rule (and so for the dispatches between them). */
async function evaluated(ruleId: string, more = 2) {
  const count = async () =>
    Number(
      (
        await stores.db.query<{ n: number }>('SELECT evaluations AS n FROM alert_rules WHERE id = $1', [
          ruleId,
        ])
      )[0]?.n,
    );
  const from = await count();
  await until(`${more} more evaluations`, async () => (await count()) >= from + more);
}

/** Starts the step's analysis and judges it now, as the canary worker would. */
async function judge() {
  const ids = await startStepAnalyses(canary, { lookbackMs: Date.now() - start, lifetimeMs: 0 });
  expect(ids).toHaveLength(1);
  return evaluateAnalysis(canary, ids[0] as string);
}

describe('alerts during a canary rollout', () => {
  it('holds a failing canary’s alert, pages nothing, and says once that the rollback resolved it', async () => {
    const server = 'shop';
    const deployment = await canaryRollout(server, FAILING);
    const held = await rule(server, { duringRollout: 'hold' });
    const paging = await rule(server, { duringRollout: 'notify' });

    // The notify rule pages at once, carrying the rollout and what the alert began after.
    const fired = await until('the notify rule paging', () => payloads('alert.firing', server)[0]);
    const notice = fired.data.alerts?.[0] as AlertNotice;
    expect(notice).toMatchObject({
      ruleId: paging.id,
      version: '1.1.0',
      rollout: { deploymentId: deployment.id, step: 1, steps: 2, weight: 10, analysisRunning: true },
    });
    expect(notice.correlation?.map((c) => c.text)).toEqual([
      expect.stringMatching(/^began \d+ s after 1\.1\.0 reached 10 % in production$/),
      expect.stringMatching(/^began \d+ s after 1\.0\.0 reached 100 % in production$/),
      expect.stringMatching(
        /^began \d+ s after secret DB_PASSWORD was set in production \(org-wide\) by pylee$/,
      ),
    ]);
    // What changed from the stable version, in the payload and the Slack text; never the secret.
    expect(notice.changes?.summary).toMatch(/^Changed: @acme\/db 2\.1\.0 → 3\.0\.0/);
    expect(JSON.stringify(fired)).not.toContain('hunter2');
    const slack = JSON.stringify(renderSlack({ ...fired, labels: {}, occurredAt: '' } as never));
    expect(slack).toContain('Rollout: deployment');
    expect(slack).toContain('reached 10 % in production');
    expect(slack).toContain('Changed: @acme/db 2.1.0 → 3.0.0');

    // The hold rule fires too, but its notification is kept back while the analysis decides.
    await until('the held alert', async () => (await instance(held.id))?.held_by === deployment.id);
    const view = await getAlert(stores.db, ctx.principal, (await instance(held.id))!.id);
    expect(view).toMatchObject({ state: 'firing', heldBy: { deploymentId: deployment.id } });
    expect(view.history.map((h) => h.reason).join(' | ')).toContain('held: a canary analysis');
    await evaluated(held.id);
    expect(payloads('alert.firing', server).every((p) => p.data.alerts?.[0]?.ruleId !== held.id)).toBe(true);

    expect(await judge()).toEqual({ status: 'completed', verdict: 'fail' });
    // The verdict's report lists the changes beside the regressions.
    const [analysis] = await stores.db.query<{
      report: { changes: { summary: string; rows: { name: string }[] } };
    }>('SELECT report FROM canary_analyses WHERE deployment_id = $1', [deployment.id]);
    expect(analysis?.report.changes.summary).toMatch(/^Changed: @acme\/db 2\.1\.0 → 3\.0\.0/);
    expect(analysis?.report.changes.rows.map((r) => r.name)).toContain('@acme/db');

    // One message for the held alert; the paged one resolves saying why.
    const rolledBack = await until('the rolled-back message', () => payloads('alert.rolled-back', server)[0]);
    expect(rolledBack.data).toMatchObject({
      deploymentId: deployment.id,
      status: 'resolved',
      reason:
        '1.1.0 no longer receives traffic in production: rolled back by Pylee after its canary analysis failed',
      alerts: [{ ruleId: held.id, status: 'resolved' }],
    });
    const resolved = await until('the paged alert resolving', () => payloads('alert.resolved', server)[0]);
    expect(resolved.data.alerts?.[0]).toMatchObject({
      ruleId: paging.id,
      resolution:
        '1.1.0 no longer receives traffic in production: rolled back by Pylee after its canary analysis failed',
    });
    expect(await instance(held.id)).toMatchObject({ state: 'resolved', held_by: null });
    // The hold rule never paged, and the rollback message went out once.
    await evaluated(held.id);
    expect(payloads('alert.firing', server).filter((p) => p.data.alerts?.[0]?.ruleId === held.id)).toEqual(
      [],
    );
    expect(payloads('alert.rolled-back', server)).toHaveLength(1);
    // The rolled-back version gets no new alerts, though its errors are still in the window.
    expect((await instance(paging.id))?.state).toBe('resolved');
  });

  it('sends what still fires once a passing canary is promoted', async () => {
    const server = 'cart';
    // Errors like the baseline's (seeds with no chance difference: the analysis passes), above the
    // rule's threshold.
    const deployment = await canaryRollout(server, HEALTHY);
    const held = await rule(server, { duringRollout: 'hold', threshold: 0.001 });
    await until('the held alert', async () => (await instance(held.id))?.held_by === deployment.id);
    await evaluated(held.id);
    expect(payloads('alert.firing', server)).toEqual([]);

    expect(await judge()).toEqual({ status: 'completed', verdict: 'pass' });
    const fired = await until('the released alert', () => payloads('alert.firing', server)[0]);
    expect(fired.data.alerts?.[0]).toMatchObject({ ruleId: held.id, version: '1.1.0', rollout: null });
    expect(await instance(held.id)).toMatchObject({ state: 'firing', held_by: null });
    expect(payloads('alert.rolled-back', server)).toEqual([]);
  });
});
