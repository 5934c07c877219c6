import type { Warehouse } from '../warehouse/client.ts';
import type { CheckKind, CheckPhase } from './model.ts';

/** One health-check run, as stored in ClickHouse (`health_results`). */
export interface HealthResult {
  orgId: string;
  server: string;
  /** '' when the check is not tied to one environment. */
  environment: string;
  /** '' when the running version is not known. */
  version: string;
  checkId: string;
  checkName: string;
  kind: CheckKind;
  phase: CheckPhase;
  /** RFC 3339. */
  time: string;
  ok: boolean;
  latencyMs: number;
  /** HTTP status; 0 when there was none. */
  statusCode: number;
  error: string;
  protocolVersion: string;
  toolCount: number;
  toolsHash: string;
  /** The deployment a startup run verified; '' otherwise. */
  deploymentId: string;
  runId: string;
}

interface ResultRow {
  org_id: string;
  server: string;
  environment: string;
  version: string;
  check_id: string;
  check_name: string;
  kind: CheckKind;
  phase: CheckPhase;
  time_ms: number;
  ok: number;
  latency_ms: number;
  status_code: number;
  error: string;
  protocol_version: string;
  tool_count: number;
  tools_hash: string;
  deployment_id: string;
  run_id: string;
}

const FROM = "fromUnixTimestamp64Milli({from:Int64}, 'UTC')";
const TO = "fromUnixTimestamp64Milli({to:Int64}, 'UTC')";
const COLUMNS = `org_id, server, environment, version, check_id, check_name, kind, phase,
  toUnixTimestamp64Milli(time) AS time_ms, ok, latency_ms, status_code, error, protocol_version,
  tool_count, tools_hash, deployment_id, run_id`;

const toResult = (r: ResultRow): HealthResult => ({
  orgId: r.org_id,
  server: r.server,
  environment: r.environment,
  version: r.version,
  checkId: r.check_id,
  checkName: r.check_name,
  kind: r.kind,
  phase: r.phase,
  time: new Date(Number(r.time_ms)).toISOString(),
  ok: Number(r.ok) === 1,
  latencyMs: Number(r.latency_ms),
  statusCode: Number(r.status_code),
  error: r.error,
  protocolVersion: r.protocol_version,
  toolCount: Number(r.tool_count),
  toolsHash: r.tools_hash,
  deploymentId: r.deployment_id,
  runId: r.run_id,
});

export async function writeResults(warehouse: Warehouse, results: readonly HealthResult[]): Promise<void> {
  if (results.length === 0) return;
  await warehouse.client.insert({
    table: 'health_results',
    format: 'JSONEachRow',
    clickhouse_settings: { date_time_input_format: 'best_effort' },
    values: results.map((r) => ({
      org_id: r.orgId,
      server: r.server,
      environment: r.environment,
      version: r.version,
      check_id: r.checkId,
      check_name: r.checkName,
      kind: r.kind,
      phase: r.phase,
      time: r.time,
      ok: r.ok ? 1 : 0,
      latency_ms: r.latencyMs,
      status_code: r.statusCode,
      error: r.error,
      protocol_version: r.protocolVersion,
      tool_count: r.toolCount,
      tools_hash: r.toolsHash,
      deployment_id: r.deploymentId,
      run_id: r.runId,
    })),
  });
}

