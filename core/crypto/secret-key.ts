import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import { StartupError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { SECRET_KEY_BYTES } from './secret-box.ts';

/** The key file's name inside the data dir. */
export const SECRET_KEY_FILE = 'secret.key';
const KEY_FILE_CONTENT = /^([0-9a-fA-F]{64})\r?\n?$/;

/**
 * The key that seals secrets: `PYLEE_SECRET_KEY` when set, else `<dataDir>/secret.key` (64 hex
 * digits), created on first use with 32 random bytes and mode 0600.
 *
 * Creation is atomic: the key is written to a temporary file (`wx`, 0600) and hard-linked into
 * place, so two processes starting at once agree on one key and neither ever reads a half-written
 * file. A key file that other users can access, or that does not hold a key, stops the start with
 * a {@link StartupError} saying how to fix it. The key itself is never logged.
 */
export function loadSecretKey(config: Pick<Config, 'secretKey' | 'dataDir'>, logger?: Logger): Buffer {
  if (config.secretKey) {
    if (config.secretKey.length !== SECRET_KEY_BYTES) {
      throw new StartupError(`PYLEE_SECRET_KEY must be ${SECRET_KEY_BYTES} bytes`);
    }
    return config.secretKey;
  }
  const file = path.join(config.dataDir, SECRET_KEY_FILE);
  const existing = readKeyFile(file);
  if (existing) return existing;

  const key = randomBytes(SECRET_KEY_BYTES);
  if (createKeyFile(file, key)) {
    logger?.info(
      { path: file },
      `created the secret key file ${file}; back it up with the database: stored secrets cannot be opened without it`,
    );
    return key;
  }
  // Another process created it first: use its key.
  const theirs = readKeyFile(file);
  if (!theirs) throw new StartupError(`${file} disappeared while Pylee was creating it; start again`);
  return theirs;
}

/** The key in `file`, or `undefined` when there is no such file. */
function readKeyFile(file: string): Buffer | undefined {
  let content: string;
  let mode: number;
  try {
    mode = fs.statSync(file).mode;
    content = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StartupError(
      `cannot read the secret key file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); make it readable by the user Pylee runs as`,
      { cause: error },
    );
  }
  // Windows has no POSIX modes to check.
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new StartupError(
      `the secret key file ${file} is accessible by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); restrict it with \`chmod 600 ${file}\``,
    );
  }
  // The message never quotes the content: it may be a key with a typo.
  const match = KEY_FILE_CONTENT.exec(content);
  if (!match) {
    throw new StartupError(
      `the secret key file ${file} does not hold a key (expected 64 hex digits, e.g. from \`openssl rand -hex 32\`); restore the original file, since secrets sealed with another key cannot be opened, or set PYLEE_SECRET_KEY`,
    );
  }
  return Buffer.from(match[1] as string, 'hex');
}

/** Publishes `key` as `file` unless it exists; false when another process got there first. */
function createKeyFile(file: string, key: Buffer): boolean {
  const dir = path.dirname(file);
  const temporary = path.join(dir, `.${SECRET_KEY_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(temporary, `${key.toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
    try {
      fs.linkSync(temporary, file);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    }
    // A file system without hard links: exclusive create of the file itself.
    try {
      fs.writeFileSync(file, `${key.toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  } catch (error) {
    throw new StartupError(
      `cannot create the secret key file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); make ${dir} writable or set PYLEE_SECRET_KEY`,
      { cause: error },
    );
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}
