import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluationBatcher } from '#core/alerting/batcher.ts';
import { evaluateRule, evaluateRules, type EvaluationSummary } from '#core/alerting/engine.ts';
import type { RuleInput } from '#core/alerting/model.ts';
import { createRule, updateRule } from '#core/alerting/rules.ts';
import type { Context } from '#core/auth/principal.ts';
import { openPglite } from '#core/db/client.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import type { Warehouse } from '#core/warehouse/client.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { cpuPoints, requests } from './helpers.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let writer: TelemetryWriter;
let orgId: string;
let ctx: Context;
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const S = 1000;

const SERIES = /FROM (requests|requests_1m|metric_points|resources_1m) /;

/** The warehouse, counting the series queries sent to it (not the sessions a notice reads). */
function counting(warehouse: Warehouse) {
  const counter = { queries: 0, warehouse };
  const client = new Proxy(warehouse.client, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return (...args: Parameters<typeof target.query>) => {
          if (SERIES.test(args[0].query)) counter.queries++;
          return target.query(...args);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  counter.warehouse = { ...warehouse, client };
  return counter;
}

beforeAll(async () => {
  stores = await openTestStores();
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
  const { org } = await bootstrap(stores.db);
  orgId = org.id;
  ctx = { principal: systemPrincipal(org) };
  // a: 1.0.0 healthy, then 1.1.0 at 50 % errors with slow tools/list; b: errors that recover; c: nothing.
  const rows = [
    ...requests({ orgId, server: 'a', version: '1.0.0', from: T0 - 60 * S, to: T0 + 60 * S, count: 120 }),
    ...requests({
      orgId,
      server: 'a',
      version: '1.1.0',
      from: T0,
      to: T0 + 60 * S,
      count: 60,
      errorRate: 0.5,
    }),
    ...requests({
      orgId,
      server: 'a',
      version: '1.1.0',
      operation: 'tools/list',
      from: T0,
      to: T0 + 60 * S,
      count: 30,
      errorRate: 0.2,
      latencyMs: 400,
    }),
    ...requests({
      orgId,
      server: 'b',
      version: '2.0.0',
      from: T0 - 60 * S,
      to: T0,
      count: 60,
      errorRate: 0.5,
    }),
    ...requests({ orgId, server: 'b', version: '2.0.0', from: T0, to: T0 + 15 * S, count: 15 }),
  ];
  await writer.writeRequests(rows);
  await writer.writeMetricPoints(
    cpuPoints({ orgId, server: 'a', version: '1.1.0', from: T0, to: T0 + 60 * S, value: 0.9, points: 12 }),
  );
  await writer.flush();
});

afterAll(async () => {
  await writer?.close();
  await stores?.close();
});

const base = {
  kind: 'threshold',
  metric: 'errorRate',
  threshold: 0.05,
  window: '20s',
  groupWait: '0s',
} as const;
/** Rules of every kind and setting, over servers with data and one without. */
const MIXED: Omit<RuleInput, 'name'>[] = [
  { ...base, server: 'a', for: '20s' },
  { ...base, server: 'b', keepFiringFor: '20s' },
  { ...base, server: 'a', metric: 'latencyP95', threshold: 100, operation: '*' },
  { ...base, server: 'a', operation: 'tools/list', threshold: 0.1 },
  { ...base, server: 'a', environment: 'staging', noDataState: 'OK' },
  { ...base, server: 'c', noDataState: 'NoData' },
  { ...base, server: 'c', noDataState: 'Alerting', for: '10s' },
  { ...base, server: 'c', noDataState: 'KeepLast' },
  { ...base, server: 'b', kind: 'absence', metric: null, threshold: null, minRequests: 10 },
  { ...base, server: 'a', metric: 'cpu', threshold: 0.8 },
  { ...base, server: 'a', kind: 'relative', threshold: null, factor: 2, baseline: '1.0.0', version: '1.1.0' },
  {
    ...base,
    server: 'a',
    version: '^1.1',
    window: '1m',
    metric: 'throughput',
    comparator: '<',
    threshold: 5,
  },
];

/** What an evaluation leaves of a rule, without what names the rule itself (id, name). */
async function snapshot(ruleId: string) {
  const instances = await stores.db.query(
    `SELECT environment, version, operation, labels - 'alertname' AS labels, state, value, threshold, baseline_version,
       active_at, fired_at, resolved_at, last_true_at, last_evaluated_at, state_changed_at, last_error
     FROM alert_instances WHERE rule_id = $1 ORDER BY environment, version, operation`,
    [ruleId],
  );
  const history = await stores.db.query(
    `SELECT environment, version, operation, from_state, to_state, value, threshold, reason, at
     FROM alert_history WHERE rule_id = $1 ORDER BY at, environment, version, operation, from_state`,
    [ruleId],
  );
  const [rule] = await stores.db.query(
    'SELECT last_evaluated_at, last_error, evaluations FROM alert_rules WHERE id = $1',
    [ruleId],
  );
  const grouped = await stores.db.query(
    `SELECT a.status, a.notified_firing, g.next_flush_at FROM alert_group_alerts a
       JOIN alert_groups g ON g.org_id = a.org_id AND g.group_key = a.group_key
     WHERE a.fingerprint IN (SELECT fingerprint FROM alert_instances WHERE rule_id = $1) ORDER BY a.status`,
    [ruleId],
  );
  return { instances, history, rule, grouped };
}

const transitions = (s: EvaluationSummary) =>
  s.transitions.map(({ fingerprint: _f, labels: { alertname: _a, ...labels }, ...t }) => ({ ...t, labels }));

describe('batched rule evaluation', () => {
  it('leaves every rule exactly as evaluating it alone does, with one warehouse query per shared scope', async () => {
    const make = (prefix: string) =>
      Promise.all(MIXED.map((input, i) => createRule(stores.db, ctx, { ...input, name: `${prefix}-${i}` })));
    const alone = await make('alone');
    const batched = await make('batched');
    const counter = counting(stores.warehouse);
    const deps = { db: stores.db, warehouse: counter.warehouse };
    const alerting = new Set<string>();
    for (const at of [0, 10, 20, 30, 40, 60, 75].map((s) => T0 + s * S)) {
      const one: EvaluationSummary[] = [];
      for (const r of alone) one.push(await evaluateRule(deps, r.id, { now: at }));
      const before = counter.queries;
      const all = await evaluateRules(
        deps,
        batched.map((r) => r.id),
        { now: at },
      );
      // Requests in total and per operation, the 1 min window's requests, resources: 4 for 12 rules.
      expect(counter.queries - before).toBe(4);
      expect(all.map((s) => s.ruleId)).toEqual(batched.map((r) => r.id));
      for (const [i, r] of alone.entries()) {
        const mine = all[i] as EvaluationSummary;
        expect(mine.skipped).toBeNull();
        expect(transitions(mine)).toEqual(transitions(one[i] as EvaluationSummary));
        expect(mine.series).toBe(one[i]?.series);
        expect(mine.groupDueAt).toBe(one[i]?.groupDueAt);
        expect(await snapshot(batched[i]?.id as string)).toEqual(await snapshot(r.id));
        for (const t of mine.transitions) alerting.add(`${i}:${t.to}`);
      }
    }
    // The timeline covers pending, firing, keep-firing, resolved, no data and inactive.
    expect([...alerting].map((x) => x.split(':')[1])).toEqual(
      expect.arrayContaining(['pending', 'firing', 'resolved', 'nodata', 'inactive']),
    );
  });

  it('skips missing, disabled, repeated and stale rules, and fails only the rules of a failed read', async () => {
    const ok = await createRule(stores.db, ctx, {
      ...base,
      name: 'edge-ok',
      server: 'b',
      metric: 'cpu',
      threshold: 2,
    });
    const off = await createRule(stores.db, ctx, { ...base, name: 'edge-off', server: 'b' });
    await updateRule(stores.db, ctx, off.id, { enabled: false });
    const req = await createRule(stores.db, ctx, { ...base, name: 'edge-req', server: 'b', threshold: 2 });
    const deps = { db: stores.db, warehouse: stores.warehouse };
    const unknown = '00000000-0000-4000-8000-000000000000';
    const first = await evaluateRules(deps, [ok.id, off.id, 'not-a-uuid', unknown, ok.id, req.id], {
      now: T0 + 10 * S,
    });
    expect(first.map((s) => s.skipped)).toEqual([null, 'disabled', 'missing', 'missing', 'stale', null]);
    expect((await evaluateRules(deps, [ok.id], { now: T0 + 10 * S }))[0]?.skipped).toBe('stale');
    expect(await evaluateRules(deps, [])).toEqual([]);

    // The requests table is gone: its rule errors, the CPU rule beside it is evaluated as usual.
    await stores.warehouse.client.command({ query: 'RENAME TABLE requests TO requests_away' });
    let second: EvaluationSummary[];
    try {
      second = await evaluateRules(deps, [req.id, ok.id], { now: T0 + 20 * S });
    } finally {
      await stores.warehouse.client.command({ query: 'RENAME TABLE requests_away TO requests' });
    }
    expect(second[0]?.error).toMatch(/requests/);
    expect(second[0]?.transitions).toMatchObject([{ from: 'inactive', to: 'error' }]);
    expect(second[1]).toMatchObject({ error: null, skipped: null, transitions: [] });
    const rows = await stores.db.query<{ id: string; evaluations: number; last_error: string | null }>(
      'SELECT id, evaluations, last_error FROM alert_rules WHERE id = ANY($1::uuid[]) ORDER BY name',
      [[ok.id, req.id, off.id]],
    );
    expect(rows.map((r) => [r.id, Number(r.evaluations), r.last_error !== null])).toEqual([
      [off.id, 0, false],
      [ok.id, 2, false],
      [req.id, 2, true],
    ]);
  });

  it('batches the evaluations asked for together, one at a time, and fails the callers of a batch when its store fails', async () => {
    const rules = await Promise.all(
      MIXED.slice(0, 4).map((input, i) => createRule(stores.db, ctx, { ...input, name: `batcher-${i}` })),
    );
    const counter = counting(stores.warehouse);
    const batcher = evaluationBatcher({ db: stores.db, warehouse: counter.warehouse });
    const together = await Promise.all(rules.map((r) => batcher.evaluate(r.id)));
    expect(together.map((s) => [s.ruleId, s.skipped, s.error])).toEqual(rules.map((r) => [r.id, null, null]));
    // Rules 0, 1 (totals) and 2, 3 (per operation): two queries for four rules.
    expect(counter.queries).toBe(2);
    expect(new Set(together.map((s) => s.evaluatedAt)).size).toBe(1);

    const closed = await openPglite(tempDir('pylee-closed'));
    await closed.close();
    const broken = evaluationBatcher({ db: closed, warehouse: stores.warehouse });
    const failed = await Promise.allSettled(rules.map((r) => broken.evaluate(r.id)));
    expect(failed.map((f) => f.status)).toEqual(rules.map(() => 'rejected'));
    // The batcher is not stuck: the next ask runs.
    await expect(broken.evaluate(rules[0]?.id as string)).rejects.toThrow();
  });
});
