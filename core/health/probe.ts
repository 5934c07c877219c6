import { createHash } from 'node:crypto';
import net from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { guardedFetch, type FetchLike } from '../net/guarded-fetch.ts';
import { canonicalHost, guardedLookup, hostRefusal, type GuardOptions, type Resolve } from '../net/ssrf.ts';
import { PYLEE_VERSION } from '../version.ts';
import {
  CHECK_TARGET_POLICY,
  CheckTargetRefused,
  statusMatcher,
  type CheckKind,
  type CheckTarget,
} from './model.ts';

/** A tool as `tools/list` described it, kept for contract diffs between versions. */
export interface ToolDescription {
  name: string;
  title?: string;
  description?: string;
  inputSchema: unknown;
  outputSchema?: unknown;
  annotations?: unknown;
}

export interface ProbeResult {
  ok: boolean;
  /** From the start of the probe to its verdict, in milliseconds. */
  latencyMs: number;
  /** The HTTP status the target answered with; 0 when there was none (TCP, no answer). */
  statusCode: number;
  /** Why the probe failed, in a sentence; '' when it passed. */
  error: string;
  /** MCP only: the protocol version the server negotiated. */
  protocolVersion?: string;
  /** MCP only: what the server said it is in `initialize`. */
  serverInfo?: { name: string; version: string };
  toolCount?: number;
  /** MCP only: sha256 over canonical JSON of `[{ name, inputSchema }]` sorted by name. */
  toolsHash?: string;
  /** MCP only: the tools, sorted by name. */
  tools?: ToolDescription[];
}

export interface Probe {
  kind: CheckKind;
  target: CheckTarget;
  timeoutMs: number;
}

export interface ProbeOptions {
  /** Resolves host names for every connection the probe makes (tests play DNS rebinding with it). @defaultValue `dns.lookup` */
  resolve?: Resolve | undefined;
}

/** How a probe reaches its target: every connection through the SSRF guard, to the address it checked. */
interface Network {
  fetch: FetchLike;
  guard: GuardOptions & { refuse: (why: string) => Error };
}

/** Bodies longer than this are matched on their first 1 MiB. */
const MAX_BODY_BYTES = 1024 * 1024;
/** `tools/list` pages followed at most, so a server paging forever cannot hold a worker. */
const MAX_TOOL_PAGES = 50;
/** How long past its own timeout a probe may take before it is abandoned as failed. */
const BACKSTOP_MS = 1_000;

/**
 * Runs one probe. It never throws and never outlives `timeoutMs` by more than about a second:
 * every network call is aborted at the timeout, and a backstop timer settles the result anyway.
 */
export async function runProbe(probe: Probe, options: ProbeOptions = {}): Promise<ProbeResult> {
  const started = performance.now();
  const guard: Network['guard'] = {
    refuse: (why) => new CheckTargetRefused(`refused: ${why}`),
    resolve: options.resolve,
  };
  const network: Network = { fetch: guardedFetch(CHECK_TARGET_POLICY, guard), guard };
  const controller = new AbortController();
  const abortTimer = setTimeout(() => controller.abort(new TimeoutError(probe.timeoutMs)), probe.timeoutMs);
  let backstopTimer: NodeJS.Timeout | undefined;
  const backstop = new Promise<ProbeResult>((resolve) => {
    backstopTimer = setTimeout(
      () => resolve(failure(started, 0, `timed out after ${probe.timeoutMs} ms`)),
      probe.timeoutMs + BACKSTOP_MS,
    );
  });
  const run = (async (): Promise<ProbeResult> => {
    try {
      if (probe.kind === 'http') return await httpProbe(network, probe.target, controller.signal, started);
      if (probe.kind === 'mcp') return await mcpProbe(network, probe.target, controller.signal, started);
      return await dependencyProbe(network, probe.target, controller.signal, started);
    } catch (error) {
      return failure(started, 0, describeError(error, controller.signal));
    }
  })();
  try {
    return await Promise.race([run, backstop]);
  } finally {
    clearTimeout(abortTimer);
    clearTimeout(backstopTimer);
    controller.abort(new TimeoutError(probe.timeoutMs));
  }
}

