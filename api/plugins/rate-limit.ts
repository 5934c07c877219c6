import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { AppError } from '#core/errors.ts';
import { bearerToken } from './auth.ts';

/**
 * Per-token rate limit (per client address without a token), counted in Redis so every API
 * process shares the budget. It runs before authentication, so floods of bad tokens are limited too.
 */
export async function installRateLimit(
  app: FastifyInstance,
  redis: Redis,
  limit: { max: number; windowMs: number },
): Promise<void> {
  await app.register(rateLimit, {
    redis,
    nameSpace: 'pylee:ratelimit:',
    max: limit.max,
    timeWindow: limit.windowMs,
    // Rate limiting must not take the API down with Redis; /readyz reports Redis instead.
    skipOnError: true,
    keyGenerator: (req) => {
      const token = bearerToken(req);
      return token
        ? `token:${createHash('sha256').update(token).digest('hex').slice(0, 32)}`
        : `ip:${req.ip}`;
    },
    errorResponseBuilder: (_req, context) =>
      new AppError(
        context.statusCode,
        'rate-limited',
        'Too many requests',
        `more than ${context.max} requests in this rate-limit window from this token; retry in ${context.after}`,
      ),
  });
}
