/**
 * "Began 3 min after 1.4.0 reached 25 % in production": what happened to the same server and
 * environment shortly before an alert began — rollout steps (rollouts.ts) and configuration
 * changes — so the person paged sees the likely cause first.
 */
import { configurationEvents } from '../changes/index.ts';
import type { Queryable } from '../db/client.ts';
import type { CorrelationNotice } from '../notify/events.ts';
import { by, type RolloutStepEvent, type ServerRollouts } from './rollouts.ts';

export type Correlation = CorrelationNotice;

/** "45 s", "3 min", "2 h 5 min". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
}

function stepText(e: RolloutStepEvent): string {
  if (e.toStatus === 'rolled-back') return `${e.version} was rolled back by ${by(e.actor)}`;
  if (e.toStatus === 'aborted') return `the rollout of ${e.version} was aborted by ${by(e.actor)}`;
  if (e.toStatus === 'failed') return `the rollout of ${e.version} failed`;
  return `${e.version} reached ${e.weight} %`;
}

/** Rollout steps in the window before `began`, newest first, as correlations. */
export function rolloutCorrelations(steps: readonly RolloutStepEvent[], began: number): Correlation[] {
  return steps
    .filter((e) => e.at <= began)
    .map((e) => ({
      kind: 'rollout' as const,
      at: new Date(e.at).toISOString(),
      text: `began ${ago(began - e.at)} after ${stepText(e)} in ${e.environment}`,
      actor: by(e.actor),
      deploymentId: e.deploymentId,
    }));
}

/**
 * What happened to the server in `environment` within `windowMs` before an alert began at `began`:
 * rollout steps and audited variable and secret changes (any scope that applies there), newest first.
 */
export async function correlationsAt(
  tx: Queryable,
  scope: { orgId: string; server: string; environment: string; version: string | null },
  rollouts: ServerRollouts,
  windowMs: number,
  began: number,
): Promise<Correlation[]> {
  const from = began - windowMs;
  const events = await configurationEvents(tx, scope.orgId, {
    server: scope.server,
    environment: scope.environment,
    ...(scope.version ? { versions: [scope.version] } : {}),
    from: new Date(from),
    to: new Date(began),
  });
  const configuration: Correlation[] = events.map((e) => ({
    kind: 'configuration',
    at: e.at,
    text: `began ${ago(began - Date.parse(e.at))} after ${e.text} by ${e.actor}`,
    actor: e.actor,
  }));
  return [
    ...rolloutCorrelations(rollouts.stepsIn(scope.environment, from, began), began),
    ...configuration,
  ].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}
