// The one module that talks to Pylee's API. The browser authenticates with the httpOnly session
// cookie set by POST /session; unsafe requests carry the session's CSRF token, kept in memory only.

export type Permission = 'read' | 'write' | 'deploy' | 'connect' | 'admin';

export interface Session {
  authenticated: true;
  org: { id: string; slug: string };
  token: { id: string | null; name: string };
  permissions: Permission[];
  servers: string[] | null;
  csrfToken: string | null;
}

export interface Server {
  slug: string;
  name: string;
  description: string | null;
  archived?: boolean;
  [key: string]: unknown;
}

export interface Version {
  version: string;
  status: string;
  /** Its maintenance line and whether that is still supported (version detail only). */
  line?: { pattern: string; declared: boolean; endOfSupport: string | null; supported: boolean };
  prerelease?: boolean;
  breaking?: boolean;
  releaseNotes?: string | null;
  migrationGuide?: string | null;
  createdAt?: string;
  packages?: Record<string, unknown>[];
  remotes?: Record<string, unknown>[];
  deprecation?: { message?: string; replacement?: string | null; date?: string | null } | null;
  semverViolation?: string | null;
  transitions?: { from: string | null; to: string; actor: string; reason: string | null; at: string }[];
  variables?: ConfigValue[];
  secrets?: ConfigValue[];
  [key: string]: unknown;
}

export interface ConfigValue {
  name: string;
  scope: string;
  environment: string | null;
  secret: boolean;
  value?: string;
  fingerprint?: string;
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

export interface Latency {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface VersionStats {
  version: string;
  requests: number;
  errors: number;
  errorRate: number;
  throughput: number;
  latency: Latency;
}

export interface SeriesPoint extends Latency {
  time: string;
  requests: number;
  throughput: number;
  /** Null for a step without requests: no requests, no error rate. */
  errorRate: number | null;
  cpu: number | null;
  memory: number | null;
}

export interface Series {
  resolution: string;
  stepSeconds: number;
  points: SeriesPoint[];
}

export interface Delta {
  absolute: number | null;
  relative: number | null;
}

export interface Comparison {
  server: string;
  environment: string | null;
  window: { from: string; to: string };
  baseline: VersionStats;
  candidate: VersionStats;
  deltas: Record<string, Delta | Record<string, Delta>>;
  operations: {
    operation: string;
    baseline: Omit<VersionStats, 'version'>;
    candidate: Omit<VersionStats, 'version'>;
    deltas: Record<string, Delta | Record<string, Delta>>;
  }[];
  newErrorTypes: { errorType: string; errors: number }[];
  /** Both versions' release health over the window; null without an environment. */
  sessions: { baseline: SessionSummary; candidate: SessionSummary } | null;
  /** What changed from baseline to candidate (GET …/changes rows); null when a version is not registered. */
  changes?: ChangeRow[] | null;
}

/** One change between two versions; a secret's before/after is set/unset/changed/rotated, never a value. */
export interface ChangeRow {
  kind: string;
  name: string;
  before: string | null;
  after: string | null;
  scope: string;
  actor: string | null;
  at: string | null;
  detail?: string;
  distance?: string;
  breaking?: boolean;
}

/** Sessions of one version by status, with its crash-free rates (0..1, null without a finished one). */
export interface SessionSummary {
  sessions: {
    total: number;
    healthy: number;
    errored: number;
    crashed: number;
    abnormal: number;
    'moved-by-rollout': number;
    active: number;
  };
  users: number;
  crashFreeSessions: number | null;
  crashFreeUsers: number | null;
  erroredRate: number | null;
}

/** An RFC 9457 problem the API answered with. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, detail: string) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

let csrfToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

/** Called when a request answers 401 (the session ended): the layout sends the user to sign in. */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

type Query = Record<string, string | number | boolean | null | undefined>;

function url(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {}))
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return `/api/v1${path}${qs ? `?${qs}` : ''}`;
}

