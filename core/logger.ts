import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

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

/** One pino logger per process; fastify and every role log through children of it. */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pylee' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
