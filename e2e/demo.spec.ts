/**
 * The chat demo (apps/demo, built by global-setup), served by a real relay with its two history
 * instances (demo-world.ts), used by people in separate Chromium contexts through roles and
 * labels: rooms with presence and typing, history for a late joiner, a DM to someone offline, a
 * DM written while the relay is down (and the page reloaded), a 5 MB file through a tunnel, a
 * nickname that is taken, and the screenshots in the README.
 */
import { expect, test, type Browser, type Page } from '@playwright/test';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './static-server.js';
import { closeUsers, connection, demoDist, join, log, newUser, openDm, say, startDemo, type DemoWorld, type User } from './demo-world.js';

let world: DemoWorld;
let users: User[] = [];
let browser: Browser;

test.beforeEach(async ({ browser: b }) => {
  browser = b;
  world = await startDemo();
  users = [];
});

test.afterEach(async () => {
  await closeUsers(users);
  await world.close();
  expect(world.historyErrors).toEqual([]);
});

/** A person in a browser context of their own, signed in. */
async function person(name: string, viewport?: { width: number; height: number }): Promise<User> {
  const u = await join(browser, world.url, name, viewport);
  users.push(u);
  return u;
}

const members = (page: Page, room: string) => page.getByRole('list', { name: `Who is in #${room}` });
const docs = (name: string) => fileURLToPath(new URL(`../docs/${name}`, import.meta.url));

test('demo - two users chat in a room and see each other\'s presence and typing; rooms are created, joined and left', async () => {
  const alice = await person('alice');
  const bob = await person('bob');

  // Both start in #lobby and see each other there.
  await expect(alice.page.getByRole('heading', { level: 2, name: '#lobby' })).toBeVisible();
  await expect(members(alice.page, 'lobby').getByRole('listitem')).toHaveText(['alice (you)', 'bob']);
  await expect(members(bob.page, 'lobby').getByRole('listitem')).toHaveText(['alice', 'bob (you)']);

  // Bob types: alice sees it; his message arrives and the indicator goes.
  const box = bob.page.getByRole('textbox', { name: 'Message #lobby' });
  await expect(box).toBeFocused();
  await box.pressSequentially('hi al', { delay: 20 });
  await expect(alice.page.getByText('bob is typing…')).toBeVisible();
  await box.pressSequentially('ice!');
  await box.press('Enter');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'hi alice!' })).toContainText('bob');
  await expect(alice.page.getByText('bob is typing…')).toHaveCount(0);
  await say(alice.page, 'hello bob');
  await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'hello bob' })).toContainText('alice');
  // Shift+Enter is a new line, not a send.
  await box.fill('line one');
  await box.press('Shift+Enter');
  await expect(box).toHaveValue('line one\n');
  await box.fill('');

  // Alice creates a room; bob sees it listed, joins, and they see each other in it.
  await alice.page.getByLabel('New room').fill('book-club');
  await alice.page.getByRole('button', { name: 'Create' }).click();
  await expect(alice.page.getByRole('heading', { level: 2, name: '#book-club' })).toBeVisible();
  await bob.page.getByRole('button', { name: 'Join #book-club' }).click();
  await expect(bob.page.getByRole('heading', { level: 2, name: '#book-club' })).toBeVisible();
  await expect(members(alice.page, 'book-club').getByRole('listitem')).toHaveText(['alice (you)', 'bob']);
  await say(bob.page, 'first in the club');
  await expect(log(alice.page)).toContainText('first in the club');

  // A message in a room not on screen counts as unread.
  await say(bob.page, 'unread one');
  await bob.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#lobby/ }).click();
  await say(bob.page, 'back in the lobby');
  await expect(alice.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#lobby/ })).toContainText('1');

  // Alice leaves #book-club: bob sees her go.
  await alice.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#book-club/ }).click();
  await alice.page.getByRole('button', { name: 'Leave #book-club' }).click();
  await expect(alice.page.getByRole('button', { name: 'Join #book-club' })).toBeVisible();
  await bob.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#book-club/ }).click();
  await expect(members(bob.page, 'book-club').getByRole('listitem')).toHaveText(['bob (you)']);

  // Bob signs out: he leaves alice's presence everywhere.
  await bob.page.getByRole('button', { name: 'Sign out' }).click();
  await expect(bob.page.getByLabel('Nickname')).toBeVisible();
  await alice.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#lobby/ }).click();
  await expect(members(alice.page, 'lobby').getByRole('listitem')).toHaveText(['alice (you)']);
});

