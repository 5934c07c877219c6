import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stripVTControlCharacters } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, readLock } from '#core/data-dir.ts';
import {
  embeddedRedisPid,
  embeddedRedisProcesses,
  killLeftovers,
  NODE_BIN,
  platformEnv,
  processesMentioning,
  processExists,
  processGone,
  ROOT,
  runPylee,
  startPylee,
  type PyleeProcess,
} from '../helpers/pylee-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// Each `pylee start` here is a real process on embedded PGlite, chDB and a redis-server child, so
// the tests that can share one process do, in order.

const dirs: string[] = [];
function freshDir(label: string): string {
  const dir = tempDir(`pylee-start-${label}`);
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  await killLeftovers();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

async function getJson(url: string, token?: string) {
  const response = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const messages = (pylee: PyleeProcess) => pylee.logs().map((log) => log.msg);

/** The state letter of `/proc/<pid>/stat` (`Z`: a zombie); undefined once the process is reaped. */
function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Asserts a clean stop: exit 0, `stopped` logged, the data dir unlocked, redis-server gone. */
async function expectCleanStop(pylee: PyleeProcess, dataDir: string, signal: NodeJS.Signals) {
  const redisPid = await embeddedRedisPid(dataDir);
  expect(processExists(redisPid)).toBe(true);

  const code = await pylee.stop(signal);

  expect(code, pylee.stderr.join('\n')).toBe(0);
  expect(pylee.logs()).toContainEqual(expect.objectContaining({ msg: 'shutting down', signal }));
  expect(messages(pylee)).toContain('stopped');
  expect(fs.existsSync(path.join(dataDir, 'pylee.pid'))).toBe(false);
  expect(await processGone(redisPid)).toBe(true);
  expect(embeddedRedisProcesses(dataDir)).toEqual([]);
}

describe('pylee start on an empty data dir', () => {
  let dataDir: string;
  let pylee: PyleeProcess;
  let firstToken: string;

  beforeAll(async () => {
    dataDir = freshDir('all');
    pylee = await startPylee({ env: platformEnv(dataDir) });
  });

  it('starts every role on embedded stores and reports them ready', async () => {
    expect(pylee.logs().find((log) => log.msg === 'pylee started')).toMatchObject({
      roles: ['collector', 'gateway', 'api', 'alerts'],
      startupMs: expect.any(Number),
    });
    expect(pylee.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(pylee.otlpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(pylee.otlpUrl).not.toBe(pylee.apiUrl);

    const ready = await getJson(`${pylee.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ready',
      stores: {
        postgres: { ok: true, driver: 'pglite' },
        clickhouse: { ok: true, driver: 'chdb' },
        redis: { ok: true, driver: 'embedded' },
      },
    });
    for (const url of [pylee.apiUrl, pylee.otlpUrl]) {
      const health = await getJson(`${url}/healthz`);
      expect(health, `${url}/healthz`).toEqual({ status: 200, body: { status: 'ok' } });
    }
  });

  it('serves Prometheus metrics of its HTTP requests and store operations on /metrics', async () => {
    await fetch(`${pylee.apiUrl}/readyz`);

    const response = await fetch(`${pylee.apiUrl}/metrics`);
    const text = await response.text();

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(text).toContain('http_server_request_duration');
    expect(text).toContain('pylee_store_operation_duration');
  });

  it('prints a generated admin token once, and that token is an admin of @default', async () => {
    expect(pylee.token).toMatch(/^pyl_[A-Za-z0-9_-]{20,}$/);
    firstToken = pylee.token as string;
    const banner = pylee.lines.findIndex((line) => line.includes('Created org @default with an admin token'));
    expect(banner).toBeGreaterThanOrEqual(0);
    expect(
      pylee.lines
        .slice(banner + 1)
        .find((line) => line.trim() !== '')
        ?.trim(),
    ).toBe(firstToken);
    // Printed that once: never in a log line, never on stderr.
    expect(pylee.lines.filter((line) => line.includes(firstToken))).toHaveLength(1);
    expect(pylee.stderr.join('\n')).not.toContain(firstToken);

    const me = await getJson(`${pylee.apiUrl}/api/v1/me`, firstToken);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ org: { slug: 'default' }, permissions: ['admin'] });
  });

  it('refuses a second process on the same data dir while the first runs', async () => {
    const second = await runPylee(['start'], platformEnv(dataDir));

    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('in use by another Pylee process');
    expect(second.stderr).toContain(`pid ${pylee.pid}`);
    // The first one is untouched: still locked by it, still ready.
    expect(readLock(path.join(dataDir, LOCK_FILE))?.pid).toBe(pylee.pid);
    expect((await fetch(`${pylee.apiUrl}/readyz`)).status).toBe(200);
  });

  it('stops cleanly on SIGTERM: exit code 0, data dir unlocked, redis-server gone', async () => {
    await expectCleanStop(pylee, dataDir, 'SIGTERM');
  });

  describe('started again on the same data dir', () => {
    let again: PyleeProcess;

    beforeAll(async () => {
      again = await startPylee({ env: platformEnv(dataDir) });
    });

    it('prints no token, and the token of the first start still works', async () => {
      expect(again.token).toBeUndefined();
      expect(again.lines.join('\n')).not.toContain('Created org');

      const me = await getJson(`${again.apiUrl}/api/v1/me`, firstToken);
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ org: { slug: 'default' }, permissions: ['admin'] });
    });

    it('stops cleanly on SIGINT as well', async () => {
      await expectCleanStop(again, dataDir, 'SIGINT');
    });
  });
});

describe('pylee start with PYLEE_BOOTSTRAP_TOKEN and --role api', () => {
  const bootstrapToken = 'start-test-bootstrap-token-0123456789';
  let pylee: PyleeProcess;

  beforeAll(async () => {
    pylee = await startPylee({
      env: platformEnv(freshDir('api'), { PYLEE_BOOTSTRAP_TOKEN: bootstrapToken }),
      args: ['--role', 'api'],
    });
  });

  afterAll(async () => {
    await pylee?.stop();
  });

  it('makes PYLEE_BOOTSTRAP_TOKEN the admin token and prints no token', async () => {
    expect(pylee.token).toBeUndefined();
    expect(pylee.lines.join('\n')).not.toContain('Created org');
    expect(pylee.lines.join('\n')).not.toContain(bootstrapToken);

    const me = await getJson(`${pylee.apiUrl}/api/v1/me`, bootstrapToken);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ org: { slug: 'default' }, permissions: ['admin'] });
  });

  it('--role api starts only the api', async () => {
    expect(messages(pylee).some((msg) => msg?.startsWith('api listening'))).toBe(true);
    expect(messages(pylee).some((msg) => msg?.startsWith('collector listening'))).toBe(false);
    expect(messages(pylee)).not.toContain('alerts workers started');
    expect(pylee.logs().find((log) => log.msg === 'pylee started')).toMatchObject({ roles: ['api'] });
    expect((await fetch(`${pylee.apiUrl}/healthz`)).status).toBe(200);
  });
});

describe('pylee start --role collector', () => {
  it('starts only the collector', async () => {
    const pylee = await startPylee({
      env: platformEnv(freshDir('collector')),
      args: ['--role', 'collector'],
    });
    try {
      expect(messages(pylee).some((msg) => msg?.startsWith('collector listening'))).toBe(true);
      expect(messages(pylee).some((msg) => msg?.startsWith('api listening'))).toBe(false);
      expect(pylee.apiUrl).toBeUndefined();
      expect(pylee.logs().find((log) => log.msg === 'pylee started')).toMatchObject({
        roles: ['collector'],
      });
      expect((await fetch(`${pylee.otlpUrl}/healthz`)).status).toBe(200);
    } finally {
      expect(await pylee.stop()).toBe(0);
    }
  });
});

describe.concurrent('bad configuration stops the start with the variable and why, creating nothing', () => {
  const cases: { name: string; vars?: Record<string, string>; args?: string[]; stderr: string[] }[] = [
    { name: 'a port above 65535', vars: { PYLEE_API_PORT: '99999' }, stderr: ['PYLEE_API_PORT', 'port'] },
    { name: 'an unknown log level', vars: { PYLEE_LOG_LEVEL: 'loud' }, stderr: ['PYLEE_LOG_LEVEL', 'loud'] },
    {
      name: 'a database URL that is not Postgres',
      vars: { PYLEE_DATABASE_URL: 'mysql://x' },
      stderr: ['PYLEE_DATABASE_URL', 'mysql:', 'postgres:'],
    },
    {
      name: 'a bootstrap token shorter than 20 characters',
      vars: { PYLEE_BOOTSTRAP_TOKEN: 'short' },
      stderr: ['PYLEE_BOOTSTRAP_TOKEN', 'at least 20 characters'],
    },
    {
      name: 'an unknown PYLEE_ variable',
      vars: { PYLEE_API_PROT: '1' },
      stderr: ['PYLEE_API_PROT', 'unknown variable', 'did you mean PYLEE_API_PORT?'],
    },
    {
      name: 'a rate-limit window that is not a duration',
      vars: { PYLEE_RATE_LIMIT_WINDOW: 'soon' },
      stderr: ['PYLEE_RATE_LIMIT_WINDOW', 'soon', 'not a duration'],
    },
    { name: 'an unknown --role', args: ['--role', 'bogus'], stderr: ['PYLEE_ROLE', 'bogus'] },
  ];

  for (const { name, vars, args, stderr } of cases) {
    it(`refuses ${name}`, async () => {
      const dataDir = path.join(freshDir('config'), 'data');

      const result = await runPylee(['start', ...(args ?? [])], platformEnv(dataDir, vars));

      expect(result.code, result.stderr).toBe(78);
      expect(result.stderr).toMatch(/^pylee: invalid configuration: /);
      for (const text of stderr) expect(result.stderr).toContain(text);
      expect(fs.existsSync(dataDir)).toBe(false);
    });
  }
});

describe('pylee start on an unusable machine', () => {
  it('fails with a sentence naming PYLEE_DATA_DIR when the data dir cannot be written', async () => {
    const parent = freshDir('unwritable');
    fs.writeFileSync(path.join(parent, 'file'), 'not a directory');
    const dataDir = path.join(parent, 'file', 'data');

    const result = await runPylee(['start'], platformEnv(dataDir));

    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain(`PYLEE_DATA_DIR ${dataDir} is not a writable directory`);
    expect(result.stderr).not.toMatch(/\n\s+at /); // a sentence, not a stack trace
  });

  it('says how to install redis-server when it is not on PATH, and leaves nothing running', async () => {
    const parent = freshDir('no-redis');
    const bin = path.join(parent, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(NODE_BIN, path.join(bin, 'node'));
    const dataDir = path.join(parent, 'data');

    const result = await runPylee(['start'], platformEnv(dataDir, { PATH: bin }));

    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain('redis-server was not found');
    expect(result.stderr).toContain('apt-get install redis-server');
    expect(fs.existsSync(path.join(dataDir, 'pylee.pid'))).toBe(false);
    expect(embeddedRedisProcesses(dataDir)).toEqual([]);
    expect(processesMentioning(dataDir)).toEqual([]);
  });
});

describe('pylee start interrupted', () => {
  it('stops cleanly when signalled while its stores are still opening', async () => {
    const dataDir = freshDir('early-signal');
    const child = spawn(NODE_BIN, ['cli/main.ts', 'start'], {
      cwd: ROOT,
      env: platformEnv(dataDir),
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    // redis-server is the first store up; PGlite and chDB are still opening when it appears.
    while (embeddedRedisProcesses(dataDir).length === 0) await sleep(20);
    const [redisPid] = embeddedRedisProcesses(dataDir);
    child.kill('SIGTERM');

    expect(await exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'pylee.pid'))).toBe(false);
    expect(await processGone(redisPid as number)).toBe(true);
  });

  it('starts again at once after a hard kill, while the killed process is still an unreaped zombie', async () => {
    const dataDir = freshDir('hard-kill');
    // A parent that never reaps, as a supervisor that restarts Pylee before reaping it: `sh` starts
    // Pylee in the background, prints its pid and becomes `sleep`.
    const parent = spawn('sh', ['-c', '"$0" cli/main.ts start & echo "$!"; exec sleep 600', NODE_BIN], {
      cwd: ROOT,
      env: platformEnv(dataDir),
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      let output = '';
      parent.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      while (!output.includes('"msg":"pylee started"')) {
        expect(parent.exitCode).toBeNull();
        await sleep(50);
      }
      const pid = Number(output.split('\n')[0]);
      const token = /\b(pyl_[A-Za-z0-9_-]+)/.exec(output)?.[1];
      const orphan = await embeddedRedisPid(dataDir);
      expect(readLock(path.join(dataDir, LOCK_FILE))?.pid).toBe(pid);

      process.kill(pid, 'SIGKILL');
      while (procState(pid) !== 'Z') await sleep(10);
      const second = await startPylee({ env: platformEnv(dataDir) });

      expect(procState(pid)).toBe('Z'); // never reaped: the lock was taken over from a zombie
      expect(await processGone(orphan)).toBe(true);
      const me = await getJson(`${second.apiUrl}/api/v1/me`, token);
      expect(me.status).toBe(200);
      await expectCleanStop(second, dataDir, 'SIGTERM');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('pylee start on a terminal', () => {
  it('prints readable log lines and ends start-up with the addresses and where the admin token is', async () => {
    const dataDir = freshDir('tty');
    // `script` gives Pylee a pseudo-terminal as stdout, as a person's shell does.
    const child = spawn('script', ['-qfec', `"${NODE_BIN}" cli/main.ts start`, '/dev/null'], {
      cwd: ROOT,
      env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: undefined }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise((resolve) => child.once('close', resolve));
    try {
      while (!output.includes('Stop with Ctrl-C.')) {
        expect(child.exitCode).toBeNull();
        await sleep(50);
      }
      const text = stripVTControlCharacters(output).replaceAll('\r', '');
      const lines = text.split('\n').filter((line) => line.trim() !== '');
      expect(lines.filter((line) => line.trim().startsWith('{'))).toEqual([]);
      expect(lines).toContainEqual(expect.stringMatching(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: pylee started /));
      const api = /Web UI {7}(http:\/\/127\.0\.0\.1:\d+)\//.exec(text)?.[1];
      expect(api).toBeDefined();
      expect(text).toContain(`API docs     ${api}/api/docs`);
      expect(text).toMatch(/OTLP\/HTTP {4}http:\/\/127\.0\.0\.1:\d+ {2}\(POST \/v1\/traces/);
      expect(text).toMatch(
        /MCP gateway {2}http:\/\/127\.0\.0\.1:\d+\/\{org\}\/\{server\}\/\{environment\}\/mcp/,
      );
      expect(text).toContain('Admin token  printed above, this once: keep it safe');
      expect(text).toMatch(/Created org @default with an admin token[^]*pyl_[A-Za-z0-9_-]{20,}/);
      expect((await fetch(`${api}/api/docs`)).status).toBe(200);
    } finally {
      // Ctrl-C at the terminal.
      child.stdin?.write('\u0003');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    expect(stripVTControlCharacters(output)).toMatch(/INFO: stopped/);
  });
});
