/**
 * Something that happened that people or machines may want to hear about: a rollout step, a
 * deployment's new state, an alert firing or resolving, a canary verdict. Producers publish events;
 * `core/notify` decides which channels (Slack, signed webhooks) receive them and delivers them
 * through the `notify` queue. Producers never talk to channels directly.
 */
export interface PyleeEvent {
  /** Dotted name, e.g. `deployment.step`, `deployment.status`, `alert.firing`, `alert.resolved`, `canary.verdict`. */
  type: string;
  orgId: string;
  /** Server slug, when the event is about one. */
  server?: string | null;
  environment?: string | null;
  version?: string | null;
  /** Extra labels channels can route and silences can match on (severity, alertname…). */
  labels?: Record<string, string>;
  /** One line a person reads first (Slack fallback text). */
  summary: string;
  /** The machine-readable body; delivered as `data` in webhook payloads. */
  data: Record<string, unknown>;
  occurredAt?: Date;
}

export interface EventPublisher {
  /** Durably records the event's deliveries, then enqueues them; resolves once nothing can be lost. */
  publish(event: PyleeEvent): Promise<void>;
}

/**
 * `data` of `alert.firing` / `alert.resolved` events: one notification for a group of alerts, as
 * Alertmanager sends (the event's `labels` are the group's common labels). Renderers (Slack, webhook)
 * rely on this shape.
 */
export interface AlertGroupData {
  [key: string]: unknown;
  groupKey: string;
  status: 'firing' | 'resolved';
  alerts: AlertNotice[];
}

export interface AlertNotice {
  [key: string]: unknown;
  /** Stable per alert instance (rule + label set). */
  fingerprint: string;
  ruleId: string;
  ruleName: string;
  status: 'firing' | 'resolved';
  severity: 'critical' | 'warning' | 'info';
  server: string | null;
  environment: string | null;
  version: string | null;
  operation: string | null;
  labels: Record<string, string>;
  annotations: { summary?: string; description?: string; runbookUrl?: string };
  /** What was observed, in the metric's unit, e.g. 0.12 error rate or 840 ms. */
  value: number | null;
  /** What it was compared with: a fixed threshold, or the baseline's value times a factor. */
  threshold: number | null;
  /** e.g. `error rate`, `p95 latency (ms)`. */
  metric: string;
  /** Baseline version when the rule is relative to one. */
  baselineVersion: string | null;
  startsAt: string;
  endsAt: string | null;
  /** Path of the comparison page in the UI, relative to the API base URL. */
  comparePath: string | null;
  /** Crash-free sessions of the alerted version in its environment over the rule's window. */
  sessions?: SessionsNotice | null;
  /** The active rollout the alerted version is the candidate of, if it is. */
  rollout?: RolloutNotice | null;
  /** Rollout steps and configuration changes shortly before the alert began, newest first. */
  correlation?: CorrelationNotice[];
  /** Why it resolved when that is not its condition: e.g. the version no longer receives traffic. */
  resolution?: string | null;
  /** What changed: from `baseline` (the rule's baseline, else the stable version) and configuration events of the last day. */
  changes?: ChangesNotice | null;
}

/** The top changes behind an alert or a canary verdict (core/changes). */
export interface ChangesNotice {
  /** `Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (server+production, 2 h ago, alice)`; '' for none. */
  summary: string;
  baseline: string | null;
  /** The first rows (kind, name, before, after, scope, actor, at). */
  rows: Record<string, unknown>[];
}

/** The rollout of an alert's version: deployment, step, traffic weight, since when. */
export interface RolloutNotice {
  deploymentId: string;
  environment: string;
  version: string;
  /** 1-based step; null before the first. */
  step: number | null;
  steps: number;
  /** Percent of traffic the version receives. */
  weight: number;
  status: string;
  startedAt: string;
  startedBy: string;
  /** A canary analysis of the rollout is running. */
  analysisRunning: boolean;
}

/** "began 3 min after 1.4.0 reached 25 % in production". */
export interface CorrelationNotice {
  kind: 'rollout' | 'configuration';
  at: string;
  text: string;
  actor: string;
  deploymentId?: string;
}

/** One version's sessions in a window; rates 0..1, null without a finished session. */
export interface VersionSessionsNotice {
  version: string;
  sessions: number;
  crashed: number;
  crashFreeSessions: number | null;
  crashFreeUsers: number | null;
}

/** The `sessions` object of a `canary.verdict`'s data and of each alert of an alert group. */
export interface SessionsNotice {
  environment: string;
  window: { from: string; to: string };
  /** The candidate of a verdict, the alerted version of an alert. */
  version: VersionSessionsNotice;
  /** The verdict's baseline, or the version a relative rule judges against; null without one. */
  baseline: VersionSessionsNotice | null;
}