test('demo - a third user joining a room sees the earlier messages (history from the history service)', async () => {
  const alice = await person('alice');
  const bob = await person('bob');
  for (const [who, text] of [[alice, 'one'], [bob, 'two'], [alice, 'three']] as const) {
    await say(who.page, text);
    await expect(log(alice.page)).toContainText(text);
  }
  // Both instances hold the messages (each subscribes to room.>), whichever answers carol.
  await expect.poll(() => world.history.map((h) => h.messages('lobby').length)).toEqual([3, 3]);

  const carol = await person('carol');
  const items = log(carol.page).getByRole('listitem').filter({ hasNot: carol.page.getByText(/^Earlier messages from/) });
  await expect(items).toHaveCount(3);
  await expect(items.nth(0)).toContainText('alice');
  await expect(items.nth(0)).toContainText('one');
  await expect(items.nth(1)).toContainText('bob');
  await expect(items.nth(2)).toContainText('three');
  await expect(log(carol.page).getByText(/^Earlier messages from history-[12]$/)).toBeVisible();
  await expect(members(carol.page, 'lobby').getByRole('listitem')).toHaveText(['alice', 'bob', 'carol (you)']);
});

test('demo - a DM to an offline user arrives when they sign in, and the sender sees two ticks; the nickname and DMs survive a reload', async () => {
  const alice = await person('alice');
  await openDm(alice.page, 'bob');
  await expect(alice.page.getByText('offline: messages wait for them')).toBeVisible();
  await say(alice.page, 'are you there, bob?');
  const mine = log(alice.page).getByRole('listitem').filter({ hasText: 'are you there, bob?' });
  await expect(mine.getByRole('img', { name: 'Queued' })).toBeVisible();

  const bob = await person('bob');
  const people = bob.page.getByRole('list', { name: 'People' });
  await expect(people.getByRole('button', { name: /alice/ })).toContainText('1');
  await people.getByRole('button', { name: /alice/ }).click();
  await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'are you there, bob?' })).toBeVisible();
  await expect(mine.getByRole('img', { name: 'Delivered' })).toBeVisible();
  await expect(mine.getByRole('img', { name: 'Queued' })).toHaveCount(0);

  // Bob answers; alice's answer is delivered at once (two ticks) since bob is online.
  await say(bob.page, 'here now');
  await expect(log(alice.page)).toContainText('here now');
  await say(alice.page, 'great');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'great' }).getByRole('img', { name: 'Delivered' })).toBeVisible();

  // A reload signs bob in again by himself, with the conversation kept.
  await bob.page.reload();
  await expect(connection(bob.page)).toHaveText('Connected');
  await expect(bob.page.getByText('Signed in as bob')).toBeVisible();
  await bob.page.getByRole('list', { name: 'People' }).getByRole('button', { name: /alice/ }).click();
  await expect(log(bob.page)).toContainText('are you there, bob?');
  await expect(log(bob.page)).toContainText('great');
});

test('demo - a nickname in use is refused with a friendly message', async () => {
  await person('alice');
  const other = await newUser(browser, world.url, 'alice');
  users.push(other);
  await other.page.getByLabel('Nickname').fill('alice');
  await other.page.getByRole('button', { name: 'Sign in' }).click();
  await expect(other.page.getByRole('alert')).toContainText('The nickname "alice" is taken');
  await expect(other.page.getByLabel('Nickname')).toBeFocused();
  // Another name works from the same screen.
  await other.page.getByLabel('Nickname').fill('alice2');
  await other.page.getByRole('button', { name: 'Sign in' }).click();
  await expect(connection(other.page)).toHaveText('Connected');
});

