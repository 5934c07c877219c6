// Alerting latency and capacity.
//
// 1. Latency: bad data (MCP tools/call SERVER spans, all failed) is POSTed as OTLP/JSON to the real
//    collector (ingest-key auth, decode, mapping, TelemetryWriter with its default 1 s flush →
//    chDB); a threshold rule (error rate > 20 %, for 0s, group_wait 0s) evaluated by its BullMQ job
//    scheduler fires; the notification goes through the real publisher and notify queue as a
//    signed webhook to a local HTTP sink. Latency = webhook receipt − first POST of bad data.
//    Trials run side by side (one server and rule each), each starting at a random phase of the
//    evaluation interval, at a 5 s and a 30 s interval.
// 2. Capacity: 1,000 rules over 50 servers with data, evaluated through the alerts queue by one
//    worker (concurrency 8): evaluations per second, and the shortest interval 1,000 rules sustain.
// Printed beside the Prometheus + Alertmanager worst case for the same settings: scrape interval
// (15 s or 60 s) + evaluation interval + for + group_wait (30 s, Alertmanager's default).
//
// Run: npm run bench:alerts   (prints a table, writes bench/results/alerts.json)
//   BENCH_TRIALS_5S (10), BENCH_TRIALS_30S (4), BENCH_RULES (1000).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { alertEvaluateProcessor } from '#alerts/processors/alert-evaluate.ts';
import { startWorkers } from '#alerts/workers.ts';
import { buildCollector } from '#collector/app.ts';
import { startAlertDispatcher } from '#core/alerting/dispatcher.ts';
import { createRule } from '#core/alerting/rules.ts';
import { EVALUATE_JOB, type EvaluateJobData } from '#core/alerting/schedule.ts';
import { createChannel } from '#core/notify/channels.ts';
import { systemPrincipal } from '#core/orgs.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox } from '#test/helpers/api.ts';
import { startSink } from '#test/helpers/sink.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { requests } from '#test/alerting/helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const TRIALS = {
  5: Number(process.env.BENCH_TRIALS_5S ?? 10),
  30: Number(process.env.BENCH_TRIALS_30S ?? 4),
};
const RULES = Number(process.env.BENCH_RULES ?? 1000);
const GROUP_WAIT_AM = 30;
const SCRAPES = [15, 60];

const stores = await openTestStores();
const api = await buildTestApi(stores);
const org = api.org;
const ctx = { principal: systemPrincipal(org) };
const keyRes = await api.app.inject({
  method: 'POST',
  url: '/api/v1/ingest-keys',
  headers: bearer(BOOTSTRAP_TOKEN),
  payload: { name: 'bench' },
});
const ingestKey = (keyRes.json() as { key: string }).key;
const sink = await startSink();
await createChannel({ db: stores.db, box: testSecretBox, policy: { allowPrivate: true } }, ctx, {
  name: 'bench webhook',
  kind: 'webhook',
  url: `${sink.url}/hook`,
  events: ['alert.firing'],
});
const collector = await buildCollector({
  stores,
  secretBox: testSecretBox,
  logger: silentLogger,
  dataDir: stores.dir,
});
const collectorUrl = await collector.listen({ host: '127.0.0.1', port: 0 });

const attr = (key: string, value: string) => ({ key, value: { stringValue: value } });

/** One OTLP/JSON body of `count` failed MCP tools/call SERVER spans ending now. */
function badSpans(server: string, count: number) {
  const end = Date.now() * 1e6;
  const spans = Array.from({ length: count }, (_, i) => ({
    traceId: randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    name: 'tools/call search',
    kind: 2,
    startTimeUnixNano: String(end - 20e6 - i * 1e6),
    endTimeUnixNano: String(end - i * 1e6),
    attributes: [attr('mcp.method.name', 'tools/call'), attr('gen_ai.tool.name', 'search')],
    status: { code: 2, message: 'upstream timeout' },
  }));
  return {
    resourceSpans: [
      {
        resource: {
          attributes: [
            attr('service.name', server),
            attr('service.version', '1.0.0'),
            attr('deployment.environment.name', 'production'),
          ],
        },
        scopeSpans: [{ scope: { name: 'bench' }, spans }],
      },
    ],
  };
}

