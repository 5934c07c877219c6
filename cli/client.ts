import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '#core/errors.ts';

/** Where the client looks for the API when neither a flag, `PYLEE_URL` nor a saved login says. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ClientOptions {
  url: string;
  token: string | undefined;
  /** Where the token came from; `saved` is the login in `credentials.json`. */
  tokenSource: 'flag' | 'env' | 'saved' | undefined;
  /** Without a token: the URL a saved login is for, when it is another one. */
  savedLoginUrl?: string | undefined;
}

/** A saved login: `pylee login` writes it, every client command reads it. */
export interface Credentials {
  url: string;
  token: string;
}

const normalizeUrl = (url: string) => url.replace(/\/+$/, '');

/**
 * The directory `pylee login` saves to: `PYLEE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/pylee`, else
 * `~/.config/pylee`.
 */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PYLEE_CONFIG_DIR) return path.resolve(env.PYLEE_CONFIG_DIR);
  return path.join(env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'pylee');
}

export const credentialsPath = (env: NodeJS.ProcessEnv = process.env) =>
  path.join(configDir(env), 'credentials.json');

/** The saved login, or undefined when there is none; a file that is not one is an error. */
export function loadCredentials(file = credentialsPath()): Credentials | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AppError(
      500,
      'invalid-credentials',
      'Unreadable credentials',
      `cannot read ${file}: ${(error as Error).message}`,
    );
  }
  let saved: Partial<Credentials> | undefined;
  try {
    saved = JSON.parse(text) as Partial<Credentials>;
  } catch {
    saved = undefined;
  }
  if (typeof saved?.url !== 'string' || typeof saved.token !== 'string') {
    throw new AppError(
      500,
      'invalid-credentials',
      'Invalid credentials',
      `${file} is not a saved login; run pylee login again or delete it`,
    );
  }
  return { url: normalizeUrl(saved.url), token: saved.token };
}

/**
 * Saves a login readable by its owner only (file 0600, directory 0700 when created here). The
 * file is written beside its final name and renamed, so a reader never sees half of it.
 */
export function saveCredentials(credentials: Credentials, file = credentialsPath()): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temporary = path.join(dir, `.credentials.${process.pid}.tmp`);
  fs.rmSync(temporary, { force: true });
  fs.writeFileSync(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  fs.chmodSync(temporary, 0o600);
  fs.renameSync(temporary, file);
}

/** Removes the saved login; false when there was none. */
export function removeCredentials(file = credentialsPath()): boolean {
  if (!fs.existsSync(file)) return false;
  fs.rmSync(file, { force: true });
  return true;
}

/**
 * Where the CLI finds the API. Each of URL and token comes from, in order: the flag (`--url`,
 * `--token`), the environment (`PYLEE_URL`, `PYLEE_TOKEN`), the saved login, and for the URL
 * {@link DEFAULT_URL}. A saved token is only sent to the URL it was saved for.
 */
