/**
 * How telemetry names an operation and an error, wherever a row comes from (the collector's OTLP
 * mapping, the gateway's JSON-RPC exchanges), so rows of both sources group and compare alike.
 */

/** `error.type` of an MCP tool result with `isError` (the MCP semantic conventions). */
export const ERROR_TYPE_TOOL = 'tool_error';
/** `error.type` when a request failed without saying how (the semantic conventions' fallback). */
export const ERROR_TYPE_OTHER = '_OTHER';

/** The default cap on a stored attribute value or operation, in UTF-16 code units. */
export const DEFAULT_MAX_ATTRIBUTE_LENGTH = 4096;

/** Cuts a value to `max` UTF-16 code units without splitting a surrogate pair. */
export function truncate(value: string, max: number): string {
  if (value.length <= max) return value;
  let end = Math.max(0, max);
  const last = value.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--;
  return value.slice(0, end);
}

/**
 * An operation of a method and its target (`tools/call forecast`, `GET /items/{id}`), truncated. The
 * same few operations recur in every row, so the joined strings are kept (a bounded memo): rows
 * then share one string instead of each holding a copy.
 */
export function operationName(first: string, second: string, max = DEFAULT_MAX_ATTRIBUTE_LENGTH): string {
  if (first.length + 1 + second.length > max) return truncate(`${first} ${second}`, max);
  let bySecond = joinedMemo.get(first);
  let value = bySecond?.get(second);
  if (value !== undefined) return value;
  if (joinedCount >= MAX_JOINED) {
    joinedMemo.clear();
    joinedCount = 0;
    bySecond = undefined;
  }
  if (bySecond === undefined) {
    bySecond = new Map();
    joinedMemo.set(first, bySecond);
  }
  value = `${first} ${second}`;
  bySecond.set(second, value);
  joinedCount++;
  return value;
}

const joinedMemo = new Map<string, Map<string, string>>();
let joinedCount = 0;
const MAX_JOINED = 10_000;
