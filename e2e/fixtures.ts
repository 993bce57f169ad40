/**
 * Playwright fixtures for the browser tests. Each starts what it names on a free port of
 * 127.0.0.1 and closes it when its scope ends:
 * - `appUrl` (worker): a static server for the built test app (e2e/app/dist);
 * - `bridgeUrl` (worker): the socket-pairing bridge of the compliance suite (bridge.ts);
 * - `relay` (test): a fresh relay, `createRelay({ port: 0 })` from @missive/node;
 * - `openApp` (test): opens the test app in a page (a new one of the test's context by
 *   default) and waits until it is ready; every page it opened must end the test without an
 *   uncaught error.
 */
import { test as base, expect, type Page } from '@playwright/test';
import { createRelay, type Relay } from '@missive/node';
import { fileURLToPath } from 'node:url';
import { startBridge } from './bridge.js';
import { serveStatic } from './static-server.js';

const appDist = fileURLToPath(new URL('./app/dist', import.meta.url));

interface WorkerFixtures {
  appUrl: string;
  bridgeUrl: string;
}

interface TestFixtures {
  relay: Relay;
  openApp: (page?: Page) => Promise<Page>;
}

export const test = base.extend<TestFixtures, WorkerFixtures>({
  appUrl: [
    async ({}, use) => {
      const server = await serveStatic(appDist);
      await use(server.url);
      await server.close();
    },
    { scope: 'worker' },
  ],

  bridgeUrl: [
    async ({}, use) => {
      const bridge = await startBridge();
      await use(bridge.url);
      await bridge.close();
    },
    { scope: 'worker' },
  ],

  relay: async ({}, use) => {
    const relay = await createRelay({ host: '127.0.0.1', port: 0 });
    await use(relay);
    await relay.close(2000);
  },

  openApp: async ({ context, appUrl }, use) => {
    const errors: string[] = [];
    await use(async (page?: Page) => {
      const p = page ?? (await context.newPage());
      p.on('pageerror', (err) => errors.push(`${err.name}: ${err.message}`));
      await p.goto(appUrl);
      await p.waitForFunction(() => window.e2eReady === true, undefined, { timeout: 10_000 });
      return p;
    });
    expect(errors, 'uncaught errors in the test pages').toEqual([]);
  },
});

export { expect };

/** An error as it crosses from the page: its class name, stable code and message. */
export interface PageError {
  name: string;
  code: string | undefined;
  message: string;
}

/** Reloads `page` and waits until the test app is ready again. */
export async function reloadApp(page: Page): Promise<void> {
  await page.reload();
  await page.waitForFunction(() => window.e2eReady === true, undefined, { timeout: 10_000 });
}
