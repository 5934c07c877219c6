import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killLeftovers,
  NODE_BIN,
  platformEnv,
  pyleeEnv,
  ROOT,
  runPylee,
  startPylee,
  type PyleeProcess,
  type RunResult,
} from '../helpers/pylee-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// The registry commands of the `pylee` CLI (login, servers, versions, templates, packages), each a separate process,
// against one real platform, as a CI pipeline runs them.

const ADMIN_TOKEN = 'registry-commands-admin-token-0123456789';

const SERVER_JSON = {
  $schema: 'https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json',
  name: 'io.github.acme/weather',
  description: 'Weather',
  version: '1.0.0',
  packages: [
    {
      registryType: 'npm',
      identifier: '@acme/weather-mcp',
      version: '1.0.0',
      transport: { type: 'stdio' },
      environmentVariables: [{ name: 'WEATHER_API_KEY', isRequired: true, isSecret: true }],
    },
  ],
  remotes: [{ type: 'streamable-http', url: 'https://weather.example.com/mcp' }],
};

/** A billing server using the Acme SDK at `sdk`, for the package catalogue commands. */
const serverJson = (sdk: string) => ({
  name: 'io.github.acme/billing',
  description: 'Billing',
  version: '1.0.0',
  packages: [{ registryType: 'npm', identifier: '@acme/sdk', version: sdk, transport: { type: 'stdio' } }],
});

const CHANGELOG = '# 1.0.0\n\n- Forecasts for any city\n- Severe weather alerts\n';

let dataDir: string;
let workDir: string;
/** A config dir nobody logs in to, so no saved login of the machine's user leaks into a test. */
let emptyConfigDir: string;
let platform: PyleeProcess;
const file = (name: string) => path.join(workDir, name);

beforeAll(async () => {
  dataDir = tempDir('pylee-registry-commands');
  workDir = tempDir('pylee-registry-cli');
  emptyConfigDir = file('no-login');
  fs.writeFileSync(file('server.json'), JSON.stringify(SERVER_JSON, null, 2));
  fs.writeFileSync(
    file('invalid-server.json'),
    JSON.stringify({ ...SERVER_JSON, packages: [{ ...SERVER_JSON.packages[0], version: 'latest' }] }),
  );
  fs.writeFileSync(file('CHANGELOG.md'), CHANGELOG);
  for (const sdk of ['1.9.0', '2.0.3', '2.1.0'])
    fs.writeFileSync(file(`server-sdk-${sdk}.json`), JSON.stringify(serverJson(sdk)));
  platform = await startPylee({ env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN }) });
});