export function clientOptions(
  flags: { url?: string | undefined; token?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): ClientOptions {
  const explicitUrl = flags.url ?? env.PYLEE_URL;
  const explicitToken = flags.token ?? env.PYLEE_TOKEN;
  const saved = explicitUrl !== undefined && explicitToken !== undefined ? undefined : loadCredentials();
  const url = normalizeUrl(explicitUrl ?? saved?.url ?? DEFAULT_URL);
  if (explicitToken !== undefined) {
    return { url, token: explicitToken, tokenSource: flags.token !== undefined ? 'flag' : 'env' };
  }
  if (saved && saved.url === url) return { url, token: saved.token, tokenSource: 'saved' };
  return { url, token: undefined, tokenSource: undefined, savedLoginUrl: saved?.url };
}

/** One path segment, encoded: versions may hold `+` (build metadata). */
export const segment = (value: string) => encodeURIComponent(value);

/** `?a=1&b=2` from the defined entries, or an empty string. */
export function query(params: Record<string, string | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined) search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** Calls the API; a problem+json answer becomes an {@link AppError} with its code and detail. */
export async function api<T>(
  options: ClientOptions,
  method: string,
  path: string,
  /** JSON, or bytes (`Uint8Array`, e.g. a zip) sent as they are. */
  body?: unknown,
): Promise<T> {
  if (!options.token) {
    throw new AppError(
      401,
      'missing-token',
      'Unauthorized',
      `set PYLEE_TOKEN (or pass --token, or run pylee login) to an API token${options.savedLoginUrl ? `; the saved login is for ${options.savedLoginUrl}, not ${options.url}` : ''}`,
    );
  }
  let response: Response;
  try {
    response = await fetch(`${options.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${options.token}`,
        ...(body === undefined
          ? {}
          : { 'content-type': body instanceof Uint8Array ? 'application/octet-stream' : 'application/json' }),
      },
      body:
        body === undefined
          ? undefined
          : body instanceof Uint8Array
            ? new Blob([body as Uint8Array<ArrayBuffer>])
            : JSON.stringify(body),
    });
  } catch (error) {
    throw new AppError(
      503,
      'unreachable',
      'Unreachable',
      `cannot reach Pylee at ${options.url}: ${(error as Error).cause ?? error}`,
    );
  }
  const text = await response.text();
  let payload: Record<string, unknown>;
  try {
    payload = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // A proxy's error page, or something that is not Pylee at this URL.
    throw new AppError(
      response.ok ? 502 : response.status,
      'not-json',
      'Unexpected answer',
      `${method} ${options.url}/api/v1${path} answered HTTP ${response.status} with something that is not JSON: ${JSON.stringify(text.slice(0, 120))}`,
    );
  }
  if (!response.ok) {
    throw new AppError(
      response.status,
      String(payload.code ?? 'http-error'),
      String(payload.title ?? response.statusText),
      String(payload.detail ?? `HTTP ${response.status}`),
    );
  }
  return payload as T;
}

/** The value of a flag: a string, a boolean, a list (repeatable flags) or unset. */
export type FlagValue = string | boolean | string[] | undefined;

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** Repeatable: the value is a list. */
  multiple?: boolean;
  short?: string;
  /** Placeholder in the usage, e.g. `N` for `--name N`. */
  value?: string;
  required?: boolean;
  description: string;
}

/** What a command handler gets from the dispatcher in `cli/main.ts`. */
export interface CommandContext {
  /** The arguments after the command's own words (`servers create weather` → `['weather']`). */
  positionals: string[];
  flags: Readonly<Record<string, FlagValue>>;
  /** Resolved on first use, so commands that need no API never read the saved login. */
  readonly client: ClientOptions;
  /** `--json` was given. */
  json: boolean;
  /** Prints `json` (with `--json`) or `text` on stdout. */
  print(json: unknown, text: string): void;
  /** A line on stderr (`pylee: …`) that is not the command's output. */
  warn(message: string): void;
  /** Stops with exit code 2, the message and the command's usage. */
  usage(message: string): never;
}

export interface Command {
  /** The words that select it: `'servers create'`. */
  name: string;
  /** Positional arguments, `<required>` or `[optional]`. */
  args?: string[];
  /** One line for the help. */
  summary: string;
  flags?: Record<string, FlagSpec>;
  /** Exit code; nothing means 0, a negative number keeps the process running (`start`). */
  run(ctx: CommandContext): Promise<number | void>;
}

/** A usage mistake: exit code 2 with the command's usage. */
export class UsageError extends Error {}

/** Left-aligned columns, two spaces apart, with a header row. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `2025-10-01 09:30` (UTC) from an RFC 3339 time. */
export const shortTime = (iso: string | null | undefined) => (iso ? iso.slice(0, 16).replace('T', ' ') : '-');

/** The org slug of the client's token, for messages; undefined if it cannot be had. */
export function orgOf(client: ClientOptions): Promise<string | undefined> {
  return api<{ org: { slug: string } }>(client, 'GET', '/me').then(
    (me) => me.org.slug,
    () => undefined,
  );
}
