// The Releases page in Debian's Chromium against a real running Pylee: real MCP SDK clients go
// through its gateway to a stable 1.0.0 and a canary 1.1.0 at 50 % whose upstream is killed while
// sessions are open on it, and the page shows each version's adoption, stage and crash-free figures
// as the release-health API computes them.
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '#test/gateway/upstream.ts';
import { weatherCanaryBehindGateway } from './gateway-canary.ts';
import { killLeftovers } from '#test/helpers/pylee-process.ts';
import { until } from '#test/helpers/until.ts';
import { ADMIN_TOKEN, CHROMIUM, launchChromium, signIn, startPlatform, type Platform } from './platform.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const hasChromium = fs.existsSync(CHROMIUM);

interface VersionHealth {
  version: string;
  sessions: { total: number; healthy: number; errored: number; crashed: number; active: number };
  crashFreeSessions: number | null;
  crashFreeUsers: number | null;
  adoption: { sessions: number | null };
  stage: 'adopted' | 'replaced' | 'low-adoption';
}
interface Health {
  versions: VersionHealth[];
  average: { crashFreeSessions: number | null; crashFreeUsers: number | null };
}

let platform: Platform;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let endpoint: string;
const upstreams: Record<string, Upstream> = {};
const clients: Client[] = [];
const pageErrors: string[] = [];

interface Session {
  client: Client;
  transport: StreamableHTTPClientTransport;
  version: string;
}

