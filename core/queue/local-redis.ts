import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StartupError } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** Options of {@link startLocalRedis}. */
export interface LocalRedisOptions {
  /** Data directory of the server (AOF lives in `<dir>/appendonlydir`); created when missing. */
  dir: string;
  logger: Logger;
  /**
   * The `redis-server` executable.
   * @defaultValue `'redis-server'` (looked up on `PATH`)
   */
  bin?: string;
  /**
   * Stop a server already listening on the socket instead of refusing to start. Only for a caller
   * holding the data dir's lock, which proves no live Pylee owns that server.
   * @defaultValue false
   */
  replaceOrphan?: boolean;
}

/** A supervised `redis-server` child process listening on a unix socket only. */
export interface LocalRedis {
  /** Where the server listens; stays the same across restarts, so clients reconnect by themselves. */
  readonly socketPath: string;
  /** `unix://<socketPath>`, the form `PYLEE_REDIS_URL` accepts. */
  readonly url: string;
  /** The current child's pid; undefined while it is down or after {@link LocalRedis.stop}. */
  readonly pid: number | undefined;
  /**
   * Pylee is stopping: a server that exits from now on is not restarted (a restart pending is
   * cancelled). A signal to the whole process group reaches redis-server with Pylee, and it flushes
   * its append-only file and exits on it; restarting it would only hold the shutdown up. Idempotent.
   */
  stopRestarting(): void;
  /** Shuts the server down (SIGTERM, which flushes the AOF) and stops supervising it. Idempotent. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const RESTART_MIN_DELAY_MS = 250;
const RESTART_MAX_DELAY_MS = 5_000;
/** A child that stayed up this long is healthy again: the next crash restarts it after the minimum delay. */
const RESTART_RESET_AFTER_MS = 30_000;
/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
const OUTPUT_TAIL_CHARS = 4_000;

/**
 * Starts `redis-server` on a unix socket in `dir` (no TCP port) with the append-only file on, waits until it
 * answers PING, and restarts it with backoff whenever it dies unexpectedly. Rejects with a
 * {@link StartupError} when the binary is missing, the server does not come up within 10 s, or another
 * server already listens on the socket.
 */
export async function startLocalRedis(options: LocalRedisOptions): Promise<LocalRedis> {
  const bin = options.bin ?? 'redis-server';
  const dir = path.resolve(options.dir);
  const logger = options.logger.child({ component: 'redis-server' });
  fs.mkdirSync(dir, { recursive: true });
  const socketPath = socketPathFor(dir);

  if ((await ping(socketPath, 1_000)) !== undefined && options.replaceOrphan) {
    // The caller holds the data dir's lock, so no live Pylee owns this server: it outlived one
    // that was killed hard. SHUTDOWN flushes its append-only file, so nothing queued is lost.
    logger.warn(
      { socketPath },
      'stopping a redis-server left running by a Pylee process that did not exit cleanly',
    );
    await shutdownServer(socketPath);
  }
  if ((await ping(socketPath, 1_000)) !== undefined) {
    throw new StartupError(
      `a Redis server already listens on ${socketPath} for data dir ${dir}; stop the other Pylee process ` +
        '(or a leftover redis-server) using this data dir and start again',
    );
  }

  const args = [
    '--port', '0',
    '--unixsocket', socketPath,
    '--unixsocketperm', '700',
    '--dir', dir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    // AOF is the durable copy; RDB snapshots would only duplicate it.
    '--save', '',
    '--daemonize', 'no',
    '--protected-mode', 'yes',
    '--loglevel', 'warning',
  ]; // prettier-ignore

  let output = '';
  let child: ChildProcess | undefined;
  let spawnedAt = 0;
  let stopping = false;
  /** Set by {@link LocalRedis.stopRestarting}: Pylee is stopping, the server may go before it. */
  let draining = false;
  let restartDelay = RESTART_MIN_DELAY_MS;
  let restartTimer: NodeJS.Timeout | undefined;
  let stopped: Promise<void> | undefined;

  const capture = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    output = (output + text).slice(-OUTPUT_TAIL_CHARS);
    for (const line of text.split('\n')) {
      if (line.trim() !== '') logger.debug({ line }, 'redis-server output');
    }
  };

  const launch = (): ChildProcess => {
    removeSocket(socketPath);
    // In Pylee's process group on purpose. A signal to the group (Ctrl-C, a supervisor's `kill -- -pgid`)
    // then reaches redis-server too: on SIGINT/SIGTERM it flushes its append-only file and exits, and
    // Pylee, which may see it go first, stops without it (stopRestarting; the store's clients give up
    // at once); on SIGKILL nothing outlives Pylee. A server of its own group would survive a SIGKILL of
    // Pylee's (an orphan holding the socket), and it would not escape systemd's control-group kill or a
    // container's end anyway, which signal every process whatever its group.
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout?.on('data', capture);
    proc.stderr?.on('data', capture);
    spawnedAt = Date.now();
    child = proc;
    return proc;
  };

