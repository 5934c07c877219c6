import path from 'node:path';
import { ConfigError } from './errors.ts';

export const ROLES = ['all', 'api', 'collector', 'gateway', 'alerts'] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Everything Pylee reads from its environment, validated once at start. */
export interface Config {
  role: Role;
  dataDir: string;
  host: string;
  apiPort: number;
  otlpPort: number;
  /** Port of the MCP gateway. */
  gatewayPort: number;
  /** Where MCP clients reach the gateway (`https://mcp.example.com`); unset: `http://<host>:<gatewayPort>`. */
  gatewayUrl: string | undefined;
  gatewayBodyLimit: number;
  /** Browser origins allowed to call the gateway (the MCP spec's Origin check); requests without Origin are not browsers. */
  gatewayAllowedOrigins: string[];
  /** Gateway requests per token (or client address) per rate-limit window. */
  gatewayRateLimitMax: number;
  /** PostgreSQL server; unset means embedded PGlite in `<dataDir>/postgres`. */
  databaseUrl: string | undefined;
  /** ClickHouse server; unset means embedded chDB in `<dataDir>/clickhouse`. */
  clickhouseUrl: string | undefined;
  /** Redis / Valkey; unset means a `redis-server` child process on a unix socket in `<dataDir>/redis`. */
  redisUrl: string | undefined;
  bootstrapToken: string | undefined;
  /** 32-byte key sealing secrets; unset means a key file in the data dir, created on first start. */
  secretKey: Buffer | undefined;
  logLevel: LogLevel;
  /** `pretty` (one readable line per event) on a terminal, JSON lines otherwise, unless set. */
  logFormat: LogFormat;
  apiBodyLimit: number;
  otlpBodyLimit: number;
  /** Days telemetry is kept: raw rows, per-minute and per-hour rollups. */
  retention: { rawDays: number; minuteDays: number; hourDays: number };
  rateLimit: { max: number; windowMs: number };
  shutdownTimeoutMs: number;
  /** Webhook and Slack channels may target private and loopback addresses (tests, demos, on-premise). */
  allowPrivateWebhooks: boolean;
  /** Where people reach Pylee's UI; links in notifications are built from it (none when unset). */
  publicUrl: string | undefined;
  /** OSV exports (all.zip URLs) imported on a schedule; empty: off. */
  advisoriesUrls: string[];
  advisoriesEveryMs: number;
}

interface VariableSpec {
  description: string;
  default?: string;
}

