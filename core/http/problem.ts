import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  requestId: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  406: 'Not acceptable',
  409: 'Conflict',
  413: 'Content too large',
  415: 'Unsupported media type',
  429: 'Too many requests',
  500: 'Internal server error',
  503: 'Service unavailable',
};

export function problem(
  req: FastifyRequest,
  status: number,
  code: string,
  detail: string,
  extra: Record<string, unknown> = {},
): Problem {
  return {
    type: `urn:pylee:problem:${code}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    instance: req.url.split('?')[0],
    requestId: req.id,
    ...extra,
  };
}

export function sendProblem(reply: FastifyReply, body: Problem) {
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body);
}

/**
 * ajv says "must be equal to constant" once per value of a union of literals, without the value:
 * a field outside its allowed values is said as `body/severity must be one of critical, warning, info`.
 */
function validationMessage(error: FastifyError, context: string): string {
  const allowed = new Map<string, unknown[]>();
  for (const v of error.validation ?? []) {
    const values =
      v.keyword === 'const' ? [v.params.allowedValue] : v.keyword === 'enum' ? v.params.allowedValues : null;
    if (!Array.isArray(values)) continue;
    allowed.set(v.instancePath, [...(allowed.get(v.instancePath) ?? []), ...(values as unknown[])]);
  }
  if (allowed.size === 0) return error.message;
  return [...allowed]
    .map(([path, values]) => `${context}${path} must be one of ${values.map(String).join(', ')}`)
    .join('; ');
}

/** Maps Fastify's own error codes to stable Pylee codes and sentences. */
function fromFastifyError(req: FastifyRequest, error: FastifyError, bodyLimit: number): Problem | undefined {
  if (error.validation) {
    const context = error.validationContext ?? 'request';
    return problem(req, 400, 'invalid-request', validationMessage(error, context), {
      errors: error.validation.map((v) => ({
        in: context,
        path: v.instancePath || '/',
        message: v.message,
        ...(v.params && 'additionalProperty' in v.params ? { property: v.params.additionalProperty } : {}),
      })),
    });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(
        req,
        413,
        'body-too-large',
        `the request body is larger than the limit of ${bodyLimit} bytes`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(
        req,
        415,
        'unsupported-media-type',
        `content type ${req.headers['content-type']} is not supported; send application/json`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(
        req,
        400,
        'invalid-json',
        'the body is empty but content-type is application/json; send a JSON document',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem(req, 400, 'invalid-json', `the body is not valid JSON: ${error.message}`);
  }
  if (error instanceof SyntaxError)
    return problem(req, 400, 'invalid-json', `the body is not valid JSON: ${error.message}`);
  if (error.statusCode === 429) {
    return problem(
      req,
      429,
      'rate-limited',
      error.message || 'too many requests; retry after the time in Retry-After',
    );
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return problem(req, error.statusCode, 'bad-request', error.message);
  }
  return undefined;
}

/**
 * One error handler for every Pylee HTTP server: problem+json with a stable `code`; a 5xx never
 * shows its cause, which goes to the log with the request id the caller sees.
 */
export function installProblemHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((error: FastifyError, req, reply) => {
    if (error instanceof AppError) {
      return sendProblem(reply, problem(req, error.status, error.code, error.message, error.extra));
    }
    const mapped = fromFastifyError(req, error, bodyLimit);
    if (mapped) return sendProblem(reply, mapped);
    req.log.error({ err: error }, 'request failed');
    return sendProblem(
      reply,
      problem(
        req,
        500,
        'internal-error',
        `Pylee failed to handle this request; report request id ${req.id} to its operators`,
      ),
    );
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(
      reply,
      problem(req, 404, 'route-not-found', `there is no ${req.method} ${req.url.split('?')[0]} route`),
    ),
  );
}