  const supervise = (proc: ChildProcess): void => {
    let handled = false;
    const onDown = (code: number | null, signal: NodeJS.Signals | null, error?: Error): void => {
      if (handled || proc !== child) return;
      handled = true;
      child = undefined;
      if (stopping) return;
      if (draining) {
        logger.info({ code, signal }, 'redis-server stopped while Pylee stops; not restarting it');
        return;
      }
      if (Date.now() - spawnedAt >= RESTART_RESET_AFTER_MS) restartDelay = RESTART_MIN_DELAY_MS;
      const delay = restartDelay;
      restartDelay = Math.min(restartDelay * 2, RESTART_MAX_DELAY_MS);
      const detail = { code, signal, err: error, output: output.slice(-1_000), restartInMs: delay };
      // Exit code 0 is a shutdown someone asked for (SIGTERM, SIGINT, SHUTDOWN). When the signal went
      // to the whole process group, Pylee's own handler runs within the delay and cancels the restart,
      // so the warning waits until the restart really happens.
      const requested = code === 0 && signal === null;
      if (!requested) logger.warn(detail, 'redis-server exited unexpectedly; restarting it');
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        if (stopping || draining) return;
        if (requested)
          logger.warn(detail, 'redis-server was stopped by something other than Pylee; restarting it');
        supervise(launch());
      }, delay);
    };
    proc.on('exit', (code, signal) => onDown(code, signal));
    proc.on('error', (error) => onDown(null, null, error));
  };

  // Last resort when the parent exits without calling stop(); a SIGKILLed parent cannot do even this.
  const onProcessExit = (): void => {
    child?.kill('SIGTERM');
  };

  const first = launch();
  try {
    await waitUntilReady(first, socketPath, bin, () => output);
  } catch (error) {
    child = undefined;
    if (isAlive(first)) first.kill('SIGKILL');
    throw error;
  }
  supervise(first);
  process.on('exit', onProcessExit);
  logger.debug({ socketPath, dir, pid: first.pid }, 'redis-server started');

  const stopChild = async (proc: ChildProcess): Promise<void> => {
    if (!isAlive(proc)) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => {
      logger.warn(
        { pid: proc.pid },
        `redis-server did not exit within ${STOP_TIMEOUT_MS / 1000} s; killing it`,
      );
      proc.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  return {
    socketPath,
    url: `unix://${socketPath}`,
    get pid() {
      return child && isAlive(child) ? child.pid : undefined;
    },
    stopRestarting() {
      if (draining || stopping) return;
      draining = true;
      if (restartTimer) {
        clearTimeout(restartTimer);
        restartTimer = undefined;
        logger.info('redis-server stopped while Pylee stops (the signal reached both); not restarting it');
      }
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        clearTimeout(restartTimer);
        process.off('exit', onProcessExit);
        const proc = child;
        if (proc) await stopChild(proc);
        child = undefined;
        logger.debug({ socketPath }, 'redis-server stopped');
      })();
      return stopped;
    },
  };
}

/** `<dir>/redis.sock`, or a per-directory name in the temp dir when that path is too long for a unix socket. */
export function socketPathFor(dir: string): string {
  const inDir = path.join(dir, 'redis.sock');
  if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH_BYTES) return inDir;
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `pylee-redis-${hash}.sock`);
}

function isAlive(proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null;
}

function removeSocket(socketPath: string): void {
  fs.rmSync(socketPath, { force: true });
}

async function waitUntilReady(
  proc: ChildProcess,
  socketPath: string,
  bin: string,
  output: () => string,
): Promise<void> {
  let failure: Error | undefined;
  proc.on('error', (error: NodeJS.ErrnoException) => {
    failure ??=
      error.code === 'ENOENT'
        ? new StartupError(
            `${bin} was not found${bin.includes('/') ? '' : ' on PATH'}; install it ` +
              '(Debian/Ubuntu: apt-get install redis-server) or set PYLEE_REDIS_URL to use an existing Redis',
            { cause: error },
          )
        : new StartupError(`could not start ${bin}: ${error.message}`, { cause: error });
  });
  proc.once('exit', (code, signal) => {
    failure ??= new StartupError(
      `${bin} exited during start-up (${signal ?? `code ${code}`}); its last output: ${tail(output())}`,
    );
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (failure) throw failure;
    // Until the AOF is loaded the server answers -LOADING; it is ready once it answers +PONG.
    if ((await ping(socketPath, 500)) === 'pong') return;
    if (failure) throw failure;
    if (Date.now() > deadline) {
      throw new StartupError(
        `${bin} did not answer on ${socketPath} within ${START_TIMEOUT_MS / 1000} s; ` +
          `its last output: ${tail(output())}`,
      );
    }
    await sleep(50);
  }
}

function tail(output: string): string {
  const trimmed = output.trim().slice(-1_000);
  return trimmed === '' ? '(none)' : trimmed;
}

/**
 * Sends a RESP PING over the socket: `'pong'` when the server is ready, `'other'` for any other reply (still a
 * live server, e.g. `-LOADING` or `-NOAUTH`), undefined when nothing answers.
 */
async function shutdownServer(socketPath: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = net.createConnection({ path: socketPath });
    socket.once('connect', () => socket.end('SHUTDOWN\r\n'));
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
  });
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline && (await ping(socketPath, 500)) !== undefined) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

function ping(socketPath: string, timeoutMs: number): Promise<'pong' | 'other' | undefined> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ path: socketPath });
    const done = (reply: 'pong' | 'other' | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString('utf8').startsWith('+PONG') ? 'pong' : 'other'));
    socket.once('error', () => done(undefined));
    socket.once('close', () => done(undefined));
  });
}
