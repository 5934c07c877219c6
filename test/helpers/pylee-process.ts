import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { socketPathFor } from '#core/queue/local-redis.ts';

/** The repository root: every `pylee` process runs from here, as `npm start` does. */
export const ROOT = path.resolve(import.meta.dirname, '../..');

// `npm test` and node_modules/.bin/vitest run on the Node 24 dev dependency; a test runner started
// by an older Node still spawns Pylee on the one it needs.
const NODE =
  Number(process.versions.node.split('.')[0]) >= 24
    ? process.execPath
    : path.join(ROOT, 'node_modules', '.bin', 'node');

/** The Node executable `pylee` runs on (also what a PATH without redis-server needs to contain). */
export const NODE_BIN = NODE;

const START_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 60_000;

/** Every child spawned here, so {@link killLeftovers} can end those a failed test left behind. */
const children = new Set<ChildProcess>();
/** The data dirs of those children, whose redis-server a killed `pylee` may have left running. */
const dataDirs = new Set<string>();

/**
 * The environment of a `pylee` process: the runner's, without its `PYLEE_*` variables (except
 * `PYLEE_TEST_*`), plus the given ones. An `undefined` value removes a variable.
 */
export function pyleeEnv(vars: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('PYLEE_') && !name.startsWith('PYLEE_TEST_')) continue;
    env[name] = value;
  }
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** A platform environment on `dataDir`: ports picked by the OS, info logs. */
export function platformEnv(
  dataDir: string,
  vars: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  return pyleeEnv({
    PYLEE_DATA_DIR: dataDir,
    PYLEE_API_PORT: '0',
    PYLEE_OTLP_PORT: '0',
    PYLEE_GATEWAY_PORT: '0',
    PYLEE_LOG_LEVEL: 'info',
    ...vars,
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One pino line of the process's stdout. */
export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface PyleeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Base URL of the API, when the api role runs. */
  readonly apiUrl: string | undefined;
  /** Base URL of the OTLP collector, when the collector role runs. */
  readonly otlpUrl: string | undefined;
  /** Base URL of the MCP gateway, when the gateway role runs. */
  readonly gatewayUrl: string | undefined;
  /** The admin token printed on first start, if one was. */
  readonly token: string | undefined;
  /** stdout lines so far (pino JSON lines and the plain token banner). */
  readonly lines: string[];
  /** stderr lines so far. */
  readonly stderr: string[];
  /** The JSON lines of stdout, parsed. */
  logs(): LogLine[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * Sends `signal` to the whole process group (Pylee, redis-server and any other child), as a
   * supervisor or the OOM killer's cgroup does, and resolves once Pylee has exited. Needs
   * `processGroup: true` at start.
   */
  killGroup(signal?: NodeJS.Signals): Promise<Exit>;
}

function collectLines(stream: NodeJS.ReadableStream | null, into: string[]): void {
  let partial = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    into.push(...parts);
  });
  stream?.on('end', () => {
    if (partial) into.push(partial);
    partial = '';
  });
}

function parseLogs(lines: string[]): LogLine[] {
  const logs: LogLine[] = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      // not a log line
    }
  }
  return logs;
}

function spawnPylee(args: string[], env: NodeJS.ProcessEnv, processGroup = false) {
  const child = spawn(NODE, ['cli/main.ts', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so a test can signal Pylee and its redis-server together.
    detached: processGroup,
  });
  children.add(child);
  if (env.PYLEE_DATA_DIR) dataDirs.add(env.PYLEE_DATA_DIR);
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, exited };
}

/**
 * Starts `pylee start` and waits (up to 60 s) for its `pylee started` log line. Rejects with
 * everything it printed when it exits or times out first.
 */
