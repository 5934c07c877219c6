/** Every BullMQ key lives under this prefix, so Pylee can share a Redis with other users. */
export const QUEUE_PREFIX = 'pylee';

export const QUEUES = {
  /** Housekeeping that must run somewhere, once: audit-chain checks. */
  maintenance: 'maintenance',
} as const;

export const JOBS = {
  auditChainCheck: 'audit-chain-check',
} as const;
