import { describe, expect, it } from 'vitest';
import { loadConfig, VARIABLES } from '#core/config.ts';
import { ConfigError } from '#core/errors.ts';

function errorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be rejected`);
}

describe('loadConfig', () => {
  it('gives the documented defaults on an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      role: 'all',
      host: '127.0.0.1',
      apiPort: 8080,
      otlpPort: 4318,
      databaseUrl: undefined,
      clickhouseUrl: undefined,
      redisUrl: undefined,
      logLevel: 'info',
      logFormat: 'json',
      apiBodyLimit: 1024 * 1024,
      otlpBodyLimit: 16 * 1024 * 1024,
      retention: { rawDays: 7, minuteDays: 90, hourDays: 400 },
      rateLimit: { max: 1200, windowMs: 60_000 },
      shutdownTimeoutMs: 15_000,
    });
    expect(config.dataDir).toMatch(/\/data$/);
  });

  it('parses every variable it documents', () => {
    const config = loadConfig({
      PYLEE_ROLE: 'collector',
      PYLEE_DATA_DIR: '/var/lib/pylee',
      PYLEE_HOST: '0.0.0.0',
      PYLEE_API_PORT: '9000',
      PYLEE_OTLP_PORT: '0',
      PYLEE_DATABASE_URL: 'postgres://u:p@db:5432/pylee',
      PYLEE_CLICKHOUSE_URL: 'http://ch:8123/pylee',
      PYLEE_REDIS_URL: 'redis://redis:6379',
      PYLEE_BOOTSTRAP_TOKEN: 'pyl_abcdefghijklmnopqrstuvwxyz',
      PYLEE_SECRET_KEY: 'ab'.repeat(32),
      PYLEE_LOG_LEVEL: 'debug',
      PYLEE_LOG_FORMAT: 'pretty',
      PYLEE_API_BODY_LIMIT: '16MiB',
      PYLEE_OTLP_BODY_LIMIT: '4MiB',
      PYLEE_TELEMETRY_RETENTION_RAW: '2d',
      PYLEE_TELEMETRY_RETENTION_MINUTE: '30d',
      PYLEE_TELEMETRY_RETENTION_HOUR: '365d',
      PYLEE_RATE_LIMIT_MAX: '10',
      PYLEE_RATE_LIMIT_WINDOW: '30s',
      PYLEE_SHUTDOWN_TIMEOUT: '500ms',
      PYLEE_ALLOW_PRIVATE_WEBHOOKS: 'true',
      PYLEE_PUBLIC_URL: 'https://pylee.example.com/',
      PYLEE_GATEWAY_PORT: '9100',
      PYLEE_GATEWAY_URL: 'https://mcp.example.com/',
      PYLEE_GATEWAY_BODY_LIMIT: '1MiB',
      PYLEE_GATEWAY_ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:5173',
      PYLEE_GATEWAY_RATE_LIMIT_MAX: '50',
      PYLEE_ADVISORIES_URL: 'https://osv.example.com/npm/all.zip, https://osv.example.com/PyPI/all.zip',
      PYLEE_ADVISORIES_EVERY: '6h',
    });
    expect(config).toEqual({
      role: 'collector',
      dataDir: '/var/lib/pylee',
      host: '0.0.0.0',
      apiPort: 9000,
      otlpPort: 0,
      databaseUrl: 'postgres://u:p@db:5432/pylee',
      clickhouseUrl: 'http://ch:8123/pylee',
      redisUrl: 'redis://redis:6379',
      bootstrapToken: 'pyl_abcdefghijklmnopqrstuvwxyz',
      secretKey: Buffer.alloc(32, 0xab),
      logLevel: 'debug',
      logFormat: 'pretty',
      apiBodyLimit: 16 * 1024 * 1024,
      otlpBodyLimit: 4 * 1024 * 1024,
      retention: { rawDays: 2, minuteDays: 30, hourDays: 365 },
      rateLimit: { max: 10, windowMs: 30_000 },
      shutdownTimeoutMs: 500,
      allowPrivateWebhooks: true,
      publicUrl: 'https://pylee.example.com',
      gatewayPort: 9100,
      gatewayUrl: 'https://mcp.example.com',
      gatewayBodyLimit: 1024 * 1024,
      gatewayAllowedOrigins: ['https://app.example.com', 'http://localhost:5173'],
      gatewayRateLimitMax: 50,
      advisoriesUrls: ['https://osv.example.com/npm/all.zip', 'https://osv.example.com/PyPI/all.zip'],
      advisoriesEveryMs: 6 * 3_600_000,
    });
    expect(loadConfig({})).toMatchObject({ advisoriesUrls: [], advisoriesEveryMs: 86_400_000 });
    expect(() => loadConfig({ PYLEE_ADVISORIES_URL: 'ftp://osv.example.com/all.zip' })).toThrow(
      /PYLEE_ADVISORIES_URL/,
    );
  });

  it('checks the gateway port and origins', () => {
    expect(loadConfig({})).toMatchObject({
      gatewayPort: 8081,
      gatewayAllowedOrigins: [],
      gatewayUrl: undefined,
    });
    expect(() => loadConfig({ PYLEE_GATEWAY_PORT: '8080' })).toThrow(/PYLEE_GATEWAY_PORT/);
    expect(() => loadConfig({ PYLEE_GATEWAY_ALLOWED_ORIGINS: 'https://app.example.com/path' })).toThrow(
      /PYLEE_GATEWAY_ALLOWED_ORIGINS/,
    );
    expect(() => loadConfig({ PYLEE_GATEWAY_ALLOWED_ORIGINS: 'app.example.com' })).toThrow(
      /PYLEE_GATEWAY_ALLOWED_ORIGINS/,
    );
  });

  it('refuses webhooks to private addresses unless told, and checks the public URL', () => {
    expect(loadConfig({})).toMatchObject({ allowPrivateWebhooks: false, publicUrl: undefined });
    expect(loadConfig({ PYLEE_ALLOW_PRIVATE_WEBHOOKS: 'no' }).allowPrivateWebhooks).toBe(false);
    expect(() => loadConfig({ PYLEE_ALLOW_PRIVATE_WEBHOOKS: 'maybe' })).toThrow(
      /PYLEE_ALLOW_PRIVATE_WEBHOOKS/,
    );
    expect(() => loadConfig({ PYLEE_PUBLIC_URL: 'ftp://x' })).toThrow(/PYLEE_PUBLIC_URL/);
  });

  it('accepts a secret key as base64 as well as hex', () => {
    const key = Buffer.alloc(32, 7);
    expect(loadConfig({ PYLEE_SECRET_KEY: key.toString('base64') }).secretKey).toEqual(key);
  });

  it('logs readable lines on a terminal and JSON lines elsewhere, unless PYLEE_LOG_FORMAT says', () => {
    expect(loadConfig({}, { stdoutIsTty: true }).logFormat).toBe('pretty');
    expect(loadConfig({}, { stdoutIsTty: false }).logFormat).toBe('json');
    expect(loadConfig({}).logFormat).toBe('json');
    expect(loadConfig({ PYLEE_LOG_FORMAT: 'json' }, { stdoutIsTty: true }).logFormat).toBe('json');
    expect(loadConfig({ PYLEE_LOG_FORMAT: 'pretty' }, { stdoutIsTty: false }).logFormat).toBe('pretty');
  });

  it('lets the --role flag override PYLEE_ROLE', () => {
    expect(loadConfig({ PYLEE_ROLE: 'api' }, { role: 'alerts' }).role).toBe('alerts');
  });

  it.each([
    ['PYLEE_API_PORT', '99999', 'not a TCP port'],
    ['PYLEE_API_PORT', '80a', 'not a TCP port'],
    ['PYLEE_OTLP_PORT', '-1', 'not a TCP port'],
    ['PYLEE_ROLE', 'web', 'not one of all, api, collector, gateway, alerts'],
    ['PYLEE_LOG_LEVEL', 'loud', 'not one of'],
    ['PYLEE_LOG_FORMAT', 'yaml', 'not one of json, pretty'],
    ['PYLEE_DATABASE_URL', 'mysql://db/x', 'scheme "mysql:" is not supported'],
    ['PYLEE_DATABASE_URL', 'not a url', 'is not a URL'],
    ['PYLEE_CLICKHOUSE_URL', 'tcp://ch:9000', 'not supported'],
    ['PYLEE_REDIS_URL', 'http://redis', 'not supported'],
    ['PYLEE_BOOTSTRAP_TOKEN', 'short', 'at least 20 characters'],
    ['PYLEE_BOOTSTRAP_TOKEN', 'has spaces in it but is long enough', 'no whitespace'],
    ['PYLEE_API_BODY_LIMIT', '1GB', 'not a size'],
    ['PYLEE_API_BODY_LIMIT', '0', 'not a size'],
    ['PYLEE_RATE_LIMIT_MAX', '0', 'not a positive whole number'],
    ['PYLEE_RATE_LIMIT_WINDOW', 'soon', 'not a duration'],
    ['PYLEE_SHUTDOWN_TIMEOUT', '10', 'not a duration'],
    ['PYLEE_HOST', 'a host', 'not a host'],
    ['PYLEE_SECRET_KEY', 'too-short', '32 bytes'],
    ['PYLEE_TELEMETRY_RETENTION_RAW', '36h', 'whole number of days'],
    ['PYLEE_OTLP_BODY_LIMIT', 'big', 'not a size'],
    ['PYLEE_SECRET_KEY', 'ab'.repeat(31), '32 bytes'],
  ])('rejects %s=%s naming the variable and why', (name, value, why) => {
    const error = errorOf({ [name]: value });
    expect(error.variable).toBe(name);
    expect(error.message).toContain(name);
    expect(error.message).toContain(why);
  });

  it('rejects the same port for the API and the collector', () => {
    expect(errorOf({ PYLEE_API_PORT: '9000', PYLEE_OTLP_PORT: '9000' }).variable).toBe('PYLEE_OTLP_PORT');
  });

  it('rejects unknown PYLEE_ variables, suggesting the closest known one', () => {
    const error = errorOf({ PYLEE_API_PROT: '1' });
    expect(error.variable).toBe('PYLEE_API_PROT');
    expect(error.message).toContain('did you mean PYLEE_API_PORT?');
    expect(() => loadConfig({ PYLEE_TEST_DATABASE_URL: 'x', OTHER: 'y' })).not.toThrow();
    // The CLI's client variables may be exported in the same shell that starts the platform.
    expect(() => loadConfig({ PYLEE_URL: 'http://127.0.0.1:8080', PYLEE_TOKEN: 'pyl_x' })).not.toThrow();
  });

  it('treats blank values as unset', () => {
    expect(loadConfig({ PYLEE_DATABASE_URL: '  ', PYLEE_API_PORT: '' })).toMatchObject({
      databaseUrl: undefined,
      apiPort: 8080,
    });
  });

  it('documents every variable with a description', () => {
    for (const [name, spec] of Object.entries(VARIABLES)) {
      expect(name).toMatch(/^PYLEE_[A-Z_]+$/);
      expect(spec.description.length).toBeGreaterThan(10);
    }
  });
});