/** Encodes one path segment (a slug, a version like 1.0.0+build). */
export const seg = encodeURIComponent;

export async function request<T>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; headers?: Record<string, string> } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-pylee-csrf'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(url(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'network-error', 'Pylee did not answer; check that it is running and reload.');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON; reported below
  }
  if (!res.ok) {
    const problem = (body ?? {}) as { code?: string; detail?: string };
    if (res.status === 401 && !path.startsWith('/session')) onUnauthorized?.();
    throw new ApiError(
      res.status,
      problem.code ?? 'http-error',
      problem.detail ?? `${res.status} ${res.statusText}`,
    );
  }
  return body as T;
}

const get = <T>(path: string, query?: Query) => request<T>('GET', path, { query });
const post = <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} });

export const session = {
  /** Who is signed in, or null when nobody is (the API answers that with 200, not 401). */
  async current(): Promise<Session | null> {
    const s = await get<Session | { authenticated: false }>('/session');
    csrfToken = s.authenticated ? s.csrfToken : null;
    return s.authenticated ? s : null;
  },
  async signIn(token: string): Promise<Session> {
    const s = await request<Session>('POST', '/session', {
      headers: { authorization: `Bearer ${token.trim()}` },
    });
    csrfToken = s.csrfToken;
    return s;
  },
  async signOut(): Promise<void> {
    await request('DELETE', '/session').catch(() => undefined);
    csrfToken = null;
  },
};

export interface VulnerabilityFinding {
  package: { registryType: string; identifier: string; version: string };
  advisory: {
    id: string;
    aliases: string[];
    summary: string;
    severity: string;
    score: number | null;
    link: string;
  };
  fixed: string[];
  ignoredBy: { id: string; reason: string; expiresAt: string | null } | null;
}

export interface VersionVulnerabilities {
  scannedAt: string | null;
  coverage: { registryType: string; identifier: string; version: string; status: string; reason?: string }[];
  findings: VulnerabilityFinding[];
  ignored: VulnerabilityFinding[];
  counts: Record<string, number>;
}

export interface VulnerableVersion {
  server: string;
  version: string;
  runningIn: { environment: string; weight: number }[];
  counts: Record<string, number>;
}

export interface ListPage<T> {
  items: T[];
  nextCursor?: string | null;
}

/** Lists come either as an array or as `{ items }`; the UI takes both. */
export function itemsOf<T>(value: T[] | { items?: T[] } | Record<string, unknown>): T[] {
  if (Array.isArray(value)) return value;
  const items = (value as { items?: T[] }).items;
  if (Array.isArray(items)) return items;
  for (const v of Object.values(value)) if (Array.isArray(v)) return v as T[];
  return [];
}

