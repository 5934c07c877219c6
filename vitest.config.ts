import { defineConfig } from 'vitest/config';

// Integration tests each open their own embedded stores; chDB binds one data directory per
// process, so every test file runs in its own forked process.
export default defineConfig({
  test: {
    pool: 'forks',
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
