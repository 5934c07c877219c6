import fs from 'node:fs';
import path from 'node:path';
import { StartupError } from './errors.ts';

export interface DataDirLock {
  release(): void;
}

/** The lock file: the holder's pid on the first line (what pid-file readers expect), then its start time. */
export const LOCK_FILE = 'pylee.pid';

/** Who a lock file names: a pid and, where `/proc` exists, that process's start time. */
export interface LockHolder {
  pid: number;
  /** Field 22 of `/proc/<pid>/stat` (clock ticks after boot); undefined without `/proc` or in an old lock file. */
  startTime: string | undefined;
}

/**
 * Makes sure the data dir exists and is writable, and takes its lock: embedded PGlite and chDB
 * each allow one process per directory, and a second one would corrupt them.
 *
 * The lock is `<dir>/pylee.pid`. A lock left by a process that is gone is taken over: one that no
 * longer exists, a zombie its parent has not reaped yet (a supervisor that restarts Pylee right
 * after a SIGKILL), or a live process that is not the holder because its pid was reused (its start
 * time differs from the one recorded). Without `/proc` only `kill(pid, 0)` can tell.
 */
export function lockDataDir(dir: string): DataDirLock {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (error) {
    throw new StartupError(
      `PYLEE_DATA_DIR ${dir} is not a writable directory (${(error as NodeJS.ErrnoException).code}); fix its permissions or point PYLEE_DATA_DIR elsewhere`,
      { cause: error },
    );
  }
  const lockFile = path.join(dir, LOCK_FILE);
  const self: LockHolder = { pid: process.pid, startTime: processInfo(process.pid)?.startTime };
  const content = formatLock(self);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lockFile, content, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 1) {
        throw new StartupError(`cannot lock PYLEE_DATA_DIR ${dir}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      const holder = readLock(lockFile);
      if (holder && holderIsAlive(holder, self)) {
        throw new StartupError(
          `PYLEE_DATA_DIR ${dir} is in use by another Pylee process (pid ${holder.pid}); stop it, or give this one its own PYLEE_DATA_DIR`,
        );
      }
      fs.rmSync(lockFile, { force: true }); // left by a process that died
    }
  }
  return {
    release() {
      if (fs.existsSync(lockFile) && fs.readFileSync(lockFile, 'utf8') === content) fs.rmSync(lockFile);
    },
  };
}

function formatLock(holder: LockHolder): string {
  return `${holder.pid}\n${holder.startTime === undefined ? '' : `start-time ${holder.startTime}\n`}`;
}

/** The holder a lock file names; undefined when it names none (empty or garbled: a write cut short). */
export function readLock(lockFile: string): LockHolder | undefined {
  let text: string;
  try {
    text = fs.readFileSync(lockFile, 'utf8');
  } catch {
    return undefined;
  }
  const [first, ...rest] = text.split('\n');
  const pid = Number(first?.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const startTime = rest.map((line) => /^start-time (\d+)$/.exec(line.trim())?.[1]).find(Boolean);
  return { pid, startTime };
}

function holderIsAlive(holder: LockHolder, self: LockHolder): boolean {
  // Our own pid with another start time: a pid namespace (a container) that gave us the same pid again.
  if (holder.pid === self.pid) return false;
  if (!fs.existsSync('/proc/self/stat')) return signalable(holder.pid);
  const info = processInfo(holder.pid);
  if (!info || info.state === 'Z' || info.state === 'X') return false;
  // An old lock file without a start time cannot tell a reused pid apart: treat it as held.
  return holder.startTime === undefined || holder.startTime === info.startTime;
}

/**
 * The state (`R`, `S`, `Z` for a zombie, `X` for dead, …) and start time of a process, from
 * `/proc/<pid>/stat`; undefined when there is no such process (or no `/proc`).
 */
export function processInfo(pid: number): { state: string; startTime: string } | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // `pid (comm) state ppid …`: comm may contain spaces and parentheses, so fields count from the last `)`.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19]; // field 22 of the whole line
  if (!state || !startTime) return undefined;
  return { state, startTime };
}

function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
