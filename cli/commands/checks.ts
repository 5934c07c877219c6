import { api, query, segment, shortTime, table, type Command } from '../client.ts';

interface CheckView {
  id: string;
  name: string;
  kind: string;
  phase: string;
  environment: string | null;
  versionSelector: string | null;
  url: string;
  interval: string;
  timeout: string;
  enabled: boolean;
}

interface ResultView {
  runId: string;
  time: string;
  ok: boolean;
  latencyMs: number;
  statusCode: number;
  error: string;
  version: string;
  protocolVersion: string;
  toolCount: number;
  toolsHash: string;
}

interface HealthView {
  server: string;
  status: string;
  window: { from: string; to: string };
  checks: {
    id: string;
    name: string;
    kind: string;
    phase: string;
    status: string;
    reason: string | null;
    lastResult: ResultView | null;
    uptimePercent: number | null;
    latency: { p50: number | null; p95: number | null };
  }[];
}

const checksPath = (server: string) => `/servers/${segment(server)}/health-checks`;
const ms = (v: number | null) => (v === null ? '-' : `${Math.round(v * 10) / 10} ms`);

function describeResult(r: ResultView): string {
  const mcp = r.protocolVersion
    ? ` · protocol ${r.protocolVersion} · ${r.toolCount} tools · ${r.toolsHash.slice(0, 12)}`
    : '';
  return `${r.ok ? 'PASS' : 'FAIL'} in ${ms(r.latencyMs)}${r.statusCode ? ` · HTTP ${r.statusCode}` : ''}${mcp}${r.error ? `\n${r.error}` : ''}`;
}

const CHECK_FLAGS = {
  kind: { type: 'string', value: 'http|mcp|dependency', description: 'what to probe' },
  // Not --url: that one is the Pylee API's, for every command.
  target: { type: 'string', value: 'U', description: 'http(s) URL; tcp://host:port for a dependency' },
  phase: { type: 'string', value: 'runtime|dependency|startup', description: 'when it runs' },
  env: { type: 'string', value: 'E', description: 'only this environment' },
  versions: { type: 'string', value: 'R', description: 'only versions matching this semver range' },
  interval: { type: 'string', value: 'D', description: 'e.g. 30s (startup: between rounds)' },
  timeout: { type: 'string', value: 'D', description: 'per run, e.g. 5s' },
  method: { type: 'string', value: 'M', description: 'http: request method' },
  'expect-status': { type: 'string', value: 'S', description: 'http: e.g. 2xx, 200,204' },
  'body-contains': { type: 'string', value: 'T', description: 'http: the body must contain T' },
  transport: { type: 'string', value: 'streamable-http|sse', description: 'mcp transport' },
  passes: { type: 'string', value: 'N', description: 'startup: passes in a row required' },
  'startup-timeout': { type: 'string', value: 'D', description: 'startup: how long a deployment waits' },
} as const;

function checkBody(flags: Record<string, unknown>): Record<string, unknown> {
  const f = flags as Record<string, string | undefined>;
  return {
    kind: f.kind,
    url: f.target,
    phase: f.phase,
    environment: f.env,
    versionSelector: f.versions,
    interval: f.interval,
    timeout: f.timeout,
    method: f.method,
    expectedStatus: f['expect-status'],
    bodyContains: f['body-contains'],
    transport: f.transport,
    requiredPasses: f.passes === undefined ? undefined : Number(f.passes),
    startupTimeout: f['startup-timeout'],
  };
}

export const checkCommands: Command[] = [
  {
    name: 'checks create',
    args: ['<server>', '<name>'],
    summary: 'add a health check to a server',
    flags: {
      ...CHECK_FLAGS,
      kind: { ...CHECK_FLAGS.kind, required: true },
      target: { ...CHECK_FLAGS.target, required: true },
    },
    async run(ctx) {
      const [server, name] = ctx.positionals as [string, string];
      const check = await api<CheckView>(ctx.client, 'POST', checksPath(server), {
        name,
        ...checkBody(ctx.flags),
      });
      ctx.print(
        check,
        `created ${check.phase} ${check.kind} check "${check.name}" (${check.id}) every ${check.interval}`,
      );
    },
  },
  {
    name: 'checks list',
    args: ['<server>'],
    summary: "list a server's health checks",
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const { checks } = await api<{ checks: CheckView[] }>(ctx.client, 'GET', checksPath(server));
      ctx.print(
        checks,
        checks.length
          ? table(
              ['ID', 'NAME', 'KIND', 'PHASE', 'ENV', 'EVERY', 'ENABLED', 'URL'],
              checks.map((c) => [
                c.id,
                c.name,
                c.kind,
                c.phase,
                c.environment ?? '*',
                c.interval,
                c.enabled ? 'yes' : 'no',
                c.url,
              ]),
            )
          : `no health checks on ${server}`,
      );
    },
  },
  {
    name: 'checks status',
    args: ['<server>'],
    summary: 'status, uptime and latency of every check (exit 1 if one is down)',
    flags: {
      window: { type: 'string', value: 'D', description: 'e.g. 1h, 24h (default), 7d' },
      env: { type: 'string', value: 'E', description: 'only checks of this environment' },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const health = await api<HealthView>(
        ctx.client,
        'GET',
        `/servers/${segment(server)}/health${query({ window: ctx.flags.window as string | undefined, environment: ctx.flags.env as string | undefined })}`,
      );
      ctx.print(
        health,
        [
          `${health.server}: ${health.status.toUpperCase()} (${shortTime(health.window.from)} – ${shortTime(health.window.to)} UTC)`,
          table(
            ['NAME', 'PHASE', 'STATUS', 'UPTIME', 'P50', 'P95', 'LAST'],
            health.checks.map((c) => [
              c.name,
              c.phase,
              c.status,
              c.uptimePercent === null ? '-' : `${c.uptimePercent}%`,
              ms(c.latency.p50),
              ms(c.latency.p95),
              c.lastResult
                ? `${shortTime(c.lastResult.time)} ${c.lastResult.ok ? 'ok' : c.lastResult.error}`
                : (c.reason ?? '-'),
            ]),
          ),
        ].join('\n'),
      );
      return health.status === 'down' ? 1 : 0;
    },
  },
  {
    name: 'checks run',
    args: ['<server>', '<id>'],
    summary: 'run a check now (exit 1 if it fails)',
    async run(ctx) {
      const [server, id] = ctx.positionals as [string, string];
      const result = await api<ResultView>(ctx.client, 'POST', `${checksPath(server)}/${segment(id)}/run`);
      ctx.print(result, describeResult(result));
      return result.ok ? 0 : 1;
    },
  },
  {
    name: 'checks delete',
    args: ['<server>', '<id>'],
    summary: 'delete a health check (its results stay until they expire)',
    async run(ctx) {
      const [server, id] = ctx.positionals as [string, string];
      const check = await api<CheckView>(ctx.client, 'DELETE', `${checksPath(server)}/${segment(id)}`);
      ctx.print(check, `deleted check "${check.name}"`);
    },
  },
];
