import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { AppError, BadRequestError } from '#core/errors.ts';
import type { MetricPointRow, RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import { DeltaTracker } from '../delta.ts';
import { mapMetrics, mapSpans, type MappingContext } from '../mapping.ts';
import { decodeMetrics, decodeTraces, encodingOf, type OtlpEncoding } from './decode.ts';
import { ExportMetricsServiceResponse, ExportTraceServiceResponse, RpcStatus } from './protobuf.ts';
import { recordOtlpItemsRejected } from '#core/telemetry/metrics.ts';

/**
 * The OTLP/HTTP receiver: `POST /v1/traces` and `POST /v1/metrics`, as the OTLP specification
 * gives them. Bodies are `application/x-protobuf` or `application/json` (else 415), optionally
 * `Content-Encoding: gzip` (else 415); a body over `maxBodyBytes`, compressed or once inflated,
 * is 413. A success is 200 with an `Export*ServiceResponse` in the request's encoding, carrying
 * `partial_success` when items were rejected. Failures carry a `google.rpc.Status` in the
 * request's encoding (JSON when the request's is unknown): 400 for malformed data (nothing is
 * stored), 401/403 from `authenticate`, 429/503 with `Retry-After` when the sink pushes back.
 */

/** Where mapped rows go. A {@link BackpressureError} asks the exporter to retry later. */
export interface OtlpSink {
  /** `requestId` names the request the rows came in, should the store refuse one of them. */
  writeRequests(rows: RequestRow[], requestId: string): Promise<void>;
  writeMetricPoints(rows: MetricPointRow[], requestId: string): Promise<void>;
  /** Session ends the `mcp.server.session.duration` points of a request report. */
  writeSessionEvents(rows: SessionEventRow[], requestId: string): Promise<void>;
}

/** Whom a request is from: the org, and the server its ingest key is bound to, if any. */
export interface OtlpPrincipal {
  orgId: string;
  server?: string | null;
}

export interface OtlpRoutesOptions {
  sink: OtlpSink;
  /** Resolves the caller (ingest key); throws an AppError (401/403) to refuse it. Runs before the body is read. */
  authenticate(req: FastifyRequest): Promise<OtlpPrincipal>;
  /** Largest body accepted, compressed and inflated (the OTLP default is 16 MiB). */
  maxBodyBytes: number;
  /** Longer attribute values are truncated. @defaultValue 4096 */
  maxAttributeLength?: number;
  /** Hashes client keys into `client_key` (see {@link MappingContext.clientKey}). @defaultValue none: no users */
  clientKey?: (key: string) => string;
  /** Cumulative → delta state; one per process by default. */
  deltaTracker?: DeltaTracker;
  /** `Retry-After` seconds when the sink fails for a reason other than backpressure. @defaultValue 5 */
  retryAfterSeconds?: number;
}

/** The sink is full or its store is down: the exporter should retry after `retryAfterSeconds`. */
export class BackpressureError extends Error {
  readonly retryAfterSeconds: number;
  readonly status: 429 | 503;

  constructor(message: string, retryAfterSeconds: number, status: 429 | 503 = 503) {
    super(message);
    this.name = 'BackpressureError';
    this.retryAfterSeconds = retryAfterSeconds;
    this.status = status;
  }
}

/** gRPC status codes for the `google.rpc.Status` bodies, by HTTP status. */
const GRPC_CODES: Record<number, number> = {
  400: 3, // INVALID_ARGUMENT
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  404: 5, // NOT_FOUND
  413: 8, // RESOURCE_EXHAUSTED
  415: 3, // INVALID_ARGUMENT
  429: 8, // RESOURCE_EXHAUSTED
  500: 13, // INTERNAL
  503: 14, // UNAVAILABLE
};

const inflate = promisify(gunzip);

class StatusError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'StatusError';
    this.status = status;
  }
}

/**
 * A fastify plugin with the two OTLP routes. Register it unwrapped (`app.register(otlpRoutes(...))`):
 * its raw-body content-type parsers and its error handler stay inside its own scope.
 */
