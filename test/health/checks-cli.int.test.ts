import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killLeftovers,
  platformEnv,
  pyleeEnv,
  runPylee,
  startPylee,
  type PyleeProcess,
} from '../helpers/pylee-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { startMcpTarget, type McpTarget } from './targets.ts';

// `pylee checks …` as separate processes against a real platform (`pylee start`, every role), whose
// workers run the checks on their schedulers.

const ADMIN_TOKEN = 'checks-cli-admin-token-0123456789';
let dataDir: string;
let platform: PyleeProcess;
let mcp: McpTarget;

const pylee = (args: string[]) =>
  runPylee(
    args,
    pyleeEnv({ PYLEE_URL: platform.apiUrl, PYLEE_TOKEN: ADMIN_TOKEN, PYLEE_CONFIG_DIR: dataDir }),
  );

beforeAll(async () => {
  dataDir = tempDir('pylee-checks-cli');
  mcp = await startMcpTarget('2.0.0');
  platform = await startPylee({ env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN }) });
  expect((await pylee(['servers', 'create', 'weather'])).code).toBe(0);
});

afterAll(async () => {
  await killLeftovers();
  await mcp?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('pylee checks', () => {
  it('creates, runs, reports and deletes a check; exit codes follow the verdict', async () => {
    const created = await pylee([
      'checks', 'create', 'weather', 'mcp endpoint',
      '--kind', 'mcp', '--target', mcp.url, '--interval', '5s', '--timeout', '2s', '--json',
    ]); // prettier-ignore
    expect(created.code, created.stderr).toBe(0);
    const check = JSON.parse(created.stdout) as { id: string; interval: string };
    expect(check.interval).toBe('5s');

    const run = await pylee(['checks', 'run', 'weather', check.id]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      /^PASS in [\d.]+ ms · HTTP 200 · protocol \d{4}-\d{2}-\d{2} · 2 tools · [0-9a-f]{12}/,
    );

    const list = await pylee(['checks', 'list', 'weather']);
    expect(list.stdout).toContain('mcp endpoint');
    expect(list.stdout).toContain(mcp.url);

    // The platform's workers run it on its scheduler too.
    let status = await pylee(['checks', 'status', 'weather', '--json']);
    for (
      let i = 0;
      i < 50 &&
      (JSON.parse(status.stdout) as { checks: { uptimePercent: number | null }[] }).checks[0]
        ?.uptimePercent !== 100;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 200));
      status = await pylee(['checks', 'status', 'weather', '--json']);
    }
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      status: 'up',
      checks: [{ status: 'up', uptimePercent: 100 }],
    });

    mcp.mode = 'http500';
    const failed = await pylee(['checks', 'run', 'weather', check.id]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('FAIL');
    expect(failed.stdout).toContain('HTTP 500');
    const down = await pylee(['checks', 'status', 'weather']);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^weather: DOWN/);
    mcp.mode = 'ok';

    const bad = await pylee([
      'checks',
      'create',
      'weather',
      'bad',
      '--kind',
      'http',
      '--target',
      'ftp://x',
      '--json',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('(invalid-url)');
    const missing = await pylee(['checks', 'create', 'weather', 'no-url', '--kind', 'http']);
    expect(missing.code).toBe(2);

    const deleted = await pylee(['checks', 'delete', 'weather', check.id]);
    expect(deleted.stdout).toBe('deleted check "mcp endpoint"\n');
    expect((await pylee(['checks', 'list', 'weather'])).stdout).toBe('no health checks on weather\n');
  });
});