async function post(server: string): Promise<void> {
  const res = await fetch(`${collectorUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestKey}` },
    body: JSON.stringify(badSpans(server, 10)),
  });
  if (res.status !== 200) throw new Error(`collector answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

const arrival = new Map<string, number>();
const seen = new Set<unknown>();
function watchSink() {
  for (const r of sink.on('/hook')) {
    if (seen.has(r)) continue;
    seen.add(r);
    const payload = r.json as { data?: { alerts?: { server?: string }[] } };
    for (const a of payload?.data?.alerts ?? [])
      if (a.server && !arrival.has(a.server)) arrival.set(a.server, Date.now());
  }
}
const watcher = setInterval(watchSink, 5);

const quantile = (sorted: number[], q: number) => {
  if (sorted.length === 0) return NaN;
  const rank = q * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (rank - lo);
};

async function latency(intervalS: 5 | 30) {
  const trials = TRIALS[intervalS];
  const workers = await startWorkers({
    db: stores.db,
    redis: stores.redis,
    warehouse: stores.warehouse,
    logger: silentLogger,
    secretBox: testSecretBox,
    notify: { policy: { allowPrivate: true } },
    alerts: { reconcileEveryMs: 1000 },
  });
  const servers = Array.from(
    { length: trials },
    (_, i) => `lat-${intervalS}s-${i}-${randomBytes(3).toString('hex')}`,
  );
  const rules = await Promise.all(
    servers.map((server) =>
      createRule(stores.db, ctx, {
        name: `errors ${server}`,
        server,
        kind: 'threshold',
        metric: 'errorRate',
        threshold: 0.2,
        interval: `${intervalS}s`,
        window: '1m',
        for: '0s',
        groupWait: '0s',
        noDataState: 'OK',
      }),
    ),
  );
  // Wait until every rule's scheduler has run once, so trials start mid-schedule.
  const evaluated = async () =>
    (
      await stores.db.query<{ n: number }>(
        'SELECT count(*) AS n FROM alert_rules WHERE id = ANY($1) AND evaluations > 0',
        [rules.map((r) => r.id)],
      )
    )[0]?.n ?? 0;
  while ((await evaluated()) < rules.length) await sleep(100);

  const results = await Promise.all(
    servers.map(async (server) => {
      await sleep(Math.random() * intervalS * 1000);
      const start = Date.now();
      const deadline = start + (intervalS + 60) * 1000;
      while (!arrival.has(server) && Date.now() < deadline) {
        await post(server);
        await sleep(200);
      }
      return arrival.has(server) ? (arrival.get(server) as number) - start : NaN;
    }),
  );
  await workers.close();
  const ok = results.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const s = (ms: number) => Math.round(ms) / 1000;
  return {
    intervalSeconds: intervalS,
    trials,
    received: ok.length,
    p50Seconds: s(quantile(ok, 0.5)),
    p99Seconds: s(quantile(ok, 0.99)),
    maxSeconds: s(ok.at(-1) ?? NaN),
    targetSeconds: intervalS + 10,
    meetsTarget: ok.length === trials && quantile(ok, 0.99) < (intervalS + 10) * 1000,
    samplesSeconds: ok.map(s),
    prometheusAlertmanagerWorstCaseSeconds: Object.fromEntries(
      SCRAPES.map((scrape) => [`scrape${scrape}s`, scrape + intervalS + 0 + GROUP_WAIT_AM]),
    ),
  };
}

async function capacity() {
  // 50 servers × 2 versions × 3 operations of data in the last 5 minutes.
  const writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir });
  const now = Date.now();
  for (let s = 0; s < 50; s++) {
    for (const version of ['1.0.0', '1.1.0']) {
      for (const operation of ['tools/call search', 'tools/call fetch', 'tools/list']) {
        await writer.writeRequests(
          requests({
            orgId: org.id,
            server: `cap-${s}`,
            version,
            operation,
            from: now - 300_000,
            to: now,
            count: 200,
            errorRate: 0.01,
          }),
        );
      }
    }
  }
  await writer.close();
  const metrics = ['errorRate', 'latencyP95', 'throughput', 'latencyP99'] as const;
  const ids: string[] = [];
  for (let i = 0; i < RULES; i++) {
    const rule = await createRule(stores.db, ctx, {
      name: `capacity ${i}`,
      server: `cap-${i % 50}`,
      kind: 'threshold',
      metric: metrics[i % metrics.length],
      operation: i % 3 === 0 ? '*' : null,
      threshold: 1e9,
      interval: '1h',
      window: '5m',
      noDataState: 'OK',
      enabled: true,
    });
    ids.push(rule.id);
  }
  const queue = new Queue<EvaluateJobData>(QUEUES.alerts, {
    connection: stores.redis.connection(),
    prefix: QUEUE_PREFIX,
  });
  const dispatcher = startAlertDispatcher({
    db: stores.db,
    publisher: { publish: async () => {} },
    logger: silentLogger,
  });
  const processor = alertEvaluateProcessor({ db: stores.db, warehouse: stores.warehouse, dispatcher });
  let done = 0;
  const worker = new Worker<EvaluateJobData>(
    QUEUES.alerts,
    async (job) => {
      const summary = await processor(job);
      done++;
      return summary;
    },
    { connection: stores.redis.connection(), prefix: QUEUE_PREFIX, concurrency: 8 },
  );
  // Warm-up round, then the measured one.
  const round = async () => {
    done = 0;
    const began = performance.now();
    await queue.addBulk(
      ids.map((ruleId) => ({
        name: EVALUATE_JOB,
        data: { ruleId, orgId: org.id },
        opts: { removeOnComplete: true, removeOnFail: 100 },
      })),
    );
    while (done < ids.length) await sleep(20);
    return (performance.now() - began) / 1000;
  };
  await round();
  const seconds = await round();
  await worker.close();
  await dispatcher.close();
  await queue.close();
  const [timing] = await stores.db.query<{ avg: number; p99: number }>(
    `SELECT avg(last_eval_duration_ms) AS avg, percentile_cont(0.99) WITHIN GROUP (ORDER BY last_eval_duration_ms) AS p99
       FROM alert_rules WHERE id = ANY($1)`,
    [ids],
  );
  const perSecond = ids.length / seconds;
  return {
    rules: ids.length,
    workerConcurrency: 8,
    seconds: Math.round(seconds * 100) / 100,
    evaluationsPerSecond: Math.round(perSecond),
    clickhouseQueryMs: {
      avg: Math.round(Number(timing?.avg) * 10) / 10,
      p99: Math.round(Number(timing?.p99) * 10) / 10,
    },
    shortestIntervalFor1000RulesSeconds: Math.round((1000 / perSecond) * 10) / 10,
  };
}

const began = Date.now();
const fast = await latency(5);
const slow = await latency(30);
const cap = await capacity();
clearInterval(watcher);

const row = (r: typeof fast) =>
  `${String(r.intervalSeconds).padStart(4)} s   ${String(r.received).padStart(2)}/${r.trials}   ${r.p50Seconds.toFixed(2).padStart(6)} s ${r.p99Seconds.toFixed(2).padStart(7)} s   ${String(r.targetSeconds).padStart(3)} s ${r.meetsTarget ? 'yes' : 'NO '}   ${SCRAPES.map((s) => `${r.prometheusAlertmanagerWorstCaseSeconds[`scrape${s}s`]} s`.padStart(6)).join('  ')}`;
const lines = [
  `Alert latency: bad data POSTed to the collector → signed webhook at a local sink (for 0s, group_wait 0s, writer flush 1 s)`,
  `interval  trials      p50       p99   target  ok   Prometheus+Alertmanager worst case (scrape 15 s / 60 s + interval + for + group_wait 30 s)`,
  row(fast),
  row(slow),
  '',
  `Evaluation capacity: ${cap.rules} rules through the alerts queue, one worker × ${cap.workerConcurrency}: ${cap.evaluationsPerSecond} evaluations/s ` +
    `(${cap.seconds} s for all; query avg ${cap.clickhouseQueryMs.avg} ms, p99 ${cap.clickhouseQueryMs.p99} ms) → 1,000 rules every ${cap.shortestIntervalFor1000RulesSeconds} s or slower`,
  `(${os.availableParallelism()} cores shared by collector, chDB, Postgres (PGlite), redis-server and the workers; run took ${Math.round((Date.now() - began) / 1000)} s)`,
];
process.stdout.write(`${lines.join('\n')}\n`);
fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
fs.writeFileSync(
  path.join(ROOT, 'bench/results/alerts.json'),
  `${JSON.stringify(
    {
      measuredAt: new Date().toISOString(),
      cores: os.availableParallelism(),
      path: 'OTLP/JSON over HTTP to the collector → chDB → BullMQ-scheduled evaluation → group dispatcher → notify queue → signed webhook',
      settings: {
        for: '0s',
        groupWait: '0s',
        writerFlushMs: 1000,
        dispatcherTickMs: 500,
        window: '1m',
        threshold: 'errorRate > 0.2',
      },
      latency: [fast, slow],
      capacity: cap,
    },
    null,
    2,
  )}\n`,
);
await collector.close();
await api.app.close();
await sink.close();
await stores.close();
