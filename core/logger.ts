import { format } from 'node:util';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat, LogLevel } from './config.ts';

export type { Logger };

/** Paths whose values never reach a log line: credentials in headers, bodies and config. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-pylee-ingest-key"]',
  'res.headers["set-cookie"]',
  '*.token',
  '*.secret',
  '*.password',
  '*.bootstrapToken',
  '*.secretKey',
  '*.databaseUrl',
  '*.clickhouseUrl',
  '*.redisUrl',
];

/**
 * One pino logger per process; fastify and every role log through children of it. `pretty` writes
 * one readable line per event (pino-pretty, synchronously, so nothing is lost at exit) to stdout.
 */
export function createLogger(
  level: LogLevel,
  destination?: pino.DestinationStream,
  logFormat: LogFormat = 'json',
): Logger {
  const to =
    destination ??
    (logFormat === 'pretty'
      ? pretty({
          sync: true,
          colorize: process.stdout.isTTY === true,
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'pid,hostname,service',
          singleLine: true,
        })
      : undefined);
  return pino(
    {
      level,
      base: { service: 'pylee' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    to,
  );
}

/**
 * Sends what libraries print with `console.*` through `logger` instead, so a process's stdout and
 * stderr carry JSON lines only: BullMQ prints the connection errors of a queue that has no `error`
 * listener with `console.error`, ioredis an error event nobody listens to.
 */
export function routeConsoleTo(logger: Logger): void {
  const log = logger.child({ component: 'console' });
  const to =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (...args: unknown[]): void => {
      const [first] = args;
      if (first instanceof Error && args.length === 1) log[level]({ err: first }, first.message);
      else log[level](format(...args));
    };
  Object.assign(console, {
    debug: to('debug'),
    trace: to('debug'),
    log: to('info'),
    info: to('info'),
    warn: to('warn'),
    error: to('error'),
  });
}
