import os from 'node:os';
import { defineConfig } from 'vitest/config';

// Integration tests each open their own embedded stores; chDB binds one data directory per
// process, so every test file runs in its own forked process.
export default defineConfig({
  test: {
    pool: 'forks',
    // Integration files spend much of their time waiting on child processes and stores: one file per
    // core, where vitest's default (cores - 1) would run them one at a time on a 2-core machine.
    maxWorkers: os.availableParallelism(),
    globalSetup: ['test/helpers/global-setup.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/**/*.int.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.int.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
