import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Workers } from '#alerts/workers.ts';
import type { Rule } from '#core/alerting/model.ts';
import { evaluateRule } from '#core/alerting/engine.ts';
import { flushDueGroups } from '#core/alerting/groups.ts';
import { createRule, deleteRule } from '#core/alerting/rules.ts';
import type { Context } from '#core/auth/principal.ts';
import { createChannel } from '#core/notify/channels.ts';
import type { AlertGroupData } from '#core/notify/events.ts';
import { systemPrincipal } from '#core/orgs.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { pyleeEnv, runPylee } from '#test/helpers/pylee-process.ts';
import { startSink, type Sink, type SinkRequest } from '#test/helpers/sink.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { startTestWorkers } from '#test/helpers/workers.ts';
import { requests, write } from './helpers.ts';

// Inhibition rules end to end: the API, then real alert workers evaluating real telemetry and
// delivering to a real webhook sink, with the inhibited notification recorded in the alert's history.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let writer: TelemetryWriter;
let sink: Sink;
let workers: Workers | undefined;
let ctx: Context;
const admin = bearer(BOOTSTRAP_TOKEN);

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  ctx = { principal: systemPrincipal(api.org) };
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
  sink = await startSink();
});

afterAll(async () => {
  await workers?.close();
  await writer?.close();
  await sink?.close();
  await api?.app.close();
  await stores?.close();
});

const call = async (
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  payload?: unknown,
  headers = admin,
) => {
  const res = await api.app.inject({ method, url: `/api/v1${url}`, headers, payload: payload as object });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely by the assertions
  return { status: res.statusCode, body: res.json() as Record<string, any> };
};

const m = (name: string, op: string, value: string) => ({ name, op, value });
const criticalMutesWarning = {
  name: 'critical mutes warning',
  sourceMatchers: [m('severity', '=', 'critical')],
  targetMatchers: [m('severity', '=', 'warning')],
  equal: ['server', 'environment'],
  comment: 'a page says it all',
};