export const api = {
  servers: () => get<Server[] | ListPage<Server>>('/servers').then((r) => itemsOf<Server>(r)),
  server: (s: string) => get<Server>(`/servers/${seg(s)}`),
  versions: (s: string) =>
    get<Version[] | ListPage<Version>>(`/servers/${seg(s)}/versions`).then((r) => itemsOf<Version>(r)),
  version: (s: string, v: string) => get<Version>(`/servers/${seg(s)}/versions/${seg(v)}`),
  lines: (s: string) => get<{ lines: MaintenanceLine[] }>(`/servers/${seg(s)}/lines`).then((r) => r.lines),
  vulnerabilities: (s: string, v: string) =>
    get<VersionVulnerabilities>(`/servers/${seg(s)}/versions/${seg(v)}/vulnerabilities`),
  createIgnore: (body: {
    advisory: string;
    package: string | null;
    server: string | null;
    reason: string;
    expiresAt: string | null;
  }) => post<unknown>('/vulnerability-ignores', body),
  deleteIgnore: (id: string) => request<unknown>('DELETE', `/vulnerability-ignores/${seg(id)}`),
  /** Vulnerable versions that run somewhere now, for the overview's markers. */
  runningVulnerable: () =>
    get<{ versions: VulnerableVersion[] }>('/vulnerabilities', { deployed: 'true' }).then((r) => r.versions),
  metrics: (
    s: string,
    q: {
      version?: string;
      environment?: string;
      window?: string;
      from?: string;
      to?: string;
      step?: number;
      operation?: string;
    },
  ) => get<Series>(`/servers/${seg(s)}/metrics`, q),
  summary: (s: string, v: string, q: { environment?: string; window?: string }) =>
    get<VersionStats & { operations: unknown[] }>(`/servers/${seg(s)}/versions/${seg(v)}/summary`, q),
  compare: (
    s: string,
    q: {
      candidate: string;
      baseline?: string;
      environment?: string;
      window?: string;
      from?: string;
      to?: string;
    },
  ) => get<Comparison>(`/servers/${seg(s)}/compare`, q),
  environments: (s: string) => get<unknown>(`/servers/${seg(s)}/environments`),
  /** The on-call dashboard in one request: every server × environment with figures and the rollback flag. */
  overview: (q: { environment?: string; server?: string; window?: string; points?: number } = {}) =>
    get<Overview>('/overview', q),
  deployments: (s: string, q: { environment?: string; limit?: number } = {}) =>
    get<unknown>(`/servers/${seg(s)}/deployments`, q).then((r) => itemsOf<Deployment>(r as never)),
  deployment: (s: string, id: string) => get<Deployment>(`/servers/${seg(s)}/deployments/${seg(id)}`),
  deploymentAction: (s: string, id: string, action: string, body: Record<string, unknown> = {}) =>
    post<Deployment>(`/servers/${seg(s)}/deployments/${seg(id)}/${action}`, body),
  rollback: (s: string, body: Record<string, unknown>) => post<unknown>(`/servers/${seg(s)}/rollback`, body),
  analyses: (s: string, q: Query = {}) =>
    get<unknown>(`/servers/${seg(s)}/analyses`, q).then((r) => itemsOf<Analysis>(r as never)),
  analysis: (s: string, id: string) => get<Analysis>(`/servers/${seg(s)}/analyses/${seg(id)}`),
  alerts: (q: Query = {}) => get<unknown>('/alerts', q).then((r) => itemsOf<Alert>(r as never)),
  alertRules: () => get<unknown>('/alert-rules').then((r) => itemsOf<Record<string, unknown>>(r as never)),
  silences: () => get<unknown>('/silences').then((r) => itemsOf<Record<string, unknown>>(r as never)),
  expireSilence: (id: string) => request<unknown>('DELETE', `/silences/${seg(id)}`),
  channels: () => get<unknown>('/channels').then((r) => itemsOf<Record<string, unknown>>(r as never)),
  health: (s: string, q: Query = {}) => get<ServerHealth>(`/servers/${seg(s)}/health`, q),
  checkResults: (s: string, id: string, q: Query = {}) =>
    get<{ results: CheckResult[] }>(`/servers/${seg(s)}/health-checks/${seg(id)}/results`, q).then(
      (r) => r.results,
    ),
  audit: (q: Query = {}) => get<{ events: AuditEvent[]; nextCursor: string | null }>('/audit', q),
  tokens: () => get<unknown>('/tokens').then((r) => itemsOf<Record<string, unknown>>(r as never)),
  createToken: (body: { name: string; permissions: Permission[]; servers?: string[] }) =>
    post<{ token: string; id: string }>('/tokens', body),
  revokeToken: (id: string) => request<unknown>('DELETE', `/tokens/${seg(id)}`),
  ingestKeys: () => get<unknown>('/ingest-keys').then((r) => itemsOf<Record<string, unknown>>(r as never)),
  createIngestKey: (body: { name: string; server?: string | null }) =>
    post<{ key: string; id: string }>('/ingest-keys', body),
  revokeIngestKey: (id: string) => request<unknown>('DELETE', `/ingest-keys/${seg(id)}`),
  /** Where MCP clients connect through the gateway, per environment, with the live split of sessions. */
  gateway: (s: string) => get<GatewayEndpoints>(`/servers/${seg(s)}/gateway`),
  /** Every version's sessions by status, crash-free sessions and users, adoption and stage. */
  releaseHealth: (s: string, q: { environment?: string; window?: string } = {}) =>
    get<ReleaseHealth>(`/servers/${seg(s)}/release-health`, q),
};