test('demo - a DM written while the relay is down, and kept across a reload, is delivered once the relay is back', async () => {
  test.setTimeout(60_000);
  // The app is served by a static server here, so the page can reload while the relay is down.
  const site = await serveStatic(demoDist);
  try {
    const url = `${site.url}?relay=${encodeURIComponent(world.relay.url)}`;
    const alice = await join(browser, url, 'alice');
    const bob = await join(browser, url, 'bob');
    users.push(alice, bob);
    await openDm(alice.page, 'bob');
    await openDm(bob.page, 'alice');

    await world.relay.close(1000);
    await expect(connection(alice.page)).toHaveText(/^Reconnecting/);
    await expect(connection(alice.page)).toHaveText(/^Reconnecting \(attempt \d+\)…$/);
    await say(alice.page, 'written while the relay was down');
    const mine = log(alice.page).getByRole('listitem').filter({ hasText: 'written while the relay was down' });
    await expect(mine.getByRole('img', { name: 'Queued' })).toBeVisible();
    // A room message cannot wait: the app says so instead of dropping it silently.
    await alice.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#lobby/ }).click();
    await alice.page.getByRole('textbox', { name: 'Message #lobby' }).fill('lost?');
    await alice.page.getByRole('textbox', { name: 'Message #lobby' }).press('Enter');
    await expect(alice.page.getByRole('alert').filter({ hasText: 'Not connected: room messages are not queued' })).toBeVisible();
    await expect(alice.page.getByRole('textbox', { name: 'Message #lobby' })).toHaveValue('lost?');

    // The page reloads with the relay still down: offline, retrying, the message still queued
    // (in the IndexedDB outbox; the screen's copy in localStorage).
    await alice.page.reload();
    await expect(connection(alice.page)).toHaveText(/^Offline: retrying \(attempt \d+\)$/);
    await expect(alice.page.getByRole('alert').filter({ hasText: 'Cannot reach the relay' })).toBeVisible();
    await alice.page.getByRole('list', { name: 'People' }).getByRole('button', { name: /bob/ }).click();
    await expect(mine.getByRole('img', { name: 'Queued' })).toBeVisible();

    await world.restartRelay();
    await expect(connection(alice.page)).toHaveText('Connected', { timeout: 15_000 });
    await expect(alice.page.getByRole('alert').filter({ hasText: 'Cannot reach the relay' })).toHaveCount(0);
    await expect(connection(bob.page)).toHaveText('Connected', { timeout: 15_000 });
    await expect(log(bob.page).getByRole('listitem').filter({ hasText: 'written while the relay was down' })).toHaveCount(1, { timeout: 15_000 });
    await expect(mine.getByRole('img', { name: 'Delivered' })).toBeVisible();
  } finally {
    await site.close();
  }
});

test('demo - a 5 MB file arrives intact through a tunnel, with the progress bars at 100% and the link shown', async () => {
  test.setTimeout(60_000);
  const alice = await person('alice');
  const bob = await person('bob');
  await openDm(alice.page, 'bob');
  await openDm(bob.page, 'alice');
  await say(alice.page, 'a file for you');
  await expect(log(bob.page)).toContainText('a file for you');

  const bytes = randomBytes(5 * 1024 * 1024);
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  await alice.page.getByLabel('Send a file to bob').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: bytes });

  const sending = alice.page.getByRole('progressbar', { name: 'Sending big.bin to bob' });
  const receiving = bob.page.getByRole('progressbar', { name: 'Receiving big.bin from alice' });
  await expect(receiving).toHaveAttribute('aria-valuenow', '100', { timeout: 30_000 });
  await expect(sending).toHaveAttribute('aria-valuenow', '100');
  await expect(log(alice.page).getByRole('listitem').filter({ has: sending })).toContainText('bob has it');
  await expect(log(alice.page).getByRole('listitem').filter({ has: sending })).toContainText(/via (the relay|a direct link \(WebRTC\))/);
  await expect(log(bob.page).getByRole('listitem').filter({ has: receiving })).toContainText(/via (the relay|a direct link \(WebRTC\))/);

  const [download] = await Promise.all([bob.page.waitForEvent('download'), bob.page.getByRole('link', { name: 'Download big.bin' }).click()]);
  expect(download.suggestedFilename()).toBe('big.bin');
  const got = await readFile(await download.path());
  expect(got.length).toBe(bytes.length);
  expect(sha(got)).toBe(sha(bytes));
});

