import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { isPeriodic, listChecks } from './checks.ts';
import { formatMs, type HealthCheck } from './model.ts';
import { lastResults, windowStats, type HealthResult } from './results.ts';

export type CheckStatus = 'up' | 'down' | 'unknown';

export interface CheckHealth {
  check: HealthCheck;
  status: CheckStatus;
  /** Why the status is unknown; null when it is up or down. */
  reason: string | null;
  lastResult: HealthResult | null;
  /** Runs in the window. */
  total: number;
  failures: number;
  uptimePercent: number | null;
  latency: { p50: number | null; p95: number | null };
}

export interface ServerHealth {
  server: string;
  /** `down` when a check is down; `up` when every check with a known status is up; else `unknown`. */
  status: CheckStatus;
  window: { from: string; to: string };
  checks: CheckHealth[];
}

/** Runs missed before a periodic check's last result counts as stale. */
const STALE_AFTER_INTERVALS = 3;

/**
 * Status, uptime and latency per check of a server. A check is `up` or `down` by its newest run;
 * `unknown` with no run yet, when disabled, or when a periodic check has missed three runs (its
 * result no longer says anything about now).
 */
export async function serverHealth(
  db: Queryable,
  warehouse: Warehouse,
  principal: Principal,
  scope: { server: string; from: number; to: number; environment?: string | undefined },
  now = Date.now(),
): Promise<ServerHealth> {
  const checks = await listChecks(db, principal, scope.server, { environment: scope.environment });
  const ids = checks.map((c) => c.id);
  const [last, stats] = await Promise.all([
    lastResults(warehouse, { orgId: principal.orgId, server: scope.server, checkIds: ids }),
    windowStats(warehouse, {
      orgId: principal.orgId,
      server: scope.server,
      checkIds: ids,
      from: scope.from,
      to: scope.to,
    }),
  ]);
  const items = checks.map((check): CheckHealth => {
    const lastResult = last.get(check.id) ?? null;
    const s = stats.get(check.id);
    const { status, reason } = statusOf(check, lastResult, now);
    return {
      check,
      status,
      reason,
      lastResult,
      total: s?.total ?? 0,
      failures: s?.failures ?? 0,
      uptimePercent: s?.uptimePercent ?? null,
      latency: s?.latency ?? { p50: null, p95: null },
    };
  });
  const statuses = items.map((i) => i.status);
  return {
    server: scope.server,
    status: statuses.includes('down') ? 'down' : statuses.includes('up') ? 'up' : 'unknown',
    window: { from: new Date(scope.from).toISOString(), to: new Date(scope.to).toISOString() },
    checks: items,
  };
}

export function statusOf(
  check: HealthCheck,
  last: HealthResult | null,
  now: number,
): { status: CheckStatus; reason: string | null } {
  if (!check.enabled) return { status: 'unknown', reason: 'the check is disabled' };
  if (!last) {
    return {
      status: 'unknown',
      reason:
        check.phase === 'startup'
          ? 'no deployment has run this startup check yet'
          : 'the check has not run yet',
    };
  }
  const staleAfter = STALE_AFTER_INTERVALS * check.intervalMs + check.timeoutMs;
  if (isPeriodic(check) && now - Date.parse(last.time) > staleAfter) {
    return {
      status: 'unknown',
      reason: `no run for more than ${formatMs(staleAfter)}; is an alerts worker running?`,
    };
  }
  return { status: last.ok ? 'up' : 'down', reason: null };
}
