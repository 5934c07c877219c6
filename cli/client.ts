import { AppError } from '#core/errors.ts';

export interface ClientOptions {
  url: string;
  token: string | undefined;
}

/** Where the CLI finds the API: `--url`/`PYLEE_URL` and `--token`/`PYLEE_TOKEN`. */
export function clientOptions(flags: {
  url?: string | undefined;
  token?: string | undefined;
}): ClientOptions {
  return {
    url: (flags.url ?? process.env.PYLEE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    token: flags.token ?? process.env.PYLEE_TOKEN,
  };
}

/** Calls the API; a problem+json answer becomes an {@link AppError} with its code and detail. */
export async function api<T>(
  options: ClientOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  if (!options.token) {
    throw new AppError(
      401,
      'missing-token',
      'Unauthorized',
      'set PYLEE_TOKEN (or pass --token) to an API token',
    );
  }
  let response: Response;
  try {
    response = await fetch(`${options.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${options.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
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
  const payload = text ? (JSON.parse(text) as Record<string, unknown>) : {};
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
