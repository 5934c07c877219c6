import type { FastifyError, FastifyInstance } from 'fastify';
import type { JsonRpcErrorResponse, JsonRpcId } from '#core/gateway/exchange.ts';
import { AppError } from '#core/errors.ts';

/**
 * JSON-RPC error code of a 404 for an unknown session, as the MCP TypeScript SDK's server uses it
 * ("Session not found"), so clients that look at codes recognise it.
 */
export const SESSION_NOT_FOUND = -32001;
/** Implementation-defined server error (JSON-RPC reserves -32000 to -32099). */
export const GATEWAY_ERROR = -32000;

/** A refusal or failure the gateway answers with a JSON-RPC error body and an HTTP status. */
export class GatewayError extends Error {
  readonly status: number;
  readonly rpcCode: number;
  readonly id: JsonRpcId | null;
  /** Stable machine-readable name, in the error's `data.code`. */
  readonly code: string | undefined;

  constructor(status: number, rpcCode: number, message: string, id: JsonRpcId | null = null, code?: string) {
    super(message);
    this.name = 'GatewayError';
    this.status = status;
    this.rpcCode = rpcCode;
    this.id = id;
    this.code = code;
  }
}

export function rpcErrorBody(
  rpcCode: number,
  message: string,
  id: JsonRpcId | null,
  code?: string,
): JsonRpcErrorResponse {
  return { jsonrpc: '2.0', id, error: { code: rpcCode, message, ...(code ? { data: { code } } : {}) } };
}

/**
 * Every error the gateway answers is a JSON-RPC error body (MCP clients read those, not
 * problem+json); a 500 never carries more than "internal error".
 */
export function installRpcErrors(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | GatewayError | AppError, req, reply) => {
    if (error instanceof GatewayError) {
      return reply.code(error.status).send(rpcErrorBody(error.rpcCode, error.message, error.id, error.code));
    }
    if (error instanceof AppError) {
      if (error.status === 401) reply.header('www-authenticate', 'Bearer realm="pylee"');
      return reply.code(error.status).send(rpcErrorBody(GATEWAY_ERROR, error.message, null, error.code));
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply
        .code(413)
        .send(
          rpcErrorBody(
            GATEWAY_ERROR,
            `the body is larger than the gateway's limit of ${req.routeOptions.bodyLimit ?? 'its'} bytes`,
            null,
            'body-too-large',
          ),
        );
    }
    if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode < 500) {
      return reply
        .code(fastifyError.statusCode)
        .send(rpcErrorBody(GATEWAY_ERROR, fastifyError.message, null));
    }
    req.log.error({ err: error }, 'gateway request failed');
    return reply.code(500).send(rpcErrorBody(-32603, 'internal error', null));
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send(
        rpcErrorBody(
          GATEWAY_ERROR,
          'no MCP endpoint here: use /{org}/{server}/{environment}/mcp, /{org}/{server}/{environment}/sse or /{org}/{server}@{version}/mcp',
          null,
          'not-found',
        ),
      ),
  );
}