export type ReleaseStage = 'adopted' | 'replaced' | 'low-adoption';

/** One version's release health in an environment; rates 0..1, null when nothing could be counted. */
export interface VersionHealth {
  version: string;
  /** Sessions seen in the window, by status (mutually exclusive). */
  sessions: {
    total: number;
    healthy: number;
    errored: number;
    crashed: number;
    abnormal: number;
    movedByRollout: number;
    active: number;
  };
  users: number;
  crashFreeSessions: number | null;
  crashFreeUsers: number | null;
  erroredRate: number | null;
  /** Milliseconds, first to last seen of ended sessions. */
  duration: { p50: number | null; p90: number | null };
  /** Share of the environment's sessions and users over the last 24 hours. */
  adoption: { sessions: number | null; users: number | null };
  stage: ReleaseStage;
}

export interface ReleaseHealth {
  server: string;
  environment: string;
  window: { from: string; to: string };
  /** Newest first by semver. */
  versions: VersionHealth[];
  /** Every version pooled. */
  average: { crashFreeSessions: number | null; crashFreeUsers: number | null; erroredRate: number | null };
}

export type GatewayAccess = 'pylee' | 'passthrough' | 'public';

/** What went through the gateway per version in the last `windowSeconds`. */
export interface LiveSplit {
  windowSeconds: number;
  /** Most sessions first; `share` of all sessions counted per version, 0..1. */
  sessions: { version: string; sessions: number; share: number }[];
  requests: { version: string; requests: number }[];
}

export interface GatewayEndpoint {
  environment: string;
  access: GatewayAccess;
  /** Streamable HTTP. */
  url: string;
  /** The older HTTP+SSE transport. */
  sseUrl: string;
  /** `.vscode/mcp.json` and `claude_desktop_config.json`, ready to paste. */
  snippets: { vscode: Record<string, unknown>; claudeDesktop: Record<string, unknown> };
  /** Null when the API could not read the warehouse. */
  live: LiveSplit | null;
}

export interface GatewayEndpoints {
  /** Every environment, in pipeline order. */
  environments: GatewayEndpoint[];
  pinnedUrlTemplate: string;
}

export interface Deployment {
  id: string;
  server?: string;
  version: string;
  environment: string;
  strategy: string;
  status: string;
  steps?: { weight: number; pause?: string | { approval: boolean } | null; analyze?: boolean }[];
  currentStep?: number | null;
  weight?: number | null;
  previousVersion?: string | null;
  baselineVersion?: string | null;
  createdAt?: string;
  updatedAt?: string;
  createdBy?: string | null;
  reason?: string | null;
  rollback?: boolean;
  history?: { status: string; at?: string; time?: string; actor?: string | null; reason?: string | null }[];
  [key: string]: unknown;
}

export interface Analysis {
  id: string;
  server?: string;
  environment?: string | null;
  baseline?: string;
  candidate?: string;
  baselineVersion?: string;
  candidateVersion?: string;
  deploymentId?: string | null;
  status?: string;
  verdict?: string | null;
  score?: number | null;
  reasons?: string[];
  metrics?: Record<string, unknown>[];
  createdAt?: string;
  [key: string]: unknown;
}

