import type { Principal } from './auth/principal.ts';
import type { Queryable } from './db/client.ts';
import { listEnvironmentRows } from './deploy/environments.ts';
import { ACTIVE_STATUSES } from './deploy/rollout.ts';
import { BadRequestError } from './errors.ts';
import { statusOf, type CheckStatus } from './health/status.ts';
import type { HealthCheck } from './health/model.ts';
import { findServer } from './registry/servers.ts';
import { SESSION_IDLE_LIMIT_MS } from './release-health/model.ts';
import { fleetSessions, type FleetSessionFigures } from './release-health/overview.ts';
import type { Warehouse } from './warehouse/client.ts';
import { fleetStats, type FleetGroup, type TimeWindow } from './warehouse/telemetry-queries.ts';

/**
 * The on-call overview: every server × environment a token can see, with what runs there, its health,
 * firing alerts, the request health of the current version against the previous one and both
 * versions' crash-free sessions, plus a rollback recommendation. The whole fleet costs a fixed
 * number of queries (eight small Postgres queries, one grouped ClickHouse query for every figure and
 * sparkline, one for every server's sessions, and one for health-check results when there are
 * checks), however many servers there are.
 *
 * The rollback rule ({@link ROLLBACK_RULE}): the version under suspicion is the active rollout's
 * (the canary), or, without a rollout, the stable version when an earlier version is there to return
 * to. A rollback is recommended when any of these holds for it in that environment:
 * - `critical-alert`: a critical alert, or an alert of a relative rule (one judging it against a
 *   baseline version), is firing on that version;
 * - `canary-analysis-failed`: the newest finished canary analysis of that version there failed
 *   (for a rollout, one made since the rollout started);
 * - `error-rate-regression`: with at least {@link ROLLBACK_RULE.minRequests} requests from each
 *   version in the window, its error rate is at least 5 percentage points above the previous
 *   version's AND at least twice it;
 * - `latency-regression`: with as many requests, its p95 is at least 1.5 × the previous version's
 *   AND at least 50 ms slower.
 * Both limits of a regression must be crossed, so noise on a tiny baseline (0.1 % → 0.3 %, 4 → 9 ms)
 * does not raise the flag.
 */
export const ROLLBACK_RULE = {
  minRequests: 20,
  errorRatePoints: 0.05,
  errorRateFactor: 2,
  p95Factor: 1.5,
  p95Ms: 50,
} as const;

export const OVERVIEW_DEFAULT_POINTS = 30;

export type RollbackReasonCode =
  'critical-alert' | 'canary-analysis-failed' | 'error-rate-regression' | 'latency-regression';

export interface RollbackReason {
  code: RollbackReasonCode;
  /** A sentence for a person. */
  message: string;
}

export interface VersionFigures {
  version: string;
  requests: number;
  errors: number;
  errorRate: number;
  throughput: number;
  latency: { p50: number | null; p95: number | null; p99: number | null };
  series: FleetGroup['series'];
}

/** Release health of one version running in a server × environment over the overview's window. */
export interface VersionSessions {
  version: string;
  /** Sessions seen in the window, and of those the ones still active now. */
  sessions: number;
  active: number;
  crashed: number;
  users: number;
  /** 0..1; null without a finished session (or a user with one). */
  crashFreeSessions: number | null;
  crashFreeUsers: number | null;
  /** This version's rate − the environment's average, 0..1 points; null without both. */
  change: { crashFreeSessions: number | null; crashFreeUsers: number | null };
}

export interface OverviewSessions {
  current: VersionSessions | null;
  previous: VersionSessions | null;
  /** Every version's sessions in the environment pooled (what the Releases view compares with). */
  average: { sessions: number; crashFreeSessions: number | null; crashFreeUsers: number | null };
}

export interface OverviewAlert {
  id: string;
  ruleName: string;
  severity: string;
  version: string | null;
  summary: string | null;
  firedAt: string | null;
}

