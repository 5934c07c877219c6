import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateRule } from '#core/alerting/engine.ts';
import { flushDueGroups, publishPending } from '#core/alerting/groups.ts';
import type { RuleInput } from '#core/alerting/model.ts';
import { createRule, deleteRule } from '#core/alerting/rules.ts';
import type { AlertGroupData } from '#core/notify/events.ts';
import type { Context } from '#core/auth/principal.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { noScheduler } from '#core/deploy/scheduler.ts';
import { createDeployment } from '#core/deploy/create.ts';
import { environmentStatus } from '#core/deploy/queries.ts';
import { rollback } from '#core/deploy/rollback.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import { writeResults, type HealthResult } from '#core/health/results.ts';
import { createServer } from '#core/registry/servers.ts';
import { createVersion } from '#core/registry/versions.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { cpuPoints, recordingPublisher, requests, write } from './helpers.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let writer: TelemetryWriter;
// Whole seconds, an hour ago: windows read raw rows, and every test owns its server name.
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const S = 1000;

beforeAll(async () => {
  stores = await openTestStores();
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
});

afterAll(async () => {
  await writer?.close();
  await stores?.close();
});

describe.each(DB_DRIVERS)('alert rule evaluation on $name', (driver) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let orgId: string;
  let ctx: Context;
  let n = 0;
  const server = () => `${driver.name}-svc-${++n}`;
  const deps = () => ({ db, warehouse: stores.warehouse });

  beforeAll(async () => {
    ({ db, cleanup } = await driver.open());
    await migrateDb(db);
    const { org } = await bootstrap(db);
    orgId = org.id;
    ctx = { principal: systemPrincipal(org) };
  });
  afterAll(async () => cleanup?.());

  const rule = (input: Partial<RuleInput> & Pick<RuleInput, 'server'>) =>
    createRule(db, ctx, {
      name: `rule-${++n}`,
      kind: 'threshold',
      metric: 'errorRate',
      threshold: 0.05,
      window: '1m',
      interval: '10s',
      groupWait: '0s',
      ...input,
    } as RuleInput);
  const traffic = (
    srv: string,
    from: number,
    to: number,
    extra: Partial<Parameters<typeof requests>[0]> = {},
  ) => write(writer, requests({ orgId, server: srv, version: '1.0.0', from, to, count: 60, ...extra }));
  const states = async (ruleId: string) =>
    (
      await db.query<{ state: string; labels: Record<string, string> }>(
        'SELECT state, labels FROM alert_instances WHERE rule_id = $1 ORDER BY fingerprint',
        [ruleId],
      )
    ).map((r) => r.state);
  const history = async (ruleId: string) =>
    (
      await db.query<{ from_state: string; to_state: string }>(
        'SELECT from_state, to_state FROM alert_history WHERE rule_id = $1 ORDER BY at, id',
        [ruleId],
      )
    ).map((r) => `${r.from_state}→${r.to_state}`);
  // Flushes every due group of the org; returns the notifications about `srv` (other tests' groups are due too).
  const notify = async (now: number, srv?: string) => {
    const publisher = recordingPublisher();
    await flushDueGroups(db, now);
    await publishPending(db, publisher, silentLogger, now);
    return publisher.events.filter((e) => srv === undefined || e.server === srv);
  };

  it('fires a regression pending → firing after `for`, notifies once, resolves when data recovers', async () => {
    const srv = server();
    const r = await rule({
      server: srv,
      for: '20s',
      groupInterval: '10s',
      annotations: { summary: 'errors at {{ $value }}' },
    });
    await traffic(srv, T0 - 60 * S, T0);
    expect((await evaluateRule(deps(), r.id, { now: T0 })).transitions).toEqual([]);
    expect(await states(r.id)).toEqual([]);

    await traffic(srv, T0, T0 + 60 * S, { errorRate: 0.5 });
    const first = await evaluateRule(deps(), r.id, { now: T0 + 30 * S });
    expect(first.transitions).toMatchObject([{ from: 'inactive', to: 'pending' }]);
    expect((await evaluateRule(deps(), r.id, { now: T0 + 40 * S })).transitions).toEqual([]);
    expect(await notify(T0 + 45 * S, srv)).toEqual([]);
    const fired = await evaluateRule(deps(), r.id, { now: T0 + 50 * S });
    expect(fired.transitions).toMatchObject([
      {
        from: 'pending',
        to: 'firing',
        labels: { alertname: r.name, server: srv, version: '1.0.0', environment: 'production' },
      },
    ]);

    const [firing] = await notify(T0 + 50 * S, srv);
    expect(firing).toMatchObject({
      type: 'alert.firing',
      orgId,
      server: srv,
      environment: 'production',
      version: '1.0.0',
    });
    const data = firing?.data as AlertGroupData;
    expect(data.status).toBe('firing');
    expect(data.alerts).toHaveLength(1);
    expect(data.alerts[0]).toMatchObject({
      status: 'firing',
      ruleId: r.id,
      severity: 'warning',
      metric: 'error rate',
      threshold: 0.05,
      endsAt: null,
      comparePath: `/servers/${srv}/compare?candidate=1.0.0&environment=production`,
    });
    expect(data.alerts[0]?.value).toBeCloseTo(0.5, 1);
    expect(data.alerts[0]?.annotations.summary).toMatch(/^errors at 0\.\d+$/);
    // Still firing: nothing new to say until repeatInterval.
    await evaluateRule(deps(), r.id, { now: T0 + 60 * S });
    expect(await notify(T0 + 70 * S, srv)).toEqual([]);

    await traffic(srv, T0 + 60 * S, T0 + 180 * S);
    const resolved = await evaluateRule(deps(), r.id, { now: T0 + 130 * S });
    expect(resolved.transitions).toMatchObject([{ from: 'firing', to: 'resolved' }]);
    const [done] = await notify(T0 + 130 * S, srv);
    expect(done).toMatchObject({ type: 'alert.resolved' });
    expect((done?.data as AlertGroupData).alerts[0]).toMatchObject({
      status: 'resolved',
      endsAt: new Date(T0 + 130 * S).toISOString(),
    });
    expect(await history(r.id)).toEqual(['inactive→pending', 'pending→firing', 'firing→resolved']);
    expect(await notify(T0 + 400 * S, srv)).toEqual([]);
  });

  it('goes back to inactive, without a notification, when the condition clears while pending', async () => {
    const srv = server();
    const r = await rule({ server: srv, for: '1m' });
    await traffic(srv, T0, T0 + 30 * S, { errorRate: 0.5 });
    await evaluateRule(deps(), r.id, { now: T0 + 30 * S });
    await traffic(srv, T0 + 30 * S, T0 + 150 * S);
    await evaluateRule(deps(), r.id, { now: T0 + 120 * S });
    expect(await history(r.id)).toEqual(['inactive→pending', 'pending→inactive']);
    expect(await notify(T0 + 200 * S, srv)).toEqual([]);
  });

  it('keeps firing for keepFiringFor after the condition clears', async () => {
    const srv = server();
    const r = await rule({ server: srv, window: '10s', keepFiringFor: '30s' });
    await traffic(srv, T0, T0 + 10 * S, { errorRate: 1 });
    await traffic(srv, T0 + 10 * S, T0 + 100 * S);
    expect((await evaluateRule(deps(), r.id, { now: T0 + 10 * S })).transitions).toMatchObject([
      { from: 'inactive', to: 'firing' },
    ]);
    await evaluateRule(deps(), r.id, { now: T0 + 30 * S });
    expect(await states(r.id)).toEqual(['firing']);
    await evaluateRule(deps(), r.id, { now: T0 + 39 * S });
    expect(await states(r.id)).toEqual(['firing']);
    await evaluateRule(deps(), r.id, { now: T0 + 40 * S });
    expect(await states(r.id)).toEqual(['resolved']);
  });

  it('applies noDataState: NoData, OK, Alerting and KeepLast', async () => {
    const empty = server();
    const noData = await rule({ server: empty });
    const ok = await rule({ server: empty, noDataState: 'OK' });
    const alerting = await rule({ server: empty, noDataState: 'Alerting', for: '10s' });
    for (const r of [noData, ok, alerting]) await evaluateRule(deps(), r.id, { now: T0 });
    expect(await states(noData.id)).toEqual(['nodata']);
    expect(await states(ok.id)).toEqual([]);
    expect(await states(alerting.id)).toEqual(['pending']);
    await evaluateRule(deps(), alerting.id, { now: T0 + 10 * S });
    expect(await states(alerting.id)).toEqual(['firing']);
    const [alert] = await db.query<{ labels: Record<string, string> }>(
      'SELECT labels FROM alert_instances WHERE rule_id = $1',
      [alerting.id],
    );
    expect(alert?.labels).toEqual({ alertname: alerting.name, server: empty, severity: 'warning' });

    // Data arrives: the no-data instance is over.
    await traffic(empty, T0 + 10 * S, T0 + 70 * S);
    await evaluateRule(deps(), noData.id, { now: T0 + 70 * S });
    expect(await states(noData.id)).toEqual(['inactive']);

    const srv = server();
    const keep = await rule({ server: srv, noDataState: 'KeepLast', window: '10s' });
    await traffic(srv, T0, T0 + 10 * S, { errorRate: 1 });
    await evaluateRule(deps(), keep.id, { now: T0 + 10 * S });
    await evaluateRule(deps(), keep.id, { now: T0 + 60 * S });
    expect(await states(keep.id)).toEqual(['firing']);
    const flipped = await rule({ server: srv, window: '10s' });
    await evaluateRule(deps(), flipped.id, { now: T0 + 10 * S });
    await evaluateRule(deps(), flipped.id, { now: T0 + 60 * S });
    // Default NoData: the firing alert leaves firing (its notification resolves) for nodata.
    expect(await history(flipped.id)).toEqual(['inactive→firing', 'firing→nodata']);
  });

  it('applies execErrState when the query fails: Error, Alerting, KeepLast', async () => {
    const srv = server();
    const error = await rule({ server: srv, threshold: 2 });
    const alerting = await rule({ server: srv, execErrState: 'Alerting' });
    const keep = await rule({ server: srv, execErrState: 'KeepLast', window: '10s' });
    await traffic(srv, T0, T0 + 10 * S, { errorRate: 1 });
    await evaluateRule(deps(), keep.id, { now: T0 + 10 * S });
    expect(await states(keep.id)).toEqual(['firing']);

    await stores.warehouse.client.command({ query: 'RENAME TABLE requests TO requests_away' });
    try {
      const failed = await evaluateRule(deps(), error.id, { now: T0 + 20 * S });
      expect(failed.error).toMatch(/requests/);
      await evaluateRule(deps(), alerting.id, { now: T0 + 20 * S });
      await evaluateRule(deps(), keep.id, { now: T0 + 20 * S });
    } finally {
      await stores.warehouse.client.command({ query: 'RENAME TABLE requests_away TO requests' });
    }
    const [row] = await db.query<{ state: string; last_error: string }>(
      'SELECT state, last_error FROM alert_instances WHERE rule_id = $1',
      [error.id],
    );
    expect(row?.state).toBe('error');
    expect(row?.last_error).toMatch(/requests/);
    const [ruleRow] = await db.query<{ last_error: string | null }>(
      'SELECT last_error FROM alert_rules WHERE id = $1',
      [error.id],
    );
    expect(ruleRow?.last_error).toMatch(/requests/);
    expect(await states(alerting.id)).toEqual(['firing']);
    expect(await states(keep.id)).toEqual(['firing']);

    // The store is back: the error instance ends, the rule's last error clears.
    await evaluateRule(deps(), error.id, { now: T0 + 30 * S });
    expect(await states(error.id)).toEqual(['inactive']);
    const [cleared] = await db.query<{ last_error: string | null }>(
      'SELECT last_error FROM alert_rules WHERE id = $1',
      [error.id],
    );
    expect(cleared?.last_error).toBeNull();
  });

  it('compares a candidate with the newest stable version: factor and offset', async () => {
    const srv = server();
    await createServer(db, ctx, { slug: srv });
    await createVersion(db, ctx, srv, { version: '1.0.0', status: 'stable' });
    await createVersion(db, ctx, srv, { version: '0.9.0', status: 'stable' });
    await createVersion(db, ctx, srv, { version: '1.1.0' });
    const slower = await rule({
      server: srv,
      kind: 'relative',
      metric: 'latencyP95',
      threshold: undefined,
      factor: 1.2,
      version: 'canary',
      environment: 'production',
    });
    const errors = await rule({
      server: srv,
      kind: 'relative',
      metric: 'errorRate',
      threshold: undefined,
      offset: 0.01,
    });
    await traffic(srv, T0 - 60 * S, T0, { version: '0.9.0', latencyMs: 500 });
    await traffic(srv, T0 - 60 * S, T0, { version: '1.0.0', latencyMs: 100, errorRate: 0.05 });
    await traffic(srv, T0 - 60 * S, T0, { version: '1.1.0', latencyMs: 130, errorRate: 0.05 });
    const first = await evaluateRule(deps(), slower.id, { now: T0 });
    expect(first.transitions).toMatchObject([
      { to: 'firing', labels: { version: '1.1.0' }, threshold: 120, value: 130 },
    ]);
    // 0.9.0 is older than stable: not a canary. Error rate equal to stable's: under stable + 1 point.
    expect((await evaluateRule(deps(), errors.id, { now: T0 })).transitions).toEqual([]);

    await traffic(srv, T0, T0 + 60 * S, { version: '1.0.0', latencyMs: 100, errorRate: 0.05 });
    await traffic(srv, T0, T0 + 60 * S, { version: '1.1.0', latencyMs: 100, errorRate: 0.1 });
    const worse = await evaluateRule(deps(), errors.id, { now: T0 + 60 * S });
    expect(worse.transitions).toMatchObject([{ to: 'firing', labels: { version: '1.1.0' } }]);
    expect(worse.transitions[0]?.threshold).toBeCloseTo(0.06, 5);
    const [notice] = await notify(T0 + 60 * S, srv).then((events) =>
      events.flatMap((e) => (e.data as AlertGroupData).alerts).filter((a) => a.ruleId === errors.id),
    );
    expect(notice).toMatchObject({
      baselineVersion: '1.0.0',
      comparePath: expect.stringContaining('baseline=1.0.0'),
    });
    expect((await evaluateRule(deps(), slower.id, { now: T0 + 60 * S })).transitions).toMatchObject([
      { from: 'firing', to: 'resolved' },
    ]);

    // No stable version with traffic: nothing to compare with → no data.
    const lonely = server();
    const noBaseline = await rule({
      server: lonely,
      kind: 'relative',
      metric: 'errorRate',
      threshold: undefined,
      factor: 2,
    });
    await traffic(lonely, T0 - 60 * S, T0, { version: '2.0.0' });
    await evaluateRule(deps(), noBaseline.id, { now: T0 });
    expect(await states(noBaseline.id)).toEqual(['nodata']);
  });

  it('takes stable and canary from what runs where once an environment has deployments', async () => {
    const srv = server();
    await createServer(db, ctx, { slug: srv });
    // The registry's statuses alone would make 1.2.0 the stable version and 1.1.0 no canary.
    await createVersion(db, ctx, srv, { version: '1.0.0', status: 'stable' });
    await createVersion(db, ctx, srv, { version: '1.1.0' });
    await createVersion(db, ctx, srv, { version: '1.2.0', status: 'stable' });
    const deployDeps = { db, publisher: recordingPublisher(), scheduler: noScheduler };
    await createDeployment(deployDeps, ctx, srv, { version: '1.0.0', environment: 'production' });
    await createDeployment(deployDeps, ctx, srv, {
      version: '1.1.0',
      environment: 'production',
      strategy: 'canary',
    });
    const [production] = (await environmentStatus(db, ctx.principal, srv)).filter(
      (e) => e.environment === 'production',
    );
    expect(production).toMatchObject({
      stable: { version: '1.0.0' },
      canary: { version: '1.1.0', weight: 10 },
    });

    const slower = await rule({
      server: srv,
      kind: 'relative',
      metric: 'latencyP95',
      threshold: undefined,
      factor: 1.2,
      version: 'canary',
      environment: 'production',
    });
    const onStable = await rule({ server: srv, version: 'stable', metric: 'latencyP95', threshold: 150 });
    const baseline = await rule({
      server: srv,
      kind: 'relative',
      metric: 'errorRate',
      threshold: undefined,
      offset: 0.01,
    });
    const window = async (from: number) => {
      await traffic(srv, from, from + 60 * S, { version: '1.0.0', latencyMs: 100 });
      await traffic(srv, from, from + 60 * S, { version: '1.1.0', latencyMs: 130, errorRate: 0.05 });
      await traffic(srv, from, from + 60 * S, { version: '1.2.0', latencyMs: 200 });
    };
    await window(T0 - 60 * S);
    // Canary 1.1.0 against stable 1.0.0 (100 ms × 1.2), not against the registry's newest stable 1.2.0.
    expect((await evaluateRule(deps(), slower.id, { now: T0 })).transitions).toMatchObject([
      {
        from: 'inactive',
        to: 'firing',
        labels: { version: '1.1.0', environment: 'production' },
        threshold: 120,
        value: 130,
      },
    ]);
    const [notice] = await notify(T0, srv).then((events) =>
      events.flatMap((e) => (e.data as AlertGroupData).alerts).filter((a) => a.ruleId === slower.id),
    );
    expect(notice).toMatchObject({
      baselineVersion: '1.0.0',
      comparePath: expect.stringContaining('baseline=1.0.0'),
    });
    // `stable` is 1.0.0 (p95 100 ms), so the 150 ms threshold holds nowhere; 1.2.0 (200 ms) is not watched.
    expect((await evaluateRule(deps(), onStable.id, { now: T0 })).transitions).toEqual([]);
    // The default baseline is the deployed stable version: 1.1.0 and 1.2.0 are compared with 1.0.0.
    const against = await evaluateRule(deps(), baseline.id, { now: T0 });
    expect(against.transitions).toMatchObject([{ to: 'firing', labels: { version: '1.1.0' } }]);
    expect(against.transitions[0]?.threshold).toBeCloseTo(0.01, 5);

    // Rolled back: no rollout, no canary. 1.1.0 still has traffic in the window, but its alert ends
    // (the series is gone) rather than turning to no data.
    const back = await rollback(deployDeps, ctx, srv, { mode: 'immediate', environment: 'production' });
    expect(back.environments[0]).toMatchObject({ from: '1.1.0', to: '1.0.0' });
    const [after] = (await environmentStatus(db, ctx.principal, srv)).filter(
      (e) => e.environment === 'production',
    );
    expect(after).toMatchObject({ stable: { version: '1.0.0' }, canary: null });
    await window(T0);
    const resolved = await evaluateRule(deps(), slower.id, { now: T0 + 30 * S });
    expect(resolved.series).toBe(0);
    expect(resolved.transitions).toMatchObject([
      { from: 'firing', to: 'resolved', labels: { version: '1.1.0' } },
    ]);
    expect(await states(slower.id)).toEqual(['resolved']);
    // Between rollouts the canary rule is idle, not in no data.
    expect((await evaluateRule(deps(), slower.id, { now: T0 + 40 * S })).transitions).toEqual([]);
    expect(await states(slower.id)).toEqual(['resolved']);
  });

  it('falls back to traffic and registry status in an environment that never had a deployment', async () => {
    const srv = server();
    await createServer(db, ctx, { slug: srv });
    await createVersion(db, ctx, srv, { version: '1.0.0', status: 'stable' });
    await createVersion(db, ctx, srv, { version: '1.1.0' });
    const deployDeps = { db, publisher: recordingPublisher(), scheduler: noScheduler };
    // Staging has deployments (1.1.0 stable there, no rollout); production never had one.
    await createDeployment(deployDeps, ctx, srv, { version: '1.1.0', environment: 'staging' });
    const r = await rule({
      server: srv,
      kind: 'relative',
      metric: 'latencyP95',
      threshold: undefined,
      factor: 1.2,
      version: 'canary',
    });
    for (const environment of ['production', 'staging']) {
      await traffic(srv, T0 - 60 * S, T0, { environment, version: '1.0.0', latencyMs: 100 });
      await traffic(srv, T0 - 60 * S, T0, { environment, version: '1.1.0', latencyMs: 130 });
    }
    const summary = await evaluateRule(deps(), r.id, { now: T0 });
    expect(summary.series).toBe(1);
    expect(summary.transitions).toMatchObject([
      { to: 'firing', labels: { version: '1.1.0', environment: 'production' }, threshold: 120 },
    ]);
  });

  it('raises one alert per operation, and per version inside a range', async () => {
    const srv = server();
    const perOp = await rule({ server: srv, operation: '*', threshold: 0.1 });
    const ranged = await rule({ server: srv, version: '^2.0.0', threshold: 0.1 });
    await traffic(srv, T0 - 60 * S, T0, { version: '2.1.0', operation: 'tools/call bad', errorRate: 0.5 });
    await traffic(srv, T0 - 60 * S, T0, { version: '2.1.0', operation: 'tools/call good' });
    await traffic(srv, T0 - 60 * S, T0, { version: '1.9.0', operation: 'tools/call good', errorRate: 0.9 });
    const ops = await evaluateRule(deps(), perOp.id, { now: T0 });
    expect(ops.series).toBe(3);
    expect(ops.transitions.map((t) => [t.labels.operation, t.labels.version]).sort()).toEqual([
      ['tools/call bad', '2.1.0'],
      ['tools/call good', '1.9.0'],
    ]);
    const range = await evaluateRule(deps(), ranged.id, { now: T0 });
    expect(range.series).toBe(1);
    expect(range.transitions).toMatchObject([{ to: 'firing', labels: { version: '2.1.0' } }]);
    expect(range.transitions[0]?.labels.operation).toBeUndefined();
  });

  it('fires on absence of data and on CPU', async () => {
    const srv = server();
    const absent = await rule({
      server: srv,
      kind: 'absence',
      metric: undefined,
      threshold: undefined,
      window: '1m',
    });
    const cpu = await rule({ server: srv, metric: 'cpu', threshold: 0.8 });
    await traffic(srv, T0 - 60 * S, T0);
    await writer.writeMetricPoints(
      cpuPoints({ orgId, server: srv, version: '1.0.0', from: T0 - 60 * S, to: T0, value: 0.9, points: 6 }),
    );
    await writer.flush();
    expect((await evaluateRule(deps(), absent.id, { now: T0 })).transitions).toEqual([]);
    expect((await evaluateRule(deps(), cpu.id, { now: T0 })).transitions).toMatchObject([
      { to: 'firing', value: 0.9, labels: { version: '1.0.0' } },
    ]);
    expect((await evaluateRule(deps(), absent.id, { now: T0 + 90 * S })).transitions).toMatchObject([
      { from: 'inactive', to: 'firing', value: 0 },
    ]);
  });

  it('fires on a failing health check and resolves when it passes again', async () => {
    const srv = server();
    const health = await rule({
      server: srv,
      kind: 'health',
      metric: undefined,
      threshold: undefined,
      check: 'mcp ping',
    });
    const run = (at: number, ok: boolean, name = 'mcp ping'): HealthResult => ({
      orgId,
      server: srv,
      environment: 'production',
      version: '1.0.0',
      checkId: `check-${name}`,
      checkName: name,
      kind: 'mcp',
      phase: 'runtime',
      time: new Date(at).toISOString(),
      ok,
      latencyMs: 12,
      statusCode: ok ? 200 : 0,
      error: ok ? '' : 'connect ECONNREFUSED',
      protocolVersion: '',
      toolCount: 0,
      toolsHash: '',
      deploymentId: '',
      runId: `run-${at}-${name}`,
    });
    await writeResults(stores.warehouse, [
      run(T0 - 20 * S, true),
      run(T0 - 10 * S, false),
      run(T0 - 5 * S, false, 'other'),
    ]);
    expect((await evaluateRule(deps(), health.id, { now: T0 })).transitions).toMatchObject([
      { from: 'inactive', to: 'firing', value: 1, labels: { check: 'mcp ping', environment: 'production' } },
    ]);
    await writeResults(stores.warehouse, [run(T0 + 5 * S, true)]);
    expect((await evaluateRule(deps(), health.id, { now: T0 + 10 * S })).transitions).toMatchObject([
      { from: 'firing', to: 'resolved' },
    ]);
  });

  it('makes each transition once when many workers evaluate the same rule at once', async () => {
    const srv = server();
    const r = await rule({ server: srv, groupWait: '0s' });
    await traffic(srv, T0 - 60 * S, T0, { errorRate: 0.5 });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => evaluateRule(deps(), r.id, { now: T0 + (i % 2) })),
    );
    expect(results.flatMap((x) => x.transitions)).toHaveLength(1);
    expect(results.filter((x) => x.skipped === 'stale').length).toBeGreaterThan(0);
    expect(await history(r.id)).toEqual(['inactive→firing']);
    const [{ n } = { n: 0 }] = await db.query<{ n: number }>(
      'SELECT count(*) AS n FROM alert_group_alerts WHERE org_id = $1 AND fingerprint IN (SELECT fingerprint FROM alert_instances WHERE rule_id = $2)',
      [orgId, r.id],
    );
    expect(n).toBe(1);

    // Several dispatchers at once: one notification, published once.
    await Promise.all(Array.from({ length: 4 }, () => flushDueGroups(db, T0 + 5 * S)));
    const rows = await db.query(
      'SELECT id FROM alert_notifications WHERE org_id = $1 AND group_key LIKE $2',
      [orgId, `%"${srv}"%`],
    );
    expect(rows).toHaveLength(1);
    const publisher = recordingPublisher();
    await Promise.all(
      Array.from({ length: 4 }, () => publishPending(db, publisher, silentLogger, T0 + 5 * S)),
    );
    expect(publisher.events.filter((e) => e.server === srv)).toHaveLength(1);
  });

  it('groups alerts as Alertmanager: group_wait, group_interval, repeat_interval, acknowledgement', async () => {
    const srv = server();
    const timings = { groupBy: ['server'], groupWait: '10s', groupInterval: '30s', repeatInterval: '1m' };
    const a = await rule({ server: srv, ...timings });
    const b = await rule({ server: srv, ...timings, metric: 'latencyP95', threshold: 10 });
    const c = await rule({ server: srv, ...timings, metric: 'throughput', threshold: 0.5 });
    await traffic(srv, T0 - 60 * S, T0 + 120 * S, { errorRate: 0.5, count: 180 });
    await evaluateRule(deps(), a.id, { now: T0 });
    await evaluateRule(deps(), b.id, { now: T0 + 2 * S });
    expect(await notify(T0 + 5 * S, srv)).toEqual([]);
    const [first, ...none] = await notify(T0 + 10 * S, srv);
    expect(none).toEqual([]);
    expect(first?.labels).toMatchObject({ server: srv });
    expect((first?.data as AlertGroupData).alerts.map((x) => x.ruleId).sort()).toEqual([a.id, b.id].sort());
    expect(first?.summary).toContain('[FIRING:2]');

    await evaluateRule(deps(), c.id, { now: T0 + 20 * S });
    expect(await notify(T0 + 30 * S, srv)).toEqual([]);
    const [second] = await notify(T0 + 40 * S, srv);
    expect((second?.data as AlertGroupData).alerts).toHaveLength(3);

    expect(await notify(T0 + 90 * S, srv)).toEqual([]);
    const [repeat] = await notify(T0 + 100 * S, srv);
    expect((repeat?.data as AlertGroupData).alerts).toHaveLength(3);

    // Acknowledged alerts are not repeated.
    await db.query(`UPDATE alert_group_alerts SET acknowledged = true WHERE org_id = $1`, [orgId]);
    expect(await notify(T0 + 170 * S, srv)).toEqual([]);

    // Deleting a rule resolves its alert in the group.
    await deleteRule(db, ctx, c.id);
    const [afterDelete] = await notify(T0 + 400 * S, srv);
    const alerts = (afterDelete?.data as AlertGroupData).alerts;
    expect(alerts.map((x) => [x.ruleId, x.status])).toContainEqual([c.id, 'resolved']);
    expect(afterDelete?.type).toBe('alert.firing');
    const kept = await db.query('SELECT 1 FROM alert_history WHERE rule_id = $1', [c.id]);
    expect(kept.length).toBeGreaterThan(0);
  });

  it('retries a notification the publisher refused, and publishes it once', async () => {
    const srv = server();
    const r = await rule({ server: srv });
    await traffic(srv, T0 - 60 * S, T0, { errorRate: 0.5 });
    await evaluateRule(deps(), r.id, { now: T0 });
    await flushDueGroups(db, T0);
    // Other tests' notifications out of the way: only this one is pending.
    await db.query(
      'UPDATE alert_notifications SET published_at = now() WHERE org_id = $1 AND published_at IS NULL AND group_key NOT LIKE $2',
      [orgId, `%"${srv}"%`],
    );
    const publisher = recordingPublisher();
    publisher.failNext = 1;
    expect(await publishPending(db, publisher, silentLogger, T0)).toBe(0);
    const [pending] = await db.query<{ attempts: number; last_error: string }>(
      'SELECT attempts, last_error FROM alert_notifications WHERE published_at IS NULL AND org_id = $1',
      [orgId],
    );
    expect(pending).toMatchObject({ attempts: 1, last_error: 'publisher unavailable' });
    expect(await publishPending(db, publisher, silentLogger, T0 + 100)).toBe(0);
    expect(await publishPending(db, publisher, silentLogger, T0 + 5 * S)).toBe(1);
    expect(await publishPending(db, publisher, silentLogger, T0 + 60 * S)).toBe(0);
    expect(publisher.events.map((e) => (e.data as AlertGroupData).alerts[0]?.ruleId)).toEqual([r.id]);
  });
});
