import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertNotice } from '#core/notify/events.ts';
import { renderSlack } from '#core/notify/slack.ts';
import type { RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';

// Rules on crash-free sessions, crash-free users and adoption, read from session_states as the
// gateway writes them (request rows with a session, and session end events), through the API.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let writer: TelemetryWriter;
const admin = bearer(BOOTSTRAP_TOKEN);
const SERVER = 'sessions-svc';

const call = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
  const res = await api.app.inject({
    method,
    url: `/api/v1${url}`,
    headers: admin,
    payload: payload as object,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely by the assertions
  return { status: res.statusCode, body: res.json() as Record<string, any> };
};

interface Sessions {
  version: string;
  count: number;
  /** The first `crashed` sessions get a 502 from the upstream. */
  crashed?: number;
  /** Sessions are spread over this many clients, round robin. */
  clients: number;
  /** Not ended, seen just now: active, so not counted in the rates. */
  active?: boolean;
}

/** The rows the gateway writes for sessions that each made one request a few minutes ago. */
function sessions(orgId: string, s: Sessions): { requests: RequestRow[]; events: SessionEventRow[] } {
  const requests: RequestRow[] = [];
  const events: SessionEventRow[] = [];
  const at = Date.now() - 3 * 60_000;
  for (let i = 0; i < s.count; i++) {
    const session = `${s.version}-s${i}`;
    const client = `${s.version}-c${i % s.clients}`;
    const crashed = i < (s.crashed ?? 0);
    const base = { org_id: orgId, server: SERVER, environment: 'production', version: s.version };
    requests.push({
      ...base,
      operation: 'tools/call search',
      time: new Date(at + i).toISOString(),
      duration_ms: 40,
      error: crashed ? 1 : 0,
      error_type: crashed ? '502' : '',
      http_status: crashed ? 502 : 200,
      mcp_method: 'tools/call',
      tool: 'search',
      trace_id: '',
      span_id: '',
      session_id: session,
      source: 'gateway',
      client_key: client,
      counted: 1,
    });
    if (!s.active) {
      events.push({
        ...base,
        session_id: session,
        time: new Date(at + 1000 + i).toISOString(),
        event: 'end',
        reason: crashed ? 'upstream-failure' : 'delete',
        client_key: client,
        source: 'gateway',
      });
    }
  }
  return { requests, events };
}

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
  // 1.0.0: 20 clean sessions; 1.1.0: 2 of 10 crashed (2 of its 5 users); 1.2.0: 3 still active.
  for (const s of [
    { version: '1.0.0', count: 20, clients: 10 },
    { version: '1.1.0', count: 10, crashed: 2, clients: 5 },
    { version: '1.2.0', count: 3, clients: 3, active: true },
  ]) {
    const rows = sessions(api.org.id, s);
    await writer.writeRequests(rows.requests);
    await writer.writeSessionEvents(rows.events);
  }
  await writer.flush();
});

afterAll(async () => {
  await writer?.close();
  await api?.app.close();
  await stores?.close();
});

