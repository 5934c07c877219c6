/**
 * The live split of a server's gateway traffic per version (issue 14, point 10): what the rollout's
 * weights actually did in the last minutes, read from the request rows the gateway writes
 * (`source = 'gateway'`, gateway/recorder.ts). Values are typed query parameters.
 */
import type { Warehouse } from '../warehouse/client.ts';

/** How far back the live split looks. */
export const LIVE_WINDOW_SECONDS = 300;

export interface LiveSplit {
  windowSeconds: number;
  /** Distinct gateway sessions per version that exchanged anything in the window, most first. */
  sessions: {
    version: string;
    sessions: number;
    /** Of all sessions in the window, 0..1. */ share: number;
  }[];
  /** JSON-RPC requests per version in the window, most first. */
  requests: { version: string; requests: number }[];
}

/** An environment without gateway traffic in the window. */
export const emptyLiveSplit = (windowSeconds = LIVE_WINDOW_SECONDS): LiveSplit => ({
  windowSeconds,
  sessions: [],
  requests: [],
});

interface Row {
  environment: string;
  version: string;
  sessions: number;
  requests: number;
}

/**
 * Distinct gateway sessions and requests per environment and version of one server over the last
 * `windowSeconds` before `now`. Pinned endpoints (`{server}@{version}`) belong to no environment and
 * are left out; so are requests without a session in the session counts (they still count as
 * requests). Environments without gateway traffic are absent from the map.
 */
export async function liveSplit(
  warehouse: Warehouse,
  scope: { orgId: string; server: string; now?: number; windowSeconds?: number },
): Promise<Map<string, LiveSplit>> {
  const windowSeconds = scope.windowSeconds ?? LIVE_WINDOW_SECONDS;
  const to = scope.now ?? Date.now();
  const result = await warehouse.client.query({
    query: `SELECT environment, version,
              uniqExactIf(session_id, session_id != '') AS sessions,
              count() AS requests
            FROM requests
            WHERE org_id = {org:String} AND server = {server:String} AND source = 'gateway'
              AND environment != ''
              AND time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
              AND time <= fromUnixTimestamp64Milli({to:Int64}, 'UTC')
            GROUP BY environment, version`,
    query_params: { org: scope.orgId, server: scope.server, from: to - windowSeconds * 1000, to },
    format: 'JSONEachRow',
  });
  const rows = await result.json<Row>();
  const byEnvironment = new Map<string, Row[]>();
  for (const row of rows) {
    const list = byEnvironment.get(row.environment) ?? [];
    list.push({ ...row, sessions: Number(row.sessions), requests: Number(row.requests) });
    byEnvironment.set(row.environment, list);
  }
  const split = new Map<string, LiveSplit>();
  for (const [environment, list] of byEnvironment) {
    const total = list.reduce((n, r) => n + r.sessions, 0);
    const most = (key: 'sessions' | 'requests') => (a: Row, b: Row) =>
      b[key] - a[key] || a.version.localeCompare(b.version);
    split.set(environment, {
      windowSeconds,
      sessions: list
        .filter((r) => r.sessions > 0)
        .sort(most('sessions'))
        .map((r) => ({ version: r.version, sessions: r.sessions, share: r.sessions / total })),
      requests: [...list].sort(most('requests')).map((r) => ({ version: r.version, requests: r.requests })),
    });
  }
  return split;
}