class TimeoutError extends Error {
  constructor(ms: number) {
    super(`timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 1000) / 1000;

function failure(started: number, statusCode: number, error: string): ProbeResult {
  return { ok: false, latencyMs: elapsed(started), statusCode, error };
}

function describeError(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) return (signal.reason as Error | undefined)?.message ?? 'timed out';
  const err = error as Error & { cause?: { code?: string; message?: string }; code?: unknown };
  const code = err.cause?.code ?? (typeof err.code === 'string' ? err.code : undefined);
  const explained: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host name lookup failed',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ETIMEDOUT: 'connection timed out',
  };
  if (code && explained[code]) return `${explained[code]} (${code})`;
  const message = err.cause?.message && err.message === 'fetch failed' ? err.cause.message : err.message;
  return (message || String(error)).slice(0, 1000);
}

async function httpProbe(
  network: Network,
  target: CheckTarget,
  signal: AbortSignal,
  started: number,
): Promise<ProbeResult> {
  const res = await network.fetch(target.url, {
    method: target.method ?? 'GET',
    signal,
    headers: { 'user-agent': `pylee-health-check/${PYLEE_VERSION}` },
  });
  const expected = target.expectedStatus ?? '2xx';
  const needsBody = target.bodyContains !== undefined || target.bodyMatches !== undefined;
  const body = needsBody ? await readText(res, MAX_BODY_BYTES) : (await res.body?.cancel(), '');
  const statusCode = res.status;
  if (!statusMatcher(expected)(statusCode)) {
    return failure(started, statusCode, `expected status ${expected}, got ${statusCode}`);
  }
  if (target.bodyContains !== undefined && !body.includes(target.bodyContains)) {
    return failure(
      started,
      statusCode,
      `response body does not contain ${JSON.stringify(target.bodyContains)}`,
    );
  }
  if (target.bodyMatches !== undefined && !new RegExp(target.bodyMatches).test(body)) {
    return failure(started, statusCode, `response body does not match /${target.bodyMatches}/`);
  }
  return { ok: true, latencyMs: elapsed(started), statusCode, error: '' };
}

async function readText(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= limit) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/** TCP: a completed connect; HTTP: any answer below 500 (the dependency is up, whatever it thinks of us). */
async function dependencyProbe(
  network: Network,
  target: CheckTarget,
  signal: AbortSignal,
  started: number,
): Promise<ProbeResult> {
  const url = new URL(target.url);
  if (url.protocol !== 'tcp:') {
    const res = await network.fetch(target.url, {
      signal,
      headers: { 'user-agent': `pylee-health-check/${PYLEE_VERSION}` },
    });
    await res.body?.cancel();
    if (res.status >= 500) return failure(started, res.status, `answered ${res.status}`);
    return { ok: true, latencyMs: elapsed(started), statusCode: res.status, error: '' };
  }
  // The host as a resolver would read it (tcp://2852039166 is 169.254.169.254), checked before
  // connecting; a name is resolved by the guarded lookup, so the address checked is the one connected to.
  const host = canonicalHost(url);
  if (host === undefined) throw new Error(`${url.host} is not a host name or IP address`);
  const why = hostRefusal(host, CHECK_TARGET_POLICY);
  if (why) throw network.guard.refuse(why);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({
      host,
      port: Number(url.port),
      lookup: guardedLookup(CHECK_TARGET_POLICY, network.guard) as unknown as net.LookupFunction,
    });
    const done = (error?: Error) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    const onAbort = () => done(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done());
    socket.once('error', (error) => done(error));
  });
  return { ok: true, latencyMs: elapsed(started), statusCode: 0, error: '' };
}

async function mcpProbe(
  network: Network,
  target: CheckTarget,
  signal: AbortSignal,
  started: number,
): Promise<ProbeResult> {
  let lastStatus = 0;
  // Every request the SDK makes goes through the guarded fetch and carries the probe's signal, and
  // the last HTTP status is kept for the result.
  const boundFetch = async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const res = await network.fetch(input, {
      ...init,
      signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal,
    });
    if (init?.method === 'POST' || res.status >= 400) lastStatus = res.status;
    return res;
  };
  const url = new URL(target.url);
  const transport: Transport & { terminateSession?: () => Promise<void> } =
    target.transport === 'sse'
      ? new SSEClientTransport(url, { fetch: boundFetch })
      : new StreamableHTTPClientTransport(url, { fetch: boundFetch });
  let protocolVersion = '';
  const setProtocolVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version: string) => {
    protocolVersion = version;
    setProtocolVersion?.(version);
  };
  const client = new Client({ name: 'pylee-health-check', version: PYLEE_VERSION });
  try {
    await client.connect(transport, { signal });
    const tools: ToolDescription[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const result = await client.listTools(cursor ? { cursor } : undefined, { signal });
      for (const tool of result.tools) tools.push(toolDescription(tool));
      cursor = result.nextCursor;
      if (!cursor) break;
    }
    tools.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const info = client.getServerVersion();
    return {
      ok: true,
      latencyMs: elapsed(started),
      statusCode: lastStatus,
      error: '',
      protocolVersion,
      ...(info ? { serverInfo: { name: info.name, version: info.version } } : {}),
      toolCount: tools.length,
      toolsHash: toolsHash(tools),
      tools,
    };
  } catch (error) {
    let reason = describeError(error, signal);
    if (lastStatus >= 400 && !reason.includes(String(lastStatus))) reason = `HTTP ${lastStatus}: ${reason}`;
    const result = failure(started, lastStatus, reason);
    return { ...result, ...(protocolVersion ? { protocolVersion } : {}) };
  } finally {
    // Ends the session on servers that keep one; bounded so a dead server cannot hold the probe.
    if (!signal.aborted && transport.terminateSession) {
      await Promise.race([
        transport.terminateSession().catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 500)),
      ]);
    }
    await client.close().catch(() => undefined);
  }
}

function toolDescription(tool: Record<string, unknown>): ToolDescription {
  const out: ToolDescription = { name: String(tool.name), inputSchema: tool.inputSchema ?? {} };
  if (typeof tool.title === 'string') out.title = tool.title;
  if (typeof tool.description === 'string') out.description = tool.description;
  if (tool.outputSchema !== undefined) out.outputSchema = tool.outputSchema;
  if (tool.annotations !== undefined) out.annotations = tool.annotations;
  return out;
}

/** sha256 (hex) over canonical JSON of each tool's name and input schema, sorted by name. */
export function toolsHash(tools: readonly Pick<ToolDescription, 'name' | 'inputSchema'>[]): string {
  const entries = tools
    .map((t) => ({ name: t.name, inputSchema: t.inputSchema }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return createHash('sha256').update(canonicalJson(entries)).digest('hex');
}

/** JSON with object keys sorted at every level, so equal values always serialise to equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
