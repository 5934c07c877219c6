import type { Config } from './config.ts';
import type { SecretBox } from './crypto/secret-box.ts';
import type { Logger } from './logger.ts';
import type { Stores } from './stores.ts';

/** What every role gets from the composition root (`cli/`). */
export interface RoleDeps {
  config: Config;
  stores: Stores;
  logger: Logger;
  version: string;
  secretBox: SecretBox;
}

/** A running part of Pylee: the API, the collector or the workers. */
export interface Role {
  readonly name: string;
  /** Where it listens, once started (roles that serve HTTP). */
  readonly url?: string | undefined;
  start(): Promise<void>;
  /** Stops taking new work and finishes what is in flight. */
  stop(): Promise<void>;
}
