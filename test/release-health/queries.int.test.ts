import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adoption,
  adoptionStage,
  ADOPTION_STAGE_WINDOW_MS,
  ADOPTION_WINDOW_MS,
  hasDuration,
  healthFigures,
  rates,
  sessionStatus,
  stageOf,
  stageWindowEnds,
  type SessionState,
} from '#core/release-health/model.ts';
import { sessionFigures, sessionStates, windowCounts } from '#core/release-health/queries.ts';
import { settledUntil, settleSessions } from '#core/release-health/rollups.ts';
import { openWarehouse, type Warehouse } from '#core/warehouse/client.ts';
import { migrateWarehouse } from '#core/warehouse/migrate.ts';
import type { RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import { seededRandom } from '#test/helpers/random.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// The release-health query computes statuses, rates and adoption in ClickHouse; the model
// (model.ts) is the reference. Random sessions written as request rows and session events must
// give the same figures both ways.

const HOUR = 3_600_000;
const NOW = Math.floor(Date.now() / 1000) * 1000;
const IDLE = 30 * 60_000;
// 0.9.0 only more than 14 hours ago (replaced), 3.0.0-rc.1 rare (low adoption).
const VERSIONS = ['0.9.0', '1.0.0', '1.1.0', '2.0.0', '3.0.0-rc.1'];
const scope = { orgId: 'org-1', server: 'fuzz', environment: 'production' };

let dir: string;
let warehouse: Warehouse;

beforeAll(async () => {
  dir = tempDir('pylee-release-health');
  warehouse = await openWarehouse({ dataDir: dir });
  await migrateWarehouse(warehouse);
  const random = seededRandom(15);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const requests: RequestRow[] = [];
  const events: SessionEventRow[] = [];
  for (let i = 0; i < 400; i++) {
    const session = `s${i}`;
    const client = pick(['', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    const start = NOW - Math.floor(random() * 30 * HOUR);
    const version =
      i % 50 === 0
        ? '3.0.0-rc.1'
        : NOW - start > 14 * HOUR && random() < 0.5
          ? '0.9.0'
          : pick(['1.0.0', '1.1.0', '2.0.0']);
    const n = 1 + Math.floor(random() * 4);
    for (let j = 0; j < n; j++) {
      const failure = random();
      requests.push({
        org_id: scope.orgId,
        server: scope.server,
        environment: scope.environment,
        version,
        operation: 'tools/call whoami',
        time: new Date(start + j * 60_000).toISOString(),
        duration_ms: Math.floor(random() * 500),
        error: failure < 0.15 ? 1 : 0,
        error_type:
          failure < 0.05 ? pick(['502', 'upstream_disconnected']) : failure < 0.15 ? 'tool_error' : '',
        http_status: 200,
        mcp_method: 'tools/call',
        tool: 'whoami',
        trace_id: '',
        span_id: '',
        session_id: session,
        source: pick(['gateway', 'otlp']),
        client_key: client,
        counted: random() < 0.95 ? 1 : 0,
      });
    }
    const event = (over: Partial<SessionEventRow>): SessionEventRow => ({
      org_id: scope.orgId,
      server: scope.server,
      environment: scope.environment,
      version,
      session_id: session,
      time: new Date(start + n * 60_000).toISOString(),
      event: 'end',
      reason: 'delete',
      client_key: client,
      source: 'gateway',
      ...over,
    });
    const fate = random();
    if (fate < 0.5)
      events.push(
        event({ reason: pick(['delete', 'delete', 'client-closed', 'upstream-failure', 'rollback']) }),
      );
    else if (fate < 0.6)
      events.push(
        event({
          event: 'migrate',
          version: pick(['1.0.0', '1.1.0', '2.0.0'].filter((v) => v !== version)),
          reason: version,
        }),
      );
  }
  // In several inserts, so the states of one session sit in several parts.
  for (let k = 0; k < 4; k++) {
    await warehouse.client.insert({
      table: 'requests',
      values: requests.filter((_, i) => i % 4 === k),
      format: 'JSONEachRow',
    });
  }
  await warehouse.client.insert({ table: 'session_events', values: events, format: 'JSONEachRow' });
});
afterAll(async () => {
  await warehouse?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the release-health query against the model', () => {
  it.each([6, 24])(
    'gives the model’s counts, rates and durations per version over %i hours',
    async (hours) => {
      const from = NOW - hours * HOUR;
      const states = await sessionStates(warehouse, { ...scope, from, to: NOW });
      expect(states.length).toBeGreaterThan(50);
      const figures = await sessionFigures(warehouse, { ...scope, from, to: NOW, now: NOW, idleMs: IDLE });
      const statuses = new Set<string>();
      for (const version of [...VERSIONS, null]) {
        const mine = states.filter((s) => version === null || s.version === version);
        const expected = healthFigures(mine, NOW, IDLE);
        const actual = figures.find((f) => f.version === version);
        if (expected.sessions.total === 0) {
          expect(actual).toBeUndefined();
          continue;
        }
        expect(actual?.sessions, String(version)).toEqual(expected.sessions);
        expect(actual?.users).toBe(expected.users);
        const got = rates(actual ?? { sessions: expected.sessions, decidedUsers: 0, crashedUsers: 0 });
        for (const key of ['crashFreeSessions', 'crashFreeUsers', 'erroredRate'] as const) {
          if (expected[key] === null) expect(got[key]).toBeNull();
          else expect(got[key]).toBeCloseTo(expected[key], 9);
        }
        // Durations are t-digest estimates: a value of the sessions' own lifetimes next to the rank.
        const lifetimes = mine
          .filter((s) => hasDuration(s, sessionStatus(s, NOW, IDLE)))
          .map((s) => s.lastSeen - s.firstSeen)
          .sort((a, b) => a - b);
        for (const [key, p] of [
          ['p50', 0.5],
          ['p90', 0.9],
        ] as const) {
          if (expected.duration[key] === null) {
            expect(actual?.duration[key]).toBeNull();
            continue;
          }
          const rank = (lifetimes.length - 1) * p;
          const low = lifetimes[Math.max(0, Math.floor(rank) - 1)] as number;
          const high = lifetimes[Math.min(lifetimes.length - 1, Math.ceil(rank) + 1)] as number;
          expect(actual?.duration[key], `${String(version)} ${key}`).toBeGreaterThanOrEqual(low);
          expect(actual?.duration[key], `${String(version)} ${key}`).toBeLessThanOrEqual(high);
        }
        for (const [status, count] of Object.entries(expected.sessions)) if (count > 0) statuses.add(status);
      }
      // Every status occurs, so every rule was compared.
      expect([...statuses].sort()).toEqual(
        ['abnormal', 'active', 'crashed', 'errored', 'healthy', 'moved-by-rollout', 'total'].sort(),
      );
    },
  );

  it('merges every row of a session seen in the window, also those from before it', async () => {
    const long = { ...scope, server: 'long' };
    const row = (at: number, error: 0 | 1): RequestRow => ({
      org_id: long.orgId,
      server: long.server,
      environment: long.environment,
      version: '1.0.0',
      operation: 'tools/call whoami',
      time: new Date(at).toISOString(),
      duration_ms: 0,
      error,
      error_type: error ? 'tool_error' : '',
      http_status: 200,
      mcp_method: 'tools/call',
      tool: 'whoami',
      trace_id: '',
      span_id: '',
      session_id: 'long-1',
      source: 'gateway',
      client_key: 'k',
      counted: 1,
    });
    // Two inserts: two parts, one of them wholly before the window.
    await warehouse.client.insert({
      table: 'requests',
      values: [row(NOW - 7 * HOUR, 1)],
      format: 'JSONEachRow',
    });
    await warehouse.client.insert({ table: 'requests', values: [row(NOW - HOUR, 0)], format: 'JSONEachRow' });
    const from = NOW - 6 * HOUR;
    const [state] = await sessionStates(warehouse, { ...long, from, to: NOW });
    expect(state).toMatchObject({ firstSeen: NOW - 7 * HOUR, lastSeen: NOW - HOUR, requests: 2, errors: 1 });
    const figures = await sessionFigures(warehouse, { ...long, from, to: NOW, now: NOW, idleMs: IDLE });
    expect(figures.find((f) => f.version === '1.0.0')?.sessions).toMatchObject({ total: 1, errored: 1 });
  });

  it('gives the model’s adoption and stage per version', async () => {
    const since = NOW - 24 * HOUR;
    const all: SessionState[] = await sessionStates(warehouse, { ...scope, from: since, to: NOW });
    const windows = [
      { from: NOW - ADOPTION_WINDOW_MS, to: NOW },
      ...stageWindowEnds(NOW, since).map((end) => ({ from: end - ADOPTION_STAGE_WINDOW_MS, to: end })),
    ];
    const counts = await windowCounts(warehouse, { ...scope, from: since, to: NOW, windows });
    const pooled = counts.find((c) => c.version === null);
    const stages = new Set<string>();
    for (const version of VERSIONS) {
      const mine = counts.find((c) => c.version === version);
      const share = (i: number) =>
        pooled?.sessions[i] ? (mine?.sessions[i] ?? 0) / pooled.sessions[i] : null;
      const users = pooled?.users ? (mine?.users ?? 0) / pooled.users : null;
      expect({ sessions: share(0), users }).toEqual(adoption(all, version, NOW - ADOPTION_WINDOW_MS, NOW));
      windows.forEach((w, i) => {
        const seen = all.filter(
          (st) => st.version === version && st.lastSeen >= w.from && st.firstSeen <= w.to,
        );
        expect(mine?.sessions[i] ?? 0).toBe(seen.length);
        if (i === 0)
          expect(mine?.users ?? 0).toBe(new Set(seen.map((st) => st.clientKey).filter(Boolean)).size);
      });
      const stage = stageOf(windows.slice(1).map((_, i) => share(i + 1)));
      expect(stage).toBe(adoptionStage(all, version, NOW, since));
      stages.add(stage);
    }
    expect([...stages].sort()).toEqual(['adopted', 'low-adoption', 'replaced']);
  });
});

describe('the release-health query over settled sessions', () => {
  // Last: settling changes what every later query of this file reads.
  const MINUTE = 60_000;
  const aligned = (at: number) => Math.floor(at / MINUTE) * MINUTE;
  const figuresBoth = async (hours: number) => {
    const window = { ...scope, from: aligned(NOW - hours * HOUR), to: NOW, now: NOW, idleMs: IDLE };
    const [raw, rolled] = await Promise.all([
      sessionFigures(warehouse, { ...window, settled: 0 }),
      sessionFigures(warehouse, window),
    ]);
    const byVersion = (rows: typeof raw) =>
      Object.fromEntries(rows.map((r) => [String(r.version), { ...r, duration: r.duration.p50 !== null }]));
    return { raw: byVersion(raw), rolled: byVersion(rolled) };
  };

  it('carries long sessions over chunk ends: their early errors and first time are kept once settled', async () => {
    const carry = { ...scope, server: 'carry' };
    const base = {
      org_id: carry.orgId,
      server: carry.server,
      environment: carry.environment,
      version: '1.0.0',
    };
    const request = (session: string, at: number, errorType = ''): RequestRow => ({
      ...base,
      operation: 'tools/call whoami',
      time: new Date(at).toISOString(),
      duration_ms: 0,
      error: errorType ? 1 : 0,
      error_type: errorType,
      http_status: 200,
      mcp_method: 'tools/call',
      tool: 'whoami',
      trace_id: '',
      span_id: '',
      session_id: session,
      source: 'gateway',
      client_key: 'k',
      counted: 1,
    });
    const end = (session: string, at: number): SessionEventRow => ({
      ...base,
      session_id: session,
      time: new Date(at).toISOString(),
      event: 'end',
      reason: 'delete',
      client_key: 'k',
      source: 'gateway',
    });
    // "long": a tool error 10 h ago, still going 1 h ago, ended 30 min ago (in the unsettled tail).
    // "crashy": an upstream failure 20 h ago, ended 3 h ago (settled). Each row its own insert.
    for (const row of [
      request('long', NOW - 10 * HOUR, 'tool_error'),
      request('long', NOW - 5 * HOUR),
      request('long', NOW - HOUR),
      request('crashy', NOW - 20 * HOUR, '502'),
      request('crashy', NOW - 13 * HOUR),
    ])
      await warehouse.client.insert({ table: 'requests', values: [row], format: 'JSONEachRow' });
    await warehouse.client.insert({
      table: 'session_events',
      values: [end('long', NOW - HOUR / 2), end('crashy', NOW - 3 * HOUR)],
      format: 'JSONEachRow',
    });
    // Settling in 2-hour chunks: both sessions cross several chunk ends. From the earliest session
    // of the file (30 hours ago) up to the minute 2 hours ago.
    const settled = await settleSessions(warehouse, {
      now: NOW,
      lagMs: 2 * HOUR,
      idleMs: IDLE,
      maxChunkMs: 2 * HOUR,
    });
    expect(settled.chunks.length).toBeGreaterThanOrEqual(14);
    expect(settled.settledUntil).toBe(aligned(NOW - 2 * HOUR));
    expect(await settledUntil(warehouse)).toBe(settled.settledUntil);
    const figures = await sessionFigures(warehouse, {
      ...carry,
      from: NOW - 24 * HOUR,
      to: NOW,
      now: NOW,
      idleMs: IDLE,
    });
    const pooled = figures.find((f) => f.version === null);
    expect(pooled?.sessions).toMatchObject({ total: 2, errored: 1, crashed: 1, healthy: 0, abnormal: 0 });
    expect(pooled).toMatchObject({ users: 1, decidedUsers: 1, crashedUsers: 1 });
    // Durations of the two: 9.5 h and 17 h, whatever chunk their rows fell in.
    expect(pooled?.duration.p50).toBeGreaterThanOrEqual(9.5 * HOUR);
    expect(pooled?.duration.p90).toBeLessThanOrEqual(17 * HOUR);
    expect(pooled?.duration.p90).toBeGreaterThan(9.5 * HOUR);
  });

  it('gives the same counts, users and adoption from rollups and raw states, and settles each session once', async () => {
    // Settled by the test before: caught up, nothing more to settle.
    expect((await settleSessions(warehouse, { now: NOW, lagMs: 2 * HOUR, idleMs: IDLE })).chunks).toEqual([]);
    const [row] = await (
      await warehouse.client.query({
        query: 'SELECT sum(sessions) AS n FROM session_rollups',
        format: 'JSONEachRow',
      })
    ).json<{ n: string }>();
    expect(Number(row?.n)).toBeGreaterThan(100);
    for (const hours of [6, 24]) {
      const { raw, rolled } = await figuresBoth(hours);
      expect(rolled, `${hours} h`).toEqual(raw);
    }
    const windows = [{ from: aligned(NOW - ADOPTION_WINDOW_MS), to: NOW }];
    const adoptionOf = (settled?: number) =>
      windowCounts(warehouse, { ...scope, from: windows[0]!.from, to: NOW, windows, settled });
    expect(await adoptionOf()).toEqual(expect.arrayContaining(await adoptionOf(0)));
    expect((await adoptionOf()).length).toBe((await adoptionOf(0)).length);

    // A run killed after adding a chunk's rows but before marking it done: the next run redoes that
    // chunk under the same deduplication token, so its sessions are not added twice.
    const before = await figuresBoth(24);
    const settled = await settledUntil(warehouse);
    await warehouse.client.command({
      query: `DELETE FROM session_rollup_chunks WHERE done = 1 AND to_time = fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
      query_params: { to: settled },
    });
    expect(await settledUntil(warehouse)).toBeLessThan(settled);
    const again = await settleSessions(warehouse, { now: NOW, lagMs: 2 * HOUR, idleMs: IDLE });
    expect(again.chunks).toHaveLength(1);
    expect(again.chunks[0]?.to).toBe(settled);
    expect(await figuresBoth(24)).toEqual(before);
  });
});
