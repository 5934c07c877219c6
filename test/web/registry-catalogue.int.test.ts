// The registry catalogue pages in Debian's Chromium against the real API (in this process, over real
// stores): templates (the list, a template's versions and usage with a server behind, the server that
// follows it) and shared packages (the catalogue with its usage counts and the packages in use nobody
// catalogued, a package's usage page with its not-allowed and deprecated uses flagged).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserRunnable, openInProcessPlatform, type InProcessPlatform } from './in-process.ts';

describe.runIf(browserRunnable)('template and package pages, in Chromium', () => {
  let platform: InProcessPlatform;
  const pkg = (registryType: string, identifier: string, version: string) => ({
    registryType,
    identifier,
    version,
    transport: { type: 'stdio' },
  });

  beforeAll(async () => {
    platform = await openInProcessPlatform();
    const { call } = platform;
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
    await platform.listen();
  });

  afterAll(() => platform?.close());

  const text = async (locator: { textContent(): Promise<string | null> }) =>
    (await locator.textContent())?.replace(/\s+/g, ' ') ?? '';

  it('lists the template, shows its usage with the server behind, and the server page names it', async () => {
    const { baseUrl } = platform;
    const page = await platform.newPage();

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
    await platform.screenshot(page, 'template-usage.png');

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
    expect(platform.pageErrors).toEqual([]);
    await page.context().close();
  });

  it('lists the catalogue with counts and the uncatalogued packages; the usage page flags deprecated uses', async () => {
    const { baseUrl } = platform;
    const page = await platform.newPage();
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
    await platform.screenshot(page, 'packages.png');

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
    await platform.screenshot(page, 'package-usage.png');

    // An image's identifier has slashes: its page is the rest of the path.
    await page.goto(`${baseUrl}/packages/oci/ghcr.io/acme/img`);
    await page.getByText('not catalogued', { exact: true }).waitFor();
    expect(await page.locator('tr[data-use]').count()).toBe(3);
    expect(platform.pageErrors).toEqual([]);
    await page.context().close();
  });
});