/** The documented variables; the README's configuration table mirrors this list. */
export const VARIABLES = {
  PYLEE_ROLE: {
    description: 'Roles this process runs: all, api, collector, gateway or alerts.',
    default: 'all',
  },
  PYLEE_DATA_DIR: {
    description: 'Directory for the embedded stores (PGlite, chDB, redis-server).',
    default: './data',
  },
  PYLEE_HOST: { description: 'Address the HTTP servers bind to.', default: '127.0.0.1' },
  PYLEE_API_PORT: { description: 'Port of the API and web UI (0 picks a free port).', default: '8080' },
  PYLEE_OTLP_PORT: { description: 'Port of the OTLP/HTTP collector (0 picks a free port).', default: '4318' },
  PYLEE_GATEWAY_PORT: { description: 'Port of the MCP gateway (0 picks a free port).', default: '8081' },
  PYLEE_GATEWAY_URL: {
    description:
      'Base URL MCP clients reach the gateway at (https://mcp.example.com); shown by `pylee gateway url` and the UI. Unset: http://PYLEE_HOST:PYLEE_GATEWAY_PORT.',
  },
  PYLEE_GATEWAY_BODY_LIMIT: {
    description: 'Largest JSON-RPC request body the gateway accepts (e.g. 4MiB).',
    default: '4MiB',
  },
  PYLEE_GATEWAY_ALLOWED_ORIGINS: {
    description:
      'Comma-separated origins (https://app.example.com) whose browsers may call the gateway; others get 403. Requests without an Origin header are not affected.',
  },
  PYLEE_GATEWAY_RATE_LIMIT_MAX: {
    description: 'Gateway requests allowed per token (or client address) per PYLEE_RATE_LIMIT_WINDOW.',
    default: '6000',
  },
  PYLEE_DATABASE_URL: { description: 'PostgreSQL URL (postgres://…); unset: embedded PGlite.' },
  PYLEE_CLICKHOUSE_URL: {
    description: 'ClickHouse HTTP URL (http://user:pass@host:8123/db); unset: embedded chDB.',
  },
  PYLEE_REDIS_URL: {
    description: 'Redis or Valkey URL (redis://…); unset: Pylee starts redis-server itself.',
  },
  PYLEE_BOOTSTRAP_TOKEN: {
    description:
      'Admin token of org `default` (at least 20 characters); unset: one is generated and printed once.',
  },
  PYLEE_SECRET_KEY: {
    description:
      'Key that encrypts secrets (AES-256-GCM): 32 bytes as 64 hex digits or base64. Unset: `<data dir>/secret.key`, created on first start. Set it when several processes share one database.',
  },
  PYLEE_LOG_LEVEL: { description: 'fatal, error, warn, info, debug, trace or silent.', default: 'info' },
  PYLEE_LOG_FORMAT: {
    description:
      'json (one JSON object per line) or pretty (readable lines); unset: pretty when stdout is a terminal, else json.',
  },
  PYLEE_API_BODY_LIMIT: {
    description: 'Largest API request body, in bytes (suffixes KiB, MiB).',
    default: '1MiB',
  },
  PYLEE_OTLP_BODY_LIMIT: {
    description:
      'Largest OTLP request body, compressed or inflated (suffixes KiB, MiB); larger ones get 413.',
    default: '16MiB',
  },
  PYLEE_TELEMETRY_RETENTION_RAW: {
    description: 'How long raw requests and metric points are kept (whole days).',
    default: '7d',
  },
  PYLEE_TELEMETRY_RETENTION_MINUTE: {
    description: 'How long per-minute rollups are kept (whole days).',
    default: '90d',
  },
  PYLEE_TELEMETRY_RETENTION_HOUR: {
    description: 'How long per-hour rollups are kept (whole days).',
    default: '400d',
  },
  PYLEE_RATE_LIMIT_MAX: {
    description: 'API requests allowed per token (or client address) per window.',
    default: '1200',
  },
  PYLEE_RATE_LIMIT_WINDOW: { description: 'Rate-limit window (e.g. 30s, 1m, 1h).', default: '1m' },
  PYLEE_SHUTDOWN_TIMEOUT: {
    description: 'Longest a clean shutdown may take before the process exits.',
    default: '15s',
  },
  PYLEE_ALLOW_PRIVATE_WEBHOOKS: {
    description:
      'true lets Slack and webhook channels target private (10/8, 172.16/12, 192.168/16, fc00::/7) and loopback addresses; link-local and cloud metadata addresses stay refused.',
    default: 'false',
  },
  PYLEE_PUBLIC_URL: {
    description:
      'Base URL people open Pylee at (https://pylee.example.com); notifications link to it. Unset: no links.',
  },
  PYLEE_ADVISORIES_URL: {
    description:
      'OSV exports to import on a schedule: comma-separated all.zip URLs (the public OSV bucket or a mirror). Unset: off.',
  },
  PYLEE_ADVISORIES_EVERY: { description: 'How often PYLEE_ADVISORIES_URL is imported.', default: '24h' },
} satisfies Record<string, VariableSpec>;

type VariableName = keyof typeof VARIABLES;

/** Read by the `pylee` CLI's client commands and the test suite, not by the server. */
export const CLIENT_VARIABLES = ['PYLEE_URL', 'PYLEE_TOKEN', 'PYLEE_CONFIG_DIR'];
const IGNORED_PREFIXES = ['PYLEE_TEST_'];

/**
 * Parses and validates every `PYLEE_*` variable. Throws {@link ConfigError} naming the first bad one,
 * including unknown `PYLEE_*` names, which are almost always typos.
 */
