// The server page's gateway panel in Debian's Chromium against a real running Pylee: real MCP SDK
// clients connect through its gateway to two real MCP servers (a stable and a canary version), and
// the panel shows the endpoints, the client configurations and the live split of their sessions.
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '#test/gateway/upstream.ts';
import { weatherCanaryBehindGateway } from './gateway-canary.ts';
import { killLeftovers } from '#test/helpers/pylee-process.ts';
import { ADMIN_TOKEN, CHROMIUM, launchChromium, signIn, startPlatform, type Platform } from './platform.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const hasChromium = fs.existsSync(CHROMIUM);
const SESSIONS = 12;

let platform: Platform;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let endpoint: string;
let connectToken: string;
const upstreams: Upstream[] = [];
const clients: Client[] = [];
const pageErrors: string[] = [];

/** A real MCP client session through the gateway; answers the version it landed on. */
async function session(): Promise<string> {
  const transport = new StreamableHTTPClientTransport(new URL(endpoint), {
    requestInit: { headers: { authorization: `Bearer ${connectToken}` } },
  });
  const client = new Client({ name: 'panel-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as {
    content: { text: string }[];
  };
  return result.content[0]?.text ?? '';
}

describe.runIf(hasChromium)('gateway panel in Chromium', () => {
  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    platform = await startPlatform();
    const seeded = await weatherCanaryBehindGateway(platform);
    upstreams.push(...Object.values(seeded.upstreams));
    endpoint = seeded.endpoint;
    connectToken = (
      await platform.call<{ token: string }>('POST', '/tokens', {
        name: 'panel clients',
        permissions: ['connect'],
      })
    ).token;

    browser = await launchChromium();
    context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
    });
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
    for (const upstream of upstreams) await upstream.close();
    await killLeftovers();
  });

  it('shows the production endpoint and who may connect, with no sessions yet', async () => {
    await page.goto(`${platform.apiUrl}/servers/weather`);
    const production = page.locator('section[data-environment="production"]');
    await production.getByTestId('gateway-url').waitFor();

    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/default\/weather\/production\/mcp$/);
    expect(await production.getByTestId('gateway-url').textContent()).toBe(endpoint);
    expect(await production.getByText('Pylee token', { exact: true }).count()).toBe(1);
    expect(await production.getByTestId('live-split').textContent()).toContain(
      'No gateway sessions in the last 5 minutes',
    );
    // One panel per environment, in pipeline order.
    expect(
      await page.locator('section[data-environment]').evaluateAll((s) => s.map((e) => e.dataset.environment)),
    ).toEqual(['development', 'staging', 'canary', 'production']);
  });

  it('puts the endpoint on the clipboard and says so', async () => {
    const production = page.locator('section[data-environment="production"]');
    await production.getByRole('button', { name: 'Copy production endpoint' }).click();

    await production.getByRole('button', { name: 'Copied production endpoint' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(endpoint);
    // The label goes back, ready for another copy.
    await production.getByRole('button', { name: 'Copy production endpoint' }).waitFor();
  });

  it('shows the VS Code and Claude Desktop configurations, folded, each with its own copy button', async () => {
    const production = page.locator('section[data-environment="production"]');
    const vscode = production.locator('pre').first();
    expect(await vscode.isVisible()).toBe(false);

    await production.getByText('Client configurations').click();

    const shown = JSON.parse((await vscode.textContent()) ?? '') as {
      servers: Record<string, { url: string; headers?: Record<string, string> }>;
    };
    expect(shown.servers.weather).toEqual({
      type: 'http',
      url: endpoint,
      headers: { Authorization: 'Bearer ${input:pylee-token}' },
    });
    await production
      .getByRole('button', { name: 'Copy Claude Desktop configuration for production' })
      .click();
    const copied = JSON.parse(await page.evaluate(() => navigator.clipboard.readText())) as {
      mcpServers: Record<string, { args: string[] }>;
    };
    expect(copied.mcpServers.weather?.args).toEqual([
      '-y',
      'mcp-remote',
      endpoint,
      '--allow-http',
      '--header',
      'Authorization: Bearer ${PYLEE_TOKEN}',
    ]);
  });

  it('shows the live split of sessions per version, refreshed while the page is open', async () => {
    const landed: Record<string, number> = {};
    for (let i = 0; i < SESSIONS; i++) {
      const version = await session();
      landed[version] = (landed[version] ?? 0) + 1;
    }
    expect(Object.keys(landed).sort()).toEqual(['1.0.0', '1.1.0']);

    // No reload: the panel refreshes on its own every 10 s (the rows reach the warehouse within ~1 s).
    const production = page.locator('section[data-environment="production"]');
    const legend = (version: string) =>
      production.locator(`[data-testid=live-split] li[data-version="${version}"]`);
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
    for (const [version, sessions] of Object.entries(landed)) {
      const share = `${Math.round((sessions / SESSIONS) * 100)} %`;
      // Two requests a session: initialize and the tools/call (notifications are no exchange).
      await expect
        .poll(async () => (await legend(version).textContent())?.replace(/\s+/g, ' ').trim(), {
          timeout: 30_000,
          interval: 500,
        })
        .toBe(`${version} ${share} ${plural(sessions, 'session')} · ${plural(sessions * 2, 'request')}`);
    }
    // Oldest version first, in the bar and its legend: the canary sits right of the stable version.
    expect(await production.locator('.bar .segment').count()).toBe(2);
    expect(
      await production
        .locator('[data-testid=live-split] li')
        .evaluateAll((items) => items.map((li) => li.dataset.version)),
    ).toEqual(['1.0.0', '1.1.0']);
    expect(
      await production
        .getByRole('img', { name: /Sessions per version in production/ })
        .getAttribute('aria-label'),
    ).toContain(`1.0.0 ${Math.round(((landed['1.0.0'] ?? 0) / SESSIONS) * 100)} %`);
    // Other environments had no traffic.
    expect(
      await page.locator('section[data-environment="staging"] [data-testid=live-split]').textContent(),
    ).toContain('No gateway sessions');
    await page.screenshot({ path: path.join(ARTIFACTS, 'server-gateway-panel.png'), fullPage: true });
  });

  it('raised no script errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
