import semver from 'semver';
import { duration } from '../config.ts';
import { BadRequestError, ConfigError } from '../errors.ts';
import { canonicalHost, hostRefusal, TargetRefused, type SsrfPolicy } from '../net/ssrf.ts';
import { SLUG_PATTERN } from '../slug.ts';

export const CHECK_KINDS = ['http', 'mcp', 'dependency'] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];

/** `startup`: after a deployment, until N passes in a row; `runtime` and `dependency`: every interval. */
export const CHECK_PHASES = ['startup', 'runtime', 'dependency'] as const;
export type CheckPhase = (typeof CHECK_PHASES)[number];

export const MCP_TRANSPORTS = ['streamable-http', 'sse'] as const;
export type McpTransport = (typeof MCP_TRANSPORTS)[number];

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** What a check probes; which fields apply depends on the kind. */
export interface CheckTarget {
  /** http/mcp: an http(s) URL; dependency: `tcp://host:port` or an http(s) URL. */
  url: string;
  /** http only. @defaultValue 'GET' */
  method?: HttpMethod;
  /** http only: `2xx`, `200`, `200,204`, `200-399`… @defaultValue '2xx' */
  expectedStatus?: string;
  /** http only: the response body must contain this text. */
  bodyContains?: string;
  /** http only: the response body must match this regular expression. */
  bodyMatches?: string;
  /** mcp only. @defaultValue 'streamable-http' */
  transport?: McpTransport;
}

export interface HealthCheck {
  id: string;
  orgId: string;
  server: string;
  name: string;
  kind: CheckKind;
  phase: CheckPhase;
  environment: string | null;
  versionSelector: string | null;
  target: CheckTarget;
  intervalMs: number;
  timeoutMs: number;
  requiredPasses: number;
  startupTimeoutMs: number;
  enabled: boolean;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

/** What a user sends to create a check (and, all optional, to change one). */
export interface CheckInput {
  name?: string | undefined;
  kind?: CheckKind | undefined;
  phase?: CheckPhase | undefined;
  environment?: string | null | undefined;
  versionSelector?: string | null | undefined;
  url?: string | undefined;
  method?: HttpMethod | undefined;
  expectedStatus?: string | null | undefined;
  bodyContains?: string | null | undefined;
  bodyMatches?: string | null | undefined;
  transport?: McpTransport | undefined;
  /** A duration such as `30s`. */
  interval?: string | undefined;
  timeout?: string | undefined;
  requiredPasses?: number | undefined;
  startupTimeout?: string | undefined;
  enabled?: boolean | undefined;
}

export const LIMITS = {
  minIntervalMs: 5_000,
  /** Startup rounds may repeat faster: a deployment is waiting, and they stop once it is verified. */
  minStartupIntervalMs: 1_000,
  maxIntervalMs: 86_400_000,
  minTimeoutMs: 100,
  maxTimeoutMs: 60_000,
  maxRequiredPasses: 100,
  minStartupTimeoutMs: 1_000,
  maxStartupTimeoutMs: 6 * 3_600_000,
} as const;

export const DEFAULTS = {
  runtimeIntervalMs: 30_000,
  /** Startup checks retry faster: a deployment is waiting on them. */
  startupIntervalMs: 5_000,
  timeoutMs: 10_000,
  requiredPasses: 3,
  startupTimeoutMs: 300_000,
} as const;

/** The stored form of a check's settings, validated. */
export type CheckSpec = Pick<
  HealthCheck,
  | 'name'
  | 'kind'
  | 'phase'
  | 'environment'
  | 'versionSelector'
  | 'target'
  | 'intervalMs'
  | 'timeoutMs'
  | 'requiredPasses'
  | 'startupTimeoutMs'
  | 'enabled'
>;

const KIND_FIELDS: Record<CheckKind, (keyof CheckInput)[]> = {
  http: ['method', 'expectedStatus', 'bodyContains', 'bodyMatches'],
  mcp: ['transport'],
  dependency: [],
};
const TARGET_FIELDS = ['method', 'expectedStatus', 'bodyContains', 'bodyMatches', 'transport'] as const;

/**
 * Validates a new check (`existing` undefined) or a change to one, and returns the complete settings.
 * Every problem is a {@link BadRequestError} naming the field and an example of a good value.
 */
export function checkSpec(input: CheckInput, existing?: CheckSpec): CheckSpec {
  const kind = input.kind ?? existing?.kind;
  if (!kind) throw new BadRequestError('kind is required: http, mcp or dependency', 'invalid-check');
  if (existing && input.kind && input.kind !== existing.kind) {
    throw new BadRequestError(
      `a check's kind cannot change (it is ${existing.kind}); create a new check instead`,
      'invalid-check',
    );
  }
  const name = input.name ?? existing?.name;
  if (!name || !/^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,99}$/.test(name)) {
    throw new BadRequestError(
      `check name ${JSON.stringify(name ?? '')} must be 1-100 letters, digits, spaces or . _ : / - (e.g. "mcp tools/list")`,
      'invalid-check-name',
    );
  }
  for (const field of TARGET_FIELDS) {
    if (input[field] !== undefined && input[field] !== null && !KIND_FIELDS[kind].includes(field)) {
      throw new BadRequestError(`${field} does not apply to ${kind} checks`, 'invalid-check');
    }
  }