export interface OverviewEnvironment {
  environment: string;
  position: number;
  stable: { version: string; since: string; by: string; deploymentId: string } | null;
  rollout: {
    id: string;
    version: string;
    weight: number;
    status: string;
    strategy: string;
    since: string;
    by: string;
  } | null;
  /** The version serving the change: the rollout's, else the stable one. */
  current: string | null;
  /** What `current` is judged against and a rollback returns to: the stable version during a rollout, else the last known good before it. */
  previous: string | null;
  /** From the server's health checks that apply here; null when it has none. */
  health: CheckStatus | null;
  alerts: { firing: number; critical: number; items: OverviewAlert[] };
  canaryVerdict: { id: string; verdict: string; at: string } | null;
  metrics: { current: VersionFigures | null; previous: VersionFigures | null };
  /** Release health of current and previous over the window; null without any session there. */
  sessions: OverviewSessions | null;
  deltas: {
    /** current − previous, 0..1 points; null without both. */
    errorRate: number | null;
    /** current / previous − 1; null without both. */
    p95: number | null;
  };
  rollbackRecommended: boolean;
  reasons: RollbackReason[];
}

export interface OverviewServer {
  slug: string;
  name: string;
  description: string;
  /** Environments where a version runs or a rollout is active, in pipeline order. */
  environments: OverviewEnvironment[];
}

export interface Overview {
  window: { from: string; to: string };
  stepSeconds: number;
  /** Start of each sparkline step, RFC 3339: the `series` arrays have one value per step. */
  times: string[];
  servers: OverviewServer[];
}

export interface OverviewOptions extends TimeWindow {
  server?: string | undefined;
  environment?: string | undefined;
  points?: number | undefined;
}

interface ServerRow {
  id: string;
  slug: string;
  name: string;
  description: string;
}