/** A real MCP client session through the gateway on its own connect token (its own user). */
async function open(): Promise<Session> {
  const { token } = await platform.call<{ token: string }>('POST', '/tokens', {
    name: `releases client ${clients.length}`,
    permissions: ['connect'],
  });
  const transport = new StreamableHTTPClientTransport(new URL(endpoint), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  const client = new Client({ name: 'releases-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return { client, transport, version: await whoami(client) };
}

async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as {
    content: { text: string }[];
  };
  return result.content[0]?.text ?? '';
}

/** Ends the session with DELETE, as a client that is done does. */
async function end(s: Session): Promise<void> {
  await s.transport.terminateSession().catch(() => undefined);
  await s.client.close();
}

const health = (window = '24h') =>
  platform.call<Health>('GET', `/servers/weather/release-health?environment=production&window=${window}`);

/** The page's formatting: one decimal, "—" for null; the change in percentage points. */
const percent = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)} %`);
function points(v: number | null, avg: number | null): string {
  if (v === null || avg === null) return '—';
  const p = Math.round((v - avg) * 1000) / 10;
  return p === 0 ? '±0.0 pp' : `${p > 0 ? '+' : '−'}${Math.abs(p).toFixed(1)} pp`;
}
const STAGE = { adopted: 'adopted', 'low-adoption': 'low adoption', replaced: 'replaced' } as const;
const text = async (selector: string) =>
  ((await page.locator(selector).textContent()) ?? '').replace(/\s+/g, ' ').trim();

describe.runIf(hasChromium)('releases page in Chromium', () => {
  let expected: Health;
  const landed: Record<string, Session[]> = { '1.0.0': [], '1.1.0': [] };

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    platform = await startPlatform();
    const seeded = await weatherCanaryBehindGateway(platform);
    Object.assign(upstreams, seeded.upstreams);
    endpoint = seeded.endpoint;

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
    await signIn(page, platform.apiUrl, ADMIN_TOKEN);
  }, 240_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await browser?.close();
    await platform?.stop();
    for (const upstream of Object.values(upstreams)) await upstream.close();
    await killLeftovers();
  });

  it('shows a healthy stable version against a canary whose upstream died mid-session', async () => {
    // Sessions split by the weights until there are three on the stable version and three on the canary.
    for (let i = 0; i < 30 && (landed['1.0.0']!.length < 3 || landed['1.1.0']!.length < 3); i++) {
      const s = await open();
      landed[s.version]!.push(s);
    }
    const [stable, canary] = [landed['1.0.0']!, landed['1.1.0']!];
    expect(stable.length).toBeGreaterThanOrEqual(3);
    expect(canary.length).toBeGreaterThanOrEqual(3);

    // 1.0.0: one tool error, one left open, the rest end cleanly.
    await stable[0]!.client.callTool({ name: 'broken', arguments: {} });
    stable.pop(); // stays open: active
    for (const s of stable) await end(s);
    // 1.1.0: one ends cleanly, then its upstream dies under the others.
    await end(canary[0]!);
    await upstreams['1.1.0']!.kill();
    for (const s of canary.slice(1)) {
      await expect(whoami(s.client)).rejects.toThrow();
      await end(s);
    }

    const crashed = canary.length - 1;
    await until(
      async () => {
        const h = await health();
        const v = Object.fromEntries(h.versions.map((x) => [x.version, x.sessions]));
        return v['1.1.0']?.crashed === crashed && v['1.0.0']?.total === stable.length + 1;
      },
      { what: 'the sessions in release health', timeoutMs: 20_000, intervalMs: 250 },
    );
    expected = await health();
    const byVersion = Object.fromEntries(expected.versions.map((v) => [v.version, v]));
    expect(byVersion['1.1.0']).toMatchObject({
      sessions: { total: canary.length, healthy: 1, crashed, errored: 0, active: 0 },
    });
    expect(byVersion['1.0.0']).toMatchObject({
      sessions: { total: stable.length + 1, healthy: stable.length - 1, errored: 1, crashed: 0, active: 1 },
      crashFreeSessions: 1,
    });

    await page.goto(`${platform.apiUrl}/servers/weather`);
    await page.getByRole('link', { name: 'Releases', exact: true }).click();
    await page.waitForURL(/\/servers\/weather\/releases/);
    await page.locator('tr[data-version="1.0.0"]').waitFor();

    // production by default, 24 hours; newest version first.
    expect(await page.getByLabel('Environment').inputValue()).toBe('production');
    expect(await page.getByLabel('Window').inputValue()).toBe('24h');
    expect(
      await page
        .locator('tbody tr')
        .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.version)),
    ).toEqual(['1.1.0', '1.0.0']);

    for (const v of expected.versions) {
      const row = `tr[data-version="${v.version}"]`;
      expect(await text(`${row} [data-testid=crash-free-sessions]`)).toBe(
        `${percent(v.crashFreeSessions)} ${points(v.crashFreeSessions, expected.average.crashFreeSessions)}`,
      );
      expect(await text(`${row} [data-testid=crash-free-users]`)).toBe(
        `${percent(v.crashFreeUsers)} ${points(v.crashFreeUsers, expected.average.crashFreeUsers)}`,
      );
      expect(await text(`${row} [data-testid=stage]`)).toBe(STAGE[v.stage]);
      expect(await text(`${row} [data-testid=adoption] .value`)).toBe(
        `${Math.round((v.adoption.sessions ?? 0) * 100)} %`,
      );
      expect(await text(`${row} [data-testid=sessions]`)).toBe(
        `${v.sessions.total} ${v.sessions.crashed} crashed · ${v.sessions.errored} errored · ${v.sessions.active} active`,
      );
    }
    // Both versions hold far more than 10 % of the sessions: adopted. The canary is below the
    // average (red), the stable version above it (green).
    expect(expected.versions.map((v) => v.stage)).toEqual(['adopted', 'adopted']);
    expect(
      await page
        .locator('tr[data-version="1.1.0"] [data-testid=crash-free-sessions] .delta')
        .getAttribute('class'),
    ).toContain('down');
    expect(
      await page
        .locator('tr[data-version="1.0.0"] [data-testid=crash-free-sessions] .delta')
        .getAttribute('class'),
    ).toContain('up');
    expect(await text('[data-testid=average-crash-free-sessions]')).toBe(
      percent(expected.average.crashFreeSessions),
    );
    // Everything fits 1,024 px: no sideways scrolling, of the page or of the table.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1024);
    expect(
      await page.getByTestId('releases').evaluate((el) => el.scrollWidth - el.clientWidth),
    ).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'releases.png'), fullPage: true });
  });

  it('shows the same crash-free sessions on the overview and the comparison page', async () => {
    // The sessions above are minutes old: the overview's hour and the compare page's see them all.
    const by = Object.fromEntries(expected.versions.map((v) => [v.version, v]));
    const [canary, stable] = [by['1.1.0']!, by['1.0.0']!];
    await page.goto(`${platform.apiUrl}/`);
    const row = page.locator('tr[data-server="weather"][data-environment="production"]');
    await row.locator('[data-testid=crash-free-sessions] .value').waitFor();
    // Under the health status: the canary against the environment's average (red below it); both
    // versions' figures in the title.
    expect(await text('tr[data-server="weather"] [data-testid=crash-free-sessions]')).toBe(
      `${percent(canary.crashFreeSessions)} ${points(canary.crashFreeSessions, expected.average.crashFreeSessions)}`,
    );
    expect(await row.locator('[data-testid=crash-free-sessions] .delta').getAttribute('class')).toContain(
      'down',
    );
    expect(await text('tr[data-server="weather"] [data-testid=crash-free-previous]')).toBe(
      `1.0.0: ${percent(stable.crashFreeSessions)}`,
    );
    // Still no sideways scrolling of the grid at 1,024 px.
    expect(
      await page.getByTestId('overview-grid').evaluate((el) => {
        const box = el.parentElement as HTMLElement;
        return box.scrollWidth - box.clientWidth;
      }),
    ).toBe(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'overview-sessions.png') });
    const title = (await row.locator('.sessions').getAttribute('title')) ?? '';
    expect(title).toContain(
      `1.1.0: ${percent(canary.crashFreeSessions)} crash-free of ${canary.sessions.total} sessions`,
    );
    expect(title).toContain(
      `1.0.0: ${percent(stable.crashFreeSessions)} crash-free of ${stable.sessions.total} sessions`,
    );
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1024);

    await page.goto(`${platform.apiUrl}/servers/weather/compare`);
    const figures = page.getByTestId('compare-sessions');
    await figures.waitFor();
    for (const [testid, key] of [
      ['crash-free-sessions', 'crashFreeSessions'],
      ['crash-free-users', 'crashFreeUsers'],
    ] as const) {
      expect(await text(`[data-testid=compare-sessions] [data-testid=${testid}] [data-side=baseline]`)).toBe(
        percent(stable[key]),
      );
      expect(await text(`[data-testid=compare-sessions] [data-testid=${testid}] [data-side=candidate]`)).toBe(
        percent(canary[key]),
      );
    }
    // The canary lost crash-free sessions against its baseline: the change is classed worse.
    expect(
      await figures.locator('[data-testid=crash-free-sessions] td').last().getAttribute('class'),
    ).toContain('worse');
    await page.screenshot({ path: path.join(ARTIFACTS, 'compare-sessions.png'), fullPage: true });
    // Back where the next cases start.
    await page.goto(`${platform.apiUrl}/servers/weather/releases`);
    await page.locator('tr[data-version="1.0.0"]').waitFor();
  });

  it('follows the window picker into the URL and the request', async () => {
    const asked = page.waitForRequest(
      (r) => r.url().includes('/release-health?') && r.url().includes('window=1h'),
    );
    await page.getByLabel('Window').selectOption('1h');
    await asked;
    await page.waitForURL(/window=1h/);
    expect(page.url()).toContain('environment=production');
    const hour = await health('1h');
    const canary = hour.versions.find((v) => v.version === '1.1.0');
    expect(await text('tr[data-version="1.1.0"] [data-testid=crash-free-sessions] .value')).toBe(
      percent(canary?.crashFreeSessions ?? null),
    );
  });

  it('refreshes every 30 s while open', async () => {
    await page.clock.install();
    await page.reload();
    await page.locator('tr[data-version="1.0.0"]').waitFor();
    const before = (await health('1h')).versions.find((v) => v.version === '1.0.0')?.sessions.total ?? 0;
    // One more clean session on 1.0.0 (a new session placed on the dead canary fails to initialize).
    let s: Session | null = null;
    for (let i = 0; i < 20 && !s; i++) {
      const next = await open().catch(() => null);
      if (next?.version === '1.0.0') s = next;
      else if (next) await end(next);
    }
    expect(s).not.toBeNull();
    await end(s as Session);
    await until(
      async () =>
        ((await health('1h')).versions.find((v) => v.version === '1.0.0')?.sessions.total ?? 0) > before,
      { what: 'the new session in release health', timeoutMs: 20_000, intervalMs: 250 },
    );
    const sessions = 'tr[data-version="1.0.0"] [data-testid=sessions] strong';
    expect(await text(sessions)).toBe(String(before));

    await page.clock.fastForward('00:31');
    const after = (await health('1h')).versions.find((v) => v.version === '1.0.0')?.sessions.total;
    await expect.poll(() => text(sessions), { timeout: 10_000, interval: 200 }).toBe(String(after));
  });

  it('shows each version as a card at phone width, in dark mode', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.reload();
    await page.locator('tr[data-version="1.1.0"]').waitFor();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(
      await page.getByTestId('releases').evaluate((el) => el.scrollWidth - el.clientWidth),
    ).toBeLessThanOrEqual(0);
    expect(await page.locator('thead').isVisible()).toBe(false);
    await page.screenshot({ path: path.join(ARTIFACTS, 'releases-phone.png'), fullPage: true });
  });

  it('raised no script errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
