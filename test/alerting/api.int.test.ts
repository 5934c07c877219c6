import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schedulerId } from '#core/alerting/schedule.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { requests, write } from './helpers.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let queue: Queue;
let writer: TelemetryWriter;
const admin = bearer(BOOTSTRAP_TOKEN);

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  queue = new Queue(QUEUES.alerts, { connection: stores.redis.connection(), prefix: QUEUE_PREFIX });
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
});

afterAll(async () => {
  await writer?.close();
  await queue?.close();
  await api?.app.close();
  await stores?.close();
});

const call = async (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
  headers = admin,
) => {
  const res = await api.app.inject({ method, url: `/api/v1${url}`, headers, payload: payload as object });
  return {
    status: res.statusCode,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely by the assertions
    body: res.json() as Record<string, any>,
    type: res.headers['content-type'],
  };
};
const scheduler = async (id: string) =>
  (await queue.getJobSchedulers()).find((s) => s.key === schedulerId(id));
const counts = async () => {
  const [rules] = await stores.db.query<{ n: number }>('SELECT count(*) AS n FROM alert_rules');
  const [audit] = await stores.db.query<{ n: number }>('SELECT count(*) AS n FROM audit_events');
  return { rules: rules?.n, audit: audit?.n };
};

const errorRule = {
  name: 'Checkout errors',
  server: 'checkout',
  kind: 'threshold',
  metric: 'errorRate',
  threshold: 0.05,
  interval: '30s',
  for: '0s',
  labels: { team: 'payments' },
  annotations: { summary: 'error rate {{ $value }}', runbookUrl: 'https://runbooks.example.com/checkout' },
};