interface CheckRow {
  id: string;
  server_id: string;
  name: string;
  kind: HealthCheck['kind'];
  phase: HealthCheck['phase'];
  environment: string | null;
  interval_ms: number;
  timeout_ms: number;
  enabled: boolean;
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

export async function overview(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  options: OverviewOptions,
  now = Date.now(),
): Promise<Overview> {
  const envRows = await listEnvironmentRows(db, principal.orgId);
  if (options.environment !== undefined && !envRows.some((e) => e.name === options.environment)) {
    throw new BadRequestError(
      `environment ${options.environment} does not exist in @${principal.orgSlug}; it has ${envRows.map((e) => e.name).join(', ') || 'none'}`,
      'unknown-environment',
    );
  }
  const envs = envRows
    .map((e, i) => ({ ...e, position: i + 1 }))
    .filter((e) => options.environment === undefined || e.name === options.environment);

  let servers: ServerRow[];
  if (options.server !== undefined) {
    // A named server is answered even when archived; one the token may not see is a 404.
    servers = [await findServer(db, principal, options.server)];
  } else {
    servers = await db.query<ServerRow>(
      `SELECT id, slug, name, description FROM servers
        WHERE org_id = $1 AND archived_at IS NULL AND ($2::text[] IS NULL OR slug = ANY($2)) ORDER BY slug`,
      [principal.orgId, principal.servers],
    );
  }
  const ids = servers.map((s) => s.id);
  const slugs = servers.map((s) => s.slug);
  const envIds = envs.map((e) => e.id);
  const envNames = envs.map((e) => e.name);

  const [releases, rollouts, goods, alerts, analyses, checks, fleet, sessionRows] = await Promise.all([
    db.query<{
      server_id: string;
      environment_id: string;
      version: string;
      released_at: Date;
      released_by: string;
      deployment_id: string;
    }>(
      `SELECT server_id, environment_id, version, released_at, released_by, deployment_id
         FROM environment_releases
        WHERE server_id = ANY($1) AND environment_id = ANY($2) AND replaced_at IS NULL`,
      [ids, envIds],
    ),
    db.query<{
      id: string;
      server_id: string;
      current_environment_id: string;
      version: string;
      weight: number;
      status: string;
      strategy: string;
      created_at: Date;
      created_by: string;
    }>(
      `SELECT id, server_id, current_environment_id, version, weight, status, strategy, created_at, created_by
         FROM deployments
        WHERE server_id = ANY($1) AND current_environment_id = ANY($2) AND status = ANY($3)`,
      [ids, envIds, [...ACTIVE_STATUSES]],
    ),
    // The last known good per server and environment, as a rollback would choose it: the newest
    // release there, other than the stable version, not rolled back, of a version not retired.
    db.query<{ server_id: string; environment_id: string; version: string }>(
      `SELECT DISTINCT ON (r.server_id, r.environment_id) r.server_id, r.environment_id, r.version
         FROM environment_releases r
         JOIN versions v ON v.id = r.version_id
         LEFT JOIN environment_releases c
           ON c.server_id = r.server_id AND c.environment_id = r.environment_id AND c.replaced_at IS NULL
        WHERE r.server_id = ANY($1) AND r.environment_id = ANY($2) AND r.rolled_back_at IS NULL
          AND v.status <> 'retired' AND r.version <> COALESCE(c.version, '')
        ORDER BY r.server_id, r.environment_id, r.released_at DESC, r.id DESC`,
      [ids, envIds],
    ),
    db.query<{
      id: string;
      server: string;
      environment: string | null;
      version: string | null;
      baseline_version: string | null;
      fired_at: Date | null;
      rule_name: string;
      severity: string;
      annotations: Record<string, string> | null;
    }>(
      `SELECT i.id, i.server, i.environment, i.version, i.baseline_version, i.fired_at,
              r.name AS rule_name, r.severity, r.annotations
         FROM alert_instances i JOIN alert_rules r ON r.id = i.rule_id
        WHERE i.org_id = $1 AND i.state = 'firing' AND i.server = ANY($2)
        ORDER BY i.fired_at DESC NULLS LAST, i.id`,
      [principal.orgId, slugs],
    ),
    // The newest finished analysis per server, environment and candidate.
    db.query<{
      id: string;
      server_id: string;
      environment: string;
      candidate: string;
      verdict: string;
      created_at: Date;
      finished_at: Date | null;
    }>(
      `SELECT DISTINCT ON (server_id, environment, candidate)
              id, server_id, environment, candidate, verdict, created_at, finished_at
         FROM canary_analyses
        WHERE server_id = ANY($1) AND environment = ANY($2) AND verdict IS NOT NULL AND status <> 'running'
        ORDER BY server_id, environment, candidate, created_at DESC, id DESC`,
      [ids, envNames],
    ),
    db.query<CheckRow>(
      `SELECT id, server_id, name, kind, phase, environment, interval_ms, timeout_ms, enabled
         FROM health_checks WHERE server_id = ANY($1) ORDER BY name`,
      [ids],
    ),
    // Every version with traffic, so this runs alongside the Postgres queries; the few versions
    // that are neither current nor previous cost a group each.
    fleetStats(warehouse, {
      orgId: principal.orgId,
      servers: slugs,
      environments: envNames,
      from: options.from,
      to: options.to,
      points: options.points ?? OVERVIEW_DEFAULT_POINTS,
    }),
    fleetSessions(warehouse, {
      orgId: principal.orgId,
      servers: slugs,
      environments: envNames,
      from: Number(options.from),
      to: Number(options.to),
      now: Number(options.to),
      idleMs: SESSION_IDLE_LIMIT_MS,
    }),
  ]);

  const lastRuns = await lastCheckRuns(
    warehouse,
    principal.orgId,
    checks.map((c) => c.id),
  );

  const k = (...parts: string[]) => parts.join('\u0000');
  const releaseBy = new Map(releases.map((r) => [k(r.server_id, r.environment_id), r]));
  const rolloutBy = new Map(rollouts.map((d) => [k(d.server_id, d.current_environment_id), d]));
  const goodBy = new Map(goods.map((g) => [k(g.server_id, g.environment_id), g.version]));
  const analysisBy = new Map(analyses.map((a) => [k(a.server_id, a.environment, a.candidate), a]));
  const groupBy = new Map(fleet.groups.map((g) => [k(g.server, g.environment, g.version), g]));
  const sessionsBy = new Map(sessionRows.map((r) => [k(r.server, r.environment, r.version ?? ''), r]));
  const sessionsOf = (server: string, env: string, versions: (string | null)[]): OverviewSessions | null => {
    const pooled = sessionsBy.get(k(server, env, ''));
    if (!pooled || pooled.sessions.total === 0) return null;
    const [cur, prev] = versions.map((v) => {
      const f = v === null ? undefined : sessionsBy.get(k(server, env, v));
      return f ? versionSessions(f, pooled) : null;
    });
    return {
      current: cur ?? null,
      previous: prev ?? null,
      average: {
        sessions: pooled.sessions.total,
        crashFreeSessions: pooled.crashFreeSessions,
        crashFreeUsers: pooled.crashFreeUsers,
      },
    };
  };

  const figures = (server: string, env: string, version: string | null): VersionFigures | null => {
    if (version === null) return null;
    const g = groupBy.get(k(server, env, version));
    if (!g) return null;
    return {
      version,
      requests: g.requests,
      errors: g.errors,
      errorRate: g.errorRate,
      throughput: g.throughput,
      latency: g.latency,
      series: g.series,
    };
  };

  const out: OverviewServer[] = servers.map((server) => {
    const environments: OverviewEnvironment[] = [];
    for (const env of envs) {
      const stable = releaseBy.get(k(server.id, env.id));
      const rollout = rolloutBy.get(k(server.id, env.id));
      if (!stable && !rollout) continue;
      const current = rollout?.version ?? stable?.version ?? null;
      const previous = rollout ? (stable?.version ?? null) : (goodBy.get(k(server.id, env.id)) ?? null);

      const firing = alerts.filter(
        (a) => a.server === server.slug && (a.environment === null || a.environment === env.name),
      );
      const applicable = checks.filter(
        (c) => c.server_id === server.id && (c.environment === null || c.environment === env.name),
      );
      const health = applicable.length === 0 ? null : healthOf(applicable, lastRuns, now);

      const cur = figures(server.slug, env.name, current);
      const prev = previous === current ? null : figures(server.slug, env.name, previous);
      const deltas = {
        errorRate:
          cur && prev && cur.requests > 0 && prev.requests > 0 ? cur.errorRate - prev.errorRate : null,
        p95:
          cur?.latency.p95 != null && prev?.latency.p95 != null && prev.latency.p95 > 0
            ? cur.latency.p95 / prev.latency.p95 - 1
            : null,
      };

      // The version a rollback would undo: the canary, or a stable version with one before it.
      const suspect = rollout ? rollout.version : previous !== null ? current : null;
      let analysis = suspect ? analysisBy.get(k(server.id, env.name, suspect)) : undefined;
      if (analysis && rollout && analysis.created_at < rollout.created_at) analysis = undefined;
      const reasons: RollbackReason[] = [];
      if (suspect !== null) {
        const bad = firing.filter(
          (a) => a.version === suspect && (a.severity === 'critical' || a.baseline_version !== null),
        );
        if (bad.length > 0) {
          reasons.push({
            code: 'critical-alert',
            message: `${bad.map((a) => a.rule_name).join(', ')} firing on ${suspect}`,
          });
        }
        if (analysis?.verdict === 'fail') {
          reasons.push({
            code: 'canary-analysis-failed',
            message: `the canary analysis of ${suspect} failed`,
          });
        }
        if (cur && prev && cur.version === suspect) reasons.push(...regressions(cur, prev));
      }

      environments.push({
        environment: env.name,
        position: env.position,
        stable: stable
          ? {
              version: stable.version,
              since: stable.released_at.toISOString(),
              by: stable.released_by,
              deploymentId: stable.deployment_id,
            }
          : null,
        rollout: rollout
          ? {
              id: rollout.id,
              version: rollout.version,
              weight: rollout.weight,
              status: rollout.status,
              strategy: rollout.strategy,
              since: rollout.created_at.toISOString(),
              by: rollout.created_by,
            }
          : null,
        current,
        previous,
        health,
        alerts: {
          firing: firing.length,
          critical: firing.filter((a) => a.severity === 'critical').length,
          items: firing.map((a) => ({
            id: a.id,
            ruleName: a.rule_name,
            severity: a.severity,
            version: a.version,
            summary: a.annotations?.summary ?? null,
            firedAt: iso(a.fired_at),
          })),
        },
        canaryVerdict: analysis
          ? {
              id: analysis.id,
              verdict: analysis.verdict,
              at: (analysis.finished_at ?? analysis.created_at).toISOString(),
            }
          : null,
        metrics: { current: cur, previous: prev },
        sessions: sessionsOf(server.slug, env.name, [current, previous === current ? null : previous]),
        deltas,
        rollbackRecommended: reasons.length > 0,
        reasons,
      });
    }
    return { slug: server.slug, name: server.name, description: server.description, environments };
  });

  return {
    window: {
      from: new Date(Number(options.from)).toISOString(),
      to: new Date(Number(options.to)).toISOString(),
    },
    stepSeconds: fleet.stepSeconds,
    times: fleet.times,
    servers: out,
  };
}

function versionSessions(f: FleetSessionFigures, pooled: FleetSessionFigures): VersionSessions {
  const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  return {
    version: f.version ?? '',
    sessions: f.sessions.total,
    active: f.sessions.active,
    crashed: f.sessions.crashed,
    users: f.users,
    crashFreeSessions: f.crashFreeSessions,
    crashFreeUsers: f.crashFreeUsers,
    change: {
      crashFreeSessions: minus(f.crashFreeSessions, pooled.crashFreeSessions),
      crashFreeUsers: minus(f.crashFreeUsers, pooled.crashFreeUsers),
    },
  };
}

/** Error-rate and p95 regressions of `cur` against `prev` by {@link ROLLBACK_RULE}. */
export function regressions(
  cur: Pick<VersionFigures, 'version' | 'requests' | 'errorRate' | 'latency'>,
  prev: Pick<VersionFigures, 'version' | 'requests' | 'errorRate' | 'latency'>,
): RollbackReason[] {
  const rule = ROLLBACK_RULE;
  if (cur.requests < rule.minRequests || prev.requests < rule.minRequests) return [];
  const reasons: RollbackReason[] = [];
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  if (
    // The epsilon keeps 6 % − 1 % (0.04999… in binary) at the 5 points it is.
    cur.errorRate - prev.errorRate >= rule.errorRatePoints - 1e-9 &&
    cur.errorRate >= rule.errorRateFactor * prev.errorRate
  ) {
    reasons.push({
      code: 'error-rate-regression',
      message: `error rate ${pct(cur.errorRate)} on ${cur.version} against ${pct(prev.errorRate)} on ${prev.version}`,
    });
  }
  const a = cur.latency.p95;
  const b = prev.latency.p95;
  if (a !== null && b !== null && a >= rule.p95Factor * b && a - b >= rule.p95Ms) {
    reasons.push({
      code: 'latency-regression',
      message: `p95 ${Math.round(a)} ms on ${cur.version} against ${Math.round(b)} ms on ${prev.version}`,
    });
  }
  return reasons;
}

/** `down` when an applicable check is down, `up` when one is up and none down, else `unknown`. */
function healthOf(checks: CheckRow[], runs: Map<string, LastRun>, now: number): CheckStatus {
  const statuses = checks.map((c) => {
    const run = runs.get(c.id);
    return statusOf(
      {
        enabled: c.enabled,
        phase: c.phase,
        intervalMs: c.interval_ms,
        timeoutMs: c.timeout_ms,
      } as HealthCheck,
      run ? ({ ok: run.ok, time: run.time } as Parameters<typeof statusOf>[1]) : null,
      now,
    ).status;
  });
  return statuses.includes('down') ? 'down' : statuses.includes('up') ? 'up' : 'unknown';
}

interface LastRun {
  ok: boolean;
  time: string;
}

/** The newest run of each check, whenever it was, for every server in one query. */
async function lastCheckRuns(
  warehouse: Warehouse,
  orgId: string,
  checkIds: string[],
): Promise<Map<string, LastRun>> {
  if (checkIds.length === 0) return new Map();
  const result = await warehouse.client.query({
    query: `SELECT check_id, ok, toUnixTimestamp64Milli(time) AS time_ms FROM health_results
             WHERE org_id = {org:String} AND check_id IN {checks:Array(String)}
             ORDER BY time DESC, run_id DESC LIMIT 1 BY check_id`,
    query_params: { org: orgId, checks: checkIds },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ check_id: string; ok: number; time_ms: number | string }>();
  return new Map(
    rows.map((r) => [
      r.check_id,
      { ok: Number(r.ok) === 1, time: new Date(Number(r.time_ms)).toISOString() },
    ]),
  );
}
