// The compare page's "What changed" section in Debian's Chromium against the real API (in this
// process, over real stores): the rows beside the charts, configuration events as chart markers,
// and no secret value anywhere on the page.
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { WEB_BUILD_DIR } from '#api/static.ts';
import { HEALTHY, requestRows } from '#test/canary/telemetry.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { CHROMIUM, launchChromium, signIn } from './platform.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const runnable = fs.existsSync(CHROMIUM) && fs.existsSync(path.join(WEB_BUILD_DIR, 'index.html'));
const SECRET = 'pw-never-on-the-page-5b1e';

describe.runIf(runnable)('compare page: what changed, in Chromium', () => {
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
    const pkg = (version: string) => ({
      registryType: 'npm',
      identifier: '@acme/db',
      version,
      transport: { type: 'stdio' },
      environmentVariables: [{ name: 'DB_PASSWORD', isSecret: true, isRequired: true }],
    });
    await call('POST', '/servers', { slug: 'payments', name: 'Payments' });
    await call('POST', '/servers/payments/versions', {
      version: '1.3.0',
      status: 'stable',
      packages: [pkg('2.1.0')],
    });
    await call('POST', '/servers/payments/versions', {
      version: '1.4.0',
      status: 'stable',
      packages: [pkg('2.2.0')],
    });
    await call('PUT', '/servers/payments/variables/TIMEOUT_MS', { value: '30000' });
    await call('PUT', '/servers/payments/versions/1.4.0/variables/TIMEOUT_MS', { value: '100' });
    await call('PUT', '/servers/payments/secrets/DB_PASSWORD?environment=production', { value: SECRET });
    const writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
    const scope = { orgId: api.org.id, server: 'payments', environment: 'production' };
    const window = { from: Date.now() - 20 * 60_000, minutes: 15 };
    await writer.writeRequests(requestRows({ ...scope, version: '1.3.0' }, HEALTHY, window, 1));
    await writer.writeRequests(requestRows({ ...scope, version: '1.4.0' }, HEALTHY, window, 2));
    await writer.close();
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await api?.app.close();
    await stores?.close();
  });

  it('lists the changes beside the charts and marks configuration events on them', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await signIn(page, baseUrl, BOOTSTRAP_TOKEN);
    await page.goto(
      `${baseUrl}/servers/payments/compare?baseline=1.3.0&candidate=1.4.0&environment=production&window=1h`,
    );
    const section = page.getByTestId('what-changed');
    await section.waitFor();
    const rows = section.locator('tbody tr');
    const text = (await rows.allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-kind')))).toEqual([
      'package-changed',
      'resolved-variable-changed',
      'configuration-event',
      'configuration-event',
      'configuration-event',
    ]);
    expect(text[0]).toContain('@acme/db');
    expect(text[0]).toContain('2.1.0 → 2.2.0');
    expect(text[1]).toContain('TIMEOUT_MS');
    expect(text[1]).toContain('30000 → 100');
    expect(text[1]).toContain('version 1.4.0');
    expect(text[4]).toContain('DB_PASSWORD');
    expect(text[4]).toContain('unset → set');
    expect(text[4]).toContain('server+production');
    // Every chart carries the three configuration events as markers.
    await page.locator('figure.chart canvas').first().waitFor();
    const markers = await page
      .locator('figure.chart')
      .evaluateAll((figs) => figs.map((f) => f.getAttribute('data-markers')));
    expect(markers.length).toBeGreaterThan(0);
    expect(new Set(markers)).toEqual(new Set(['3']));
    expect(await page.content()).not.toContain(SECRET);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'compare-what-changed.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
    await context.close();
  });
});