async function rows<T>(warehouse: Warehouse, query: string, params: Record<string, unknown>): Promise<T[]> {
  const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

/** Runs of one check in `[from, to)`, newest first. */
export async function listResults(
  warehouse: Warehouse,
  scope: { orgId: string; server: string; checkId: string; from: number; to: number; limit: number },
): Promise<HealthResult[]> {
  const found = await rows<ResultRow>(
    warehouse,
    `SELECT ${COLUMNS} FROM health_results
     WHERE org_id = {org:String} AND server = {server:String} AND check_id = {check:String}
       AND time >= ${FROM} AND time < ${TO}
     ORDER BY time DESC, run_id DESC LIMIT {limit:UInt32}`,
    {
      org: scope.orgId,
      server: scope.server,
      check: scope.checkId,
      from: scope.from,
      to: scope.to,
      limit: scope.limit,
    },
  );
  return found.map(toResult);
}

/** The newest run of each check, whenever it was. */
export async function lastResults(
  warehouse: Warehouse,
  scope: { orgId: string; server: string; checkIds: readonly string[] },
): Promise<Map<string, HealthResult>> {
  if (scope.checkIds.length === 0) return new Map();
  const found = await rows<ResultRow>(
    warehouse,
    `SELECT ${COLUMNS} FROM health_results
     WHERE org_id = {org:String} AND server = {server:String} AND check_id IN {checks:Array(String)}
     ORDER BY time DESC, run_id DESC LIMIT 1 BY check_id`,
    { org: scope.orgId, server: scope.server, checks: scope.checkIds },
  );
  return new Map(found.map((r) => [r.check_id, toResult(r)]));
}

/** Runs, failures, uptime and latency of each check in a window. */
export interface CheckWindowStats {
  checkId: string;
  total: number;
  failures: number;
  /** Passed runs / runs × 100; null without runs. */
  uptimePercent: number | null;
  /**
   * Over passed runs only (a failed run's latency is mostly its timeout), linear interpolation
   * between the closest ranks (`quantileExactInclusive`); null without passed runs.
   */
  latency: { p50: number | null; p95: number | null };
}

export async function windowStats(
  warehouse: Warehouse,
  scope: { orgId: string; server: string; checkIds: readonly string[]; from: number; to: number },
): Promise<Map<string, CheckWindowStats>> {
  if (scope.checkIds.length === 0) return new Map();
  const found = await rows<{
    check_id: string;
    total: number;
    failures: number;
    passed: number;
    p50: number | null;
    p95: number | null;
  }>(
    warehouse,
    `SELECT check_id, count() AS total, countIf(ok = 0) AS failures, countIf(ok = 1) AS passed,
       quantileExactInclusiveIf(0.5)(latency_ms, ok = 1) AS p50,
       quantileExactInclusiveIf(0.95)(latency_ms, ok = 1) AS p95
     FROM health_results
     WHERE org_id = {org:String} AND server = {server:String} AND check_id IN {checks:Array(String)}
       AND time >= ${FROM} AND time < ${TO}
     GROUP BY check_id`,
    { org: scope.orgId, server: scope.server, checks: scope.checkIds, from: scope.from, to: scope.to },
  );
  const stats = new Map<string, CheckWindowStats>();
  for (const r of found) {
    const total = Number(r.total);
    const passed = Number(r.passed);
    stats.set(r.check_id, {
      checkId: r.check_id,
      total,
      failures: Number(r.failures),
      uptimePercent: total === 0 ? null : round((passed / total) * 100, 4),
      latency: {
        p50: passed === 0 || r.p50 === null ? null : round(Number(r.p50), 3),
        p95: passed === 0 || r.p95 === null ? null : round(Number(r.p95), 3),
      },
    });
  }
  return stats;
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Failures of one check (or one check per environment) in a window, for alert rules. */
export interface CheckFailures {
  checkId: string;
  checkName: string;
  server: string;
  environment: string;
  phase: CheckPhase;
  total: number;
  failures: number;
  /** The newest run in the window. */
  last: { time: string; ok: boolean; error: string; version: string };
}

/**
 * Failed and total runs per check (and environment) of a server in `[from, to)` — what the
 * "failing health check" alert rule evaluates. Checks without runs in the window are absent: a
 * rule sees that as no data.
 */
export async function checkFailures(
  warehouse: Warehouse,
  scope: {
    orgId: string;
    server: string;
    environment?: string | undefined;
    checkId?: string | undefined;
    phase?: CheckPhase | undefined;
    from: number | Date;
    to: number | Date;
  },
): Promise<CheckFailures[]> {
  const found = await rows<{
    check_id: string;
    last_name: string;
    server: string;
    environment: string;
    last_phase: CheckPhase;
    total: number;
    failures: number;
    last_time: number;
    last_ok: number;
    last_error: string;
    last_version: string;
  }>(
    warehouse,
    `SELECT check_id, server, environment,
       argMax(check_name, (time, run_id)) AS last_name, argMax(phase, (time, run_id)) AS last_phase,
       count() AS total, countIf(ok = 0) AS failures,
       toUnixTimestamp64Milli(max(time)) AS last_time,
       argMax(ok, (time, run_id)) AS last_ok, argMax(error, (time, run_id)) AS last_error,
       argMax(version, (time, run_id)) AS last_version
     FROM health_results
     WHERE org_id = {org:String} AND server = {server:String}
       AND ({environment:Nullable(String)} IS NULL OR environment = {environment:Nullable(String)})
       AND ({check:Nullable(String)} IS NULL OR check_id = {check:Nullable(String)})
       AND ({phase:Nullable(String)} IS NULL OR phase = {phase:Nullable(String)})
       AND time >= ${FROM} AND time < ${TO}
     GROUP BY check_id, server, environment
     ORDER BY last_name, environment`,
    {
      org: scope.orgId,
      server: scope.server,
      environment: scope.environment ?? null,
      check: scope.checkId ?? null,
      phase: scope.phase ?? null,
      from: Number(scope.from),
      to: Number(scope.to),
    },
  );
  return found.map((r) => ({
    checkId: r.check_id,
    checkName: r.last_name,
    server: r.server,
    environment: r.environment,
    phase: r.last_phase,
    total: Number(r.total),
    failures: Number(r.failures),
    last: {
      time: new Date(Number(r.last_time)).toISOString(),
      ok: Number(r.last_ok) === 1,
      error: r.last_error,
      version: r.last_version,
    },
  }));
}