describe('inhibition rules API', () => {
  it('creates, lists, shows, replaces and deletes a rule, each change audited', async () => {
    const created = await call('POST', '/inhibitions', {
      ...criticalMutesWarning,
      name: 'crud',
      targetMatchers: [m('server', '=', 'crud-only')],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({
      name: 'crud',
      sourceMatchers: [m('severity', '=', 'critical')],
      targetMatchers: [m('server', '=', 'crud-only')],
      equal: ['server', 'environment'],
      comment: 'a page says it all',
      createdBy: expect.any(String),
    });
    const id = created.body.id as string;
    expect((await call('GET', '/inhibitions')).body.inhibitions.map((i: { id: string }) => i.id)).toContain(
      id,
    );
    expect((await call('GET', `/inhibitions/${id}`)).body.name).toBe('crud');
    const replaced = await call('PUT', `/inhibitions/${id}`, {
      sourceMatchers: [m('alertname', '=~', 'Down.*')],
      targetMatchers: [m('server', '=', 'crud-only')],
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ name: null, equal: [], comment: null });
    expect((await call('POST', '/inhibitions', { ...criticalMutesWarning, name: 'dup' })).status).toBe(201);
    const dup = await call('POST', '/inhibitions', { ...criticalMutesWarning, name: 'dup' });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe('inhibition-name-taken');
    const dupId = (await call('GET', '/inhibitions')).body.inhibitions.find(
      (i: { name: string | null }) => i.name === 'dup',
    ).id as string;
    expect((await call('DELETE', `/inhibitions/${dupId}`)).status).toBe(200);
    expect((await call('DELETE', `/inhibitions/${id}`)).status).toBe(200);
    expect((await call('GET', `/inhibitions/${id}`)).status).toBe(404);
    const audit = await call('GET', '/audit?limit=50');
    const actions = (audit.body.events as { action: string; target: { id: string } }[])
      .filter((e) => e.target.id === id)
      .map((e) => e.action);
    expect(actions.sort()).toEqual(['inhibition.create', 'inhibition.delete', 'inhibition.update']);
  });

  it('refuses bad input with 400s that name the matcher, and changes nothing', async () => {
    const before = (await call('GET', '/inhibitions')).body.inhibitions.length;
    const cases: [unknown, RegExp][] = [
      [
        { ...criticalMutesWarning, sourceMatchers: [m('severity', '=', 'critical'), m('env', '=~', '(')] },
        /^sourceMatchers\[1\]\.value is not a valid regular expression/,
      ],
      [
        { ...criticalMutesWarning, targetMatchers: [m('bad-name', '=', 'x')] },
        /^targetMatchers\[0\]\.name "bad-name" is not a label name/,
      ],
      [
        { ...criticalMutesWarning, targetMatchers: [m('severity', '==', 'x')] },
        /^targetMatchers\[0\]\.op must be one of = != =~ !~/,
      ],
      [{ ...criticalMutesWarning, sourceMatchers: [] }, /^sourceMatchers must list at least one matcher/],
      [{ ...criticalMutesWarning, targetMatchers: [] }, /^targetMatchers must list at least one matcher/],
      [{ ...criticalMutesWarning, equal: ['server', '9lives'] }, /^equal\[1\] "9lives" is not a label name/],
      [{ ...criticalMutesWarning, unknown: true }, /unknown|additional/i],
    ];
    for (const [body, detail] of cases) {
      const res = await call('POST', '/inhibitions', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.detail).toMatch(detail);
    }
    expect((await call('GET', '/inhibitions')).body.inhibitions).toHaveLength(before);
  });

  it("answers 404 for another org's rule and 403 to a read-only token that writes", async () => {
    const mine = await call('POST', '/inhibitions', {
      ...criticalMutesWarning,
      name: 'mine',
      targetMatchers: [m('server', '=', 'crud-only')],
    });
    const other = await call('POST', '/orgs', { slug: 'inhibit-other' });
    const otherAdmin = bearer(other.body.token as string);
    for (const method of ['GET', 'PUT', 'DELETE'] as const) {
      const res = await call(
        method,
        `/inhibitions/${mine.body.id}`,
        method === 'PUT' ? criticalMutesWarning : undefined,
        otherAdmin,
      );
      expect(res.status, method).toBe(404);
    }
    expect((await call('GET', '/inhibitions', undefined, otherAdmin)).body.inhibitions).toEqual([]);
    const reader = bearer(await api.token(['read']));
    expect((await call('GET', '/inhibitions', undefined, reader)).status).toBe(200);
    expect((await call('POST', '/inhibitions', criticalMutesWarning, reader)).status).toBe(403);
    expect((await call('DELETE', `/inhibitions/${mine.body.id}`, undefined, reader)).status).toBe(403);
    const limited = bearer(await api.token(['write'], { servers: ['checkout'] }));
    const outOfScope = await call('POST', '/inhibitions', criticalMutesWarning, limited);
    expect(outOfScope.status).toBe(400);
    expect(outOfScope.body.code).toBe('inhibition-out-of-scope');
    expect((await call('DELETE', `/inhibitions/${mine.body.id}`)).status).toBe(200);
  });
});

describe('pylee inhibitions', () => {
  it('creates, lists and deletes rules from the command line, with usage and API errors on stderr', async () => {
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    const env = pyleeEnv({
      PYLEE_URL: `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`,
      PYLEE_TOKEN: BOOTSTRAP_TOKEN,
      XDG_CONFIG_HOME: path.join(stores.dir, 'no-login'),
    });
    const pylee = (...args: string[]) => runPylee(args, env);
    const created = await pylee(
      'inhibitions', 'create', '--json', '--source', 'severity=critical', '--source', 'alertname=~Down|Dead',
      '--target', 'server=cli-only', '--equal', 'server,environment', '--name', 'from the cli',
    ); // prettier-ignore
    expect(created.code, created.stderr).toBe(0);
    const rule = JSON.parse(created.stdout) as { id: string };
    expect(rule).toMatchObject({
      name: 'from the cli',
      sourceMatchers: [m('severity', '=', 'critical'), m('alertname', '=~', 'Down|Dead')],
      targetMatchers: [m('server', '=', 'cli-only')],
      equal: ['server', 'environment'],
    });
    const listed = await pylee('inhibitions', 'list');
    expect(listed.stdout).toContain(
      `${rule.id}  from the cli  source=severity=critical,alertname=~Down|Dead  target=server=cli-only  equal=server,environment`,
    );
    const bad = await pylee('inhibitions', 'create', '--source', 'severity', '--target', 'server=x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--source "severity" is not NAME=VALUE');
    const refused = await pylee('inhibitions', 'create', '--source', 'a=~(', '--target', 'server=x');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('sourceMatchers[0].value is not a valid regular expression');
    const deleted = await pylee('inhibitions', 'delete', rule.id);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await call('GET', `/inhibitions/${rule.id}`)).status).toBe(404);
  }, 60_000);
});

