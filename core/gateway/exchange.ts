import {
  DEFAULT_MAX_ATTRIBUTE_LENGTH,
  ERROR_TYPE_TOOL,
  operationName,
  truncate,
} from '../telemetry/naming.ts';

/**
 * What a JSON-RPC exchange through the gateway means, for the request row it writes: which
 * messages a body holds, the operation each names, and the outcome of a response.
 *
 * The operation and error-type names are the collector's (core/telemetry/naming.ts, which both
 * use), so a gateway row and an OTLP row of the same call compare as one series.
 */

/** A request id: MCP allows a string or an integer, never null (unlike base JSON-RPC). */
export type JsonRpcId = string | number;

/** A JSON-RPC error object. */
export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

/** A JSON-RPC error response, as the gateway answers a body it cannot read. */
export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  error: JsonRpcError;
}

/** Params of a request or notification: an object or, in base JSON-RPC, an array. */
export type JsonRpcParams = Record<string, unknown> | unknown[];

export interface RequestMessage {
  kind: 'request';
  id: JsonRpcId;
  method: string;
  params: JsonRpcParams | undefined;
  /** {@link operationOf} the method and params. */
  operation: string;
  /** `params.name` of a `tools/call` (the row's `tool`); absent otherwise. */
  toolName?: string;
}

export interface NotificationMessage {
  kind: 'notification';
  method: string;
  params: JsonRpcParams | undefined;
  operation: string;
}

export interface ResponseMessage {
  kind: 'response';
  /** Null only in an error response to a request whose id could not be read. */
  id: JsonRpcId | null;
  result?: unknown;
  error?: JsonRpcError;
}

export type ExchangeMessage = RequestMessage | NotificationMessage | ResponseMessage;

/**
 * A parsed body: `batch` when it was a JSON array (MCP 2025-03-26 allowed batches; later revisions
 * do not, but the gateway reads them so old clients are measured too).
 */
export type ParsedBody =
  { ok: true; batch: boolean; messages: ExchangeMessage[] } | { ok: false; error: JsonRpcErrorResponse };

/** JSON-RPC 2.0: the body is not JSON. */
export const PARSE_ERROR = -32700;
/** JSON-RPC 2.0: the JSON is not a valid request (or response) object. */
export const INVALID_REQUEST = -32600;

/** The cap on a stored operation, as on every stored attribute value, in UTF-16 code units. */
export const DEFAULT_MAX_OPERATION_LENGTH = DEFAULT_MAX_ATTRIBUTE_LENGTH;
export { ERROR_TYPE_TOOL };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads an HTTP body as one JSON-RPC message or a batch. A body that is not UTF-8 JSON is a
 * `-32700` parse error; JSON that is not JSON-RPC 2.0 is `-32600` with a sentence saying what is
 * wrong, carrying the request's id when it could be read. A batch with any invalid member is
 * refused whole (naming the member): the gateway does not forward half of what a client sent.
 */
export function parseBody(body: string | Uint8Array): ParsedBody {
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    try {
      text = utf8.decode(body);
    } catch {
      return failure(null, PARSE_ERROR, 'Parse error: the body is not UTF-8 text');
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return failure(null, PARSE_ERROR, 'Parse error: the body is not valid JSON');
  }
  if (!Array.isArray(value)) {
    const message = parseMessage(value);
    return 'problem' in message
      ? failure(message.id, INVALID_REQUEST, `Invalid Request: ${message.problem}`)
      : { ok: true, batch: false, messages: [message] };
  }
  if (value.length === 0) return failure(null, INVALID_REQUEST, 'Invalid Request: the batch is empty');
  const messages: ExchangeMessage[] = [];
  for (const [index, member] of value.entries()) {
    const message = parseMessage(member);
    if ('problem' in message)
      return failure(null, INVALID_REQUEST, `Invalid Request: batch member ${index}: ${message.problem}`);
    messages.push(message);
  }
  return { ok: true, batch: true, messages };
}

