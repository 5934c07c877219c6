// The inhibition rules page and an alert's history in Debian's Chromium, against the real API over
// real stores: an alert held by an inhibition rule shows the alert that inhibits it.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateRule } from '#core/alerting/engine.ts';
import { flushDueGroups } from '#core/alerting/groups.ts';
import { createInhibition } from '#core/alerting/inhibitions.ts';
import { createRule } from '#core/alerting/rules.ts';
import type { Context } from '#core/auth/principal.ts';
import { systemPrincipal } from '#core/orgs.ts';
import { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';
import { requests, write } from '#test/alerting/helpers.ts';
import { BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { CHROMIUM, launchChromium, signIn } from './platform.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const ready =
  fs.existsSync(CHROMIUM) && fs.existsSync(path.resolve(import.meta.dirname, '../../web/build/index.html'));

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let browser: Browser;
let baseUrl: string;
let targetId: string;
const pageErrors: string[] = [];

describe.skipIf(!ready)('inhibition rules in the web UI', () => {
  beforeAll(async () => {
    stores = await openTestStores();
    api = await buildTestApi(stores);
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
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
    browser = await launchChromium();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await api?.app.close();
    await stores?.close();
  });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await signIn(page, baseUrl, BOOTSTRAP_TOKEN);
    return page;
  }

  it('lists, creates (refusing a bad matcher by name) and deletes inhibition rules', async () => {
    const page = await newPage();
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
    await page.screenshot({ path: path.join(ARTIFACTS, 'inhibitions.png'), fullPage: true });

    await row.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => table.getByRole('row').count()).toBe(2);
    const listed = await api.app.inject({
      method: 'GET',
      url: '/api/v1/inhibitions',
      headers: { authorization: `Bearer ${BOOTSTRAP_TOKEN}` },
    });
    expect((listed.json() as { inhibitions: { name: string }[] }).inhibitions.map((i) => i.name)).toEqual([
      'critical mutes warning',
    ]);
  });

  it("shows the inhibited notification in the alert's history with the inhibiting alert", async () => {
    const page = await newPage();
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
    await page.screenshot({ path: path.join(ARTIFACTS, 'alert-history-inhibited.png'), fullPage: true });
    await inhibited.getByRole('link', { name: 'payments down' }).click();
    await expect.poll(() => page.getByRole('heading', { level: 1 }).innerText()).toContain('payments down');
  });

  it('raised no script errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
