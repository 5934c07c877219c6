import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killLeftovers,
  platformEnv,
  pyleeEnv,
  runPylee,
  startPylee,
  type PyleeProcess,
  type RunResult,
} from '../helpers/pylee-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// The deployment commands of `pylee`, each a separate process against one real platform (whose
// alerts role runs the rollout worker), as a CI pipeline runs them.

const ADMIN_TOKEN = 'deploy-commands-admin-token-0123456789';

let dataDir: string;
let configDir: string;
let platform: PyleeProcess;

beforeAll(async () => {
  dataDir = tempDir('pylee-deploy-commands');
  configDir = tempDir('pylee-deploy-cli');
  platform = await startPylee({ env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN }) });
});

afterAll(async () => {
  await killLeftovers();
  for (const dir of [dataDir, configDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const env = (token = ADMIN_TOKEN) =>
  pyleeEnv({ PYLEE_URL: platform.apiUrl, PYLEE_TOKEN: token, PYLEE_CONFIG_DIR: configDir });
const pylee = (args: string, token?: string) => runPylee(args.split(' '), env(token));

function json<T = Record<string, unknown>>(result: RunResult): T {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}
function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

interface Deployment {
  id: string;
  version: string;
  status: string;
  kind: string;
  weight: number;
  currentStep: number | null;
}
interface Status {
  environments: {
    environment: string;
    stable: { version: string } | null;
    canary: { weight: number } | null;
  }[];
}

const stable = async (server: string) =>
  Object.fromEntries(
    json<Status>(await pylee(`status ${server} --json`)).environments.map((e) => [
      e.environment,
      e.stable?.version ?? null,
    ]),
  );

describe('pylee deploy, promote, rollback, status', () => {
  beforeAll(async () => {
    ok(await pylee('servers create weather'));
    for (const v of ['1.0.0', '1.1.0']) ok(await pylee(`versions create weather ${v} --status stable`));
  });

  it('walks a version development → staging → canary (canary steps) → production', async () => {
    for (const e of ['development', 'staging', 'canary', 'production']) {
      expect(ok(await pylee(`deploy weather 1.0.0 --env ${e}`))).toContain('succeeded');
    }
    ok(await pylee('deploy weather 1.1.0 --env development --wait'));
    ok(await pylee('deploy weather 1.1.0 --env staging --wait'));
    const canary = json<Deployment>(
      await pylee('deploy weather 1.1.0 --env canary --strategy canary --steps 5,25,100 --approval --json'),
    );
    expect(canary).toMatchObject({ status: 'paused', weight: 5 });
    expect(ok(await pylee('status weather'))).toMatch(/canary\s+1\.0\.0 .* 1\.1\.0 at 5% \(paused\)/);
    expect(json<Deployment>(await pylee('promote weather --env canary --json'))).toMatchObject({
      weight: 25,
    });
    const done = json<Deployment>(await pylee(`promote weather ${canary.id} --wait --json`));
    expect(done).toMatchObject({ status: 'succeeded', weight: 100 });
    // Production: a canary whose timed pause ends on its own (the rollout worker), waited for.
    const prod = await pylee(
      'deploy weather 1.1.0 --env production --strategy canary --steps 50,100 --pause 1s --wait',
    );
    expect(ok(prod)).toContain('succeeded');
    expect(await stable('weather')).toEqual({
      development: '1.1.0',
      staging: '1.1.0',
      canary: '1.1.0',
      production: '1.1.0',
    });
    const show = ok(await pylee(`deployments show weather ${canary.id}`));
    expect(show).toContain('timeline:');
    expect(show).toMatch(/promote\s+paused → succeeded/);
  });

  it('rolls back immediately, selectively and in stages', async () => {
    expect(ok(await pylee('rollback weather --env production --reason errors --wait'))).toContain(
      'production: 1.1.0 → 1.0.0',
    );
    const selective = ok(await pylee('rollback weather --env canary --env staging'));
    expect(selective).toContain('canary: 1.1.0 → 1.0.0');
    expect(selective).toContain('staging: 1.1.0 → 1.0.0');
    // Staged: 1.1.0 keeps 50 % for a second, then none; --wait follows it to the end.
    const staged = await pylee(
      'rollback weather --env development --mode staged --steps 50,0 --pause 1s --wait --json',
    );
    const result = json<{ environments: { deployment: Deployment }[] }>(staged);
    expect(result.environments[0]?.deployment).toMatchObject({
      kind: 'rollback',
      status: 'succeeded',
      version: '1.0.0',
    });
    expect(await stable('weather')).toEqual({
      development: '1.0.0',
      staging: '1.0.0',
      canary: '1.0.0',
      production: '1.0.0',
    });
  });

  it('--wait exits 1 when the rollout is aborted, and bad input exits 1 or 2 with the reason', async () => {
    const waiting = pylee(
      'deploy weather 1.1.0 --env staging --strategy canary --steps 10,100 --approval --wait',
    );
    let id: string | undefined;
    for (let i = 0; i < 100 && !id; i++) {
      await sleep(200);
      const list = json<Deployment[]>(await pylee('deployments list weather --env staging --active --json'));
      id = list[0]?.id;
    }
    expect(id).toBeDefined();
    ok(await pylee('abort weather --env staging --reason stop'));
    const result = await waiting;
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('aborted');

    const again = await pylee('deploy weather 9.9.9 --env staging');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('(version-not-found)');
    const rising = await pylee('deploy weather 1.1.0 --env staging --strategy canary --steps 50,25,100');
    expect(rising.code).toBe(1);
    expect(rising.stderr).toContain('does not rise');
    const noGood = await pylee('rollback weather --env staging');
    expect(noGood.code).toBe(1);
    expect(noGood.stderr).toContain('(no-known-good-version)');
    const usage = await pylee('deploy weather 1.1.0 --env staging --strategy staged --steps 5,100');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--steps needs --strategy canary');
    const state = await pylee('resume weather --env staging');
    expect(state.code).toBe(1);
    expect(state.stderr).toContain('no active rollout');
  });

  it('manages environments and limits a token to one', async () => {
    ok(await pylee('environments create qa --after staging --gate soak:staging:1h'));
    expect(ok(await pylee('environments list'))).toMatch(/3\s+qa\s+soak 1h in staging/);
    const token = json<{ token: string }>(
      await pylee('tokens create --name qa-deployer --permission deploy --environment qa --json'),
    ).token;
    const refused = await pylee('deploy weather 1.1.0 --env production', token);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('(environment-not-permitted)');
    const gate = await pylee('deploy weather 1.1.0 --env qa', token);
    expect(gate.code).toBe(1);
    expect(gate.stderr).toContain('(gate-not-met)');
  });
});
