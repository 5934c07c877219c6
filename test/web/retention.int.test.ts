// The server page's Retention panel in Debian's Chromium against the real API (in this process, over
// real stores): the dry run of the server's policy, what it would retire and why, and what it keeps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserRunnable, openInProcessPlatform, type InProcessPlatform } from './in-process.ts';

describe.runIf(browserRunnable)('server page: retention, in Chromium', () => {
  let platform: InProcessPlatform;

  beforeAll(async () => {
    platform = await openInProcessPlatform();
    const { call } = platform;
    for (const slug of ['tides', 'plain']) await call('POST', '/servers', { slug, name: slug });
    for (const version of ['1.0.0', '1.1.0', '1.2.0', '1.3.0'])
      await call('POST', '/servers/tides/versions', { version, status: 'stable' });
    await call('POST', '/servers/tides/deployments', { version: '1.0.0', environment: 'production' });
    await call('PUT', '/servers/tides/retention', { keepPerLine: 2, keepDeployedWithinDays: 0 });
    await platform.listen();
  });

  afterAll(() => platform?.close());

  it('shows the policy, what it would retire and why, and what it keeps', async () => {
    const { baseUrl } = platform;
    const page = await platform.newPage();
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
    await platform.screenshot(page, 'server-retention.png');

    await page.goto(`${baseUrl}/servers/plain`);
    await page.getByText('No retention policy').waitFor();
    expect(platform.pageErrors).toEqual([]);
    await page.context().close();
  });
});
