import os from 'node:os';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

// The longest files, started first: on a fresh clone vitest has no timings and starts big files
// first, so the two-minute demo (a small file) used to run last, alone on one core.
const SLOW_FIRST = [
  'test/demo/demo.int.test.ts',
  'test/cli/start.int.test.ts',
  'test/durability/control-plane-kill.int.test.ts',
  'test/collector/kill.int.test.ts',
];

class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((slow) => f.moduleId.endsWith(slow));
      return i < 0 ? SLOW_FIRST.length : i;
    };
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}

// Integration tests each open their own embedded stores; chDB binds one data directory per
// process, so every test file runs in its own forked process.
export default defineConfig({
  test: {
    pool: 'forks',
    sequence: { sequencer: SlowFirst },
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