export interface Alert {
  id?: string;
  fingerprint?: string;
  ruleName?: string;
  rule?: { name?: string } | string;
  status?: string;
  state?: string;
  severity?: string;
  server?: string | null;
  environment?: string | null;
  version?: string | null;
  value?: number | null;
  threshold?: number | null;
  summary?: string | null;
  annotations?: { summary?: string };
  labels?: Record<string, string>;
  startsAt?: string;
  activeAt?: string;
  endsAt?: string | null;
  /** The rollout its version is the candidate of, while it is. */
  rollout?: {
    deploymentId: string;
    step: number | null;
    steps: number;
    weight: number;
    analysisRunning: boolean;
  } | null;
  /** Rollout steps and configuration changes shortly before it began. */
  correlation?: { kind: string; at: string; text: string; actor: string }[];
  heldBy?: { deploymentId: string; since: string | null } | null;
  [key: string]: unknown;
}

/** A maintenance line of a server (`1.4.x`, `2.x`) and its support state. */
export interface MaintenanceLine {
  pattern: string;
  endOfSupport: string | null;
  supported: boolean;
  description: string;
  latest: string | null;
  newest: string | null;
  versions: number;
}

export interface AuditEvent {
  id: string;
  seq: number;
  at: string;
  actor: { type: string; id: string | null; name: string };
  action: string;
  target: { type: string; id: string | null; name: string | null };
  before?: unknown;
  after?: unknown;
  requestId?: string | null;
  clientAddress?: string | null;
  [key: string]: unknown;
}

export interface CheckResult {
  runId: string;
  time: string;
  ok: boolean;
  latencyMs: number;
  statusCode: number;
  error: string;
  phase: string;
  environment: string;
  version: string;
  toolCount: number;
}

export interface ServerHealth {
  server: string;
  status: 'up' | 'down' | 'unknown';
  checks: {
    id: string;
    name: string;
    kind: string;
    phase: string;
    environment: string | null;
    enabled: boolean;
    status: 'up' | 'down' | 'unknown';
    reason?: string | null;
    lastResult: CheckResult | null;
    uptimePercent: number | null;
    latency: { p50: number | null; p95: number | null };
  }[];
}

/** Totals and a sparkline series (one value per step of `Overview.times`) of one version. */
export interface OverviewFigures extends VersionStats {
  series: {
    requests: number[];
    errorRate: (number | null)[];
    throughput: number[];
    p50: (number | null)[];
    p95: (number | null)[];
  };
}

/** Release health of one version in an overview row; `change` is against the average, 0..1 points. */
export interface OverviewVersionSessions {
  version: string;
  sessions: number;
  active: number;
  crashed: number;
  users: number;
  crashFreeSessions: number | null;
  crashFreeUsers: number | null;
  change: { crashFreeSessions: number | null; crashFreeUsers: number | null };
}

export interface OverviewEnvironment {
  environment: string;
  position: number;
  stable: { version: string; since: string; by: string; deploymentId: string } | null;
  rollout: {
    id: string;
    version: string;
    weight: number;
    status: string;
    strategy: string;
    since: string;
    by: string;
  } | null;
  current: string | null;
  previous: string | null;
  health: 'up' | 'down' | 'unknown' | null;
  alerts: {
    firing: number;
    critical: number;
    items: {
      id: string;
      ruleName: string;
      severity: string;
      version: string | null;
      summary: string | null;
    }[];
  };
  canaryVerdict: { id: string; verdict: string; at: string } | null;
  metrics: { current: OverviewFigures | null; previous: OverviewFigures | null };
  /** Null without any session in the window. */
  sessions: {
    current: OverviewVersionSessions | null;
    previous: OverviewVersionSessions | null;
    average: { sessions: number; crashFreeSessions: number | null; crashFreeUsers: number | null };
  } | null;
  deltas: { errorRate: number | null; p95: number | null };
  rollbackRecommended: boolean;
  reasons: { code: string; message: string }[];
}

export interface Overview {
  window: { from: string; to: string };
  stepSeconds: number;
  times: string[];
  servers: { slug: string; name: string; description: string; environments: OverviewEnvironment[] }[];
}
