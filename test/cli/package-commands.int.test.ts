import fs from 'node:fs';
import path from 'node:path';
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

// `pylee packages …` against one real platform, each command a separate process, as a platform
// team runs them: catalogue a package, deprecate a version, see where it is used, remove it.

const ADMIN_TOKEN = 'package-commands-admin-token-0123456789';

let dataDir: string;
let workDir: string;
let platform: PyleeProcess;

const serverJson = (sdk: string) => ({
  name: 'io.github.acme/billing',
  description: 'Billing',
  version: '1.0.0',
  packages: [{ registryType: 'npm', identifier: '@acme/sdk', version: sdk, transport: { type: 'stdio' } }],
});

beforeAll(async () => {
  dataDir = tempDir('pylee-package-commands');
  workDir = tempDir('pylee-package-cli');
  for (const sdk of ['1.9.0', '2.0.3', '2.1.0'])
    fs.writeFileSync(path.join(workDir, `server-${sdk}.json`), JSON.stringify(serverJson(sdk)));
  platform = await startPylee({ env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN }) });
});

afterAll(async () => {
  await killLeftovers();
  for (const dir of [dataDir, workDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const pylee = (args: string[]) =>
  runPylee(
    args,
    pyleeEnv({
      PYLEE_URL: platform.apiUrl,
      PYLEE_TOKEN: ADMIN_TOKEN,
      PYLEE_CONFIG_DIR: path.join(workDir, 'no-login'),
    }),
  );

function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

function failed(result: RunResult, code: number, stderr: string): void {
  expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(code);
  expect(result.stderr).toContain(stderr);
  expect(result.stdout).toBe('');
}

const squash = (text: string) => text.replace(/ +/g, ' ');

describe('pylee packages', () => {
  it('set, deprecate, list, show and delete manage the catalogue; versions create warns', async () => {
    const set = ok(
      await pylee([
        'packages',
        'set',
        'npm',
        '@acme/sdk',
        '--allowed',
        '^2.0.0',
        '--owner',
        'platform-team',
        '--description',
        'The Acme SDK',
      ]),
    );
    expect(set).toContain('npm @acme/sdk — The Acme SDK');
    expect(squash(set)).toContain('allowed: ^2.0.0');
    const deprecated = ok(
      await pylee([
        'packages',
        'deprecate',
        'npm',
        '@acme/sdk',
        '2.0.x',
        '--message',
        'leaks tokens in logs',
        '--replacement',
        '2.1.0',
      ]),
    );
    expect(deprecated).toContain('npm @acme/sdk 2.0.x deprecated: leaks tokens in logs (use 2.1.0)');

    ok(await pylee(['servers', 'create', 'billing']));
    const cut = async (version: string, sdk: string) =>
      pylee(['versions', 'create', 'billing', version, '--config', path.join(workDir, `server-${sdk}.json`)]);
    expect((await cut('1.0.0', '1.9.0')).stderr).toContain(
      '@acme/sdk@1.9.0 is not an allowed version of npm package @acme/sdk (allowed: ^2.0.0)',
    );
    expect((await cut('1.1.0', '2.0.3')).stderr).toContain(
      '@acme/sdk@2.0.3 is deprecated: leaks tokens in logs (use 2.1.0)',
    );
    expect(ok(await cut('1.2.0', '2.1.0'))).toContain('created @default/billing@1.2.0');

    const list = squash(ok(await pylee(['packages', 'list'])));
    expect(list).toContain(
      'TYPE PACKAGE ALLOWED DEPRECATED OWNERS SERVERS VERSIONS NOT ALLOWED DEPRECATED USES',
    );
    expect(list).toContain('npm @acme/sdk ^2.0.0 2.0.x platform-team 1 3 1 1');

    const show = squash(ok(await pylee(['packages', 'show', 'npm', '@acme/sdk'])));
    expect(show).toContain('used by 3 versions of 1 server (not retired): 1 not allowed, 1 deprecated');
    expect(show).toContain('billing 1.2.0 development 2.1.0 allowed');
    expect(show).toContain('billing 1.1.0 development 2.0.3 deprecated: leaks tokens in logs (use 2.1.0)');
    expect(show).toContain('billing 1.0.0 development 1.9.0 not allowed (^2.0.0)');
    const body = JSON.parse(ok(await pylee(['packages', 'show', 'npm', '@acme/sdk', '--json']))) as {
      uses: { version: string; deprecated: boolean }[];
    };
    expect(body.uses.map((u) => [u.version, u.deprecated])).toEqual([
      ['1.2.0', false],
      ['1.1.0', true],
      ['1.0.0', false],
    ]);

    // Allowing any version again clears the not-allowed use.
    expect(squash(ok(await pylee(['packages', 'set', 'npm', '@acme/sdk', '--any-version'])))).toContain(
      'used by 3 versions: 1 deprecated',
    );
    expect(ok(await pylee(['packages', 'delete', 'npm', '@acme/sdk']))).toBe(
      'removed npm @acme/sdk from the catalogue\n',
    );
    const after = squash(ok(await pylee(['packages', 'list'])));
    expect(after).toContain('no package is catalogued');
    expect(after).toContain('In use, not catalogued:');
    expect(after).toContain('npm @acme/sdk 1 3 2.1.0, 2.0.3, 1.9.0');
  });

  it('environments update --gate allowed-packages makes deploy refuse a version naming the package', async () => {
    ok(await pylee(['packages', 'set', 'npm', '@acme/sdk', '--allowed', '^2.0.0']));
    ok(await pylee(['environments', 'update', 'staging', '--gate', 'allowed-packages']));
    expect(squash(ok(await pylee(['environments', 'list'])))).toContain('staging allowed packages');
    const refused = await pylee(['deploy', 'billing', '1.0.0', '--env', 'staging']);
    failed(refused, 1, 'npm @acme/sdk@1.9.0 (outside the allowed ^2.0.0)');
    expect(refused.stderr).toContain('(gate-not-met)');
    ok(await pylee(['environments', 'update', 'staging', '--gate', 'allowed-packages:allow-deprecated']));
    expect(squash(ok(await pylee(['environments', 'list'])))).toContain('allowed packages (deprecated ok)');
    ok(await pylee(['deploy', 'billing', '1.2.0', '--env', 'staging']));
    failed(
      await pylee(['environments', 'update', 'staging', '--gate', 'allowed-packages:sometimes']),
      2,
      'allowed-packages[:allow-deprecated]',
    );
    ok(await pylee(['environments', 'update', 'staging', '--no-gates']));
  });

  it('refuses an invalid range, a missing message, an unknown package and an unknown registry type', async () => {
    const [range, message, unknown, type, both] = await Promise.all([
      pylee(['packages', 'set', 'pypi', 'requests', '--allowed', '2.0']),
      pylee(['packages', 'deprecate', 'npm', 'left-pad', '1.x']),
      pylee(['packages', 'delete', 'npm', '@acme/nope']),
      pylee(['packages', 'show', 'maven', 'junit']),
      pylee(['packages', 'set', 'npm', 'x', '--allowed', '*', '--any-version']),
    ]);
    failed(range, 1, 'allowed "2.0" is not valid for pypi: use a PEP 440 specifier set, e.g. >=2.31,<3');
    failed(message, 2, 'packages deprecate needs --message M');
    failed(unknown, 1, 'npm package @acme/nope is not in the catalogue of @default');
    failed(type, 1, 'use one of npm, pypi, oci, homebrew, nuget');
    failed(both, 2, 'give --allowed RANGE or --any-version, not both');
  });
});