  const phase = input.phase ?? existing?.phase ?? (kind === 'dependency' ? 'dependency' : 'runtime');
  const environment = input.environment === undefined ? (existing?.environment ?? null) : input.environment;
  if (environment !== null && !new RegExp(SLUG_PATTERN).test(environment)) {
    throw new BadRequestError(
      `environment "${environment}" is not an environment name (lowercase letters, digits and dashes, e.g. production)`,
      'invalid-environment',
    );
  }
  const versionSelector = checkVersionSelector(
    input.versionSelector === undefined ? (existing?.versionSelector ?? null) : input.versionSelector,
  );

  const target = checkTarget(kind, input, existing?.target);
  const intervalMs =
    input.interval !== undefined
      ? checkDuration(
          'interval',
          input.interval,
          phase === 'startup' ? LIMITS.minStartupIntervalMs : LIMITS.minIntervalMs,
          LIMITS.maxIntervalMs,
        )
      : (existing?.intervalMs ??
        (phase === 'startup' ? DEFAULTS.startupIntervalMs : DEFAULTS.runtimeIntervalMs));
  const timeoutMs =
    input.timeout !== undefined
      ? checkDuration('timeout', input.timeout, LIMITS.minTimeoutMs, LIMITS.maxTimeoutMs)
      : (existing?.timeoutMs ?? Math.min(DEFAULTS.timeoutMs, intervalMs));
  if (timeoutMs > intervalMs) {
    throw new BadRequestError(
      `timeout (${timeoutMs} ms) must not be longer than the interval (${intervalMs} ms), or runs would overlap`,
      'invalid-timeout',
    );
  }
  const requiredPasses = input.requiredPasses ?? existing?.requiredPasses ?? DEFAULTS.requiredPasses;
  if (!Number.isInteger(requiredPasses) || requiredPasses < 1 || requiredPasses > LIMITS.maxRequiredPasses) {
    throw new BadRequestError(
      `requiredPasses must be a whole number from 1 to ${LIMITS.maxRequiredPasses} (e.g. 3)`,
      'invalid-required-passes',
    );
  }
  const startupTimeoutMs =
    input.startupTimeout !== undefined
      ? checkDuration(
          'startupTimeout',
          input.startupTimeout,
          LIMITS.minStartupTimeoutMs,
          LIMITS.maxStartupTimeoutMs,
        )
      : (existing?.startupTimeoutMs ?? DEFAULTS.startupTimeoutMs);
  return {
    name,
    kind,
    phase,
    environment,
    versionSelector,
    target,
    intervalMs,
    timeoutMs,
    requiredPasses,
    startupTimeoutMs,
    enabled: input.enabled ?? existing?.enabled ?? true,
  };
}

function checkTarget(kind: CheckKind, input: CheckInput, existing: CheckTarget | undefined): CheckTarget {
  const url = input.url ?? existing?.url;
  if (!url) throw new BadRequestError(`url is required for ${kind} checks`, 'invalid-url');
  checkUrl(kind, url);
  const pick = <K extends keyof CheckTarget>(key: K): CheckTarget[K] | undefined => {
    const given = input[key];
    if (given === null) return undefined;
    return (given ?? existing?.[key]) as CheckTarget[K] | undefined;
  };
  const target: CheckTarget = { url };
  if (kind === 'http') {
    const method = pick('method');
    if (method) target.method = method;
    const expectedStatus = pick('expectedStatus');
    if (expectedStatus) {
      statusMatcher(expectedStatus);
      target.expectedStatus = expectedStatus;
    }
    const bodyContains = pick('bodyContains');
    if (bodyContains) target.bodyContains = bodyContains;
    const bodyMatches = pick('bodyMatches');
    if (bodyMatches) {
      try {
        new RegExp(bodyMatches);
      } catch (error) {
        throw new BadRequestError(
          `bodyMatches is not a valid regular expression: ${(error as Error).message}`,
          'invalid-body-pattern',
        );
      }
      target.bodyMatches = bodyMatches;
    }
  }
  if (kind === 'mcp') {
    const transport = pick('transport');
    if (transport) target.transport = transport;
  }
  return target;
}

/**
 * Health checks target services the user owns, often on private networks, so private and loopback
 * addresses are allowed. Link-local addresses (where cloud metadata services answer), metadata
 * names and addresses, 0.0.0.0 and the other special-purpose ranges are not: the same guard as
 * webhooks' (`core/net/ssrf.ts`), checked when a check is saved and again by every run.
 */
