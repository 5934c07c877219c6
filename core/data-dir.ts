import fs from 'node:fs';
import path from 'node:path';
import { StartupError } from './errors.ts';

export interface DataDirLock {
  release(): void;
}

/**
 * Makes sure the data dir exists and is writable, and takes its lock: embedded PGlite and chDB
 * each allow one process per directory, and a second one would corrupt them.
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
  const lockFile = path.join(dir, 'pylee.pid');
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        throw new StartupError(`cannot lock PYLEE_DATA_DIR ${dir}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      const pid = Number(fs.readFileSync(lockFile, 'utf8'));
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new StartupError(
          `PYLEE_DATA_DIR ${dir} is in use by another Pylee process (pid ${pid}); stop it, or give this one its own PYLEE_DATA_DIR`,
        );
      }
      fs.rmSync(lockFile, { force: true }); // left by a process that died
    }
  }
  return {
    release() {
      if (fs.existsSync(lockFile) && fs.readFileSync(lockFile, 'utf8') === String(process.pid))
        fs.rmSync(lockFile);
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