export async function startPylee(options: {
  env: NodeJS.ProcessEnv;
  args?: string[];
  timeoutMs?: number;
  /** Start it as the leader of a new process group (for {@link PyleeProcess.killGroup}). */
  processGroup?: boolean;
}): Promise<PyleeProcess> {
  const { child, exited } = spawnPylee(['start', ...(options.args ?? [])], options.env, options.processGroup);
  const lines: string[] = [];
  const stderr: string[] = [];
  collectLines(child.stdout, lines);
  collectLines(child.stderr, stderr);

  const output = () => `stdout:\n${lines.join('\n')}\nstderr:\n${stderr.join('\n')}`;
  const started = () => parseLogs(lines).find((l) => l.msg === 'pylee started');
  const deadline = Date.now() + (options.timeoutMs ?? START_TIMEOUT_MS);
  let exit: Exit | undefined;
  void exited.then((e) => (exit = e));
  while (!started()) {
    if (exit) throw new Error(`pylee exited (${exit.signal ?? exit.code}) before it started\n${output()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pylee did not start within ${options.timeoutMs ?? START_TIMEOUT_MS} ms\n${output()}`);
    }
    await sleep(50);
  }

  const listening = (what: string) => {
    for (const log of parseLogs(lines)) {
      const match = new RegExp(`^${what} listening on (http://\\S+)$`).exec(log.msg ?? '');
      if (match) return match[1];
    }
    return undefined;
  };
  const token = lines.map((l) => /\b(pyl_[A-Za-z0-9_-]+)/.exec(l.trim())?.[1]).find(Boolean);

  return {
    child,
    pid: child.pid as number,
    apiUrl: listening('api'),
    otlpUrl: listening('collector'),
    gatewayUrl: listening('gateway'),
    token,
    lines,
    stderr,
    logs: () => parseLogs(lines),
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const result = await Promise.race([exited, sleep(30_000, undefined)]);
      if (!result) {
        child.kill('SIGKILL');
        throw new Error(`pylee did not exit within 30 s of ${signal}\n${output()}`);
      }
      return result.code;
    },
    async killGroup(signal: NodeJS.Signals = 'SIGKILL') {
      if (!options.processGroup) throw new Error('killGroup needs startPylee({ processGroup: true })');
      try {
        process.kill(-(child.pid as number), signal);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
      return exited;
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `pylee <args>` to completion (killed after 60 s) and returns its exit code and output. */
export async function runPylee(
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { timeoutMs?: number } = {},
): Promise<RunResult> {
  const { child, exited } = spawnPylee(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? RUN_TIMEOUT_MS);
  const { code, signal } = await exited;
  clearTimeout(timer);
  return { code: signal ? null : code, stdout, stderr };
}

/**
 * Ends every `pylee` child still running (SIGTERM, then SIGKILL after 10 s) and any redis-server a
 * killed one left behind in its data dir; call it in `afterAll`.
 */
export async function killLeftovers(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const closed = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await closed;
      clearTimeout(timer);
    }),
  );
  for (const dataDir of dataDirs) {
    for (const pid of embeddedRedisProcesses(dataDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  dataDirs.clear();
}

/** Pids of the redis-server processes serving `dataDir` (its title names its socket). */
export function embeddedRedisProcesses(dataDir: string): number[] {
  return processesMentioning(socketPathFor(path.join(dataDir, 'redis')));
}

/** The pid of the embedded redis-server of a running platform on `dataDir`, asked over its socket. */
export async function embeddedRedisPid(dataDir: string): Promise<number> {
  const redis = new Redis(socketPathFor(path.join(dataDir, 'redis')), {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    if (!pid) throw new Error(`no process_id in INFO server:\n${info}`);
    return pid;
  } finally {
    redis.disconnect();
  }
}

/** Whether a process with this pid exists (a zombie still does until it is reaped). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Polls until the process is gone (reaping an orphan can take a moment); false when it never goes. */
export async function processGone(pid: number, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processExists(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Pids of processes whose command line contains `text` (other than this test process). */
export function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // exited meanwhile
    }
    if (cmdline.includes(text)) pids.push(Number(entry));
  }
  return pids;
}