describe('inhibition in flushDueGroups, step by step', () => {
  it('re-checks a held group every group_interval, releases it when its rule is deleted, and never announces a target that resolved while held', async () => {
    const t0 = Date.now();
    await write(
      writer,
      requests({
        orgId: api.org.id,
        server: 'ledger',
        version: '1.0.0',
        from: t0 - 60_000,
        to: t0,
        count: 40,
        errorRate: 0.8,
      }),
    );
    const rule = (name: string, threshold: number, severity: 'critical' | 'warning') =>
      createRule(stores.db, ctx, {
        name,
        server: 'ledger',
        kind: 'threshold',
        metric: 'errorRate',
        threshold,
        window: '2m',
        groupWait: '0s',
        groupInterval: '10s',
        noDataState: 'OK',
        severity,
      });
    const inhibit = () =>
      call('POST', '/inhibitions', {
        sourceMatchers: [m('alertname', '=', 'ledger down')],
        targetMatchers: [m('alertname', '=~', 'ledger (errors|slow)')],
        equal: ['server'],
      });
    const notified = async (name: string) =>
      (
        await stores.db.query<{ event: { data: AlertGroupData } }>('SELECT event FROM alert_notifications')
      ).filter((n) => n.event.data.alerts?.some((a) => a.ruleName === name)).length;
    const source = await rule('ledger down', 0.5, 'critical');
    const target = await rule('ledger errors', 0.2, 'warning');
    const held = await inhibit();
    await evaluateRule(stores, source.id, { now: t0 });
    await evaluateRule(stores, target.id, { now: t0 });
    await flushDueGroups(stores.db, t0);
    expect(await notified('ledger down')).toBe(1);
    expect(await notified('ledger errors')).toBe(0);
    const [group] = await stores.db.query<{ next_flush_at: Date; muted_by: { inhibitionId: string } }>(
      `SELECT g.next_flush_at, a.muted_by FROM alert_groups g JOIN alert_group_alerts a USING (org_id, group_key)
        WHERE a.notice->>'ruleName' = 'ledger errors'`,
    );
    expect(group?.muted_by.inhibitionId).toBe(held.body.id);
    // Looked at again within one group_interval, not only at repeat_interval.
    expect(group?.next_flush_at.getTime()).toBe(t0 + 10_000);

    // Still held at the next look; deleting the rule releases it at the look after.
    await flushDueGroups(stores.db, t0 + 10_000);
    expect(await notified('ledger errors')).toBe(0);
    await call('DELETE', `/inhibitions/${held.body.id}`);
    await flushDueGroups(stores.db, t0 + 20_000);
    expect(await notified('ledger errors')).toBe(1);
    const [targetAlert] = await stores.db.query<{ id: string }>(
      'SELECT id FROM alert_instances WHERE rule_id = $1',
      [target.id],
    );
    const reasons = (await call('GET', `/alerts/${targetAlert?.id}`)).body.history.map(
      (h: { reason: string }) => h.reason,
    );
    expect(reasons[0]).toMatch(
      /^no longer inhibited by ledger down \{.*\}: inhibition rule [0-9a-f-]+ was deleted; notified$/,
    );

    // A target held from its start that resolves while held was never announced: nothing is sent.
    const again = await inhibit();
    const slow = await rule('ledger slow', 0.3, 'warning');
    await evaluateRule(stores, slow.id, { now: t0 + 20_000 });
    await flushDueGroups(stores.db, t0 + 20_000);
    await evaluateRule(stores, slow.id, { now: t0 + 300_000 });
    await flushDueGroups(stores.db, t0 + 300_000);
    expect(await notified('ledger slow')).toBe(0);
    const [slowAlert] = await stores.db.query<{ id: string; state: string }>(
      'SELECT id, state FROM alert_instances WHERE rule_id = $1',
      [slow.id],
    );
    expect(slowAlert?.state).toBe('resolved');
    const slowHistory = (await call('GET', `/alerts/${slowAlert?.id}`)).body.history as {
      mutedBy: unknown;
    }[];
    expect(slowHistory.filter((h) => h.mutedBy)).toHaveLength(1);

    await call('DELETE', `/inhibitions/${again.body.id}`);
    for (const r of [source, target, slow]) await deleteRule(stores.db, ctx, r.id);
  });
});

