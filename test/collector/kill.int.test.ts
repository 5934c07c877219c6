import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { sessionFigures } from '#core/release-health/queries.ts';
import { openWarehouse } from '#core/warehouse/client.ts';
import { startUpstream } from '#test/gateway/upstream.ts';
import { killLeftovers, platformEnv, startPylee, type PyleeProcess } from '#test/helpers/pylee-process.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';
import { kv, metrics, metricsProtobuf, resource, span, traceProtobuf, traces } from './fixtures/otlp.ts';

// The real platform (`pylee start`, embedded PGlite, chDB and redis-server) fed OTLP/protobuf over
// HTTP by four senders at once; the whole process group gets SIGKILL right after the Nth 200, while
// other bodies are in flight. After the last round Pylee stops cleanly and this process opens the
// same chDB data dir: every acknowledged span and point must be there exactly once. Then the same
// for the gateway: an MCP SDK client's session, its process group killed mid-session.

const TOKEN = 'pyl_kill_test_bootstrap_token_0123456789abcdef';
const ROUNDS = 3;
const BODIES = 60; // per round and signal
const KILL_AFTER = 30; // acknowledged bodies (of both signals) before the kill
const SPANS = 200; // per trace body
const POINTS = 50; // per metrics body
const SENDERS = 4;

let dataDir: string;
let pylee: PyleeProcess;
let ingestKey: string;

const env = () => platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: TOKEN });

beforeAll(async () => {
  dataDir = tempDir('pylee-kill');
  pylee = await startPylee({ env: env(), processGroup: true });
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  await fetch(`${pylee.apiUrl}/api/v1/servers`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ slug: 'weather' }),
  });
  const key = await fetch(`${pylee.apiUrl}/api/v1/ingest-keys`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name: 'kill-test' }),
  });
  expect(key.status).toBe(201);
  ingestKey = ((await key.json()) as { key: string }).key;
});

afterAll(async () => {
  await killLeftovers();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const NOW = BigInt(Date.now() - 60_000) * 1_000_000n;
const spanId = (round: number, body: number, i: number) =>
  ((round * 1000 + body) * 1000 + i).toString(16).padStart(16, '0');
const version = (round: number, body: number) => `${round}.${body}.0`;

function traceBody(round: number, body: number): Buffer {
  const spans = Array.from({ length: SPANS }, (_, i) =>
    span({
      spanId: spanId(round, body, i),
      name: 'tools/call forecast',
      start: NOW + BigInt(i) * 1_000_000n,
      attributes: [kv('mcp.method.name', 'tools/call'), kv('gen_ai.tool.name', 'forecast')],
    }),
  );
  return traceProtobuf(
    traces(
      spans,
      resource({
        'service.name': 'weather',
        'service.version': version(round, body),
        'deployment.environment.name': 'production',
      }),
    ),
  );
}

function metricsBody(round: number, body: number): Buffer {
  const dataPoints = Array.from({ length: POINTS }, (_, i) => ({
    timeUnixNano: (NOW + BigInt(i) * 1_000_000_000n).toString(),
    asDouble: 1000 + i,
  }));
  return metricsProtobuf(
    metrics(
      [{ name: 'process.memory.usage', unit: 'By', gauge: { dataPoints } }],
      resource({
        'service.name': 'weather',
        'service.version': version(round, body),
        'deployment.environment.name': 'production',
      }),
    ),
  );
}

async function gauge(name: string): Promise<number | undefined> {
  const text = await (await fetch(`${pylee.otlpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

interface Sent {
  traces: Set<string>;
  metrics: Set<string>;
}

/**
 * Sends the round's bodies with {@link SENDERS} in flight; after {@link KILL_AFTER} 200s the
 * process group is killed. Resolves with the versions (one per body) that were answered 200.
 */
async function ingestAndKill(round: number): Promise<{ acked: Sent; answered: number }> {
  const acked: Sent = { traces: new Set(), metrics: new Set() };
  const work = Array.from({ length: BODIES }, (_, body) => [
    { signal: 'traces' as const, body },
    { signal: 'metrics' as const, body },
  ]).flat();
  let killed: Promise<unknown> | undefined;
  let next = 0;
  const sender = async () => {
    while (next < work.length && !killed) {
      const { signal, body } = work[next++] as (typeof work)[number];
      const payload = signal === 'traces' ? traceBody(round, body) : metricsBody(round, body);
      const response = await fetch(`${pylee.otlpUrl}/v1/${signal}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf', authorization: `Bearer ${ingestKey}` },
        body: new Uint8Array(payload),
      }).catch(() => undefined); // the kill cuts connections
      if (response?.status !== 200) continue;
      await response.arrayBuffer();
      acked[signal].add(version(round, body));
      if (acked.traces.size + acked.metrics.size === KILL_AFTER) killed = pylee.killGroup('SIGKILL');
    }
  };
  await Promise.all(Array.from({ length: SENDERS }, sender));
  const exit = (await killed) as { signal: string | null };
  expect(exit.signal).toBe('SIGKILL');
  return { acked, answered: acked.traces.size + acked.metrics.size };
}

