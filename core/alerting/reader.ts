/**
 * What rule evaluations read, once per batch: the warehouse reads of every rule of an evaluation
 * round that share org, window and shape are ONE grouped query over all their servers (as
 * Prometheus evaluates a rule group), and what several rules of the round re-read (the same
 * server's deployments, registry statuses, sessions or check runs) is read once. A reader lives
 * for one evaluation time (`now`): nothing is kept across rounds, so no rule ever sees older data
 * than its own query would have returned.
 */
import type { Queryable } from '../db/client.ts';
import { environmentStatus } from '../deploy/queries.ts';
import { NotFoundError } from '../errors.ts';
import { checkFailures, type CheckFailures } from '../health/results.ts';
import { systemPrincipal } from '../orgs.ts';
import { sessionSeries, type SessionSeries } from '../release-health/series.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { RESOURCE_METRICS, SESSION_METRICS, type Rule } from './model.ts';
import {
  pickRows,
  requestsByOperation,
  requestSeriesBatch,
  resourceSeriesBatch,
  type Batched,
  type ResourceStats,
  type SeriesScope,
  type SeriesStats,
} from './queries.ts';
import { NO_ROLLOUTS, readRollouts, type ServerRollouts } from './rollouts.ts';

/** What runs in an environment per the deployments: null when nothing is (stable) or rolling out (canary). */
export interface Deployed {
  stable: string | null;
  canary: string | null;
}

export interface HealthScope {
  orgId: string;
  server: string;
  environment?: string | undefined;
  from: number;
  to: number;
}

export interface SeriesReader {
  requests(scope: SeriesScope): Promise<SeriesStats[]>;
  resources(scope: SeriesScope): Promise<ResourceStats[]>;
  sessions(scope: SeriesScope): Promise<SessionSeries[]>;
  health(scope: HealthScope): Promise<CheckFailures[]>;
  /** Per environment that has had a deployment, what runs there (none for a server the registry does not know). */
  deployed(orgId: string, server: string): Promise<Map<string, Deployed>>;
  /** Registry statuses of the server's versions. */
  statuses(orgId: string, server: string): Promise<Map<string, string>>;
  /** What the server's deployments mean for its alerts (rollouts.ts). */
  rollouts(orgId: string, server: string): Promise<ServerRollouts>;
}

type Family = 'requests' | 'resources' | 'sessions' | 'health';

/** Which store a rule reads and the scope it reads at `now`, exactly as its evaluation will ask. */
export function scopeOf(rule: Rule, now: number): { family: Family; scope: SeriesScope } {
  const c = rule.condition;
  const base = {
    orgId: rule.orgId,
    server: rule.server,
    environment: rule.environment,
    from: now - rule.windowMs,
    to: now,
  };
  if (rule.kind === 'health') return { family: 'health', scope: base };
  if (c.metric !== null && RESOURCE_METRICS.includes(c.metric)) return { family: 'resources', scope: base };
  if (c.metric !== null && SESSION_METRICS.includes(c.metric)) return { family: 'sessions', scope: base };
  const perOperation = c.operation === '*';
  return {
    family: 'requests',
    scope: {
      ...base,
      operation: perOperation ? null : c.operation,
      perOperation: rule.kind !== 'absence' && perOperation,
    },
  };
}

const batchKey = (family: Family, scope: SeriesScope) =>
  JSON.stringify([
    family,
    scope.orgId,
    scope.from,
    scope.to,
    family === 'requests' ? requestsByOperation(scope) : false,
  ]);

async function readDeployed(db: Queryable, orgId: string, server: string): Promise<Map<string, Deployed>> {
  // Pylee reads on the org's behalf; the slug would only appear in a not-found message, caught here.
  const principal = systemPrincipal({ id: orgId, slug: orgId });
  let envs: Awaited<ReturnType<typeof environmentStatus>>;
  try {
    envs = await environmentStatus(db, principal, server, { history: 1 });
  } catch (error) {
    if (error instanceof NotFoundError) return new Map();
    throw error;
  }
  const out = new Map<string, Deployed>();
  for (const env of envs) {
    if (!env.stable && !env.canary && env.history.length === 0) continue;
    out.set(env.environment, {
      stable: env.stable?.version ?? null,
      canary: env.canary && env.canary.weight > 0 ? env.canary.version : null,
    });
  }
  return out;
}

