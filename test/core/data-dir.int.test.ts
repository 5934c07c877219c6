import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir, processInfo, readLock } from '#core/data-dir.ts';
import { StartupError } from '#core/errors.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// The data dir's lock against the processes a lock file may name: gone, a zombie not yet reaped,
// alive and the holder, alive but another program that got the pid again.

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function lockFileIn(label: string): { dir: string; file: string } {
  const dir = tempDir(`pylee-lock-${label}`);
  dirs.push(dir);
  return { dir, file: path.join(dir, LOCK_FILE) };
}

/** Another live program (not Pylee). */
async function liveProcess(): Promise<number> {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(child);
  await new Promise((resolve) => child.once('spawn', resolve));
  return child.pid as number;
}

/** The `/proc/<pid>/stat` state letter, read here independently of the code under test. */
function stateOf(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

const lockOf = (pid: number, startTime: string | undefined) =>
  `${pid}\n${startTime === undefined ? '' : `start-time ${startTime}\n`}`;

describe('lockDataDir', () => {
  it('writes its pid and start time, and release removes only its own lock', () => {
    const { dir, file } = lockFileIn('own');

    const lock = lockDataDir(dir);

    expect(readLock(file)).toEqual({ pid: process.pid, startTime: processInfo(process.pid)?.startTime });
    expect(fs.readFileSync(file, 'utf8').split('\n')[0]).toBe(String(process.pid));
    lock.release();
    expect(fs.existsSync(file)).toBe(false);

    const again = lockDataDir(dir);
    fs.writeFileSync(file, lockOf(1, '1'));
    again.release();
    expect(fs.existsSync(file)).toBe(true);
  });

  it('refuses a lock whose holder is alive, naming its pid (also in a lock file without a start time)', async () => {
    const { dir, file } = lockFileIn('live');
    const pid = await liveProcess();

    for (const content of [lockOf(pid, processInfo(pid)?.startTime), lockOf(pid, undefined)]) {
      fs.writeFileSync(file, content);
      expect(() => lockDataDir(dir)).toThrow(StartupError);
      expect(() => lockDataDir(dir)).toThrow(`is in use by another Pylee process (pid ${pid})`);
      expect(fs.readFileSync(file, 'utf8')).toBe(content);
    }
  });

  it('takes over a lock naming a live process with another start time: the pid was reused', async () => {
    const { dir, file } = lockFileIn('reused');
    const pid = await liveProcess();
    const startTime = processInfo(pid)?.startTime as string;
    fs.writeFileSync(file, lockOf(pid, String(Number(startTime) - 1)));

    const lock = lockDataDir(dir);

    expect(readLock(file)?.pid).toBe(process.pid);
    expect(stateOf(pid)).toMatch(/^[RS]$/); // the other program is untouched
    lock.release();
  });

  it('takes over the lock of a process that is gone', async () => {
    const { dir, file } = lockFileIn('gone');
    const child = spawn('true', { stdio: 'ignore' });
    await new Promise((resolve) => child.once('close', resolve));
    fs.writeFileSync(file, lockOf(child.pid as number, '12345'));

    const lock = lockDataDir(dir);

    expect(readLock(file)?.pid).toBe(process.pid);
    lock.release();
  });

  it('takes over the lock of a zombie its parent has not reaped yet', async () => {
    const { dir, file } = lockFileIn('zombie');
    // `sh` starts a child, then becomes `sleep`, which never reaps it. The child exits only once its
    // parent is `sleep`: had it exited sooner, `sh` itself could have reaped it (seen under load).
    const child = 'p=$$; (while [ "$(cat /proc/$p/comm)" != sleep ]; do sleep 0.01; done) & echo $!';
    const parent = spawn('sh', ['-c', `${child}; exec sleep 30`], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(parent);
    const line = await new Promise<string>((resolve) =>
      parent.stdout?.once('data', (chunk: Buffer) => resolve(chunk.toString())),
    );
    const zombie = Number(line.trim());
    for (let i = 0; stateOf(zombie) !== 'Z'; i++) {
      if (i > 100) throw new Error(`pid ${zombie} did not become a zombie (state ${stateOf(zombie)})`);
      await sleep(20);
    }
    fs.writeFileSync(file, lockOf(zombie, processInfo(zombie)?.startTime));

    const lock = lockDataDir(dir);

    expect(stateOf(zombie)).toBe('Z');
    expect(readLock(file)?.pid).toBe(process.pid);
    lock.release();
  });

  it('takes over an empty or garbled lock file (a write cut short)', () => {
    const { dir, file } = lockFileIn('garbled');
    for (const content of ['', 'not a pid\n']) {
      fs.writeFileSync(file, content);
      lockDataDir(dir).release();
    }
  });
});