/** One message of a body, or what is wrong with it (and its id, when that could be read). */
export function parseMessage(value: unknown): ExchangeMessage | { problem: string; id: JsonRpcId | null } {
  if (!isObject(value)) return { problem: 'a message must be a JSON object', id: null };
  // Own properties only: a key such as `__proto__` in the JSON is data, never a prototype's member.
  const id = own(value, 'id');
  const hasId = Object.hasOwn(value, 'id');
  const validId = isId(id) ? id : null;
  if (own(value, 'jsonrpc') !== '2.0') return { problem: '"jsonrpc" must be "2.0"', id: validId };

  if (Object.hasOwn(value, 'method')) {
    const method = own(value, 'method');
    if (typeof method !== 'string' || method === '')
      return { problem: '"method" must be a non-empty string', id: validId };
    const params = own(value, 'params');
    if (params !== undefined && !isObject(params) && !Array.isArray(params))
      return { problem: '"params" must be an object or an array', id: validId };
    const operation = operationOf(method, params);
    if (!hasId) return { kind: 'notification', method, params, operation };
    if (!isId(id)) return { problem: idProblem(id), id: null };
    const toolName = method === 'tools/call' ? nameOf(params) : undefined;
    return toolName === undefined
      ? { kind: 'request', id, method, params, operation }
      : { kind: 'request', id, method, params, operation, toolName };
  }

  const hasResult = Object.hasOwn(value, 'result');
  const hasError = Object.hasOwn(value, 'error');
  if (hasResult === hasError)
    return {
      problem: hasResult
        ? 'a response must not have both "result" and "error"'
        : 'a message needs a "method" (request or notification) or a "result" or "error" (response)',
      id: validId,
    };
  if (hasResult) {
    if (!isId(id)) return { problem: idProblem(id), id: null };
    return { kind: 'response', id, result: own(value, 'result') };
  }
  // An error response's id is null when the request's id could not be read.
  if (id !== null && !isId(id)) return { problem: idProblem(id), id: null };
  const error = own(value, 'error');
  if (
    !isObject(error) ||
    !Number.isSafeInteger(own(error, 'code')) ||
    typeof own(error, 'message') !== 'string'
  )
    return {
      problem: '"error" must be an object with an integer "code" and a string "message"',
      id: validId,
    };
  const parsed: JsonRpcError = {
    code: own(error, 'code') as number,
    message: own(error, 'message') as string,
  };
  if (Object.hasOwn(error, 'data')) parsed.data = own(error, 'data');
  return { kind: 'response', id, error: parsed };
}

/**
 * The operation of a request row, named as the collector names MCP spans' operations (the MCP
 * semantic conventions' span name): `{method} {target}`, target being the tool's name for
 * `tools/call` and the prompt's for `prompts/get` (`gen_ai.tool.name` / `gen_ai.prompt.name`), and
 * omitted when absent or empty; resource URIs are never a target (unbounded cardinality), so
 * `resources/read` stays bare. Each part and the result are cut to `max` as the collector does.
 */
export function operationOf(method: string, params: unknown, max = DEFAULT_MAX_OPERATION_LENGTH): string {
  const first = truncate(method, max);
  const target = method === 'tools/call' || method === 'prompts/get' ? nameOf(params) : undefined;
  if (!target) return first;
  return operationName(first, truncate(target, max), max);
}

/** How an exchange ended, for the request row. */
export interface Outcome {
  /** `tool_error`: a successful JSON-RPC call whose tool result says `isError: true`. */
  outcome: 'ok' | 'error' | 'tool_error';
  /** The JSON-RPC error code of an `error` outcome. */
  errorCode?: number;
  /**
   * The row's `error_type`, as OTLP rows carry `error.type`: the JSON-RPC code as a string
   * (`"-32602"`, what the MCP conventions prescribe and the collector stores), `tool_error`, or ''
   * when the call succeeded. Both `error` and `tool_error` rows count as errors (`error = 1`), as in
   * the collector.
   */
  errorType: string;
}

/** The outcome of a response (a {@link ResponseMessage}, or any object with `result` or `error`). */
export function outcomeOf(response: { result?: unknown; error?: { code: number } }): Outcome {
  if (response.error !== undefined) {
    const code = response.error.code;
    return { outcome: 'error', errorCode: code, errorType: String(code) };
  }
  const result = response.result;
  if (isObject(result) && own(result, 'isError') === true)
    return { outcome: 'tool_error', errorType: ERROR_TYPE_TOOL };
  return { outcome: 'ok', errorType: '' };
}

function failure(id: JsonRpcId | null, code: number, message: string): ParsedBody {
  return { ok: false, error: { jsonrpc: '2.0', id, error: { code, message } } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function own(object: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/**
 * A string, or an integer a double holds exactly. Larger numbers lose digits in JSON.parse, so two
 * requests' ids could read as one and their responses be matched to the wrong call.
 */
function isId(value: unknown): value is JsonRpcId {
  return typeof value === 'string' || Number.isSafeInteger(value);
}

function idProblem(id: unknown): string {
  if (typeof id === 'number')
    return Number.isInteger(id) || !Number.isFinite(id)
      ? '"id" is too large a number to read exactly (at most 2^53 - 1); send it as a string'
      : '"id" must be a string or an integer';
  return id === null ? '"id" must not be null' : '"id" must be a string or an integer';
}

function nameOf(params: unknown): string | undefined {
  if (!isObject(params)) return undefined;
  const name = own(params, 'name');
  return typeof name === 'string' ? name : undefined;
}
