// The template pages and the server page's template line in Debian's Chromium against the real API (in
// this process, over real stores): the list, a template's versions and usage with a server behind, and
// the server that follows it.
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEB_BUILD_DIR } from '#api/static.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { CHROMIUM, launchChromium, signIn } from './platform.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const runnable = fs.existsSync(CHROMIUM) && fs.existsSync(path.join(WEB_BUILD_DIR, 'index.html'));

describe.runIf(runnable)('template pages, in Chromium', () => {
  let stores: Awaited<ReturnType<typeof openTestStores>>;
  let api: TestApi;
  let browser: Browser;
  let baseUrl: string;
  const pageErrors: string[] = [];

  const call = async (method: 'POST' | 'PUT', url: string, body: object) => {
    const res = await api.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: bearer(BOOTSTRAP_TOKEN),
      payload: body,
    });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  };

  beforeAll(async () => {
    stores = await openTestStores();
    api = await buildTestApi(stores);
    await call('POST', '/templates', { slug: 'http-service', name: 'HTTP service' });
    await call('POST', '/templates/http-service/versions', {
      version: '1.0.0',
      status: 'stable',
      remotes: [{ type: 'streamable-http', url: 'https://mcp.example.com/v1' }],
      variables: [{ name: 'LOG_LEVEL', default: 'info' }],
      secrets: [{ name: 'API_KEY' }],
    });
    await call('POST', '/servers', { slug: 'tides', template: '@default/http-service@1.0.0' });
    await call('POST', '/servers/tides/versions', {
      version: '1.0.0',
      template: '@default/http-service@1.0.0',
    });
    await call('POST', '/servers', { slug: 'waves', template: '@default/http-service@1.0.0' });
    await call('POST', '/templates/http-service/versions', { version: '1.1.0', status: 'stable' });
    await call('POST', '/servers/waves/versions', {
      version: '1.0.0',
      template: '@default/http-service@1.1.0',
    });
    await call('PUT', '/servers/waves/secrets/API_KEY', { value: 'sk-waves' });
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await api?.app.close();
    await stores?.close();
  });

  it('lists the template, shows its usage with the server behind, and the server page names it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await signIn(page, baseUrl, BOOTSTRAP_TOKEN);

    await page.goto(`${baseUrl}/templates`);
    const row = page.locator('tr[data-template="http-service"]');
    await row.waitFor();
    expect((await row.innerText())?.replace(/\s+/g, ' ')).toMatch(/HTTP service.*1\.1\.0.*2.*2.*1 behind/);

    await row.getByRole('link').click();
    const tides = page.locator('tr[data-server="tides"]');
    await tides.waitFor();
    expect(await tides.getAttribute('data-behind')).toBe('true');
    expect((await tides.innerText())?.replace(/\s+/g, ' ')).toMatch(
      /1\.0\.0 behind 1\.1\.0 1\.0\.0 from 1\.0\.0 API_KEY/,
    );
    const waves = page.locator('tr[data-server="waves"]');
    expect(await waves.getAttribute('data-behind')).toBe('false');
    expect((await waves.innerText())?.replace(/\s+/g, ' ')).toContain('up to date');
    const v1 = (await page.locator('tr[data-version="1.0.0"]').innerText())?.replace(/\s+/g, ' ');
    expect(v1).toContain('https://mcp.example.com/v1');
    expect(v1).toContain('LOG_LEVEL = info');
    expect(v1).toContain('API_KEY');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'template-usage.png'), fullPage: true });

    await tides.getByRole('link', { name: 'tides' }).click();
    const line = page.getByTestId('server-template');
    await line.waitFor();
    expect((await line.innerText())?.replace(/\s+/g, ' ').trim()).toBe(
      'From template @default/http-service@1.0.0 · behind: latest 1.1.0 · missing secrets: API_KEY',
    );
    await page.goto(`${baseUrl}/servers/waves`);
    await page.getByTestId('server-template').waitFor();
    expect((await page.getByTestId('server-template').innerText())?.replace(/\s+/g, ' ').trim()).toBe(
      'From template @default/http-service@1.1.0 · up to date',
    );
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