describe('inhibition at notification time, with real workers and a webhook sink', () => {
  const firingOf = (rule: string, type = 'alert.firing') =>
    sink
      .on('/hook')
      .filter((r: SinkRequest) => r.status !== undefined && r.status < 300)
      .filter((r) => {
        const p = r.json as { type?: string; data?: AlertGroupData };
        return p?.type === type && p.data?.alerts.some((a) => a.ruleName === rule);
      });

  async function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>) {
    const deadline = Date.now() + 45_000;
    for (;;) {
      const value = await check();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  const rates = new Map<string, number>();
  /** Keeps sending a second of requests per server every 200 ms, at the rate set in `rates`. */
  function keepSending() {
    let on = true;
    const loop = (async () => {
      while (on) {
        const now = Date.now();
        for (const [server, errorRate] of rates) {
          await writer.writeRequests(
            requests({
              orgId: api.org.id,
              server,
              version: '2.0.0',
              from: now - 200,
              to: now,
              count: 10,
              errorRate,
            }),
          );
        }
        await sleep(200);
      }
    })();
    return async () => {
      on = false;
      await loop;
    };
  }

  const rule = (
    name: string,
    server: string,
    threshold: number,
    severity: 'critical' | 'warning',
  ): Promise<Rule> =>
    createRule(stores.db, ctx, {
      name,
      server,
      kind: 'threshold',
      metric: 'errorRate',
      threshold,
      interval: '1s',
      window: '3s',
      // A loaded machine may stall the senders past the window: no data must not end an alert here.
      noDataState: 'KeepLast',
      groupWait: '0s',
      groupInterval: '1s',
      severity,
    });

  const alertOf = async (ruleName: string) => {
    const res = await call('GET', `/alerts?rule=${encodeURIComponent(ruleName)}`);
    return res.body.alerts[0] as { id: string } | undefined;
  };
  const history = async (id: string) =>
    (await call('GET', `/alerts/${id}`)).body.history as {
      reason: string;
      from: string;
      to: string;
      mutedBy: null | {
        kind: string;
        state: string;
        inhibitionId: string;
        source: { alertId: string; alertname: string; labels: Record<string, string> };
      };
    }[];

  it('holds a target while its source fires and sends it after the source resolved; other servers are not held', async () => {
    const notifyDeps = { db: stores.db, box: testSecretBox, policy: { allowPrivate: true } };
    await createChannel(notifyDeps, ctx, {
      name: 'on-call',
      kind: 'webhook',
      url: `${sink.url}/hook`,
      events: ['alert.*'],
    });
    workers = await startTestWorkers(stores);
    const inhibition = await call('POST', '/inhibitions', criticalMutesWarning);
    expect(inhibition.status).toBe(201);

    rates.set('payments', 0.8);
    rates.set('billing', 0.8);
    const stop = keepSending();
    try {
      await rule('payments down', 'payments', 0.5, 'critical');
      await until('the source firing', () => firingOf('payments down')[0]);
      // Created once the source fires, so the target's first notification meets a firing source.
      await rule('payments errors', 'payments', 0.2, 'warning');
      await rule('billing errors', 'billing', 0.2, 'warning');
      // Another server's warning: `equal: [server, environment]` differs, so it is not inhibited.
      await until('the other server notified', () => firingOf('billing errors')[0]);

      const target = await until('the target alert', () => alertOf('payments errors'));
      const muted = await until('the inhibition in the history', async () =>
        (await history(target.id)).find((h) => h.mutedBy?.state === 'muted'),
      );
      const source = await alertOf('payments down');
      expect(muted).toMatchObject({
        from: 'firing',
        to: 'firing',
        mutedBy: {
          kind: 'inhibition',
          inhibitionId: inhibition.body.id,
          source: {
            alertId: source?.id,
            alertname: 'payments down',
            labels: { server: 'payments', severity: 'critical', environment: 'production' },
          },
        },
      });
      expect(muted.reason).toMatch(
        /^inhibited by payments down \{.*server="payments".*\} \(inhibition rule [0-9a-f-]+ "critical mutes warning"\)/,
      );
      expect(firingOf('payments errors')).toEqual([]);

      // The source recovers below its threshold; the target still fires.
      rates.set('payments', 0.3);
      const released = await until('the target notified', () => firingOf('payments errors')[0]);
      const [resolvedSource] = await stores.db.query<{ resolved_at: Date; state: string }>(
        'SELECT resolved_at, state FROM alert_instances WHERE id = $1',
        [source?.id],
      );
      expect(resolvedSource?.state).toBe('resolved');
      expect(released.receivedAt).toBeGreaterThanOrEqual((resolvedSource?.resolved_at as Date).getTime());
      expect(firingOf('payments errors')).toHaveLength(1);
      const release = (await history(target.id)).find((h) => h.mutedBy?.state === 'released');
      expect(release?.reason).toMatch(
        /^no longer inhibited by payments down \{.*\}: payments down .* stopped firing; notified$/,
      );
      expect(release?.mutedBy?.source.alertId).toBe(source?.id);
    } finally {
      await stop();
    }
  }, 90_000);
});
