import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#core/logger.ts';
import { openWarehouse, type Warehouse } from '#core/warehouse/client.ts';
import { migrateWarehouse } from '#core/warehouse/migrate.ts';
import type { MetricPointRow, RequestRow } from '#core/warehouse/rows.ts';
import {
  DEFAULT_RETENTION,
  applyRetention,
  compareVersions,
  errorTypes,
  newErrorTypes,
  operationStats,
  resolution,
  series,
  versionStats,
  versionsWithTraffic,
  type Latency,
} from '#core/warehouse/telemetry-queries.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// chDB binds one data directory per process: one warehouse for this file, one org for its data.
let dir: string;
let warehouse: Warehouse;
const ORG = randomUUID();
const SERVER = 'weather';
const A = '1.0.0';
const B = '1.1.0';
const FORECAST = 'tools/call forecast';
const LIST = 'tools/list';
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Ten minutes of traffic, starting on a whole minute two hours ago. */
const START = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR + 10 * MINUTE;
const END = START + 10 * MINUTE;

/**
 * 1,000 production requests, one every 600 ms: 3 in 5 for version A (durations 1..600 ms), 2 in 5
 * for B (1..400 ms), alternating operations in runs of five. Every 20th request of a version
 * fails: 30 `timeout`s in A; in B 10 `timeout`s and 10 `tool_error`s, an error type A never had.
 * Seven more requests of A ran in staging.
 */
function traffic(): RequestRow[] {
  const rows: RequestRow[] = [];
  const seen = { [A]: 0, [B]: 0 };
  for (let i = 0; i < 1000; i++) {
    const version = i % 5 < 3 ? A : B;
    const k = seen[version]++;
    const error = k % 20 === 19;
    rows.push(
      request(i, {
        version,
        operation: Math.floor(i / 5) % 2 === 0 ? FORECAST : LIST,
        time: new Date(START + i * 600).toISOString(),
        duration_ms: k + 1,
        error: error ? 1 : 0,
        error_type: !error ? '' : version === A || k % 40 === 19 ? 'timeout' : 'tool_error',
      }),
    );
  }
  for (let i = 0; i < 7; i++) {
    rows.push(
      request(1000 + i, {
        version: A,
        environment: 'staging',
        operation: FORECAST,
        time: new Date(START + i * 1000).toISOString(),
        duration_ms: 5000,
      }),
    );
  }
  return rows;
}

function request(i: number, fields: Partial<RequestRow>): RequestRow {
  return {
    org_id: ORG,
    server: SERVER,
    environment: 'production',
    version: A,
    operation: FORECAST,
    time: new Date(START).toISOString(),
    duration_ms: 1,
    error: 0,
    error_type: '',
    http_status: 200,
    mcp_method: 'tools/call',
    tool: 'forecast',
    trace_id: randomUUID().replaceAll('-', ''),
    span_id: `span-${i}`,
    session_id: '',
    source: 'otlp',
    client_key: '',
    counted: 1,
    ...fields,
  };
}

/** Process metrics of version A in the first minute: CPU 0.2 and 0.4, 1.5 + 2.5 CPU seconds, 100 and 300 MB. */
function resources(): MetricPointRow[] {
  const point = (metric: string, kind: string, value: number, at: number): MetricPointRow => ({
    org_id: ORG,
    server: SERVER,
    environment: 'production',
    version: A,
    operation: '',
    metric,
    unit: metric === 'process.memory.usage' ? 'By' : metric === 'process.cpu.time' ? 's' : '1',
    kind,
    start_time: new Date(at - 10_000).toISOString(),
    time: new Date(at).toISOString(),
    count: 0,
    sum: 0,
    value,
    bounds: [],
    bucket_counts: [],
  });
  return [
    point('process.cpu.utilization', 'gauge', 0.2, START + 10_000),
    point('process.cpu.utilization', 'gauge', 0.4, START + 40_000),
    point('process.cpu.time', 'sum', 1.5, START + 10_000),
    point('process.cpu.time', 'sum', 2.5, START + 40_000),
    point('process.memory.usage', 'gauge', 100e6, START + 10_000),
    point('process.memory.usage', 'gauge', 300e6, START + 40_000),
    point('http.server.request.duration', 'histogram', 0, START + 40_000),
  ];
}

const ROWS = traffic();

