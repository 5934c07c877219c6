// The compare page's "What changed" section in Debian's Chromium against the real API (in this
// process, over real stores): the rows beside the charts, configuration events as chart markers,
// and no secret value anywhere on the page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { HEALTHY, requestRows } from '#test/canary/telemetry.ts';
import { browserRunnable, openInProcessPlatform, type InProcessPlatform } from './in-process.ts';

const SECRET = 'pw-never-on-the-page-5b1e';

describe.runIf(browserRunnable)('compare page: what changed, in Chromium', () => {
  let platform: InProcessPlatform;

  beforeAll(async () => {
    platform = await openInProcessPlatform();
    const { call, stores, api } = platform;
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
    await platform.listen();
  });

  afterAll(() => platform?.close());

  it('lists the changes beside the charts and marks configuration events on them', async () => {
    const { baseUrl } = platform;
    const page = await platform.newPage();
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
    await platform.screenshot(page, 'compare-what-changed.png');
    expect(platform.pageErrors).toEqual([]);
    await page.context().close();
  });
});