export const CHECK_TARGET_POLICY: SsrfPolicy = { allowPrivate: true };

/** A health-check target the SSRF guard refuses, at save (400) or when a run connects. */
export class CheckTargetRefused extends TargetRefused {
  constructor(detail: string) {
    super(detail, 'health-check-target-refused');
  }
}

/** The sentence a refused target is reported with when a check is saved. */
export const refusedTarget = (url: string, why: string) =>
  new CheckTargetRefused(
    `url ${JSON.stringify(url)} is refused: ${why}; health checks may target public, private and loopback addresses, not link-local, cloud metadata or other special-purpose ones`,
  );

/** Scheme, port and host checks; the addresses a host name resolves to are checked in `target-guard.ts`. */
function checkUrl(kind: CheckKind, url: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  const schemes = kind === 'dependency' ? ['http:', 'https:', 'tcp:'] : ['http:', 'https:'];
  const example =
    kind === 'dependency'
      ? 'tcp://db.internal:5432 or https://api.example.com/health'
      : kind === 'mcp'
        ? 'https://mcp.example.com/mcp'
        : 'https://api.example.com/health';
  if (!parsed || !schemes.includes(parsed.protocol) || !parsed.hostname) {
    throw new BadRequestError(
      `url ${JSON.stringify(url)} is not a ${schemes.map((s) => s.slice(0, -1)).join(', ')} URL for a ${kind} check (e.g. ${example})`,
      'invalid-url',
    );
  }
  if (parsed.protocol === 'tcp:' && (!parsed.port || parsed.pathname.replace(/^\/+/, '') !== '')) {
    throw new BadRequestError(
      `url ${JSON.stringify(url)} must be tcp://host:port with a port and no path (e.g. tcp://db.internal:5432)`,
      'invalid-url',
    );
  }
  const host = canonicalHost(parsed);
  if (host === undefined) {
    throw new BadRequestError(
      `url ${JSON.stringify(url)} has no valid host name or IP address (e.g. ${example})`,
      'invalid-url',
    );
  }
  const why = hostRefusal(host, CHECK_TARGET_POLICY);
  if (why) throw refusedTarget(url, why);
}

function checkDuration(field: string, value: string, min: number, max: number): number {
  let ms: number;
  try {
    ms = duration(field, value);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new BadRequestError(
        `${field} "${value}" is not a duration (e.g. 500ms, 30s, 5m)`,
        `invalid-${kebab(field)}`,
      );
    }
    throw error;
  }
  if (ms < min || ms > max) {
    throw new BadRequestError(
      `${field} ${value} is out of range: it must be from ${formatMs(min)} to ${formatMs(max)}`,
      `invalid-${kebab(field)}`,
    );
  }
  return ms;
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function checkVersionSelector(selector: string | null): string | null {
  if (selector === null || selector === '') return null;
  if (!semver.validRange(selector)) {
    throw new BadRequestError(
      `versionSelector "${selector}" is neither a version nor a semver range (e.g. 1.2.0, >=1.2.0 <2, ^2)`,
      'invalid-version-selector',
    );
  }
  return selector;
}

/** Whether a check applies to `version` (a check without a selector applies to every version). */
export function selectsVersion(selector: string | null, version: string | null | undefined): boolean {
  if (selector === null) return true;
  if (!version) return false;
  return semver.satisfies(version, selector, { includePrerelease: true });
}

/** Whether a check applies to `environment` (a check without one applies to every environment). */
export function selectsEnvironment(checkEnvironment: string | null, environment: string | null | undefined) {
  return checkEnvironment === null || checkEnvironment === environment;
}

/**
 * Parses an expected-status spec: comma-separated codes (`200`), classes (`2xx`) and ranges
 * (`200-299`). Throws a {@link BadRequestError} for anything else.
 */
export function statusMatcher(spec: string): (status: number) => boolean {
  const parts = spec.split(',').map((p) => p.trim());
  const tests = parts.map((part) => {
    let m: RegExpExecArray | null;
    if ((m = /^([1-5])xx$/i.exec(part))) {
      const cls = Number(m[1]);
      return (s: number) => Math.floor(s / 100) === cls;
    }
    if ((m = /^([1-5]\d\d)$/.exec(part))) {
      const code = Number(m[1]);
      return (s: number) => s === code;
    }
    if ((m = /^([1-5]\d\d)-([1-5]\d\d)$/.exec(part)) && Number(m[1]) <= Number(m[2])) {
      const [lo, hi] = [Number(m[1]), Number(m[2])];
      return (s: number) => s >= lo && s <= hi;
    }
    throw new BadRequestError(
      `expectedStatus "${spec}" is not a list of status codes, classes or ranges (e.g. 2xx, 200, 200,204, 200-399)`,
      'invalid-expected-status',
    );
  });
  return (status) => tests.some((t) => t(status));
}
