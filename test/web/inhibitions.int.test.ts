// The inhibition rules page and an alert's history in Debian's Chromium, against the real API over
// real stores: an alert held by an inhibition rule shows the alert that inhibits it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateRule } from '#core/alerting/engine.ts';
import { flushDueGroups } from '#core/alerting/groups.ts';
import { createInhibition } from '#core/alerting/inhibitions.ts';
import { createRule } from '#core/alerting/rules.ts';
import type { Context } from '#core/auth/principal.ts';
import { systemPrincipal } from '#core/orgs.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { requests, write } from '#test/alerting/helpers.ts';
import { browserRunnable, openInProcessPlatform, type InProcessPlatform } from './in-process.ts';

let platform: InProcessPlatform;
let targetId: string;

describe.runIf(browserRunnable)('inhibition rules in the web UI', () => {
  beforeAll(async () => {
    platform = await openInProcessPlatform();
    const { stores, api } = platform;
    const ctx: Context = { principal: systemPrincipal(api.org) };
    const writer = new TelemetryWriter(stores.warehouse, { dataDir: stores.dir, flushIntervalMs: 20 });
    const now = Date.now();
    await write(
      writer,
      requests({
        orgId: api.org.id,
        server: 'payments',
        version: '2.0.0',
        from: now - 60_000,
        to: now,
        count: 50,
        errorRate: 0.8,
      }),
    );
    await writer.close();
    const rule = (name: string, threshold: number, severity: 'critical' | 'warning') =>
      createRule(stores.db, ctx, {
        name,
        server: 'payments',
        kind: 'threshold',
        metric: 'errorRate',
        threshold,
        window: '2m',
        groupWait: '0s',
        severity,
      });
    const source = await rule('payments down', 0.5, 'critical');
    const target = await rule('payments errors', 0.2, 'warning');
    await createInhibition(stores.db, ctx, {
      name: 'critical mutes warning',
      sourceMatchers: [{ name: 'severity', op: '=', value: 'critical' }],
      targetMatchers: [{ name: 'severity', op: '=', value: 'warning' }],
      equal: ['server', 'environment'],
    });
    await evaluateRule(stores, source.id, { now });
    await evaluateRule(stores, target.id, { now });
    await flushDueGroups(stores.db, now + 1);
    const [row] = await stores.db.query<{ id: string }>('SELECT id FROM alert_instances WHERE rule_id = $1', [
      target.id,
    ]);
    targetId = (row as { id: string }).id;
    await platform.listen();
  }, 120_000);

  afterAll(() => platform?.close());

  it('lists, creates (refusing a bad matcher by name) and deletes inhibition rules', async () => {
    const { baseUrl } = platform;
    const page = await platform.newPage();
    await page.goto(`${baseUrl}/alerts`);
    await page.getByRole('link', { name: 'Inhibition rules' }).click();
    await page.waitForURL(/\/alerts\/inhibitions$/);
    const table = page.getByRole('table', { name: 'Inhibition rules' });
    await expect.poll(() => table.getByRole('row').count()).toBe(2);
    await expect.poll(() => table.innerText()).toContain('critical mutes warning');

    const form = page.getByRole('form', { name: 'New inhibition rule' });
    await form.getByLabel('Name (optional)').fill('db down mutes api');
    await form.getByLabel('Source matchers').fill('alertname=~db.*(');
    await form.getByLabel('Target matchers').fill('server=api, severity=~warning|info');
    await form.getByLabel('Equal labels').fill('environment');
    await form.getByRole('button', { name: 'Create inhibition rule' }).click();
    await expect
      .poll(() => page.getByRole('alert').innerText())
      .toMatch(/sourceMatchers\[0\]\.value is not a valid regular expression/);
    await form.getByLabel('Source matchers').fill('alertname=~"db.*"');
    await form.getByRole('button', { name: 'Create inhibition rule' }).click();
    await expect.poll(() => table.getByRole('row').count()).toBe(3);
    const row = table.getByRole('row').filter({ hasText: 'db down mutes api' });
    expect(await row.innerText()).toContain('server="api", severity=~"warning|info"');
    await platform.screenshot(page, 'inhibitions.png');

    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => table.getByRole('row').count()).toBe(2);
    const listed = await platform.call<{ inhibitions: { name: string }[] }>('GET', '/inhibitions');
    expect(listed.inhibitions.map((i) => i.name)).toEqual(['critical mutes warning']);
  });

  it("shows the inhibited notification in the alert's history with the inhibiting alert", async () => {
    const { baseUrl } = platform;
    const page = await platform.newPage();
    await page.goto(`${baseUrl}/alerts`);
    await page
      .getByRole('row')
      .filter({ hasText: 'payments errors' })
      .getByRole('link', { name: 'History' })
      .click();
    await page.waitForURL(new RegExp(`/alerts/${targetId}$`));
    const history = page.getByRole('table', { name: 'Alert history' });
    const inhibited = history.getByRole('row').filter({ hasText: 'inhibited by payments down' });
    await expect.poll(() => inhibited.count()).toBe(1);
    expect(await inhibited.innerText()).toContain('server="payments"');
    expect(await inhibited.innerText()).toContain('rule critical mutes warning');
    await platform.screenshot(page, 'alert-history-inhibited.png');
    await inhibited.getByRole('link', { name: 'payments down' }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText()).toContain('payments down');
  });

  it('raised no script errors', () => {
    expect(platform.pageErrors).toEqual([]);
  });
});