/** The durations of the production rows that match. */
function durations(match: (r: RequestRow) => boolean): number[] {
  return ROWS.filter((r) => r.environment === 'production' && match(r))
    .map((r) => r.duration_ms)
    .sort((x, y) => x - y);
}

/**
 * The estimate is within the t-digest's error: between the exact values 1 % of rank below and
 * above the quantile (the documented bound of telemetry-queries.ts).
 */
function expectQuantiles(latency: Latency, values: number[]): void {
  const at = (q: number) =>
    values[Math.min(values.length - 1, Math.max(0, Math.round(q * (values.length - 1))))];
  for (const [key, q] of [
    ['p50', 0.5],
    ['p95', 0.95],
    ['p99', 0.99],
  ] as const) {
    const estimate = latency[key];
    expect(estimate, key).not.toBeNull();
    expect(estimate as number, key).toBeGreaterThanOrEqual((at(q - 0.01) as number) - 1);
    expect(estimate as number, key).toBeLessThanOrEqual((at(q + 0.01) as number) + 1);
  }
}

beforeAll(async () => {
  dir = tempDir('pylee-telemetry-queries');
  warehouse = await openWarehouse({ dataDir: dir });
  await migrateWarehouse(warehouse);
  const writer = new TelemetryWriter(warehouse, {
    dataDir: dir,
    logger: createLogger('silent'),
    batchSize: 300,
  });
  await writer.writeRequests(ROWS);
  await writer.writeMetricPoints(resources());
  await writer.close();
});