describe('collector under kill -9 of the whole process group', () => {
  it('stores every span and point it answered 200 exactly once after each restart', async () => {
    const acked: Sent = { traces: new Set(), metrics: new Set() };
    const rounds: { answered: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const result = await ingestAndKill(round);
      for (const v of result.acked.traces) acked.traces.add(v);
      for (const v of result.acked.metrics) acked.metrics.add(v);
      rounds.push({ answered: result.answered });
      // Restarted at once, on the same data dir: the killed process may not even be reaped yet.
      pylee = await startPylee({ env: env(), processGroup: true });
    }
    // What the restarts recovered goes through the spool; a clean stop leaves the spool for the
    // next start, so wait until it is replayed.
    await until(async () => (await gauge('pylee_collector_spool_files')) === 0, { timeoutMs: 30_000 });
    expect(await pylee.stop('SIGTERM')).toBe(0);

    const warehouse = await openWarehouse({ dataDir });
    try {
      const spans = await warehouse.client.query({
        query: `SELECT version, count() AS rows, uniqExact(span_id) AS spans FROM requests GROUP BY version`,
        format: 'JSONEachRow',
      });
      const perVersion = new Map(
        (await spans.json<{ version: string; rows: string; spans: string }>()).map((r) => [
          r.version,
          { rows: Number(r.rows), spans: Number(r.spans) },
        ]),
      );
      const points = await warehouse.client.query({
        query: `SELECT version, count() AS rows, uniqExact(time) AS points FROM metric_points GROUP BY version`,
        format: 'JSONEachRow',
      });
      const pointsPerVersion = new Map(
        (await points.json<{ version: string; rows: string; points: string }>()).map((r) => [
          r.version,
          { rows: Number(r.rows), points: Number(r.points) },
        ]),
      );
      if (process.env.KILL_DEBUG)
        process.stderr.write(
          `${JSON.stringify({ traces: [...acked.traces], metrics: [...acked.metrics], points: [...pointsPerVersion.keys()] })}\n`,
        );
      // Acknowledged: all there, once. Not acknowledged (in flight at the kill): whole or absent, once.
      for (const v of acked.traces) expect(perVersion.get(v), v).toEqual({ rows: SPANS, spans: SPANS });
      for (const [v, stored] of perVersion) expect(stored, v).toEqual({ rows: SPANS, spans: SPANS });
      for (const v of acked.metrics)
        expect(pointsPerVersion.get(v), v).toEqual({ rows: POINTS, points: POINTS });
      for (const [v, stored] of pointsPerVersion) expect(stored, v).toEqual({ rows: POINTS, points: POINTS });

      const storedSpans = [...perVersion.values()].reduce((n, s) => n + s.rows, 0);
      const storedPoints = [...pointsPerVersion.values()].reduce((n, s) => n + s.rows, 0);
      process.stderr.write(
        `kill test: ${ROUNDS} rounds; acknowledged ${acked.traces.size * SPANS} spans / ${acked.metrics.size * POINTS} points; stored ${storedSpans} spans / ${storedPoints} points (the rest were in flight at the kill, never acknowledged); per round ${rounds.map((r) => r.answered).join(', ')} bodies answered 200\n`,
      );
    } finally {
      await warehouse.close();
    }
  });
});