describe('alert rules API', () => {
  it('creates, shows, changes and deletes a rule, keeping one job scheduler per enabled rule', async () => {
    const created = await call('POST', '/alert-rules', errorRule);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'Checkout errors',
      version: '*',
      environment: null,
      interval: '30s',
      window: '5m',
      for: '0s',
      severity: 'warning',
      noDataState: 'NoData',
      execErrState: 'Error',
      groupWait: '30s',
      enabled: true,
      createdBy: 'bootstrap',
    });
    const id = created.body.id as string;
    expect((await scheduler(id))?.every).toBe(30_000);

    expect((await call('GET', `/alert-rules/${id}`)).body).toMatchObject({
      id,
      labels: { team: 'payments' },
    });
    expect((await call('GET', '/alert-rules?server=checkout')).body.rules).toHaveLength(1);
    expect((await call('GET', '/alert-rules?server=elsewhere')).body.rules).toHaveLength(0);

    const patched = await call('PATCH', `/alert-rules/${id}`, { interval: '5s', threshold: 0.1 });
    expect(patched.body).toMatchObject({ interval: '5s', threshold: 0.1, metric: 'errorRate' });
    expect((await scheduler(id))?.every).toBe(5000);

    await call('PATCH', `/alert-rules/${id}`, { enabled: false });
    expect(await scheduler(id)).toBeUndefined();
    await call('PATCH', `/alert-rules/${id}`, { enabled: true });
    expect((await scheduler(id))?.every).toBe(5000);

    expect((await call('DELETE', `/alert-rules/${id}`)).status).toBe(200);
    expect(await scheduler(id)).toBeUndefined();
    expect((await call('GET', `/alert-rules/${id}`)).body).toMatchObject({
      status: 404,
      code: 'alert-rule-not-found',
    });
    const audit = await stores.db.query<{ action: string }>(
      'SELECT action FROM audit_events WHERE target_id = $1 ORDER BY seq',
      [id],
    );
    expect(audit.map((a) => a.action)).toEqual([
      'alert-rule.create',
      'alert-rule.update',
      'alert-rule.update',
      'alert-rule.update',
      'alert-rule.delete',
    ]);
  });

  it('refuses bad input with a clear problem and changes nothing', async () => {
    const before = await counts();
    const cases: [unknown, RegExp][] = [
      [{ ...errorRule, interval: '100ms' }, /interval must be at least 1s/],
      [{ ...errorRule, threshold: undefined }, /needs threshold/],
      [{ ...errorRule, version: 'newest' }, /not a version selector/],
      [{ ...errorRule, kind: 'relative' }, /use factor and\/or offset instead of threshold/],
      [{ ...errorRule, labels: { alertname: 'x' } }, /set by Pylee/],
      [{ ...errorRule, metric: 'p95' }, /metric/],
      [{ ...errorRule, surprise: true }, /surprise|additional/i],
      [{ ...errorRule, duringRollout: 'pause' }, /duringRollout.*notify.*hold.*inhibit/],
      [{ ...errorRule, correlationWindow: 'recently' }, /correlationWindow "recently" is not a duration/],
      [{ ...errorRule, correlationWindow: '2d' }, /correlationWindow must be at most/],
    ];
    for (const [body, detail] of cases) {
      const res = await call('POST', '/alert-rules', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.type).toContain('application/problem+json');
      expect(res.body.detail).toMatch(detail);
    }
    const ok = await call('POST', '/alert-rules', { ...errorRule, name: 'kept' });
    const refused = await call('PATCH', `/alert-rules/${ok.body.id}`, { keepFiringFor: 'soon' });
    expect(refused.body).toMatchObject({ status: 400, code: 'invalid-alert-rule' });
    expect((await call('GET', `/alert-rules/${ok.body.id}`)).body.keepFiringFor).toBe('0s');
    expect((await call('POST', '/alert-rules', { ...errorRule, name: 'kept' })).body).toMatchObject({
      status: 409,
      code: 'alert-rule-exists',
    });
    const after = await counts();
    expect(after.rules).toBe((before.rules ?? 0) + 1);
    expect(after.audit).toBe((before.audit ?? 0) + 1);
    await call('DELETE', `/alert-rules/${ok.body.id}`);
  });

  it('takes threshold 0 as a threshold, on create and on change, and fires on any error', async () => {
    const now = Date.now();
    for (const [server, errorRate] of [
      ['zero-failing', 0.1],
      ['zero-clean', 0],
    ] as const)
      await write(
        writer,
        requests({
          orgId: api.org.id,
          server,
          version: '1.0.0',
          from: now - 60_000,
          to: now,
          count: 20,
          errorRate,
        }),
      );
    const anyError = { ...errorRule, name: 'Any error', server: 'zero-failing', threshold: 0, window: '2m' };
    const created = await call('POST', '/alert-rules', anyError);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ kind: 'threshold', metric: 'errorRate', threshold: 0 });
    expect((await call('GET', `/alert-rules/${created.body.id}`)).body.threshold).toBe(0);

    const fired = await call('POST', `/alert-rules/${created.body.id}/evaluate`);
    expect(fired.body).toMatchObject({ error: null, transitions: [{ from: 'inactive', to: 'firing' }] });
    expect(fired.body.alerts).toMatchObject([{ state: 'firing', value: 0.1, threshold: 0 }]);

    // Changed to 0 from another threshold: the clean server (error rate exactly 0) does not fire.
    const clean = await call('POST', '/alert-rules', {
      ...anyError,
      name: 'Clean',
      server: 'zero-clean',
      threshold: 0.05,
    });
    expect(clean.body.threshold).toBe(0.05);
    const patched = await call('PATCH', `/alert-rules/${clean.body.id}`, { threshold: 0 });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.threshold).toBe(0);
    const quiet = await call('POST', `/alert-rules/${clean.body.id}/evaluate`);
    expect(quiet.body).toMatchObject({ series: 1, transitions: [] });
    expect(quiet.body.alerts.filter((a: { state: string }) => a.state === 'firing')).toEqual([]);

    // null still means "no threshold", which a threshold rule needs; the rule stays as it was.
    const cleared = await call('PATCH', `/alert-rules/${clean.body.id}`, { threshold: null });
    expect(cleared.body).toMatchObject({ status: 400, code: 'invalid-alert-rule' });
    expect(cleared.body.detail).toMatch(/needs threshold/);
    expect((await call('GET', `/alert-rules/${clean.body.id}`)).body.threshold).toBe(0);
    // 0 is kept for the other numbers too: a relative rule with offset 0 and a factor.
    const relative = await call('POST', '/alert-rules', {
      ...errorRule,
      name: 'Relative zero offset',
      kind: 'relative',
      threshold: undefined,
      version: 'canary',
      factor: 1.5,
      offset: 0,
    });
    expect(relative.status, JSON.stringify(relative.body)).toBe(201);
    expect(relative.body).toMatchObject({ factor: 1.5, offset: 0 });

    for (const id of [created.body.id, clean.body.id, relative.body.id])
      await call('DELETE', `/alert-rules/${id}`);
  });

  it('hides rules of other servers from a token limited to some, and of other orgs', async () => {
    const rule = await call('POST', '/alert-rules', {
      ...errorRule,
      name: 'hidden',
      server: 'secret-server',
    });
    const limited = bearer(await api.token(['write'], { servers: ['checkout'] }));
    expect((await call('GET', `/alert-rules/${rule.body.id}`, undefined, limited)).status).toBe(404);
    expect((await call('GET', '/alert-rules', undefined, limited)).body.rules).toEqual([]);
    expect(
      (await call('POST', '/alert-rules', { ...errorRule, name: 'x', server: 'secret-server' }, limited))
        .status,
    ).toBe(404);
    const other = await call('POST', '/orgs', { slug: 'other-org' });
    const otherAdmin = bearer(other.body.token as string);
    expect((await call('DELETE', `/alert-rules/${rule.body.id}`, undefined, otherAdmin)).status).toBe(404);
    expect((await call('GET', `/alert-rules/${rule.body.id}`)).status).toBe(200);
    await call('DELETE', `/alert-rules/${rule.body.id}`);
  });
});

