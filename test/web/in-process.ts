// The API in this process over real stores (PGlite, chDB, Redis), listening on a port for Debian's
// Chromium: lighter than `pylee start` for the page tests that need the API and the stores only.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { WEB_BUILD_DIR } from '#api/static.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { CHROMIUM, launchChromium, signIn } from './platform.ts';

export const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
/** Chromium is installed and the UI is built (`npm run build:web`). */
export const browserRunnable =
  fs.existsSync(CHROMIUM) && fs.existsSync(path.join(WEB_BUILD_DIR, 'index.html'));

export interface InProcessPlatform {
  stores: Awaited<ReturnType<typeof openTestStores>>;
  api: TestApi;
  /** Call the API as the bootstrap admin; throws on a status of 300 or more. */
  call<T = unknown>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: object,
  ): Promise<T>;
  /** Opens the UI's listener and the browser (after seeding, which needs neither). */
  listen(): Promise<void>;
  baseUrl: string;
  /** A signed-in page; its script errors are collected in `pageErrors`. */
  newPage(): Promise<Page>;
  pageErrors: string[];
  screenshot(page: Page, name: string): Promise<void>;
  close(): Promise<void>;
}

export async function openInProcessPlatform(): Promise<InProcessPlatform> {
  const stores = await openTestStores();
  const api = await buildTestApi(stores);
  let browser: Browser | undefined;
  const platform: InProcessPlatform = {
    stores,
    api,
    baseUrl: '',
    pageErrors: [],
    async call<T>(method: string, url: string, body?: object) {
      const res = await api.app.inject({
        method: method as 'GET',
        url: `/api/v1${url}`,
        headers: bearer(BOOTSTRAP_TOKEN),
        ...(body === undefined ? {} : { payload: body }),
      });
      if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
      return (res.body ? res.json() : undefined) as T;
    },
    async listen() {
      await api.app.listen({ port: 0, host: '127.0.0.1' });
      platform.baseUrl = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
      browser = await launchChromium();
    },
    async newPage() {
      if (!browser) throw new Error('listen() first');
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      page.on('pageerror', (error) => platform.pageErrors.push(error.message));
      await signIn(page, platform.baseUrl, BOOTSTRAP_TOKEN);
      return page;
    },
    async screenshot(page, name) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
    },
    async close() {
      await browser?.close();
      await api.app.close();
      await stores.close();
    },
  };
  return platform;
}
