import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateAnalysis, startStepAnalyses, type CanaryDeps } from '#core/canary/analysis.ts';
import { canaryScheduler } from '#core/canary/queue.ts';
import { openDeployDeps } from '#core/deploy/wiring.ts';
import { writeResults, type HealthResult } from '#core/health/results.ts';
import { saveToolSnapshot } from '#core/health/tools.ts';
import type { EventPublisher, PyleeEvent } from '#core/notify/events.ts';
import { renderSlack } from '#core/notify/slack.ts';
import { QUEUE_PREFIX, QUEUES } from '#core/queue/queues.ts';
import type { SessionEventRow } from '#core/warehouse/rows.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { startCanaryWorker, type CanaryWorker } from '#alerts/processors/canary-analysis.ts';
import { canaryCommands } from '#cli/commands/canary.ts';
import type { CommandContext } from '#cli/client.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { until as eventually } from '#test/helpers/until.ts';
import { HEALTHY, requestRows, type Traffic } from './telemetry.ts';

// Canary analyses end to end on real stores: synthetic canaries written as telemetry rows through
// the TelemetryWriter, analyses run through the API and the canary worker on real BullMQ, and the
// rollouts they drive through the deployment service.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let writer: TelemetryWriter;
let seq = 0;

const MINUTES = 30;
// The data window: the last 30 whole minutes before the current one.
const end = Math.floor(Date.now() / 60_000) * 60_000;
const start = end - MINUTES * 60_000;
const window = { from: new Date(start).toISOString(), to: new Date(end).toISOString() };

let base: Stores;

beforeAll(async () => {
  base = await openTestStores();
  writer = new TelemetryWriter(base.warehouse, { dataDir: base.dir, flushIntervalMs: 20 });
}, 60_000);

afterAll(async () => {
  await writer?.close();
  await base?.close();
});

async function call(method: 'GET' | 'POST', url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
  return api.app.inject({ method, url, headers: bearer(token), payload });
}

async function admin(method: 'GET' | 'POST', url: string, payload?: object) {
  const res = await call(method, url, payload);
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.json() as Record<string, unknown>;
}

/**
 * A server with 1.0.0 and 1.1.0 (stable), 1.0.0 released to staging, and both versions' traffic in
 * staging over the window: `baseline` for 1.0.0, `canary` for 1.1.0.
 */
async function canaryServer(canary: Traffic | null, baseline: Traffic | null = HEALTHY, seed?: number) {
  const server = `canary-${++seq}`;
  const s = seed ?? seq;
  await admin('POST', '/api/v1/servers', { slug: server });
  for (const version of ['1.0.0', '1.1.0'])
    await admin('POST', `/api/v1/servers/${server}/versions`, { version, status: 'stable' });
  await admin('POST', `/api/v1/servers/${server}/deployments`, { version: '1.0.0', environment: 'staging' });
  const scope = { orgId: api.org.id, server, environment: 'staging' };
  const w = { from: start, minutes: MINUTES };
  if (baseline) await writer.writeRequests(requestRows({ ...scope, version: '1.0.0' }, baseline, w, s * 2));
  if (canary) await writer.writeRequests(requestRows({ ...scope, version: '1.1.0' }, canary, w, s * 2 + 1));
  await writer.flush();
  return server;
}

const analyze = (server: string, body: object = {}) =>
  call('POST', `/api/v1/servers/${server}/analyses`, {
    candidate: '1.1.0',
    environment: 'staging',
    ...window,
    ...body,
  });

const rowCount = async () =>
  Number((await stores.db.query<{ n: number }>('SELECT count(*)::int AS n FROM canary_analyses'))[0]?.n);