describe('alerts API', () => {
  it('lists firing alerts by state, server and version; acknowledges; shows history per server and version', async () => {
    const now = Date.now();
    await write(
      writer,
      requests({
        orgId: api.org.id,
        server: 'ledger',
        version: '3.1.0',
        from: now - 60_000,
        to: now,
        count: 50,
        errorRate: 0.5,
      }),
    );
    const rule = await call('POST', '/alert-rules', {
      ...errorRule,
      name: 'Ledger errors',
      server: 'ledger',
      window: '2m',
    });
    const evaluated = await call('POST', `/alert-rules/${rule.body.id}/evaluate`);
    expect(evaluated.status).toBe(200);
    expect(evaluated.body).toMatchObject({
      skipped: null,
      series: 1,
      error: null,
      transitions: [{ from: 'inactive', to: 'firing' }],
    });

    const firing = await call('GET', '/alerts?state=firing&server=ledger&version=3.1.0');
    expect(firing.body.alerts).toHaveLength(1);
    const alert = firing.body.alerts[0];
    expect(alert).toMatchObject({
      state: 'firing',
      ruleName: 'Ledger errors',
      server: 'ledger',
      version: '3.1.0',
      environment: 'production',
      labels: { alertname: 'Ledger errors', team: 'payments' },
      threshold: 0.05,
      acknowledgement: null,
    });
    expect((await call('GET', '/alerts?state=pending&server=ledger')).body.alerts).toEqual([]);
    expect((await call('GET', '/alerts?state=resolved&version=9.9.9')).body.alerts).toEqual([]);
    expect((await call('GET', '/alerts?state=burning')).body).toMatchObject({
      status: 400,
      code: 'invalid-alert-state',
    });

    const acked = await call('POST', `/alerts/${alert.id}/acknowledge`, { comment: 'rolling back' });
    expect(acked.body.acknowledgement).toMatchObject({ by: 'bootstrap', comment: 'rolling back' });
    const shown = await call('GET', `/alerts/${alert.id}`);
    expect(shown.body.history).toMatchObject([{ from: 'inactive', to: 'firing', version: '3.1.0' }]);

    expect((await call('GET', '/alerts/history?server=ledger')).body.events).toHaveLength(1);
    expect((await call('GET', '/alerts/history?server=ledger&version=3.1.0')).body.events).toHaveLength(1);
    expect((await call('GET', '/alerts/history?server=ledger&version=3.0.0')).body.events).toHaveLength(0);

    // Deleting the rule resolves the alert; the history stays.
    await call('DELETE', `/alert-rules/${rule.body.id}`);
    const history = (await call('GET', '/alerts/history?server=ledger')).body.events;
    expect(history.map((e: { to: string }) => e.to)).toEqual(['resolved', 'firing']);
    expect((await call('GET', `/alerts/${alert.id}`)).status).toBe(404);
  });

  it('refuses to acknowledge an alert that is not active, and unknown ids', async () => {
    const rule = await call('POST', '/alert-rules', {
      ...errorRule,
      name: 'Quiet',
      server: 'quiet',
      noDataState: 'NoData',
    });
    await call('POST', `/alert-rules/${rule.body.id}/evaluate`);
    const [nodata] = (await call('GET', '/alerts?state=nodata&server=quiet')).body.alerts;
    expect(nodata).toMatchObject({ state: 'nodata', server: 'quiet' });
    expect((await call('POST', `/alerts/${nodata.id}/acknowledge`, {})).body).toMatchObject({
      status: 409,
      code: 'alert-not-active',
    });
    expect((await call('POST', '/alerts/01890000-0000-7000-8000-000000000000/acknowledge', {})).status).toBe(
      404,
    );
  });
});
