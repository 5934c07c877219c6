/** Who may connect to a server's environment through the gateway (see access.ts for where it is kept). */
export const ACCESS_MODES = ['pylee', 'passthrough', 'public'] as const;
export type AccessMode = (typeof ACCESS_MODES)[number];

/** What an environment without a setting of its own uses. */
export const DEFAULT_ACCESS_MODE: AccessMode = 'pylee';

export const isAccessMode = (value: unknown): value is AccessMode =>
  (ACCESS_MODES as readonly unknown[]).includes(value);
