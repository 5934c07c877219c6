// The web UI in Debian's Chromium against a real running Pylee with real data (see platform.ts).
// Screenshots of every page go to test/web/artifacts/.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killLeftovers } from '#test/helpers/pylee-process.ts';
import {
  ADMIN_TOKEN,
  CHROMIUM,
  launchChromium,
  seedServer,
  signIn,
  startPlatform,
  type Platform,
} from './platform.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
const hasChromium = fs.existsSync(CHROMIUM);

let platform: Platform;
let browser: Browser;
let admin: BrowserContext;
let readToken: string;
let weatherCanaryId: string;
const pageErrors: string[] = [];
const timings: Record<string, number> = {};

async function firing(server: string): Promise<boolean> {
  const { alerts } = await platform.call<{ alerts: { server: string }[] }>(
    'GET',
    `/alerts?state=firing&server=${server}`,
  );
  return alerts.length > 0;
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

/**
 * Opens a page that records script errors, dialogs and console errors (Chromium logs a failed
 * request, a 401 say, as one) in `pageErrors`; `expected` matches the console errors a test causes
 * on purpose (`<message> (<url>)`).
 */
async function newPage(context: BrowserContext, expected: RegExp[] = []): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = `${message.text()} (${message.location().url})`;
    if (!expected.some((re) => re.test(text))) pageErrors.push(`console error on ${page.url()}: ${text}`);
  });
  page.on('dialog', (dialog) => {
    pageErrors.push(`unexpected dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  return page;
}

/**
 * In the page: records the text drawn on each canvas, with its box in canvas pixels, in
 * `canvas.__texts`, emptied when the whole canvas is cleared for a redraw. Chart axis labels are
 * drawn on the canvas, not in the DOM; this is how a test sees whether one is cut off.
 */
function recordCanvasText(): void {
  type Drawn = { text: string; left: number; right: number; align: string };
  type Recorded = HTMLCanvasElement & { __texts?: Drawn[] };
  const proto = CanvasRenderingContext2D.prototype;
  const { fillText, clearRect } = proto;
  proto.clearRect = function (x, y, w, h) {
    if (x <= 0 && y <= 0 && x + w >= this.canvas.width && y + h >= this.canvas.height)
      (this.canvas as Recorded).__texts = [];
    clearRect.call(this, x, y, w, h);
  };
  proto.fillText = function (text, x, y, maxWidth) {
    const width = this.measureText(text).width;
    const align = this.textAlign;
    const start = align === 'right' || align === 'end' ? x - width : align === 'center' ? x - width / 2 : x;
    const left = start + this.getTransform().e;
    ((this.canvas as Recorded).__texts ??= []).push({ text, left, right: left + width, align });
    if (maxWidth === undefined) fillText.call(this, text, x, y);
    else fillText.call(this, text, x, y, maxWidth);
  };
}

interface ChartText {
  title: string;
  /** Canvas width and the plot's right edge on it, canvas pixels. */
  width: number;
  plotRight: number;
  texts: { text: string; left: number; right: number; align: string }[];
}

/**
 * Every text of every chart on the page (tick labels, deployment markers) lies inside its canvas:
 * a y-axis as wide as its widest label, no label cut off at either edge. Time labels are centred on
 * their ticks, so right of the plot there must be room for half the widest one, wherever the ticks
 * fall at the moment.
 */
async function expectChartTextInside(page: Page): Promise<ChartText[]> {
  const read = () =>
    page.evaluate(() =>
      Array.from(document.querySelectorAll('figure.chart')).map((figure): ChartText => {
        const canvas = figure.querySelector('canvas') as HTMLCanvasElement & { __texts?: ChartText['texts'] };
        const box = canvas.getBoundingClientRect();
        const plot = (figure.querySelector('.u-over') as HTMLElement).getBoundingClientRect();
        return {
          title: figure.querySelector('figcaption')?.textContent ?? '',
          width: canvas.width,
          plotRight: (plot.right - box.left) * (canvas.width / box.width),
          texts: canvas.__texts ?? [],
        };
      }),
    );
  await expect.poll(async () => (await read()).every((c) => c.texts.length > 0)).toBe(true);
  const charts = await read();
  expect(charts.length).toBeGreaterThan(0);
  for (const chart of charts) {
    for (const t of chart.texts) {
      const label = `${chart.title}: "${t.text}"`;
      expect(t.left, `${label} starts left of the canvas`).toBeGreaterThanOrEqual(0);
      expect(t.right, `${label} ends right of the canvas`).toBeLessThanOrEqual(chart.width);
      if (t.align === 'center')
        expect((t.right - t.left) / 2, `${label} has no room at the right edge`).toBeLessThanOrEqual(
          chart.width - chart.plotRight + 0.5,
        );
    }
  }
  return charts;
}

/** The legend values of a chart with the cursor at `fraction` of the plot's width: [baseline, candidate]. */
async function legendAt(page: Page, title: string, fraction: number): Promise<string[]> {
  const chart = page.locator('figure.chart').filter({ has: page.getByText(title, { exact: true }) });
  const plot = chart.locator('.u-over');
  await plot.scrollIntoViewIfNeeded();
  const box = await plot.boundingBox();
  if (!box) throw new Error(`no plot in ${title}`);
  await page.mouse.move(box.x + box.width * fraction, box.y + box.height / 2);
  const [time, ...values] = await chart.locator('.u-legend .u-series .u-value').allTextContents();
  // uPlot shows "--" for the time while the cursor is off the plot (and "—" for every value).
  expect(time, `the cursor is on the ${title} plot`).not.toBe('--');
  return values;
}

/**
 * The overview needs no sideways scrolling (neither the page nor the grid's own box), and the
 * flag, the alert count and the deltas of `row` are inside the viewport.
 */
async function expectOverviewFits(page: Page, row: Locator): Promise<void> {
  const overflow = await page.evaluate(() => {
    const grid = document.querySelector('[data-testid=overview-grid]')?.parentElement as HTMLElement;
    const root = document.documentElement;
    return { page: root.scrollWidth - root.clientWidth, grid: grid.scrollWidth - grid.clientWidth };
  });
  expect(overflow).toEqual({ page: 0, grid: 0 });
  const width = page.viewportSize()?.width ?? 0;
  const deltas = await row.locator('.delta').all();
  expect(deltas).toHaveLength(2);
  for (const target of [row.getByText('rollback recommended'), row.getByText(/^\d+ firing$/), ...deltas]) {
    const box = await target.boundingBox();
    const what = String(await target.textContent());
    if (!box) throw new Error(`${what} is not shown`);
    expect(box.x, what).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width, what).toBeLessThanOrEqual(width);
  }
}

describe.runIf(hasChromium)('web UI in Chromium', () => {
  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const start = Date.now();
    platform = await startPlatform();
    timings.startMs = Date.now() - start;
    const { key } = await platform.call<{ key: string }>('POST', '/ingest-keys', { name: 'web test' });
    readToken = (
      await platform.call<{ token: string }>('POST', '/tokens', { name: 'viewer', permissions: ['read'] })
    ).token;
    // weather: a canary that regressed; search: a healthy canary; notes: markup everywhere.
    await seedServer(platform, key, {
      slug: 'weather',
      name: `Weather ${XSS}`,
      releaseNotes: `## 1.1.0\n\nFaster forecasts ${XSS}\n\n<a href="javascript:window.__pwned=3">click</a>`,
      canary: true,
      regress: true,
    });
    await seedServer(platform, key, { slug: 'search', canary: true });
    await seedServer(platform, key, { slug: 'maps', environment: 'staging' });
    await platform.call('POST', '/alert-rules', {
      name: `Canary error rate ${XSS}`,
      server: 'weather',
      environment: 'production',
      version: '1.1.0',
      kind: 'threshold',
      metric: 'errorRate',
      comparator: '>',
      threshold: 0.1,
      interval: '5s',
      window: '30m',
      for: '0s',
      severity: 'critical',
      annotations: { summary: `error rate above 10 % ${XSS}` },
    });
    const { deployments } = await platform.call<{ deployments: { id: string; version: string }[] }>(
      'GET',
      '/servers/weather/deployments?environment=production&active=true',
    );
    weatherCanaryId = deployments.find((d) => d.version === '1.1.0')?.id as string;
    // The alerts role evaluates the rule every 5 s.
    const t0 = Date.now();
    for (let i = 0; i < 60 && !(await firing('weather')); i++) await sleep(500);
    timings.alertMs = Date.now() - t0;
    browser = await launchChromium();
    admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await admin.addInitScript(recordCanvasText);
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await platform?.stop();
    await killLeftovers();
  });

  it('signs in with a token kept in an httpOnly cookie, never in the URL or storage', async () => {
    const page = await newPage(admin);
    // Signed out, the layout's probe is answered 200 (a 401 would be logged as a console error).
    const probe = page.waitForResponse(
      (r) => r.url().endsWith('/api/v1/session') && r.request().method() === 'GET',
    );
    await signIn(page, platform.apiUrl, ADMIN_TOKEN);
    const answer = await probe;
    expect(answer.status()).toBe(200);
    expect(await answer.json()).toEqual({ authenticated: false });
    expect(pageErrors).toEqual([]);
    const cookies = await admin.cookies();
    const session = cookies.find((c) => c.name === 'pylee_session');
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe('Strict');
    expect(session?.value).not.toContain(ADMIN_TOKEN);
    const stored = await page.evaluate(
      () => JSON.stringify({ ...localStorage, ...sessionStorage }) + document.cookie,
    );
    expect(stored).not.toContain(ADMIN_TOKEN);
    expect(page.url()).not.toContain(ADMIN_TOKEN);
    await page.close();
  });

  it('shows every server × environment on the overview, with the regression flagged', async () => {
    const page = await newPage(admin);
    await page.goto(`${platform.apiUrl}/`);
    const weather = page.locator('tr[data-server="weather"][data-environment="production"]');
    await weather.getByText('rollback recommended').waitFor();
    await expect.poll(() => page.locator('[data-testid=overview-grid] tbody tr').count()).toBe(3);
    expect(await weather.textContent()).toContain('canary 25 %');
    expect(await page.locator('tr[data-server="search"]').getByText('rollback recommended').count()).toBe(0);
    // Sparklines for the current and the previous version, once the row's figures load.
    await weather.locator('svg.spark path.prev').first().waitFor();
    expect(await weather.textContent()).toMatch(/1 firing/);
    for (const server of ['search', 'maps'])
      await page.locator(`tr[data-server="${server}"] svg.spark`).first().waitFor();
    await shot(page, 'overview');

    // No sideways scrolling on a laptop: the flag, alert count and deltas are on screen from 1,024 px.
    await expectOverviewFits(page, weather);
    await page.setViewportSize({ width: 1024, height: 900 });
    await expectOverviewFits(page, weather);
    await shot(page, 'overview-1024');
    await page.setViewportSize({ width: 1280, height: 900 });

    // Filters: only problems leaves the flagged row.
    await page.getByLabel('only problems').check();
    await expect.poll(() => page.locator('[data-testid=overview-grid] tbody tr').count()).toBe(1);
    expect(page.url()).toContain('problems=1');
    await page.close();
  });

  it('compares stable against canary by default, drawing both versions on every chart', async () => {
    const page = await newPage(admin);
    await page.goto(`${platform.apiUrl}/servers/weather/compare`);
    await page.locator('figure.chart canvas').first().waitFor();
    expect(await page.locator('select[name=baseline]').inputValue()).toBe('1.0.0');
    expect(await page.locator('select[name=candidate]').inputValue()).toBe('1.1.0');
    expect(await page.locator('select[name=environment]').inputValue()).toBe('production');
    // CPU and memory: no resource metrics were sent, so those two say so instead of drawing.
    expect(await page.locator('figure.chart').count()).toBe(5);
    expect(await page.getByText('No data in this window').count()).toBe(2);
    // uPlot's legend lists the time axis and one entry per series: two versions.
    const legend = page.locator('figure.chart').first().locator('.u-legend .u-series');
    expect(await legend.count()).toBe(3);
    expect(await legend.nth(1).textContent()).toContain('1.0.0');
    expect(await legend.nth(2).textContent()).toContain('1.1.0');
    const table = page.getByRole('table', { name: 'Per-operation comparison' });
    expect(await table.textContent()).toContain('tools/call forecast');
    expect(await page.locator('td.worse').count()).toBeGreaterThan(0);

    // Every tick label is whole: under 1 req/s, the throughput axis reads "0.35 req/s", not "35 req/s".
    const charts = await expectChartTextInside(page);
    const throughputTicks = charts.find((c) => c.title === 'Throughput')?.texts.map((t) => t.text);
    expect(throughputTicks).toContainEqual(expect.stringMatching(/^0\.\d\d req\/s$/));

    // The hour starts 40 minutes before the traffic. There a minute has no error rate (a gap, "—"),
    // not 0 %, while its throughput is a real 0; where there was traffic both have values.
    expect(await legendAt(page, 'Error rate', 0.02)).toEqual(['—', '—']);
    await page
      .locator('figure.chart')
      .filter({ has: page.getByText('Error rate', { exact: true }) })
      .screenshot({ path: path.join(ARTIFACTS, 'compare-error-rate-gap.png') });
    expect(await legendAt(page, 'Throughput', 0.02)).toEqual(['0.00 req/s', '0.00 req/s']);
    expect(await legendAt(page, 'Error rate', 0.97)).toEqual([
      expect.stringMatching(/^\d+\.\d %$/),
      expect.stringMatching(/^\d+\.\d %$/),
    ]);
    await page.mouse.move(0, 0);
    await shot(page, 'compare');
    await page.close();
  });

  it('renders release notes, names and labels with markup inert', async () => {
    // Chromium reports the inline handlers of the notes when DOMPurify parses them (in an inert
    // document, where the page's CSP refuses them): expected here, and nothing runs (__pwned below).
    const page = await newPage(admin, [/^Executing inline event handler violates .*Content Security Policy/]);
    for (const url of [
      '/servers/weather/versions/1.1.0',
      '/servers/weather',
      '/alerts?state=firing',
      '/settings',
    ]) {
      await page.goto(`${platform.apiUrl}${url}`);
      await page.locator('main h1').first().waitFor();
      await page.waitForLoadState('networkidle');
      if (url.includes('versions')) {
        await page.getByText('Faster forecasts').waitFor();
        await shot(page, 'version');
      }
      if (url.includes('alerts')) {
        await page.getByText('Canary error rate').first().waitFor();
        // The canary's alert says it is in a rollout and what it began after.
        const rollout = page.locator('td .rollout').first();
        await rollout.waitFor();
        expect(await rollout.innerText()).toMatch(/^In rollout: step \d+\/\d+ at \d+ %/);
        expect(await page.locator('td .correlation').first().innerText()).toMatch(
          /^Began \d+ (s|min) after 1\.1\.0 reached \d+ % in production$/,
        );
        await shot(page, 'alerts');
      }
      if (url === '/servers/weather') await shot(page, 'server');
      if (url === '/settings') await shot(page, 'settings');
    }
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.goto(`${platform.apiUrl}/servers/weather/versions/1.1.0`);
    await page.getByText('Faster forecasts').waitFor();
    const notes = page.locator('.markdown');
    expect(await notes.locator('script').count()).toBe(0);
    expect(await notes.locator('[onerror]').count()).toBe(0);
    expect(await notes.locator('a[href^="javascript:"]').count()).toBe(0);
    await page.goto(`${platform.apiUrl}/servers/weather`);
    await page.locator('main h1').waitFor();
    // The server's name shows as text, markup and all.
    expect(await page.locator('main h1').textContent()).toContain('<img src=x');
    expect(await page.locator('main img').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.close();
  });

  it('rolls the canary back from the canary report, after confirmation, and shows it', async () => {
    const page = await newPage(admin);
    await page.goto(`${platform.apiUrl}/servers/weather`);
    await page.getByRole('link', { name: 'Canary report' }).click();
    await page.waitForURL(new RegExp(`/deployments/${weatherCanaryId}`));
    await page.getByRole('button', { name: 'Roll back' }).waitFor();
    await page.getByText('Candidate against baseline').waitFor();
    await page.locator('figure.chart canvas').first().waitFor();
    await expectChartTextInside(page);
    await shot(page, 'canary-report');

    await page.getByRole('button', { name: 'Roll back' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Reason (optional)').fill('error rate tripled in the canary');
    await shot(page, 'canary-confirm');
    await dialog.getByRole('button', { name: 'Roll back' }).click();
    await page.getByText('Roll back done.').waitFor();
    await page.getByTestId('deployment-status').getByText('rolled-back').waitFor();
    expect(await page.getByRole('button', { name: 'Roll back' }).count()).toBe(0);
    await shot(page, 'canary-rolled-back');

    const { environments } = await platform.call<{
      environments: { environment: string; stable: { version: string } | null; canary: unknown }[];
    }>('GET', '/servers/weather/environments');
    const production = environments.find((e) => e.environment === 'production');
    expect(production?.stable?.version).toBe('1.0.0');
    expect(production?.canary).toBeNull();

    // The audit log shows who did it.
    await page.goto(`${platform.apiUrl}/audit`);
    await page.getByRole('table', { name: 'Audit events' }).waitFor();
    expect(await page.getByRole('table', { name: 'Audit events' }).textContent()).toContain('rollback');
    await shot(page, 'audit');
    await page.close();
  });

  it('shows a read-only token no deploy buttons, and the API refuses it anyway', async () => {
    const viewer = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // The refused rollback below is logged by Chromium as a failed request: that one is meant.
    const page = await newPage(viewer, [/status of 403 .*\/deployments\/[^/]+\/rollback\)$/]);
    await signIn(page, platform.apiUrl, readToken);
    const { deployments } = await platform.call<{ deployments: { id: string }[] }>(
      'GET',
      '/servers/search/deployments?active=true',
    );
    const id = deployments[0]?.id as string;
    await page.goto(`${platform.apiUrl}/servers/search/deployments/${id}`);
    await page.getByText('Candidate against baseline').waitFor();
    for (const name of ['Roll back', 'Promote', 'Pause', 'Abort'])
      expect(await page.getByRole('button', { name }).count()).toBe(0);
    // The same request the button would send, from the page with its session: refused.
    const status = await page.evaluate(async (url) => {
      const who = await fetch('/api/v1/session').then((r) => r.json());
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-pylee-csrf': who.csrfToken },
        body: '{}',
      });
      return res.status;
    }, `/api/v1/servers/search/deployments/${id}/rollback`);
    expect(status).toBe(403);
    await viewer.close();
  });

  it('works at phone width and in dark mode', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      colorScheme: 'dark',
    });
    await phone.addInitScript(recordCanvasText);
    const page = await newPage(phone);
    await signIn(page, platform.apiUrl, ADMIN_TOKEN);
    await page.locator('[data-testid=overview-grid] tbody tr').first().waitFor();
    await page.locator('tr[data-server="search"] svg.spark').first().waitFor();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(1);
    await shot(page, 'overview-phone-dark');
    await page.goto(`${platform.apiUrl}/servers/weather/compare`);
    await page.locator('figure.chart canvas').first().waitFor();
    expect(
      await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
    ).toBeLessThanOrEqual(1);
    // Narrow charts at twice the pixel density: still no label cut off.
    await expectChartTextInside(page);
    await shot(page, 'compare-phone-dark');
    // The toggle overrides the system preference.
    await page.getByRole('button', { name: /Switch to light mode/ }).click();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('light');
    await phone.close();
  });

  it("shows a version's vulnerabilities with severity badges, and marks the overview row running it", async () => {
    const acorn = JSON.parse(
      fs.readFileSync(
        path.resolve(import.meta.dirname, '../fixtures/osv/npm/GHSA-6chw-6frg-f759.json'),
        'utf8',
      ),
    ) as unknown;
    await platform.call('POST', '/advisories/import', { records: [acorn] });
    await platform.call('POST', '/servers/weather/versions', {
      version: '9.0.0',
      packages: [
        { registryType: 'npm', identifier: 'acorn', version: '6.4.0', transport: { type: 'stdio' } },
      ],
    });
    await platform.call('POST', '/servers/weather/deployments', {
      version: '9.0.0',
      environment: 'development',
    });
    const page = await newPage(admin);
    await page.goto(`${platform.apiUrl}/servers/weather/versions/9.0.0`);
    const row = page.locator('tr[data-advisory="GHSA-6chw-6frg-f759"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('high 7.5');
    expect(await row.textContent()).toContain('5.7.4, 6.4.1, 7.1.1');
    // Ignore it with a reason (the dialog refuses none), then remove the rule again.
    await row.getByRole('button', { name: 'Ignore…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Reason (required)').fill('acorn parses only our own templates');
    await dialog.getByLabel('Expires').selectOption({ label: 'in 7 days' });
    await dialog.getByRole('button', { name: 'Ignore' }).click();
    const hidden = page.locator('tr[data-ignored="GHSA-6chw-6frg-f759"]');
    await hidden.waitFor();
    expect(await hidden.textContent()).toContain('acorn parses only our own templates');
    expect(await row.count()).toBe(0);
    const rules = (await platform.call('GET', '/vulnerability-ignores')) as {
      rules: { package: string; server: string; expiresAt: string }[];
    };
    expect(rules.rules).toMatchObject([{ package: 'acorn', server: 'weather' }]);
    expect(Date.parse(rules.rules[0]!.expiresAt) - Date.now()).toBeGreaterThan(6 * 86_400_000);
    await hidden.getByRole('button', { name: 'Remove rule' }).click();
    await row.waitFor();
    expect(await hidden.count()).toBe(0);
    await page.goto(`${platform.apiUrl}/`);
    await page
      .locator('tr[data-server="weather"][data-environment="development"] [data-testid=vulnerable]')
      .getByText('vulnerable: high')
      .waitFor();
    await page.close();
  });

  it('shows maintenance lines on the server page and flags a version whose line is past its support', async () => {
    await platform.call('PUT', '/servers/maps/lines/1.x', {
      endOfSupport: '2026-01-31',
      description: 'old API',
    });
    const page = await newPage(admin);
    await page.goto(`${platform.apiUrl}/servers/maps`);
    const line = page.locator('tr[data-line="1.x"]');
    await line.waitFor();
    expect(await line.innerText()).toMatch(/^1\.x\s+old API\s+end of support 2026-01-31\s+1\.1\.0\s+2$/);
    await page.goto(`${platform.apiUrl}/servers/maps/versions/1.0.0`);
    await page.getByText('line 1.x past end of support (2026-01-31)').waitFor();
    await page.close();
  });

  it('raised no script errors on any page', () => {
    process.stderr.write(`web ui setup: ${JSON.stringify(timings)}\n`);
    expect(pageErrors).toEqual([]);
  });
});