test('demo - screenshots of the chat at desktop and phone width', async () => {
  const alice = await person('alice', { width: 1200, height: 720 });
  const bob = await person('bob', { width: 390, height: 844 });
  await say(alice.page, 'Welcome! Rooms are pub/sub topics, and the history service keeps the last 500 messages of each.');
  await say(bob.page, 'Hi alice, trying it on my phone');
  await say(alice.page, 'Direct messages are durable: they wait in your browser, then at the relay, until they are delivered.');
  await alice.page.getByLabel('New room').fill('book-club');
  await alice.page.getByRole('button', { name: 'Create' }).click();
  await alice.page.getByRole('list', { name: 'Joined rooms' }).getByRole('button', { name: /#lobby/ }).click();
  await bob.page.getByRole('textbox', { name: 'Message #lobby' }).pressSequentially('typing', { delay: 10 });
  await expect(alice.page.getByText('bob is typing…')).toBeVisible();
  await expect(log(alice.page)).toContainText('trying it on my phone');
  const update = process.env.UPDATE_DOCS_SCREENSHOTS === '1';
  const shot = (name: string) => (update ? docs(name) : test.info().outputPath(name));
  await alice.page.screenshot({ path: shot('demo-chat.png') });

  // Phone width: one pane at a time; the list is a button away, nothing scrolls sideways.
  await expect(bob.page.getByRole('navigation', { name: 'Rooms and people' })).toBeHidden();
  await bob.page.getByRole('textbox', { name: 'Message #lobby' }).fill('');
  await expect(log(bob.page)).toContainText('Direct messages are durable');
  const fits = await bob.page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  expect(fits, 'no horizontal scrolling at 390 px').toBe(true);
  await bob.page.screenshot({ path: shot('demo-phone.png') });
  await bob.page.getByRole('button', { name: '← Rooms and people' }).click();
  await expect(bob.page.getByRole('navigation', { name: 'Rooms and people' })).toBeVisible();
  await bob.page.getByRole('list', { name: 'People' }).getByRole('button', { name: /alice/ }).click();
  await expect(bob.page.getByRole('heading', { level: 2, name: 'alice' })).toBeVisible();
  await expect(bob.page.getByRole('textbox', { name: 'Message alice' })).toBeFocused();

  // A conversation: two ticks, one queued message to someone offline elsewhere, a file.
  await openDm(alice.page, 'bob');
  await say(alice.page, 'Sending you the reading list');
  await say(bob.page, 'Thanks!');
  await alice.page.getByLabel('Send a file to bob').setInputFiles({ name: 'reading-list.pdf', mimeType: 'application/pdf', buffer: randomBytes(300 * 1024) });
  await expect(alice.page.getByRole('progressbar', { name: 'Sending reading-list.pdf to bob' })).toHaveAttribute('aria-valuenow', '100');
  await expect(log(alice.page)).toContainText('bob has it');
  await expect(log(alice.page).getByRole('listitem').filter({ hasText: 'Sending you the reading list' }).getByRole('img', { name: 'Delivered' })).toBeVisible();
  await alice.page.screenshot({ path: shot('demo-dm.png') });
});
