/**
 * What a server's deployments mean for its alerts (read once per evaluation round, reader.ts):
 * - which version is the candidate of an active rollout in an environment, at which step and
 *   weight, and whether a canary analysis of that rollout is running (rules with `duringRollout:
 *   hold` keep the candidate's notifications while it is);
 * - which versions that ran in an environment no longer receive traffic there, and why (a
 *   rollback, an abort, the promotion of another): their alerts resolve with that reason instead
 *   of lingering as firing or going to no data;
 * - the rollout steps of the recent past, so an alert can say it began minutes after one.
 * Only what Pylee deployed counts: a version Pylee never deployed in an environment is judged by
 * its telemetry alone.
 */
import type { Queryable } from '../db/client.ts';
import type { RolloutNotice } from '../notify/events.ts';
import { ACTIVE_STATUSES, FINAL_STATUSES, type RolloutStatus } from '../deploy/rollout.ts';

/** An active rollout of a server in one environment, as alerts carry it. */
export interface RolloutContext extends RolloutNotice {
  status: RolloutStatus;
}

/** One rollout step (a traffic change) of the recent past, for "began 3 min after …". */
export interface RolloutStepEvent {
  deploymentId: string;
  environment: string;
  version: string;
  at: number;
  weight: number;
  action: string;
  toStatus: string;
  actor: string;
}

export interface ServerRollouts {
  /** Active rollouts by environment. */
  active: Map<string, RolloutContext>;
  /** The stable version (at 100 %) by environment. */
  stable: Map<string, string>;
  /** Why `version` takes no traffic in `environment` now; null while it does or Pylee never deployed it there. */
  trafficLost(environment: string, version: string): string | null;
  /** Rollout steps in `environment` in `[from, to]`, newest first. */
  stepsIn(environment: string, from: number, to: number): RolloutStepEvent[];
}

interface DeploymentRow {
  id: string;
  version: string;
  kind: 'deploy' | 'rollback';
  status: RolloutStatus;
  current_step: number;
  steps: unknown[];
  weight: number;
  environment: string;
  current_environment: string;
  created_by: string;
  created_at: Date;
  status_reason: string | null;
  final_actor: string | null;
  analysis_running: boolean;
  analysis_verdict: string | null;
}

/** How many of a server's newest deployments are read: far more than one round of alerts needs. */
const HISTORY = 200;
/** Rollout steps this far back are kept for correlation (the longest correlation window). */
export const MAX_CORRELATION_MS = 24 * 3_600_000;
/** A verdict not acted on after this long (its process died) no longer holds anything. */
const ACTING_MS = 5 * 60_000;

/** What the deployments of each of `servers` (of one org) mean for alerts: one set of reads for all. */
export async function readRollouts(
  db: Queryable,
  orgId: string,
  servers: readonly string[],
  now: number,
): Promise<Map<string, ServerRollouts>> {
  const out = new Map<string, ServerRollouts>(servers.map((server) => [server, NO_ROLLOUTS]));
  const deployments = await db.query<DeploymentRow & { server: string }>(
    `SELECT * FROM (
     SELECT s.slug AS server, row_number() OVER (PARTITION BY d.server_id ORDER BY d.created_at DESC, d.id DESC) AS n,
            d.id, d.version, d.kind, d.status, d.current_step, d.steps, d.weight, d.created_by, d.created_at,
            d.status_reason, e.name AS environment, c.name AS current_environment,
            (SELECT x.actor FROM deployment_events x WHERE x.deployment_id = d.id AND x.to_status = d.status
              ORDER BY x.at DESC LIMIT 1) AS final_actor,
            -- A step waiting for its analysis to start, and a verdict not yet acted on (the rollback or
            -- promotion follows it), count as running: the analysis decides in both.
            (COALESCE(d.awaiting = 'analysis', false) OR EXISTS (SELECT 1 FROM canary_analyses a WHERE a.deployment_id = d.id
                     AND (a.status = 'running' OR (a.action IS NULL AND a.finished_at > $3))))
              AS analysis_running,
            (SELECT a.verdict FROM canary_analyses a WHERE a.deployment_id = d.id AND a.status = 'completed'
              ORDER BY a.created_at DESC LIMIT 1) AS analysis_verdict
       FROM deployments d
       JOIN servers s ON s.id = d.server_id
       JOIN environments e ON e.id = d.environment_id
       JOIN environments c ON c.id = d.current_environment_id
      WHERE s.org_id = $1 AND s.slug = ANY($2::text[])) t
      WHERE n <= ${HISTORY} ORDER BY created_at DESC, id DESC`,
    [orgId, [...servers], new Date(now - ACTING_MS)],
  );
  if (deployments.length === 0) return out;
  const releases = await db.query<{ server: string; environment: string; version: string }>(
    `SELECT s.slug AS server, e.name AS environment, r.version
       FROM environment_releases r JOIN servers s ON s.id = r.server_id JOIN environments e ON e.id = r.environment_id
      WHERE s.org_id = $1 AND s.slug = ANY($2::text[]) AND r.replaced_at IS NULL`,
    [orgId, [...new Set(deployments.map((d) => d.server))]],
  );
  const events = await db.query<EventRow>(
    `SELECT x.deployment_id, x.environment, x.at, x.weight, x.action, x.to_status, x.actor
       FROM deployment_events x WHERE x.deployment_id = ANY($1::uuid[]) AND x.at >= $2
      ORDER BY x.at DESC, x.id DESC`,
    [deployments.map((d) => d.id), new Date(now - MAX_CORRELATION_MS)],
  );
  for (const server of new Set(deployments.map((d) => d.server))) {
    const own = deployments.filter((d) => d.server === server);
    const ids = new Set(own.map((d) => d.id));
    out.set(
      server,
      serverRollouts(
        own,
        releases.filter((r) => r.server === server),
        events.filter((e) => ids.has(e.deployment_id)),
      ),
    );
  }
  return out;
}

