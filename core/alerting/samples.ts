import semver from 'semver';
import type { Queryable } from '../db/client.ts';
import type { Warehouse } from '../warehouse/client.ts';
import type { SessionSeries } from '../release-health/series.ts';
import { versionMatches, type Metric, type Rule } from './model.ts';
import type { ResourceStats, SeriesStats } from './queries.ts';
import { batchReader, scopeOf, type Deployed, type SeriesReader } from './reader.ts';
import { compare } from './state.ts';

/** Which series an instance watches; with the rule's id, what its fingerprint is made of. */
export interface SeriesKey {
  environment: string | null;
  version: string | null;
  /** The operation; for health rules, the check's name. */
  operation: string | null;
}

/** One instance's reading at one evaluation. */
export interface Sample {
  key: SeriesKey;
  /** null: the series exists but has no value (e.g. no baseline to compare with) → no data. */
  value: number | null;
  threshold: number | null;
  baselineVersion: string | null;
  holds: boolean;
  /** The series exists but cannot be judged (no value, or no baseline to compare with). */
  noData?: boolean;
}

type Row = (SeriesStats | ResourceStats | SessionSeries) & { operation?: string | null; requests?: number };

/** What a session metric's minRequests counts: its denominator (finished sessions, decided users, sessions). */
function sessionCount(row: SessionSeries, metric: Metric): number {
  if (metric === 'crash_free_sessions') return row.finished;
  if (metric === 'crash_free_users') return row.decidedUsers;
  return row.sessions;
}

function metricValue(row: Row, metric: Metric): number | null {
  const r = row as Partial<SeriesStats & ResourceStats & SessionSeries>;
  switch (metric) {
    case 'errorRate':
      return r.errorRate ?? null;
    case 'latencyP50':
      return r.p50 ?? null;
    case 'latencyP95':
      return r.p95 ?? null;
    case 'latencyP99':
      return r.p99 ?? null;
    case 'throughput':
      return r.throughput ?? null;
    case 'cpu':
      return r.cpu ?? null;
    case 'memory':
      return r.memory ?? null;
    case 'crash_free_sessions':
      return r.crashFreeSessions ?? null;
    case 'crash_free_users':
      return r.crashFreeUsers ?? null;
    case 'adoption':
      return r.adoption ?? null;
  }
}

/**
 * Before any deployment in an environment: the newest version the registry calls stable that
 * served traffic there in the window (the default baseline `compare` chooses).
 */
function stableOf(versions: Iterable<string>, statuses: Map<string, string>): string | undefined {
  const stable = [...new Set(versions)].filter((v) => semver.valid(v) && statuses.get(v) === 'stable');
  return stable.sort((a, b) => semver.rcompare(a, b))[0];
}

/** A rule's samples, and whether an empty list is by design rather than missing data. */
export interface Samples {
  samples: Sample[];
  /**
   * The rule watches `stable` or `canary` and the deployments say no such version runs where there
   * is data (no rollout in progress, say): nothing to watch, so its alerts end instead of going to no data.
   */
  idle: boolean;
}

/**
 * Reads what the rule watches and returns one sample per series: environment × version
 * (× operation). An empty list, unless idle, means the rule has no data at all. Throws when a store fails.
 */
