import type { FastifyServerOptions } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';

const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** Options every Pylee HTTP server shares: its logger, request ids and strict validation. */
export function fastifyOptions(logger: Logger, bodyLimit: number): FastifyServerOptions {
  return {
    loggerInstance: logger,
    bodyLimit,
    // A well-formed `x-request-id` from a proxy or client is kept, so one id follows a request across hops.
    requestIdHeader: false,
    genReqId: (req: IncomingMessage) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && CLIENT_REQUEST_ID.test(incoming) ? incoming : newId();
    },
    trustProxy: false,
    ajv: {
      customOptions: {
        // Unknown properties are an error the caller should see, not something silently dropped.
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
        allErrors: false,
      },
    },
  };
}
