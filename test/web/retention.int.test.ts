// The server page's Retention panel in Debian's Chromium against the real API (in this process, over
// real stores): the dry run of the server's policy, what it would retire and why, and what it keeps.
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

describe.runIf(runnable)('server page: retention, in Chromium', () => {
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
    for (const slug of ['tides', 'plain']) await call('POST', '/servers', { slug, name: slug });
    for (const version of ['1.0.0', '1.1.0', '1.2.0', '1.3.0'])
      await call('POST', '/servers/tides/versions', { version, status: 'stable' });
    await call('POST', '/servers/tides/deployments', { version: '1.0.0', environment: 'production' });
    await call('PUT', '/servers/tides/retention', { keepPerLine: 2, keepDeployedWithinDays: 0 });
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await api?.app.close();
    await stores?.close();
  });

  it('shows the policy, what it would retire and why, and what it keeps', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await signIn(page, baseUrl, BOOTSTRAP_TOKEN);
    await page.goto(`${baseUrl}/servers/tides`);
    const policy = page.getByTestId('retention-policy');
    await policy.waitFor();
    expect((await policy.textContent())?.replace(/\s+/g, ' ')).toContain(
      'This server’s policy: keep the newest 2 per line and anything deployed in the last 0 days.',
    );
    const retire = page.locator('tr[data-retire]');
    expect(await retire.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-retire')))).toEqual([
      '1.1.0',
    ]);
    expect((await retire.first().textContent())?.replace(/\s+/g, ' ')).toContain(
      '3rd newest of line 1.x, beyond the newest 2',
    );
    await page.getByText('Kept: 3 versions').click();
    const kept = await page.locator('tr[data-keep="1.0.0"]').textContent();
    expect(kept?.replace(/\s+/g, ' ')).toContain('running in production');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'server-retention.png'), fullPage: true });

    await page.goto(`${baseUrl}/servers/plain`);
    await page.getByText('No retention policy').waitFor();
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
