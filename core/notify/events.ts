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