// Every analysis against PGlite and, when PYLEE_TEST_DATABASE_URL is set, a real PostgreSQL; the
// telemetry (one chDB per process) is shared, kept apart by the org ids each database creates.
describe.each(DB_DRIVERS)('canary analyses on $name', (driver) => {
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    let db = base.db;
    if (driver.name !== 'pglite') {
      const opened = await driver.open();
      cleanup = opened.cleanup;
      db = opened.db;
      await migrateDb(db);
    }
    stores = { ...base, db };
    api = await buildTestApi(stores);
    // The same servers and seeds on every driver: the same synthetic canaries and verdicts.
    seq = 0;
  }, 60_000);
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  describe('on-demand analyses', () => {
    it('passes a canary no different from its baseline, against the stable version chosen automatically', async () => {
      const server = await canaryServer(HEALTHY);
      const res = await analyze(server);
      expect(res.statusCode, res.body).toBe(201);
      const a = res.json();
      expect(a).toMatchObject({
        status: 'completed',
        verdict: 'pass',
        baseline: '1.0.0',
        baselineSource: 'stable-release',
        candidate: '1.1.0',
        environment: 'staging',
        action: 'none',
      });
      expect(a.score).toBeGreaterThanOrEqual(95);
      expect(a.traffic.canaryRequests).toBe(60 * MINUTES);
      // Whole-server metrics and the same per tool.
      const names = a.metrics.map(
        (m: { metric: string; operation: string | null }) => `${m.metric}:${m.operation ?? ''}`,
      );
      expect(names).toEqual(
        expect.arrayContaining([
          'error_rate:',
          'latency_p95:',
          'health_check_failures:',
          'error_rate:tools/call search',
          'latency_p95:tools/call fetch',
        ]),
      );
      // Listed, as the UI asks for it.
      const list = await admin(
        'GET',
        `/api/v1/servers/${server}/analyses?candidate=1.1.0&environment=staging`,
      );
      expect((list.analyses as { id: string }[]).map((x) => x.id)).toEqual([a.id]);
    });

    it('fails a clear regression and renders the report as JSON, Markdown and HTML', async () => {
      const server = await canaryServer({ perMinute: 60, errorRate: 0.08, latencyMs: 250 });
      const res = await analyze(server, { baseline: '1.0.0' });
      expect(res.statusCode, res.body).toBe(201);
      const a = res.json();
      expect(a).toMatchObject({ verdict: 'fail', baselineSource: 'explicit' });
      expect(a.reasons.join('\n')).toMatch(/error_rate|latency_p95/);
      const p95 = a.metrics.find(
        (m: { metric: string; operation: string | null }) => m.metric === 'latency_p95' && !m.operation,
      );
      expect(p95.classification).toBe('High');

      const json = await admin('GET', `/api/v1/servers/${server}/analyses/${a.id}`);
      expect(json.report).toMatchObject({
        verdict: 'fail',
        baseline: { version: '1.0.0' },
        canary: { version: '1.1.0' },
      });
      const md = await call('GET', `/api/v1/servers/${server}/analyses/${a.id}?format=markdown`);
      expect(md.statusCode).toBe(200);
      expect(md.headers['content-type']).toContain('text/markdown');
      expect(md.body).toMatch(/fail/i);
      expect(md.body).toContain('latency\\_p95');
      const html = await call('GET', `/api/v1/servers/${server}/analyses/${a.id}?format=html`);
      expect(html.statusCode).toBe(200);
      expect(html.headers['content-type']).toContain('text/html');
      expect(html.body).toContain('<table');
    });

    it('calls a canary with tiny traffic inconclusive, with the exact reason', async () => {
      const server = await canaryServer({ perMinute: 1, errorRate: 0, latencyMs: 100 });
      const a = (await analyze(server)).json();
      expect(a.verdict).toBe('inconclusive');
      expect(a.reasons).toContain(`insufficient traffic (${MINUTES} requests, needs 100)`);
    });

    it('fails an erroring canary against an error-free baseline', async () => {
      const server = await canaryServer(
        { perMinute: 60, errorRate: 0.03, latencyMs: 100 },
        { perMinute: 60, errorRate: 0, latencyMs: 100 },
      );
      const a = (await analyze(server)).json();
      expect(a.verdict).toBe('fail');
      const errors = a.metrics.find(
        (m: { metric: string; operation: string | null }) => m.metric === 'error_rate' && !m.operation,
      );
      expect(errors).toMatchObject({ classification: 'High', criticalFailure: true, baseline: 0 });
    });

    it('fails a canary whose sessions crash whatever its latency; no data without sessions', async () => {
      const server = await canaryServer(HEALTHY);
      const ended = (version: string, i: number, reason: string): SessionEventRow => ({
        org_id: api.org.id,
        server,
        environment: 'staging',
        version,
        session_id: `${version}-${i}`,
        time: new Date(start + 5 * 60_000 + i * 1000).toISOString(),
        event: 'end',
        reason,
        client_key: `client-${i}`,
        source: 'gateway',
      });
      // 1.0.0: 30 clean sessions; 1.1.0: 4 of 12 ended by an upstream failure.
      await writer.writeSessionEvents([
        ...Array.from({ length: 30 }, (_, i) => ended('1.0.0', i, 'delete')),
        ...Array.from({ length: 12 }, (_, i) => ended('1.1.0', i, i < 4 ? 'upstream-failure' : 'delete')),
      ]);
      await writer.flush();
      const a = (await analyze(server)).json();
      expect(a.verdict).toBe('fail');
      const crashes = a.metrics.find((m: { metric: string }) => m.metric === 'session_crash_rate');
      expect(crashes).toMatchObject({
        classification: 'High',
        criticalFailure: true,
        counts: { canary: { events: 4, total: 12 }, baseline: { events: 0, total: 30 } },
      });
      expect(a.reasons[0]).toMatch(/^session_crash_rate: canary 4 of 12/);
      const p95 = a.metrics.find(
        (m: { metric: string; operation: string | null }) => m.metric === 'latency_p95' && !m.operation,
      );
      expect(p95.classification).toBe('Pass');
      // Asking for more crashes before a rise counts: the same canary passes.
      const lenient = (
        await analyze(server, { metrics: [{ name: 'session_crash_rate', minEvents: 5 }] })
      ).json();
      expect(lenient.verdict, JSON.stringify(lenient.reasons)).toBe('pass');

      // A server without sessions: no data, left out of the score.
      const quiet = (await analyze(await canaryServer(HEALTHY))).json();
      expect(quiet.metrics.find((m: { metric: string }) => m.metric === 'session_crash_rate')).toMatchObject({
        classification: 'NoData',
      });
      expect(quiet.verdict).toBe('pass');
    });

    it('flags a breaking contract change under a minor bump from the stored tools lists', async () => {
      const server = await canaryServer(HEALTHY);
      const snapshot = (version: string, required: string[]) =>
        saveToolSnapshot(stores.db, api.org.id, {
          server,
          environment: 'staging',
          version,
          checkId: null,
          protocolVersion: '2025-06-18',
          serverInfo: null,
          tools: [
            {
              name: 'search',
              inputSchema: {
                type: 'object',
                properties: { q: { type: 'string' }, limit: { type: 'integer' } },
                required,
              },
            },
          ],
          toolsHash: `hash-${version}`,
          observedAt: new Date().toISOString(),
        });
      await snapshot('1.0.0', ['q']);
      await snapshot('1.1.0', ['q', 'limit']);
      const a = (await analyze(server)).json();
      expect(a.contract).toMatchObject({ breaking: true, bump: 'minor' });
      expect(a.warnings[0]).toMatch(/^breaking change under a non-major bump: 1\.0\.0 → 1\.1\.0/);
      expect(a.warnings[0]).toContain('limit');
      const md = await call('GET', `/api/v1/servers/${server}/analyses/${a.id}?format=markdown`);
      expect(md.body).toContain('breaking change under a non-major bump');
    });

    it('refuses bad input with a clear error and stores nothing', async () => {
      const server = await canaryServer(HEALTHY);
      const before = await rowCount();
      const cases: [object, number, string][] = [
        [{ candidate: '9.9.9' }, 404, 'version-not-found'],
        [{ baseline: '8.8.8' }, 404, 'version-not-found'],
        [{ baseline: '1.1.0' }, 400, 'same-version'],
        [{ environment: 'nowhere' }, 404, 'environment-not-found'],
        [{ interval: 'soon' }, 400, 'invalid-duration'],
        [{ thresholds: { pass: 50, marginal: 80 } }, 400, 'invalid-canary-config'],
        [{ metrics: [{ name: 'latency_p42' }] }, 400, 'invalid-canary-config'],
        [{ metrics: [{ name: 'latency_p95', allowedIncrease: 0.5 }] }, 400, 'invalid-canary-config'],
        [{ from: window.to, to: window.from }, 400, 'invalid-window'],
        [{ lifetime: '10m' }, 400, 'invalid-window'],
      ];
      for (const [body, status, code] of cases) {
        const res = await analyze(server, body);
        expect(res.statusCode, JSON.stringify(body)).toBe(status);
        expect(res.json().code, res.body).toBe(code);
        expect(res.json().detail.length).toBeGreaterThan(10);
      }
      // No stable version ran there: nothing to compare with.
      const lonely = `lonely-${++seq}`;
      await admin('POST', '/api/v1/servers', { slug: lonely });
      await admin('POST', `/api/v1/servers/${lonely}/versions`, { version: '1.1.0', status: 'stable' });
      const res = await analyze(lonely);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'no-baseline' });
      expect(res.json().detail).toContain('pass baseline');
      expect(await rowCount()).toBe(before);
    });

    it('refuses a read token, and 404s another org', async () => {
      const server = await canaryServer(HEALTHY);
      const read = await api.token(['read']);
      expect(
        (
          await call(
            'POST',
            `/api/v1/servers/${server}/analyses`,
            { candidate: '1.1.0', environment: 'staging' },
            read,
          )
        ).statusCode,
      ).toBe(403);
      const other = await call('POST', '/api/v1/orgs', { slug: `org-${++seq}` });
      const token = (other.json() as { token: string }).token;
      expect((await call('GET', `/api/v1/servers/${server}/analyses`, undefined, token)).statusCode).toBe(
        404,
      );
    });

    it('starts a running analysis for a lifetime, judged later by the worker', async () => {
      const server = await canaryServer(HEALTHY);
      const res = await call('POST', `/api/v1/servers/${server}/analyses`, {
        candidate: '1.1.0',
        environment: 'staging',
        lifetime: '5m',
      });
      expect(res.statusCode, res.body).toBe(202);
      const a = res.json();
      expect(a).toMatchObject({ status: 'running', verdict: null, baseline: '1.0.0' });
      const md = await call('GET', `/api/v1/servers/${server}/analyses/${a.id}?format=markdown`);
      expect(md.statusCode).toBe(404);
      expect(md.json()).toMatchObject({ code: 'report-not-ready' });
      // Its first evaluation was enqueued on the canary queue.
      const queue = new Queue(QUEUES.canary, { connection: stores.redis.connection(), prefix: QUEUE_PREFIX });
      const jobs = await queue.getJobs(['delayed', 'waiting']);
      expect(jobs.some((j) => j.data.analysisId === a.id)).toBe(true);
      await queue.obliterate({ force: true });
      await queue.close();
    });
  });

  describe('the CLI as a CI gate', () => {
    let url: string;
    beforeAll(async () => {
      await api.app.listen({ port: 0, host: '127.0.0.1' });
      url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    });

    async function run(name: string, positionals: string[], flags: Record<string, string | boolean>) {
      const command = canaryCommands.find((c) => c.name === name);
      if (!command) throw new Error(name);
      const out: unknown[] = [];
      const text: string[] = [];
      const ctx: CommandContext = {
        positionals,
        flags,
        client: { url, token: BOOTSTRAP_TOKEN, tokenSource: 'flag' },
        json: flags.json === true,
        print: (json, t) => {
          out.push(json);
          text.push(t);
        },
        warn: () => {},
        usage: (message) => {
          throw new Error(message);
        },
      };
      const code = (await command.run(ctx)) ?? 0;
      return { code, out, text: text.join('\n') };
    }

    it('exits 0 on pass, 1 on fail, 3 on inconclusive, printing the chosen format', async () => {
      const ok = await canaryServer(HEALTHY);
      const bad = await canaryServer({ perMinute: 60, errorRate: 0.1, latencyMs: 300 });
      const idle = await canaryServer(null);
      const flags = { candidate: '1.1.0', env: 'staging', ...window };
      const pass = await run('canary run', [ok], { ...flags, format: 'markdown' });
      expect(pass.code).toBe(0);
      expect(pass.text).toMatch(/pass/i);
      const fail = await run('canary run', [bad], { ...flags, format: 'html' });
      expect(fail.code).toBe(1);
      expect(fail.text).toContain('<html');
      const inconclusive = await run('canary run', [idle], { ...flags, json: true });
      expect(inconclusive.code).toBe(3);
      // Nothing judged: no score (never 100).
      expect(inconclusive.out[0]).toMatchObject({ verdict: 'inconclusive', score: null });
      // report: the stored analysis, same exit code.
      const id =
        (fail.out[0] as string) &&
        ((await admin('GET', `/api/v1/servers/${bad}/analyses`)).analyses as { id: string }[])[0]?.id;
      const report = await run('canary report', [bad, id as string], { format: 'json' });
      expect(report.code).toBe(1);
      expect(report.out[0]).toMatchObject({ id, verdict: 'fail' });
    });
  });

  describe('analyses that drive canary rollouts', () => {
    let worker: CanaryWorker;
    const events: PyleeEvent[] = [];
    beforeAll(async () => {
      const publisher: EventPublisher = {
        async publish(event) {
          events.push(event);
        },
      };
      worker = await startCanaryWorker({
        db: stores.db,
        redis: stores.redis,
        warehouse: stores.warehouse,
        logger: silentLogger,
        publisher,
        sweepEveryMs: 200,
        // Judge the synthetic window at once.
        step: { lookbackMs: Date.now() - start, lifetimeMs: 0 },
      });
    });
    afterAll(async () => {
      await worker?.close();
    });

    async function rollout(server: string, policy: object = {}) {
      return admin('POST', `/api/v1/servers/${server}/deployments`, {
        version: '1.1.0',
        environment: 'staging',
        strategy: 'canary',
        steps: [{ weight: 10, analyze: true }, { weight: 100 }],
        ...policy,
      });
    }

    async function until(server: string, id: string, done: (d: Record<string, unknown>) => boolean) {
      for (let i = 0; i < 300; i++) {
        const d = await admin('GET', `/api/v1/servers/${server}/deployments/${id}`);
        if (done(d)) return d;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`deployment ${id} did not get there`);
    }

    /** The server's canary.verdict event, published once the analysis recorded its action. */
    const verdictOf = async (server: string) => {
      const published = () => events.find((e) => e.type === 'canary.verdict' && e.server === server);
      await eventually(() => published() !== undefined, { what: 'the canary.verdict event' });
      return published();
    };

    const latestAnalysis = async (server: string, deployment: string) =>
      (
        (await admin('GET', `/api/v1/servers/${server}/analyses?deploymentId=${deployment}`))
          .analyses as Record<string, unknown>[]
      )[0];
    /**
     * The deployment's analysis once the worker recorded what it did: it acts on the rollout first
     * (promote, roll back, pause), so the rollout can show the outcome a moment before the analysis.
     */
    const analysisOf = async (server: string, deployment: string) => {
      await eventually(async () => ((await latestAnalysis(server, deployment))?.action ?? null) !== null, {
        what: 'the analysis action',
      });
      return latestAnalysis(server, deployment);
    };

    it('promotes a canary whose analysis passes', async () => {
      const server = await canaryServer(HEALTHY);
      const d = await rollout(server);
      expect(d).toMatchObject({ status: 'progressing', awaiting: 'analysis', weight: 10 });
      const done = await until(server, d.id as string, (x) => x.status !== 'progressing');
      expect(done).toMatchObject({ status: 'succeeded', weight: 100 });
      const a = await analysisOf(server, d.id as string);
      expect(a).toMatchObject({
        verdict: 'pass',
        action: 'promoted',
        baseline: '1.0.0',
        baselineSource: 'deployment',
        step: 0,
      });
      const event = await verdictOf(server);
      expect(event).toMatchObject({ version: '1.1.0', environment: 'staging', labels: { verdict: 'pass' } });
      expect(event?.summary).toContain('promoted');
    });

    it('waits for approval after a pass when the policy asks for it, then a person promotes', async () => {
      const server = await canaryServer(HEALTHY);
      const d = await rollout(server, { promotion: 'approval' });
      expect(d.policy).toMatchObject({ promotion: 'approval' });
      const held = await until(server, d.id as string, (x) => x.status !== 'progressing');
      expect(held).toMatchObject({ status: 'paused', weight: 10 });
      expect((held.events as { reason: string | null }[]).at(-1)?.reason).toContain('waiting for approval');
      expect(await analysisOf(server, d.id as string)).toMatchObject({
        verdict: 'pass',
        action: 'awaiting-approval',
      });
      const promoted = await admin(
        'POST',
        `/api/v1/servers/${server}/deployments/${d.id as string}/promote`,
        {},
      );
      expect(promoted).toMatchObject({ status: 'succeeded', weight: 100 });
    });

    it('rolls back a regressing canary when its policy says so', async () => {
      const server = await canaryServer({ perMinute: 60, errorRate: 0.1, latencyMs: 300 });
      // Sessions in the window: 1.0.0 ten clean ones, 1.1.0 two of six ended by an upstream failure.
      const ended = (version: string, i: number, reason: string): SessionEventRow => ({
        org_id: api.org.id,
        server,
        environment: 'staging',
        version,
        session_id: `${version}-${i}`,
        time: new Date(start + 5 * 60_000 + i * 1000).toISOString(),
        event: 'end',
        reason,
        client_key: `client-${version}-${i}`,
        source: 'gateway',
      });
      await writer.writeSessionEvents([
        ...Array.from({ length: 10 }, (_, i) => ended('1.0.0', i, 'delete')),
        ...Array.from({ length: 6 }, (_, i) => ended('1.1.0', i, i < 2 ? 'upstream-failure' : 'delete')),
      ]);
      await writer.flush();
      const d = await rollout(server, { rollbackOnFailure: true });
      const done = await until(server, d.id as string, (x) => x.status !== 'progressing');
      expect(done).toMatchObject({ status: 'rolled-back', weight: 0 });
      expect(String(done.statusReason)).toContain('fail');
      const a = await analysisOf(server, d.id as string);
      expect(a).toMatchObject({ verdict: 'fail', action: 'rolled-back' });
      const env = (await admin('GET', `/api/v1/servers/${server}/environments`)) as unknown as {
        environments?: { environment: string; stable: { version: string } | null }[];
      };
      const staging = (
        env.environments ?? (env as unknown as { environment: string; stable: { version: string } | null }[])
      ).find?.((e) => e.environment === 'staging');
      if (staging) expect(staging.stable?.version).toBe('1.0.0');
      // Published once the action is recorded.
      const verdict = await verdictOf(server);
      expect(verdict?.summary).toContain('rolled back');
      // The verdict carries both versions' crash-free sessions over the window judged, in its data
      // (the webhook payload) and in the Slack text.
      expect(verdict?.data.sessions).toMatchObject({
        environment: 'staging',
        window: { from: a?.window && (a.window as { start: string }).start },
        version: {
          version: '1.1.0',
          sessions: 6,
          crashed: 2,
          crashFreeSessions: 1 - 2 / 6,
          crashFreeUsers: 1 - 2 / 6,
        },
        baseline: { version: '1.0.0', sessions: 10, crashed: 0, crashFreeSessions: 1, crashFreeUsers: 1 },
      });
      const slack = renderSlack({
        ...verdict!,
        id: 'e1',
        server,
        environment: 'staging',
        version: '1.1.0',
        labels: verdict?.labels ?? {},
        occurredAt: new Date().toISOString(),
      });
      expect(slack.text).toContain(' — Crash-free sessions: 1.1.0 66.7 % vs 1.0.0 100.0 %');
    });

    it('holds a regressing canary with "rollback recommended" when the policy does not roll back', async () => {
      const server = await canaryServer({ perMinute: 60, errorRate: 0.1, latencyMs: 300 });
      const d = await rollout(server);
      const done = await until(server, d.id as string, (x) => x.status !== 'progressing');
      expect(done).toMatchObject({ status: 'paused', weight: 10, pause: { kind: 'manual' } });
      expect(done.allowedActions).toEqual(expect.arrayContaining(['rollback', 'promote']));
      const a = await analysisOf(server, d.id as string);
      expect(a).toMatchObject({ verdict: 'fail', action: 'rollback-recommended' });
      const events_ = done.events as { action: string; reason: string | null }[];
      expect(events_.at(-1)?.reason).toContain('rollback recommended');
    });

    it('holds an idle canary (inconclusive) for a person', async () => {
      const server = await canaryServer(null);
      const d = await rollout(server);
      const done = await until(server, d.id as string, (x) => x.status !== 'progressing');
      expect(done).toMatchObject({ status: 'paused' });
      const a = await analysisOf(server, d.id as string);
      expect(a).toMatchObject({ verdict: 'inconclusive', action: 'held', score: null });
      expect(a?.reasons).toEqual([
        `insufficient traffic (0 requests, needs 100)`,
        'no metric had data to judge',
      ]);
    });
  });

  describe('interim scores', () => {
    let deps: CanaryDeps;
    let queue: Queue;
    let closeDeploy: () => Promise<void>;
    beforeAll(() => {
      const deploy = openDeployDeps({ db: stores.db, redis: stores.redis, logger: silentLogger });
      closeDeploy = deploy.close;
      queue = new Queue(QUEUES.canary, { connection: stores.redis.connection(), prefix: QUEUE_PREFIX });
      deps = {
        db: stores.db,
        warehouse: stores.warehouse,
        publisher: { publish: async () => {} },
        scheduler: canaryScheduler(queue),
        deploy: deploy.deps,
      };
    });
    afterAll(async () => {
      await queue.obliterate({ force: true });
      await queue.close();
      await closeDeploy();
    });

    const step = () => ({ lookbackMs: Date.now() - start, lifetimeMs: 3_600_000 });

    it('keeps a healthy canary running with its interim score, and stops a regressing one early', async () => {
      // A seed whose healthy canary has no chance difference in any metric (at 98% confidence over
      // eleven metrics, about one healthy canary in ten shows one, and one metric of nine is marginal).
      const healthy = await canaryServer(HEALTHY, HEALTHY, 1);
      const bad = await canaryServer({ perMinute: 60, errorRate: 0.1, latencyMs: 300 });
      const good = await admin('POST', `/api/v1/servers/${healthy}/deployments`, {
        version: '1.1.0',
        environment: 'staging',
        strategy: 'canary',
        steps: [{ weight: 10, analyze: true }, { weight: 100 }],
      });
      const failing = await admin('POST', `/api/v1/servers/${bad}/deployments`, {
        version: '1.1.0',
        environment: 'staging',
        strategy: 'canary',
        steps: [{ weight: 10, analyze: true }, { weight: 100 }],
        rollbackOnFailure: true,
      });
      const started = await startStepAnalyses(deps, step());
      expect(started).toHaveLength(2);
      // The sweep does not start a second analysis for the same step.
      expect(await startStepAnalyses(deps, step())).toEqual([]);
      const ids = await stores.db.query<{ id: string; deployment_id: string }>(
        'SELECT id, deployment_id FROM canary_analyses WHERE id = ANY($1)',
        [started],
      );
      const idOf = (d: Record<string, unknown>) => ids.find((r) => r.deployment_id === d.id)?.id as string;

      expect(await evaluateAnalysis(deps, idOf(good))).toEqual({ status: 'running', verdict: null });
      const running = await admin('GET', `/api/v1/servers/${healthy}/analyses/${idOf(good)}`);
      expect(running).toMatchObject({ status: 'running', verdict: null });
      expect(running.interim).toEqual([expect.objectContaining({ verdict: 'pass' })]);
      expect((await admin('GET', `/api/v1/servers/${healthy}/deployments/${good.id as string}`)).status).toBe(
        'progressing',
      );

      expect(await evaluateAnalysis(deps, idOf(failing))).toEqual({ status: 'completed', verdict: 'fail' });
      const stopped = await admin('GET', `/api/v1/servers/${bad}/analyses/${idOf(failing)}`);
      expect(stopped).toMatchObject({ status: 'completed', verdict: 'fail', action: 'rolled-back' });
      expect((stopped.reasons as string[])[0]).toMatch(
        /^stopped early after \d+(\.\d+)? min: the interim score/,
      );
      expect((await admin('GET', `/api/v1/servers/${bad}/deployments/${failing.id as string}`)).status).toBe(
        'rolled-back',
      );
    });
  });

  // Last in the suite: the servers it adds move no other test's seeds.
  describe('health-check failures', () => {
    it('scores health-check failures only where health checks ran', async () => {
      type Row = { metric: string; operation: string | null; classification: string; reason: string };
      const health = (a: { metrics: Row[] }) =>
        a.metrics.find((m) => m.metric === 'health_check_failures' && !m.operation);
      // No health check configured: no data, shown as such, and its weight out of the score.
      const none = await canaryServer({ perMinute: 60, errorRate: 0.08, latencyMs: 250 });
      const failing = (await analyze(none)).json();
      expect(health(failing)).toMatchObject({
        classification: 'NoData',
        reason: 'no canary and baseline data',
      });
      const scored = (failing.metrics as Row[]).filter((m) =>
        ['Pass', 'High', 'Low'].includes(m.classification),
      );
      const passed = scored.filter((m) => m.classification === 'Pass').length;
      expect(failing.score).toBeCloseTo((100 * passed) / scored.length, 10);
      const md = await call('GET', `/api/v1/servers/${none}/analyses/${failing.id}?format=markdown`);
      expect(md.body).toContain('| health\\_check\\_failures | — | — | — | — | ⚪ No data |');
      expect(md.body).toMatch(/· \d+ of \d+ metrics had no data and are not scored/);

      // Checks that ran every minute against both versions and never failed: judged, a pass.
      const checked = await canaryServer(HEALTHY);
      const results: HealthResult[] = ['1.0.0', '1.1.0'].flatMap((version) =>
        Array.from({ length: MINUTES }, (_, m) => ({
          orgId: api.org.id,
          server: checked,
          environment: 'staging',
          version,
          checkId: `check-${checked}`,
          checkName: 'mcp',
          kind: 'mcp' as const,
          phase: 'runtime' as const,
          time: new Date(start + m * 60_000 + 30_000).toISOString(),
          ok: true,
          latencyMs: 12,
          statusCode: 200,
          error: '',
          protocolVersion: '2025-06-18',
          toolCount: 2,
          toolsHash: '',
          deploymentId: '',
          runId: `run-${version}-${m}`,
        })),
      );
      await writeResults(stores.warehouse, results);
      const ok = (await analyze(checked)).json();
      expect(health(ok)).toMatchObject({ classification: 'Pass' });
    });
  });
});
