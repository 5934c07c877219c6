/** Every BullMQ key lives under this prefix, so Pylee can share a Redis with other users. */
export const QUEUE_PREFIX = 'pylee';

/** One queue per kind of work, so a slow kind never starves another. */
export const QUEUES = {
  /** Housekeeping that must run somewhere, once: audit-chain checks, settling sessions. */
  maintenance: 'maintenance',
  /** Rollout steps: pauses that end on their own, verification timeouts. */
  rollout: 'rollout',
  /** Deliveries to Slack and webhooks. */
  notify: 'notify',
  /** Startup, runtime and dependency health checks. */
  health: 'health-checks',
  /** Alert-rule evaluation. */
  alerts: 'alert-rules',
  /** Canary analyses. */
  canary: 'canary-analysis',
} as const;

export const JOBS = {
  auditChainCheck: 'audit-chain-check',
  /** Settling ended and idle sessions into the release-health rollups (core/release-health/rollups.ts). */
  sessionRollup: 'session-rollup',
  advisoriesImport: 'advisories-import',
  /** Applying version-retention policies (core/registry/retention.ts). */
  retentionApply: 'retention-apply',
} as const;
