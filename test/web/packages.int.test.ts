// The shared packages pages in Debian's Chromium against the real API (in this process, over real
// stores): the catalogue with its usage counts and the packages in use nobody catalogued, and a
// package's usage page with its not-allowed and deprecated uses flagged.
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

describe.runIf(runnable)('shared packages pages, in Chromium', () => {
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
  const pkg = (registryType: string, identifier: string, version: string) => ({
    registryType,
    identifier,
    version,
    transport: { type: 'stdio' },
  });

  beforeAll(async () => {
    stores = await openTestStores();
    api = await buildTestApi(stores);
    await call('PUT', '/packages/npm/%40acme%2Fsdk', {
      description: 'The Acme SDK',
      owners: ['platform-team'],
      allowed: '^2.0.0',
      deprecations: [{ versions: '2.0.x', message: 'leaks tokens in logs', replacement: '2.1.0' }],
    });
    await call('POST', '/servers', { slug: 'billing' });
    for (const [version, sdk] of [
      ['1.0.0', '1.9.0'],
      ['1.1.0', '2.0.3'],
      ['1.2.0', '2.1.0'],
    ] as const) {
      await call('POST', '/servers/billing/versions', {
        version,
        packages: [pkg('npm', '@acme/sdk', sdk), pkg('oci', 'ghcr.io/acme/img', '1.4.0')],
      });
    }
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await api?.app.close();
    await stores?.close();
  });

  const text = async (locator: { textContent(): Promise<string | null> }) =>
    (await locator.textContent())?.replace(/\s+/g, ' ') ?? '';

  it('lists the catalogue with counts and the uncatalogued packages; the usage page flags deprecated uses', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await signIn(page, baseUrl, BOOTSTRAP_TOKEN);
    await page.goto(`${baseUrl}/packages`);
    const sdk = page.locator('tr[data-package="npm:@acme/sdk"]');
    await sdk.waitFor();
    const row = await text(sdk);
    for (const part of [
      '@acme/sdk',
      'The Acme SDK',
      '^2.0.0',
      '2.0.x',
      'platform-team',
      '1 not allowed',
      '1 deprecated',
    ])
      expect(row).toContain(part);
    const image = await text(page.locator('tr[data-uncatalogued="oci:ghcr.io/acme/img"]'));
    expect(image).toContain('1.4.0');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'packages.png'), fullPage: true });

    await sdk.getByRole('link', { name: '@acme/sdk' }).click();
    const deprecated = page.locator('tr[data-use="billing@1.1.0"]');
    await deprecated.waitFor();
    expect(await text(deprecated)).toContain('deprecated leaks tokens in logs (use 2.1.0)');
    expect(await text(page.locator('tr[data-use="billing@1.0.0"]'))).toContain('not allowed allowed: ^2.0.0');
    expect(await text(page.locator('tr[data-use="billing@1.2.0"]'))).toContain('allowed');
    expect(await text(page.getByTestId('package-usage'))).toContain(
      'Used by 3 versions of 1 server (not retired): 1 not allowed 1 deprecated',
    );

    // Deprecating from the page flags the use at once.
    const form = page.getByRole('form', { name: 'Deprecate versions' });
    await form.getByLabel('Versions').fill('1.x');
    await form.getByLabel('Message').fill('1.x is end of life');
    await form.getByRole('button', { name: 'Deprecate' }).click();
    await page.locator('[data-deprecation="1.x"]').waitFor();
    expect(await text(page.locator('tr[data-use="billing@1.0.0"]'))).toContain('1.x is end of life');
    await page.screenshot({ path: path.join(ARTIFACTS, 'package-usage.png'), fullPage: true });

    // An image's identifier has slashes: its page is the rest of the path.
    await page.goto(`${baseUrl}/packages/oci/ghcr.io/acme/img`);
    await page.getByText('not catalogued', { exact: true }).waitFor();
    expect(await page.locator('tr[data-use]').count()).toBe(3);
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