afterAll(async () => {
  await killLeftovers();
  for (const dir of [dataDir, workDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Options {
  /** PYLEE_TOKEN; null leaves it unset. Default: the admin token. */
  token?: string | null;
  /** PYLEE_URL; null leaves it unset. Default: the platform. */
  url?: string | null;
  configDir?: string;
}

function env(options: Options = {}): NodeJS.ProcessEnv {
  return pyleeEnv({
    PYLEE_URL: options.url === null ? undefined : (options.url ?? platform.apiUrl),
    PYLEE_TOKEN: options.token === null ? undefined : (options.token ?? ADMIN_TOKEN),
    PYLEE_CONFIG_DIR: options.configDir ?? emptyConfigDir,
  });
}

const pylee = (args: string[], options: Options = {}) => runPylee(args, env(options));

/** Runs `pylee <args>` with `input` piped to its stdin (runPylee gives it none). */
function pyleeWithStdin(args: string[], environment: NodeJS.ProcessEnv, input: string): Promise<RunResult> {
  const child = spawn(NODE_BIN, ['cli/main.ts', ...args], { cwd: ROOT, env: environment });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function json<T = Record<string, unknown>>(result: RunResult): T {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

function failed(result: RunResult, code: number, stderr: string): void {
  expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(code);
  expect(result.stderr).toContain(stderr);
  expect(result.stdout).toBe('');
}

const mode = (p: string) => fs.statSync(p).mode & 0o777;

interface ServerJsonView {
  slug: string;
  fullName: string;
  name: string;
  owners: string[];
  archived: boolean;
}

interface VersionJson {
  server: string;
  version: string;
  status: string;
  releaseNotes: string;
  packages: { identifier: string }[];
  remotes: { url: string }[];
  deprecation: { message: string; replacement: string | null } | null;
  allowedTransitions: string[];
}

describe('pylee login', () => {
  it('reads the token from stdin, saves it readable by its owner only, and later commands need no PYLEE_TOKEN', async () => {
    const configDir = file('ci-login');
    const login = await pyleeWithStdin(['login'], env({ token: null, configDir }), `${ADMIN_TOKEN}\n`);

    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toBe(`logged in to ${platform.apiUrl} as bootstrap in @default (admin)\n`);
    const credentials = path.join(configDir, 'credentials.json');
    expect(mode(credentials)).toBe(0o600);
    expect(mode(configDir)).toBe(0o700);
    expect(JSON.parse(fs.readFileSync(credentials, 'utf8'))).toEqual({
      url: platform.apiUrl,
      token: ADMIN_TOKEN,
    });

    // Neither PYLEE_TOKEN nor PYLEE_URL: both come from the saved login.
    const [me, servers] = await Promise.all([
      pylee(['me', '--json'], { token: null, url: null, configDir }),
      pylee(['servers', 'list', '--json'], { token: null, url: null, configDir }),
    ]);
    expect(json(me)).toMatchObject({ org: { slug: 'default' }, token: { name: 'bootstrap' } });
    expect(Array.isArray(json(servers))).toBe(true);

    const logout = json(await pylee(['logout', '--json'], { token: null, configDir }));
    expect(logout).toMatchObject({ loggedOut: true, url: platform.apiUrl });
    expect(fs.existsSync(credentials)).toBe(false);
    failed(await pylee(['me'], { token: null, configDir }), 1, 'PYLEE_TOKEN');
  });

  it('login --json reports the org and permissions without the token', async () => {
    const configDir = file('json-login');
    const login = json(await pylee(['login', '--json'], { configDir }));

    expect(login).toMatchObject({ url: platform.apiUrl, org: { slug: 'default' }, permissions: ['admin'] });
    expect(JSON.stringify(login)).not.toContain(ADMIN_TOKEN);
  });

  it('login with a bad token exits 1 and saves nothing', async () => {
    const configDir = file('bad-login');
    const result = await pylee(['login', '--token', 'pyl_not-a-real-token-0123456789abcdef'], {
      token: null,
      configDir,
    });

    failed(result, 1, '(invalid-token)');
    expect(fs.existsSync(path.join(configDir, 'credentials.json'))).toBe(false);
  });
});

describe('pylee servers', () => {
  it('create, list, show, archive and unarchive manage a server', async () => {
    const [weather, maps] = await Promise.all([
      pylee(
        'servers create weather --name Weather --description Forecasts --owner team-a --owner team-b --json'.split(
          ' ',
        ),
      ),
      pylee(['servers', 'create', 'maps']),
    ]);
    expect(json<ServerJsonView>(weather)).toMatchObject({
      slug: 'weather',
      fullName: '@default/weather',
      name: 'Weather',
      owners: ['team-a', 'team-b'],
      archived: false,
    });
    expect(ok(maps)).toBe('created @default/maps (maps)\n');

    const [list, show, showJson] = await Promise.all([
      pylee(['servers', 'list']),
      pylee(['servers', 'show', 'weather']),
      pylee(['servers', 'show', 'weather', '--json']),
    ]);
    expect(ok(list)).toMatch(/^SLUG\s+NAME\s+ARCHIVED\n/);
    expect(list.stdout).toMatch(/^weather\s+Weather\s+no$/m);
    expect(ok(show)).toContain('@default/weather · Weather');
    expect(show.stdout).toContain('owners:     team-a, team-b');
    expect(json<ServerJsonView>(showJson).slug).toBe('weather');

    expect(ok(await pylee(['servers', 'archive', 'maps']))).toBe('archived @default/maps\n');
    const [active, all, refused] = await Promise.all([
      pylee(['servers', 'list', '--json']),
      pylee(['servers', 'list', '--all']),
      pylee(['versions', 'create', 'maps', '1.0.0']),
    ]);
    expect(json<ServerJsonView[]>(active).map((s) => s.slug)).toEqual(['weather']);
    expect(ok(all)).toMatch(/^maps\s+maps\s+yes$/m);
    failed(refused, 1, '(server-archived)');

    const unarchived = json<ServerJsonView>(await pylee(['servers', 'unarchive', 'maps', '--json']));
    expect(unarchived.archived).toBe(false);
    expect(json<ServerJsonView>(await pylee(['servers', 'archive', 'maps', '--json'])).archived).toBe(true);
  });
});

describe('pylee versions', () => {
  it('create reads --notes-file and --config, and show lists the package, the remote and the notes', async () => {
    const created = await pylee([
      'versions',
      'create',
      'weather',
      '1.0.0',
      '--notes-file',
      file('CHANGELOG.md'),
      '--config',
      file('server.json'),
    ]);
    expect(ok(created)).toBe('created @default/weather@1.0.0 (development)\n');
    expect(created.stderr).toBe('');

    const [show, detail] = await Promise.all([
      pylee(['versions', 'show', 'weather', '1.0.0']),
      pylee(['versions', 'show', 'weather', '1.0.0', '--json']),
    ]);
    expect(ok(show)).toContain('@default/weather@1.0.0 · development');
    expect(show.stdout).toContain('can go to:  release-candidate, stable, deprecated, retired');
    expect(show.stdout).toContain(
      'npm @acme/weather-mcp@1.0.0 · stdio · env WEATHER_API_KEY (required, secret)',
    );
    expect(show.stdout).toContain('streamable-http https://weather.example.com/mcp');
    expect(show.stdout).toContain('  - Forecasts for any city');
    expect(json<VersionJson>(detail)).toMatchObject({
      version: '1.0.0',
      releaseNotes: CHANGELOG,
      packages: [{ identifier: '@acme/weather-mcp' }],
      remotes: [{ url: 'https://weather.example.com/mcp' }],
    });
  });

  it('next --bump prints only the next version, for VERSION=$(pylee versions next …)', async () => {
    const [minor, prerelease, asJson] = await Promise.all([
      pylee(['versions', 'next', 'weather', '--bump', 'minor']),
      pylee(['versions', 'next', 'weather', '--bump', 'prerelease', '--preid', 'beta']),
      pylee(['versions', 'next', 'weather', '--bump', 'major', '--json']),
    ]);

    expect(ok(minor)).toBe('1.1.0\n');
    expect(minor.stderr).toBe('');
    expect(ok(prerelease)).toBe('1.0.1-beta.0\n');
    expect(json(asJson)).toEqual({ current: '1.0.0', next: '2.0.0', bump: 'major' });
  });

  it('lines: declares a line, cuts a hotfix in it with --bump, numbers a branch build, lists the lines', async () => {
    ok(await pylee(['servers', 'create', 'tides']));
    for (const v of ['1.4.2', '2.0.0'])
      ok(await pylee(['versions', 'create', 'tides', v, '--status', 'stable']));
    ok(
      await pylee([
        'lines',
        'set',
        'tides',
        '1.4.x',
        '--end-of-support',
        '2099-12-31',
        '--description',
        'LTS',
      ]),
    );
    expect(ok(await pylee(['versions', 'next', 'tides', '--bump', 'patch', '--line', '1.4.x']))).toBe(
      '1.4.3\n',
    );
    expect(ok(await pylee(['versions', 'create', 'tides', '--bump', 'patch', '--line', '1.4.x']))).toContain(
      'created @default/tides@1.4.3',
    );
    expect(ok(await pylee(['versions', 'create', 'tides', '--branch', 'feat/tide-tables']))).toContain(
      'tides@2.0.1-feat-tide-tables.0 (development)',
    );
    expect(ok(await pylee(['lines', 'list', 'tides']))).toMatch(
      /1\.4\.x\s+until 2099-12-31\s+1\.4\.2\s+2\s+LTS/,
    );
    failed(
      await pylee(['versions', 'create', 'tides', '2.1.0', '--branch', 'x']),
      2,
      'give a version number, or --bump',
    );
    failed(await pylee(['lines', 'set', 'tides', '1.4']), 1, 'not MAJOR.x or MAJOR.MINOR.x');
  });

  it('create refuses invalid semver, a duplicate, a missing notes file and an invalid server.json', async () => {
    const [semver, duplicate, missing, invalid] = await Promise.all([
      pylee(['versions', 'create', 'weather', 'v1.2']),
      pylee(['versions', 'create', 'weather', '1.0.0', '--json']),
      pylee(['versions', 'create', 'weather', '1.0.5', '--notes-file', file('NOPE.md')]),
      pylee(['versions', 'create', 'weather', '1.0.6', '--config', file('invalid-server.json')]),
    ]);

    failed(semver, 1, 'version "v1.2" is not valid semver: drop the leading "v"');
    expect(semver.stderr).toContain('(invalid-semver)');
    failed(duplicate, 1, 'version 1.0.0 of weather already exists');
    expect(duplicate.stderr).toContain('(version-exists)');
    failed(missing, 2, `cannot read --notes-file ${file('NOPE.md')}: no such file`);
    expect(missing.stderr).toContain('Usage: pylee versions create <server> [version]');
    failed(invalid, 1, 'invalid-server.json: ');
    expect(invalid.stderr).toContain('(invalid-server-json)');

    const versions = json<VersionJson[]>(await pylee(['versions', 'list', 'weather', '--json']));
    expect(versions.map((v) => v.version)).toEqual(['1.0.0']);
  });

  it('list orders by semver precedence (1.10.0 before 1.9.0) and filters by range', async () => {
    const created = await Promise.all([
      pylee(['versions', 'create', 'weather', '1.9.0', '--config', file('server.json')]),
      pylee(['versions', 'create', 'weather', '1.10.0', '--json']),
      pylee(['versions', 'create', 'weather', '1.2.0+build.5']),
    ]);
    for (const result of created) ok(result);
    // The server.json says 1.0.0: the command line wins, and says so.
    expect(created[0].stderr).toContain('says version 1.0.0; creating 1.9.0');
    expect(json<VersionJson>(created[1]).status).toBe('development');

    const [list, table, range, build] = await Promise.all([
      pylee(['versions', 'list', 'weather', '--json']),
      pylee(['versions', 'list', 'weather']),
      pylee(['versions', 'list', 'weather', '--range', '^1.9', '--json']),
      pylee(['versions', 'show', 'weather', '1.2.0+build.5', '--json']),
    ]);
    expect(json<VersionJson[]>(list).map((v) => v.version)).toEqual([
      '1.10.0',
      '1.9.0',
      '1.2.0+build.5',
      '1.0.0',
    ]);
    const lines = ok(table).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VERSION\s+STATUS\s+CREATED \(UTC\)\s+FLAGS$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([
      '1.10.0',
      '1.9.0',
      '1.2.0+build.5',
      '1.0.0',
    ]);
    expect(json<VersionJson[]>(range).map((v) => v.version)).toEqual(['1.10.0', '1.9.0']);
    expect(json<VersionJson>(build).version).toBe('1.2.0+build.5');
  });

  it('status moves a version along its lifecycle and refuses an invalid transition', async () => {
    const stable = json<VersionJson>(
      await pylee([
        'versions',
        'status',
        'weather',
        '1.0.0',
        'stable',
        '--reason',
        'canary healthy',
        '--json',
      ]),
    );
    expect(stable).toMatchObject({ status: 'stable', allowedTransitions: ['deprecated', 'retired'] });

    const [back, text] = await Promise.all([
      pylee(['versions', 'status', 'weather', '1.0.0', 'development']),
      pylee(['versions', 'status', 'weather', '1.9.0', 'release-candidate']),
    ]);
    failed(back, 1, '1.0.0 cannot go from stable to development');
    expect(back.stderr).toContain('(invalid-transition)');
    expect(ok(text)).toBe(
      '@default/weather@1.9.0 is release-candidate; it can go to development, stable, deprecated, retired\n',
    );
  });

  it('deprecate records the message and replacement, and show and list say deprecated', async () => {
    const deprecated = await pylee([
      'versions',
      'deprecate',
      'weather',
      '1.0.0',
      '--message',
      'upgrade to 1.10.0: the v1 forecast API shuts down',
      '--replacement',
      '1.10.0',
    ]);
    expect(ok(deprecated)).toBe(
      'deprecated @default/weather@1.0.0: upgrade to 1.10.0: the v1 forecast API shuts down (replacement 1.10.0)\n',
    );

    const [show, detail, list] = await Promise.all([
      pylee(['versions', 'show', 'weather', '1.0.0']),
      pylee(['versions', 'show', 'weather', '1.0.0', '--json']),
      pylee(['versions', 'list', 'weather', '--status', 'deprecated']),
    ]);
    expect(ok(show)).toContain('@default/weather@1.0.0 · deprecated');
    expect(show.stdout).toMatch(
      /deprecated: .* UTC: upgrade to 1\.10\.0: the v1 forecast API shuts down \(replacement 1\.10\.0\)/,
    );
    expect(json<VersionJson>(detail).deprecation).toMatchObject({
      message: 'upgrade to 1.10.0: the v1 forecast API shuts down',
      replacement: '1.10.0',
    });
    expect(ok(list)).toMatch(/^1\.0\.0\s+deprecated\s+.*\s+deprecated$/m);

    const again = json<VersionJson>(
      await pylee(['versions', 'deprecate', 'weather', '1.0.0', '--message', 'use 1.10.0', '--json']),
    );
    expect(again.deprecation?.message).toBe('use 1.10.0');
  });
});

// Each of these changes nothing, so they run side by side.
describe('pylee templates', () => {
  it('create, versions create, servers create --template, usage and deprecate walk a template upgrade', async () => {
    expect(ok(await pylee('templates create http-service --name HTTP --owner platform'.split(' ')))).toBe(
      'created template @default/http-service\n',
    );
    const v1 = await pylee([
      ...'templates versions create http-service 1.0.0 --status stable --config'.split(' '),
      file('server.json'),
      ...'--variable LOG_LEVEL=info --variable DSN=a=b --secret WEATHER_API_KEY'.split(' '),
    ]);
    expect(ok(v1)).toBe('created @default/http-service@1.0.0 (stable)\n');

    const server = await pylee('servers create forecast --template @default/http-service@1.0.0'.split(' '));
    expect(ok(server)).toBe(
      'created @default/forecast (forecast) from template @default/http-service@1.0.0\n' +
        'secrets to provide: WEATHER_API_KEY (set each with PUT /api/v1/servers/forecast/secrets/NAME)\n',
    );
    expect(
      ok(await pylee('templates versions create http-service 1.1.0 --status stable'.split(' '))),
    ).toContain('@default/http-service@1.1.0 (stable)');
    const usage = ok(await pylee(['templates', 'usage', 'http-service']));
    expect(usage.split('\n')[0]).toMatch(/^SERVER\s+FOLLOWS\s+LATEST\s+BEHIND\s+MISSING SECRETS$/);
    expect(usage.split('\n')[1]).toMatch(/^forecast\s+1\.0\.0\s+1\.1\.0\s+yes\s+WEATHER_API_KEY$/);
    expect(ok(await pylee(['servers', 'show', 'forecast']))).toContain(
      'template:   @default/http-service@1.0.0 · behind: latest 1.1.0 · missing secrets: WEATHER_API_KEY',
    );

    const list = ok(await pylee(['templates', 'list']));
    expect(list).toMatch(/@default\/http-service\s+1\.1\.0\s+2\s+1\s+1/);
    const detail = json<{ versions: { version: string; variables: unknown[]; config: object }[] }>(
      await pylee(['templates', 'show', '@default/http-service', '--json']),
    );
    expect(detail.versions.map((v) => v.version)).toEqual(['1.1.0', '1.0.0']);
    expect(detail.versions[1]).toMatchObject({
      variables: [
        { name: 'LOG_LEVEL', default: 'info' },
        { name: 'DSN', default: 'a=b' },
      ],
      config: { packages: [{ identifier: '@acme/weather-mcp' }] },
    });

    expect(
      ok(await pylee(['templates', 'deprecate', 'http-service', '1.0.0', '--message', 'move to 1.1.0'])),
    ).toBe('@default/http-service@1.0.0 is deprecated\n');
    const warned = await pylee(
      'versions create forecast 1.0.0 --template @default/http-service@1.0.0'.split(' '),
    );
    expect(ok(warned)).toContain('from template @default/http-service@1.0.0');
    expect(warned.stderr).toContain('template @default/http-service@1.0.0 is deprecated');
    expect(ok(await pylee('templates versions set-status http-service 1.0.0 retired'.split(' ')))).toBe(
      '@default/http-service@1.0.0 is retired\n',
    );

    failed(
      await pylee('servers create nope --template @default/http-service@1.0.0'.split(' ')),
      1,
      '(template-retired)',
    );
    failed(
      await pylee('templates versions create http-service 1.1.0'.split(' ')),
      1,
      '(template-version-exists)',
    );
    failed(await pylee('templates deprecate http-service 1.1.0'.split(' ')), 2, '--message');
    failed(
      await pylee('templates versions create http-service 2.0.0 --variable NODEFAULT'.split(' ')),
      2,
      'must be NAME=DEFAULT',
    );
  });
});

describe.concurrent('pylee registry commands on bad input', () => {
  it('an unknown subcommand exits 2 with the group usage', async () => {
    const result = await pylee(['servers', 'frobnicate']);

    failed(result, 2, 'unknown command "servers frobnicate"');
    expect(result.stderr).toContain('pylee servers create <slug>');
  });

  it('a group without a subcommand, an unknown flag and a missing argument exit 2', async () => {
    const [group, flag, argument] = await Promise.all([
      pylee(['versions']),
      pylee(['servers', 'list', '--bogus']),
      pylee(['versions', 'show', 'weather']),
    ]);

    failed(group, 2, 'versions needs a command');
    failed(flag, 2, "Unknown option '--bogus'");
    expect(flag.stderr).toContain('Usage: pylee servers list [--all]');
    failed(argument, 2, 'versions show needs <version>');
  });

  it('versions next without --bump, or with an unknown one, exits 2', async () => {
    const [none, unknown] = await Promise.all([
      pylee(['versions', 'next', 'weather']),
      pylee(['versions', 'next', 'weather', '--bump', 'huge']),
    ]);

    failed(none, 2, 'versions next needs --bump');
    failed(unknown, 2, '--bump huge is not one of major, minor, patch');
  });

  it('versions list with --prerelease and --stable-only, or an unknown status, exits 2', async () => {
    const [both, status] = await Promise.all([
      pylee(['versions', 'list', 'weather', '--prerelease', '--stable-only']),
      pylee(['versions', 'status', 'weather', '1.0.0', 'shipped']),
    ]);

    failed(both, 2, '--prerelease and --stable-only exclude each other');
    failed(status, 2, 'status "shipped" is not one of development, release-candidate');
  });

  it('login without a token on stdin exits 2 and says how to give one', async () => {
    const result = await pylee(['login'], { token: null, configDir: file('no-token-login') });

    failed(result, 2, 'login needs a token');
    expect(fs.existsSync(file('no-token-login'))).toBe(false);
  });

  it('--help lists the commands with their flags and exits 0', async () => {
    const [top, group] = await Promise.all([pylee(['--help']), pylee(['versions', '--help'])]);

    expect(ok(top)).toContain(
      'pylee versions create <server> [version] [--notes-file F] [--config server.json]',
    );
    expect(top.stdout).toContain('pylee servers archive <slug>');
    expect(ok(group)).toContain('--bump patch|minor|major|prerelease');
    expect(group.stdout).not.toContain('servers create');
  });
});

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
      pylee(['versions', 'create', 'billing', version, '--config', file(`server-sdk-${sdk}.json`)]);
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
