// A real running Pylee with real data for the browser tests and bench:web: `pylee start` on a temp
// data dir, servers and versions created through the API, rollouts deployed, and telemetry sent as
// OTLP/HTTP JSON through the collector.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { platformEnv, startPylee, type PyleeProcess } from '#test/helpers/pylee-process.ts';

export const ADMIN_TOKEN = 'pyl_web-test-admin-token-0123456789abcdef';
export const CHROMIUM = process.env.PYLEE_TEST_CHROMIUM ?? '/usr/bin/chromium';

export interface Platform {
  pylee: PyleeProcess;
  dataDir: string;
  apiUrl: string;
  otlpUrl: string;
  call<T = Record<string, unknown>>(
    method: string,
    route: string,
    body?: unknown,
    token?: string,
  ): Promise<T>;
  stop(): Promise<void>;
}

export async function startPlatform(vars: Record<string, string> = {}): Promise<Platform> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-web-'));
  const pylee = await startPylee({
    env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN, ...vars }),
    // A cold start (initdb, chDB, migrations) on a busy CI machine can take a while.
    timeoutMs: 120_000,
  });
  const apiUrl = pylee.apiUrl as string;
  const otlpUrl = pylee.otlpUrl as string;
  const call = async <T>(method: string, route: string, body?: unknown, token = ADMIN_TOKEN): Promise<T> => {
    const res = await fetch(`${apiUrl}/api/v1${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    pylee,
    dataDir,
    apiUrl,
    otlpUrl,
    call,
    async stop() {
      await pylee.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const attr = (key: string, value: string) => ({ key, value: { stringValue: value } });

/** `perMinute` MCP tool calls per minute over the last `minutes`, for one version in one environment. */
export async function sendTraffic(
  platform: Platform,
  ingestKey: string,
  spec: {
    server: string;
    version: string;
    environment: string;
    minutes: number;
    perMinute: number;
    latencyMs: number;
    errorRate: number;
  },
): Promise<void> {
  const now = Date.now();
  const spans = [];
  for (let m = spec.minutes; m >= 0; m--) {
    for (let i = 0; i < spec.perMinute; i++) {
      const start = BigInt(now - m * 60_000 - Math.floor(Math.random() * 55_000)) * 1_000_000n;
      const duration = BigInt(Math.round(spec.latencyMs * (0.7 + Math.random() * 0.6) * 1e6));
      const failed = Math.random() < spec.errorRate;
      const tool = i % 3 === 0 ? 'alerts' : 'forecast';
      spans.push({
        traceId: hex(16),
        spanId: hex(8),
        name: `tools/call ${tool}`,
        kind: 2,
        startTimeUnixNano: start.toString(),
        endTimeUnixNano: (start + duration).toString(),
        attributes: [attr('mcp.method.name', 'tools/call'), attr('gen_ai.tool.name', tool)],
        ...(failed ? { status: { code: 2 } } : {}),
      });
    }
  }
  const body = {
    resourceSpans: [
      {
        resource: {
          attributes: [
            attr('service.name', spec.server),
            attr('service.version', spec.version),
            attr('deployment.environment.name', spec.environment),
          ],
        },
        scopeSpans: [{ scope: { name: 'pylee-web-test' }, spans }],
      },
    ],
  };
  const res = await fetch(`${platform.otlpUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestKey}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`OTLP export: ${res.status} ${await res.text()}`);
}

/**
 * A server with a stable 1.0.0 at 100 % in `environment` and, when `canary`, 1.1.0 as a canary at
 * 25 % that waits for approval; 1.1.0 is slower and fails more when `regress`.
 */
export async function seedServer(
  platform: Platform,
  ingestKey: string,
  spec: {
    slug: string;
    name?: string;
    releaseNotes?: string;
    environment?: string;
    canary?: boolean;
    regress?: boolean;
    minutes?: number;
    perMinute?: number;
  },
): Promise<void> {
  const environment = spec.environment ?? 'production';
  const minutes = spec.minutes ?? 20;
  const perMinute = spec.perMinute ?? 20;
  await platform.call('POST', '/servers', { slug: spec.slug, name: spec.name ?? spec.slug, description: '' });
  await platform.call('POST', `/servers/${spec.slug}/versions`, {
    version: '1.0.0',
    status: 'stable',
    releaseNotes: '## 1.0.0\n- first release',
  });
  await platform.call('POST', `/servers/${spec.slug}/versions`, {
    version: '1.1.0',
    status: 'stable',
    releaseNotes: spec.releaseNotes ?? '## 1.1.0\n- faster `forecast`',
  });
  await platform.call('POST', `/servers/${spec.slug}/deployments`, {
    version: '1.0.0',
    environment,
    strategy: 'immediate',
  });
  await sendTraffic(platform, ingestKey, {
    server: spec.slug,
    version: '1.0.0',
    environment,
    minutes,
    perMinute,
    latencyMs: 40,
    errorRate: 0.01,
  });
  if (!spec.canary) return;
  await platform.call('POST', `/servers/${spec.slug}/deployments`, {
    version: '1.1.0',
    environment,
    strategy: 'canary',
    steps: [{ weight: 25, pause: { approval: true } }, { weight: 100 }],
    reason: 'try 1.1.0 on a quarter of the traffic',
  });
  await sendTraffic(platform, ingestKey, {
    server: spec.slug,
    version: '1.1.0',
    environment,
    minutes,
    perMinute: Math.ceil(perMinute / 3),
    latencyMs: spec.regress ? 220 : 42,
    errorRate: spec.regress ? 0.35 : 0.01,
  });
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** Signs in through the login form, as a person would. */
export async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.waitForURL(/\/login/);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
}