describe('gateway under kill -9 of the whole process group', () => {
  it('keeps every call it answered, and the session it held ends up abnormal', async () => {
    // The collector test above ends with Pylee stopped (run alone, this one finds it running).
    if (pylee.child.exitCode !== null || pylee.child.signalCode !== null)
      pylee = await startPylee({ env: env(), processGroup: true });
    const upstream = await startUpstream('1.0.0');
    const api = async <T>(method: string, path: string, body: object): Promise<T> => {
      const res = await fetch(`${pylee.apiUrl}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status, `${method} ${path}`).toBeLessThan(300);
      return (await res.json()) as T;
    };
    const CALLS = 5;
    let orgId: string | undefined;
    try {
      await api('POST', '/servers/weather/versions', {
        version: '1.0.0',
        remotes: [{ type: 'streamable-http', url: upstream.url }],
      });
      await api('POST', '/servers/weather/deployments', { version: '1.0.0', environment: 'development' });
      const { token } = await api<{ token: string }>('POST', '/tokens', {
        name: 'mcp',
        permissions: ['connect'],
      });
      const transport = new StreamableHTTPClientTransport(
        new URL(`${pylee.gatewayUrl}/default/weather/development/mcp`),
        { requestInit: { headers: { authorization: `Bearer ${token}` } } },
      );
      const client = new Client({ name: 'kill-test', version: '1.0.0' });
      await client.connect(transport);
      for (let i = 0; i < CALLS; i++) await client.callTool({ name: 'whoami', arguments: {} });
      // Every call answered; the process group dies before the client ends its session.
      expect((await pylee.killGroup('SIGKILL')).signal).toBe('SIGKILL');
      await client.close().catch(() => {});

      pylee = await startPylee({ env: env(), processGroup: true });
      const who = await fetch(`${pylee.apiUrl}/api/v1/me`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      orgId = ((await who.json()) as { org: { id: string } }).org.id;
      type Listed = { sessions: { status: string; requests: number; endReason: string | null }[] };
      let listed: Listed | undefined;
      await until(
        async () => {
          const res = await fetch(
            `${pylee.apiUrl}/api/v1/servers/weather/versions/1.0.0/sessions?environment=development&window=1h`,
            { headers: { authorization: `Bearer ${TOKEN}` } },
          );
          listed = (await res.json()) as Listed;
          return (listed.sessions[0]?.requests ?? 0) >= CALLS + 1;
        },
        { what: 'the killed gateway’s calls after the restart', timeoutMs: 30_000 },
      );
      // One session, every tools/call of it there once; not ended, so still active for now.
      expect(listed?.sessions).toHaveLength(1);
      expect(listed?.sessions[0]).toMatchObject({ status: 'active', endReason: null });
      expect(listed?.sessions[0]?.requests).toBe(CALLS + 1); // and initialize
    } finally {
      await upstream.close();
      expect(await pylee.stop('SIGTERM')).toBe(0);
    }
    // Past the idle limit with no end, its fate is unknown: abnormal, not healthy nor crashed.
    const warehouse = await openWarehouse({ dataDir });
    try {
      const now = Date.now();
      const scope = {
        orgId: orgId ?? '',
        server: 'weather',
        environment: 'development',
        from: now - 3_600_000,
        to: now,
      };
      const [pooled] = (
        await sessionFigures(warehouse, { ...scope, now: now + 31 * 60_000, idleMs: 30 * 60_000 })
      ).filter((f) => f.version === null);
      expect(pooled?.sessions).toMatchObject({ total: 1, abnormal: 1, healthy: 0, crashed: 0, active: 0 });
    } finally {
      await warehouse.close();
    }
  });
});