/**
 * Reads and validates every `PYLEE_*` variable. `stdoutIsTty` picks the log format when
 * `PYLEE_LOG_FORMAT` is unset.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: { role?: string; stdoutIsTty?: boolean } = {},
): Config {
  for (const name of Object.keys(env)) {
    if (!name.startsWith('PYLEE_') || name in VARIABLES || CLIENT_VARIABLES.includes(name)) continue;
    if (IGNORED_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
    const hint = closest(name, Object.keys(VARIABLES));
    throw new ConfigError(name, `unknown variable${hint ? `; did you mean ${hint}?` : ''}`);
  }
  const get = (name: VariableName): string | undefined => {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') return value.trim();
    const spec: VariableSpec = VARIABLES[name];
    return spec.default;
  };

  const role = overrides.role ?? get('PYLEE_ROLE');
  const bootstrapToken = get('PYLEE_BOOTSTRAP_TOKEN');
  if (bootstrapToken !== undefined && (bootstrapToken.length < 20 || /\s/.test(bootstrapToken))) {
    throw new ConfigError('PYLEE_BOOTSTRAP_TOKEN', 'must be at least 20 characters with no whitespace');
  }
  const apiPort = port('PYLEE_API_PORT', get('PYLEE_API_PORT'));
  const otlpPort = port('PYLEE_OTLP_PORT', get('PYLEE_OTLP_PORT'));
  if (apiPort !== 0 && apiPort === otlpPort) {
    throw new ConfigError('PYLEE_OTLP_PORT', `must differ from PYLEE_API_PORT (both are ${apiPort})`);
  }
  const gatewayPort = port('PYLEE_GATEWAY_PORT', get('PYLEE_GATEWAY_PORT'));
  if (gatewayPort !== 0 && (gatewayPort === apiPort || gatewayPort === otlpPort)) {
    throw new ConfigError(
      'PYLEE_GATEWAY_PORT',
      `must differ from PYLEE_API_PORT and PYLEE_OTLP_PORT (${gatewayPort} is taken)`,
    );
  }

  return {
    role: oneOf('PYLEE_ROLE', role, ROLES),
    dataDir: path.resolve(get('PYLEE_DATA_DIR') as string),
    host: host('PYLEE_HOST', get('PYLEE_HOST') as string),
    apiPort,
    otlpPort,
    gatewayPort,
    gatewayUrl: url('PYLEE_GATEWAY_URL', get('PYLEE_GATEWAY_URL'), ['http:', 'https:'])?.replace(/\/+$/, ''),
    gatewayBodyLimit: bytes('PYLEE_GATEWAY_BODY_LIMIT', get('PYLEE_GATEWAY_BODY_LIMIT') as string),
    gatewayAllowedOrigins: origins('PYLEE_GATEWAY_ALLOWED_ORIGINS', get('PYLEE_GATEWAY_ALLOWED_ORIGINS')),
    gatewayRateLimitMax: positiveInt(
      'PYLEE_GATEWAY_RATE_LIMIT_MAX',
      get('PYLEE_GATEWAY_RATE_LIMIT_MAX') as string,
    ),
    databaseUrl: url('PYLEE_DATABASE_URL', get('PYLEE_DATABASE_URL'), ['postgres:', 'postgresql:']),
    clickhouseUrl: url('PYLEE_CLICKHOUSE_URL', get('PYLEE_CLICKHOUSE_URL'), ['http:', 'https:']),
    redisUrl: url('PYLEE_REDIS_URL', get('PYLEE_REDIS_URL'), ['redis:', 'rediss:', 'unix:']),
    bootstrapToken,
    secretKey: secretKey('PYLEE_SECRET_KEY', get('PYLEE_SECRET_KEY')),
    logLevel: oneOf('PYLEE_LOG_LEVEL', get('PYLEE_LOG_LEVEL'), LOG_LEVELS),
    logFormat: oneOf(
      'PYLEE_LOG_FORMAT',
      get('PYLEE_LOG_FORMAT') ?? (overrides.stdoutIsTty ? 'pretty' : 'json'),
      LOG_FORMATS,
    ),
    apiBodyLimit: bytes('PYLEE_API_BODY_LIMIT', get('PYLEE_API_BODY_LIMIT') as string),
    otlpBodyLimit: bytes('PYLEE_OTLP_BODY_LIMIT', get('PYLEE_OTLP_BODY_LIMIT') as string),
    retention: {
      rawDays: days('PYLEE_TELEMETRY_RETENTION_RAW', get('PYLEE_TELEMETRY_RETENTION_RAW') as string),
      minuteDays: days('PYLEE_TELEMETRY_RETENTION_MINUTE', get('PYLEE_TELEMETRY_RETENTION_MINUTE') as string),
      hourDays: days('PYLEE_TELEMETRY_RETENTION_HOUR', get('PYLEE_TELEMETRY_RETENTION_HOUR') as string),
    },
    rateLimit: {
      max: positiveInt('PYLEE_RATE_LIMIT_MAX', get('PYLEE_RATE_LIMIT_MAX') as string),
      windowMs: duration('PYLEE_RATE_LIMIT_WINDOW', get('PYLEE_RATE_LIMIT_WINDOW') as string),
    },
    shutdownTimeoutMs: duration('PYLEE_SHUTDOWN_TIMEOUT', get('PYLEE_SHUTDOWN_TIMEOUT') as string),
    allowPrivateWebhooks: boolean(
      'PYLEE_ALLOW_PRIVATE_WEBHOOKS',
      get('PYLEE_ALLOW_PRIVATE_WEBHOOKS') as string,
    ),
    publicUrl: url('PYLEE_PUBLIC_URL', get('PYLEE_PUBLIC_URL'), ['http:', 'https:'])?.replace(/\/+$/, ''),
    advisoriesUrls: (get('PYLEE_ADVISORIES_URL') ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== '')
      .map((part) => url('PYLEE_ADVISORIES_URL', part, ['http:', 'https:']) as string),
    advisoriesEveryMs: duration('PYLEE_ADVISORIES_EVERY', get('PYLEE_ADVISORIES_EVERY') as string),
  };
}

function origins(name: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      let parsed: URL;
      try {
        parsed = new URL(part);
      } catch {
        throw new ConfigError(name, `${JSON.stringify(part)} is not an origin like https://app.example.com`);
      }
      if (parsed.origin === 'null' || parsed.origin !== part.replace(/\/+$/, '')) {
        throw new ConfigError(name, `${JSON.stringify(part)} is not an origin like https://app.example.com`);
      }
      return parsed.origin;
    });
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T {
  if (allowed.includes(value as T)) return value as T;
  throw new ConfigError(name, `"${value}" is not one of ${allowed.join(', ')}`);
}

function port(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!/^\d+$/.test(value ?? '') || n > 65535) {
    throw new ConfigError(name, `"${value}" is not a TCP port (0-65535)`);
  }
  return n;
}

function host(name: string, value: string): string {
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(value))
    throw new ConfigError(name, `"${value}" is not a host name or address`);
  return value;
}

function boolean(name: string, value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new ConfigError(name, `"${value}" is not true or false`);
}

function positiveInt(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new ConfigError(name, `"${value}" is not a positive whole number`);
  }
  return Number(value);
}

function url(name: string, value: string | undefined, protocols: string[]): string | undefined {
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `is not a URL (expected ${protocols[0]}//…)`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      name,
      `scheme "${parsed.protocol}" is not supported; use ${protocols.join(' or ')}`,
    );
  }
  return value;
}

/** A 256-bit key as 64 hex digits or base64 (44 characters). */
export function secretKey(name: string, value: string | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  const key = /^[0-9a-f]{64}$/i.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  if (key.length !== 32 || (!/^[0-9a-f]{64}$/i.test(value) && key.toString('base64') !== value)) {
    throw new ConfigError(
      name,
      'must be 32 bytes as 64 hex digits or base64 (e.g. the output of `openssl rand -hex 32`)',
    );
  }
  return key;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KIB: 1024,
  KB: 1000,
  MIB: 1024 ** 2,
  MB: 1000 ** 2,
};

/** `1048576`, `512KiB`, `16MiB`. */
export function bytes(name: string, value: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(value);
  const unit = SIZE_UNITS[match?.[2]?.toUpperCase() ?? 'x'];
  if (!match || unit === undefined || Number(match[1]) < 1) {
    throw new ConfigError(name, `"${value}" is not a size (e.g. 1048576, 512KiB, 16MiB)`);
  }
  return Number(match[1]) * unit;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `5m`, `1h`, `7d`. */
export function duration(name: string, value: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (!match || Number(match[1]) < 1) {
    throw new ConfigError(name, `"${value}" is not a duration (e.g. 500ms, 30s, 5m, 1h, 7d)`);
  }
  return Number(match[1]) * (DURATION_UNITS[match[2] as string] as number);
}

/** A duration in whole days (`7d`, `48h`): ClickHouse TTLs here are kept per day. */
function days(name: string, value: string): number {
  const ms = duration(name, value);
  if (ms % 86_400_000 !== 0)
    throw new ConfigError(name, `"${value}" is not a whole number of days (e.g. 7d, 90d)`);
  return ms / 86_400_000;
}

function closest(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const candidate of candidates) {
    const d = levenshtein(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}