let n = 0;
const rule = async (input: Record<string, unknown>) => {
  const created = await call('POST', '/alert-rules', {
    name: `session rule ${++n}`,
    server: SERVER,
    environment: 'production',
    kind: 'threshold',
    comparator: '<',
    window: '10m',
    ...input,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body.id as string;
};
const evaluate = async (id: string) => {
  const res = await call('POST', `/alert-rules/${id}/evaluate`);
  expect(res.body.error).toBeNull();
  return res.body as {
    transitions: { to: string; labels: Record<string, string>; value: number | null }[];
    alerts: { state: string; version: string | null; value: number | null; threshold: number | null }[];
  };
};

/** The notice the rule's firing alert waits to be sent with (its group's), and its Slack text. */
async function notice(ruleId: string) {
  const [row] = await stores.db.query<{ notice: AlertNotice }>(
    `SELECT notice FROM alert_group_alerts WHERE notice->>'ruleId' = $1`,
    [ruleId],
  );
  expect(row, `a notice of rule ${ruleId}`).toBeDefined();
  const slack = renderSlack({
    id: 'e1',
    type: 'alert.firing',
    server: SERVER,
    environment: 'production',
    version: row!.notice.version,
    labels: {},
    summary: '',
    data: { groupKey: 'g', status: 'firing', alerts: [row!.notice] },
    occurredAt: new Date().toISOString(),
  });
  return { sessions: row!.notice.sessions, text: slack.text, blocks: JSON.stringify(slack.blocks) };
}

describe('alert rules on release health', () => {
  it('fires on crash-free sessions and users below a threshold, for the version whose sessions crash', async () => {
    const sessionsRule = await rule({ metric: 'crash_free_sessions', threshold: 0.99 });
    const fired = await evaluate(sessionsRule);
    // 1.0.0 is crash-free (1 is not below 0.99); 1.2.0 has no finished session: no value, no alert.
    expect(fired.transitions).toMatchObject([{ to: 'firing', labels: { version: '1.1.0' } }]);
    expect(fired.alerts).toMatchObject([{ state: 'firing', version: '1.1.0', threshold: 0.99 }]);
    expect(fired.alerts[0]?.value).toBeCloseTo(0.8, 6);
    // The notification carries the alerted version's crash-free sessions over the rule's window.
    const firing = await notice(sessionsRule);
    expect(firing.sessions).toMatchObject({
      environment: 'production',
      version: { version: '1.1.0', sessions: 10, crashed: 2, crashFreeSessions: 0.8, crashFreeUsers: 0.6 },
      baseline: null,
    });
    const window = firing.sessions!.window;
    expect(Date.parse(window.to) - Date.parse(window.from)).toBe(10 * 60_000);
    expect(firing.text).toContain('Crash-free sessions: 1.1.0 80.0 % in production');
    expect(firing.blocks).toContain('Crash-free sessions: 1.1.0 80.0 % in production');

    const usersRule = await rule({ metric: 'crash_free_users', threshold: 0.9 });
    const users = await evaluate(usersRule);
    expect(users.alerts).toMatchObject([{ state: 'firing', version: '1.1.0' }]);
    expect(users.alerts[0]?.value).toBeCloseTo(0.6, 6);

    // Below 0.5 neither version is: nothing fires.
    expect(
      (await evaluate(await rule({ metric: 'crash_free_sessions', threshold: 0.5 }))).transitions,
    ).toEqual([]);
  });

  it('has no data, never 0 or 1, for a version without a finished session', async () => {
    const id = await rule({ metric: 'crash_free_sessions', threshold: 0.99, version: '1.2.0' });
    const result = await evaluate(id);
    expect(result.alerts).toMatchObject([{ state: 'nodata', value: null }]);
    const users = await evaluate(await rule({ metric: 'crash_free_users', threshold: 2, version: '1.2.0' }));
    expect(users.alerts).toMatchObject([{ state: 'nodata', value: null }]);
  });

  it('fires on adoption: the version’s share of the environment’s sessions in the window', async () => {
    const id = await rule({ metric: 'adoption', threshold: 0.1 });
    const result = await evaluate(id);
    // 3 of 33 sessions; 1.0.0 holds 20 and 1.1.0 10.
    expect(result.alerts).toMatchObject([{ state: 'firing', version: '1.2.0' }]);
    expect(result.alerts[0]?.value).toBeCloseTo(3 / 33, 6);
    const above = await evaluate(await rule({ metric: 'adoption', comparator: '>', threshold: 0.5 }));
    expect(above.alerts).toMatchObject([{ state: 'firing', version: '1.0.0' }]);
    expect(above.alerts[0]?.value).toBeCloseTo(20 / 33, 6);
  });

  it('compares a candidate’s crash-free sessions with its baseline’s in relative rules', async () => {
    const worse = await rule({
      kind: 'relative',
      metric: 'crash_free_sessions',
      version: '1.1.0',
      baseline: '1.0.0',
      offset: -0.05,
    });
    const fired = await evaluate(worse);
    expect(fired.alerts).toMatchObject([{ state: 'firing', version: '1.1.0', baselineVersion: '1.0.0' }]);
    expect(fired.alerts[0]?.threshold).toBeCloseTo(0.95, 6);
    // Against the baseline the rule judges with.
    expect((await notice(worse)).text).toContain('Crash-free sessions: 1.1.0 80.0 % vs 1.0.0 100.0 %');

    const lenient = await rule({
      kind: 'relative',
      metric: 'crash_free_users',
      version: '1.1.0',
      baseline: '1.0.0',
      factor: 0.5,
    });
    expect((await evaluate(lenient)).transitions).toEqual([]);
    // The baseline 1.2.0 has no finished session: nothing to compare with.
    const noBaseline = await rule({
      kind: 'relative',
      metric: 'crash_free_sessions',
      version: '1.1.0',
      baseline: '1.2.0',
      offset: 0,
    });
    expect((await evaluate(noBaseline)).alerts).toMatchObject([{ state: 'nodata', version: '1.1.0' }]);
  });

  it('accepts the session metrics and refuses misspelt ones, and session metrics per operation', async () => {
    for (const metric of ['crash_free_sessions', 'crash_free_users', 'adoption']) {
      const created = await call('POST', '/alert-rules', {
        name: `accepted ${metric}`,
        server: SERVER,
        kind: 'threshold',
        metric,
        threshold: 0.5,
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body.metric).toBe(metric);
    }
    const refused = [
      [{ metric: 'crash_free_session' }, /metric/],
      [{ metric: 'crashFreeSessions' }, /metric/],
      [{ metric: 'adoption', operation: 'tools/call search' }, /not per operation/],
    ] as const;
    for (const [extra, detail] of refused) {
      const res = await call('POST', '/alert-rules', {
        name: 'refused',
        server: SERVER,
        kind: 'threshold',
        threshold: 0.5,
        ...extra,
      });
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(res.body.detail).toMatch(detail);
    }
  });
});