export async function evaluateSamples(
  deps: { db: Queryable; warehouse: Warehouse },
  rule: Rule,
  now: number,
  reader: SeriesReader = batchReader(deps, [rule], now),
): Promise<Samples> {
  const c = rule.condition;
  if (rule.kind === 'health') return { samples: await healthSamples(reader, rule, now), idle: false };
  const { family, scope } = scopeOf(rule, now);
  const resources = family === 'resources';
  const rows: Row[] = resources
    ? await reader.resources(scope)
    : family === 'sessions'
      ? (await reader.sessions(scope)).map((row) => ({
          ...row,
          operation: null,
          requests: sessionCount(row, c.metric as Metric),
        }))
      : await reader.requests(scope);
  // Series below minRequests count as no data: a p95 of two requests pages nobody. For session
  // metrics the count is the metric's denominator, so a window without a finished session has no value.
  const enough = (row: Row) => resources || (row.requests ?? 0) >= c.minRequests;

  if (rule.kind === 'absence') {
    const matching = rows.filter((r) => versionMatches(rule.version, r.version));
    const requests = matching.reduce((sum, r) => sum + (r.requests ?? 0), 0);
    const key = {
      environment: rule.environment,
      version: rule.version === '*' ? null : rule.version,
      operation: c.operation === '*' ? null : c.operation,
    };
    const sample = { key, value: requests, threshold: c.minRequests, baselineVersion: null };
    return { samples: [{ ...sample, holds: requests < c.minRequests }], idle: false };
  }

  const metric = c.metric as Metric;
  const byDeployment = rule.kind === 'relative' || rule.version === 'stable' || rule.version === 'canary';
  const deployed = byDeployment
    ? await reader.deployed(rule.orgId, rule.server)
    : new Map<string, Deployed>();
  let statuses: Map<string, string> | undefined;
  const present = rows.filter(enough);
  const byEnv = new Map<string, Row[]>();
  for (const row of present) byEnv.set(row.environment, [...(byEnv.get(row.environment) ?? []), row]);

  const samples: Sample[] = [];
  let idle = false;
  for (const [environment, envRows] of byEnv) {
    const running = deployed.get(environment);
    let stable: string | undefined;
    let isCanary: (version: string) => boolean;
    if (running) {
      stable = running.stable ?? undefined;
      isCanary = (version) => version === running.canary;
      if ((rule.version === 'stable' && !running.stable) || (rule.version === 'canary' && !running.canary))
        idle = true;
    } else {
      // Never deployed here: versions are known only from traffic and the registry.
      if (byDeployment) statuses ??= await reader.statuses(rule.orgId, rule.server);
      stable = byDeployment
        ? stableOf(
            envRows.map((r) => r.version),
            statuses ?? new Map(),
          )
        : undefined;
      isCanary = (version) =>
        stable !== undefined && semver.valid(version) !== null && semver.gt(version, stable);
    }
    const selected = (version: string) => {
      if (rule.version === 'stable') return version === stable;
      if (rule.version === 'canary') return isCanary(version);
      return versionMatches(rule.version, version);
    };
    const baselineVersion = rule.kind === 'relative' ? (c.baseline ?? stable ?? null) : null;
    for (const row of envRows) {
      if (!selected(row.version)) continue;
      if (rule.kind === 'relative' && row.version === baselineVersion) continue;
      const key: SeriesKey = { environment, version: row.version, operation: row.operation ?? null };
      const value = metricValue(row, metric);
      let threshold: number | null = c.threshold;
      if (rule.kind === 'relative') {
        const base = envRows.find(
          (b) => b.version === baselineVersion && (b.operation ?? null) === (row.operation ?? null),
        );
        const baseValue = base ? metricValue(base, metric) : null;
        threshold = baseValue === null ? null : baseValue * (c.factor ?? 1) + (c.offset ?? 0);
      }
      if (value === null || threshold === null) {
        samples.push({ key, value, threshold, baselineVersion, holds: false, noData: true });
        continue;
      }
      samples.push({
        key,
        value,
        threshold,
        baselineVersion,
        holds: compare(value, c.comparator, threshold),
      });
    }
  }
  return { samples, idle: idle && samples.length === 0 };
}

/**
 * One sample per health check (× environment) with runs in the window: it holds when the newest
 * run failed; the value is the number of failed runs in the window.
 */
async function healthSamples(reader: SeriesReader, rule: Rule, now: number): Promise<Sample[]> {
  const found = await reader.health({
    orgId: rule.orgId,
    server: rule.server,
    environment: rule.environment ?? undefined,
    from: now - rule.windowMs,
    to: now,
  });
  const check = rule.condition.check;
  return found
    .filter((f) => check === null || f.checkName === check || f.checkId === check)
    .filter((f) => rule.version === '*' || versionMatches(rule.version, f.last.version))
    .map((f) => ({
      key: { environment: f.environment || null, version: null, operation: f.checkName },
      value: f.failures,
      threshold: null,
      baselineVersion: null,
      holds: !f.last.ok,
    }));
}