export function otlpRoutes(options: OtlpRoutesOptions): FastifyPluginAsync {
  const delta = options.deltaTracker ?? new DeltaTracker();
  const maxBodyBytes = options.maxBodyBytes;
  const retryAfter = options.retryAfterSeconds ?? 5;

  return async (app) => {
    const principals = new WeakMap<FastifyRequest, OtlpPrincipal>();

    app.removeAllContentTypeParsers();
    app.addContentTypeParser(
      ['application/x-protobuf', 'application/json'],
      { parseAs: 'buffer', bodyLimit: maxBodyBytes },
      (_req, body, done) => done(null, body),
    );

    app.setErrorHandler((error: FastifyError, req, reply) => {
      const encoding = encodingOf(req.headers['content-type']) ?? 'json';
      if (error instanceof BackpressureError) {
        reply.header('retry-after', String(Math.max(0, Math.ceil(error.retryAfterSeconds))));
        return sendStatus(reply, encoding, error.status, error.message);
      }
      if (error instanceof StatusError) return sendStatus(reply, encoding, error.status, error.message);
      if (error instanceof AppError) {
        if (error.status === 401) reply.header('www-authenticate', 'Bearer');
        return sendStatus(reply, encoding, error.status, error.message);
      }
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return sendStatus(
          reply,
          encoding,
          413,
          `the request body is larger than the limit of ${maxBodyBytes} bytes`,
        );
      }
      if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        return sendStatus(reply, 'json', 415, unsupportedType(req.headers['content-type']));
      }
      if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
        return sendStatus(reply, encoding, error.statusCode, error.message);
      }
      req.log.error({ err: error }, 'OTLP request failed');
      return sendStatus(
        reply,
        encoding,
        500,
        `Pylee failed to handle this request; report request id ${req.id} to its operators`,
      );
    });

    // Type, encoding and caller are checked before the body is read.
    app.addHook('onRequest', async (req) => {
      if (!encodingOf(req.headers['content-type']))
        throw new StatusError(415, unsupportedType(req.headers['content-type']));
      contentEncoding(req);
      let principal: OtlpPrincipal;
      try {
        principal = await options.authenticate(req);
      } catch (error) {
        if (error instanceof AppError || error instanceof BackpressureError) throw error;
        req.log.error({ err: error }, 'OTLP authentication failed');
        throw new BackpressureError(
          'Pylee could not check the ingest key just now; retry later',
          retryAfter,
          503,
        );
      }
      principals.set(req, principal);
    });

    const context = (req: FastifyRequest): MappingContext => {
      const principal = principals.get(req)!;
      return {
        orgId: principal.orgId,
        serverBinding: principal.server ?? null,
        maxAttributeLength: options.maxAttributeLength,
        clientKey: options.clientKey,
      };
    };

    const store = async (req: FastifyRequest, write: () => Promise<void>) => {
      try {
        await write();
      } catch (error) {
        if (error instanceof BackpressureError || error instanceof AppError) throw error;
        req.log.error({ err: error }, 'OTLP sink failed');
        throw new BackpressureError('Pylee could not store this data just now; retry later', retryAfter, 503);
      }
    };

    app.post('/v1/traces', async (req, reply) => {
      const contentType = req.headers['content-type']!;
      const encoding = encodingOf(contentType)!;
      const body = await readBody(req, maxBodyBytes);
      const mapped = mapSpans(decodeTraces(body, contentType), context(req));
      if (mapped.rows.length > 0) await store(req, () => options.sink.writeRequests(mapped.rows, req.id));
      if (mapped.rejected > 0) recordOtlpItemsRejected('traces', mapped.rejected);
      const partialSuccess =
        mapped.rejected > 0 || mapped.errorMessage
          ? { rejectedSpans: String(mapped.rejected), errorMessage: mapped.errorMessage ?? '' }
          : undefined;
      return sendResponse(reply, encoding, ExportTraceServiceResponse, partialSuccess);
    });

    app.post('/v1/metrics', async (req, reply) => {
      const contentType = req.headers['content-type']!;
      const encoding = encodingOf(contentType)!;
      const body = await readBody(req, maxBodyBytes);
      const mapped = mapMetrics(decodeMetrics(body, contentType), context(req), delta);
      if (mapped.rows.length > 0) {
        try {
          // Ends first: refused, nothing is stored and the retry maps again; stored, a retry of
          // refused points writes them again, which changes no session's fate.
          if (mapped.sessionEnds.length > 0) {
            await store(req, () => options.sink.writeSessionEvents(mapped.sessionEnds, req.id));
          }
          await store(req, () => options.sink.writeMetricPoints(mapped.rows, req.id));
        } catch (error) {
          mapped.rollback();
          throw error;
        }
      }
      if (mapped.rejected > 0) recordOtlpItemsRejected('metrics', mapped.rejected);
      const partialSuccess =
        mapped.rejected > 0 || mapped.errorMessage
          ? { rejectedDataPoints: String(mapped.rejected), errorMessage: mapped.errorMessage ?? '' }
          : undefined;
      return sendResponse(reply, encoding, ExportMetricsServiceResponse, partialSuccess);
    });
  };
}

function unsupportedType(contentType: string | undefined): string {
  return contentType
    ? `content type ${contentType.slice(0, 100)} is not supported; send application/x-protobuf or application/json`
    : 'the request has no content type; send application/x-protobuf or application/json';
}

/** 'gzip' or 'identity'; anything else is refused with 415. */
function contentEncoding(req: FastifyRequest): 'gzip' | 'identity' {
  const header = req.headers['content-encoding'];
  const value = (Array.isArray(header) ? header.join(',') : (header ?? '')).trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  throw new StatusError(
    415,
    `content encoding ${value.slice(0, 100)} is not supported; send gzip or an uncompressed body`,
  );
}

async function readBody(req: FastifyRequest, maxBodyBytes: number): Promise<Buffer> {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (contentEncoding(req) === 'identity') return raw;
  try {
    return await inflate(raw, { maxOutputLength: maxBodyBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError) {
      throw new StatusError(413, `the request body inflates to more than the limit of ${maxBodyBytes} bytes`);
    }
    throw new BadRequestError(`the body is not valid gzip: ${(error as Error).message}`, 'invalid-otlp');
  }
}

function sendStatus(
  reply: FastifyReply,
  encoding: OtlpEncoding,
  status: number,
  message: string,
): FastifyReply {
  const code = GRPC_CODES[status] ?? (status >= 500 ? 13 : 3);
  reply.code(status);
  if (encoding === 'protobuf') {
    return reply
      .type('application/x-protobuf')
      .send(Buffer.from(RpcStatus.encode(RpcStatus.fromObject({ code, message })).finish()));
  }
  return reply.type('application/json').send(JSON.stringify({ code, message }));
}

function sendResponse(
  reply: FastifyReply,
  encoding: OtlpEncoding,
  type: typeof ExportTraceServiceResponse,
  partialSuccess: Record<string, string> | undefined,
): FastifyReply {
  const response = partialSuccess ? { partialSuccess } : {};
  reply.code(200);
  if (encoding === 'protobuf') {
    return reply
      .type('application/x-protobuf')
      .send(Buffer.from(type.encode(type.fromObject(response)).finish()));
  }
  return reply.type('application/json').send(JSON.stringify(response));
}
