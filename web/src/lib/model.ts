// Reads the deployment-side API answers (what runs where, deployments, analyses, alerts) into the
// small shapes the pages show, tolerating optional fields.
import type { Alert, Analysis, Deployment } from './api';

export interface Placement {
  environment: string;
  stable: string | null;
  canary: string | null;
  /** Percent of traffic on the canary (0 without one). */
  canaryWeight: number;
  since: string | null;
  by: string | null;
  /** The active rollout in this environment, if any. */
  deploymentId: string | null;
  deploymentStatus: string | null;
  strategy: string | null;
  /** What an immediate rollback returns to (the version before `stable`, or `stable` during a canary). */
  previous: string | null;
}

type Loose = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: unknown): Loose | null =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : null;
const versionOf = (v: unknown): string | null => str(v) ?? str(obj(v)?.version);

/** `GET /servers/{s}/environments` → one placement per environment, in pipeline order. */
export function placements(answer: unknown): Placement[] {
  const list: unknown[] = Array.isArray(answer)
    ? answer
    : (((obj(answer)?.environments ?? obj(answer)?.items) as unknown[] | undefined) ?? []);
  return list.map((raw) => {
    const e = obj(raw) ?? {};
    const stable = obj(e.stable);
    const canary = obj(e.canary);
    const active = obj(e.activeDeployment) ?? obj(e.deployment) ?? obj(e.rollout);
    return {
      environment: str(e.environment) ?? str(e.name) ?? str(obj(e.environment)?.name) ?? '?',
      stable: versionOf(e.stable) ?? str(e.stableVersion) ?? str(e.version),
      canary: versionOf(e.canary) ?? str(e.canaryVersion),
      canaryWeight: num(canary?.weight) ?? num(e.canaryWeight) ?? num(e.weight) ?? 0,
      since: str(stable?.since) ?? str(e.since) ?? str(canary?.since),
      by: str(stable?.by) ?? str(e.by) ?? str(stable?.deployedBy) ?? str(e.deployedBy),
      deploymentId: str(canary?.deploymentId) ?? str(active?.id) ?? str(e.deploymentId),
      deploymentStatus: str(canary?.status) ?? str(active?.status) ?? null,
      strategy: str(canary?.strategy),
      previous:
        str(e.rollbackTarget) ??
        str(stable?.previousVersion) ??
        str(e.previousVersion) ??
        str(e.lastKnownGood),
    };
  });
}

export const deploymentTime = (d: Deployment) => String(d.createdAt ?? d.updatedAt ?? '');
export const isRollback = (d: Deployment) =>
  d.kind === 'rollback' || d.rollback === true || d.status === 'rolled-back';

export const analysisVerdict = (a: Analysis | undefined) =>
  (str(a?.verdict) ?? str(obj(a?.result)?.verdict) ?? str(obj(a?.verdict)?.result))?.toLowerCase() ?? null;
export const analysisCandidate = (a: Analysis) =>
  str(a.candidate) ?? str(a.candidateVersion) ?? versionOf(a.canary);
export const analysisBaseline = (a: Analysis) =>
  str(a.baseline) ?? str(a.baselineVersion) ?? versionOf(a.baseline);

export const alertState = (a: Alert) => (str(a.state) ?? str(a.status) ?? 'firing').toLowerCase();
export const alertName = (a: Alert) =>
  str(a.ruleName) ?? str(obj(a.rule)?.name) ?? str(a.rule) ?? str(a.labels?.alertname) ?? 'alert';
export const alertSummary = (a: Alert) => str(a.summary) ?? str(a.annotations?.summary) ?? null;
export const alertSince = (a: Alert) => str(a.startsAt) ?? str(a.activeAt) ?? str(a.firedAt) ?? null;