async function readStatuses(db: Queryable, orgId: string, server: string): Promise<Map<string, string>> {
  const rows = await db.query<{ version: string; status: string }>(
    `SELECT v.version, v.status FROM versions v JOIN servers s ON s.id = v.server_id
      WHERE s.org_id = $1 AND s.slug = $2`,
    [orgId, server],
  );
  return new Map(rows.map((r) => [r.version, r.status]));
}

/** Each read once per key; a failed read fails every rule that asked for it, as its own query would. */
function memo<T>() {
  const reads = new Map<string, Promise<T>>();
  return (key: string, read: () => Promise<T>): Promise<T> => {
    let p = reads.get(key);
    if (!p) {
      p = read();
      reads.set(key, p);
    }
    return p;
  };
}

/**
 * The reader of one evaluation round: `rules` are planned up front, so the first rule of a batch
 * that asks for its rows runs the batch's query for all of them. A scope outside the plan is read
 * on its own.
 */
export function batchReader(
  deps: { db: Queryable; warehouse: Warehouse },
  rules: readonly Rule[],
  now: number,
): SeriesReader {
  const servers = new Map<string, Set<string>>();
  for (const rule of rules) {
    const { family, scope } = scopeOf(rule, now);
    if (family !== 'requests' && family !== 'resources') continue;
    const key = batchKey(family, scope);
    const set = servers.get(key) ?? new Set<string>();
    set.add(rule.server);
    servers.set(key, set);
  }
  const serversOf = (key: string, server: string) => {
    const set = servers.get(key);
    return set?.has(server) ? [...set].sort() : [server];
  };
  const requestBatches = memo<Batched<SeriesStats>[]>();
  const resourceBatches = memo<Batched<ResourceStats>[]>();
  const sessions = memo<SessionSeries[]>();
  const health = memo<CheckFailures[]>();
  const deployed = memo<Map<string, Deployed>>();
  const statuses = memo<Map<string, string>>();
  // Every server of an org the round evaluates: their rollouts are read together.
  const orgServers = new Map<string, Set<string>>();
  for (const rule of rules)
    orgServers.set(rule.orgId, (orgServers.get(rule.orgId) ?? new Set()).add(rule.server));
  const rollouts = memo<Map<string, ServerRollouts>>();
  return {
    async requests(scope) {
      const key = batchKey('requests', scope);
      const list = serversOf(key, scope.server);
      const rows = await requestBatches(list.length === 1 ? `${key}|${scope.server}` : key, () =>
        requestSeriesBatch(deps.warehouse, {
          orgId: scope.orgId,
          servers: list,
          byOperation: requestsByOperation(scope),
          from: scope.from,
          to: scope.to,
        }),
      );
      return pickRows(rows, scope);
    },
    async resources(scope) {
      const key = batchKey('resources', scope);
      const list = serversOf(key, scope.server);
      const rows = await resourceBatches(list.length === 1 ? `${key}|${scope.server}` : key, () =>
        resourceSeriesBatch(deps.warehouse, {
          orgId: scope.orgId,
          servers: list,
          from: scope.from,
          to: scope.to,
        }),
      );
      return pickRows(rows, { ...scope, operation: null });
    },
    sessions: (scope) =>
      sessions(JSON.stringify([scope.orgId, scope.server, scope.environment, scope.from, scope.to]), () =>
        sessionSeries(deps.warehouse, scope),
      ),
    health: (scope) =>
      health(JSON.stringify([scope.orgId, scope.server, scope.environment, scope.from, scope.to]), () =>
        checkFailures(deps.warehouse, scope),
      ),
    deployed: (orgId, server) =>
      deployed(JSON.stringify([orgId, server]), () => readDeployed(deps.db, orgId, server)),
    statuses: (orgId, server) =>
      statuses(JSON.stringify([orgId, server]), () => readStatuses(deps.db, orgId, server)),
    async rollouts(orgId, server) {
      const planned = orgServers.get(orgId);
      const servers = planned?.has(server) ? [...planned].sort() : [server];
      const key = JSON.stringify(planned?.has(server) ? [orgId] : [orgId, server]);
      const read = await rollouts(key, () => readRollouts(deps.db, orgId, servers, now));
      return read.get(server) ?? NO_ROLLOUTS;
    },
  };
}