interface EventRow {
  deployment_id: string;
  environment: string;
  at: Date;
  weight: number;
  action: string;
  to_status: string;
  actor: string;
}

/** One server's rollouts from its deployments (newest first), open releases and recent events (newest first). */
function serverRollouts(
  deployments: DeploymentRow[],
  releases: { environment: string; version: string }[],
  events: EventRow[],
): ServerRollouts {
  const stable = new Map(releases.map((r) => [r.environment, r.version]));
  const active = new Map<string, RolloutContext>();
  for (const d of deployments) {
    if (!(ACTIVE_STATUSES as readonly string[]).includes(d.status) || active.has(d.current_environment))
      continue;
    active.set(d.current_environment, {
      deploymentId: d.id,
      environment: d.current_environment,
      version: d.version,
      step: d.current_step >= 0 ? d.current_step + 1 : null,
      steps: d.steps.length,
      weight: d.weight,
      status: d.status,
      startedAt: d.created_at.toISOString(),
      startedBy: d.created_by,
      analysisRunning: d.analysis_running,
    });
  }
  const versionOf = new Map(deployments.map((d) => [d.id, d.version]));
  // Only events that moved traffic or ended a rollout: a pause or an approval changes nothing users see.
  const lastWeight = new Map<string, number>();
  const steps: RolloutStepEvent[] = [];
  for (const e of [...events].reverse()) {
    const before = lastWeight.get(e.deployment_id) ?? 0;
    lastWeight.set(e.deployment_id, e.weight);
    if (e.weight === before && !(FINAL_STATUSES as readonly string[]).includes(e.to_status)) continue;
    steps.unshift({
      deploymentId: e.deployment_id,
      environment: e.environment,
      version: versionOf.get(e.deployment_id) ?? '',
      at: e.at.getTime(),
      weight: e.weight,
      action: e.action,
      toStatus: e.to_status,
      actor: e.actor,
    });
  }
  const inEnv = (d: DeploymentRow, environment: string) =>
    d.environment === environment || d.current_environment === environment;
  return {
    active,
    stable,
    trafficLost(environment, version) {
      if (stable.get(environment) === version || active.get(environment)?.version === version) return null;
      // Newest first: the version's last rollout there, and what came after it.
      const own = deployments.find((d) => d.version === version && inEnv(d, environment));
      if (!own) return null;
      const after = deployments.find(
        (d) => inEnv(d, environment) && d.created_at > own.created_at && d.version !== version,
      );
      return lostReason(version, environment, own, after);
    },
    stepsIn(environment, from, to) {
      return steps.filter((s) => s.environment === environment && s.at >= from && s.at <= to);
    },
  };
}

export const by = (actor: string | null) => (actor === 'pylee' || actor === null ? 'Pylee' : actor);

function lostReason(
  version: string,
  environment: string,
  own: DeploymentRow,
  after: DeploymentRow | undefined,
): string {
  const where = `${version} no longer receives traffic in ${environment}`;
  if (own.status === 'rolled-back') {
    const why = own.analysis_verdict === 'fail' ? ' after its canary analysis failed' : '';
    return `${where}: rolled back by ${by(own.final_actor)}${why}`;
  }
  if (own.status === 'aborted') return `${where}: rollout aborted by ${by(own.final_actor)}`;
  if (own.status === 'failed')
    return `${where}: rollout failed${own.status_reason ? ` (${own.status_reason})` : ''}`;
  if (after?.kind === 'rollback')
    return `${where}: rolled back to ${after.version} by ${by(after.created_by)}`;
  if (after) return `${where}: replaced by ${after.version} (deployed by ${by(after.created_by)})`;
  return where;
}

export const NO_ROLLOUTS: ServerRollouts = {
  active: new Map(),
  stable: new Map(),
  trafficLost: () => null,
  stepsIn: () => [],
};