afterAll(async () => {
  await warehouse?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const scope = { orgId: ORG, server: SERVER, environment: 'production', from: START, to: END };
/** A day around the traffic: read from minute rollups. */
const DAY_WINDOW = { from: START - 12 * HOUR, to: START + 12 * HOUR };
/** Forty days: read from hour rollups. */
const LONG_WINDOW = { from: START - 39 * DAY, to: START + DAY };

describe('schema', () => {
  async function tables() {
    const result = await warehouse.client.query({
      query: `SELECT name, engine, sorting_key, partition_key, engine_full FROM system.tables
              WHERE database = currentDatabase() ORDER BY name`,
      format: 'JSONEachRow',
    });
    return result.json<{
      name: string;
      engine: string;
      sorting_key: string;
      partition_key: string;
      engine_full: string;
    }>();
  }
  const key = (sortingKey: string | undefined) => sortingKey?.split(',').map((k) => k.trim());

  it('sorts raw rows by org, server, environment, version, operation (metric) and time', async () => {
    const all = await tables();
    const requests = all.find((t) => t.name === 'requests');
    const points = all.find((t) => t.name === 'metric_points');

    expect(key(requests?.sorting_key)).toEqual([
      'org_id',
      'server',
      'environment',
      'version',
      'operation',
      'time',
    ]);
    expect(key(points?.sorting_key)).toEqual([
      'org_id',
      'server',
      'environment',
      'version',
      'operation',
      'metric',
      'time',
    ]);
    expect(requests?.partition_key).toBe('toDate(time)');
    expect(requests?.engine_full).toMatch(/TTL toDateTime\(time\) \+ toIntervalDay\(7\)/);
    expect(requests?.engine_full).toMatch(/non_replicated_deduplication_window = 10000/);
  });

  it('keeps rollups in AggregatingMergeTree tables fed by materialized views, with deduplication windows', async () => {
    const all = await tables();
    const rollups = [
      'requests_1m',
      'requests_1h',
      'request_errors_1m',
      'request_errors_1h',
      'resources_1m',
      'resources_1h',
    ];

    for (const name of rollups) {
      const table = all.find((t) => t.name === name);
      expect(table?.engine, name).toBe('AggregatingMergeTree');
      expect(table?.engine_full, name).toMatch(/non_replicated_deduplication_window = 10000/);
      expect(table?.engine_full, name).toMatch(
        name.endsWith('1m') ? /toIntervalDay\(90\)/ : /toIntervalDay\(400\)/,
      );
      expect(all.find((t) => t.name === `${name}_mv`)?.engine, name).toBe('MaterializedView');
    }
  });
});

describe('resolution', () => {
  const now = Date.UTC(2025, 0, 31);

  it('reads raw rows up to six hours, minute rollups up to 30 days, else hour rollups', () => {
    expect(resolution({ from: now - 6 * HOUR, to: now }, { now })).toBe('raw');
    expect(resolution({ from: now - 6 * HOUR - 1, to: now }, { now })).toBe('minute');
    expect(resolution({ from: now - 30 * DAY, to: now }, { now })).toBe('minute');
    expect(resolution({ from: new Date(now - 31 * DAY), to: new Date(now) }, { now })).toBe('hour');
  });

  it('uses a coarser resolution when the window starts before the finer one is kept', () => {
    expect(resolution({ from: now - 8 * DAY, to: now - 8 * DAY + HOUR }, { now })).toBe('minute');
    expect(resolution({ from: now - 100 * DAY, to: now - 99 * DAY }, { now })).toBe('hour');
    const retention = { ...DEFAULT_RETENTION, rawDays: 10 };
    expect(resolution({ from: now - 8 * DAY, to: now - 8 * DAY + HOUR }, { now, retention })).toBe('raw');
  });
});

describe('versionStats', () => {
  it('counts requests and errors and estimates latency of one version from raw rows', async () => {
    const stats = await versionStats(warehouse, { ...scope, version: A });

    expect(stats).toMatchObject({ version: A, requests: 600, errors: 30, errorRate: 0.05, throughput: 1 });
    expectQuantiles(
      stats.latency,
      durations((r) => r.version === A),
    );
  });

  it('gives the same counts from minute and hour rollups as from raw rows', async () => {
    for (const window of [DAY_WINDOW, LONG_WINDOW]) {
      expect(resolution(window)).toBe(window === DAY_WINDOW ? 'minute' : 'hour');
      const stats = await versionStats(warehouse, { ...scope, ...window, version: B });

      expect(stats).toMatchObject({ version: B, requests: 400, errors: 20, errorRate: 0.05 });
      expect(stats.throughput).toBeCloseTo(400 / ((window.to - window.from) / 1000), 12);
      expectQuantiles(
        stats.latency,
        durations((r) => r.version === B),
      );
    }
  });

  it('on minute rollups counts from the minute holding `from` to the last one before `to`, whole hours or not', async () => {
    // The traffic runs from START (ten minutes into an hour) for ten minutes, 100 requests a minute
    // (60 of A). A window cutting into it at either end reads those minutes from the minute table;
    // the whole hours between come from the hour table.
    const startsInside = { from: START + 3 * MINUTE + 30_000, to: START + 8 * HOUR };
    const endsInside = { from: START - 7 * HOUR, to: START + 5 * MINUTE + 10_000 };
    const spans = { from: START - 7 * HOUR, to: START + 8 * HOUR };
    for (const [window, minutes] of [
      [startsInside, 7],
      [endsInside, 6],
      [spans, 10],
    ] as const) {
      expect(resolution(window)).toBe('minute');
      const comparison = await compareVersions(warehouse, { ...scope, ...window, baseline: A, candidate: B });
      expect([comparison.baseline.requests, comparison.candidate.requests]).toEqual([
        60 * minutes,
        40 * minutes,
      ]);
      const steps = await series(warehouse, { ...scope, ...window, version: A, stepSeconds: 2 * 3600 });
      expect(steps.stepSeconds).toBe(7200);
      expect(steps.points.reduce((sum, p) => sum + p.requests, 0)).toBe(60 * minutes);
    }
  });

  it('on raw rows counts exactly to the millisecond, the whole minutes read from the rollups', async () => {
    // Edges inside minutes: seconds from raw rows, the minutes between from the minute rollups.
    const window = { from: START + 30_500, to: START + 5 * MINUTE + 10_200 };
    const inWindow = (r: RequestRow, version: string) =>
      r.environment === 'production' &&
      r.version === version &&
      Date.parse(r.time) >= window.from &&
      Date.parse(r.time) < window.to;
    const count = (version: string, match: (r: RequestRow) => boolean = () => true) =>
      ROWS.filter((r) => inWindow(r, version) && match(r)).length;
    expect(resolution(window)).toBe('raw');
    const comparison = await compareVersions(warehouse, { ...scope, ...window, baseline: A, candidate: B });
    expect(comparison.baseline).toMatchObject({ requests: count(A), errors: count(A, (r) => r.error === 1) });
    expect(comparison.candidate).toMatchObject({
      requests: count(B),
      errors: count(B, (r) => r.error === 1),
    });
    expectQuantiles(
      comparison.baseline.latency,
      durations((r) => inWindow(r, A)),
    );
    expect(comparison.operations.map((o) => [o.operation, o.candidate.requests]).sort()).toEqual(
      [FORECAST, LIST].map((op) => [op, count(B, (r) => r.operation === op)]).sort(),
    );
    expect(await errorTypes(warehouse, { ...scope, ...window, versions: [B] })).toEqual(
      ['timeout', 'tool_error']
        .map((t) => ({ version: B, errorType: t, errors: count(B, (r) => r.error_type === t) }))
        .sort((x, y) => y.errors - x.errors || x.errorType.localeCompare(y.errorType)),
    );
    const steps = await series(warehouse, { ...scope, ...window, version: A, stepSeconds: 60 });
    expect(steps.points.map((p) => p.requests)).toEqual(
      steps.points.map((p) =>
        count(
          A,
          (r) => Date.parse(r.time) >= Date.parse(p.time) && Date.parse(r.time) < Date.parse(p.time) + MINUTE,
        ),
      ),
    );
  });

  it('counts every environment when none is given', async () => {
    const { environment: _, ...everywhere } = scope;

    expect((await versionStats(warehouse, { ...everywhere, version: A })).requests).toBe(607);
    expect((await versionStats(warehouse, { ...scope, environment: 'staging', version: A })).requests).toBe(
      7,
    );
  });

  it('answers zero requests, error rate 0 and no latency for a version without traffic', async () => {
    expect(await versionStats(warehouse, { ...scope, version: '9.9.9' })).toEqual({
      version: '9.9.9',
      requests: 0,
      errors: 0,
      errorRate: 0,
      throughput: 0,
      latency: { p50: null, p95: null, p99: null },
    });
  });

  it('binds hostile values as data', async () => {
    const hostile = "x' OR 1=1 --";

    expect((await versionStats(warehouse, { ...scope, orgId: hostile, version: A })).requests).toBe(0);
    expect((await versionStats(warehouse, { ...scope, version: hostile })).requests).toBe(0);
  });

  it('rejects a window that ends before it starts', async () => {
    await expect(versionStats(warehouse, { ...scope, from: END, to: START, version: A })).rejects.toThrow(
      /must end after it starts/,
    );
  });
});

describe('operationStats', () => {
  it('breaks a version down by operation, busiest first', async () => {
    for (const window of [{}, DAY_WINDOW]) {
      const ops = await operationStats(warehouse, { ...scope, ...window, version: A });

      expect(ops.map((o) => [o.operation, o.requests])).toEqual([
        [FORECAST, 300],
        [LIST, 300],
      ]);
      const errors = (op: string) =>
        ROWS.filter((r) => r.environment === 'production' && r.version === A && r.operation === op && r.error)
          .length;
      for (const op of ops) {
        expect(op.errors).toBe(errors(op.operation));
        expect(op.errorRate).toBeCloseTo(errors(op.operation) / 300, 12);
        expectQuantiles(
          op.latency,
          durations((r) => r.version === A && r.operation === op.operation),
        );
      }
    }
  });
});

describe('compareVersions', () => {
  it('puts baseline and candidate side by side, per operation, with the error types new in the candidate', async () => {
    const comparison = await compareVersions(warehouse, { ...scope, baseline: A, candidate: B });

    expect(comparison.baseline).toMatchObject({ version: A, requests: 600, errorRate: 0.05, throughput: 1 });
    expect(comparison.candidate).toMatchObject({ version: B, requests: 400, errorRate: 0.05 });
    expect(comparison.candidate.throughput).toBeCloseTo(400 / 600, 12);
    expect(
      comparison.operations.map((o) => [o.operation, o.baseline.requests, o.candidate.requests]),
    ).toEqual([
      [FORECAST, 300, 200],
      [LIST, 300, 200],
    ]);
    expect(comparison.newErrorTypes).toEqual([{ version: B, errorType: 'tool_error', errors: 10 }]);
  });

  it('lists an operation only one version served with zero requests on the other side', async () => {
    const comparison = await compareVersions(warehouse, { ...scope, baseline: A, candidate: '9.9.9' });

    expect(
      comparison.operations.map((o) => [o.operation, o.baseline.requests, o.candidate.requests]),
    ).toEqual([
      [FORECAST, 300, 0],
      [LIST, 300, 0],
    ]);
    expect(comparison.operations[0]?.candidate.latency).toEqual({ p50: null, p95: null, p99: null });
  });
});

describe('errorTypes', () => {
  it('lists the most frequent error types per version, from raw rows and rollups alike', async () => {
    for (const window of [{}, DAY_WINDOW, LONG_WINDOW]) {
      expect(await errorTypes(warehouse, { ...scope, ...window })).toEqual([
        { version: A, errorType: 'timeout', errors: 30 },
        { version: B, errorType: 'timeout', errors: 10 },
        { version: B, errorType: 'tool_error', errors: 10 },
      ]);
    }
  });

  it('filters by versions and operation and keeps the top ones per version', async () => {
    expect(await errorTypes(warehouse, { ...scope, versions: [B], limit: 1 })).toEqual([
      { version: B, errorType: 'timeout', errors: 10 },
    ]);
    const forecastErrors = ROWS.filter((r) => r.version === A && r.operation === FORECAST && r.error).length;
    expect(await errorTypes(warehouse, { ...scope, versions: [A], operation: FORECAST })).toEqual([
      { version: A, errorType: 'timeout', errors: forecastErrors },
    ]);
  });

  it('finds error types the candidate has and the baseline never had', async () => {
    expect(await newErrorTypes(warehouse, { ...scope, ...DAY_WINDOW, baseline: A, candidate: B })).toEqual([
      { version: B, errorType: 'tool_error', errors: 10 },
    ]);
    expect(await newErrorTypes(warehouse, { ...scope, baseline: B, candidate: A })).toEqual([]);
  });
});

describe('versionsWithTraffic', () => {
  it('lists the versions an environment served, most recently seen first', async () => {
    expect(await versionsWithTraffic(warehouse, scope)).toEqual([
      {
        version: B,
        requests: 400,
        firstSeen: new Date(START + 3 * 600).toISOString(),
        lastSeen: new Date(START + 999 * 600).toISOString(),
      },
      {
        version: A,
        requests: 600,
        firstSeen: new Date(START).toISOString(),
        lastSeen: new Date(START + 997 * 600).toISOString(),
      },
    ]);
    // Minute rollups see both versions last in the same minute: the busier one comes first.
    const daily = await versionsWithTraffic(warehouse, { ...scope, ...DAY_WINDOW });
    expect(daily.map((v) => [v.version, v.requests, v.lastSeen])).toEqual([
      [A, 600, new Date(END - MINUTE).toISOString()],
      [B, 400, new Date(END - MINUTE).toISOString()],
    ]);
    expect(
      (await versionsWithTraffic(warehouse, { ...scope, environment: 'staging' })).map((v) => v.requests),
    ).toEqual([7]);
  });
});

describe('series', () => {
  it('gives throughput, error rate and latency per step from raw rows, every step present', async () => {
    const result = await series(warehouse, {
      ...scope,
      from: START - MINUTE,
      to: END + MINUTE,
      stepSeconds: 60,
    });

    expect(result.resolution).toBe('raw');
    expect(result.stepSeconds).toBe(60);
    expect(result.points).toHaveLength(12);
    // A step without requests has no error rate (null), not a 0 % one; its throughput is 0.
    expect(result.points[0]).toMatchObject({
      time: new Date(START - MINUTE).toISOString(),
      requests: 0,
      throughput: 0,
      errorRate: null,
      p50: null,
    });
    const busy = result.points.slice(1, 11);
    expect(busy.map((p) => p.requests)).toEqual(Array(10).fill(100));
    expect(busy.every((p) => Math.abs(p.throughput - 100 / 60) < 1e-9)).toBe(true);
    expect(busy.reduce((sum, p) => sum + (p.errorRate ?? NaN) * p.requests, 0)).toBeCloseTo(50, 9);
    expect(busy.every((p) => p.p50 !== null && p.p95 !== null && p.p99 !== null)).toBe(true);
    expect(result.points[11]).toMatchObject({ requests: 0, errorRate: null });
  });

  it('gives the same counts per minute from minute rollups, and per hour from hour rollups', async () => {
    const perMinute = await series(warehouse, { ...scope, ...DAY_WINDOW, version: A, stepSeconds: 60 });
    expect(perMinute.resolution).toBe('minute');
    expect(perMinute.points).toHaveLength(24 * 60);
    const minutes = perMinute.points.filter((p) => p.requests > 0);
    expect(minutes.map((p) => p.requests)).toEqual(Array(10).fill(60));
    expect(minutes[0]?.time).toBe(new Date(START).toISOString());

    const perHour = await series(warehouse, { ...scope, ...LONG_WINDOW, version: A, stepSeconds: 60 });
    expect(perHour.resolution).toBe('hour');
    expect(perHour.stepSeconds % 3600).toBe(0);
    expect(perHour.points.length).toBeLessThanOrEqual(1500);
    expect(perHour.points.reduce((sum, p) => sum + p.requests, 0)).toBe(600);
    expect(perHour.points.reduce((sum, p) => sum + (p.errorRate ?? 0) * p.requests, 0)).toBeCloseTo(30, 9);
    // Rollups too: every step without requests has a null error rate, every other a number.
    for (const p of [...perMinute.points, ...perHour.points])
      expect(p.errorRate === null).toBe(p.requests === 0);
  });

  it('filters by version and operation', async () => {
    const result = await series(warehouse, { ...scope, version: B, operation: LIST, stepSeconds: 600 });

    expect(result.points).toHaveLength(1);
    expect(result.points[0]?.requests).toBe(200);
  });

  it('adds CPU and memory from process metrics, raw and rolled up', async () => {
    for (const window of [{}, DAY_WINDOW]) {
      const result = await series(warehouse, { ...scope, ...window, version: A, stepSeconds: 60 });
      const first = result.points.find((p) => p.time === new Date(START).toISOString());
      const second = result.points.find((p) => p.time === new Date(START + MINUTE).toISOString());

      expect(first?.cpu).toBeCloseTo(0.3, 9);
      expect(first?.cpuSeconds).toBeCloseTo(4, 9);
      expect(first?.memory).toBeCloseTo(200e6, 0);
      expect(first?.memoryMax).toBe(300e6);
      expect(second).toMatchObject({ cpu: null, cpuSeconds: null, memory: null, memoryMax: null });
    }
  });

  it('reports no resources for a version that sent no process metrics', async () => {
    const result = await series(warehouse, { ...scope, version: B, stepSeconds: 600 });

    expect(result.points[0]).toMatchObject({ cpu: null, cpuSeconds: null, memory: null, memoryMax: null });
  });
});

describe('applyRetention', () => {
  async function ttls(): Promise<Record<string, string>> {
    const result = await warehouse.client.query({
      query: `SELECT name, extract(engine_full, 'toIntervalDay\\\\((\\\\d+)') AS days FROM system.tables
              WHERE database = currentDatabase() AND engine_full LIKE '%TTL%'
                AND name NOT IN ('access_log', 'health_results') ORDER BY name`,
      format: 'JSONEachRow',
    });
    return Object.fromEntries(
      (await result.json<{ name: string; days: string }>()).map((t) => [t.name, t.days]),
    );
  }

  it('changes the TTL of raw, minute and hour tables, and only when it differs', async () => {
    expect(await applyRetention(warehouse, DEFAULT_RETENTION)).toEqual([]);

    const altered = await applyRetention(warehouse, { rawDays: 3, minuteDays: 30, hourDays: 200 });

    expect(altered.sort()).toEqual([
      'metric_points',
      'request_errors_1h',
      'request_errors_1m',
      'requests',
      'requests_1h',
      'requests_1m',
      'resources_1h',
      'resources_1m',
      'session_events',
      'session_rollups',
      'session_rollups_1h',
      'session_states',
    ]);
    expect(await ttls()).toEqual({
      metric_points: '3',
      request_errors_1h: '200',
      request_errors_1m: '30',
      requests: '3',
      requests_1h: '200',
      requests_1m: '30',
      resources_1h: '200',
      resources_1m: '30',
      session_events: '3',
      // The settle job's own bookkeeping keeps fixed TTLs (migration 0007).
      session_carry: '2',
      session_rollup_chunks: '90',
      session_rollups: '30',
      session_rollups_1h: '200',
      session_states: '3',
    });
    expect(await applyRetention(warehouse, { rawDays: 3, minuteDays: 30, hourDays: 200 })).toEqual([]);
    expect((await applyRetention(warehouse, DEFAULT_RETENTION)).length).toBe(12);
    expect(await applyRetention(warehouse, DEFAULT_RETENTION)).toEqual([]);
    expect((await versionStats(warehouse, { ...scope, version: A })).requests).toBe(600);
  });

  it('rejects a retention that is not a whole number of days', async () => {
    await expect(applyRetention(warehouse, { ...DEFAULT_RETENTION, rawDays: 0 })).rejects.toThrow(/rawDays/);
    await expect(applyRetention(warehouse, { ...DEFAULT_RETENTION, hourDays: 1.5 })).rejects.toThrow(
      /hourDays/,
    );
  });
});
