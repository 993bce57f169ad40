/**
 * What the chat demo's browser tests start: a relay serving the built demo (apps/demo/dist, built
 * by global-setup) at `/`, and two history service instances (apps/demo/server/history.ts) in
 * this process. Users are Chromium browser contexts of their own (their own localStorage and
 * IndexedDB), signed in through the sign-in screen as a person would.
 */
import { createRelay, type Relay } from '@missive/node';
import { expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { fileURLToPath } from 'node:url';
import { startHistory, type HistoryService } from '../apps/demo/server/history.js';

export const demoDist = fileURLToPath(new URL('../apps/demo/dist', import.meta.url));

export interface DemoWorld {
  relay: Relay;
  history: HistoryService[];
  /** The chat's URL, served by the relay. */
  url: string;
  historyErrors: Error[];
  /** Restarts the relay on the same port (its held messages are lost, as in a real restart). */
  restartRelay(): Promise<void>;
  close(): Promise<void>;
}

export async function startDemo(options: { port?: number } = {}): Promise<DemoWorld> {
  const make = (port: number) => createRelay({ host: '127.0.0.1', port, serve: { '/': demoDist } });
  let relay = await make(options.port ?? 0);
  const port = relay.port;
  const historyErrors: Error[] = [];
  const history = await Promise.all(['history-1', 'history-2'].map((id) => startHistory({ url: relay.url, id, onError: (e) => historyErrors.push(e) })));
  const world: DemoWorld = {
    get relay() {
      return relay;
    },
    history,
    url: `http://127.0.0.1:${port}/`,
    historyErrors,
    async restartRelay() {
      relay = await make(port);
    },
    async close() {
      await Promise.allSettled(history.map((h) => h.close()));
      await relay.close(2000);
    },
  };
  return world;
}

export interface User {
  name: string;
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors; the test checks it stays empty. */
  errors: string[];
}

/** A new browser context (a person with their own storage) on `url`, not yet signed in. */
export async function newUser(browser: Browser, url: string, name: string, viewport = { width: 1100, height: 760 }): Promise<User> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`${err.name}: ${err.message}`));
  await page.goto(url);
  return { name, context, page, errors };
}

/** Signs `user` in through the form and waits for "Connected". */
export async function signIn(user: User): Promise<void> {
  const { page } = user;
  await page.getByLabel('Nickname').fill(user.name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(connection(page)).toHaveText('Connected');
}

export async function join(browser: Browser, url: string, name: string, viewport?: { width: number; height: number }): Promise<User> {
  const u = await newUser(browser, url, name, viewport);
  await signIn(u);
  return u;
}

export const connection = (page: Page) => page.getByRole('status', { name: 'Connection' });

/** The message log of the open conversation. */
export const log = (page: Page) => page.getByRole('log');

/** Opens the direct conversation with `other` by typing the name (online or not). */
export async function openDm(page: Page, other: string): Promise<void> {
  await page.getByLabel('Conversation with (online or not)').fill(other);
  await page.getByRole('button', { name: 'Open', exact: true }).click();
  await expect(page.getByRole('heading', { level: 2, name: other })).toBeVisible();
}

/** Writes `text` in the composer and presses Enter. */
export async function say(page: Page, text: string): Promise<void> {
  const box = page.getByRole('textbox', { name: /^Message / });
  await box.fill(text);
  await box.press('Enter');
  await expect(box).toHaveValue('');
}

export async function closeUsers(users: User[]): Promise<void> {
  await Promise.allSettled(users.map((u) => u.context.close()));
  for (const u of users) expect(u.errors, `uncaught errors in ${u.name}'s page`).toEqual([]);
}
