/**
 * The devtools (apps/devtools, built by global-setup) served by a real relay at /devtools/, used
 * as a person would: peers and their mailboxes, a peeked message, the live trace, the recently
 * disconnected list, purge and disconnect behind confirmations; a wrong token refused; a
 * read-only token offered no actions. Node peers in the test process make the traffic.
 */
import { createRelay, connect, type Peer, type Relay } from '@missive/node';
import { expect, test, type Locator, type Page, type TestInfo } from '@playwright/test';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../apps/devtools/dist', import.meta.url));
const docsShot = fileURLToPath(new URL('../docs/devtools-peer.png', import.meta.url));
const ADMIN = 'admin-secret';
const READ = 'read-secret';

interface World {
  relay: Relay;
  peers: Peer[];
  /** The devtools URL served by the relay. */
  devtools: string;
}

async function start(): Promise<World> {
  const relay = await createRelay({ host: '127.0.0.1', port: 0, adminToken: ADMIN, adminReadToken: READ, serve: { '/devtools/': dist } });
  return { relay, peers: [], devtools: `${relay.url.replace(/^ws/, 'http').replace(/\/$/, '')}/devtools/` };
}

async function stop(w: World): Promise<void> {
  await Promise.allSettled(w.peers.map((p) => p.close()));
  await w.relay.close(2000);
}

/** Opens the devtools with the token in the query string; fails the test on an uncaught page error. */
async function open(page: Page, w: World, token: string): Promise<string[]> {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`${err.name}: ${err.message}`));
  await page.goto(`${w.devtools}?token=${encodeURIComponent(token)}`);
  return errors;
}

/** The cell of `row` under the column whose header starts with `column`. */
async function cell(table: Locator, row: Locator, column: string): Promise<Locator> {
  const headers = await table.getByRole('columnheader').allTextContents();
  const i = headers.findIndex((h) => h.trim().startsWith(column));
  expect(i, `a "${column}" column`).toBeGreaterThanOrEqual(0);
  return row.locator(':scope > th, :scope > td').nth(i);
}

test.use({ viewport: { width: 1280, height: 860 } });

async function shot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
}

test('devtools - peers, a peeked message, the live trace, the disconnected list and purge', async ({ page }, testInfo) => {
  const w = await start();
  try {
    const alice = await connect(w.relay.url, { name: 'alice', inspect: true });
    const bob = await connect(w.relay.url, { name: 'bob', inspect: true });
    const carol = await connect(w.relay.url, { name: 'carol' });
    w.peers.push(alice, bob, carol);
    // Some of everything the peer detail shows: a handler with calls, a subscription, a group.
    alice.handle('echo', (body: unknown) => body);
    for (let i = 0; i < 5; i++) await bob.request('alice/echo', { i });
    await alice.subscribe('news.*', () => {}).ready;
    await alice.join('readers');
    alice.mailbox();
    alice.mailbox('jobs');
    await carol.send('alice/jobs', { job: 'resize', width: 640, tags: ['thumb', 'png'] }, { waitForDelivery: true });
    // Two messages wait unread in alice's inbox.
    await bob.send('alice', { text: 'hello from bob' }, { waitForDelivery: true });
    await bob.send('alice', new Uint8Array([0xde, 0xad, 0xbe, 0xef]), { waitForDelivery: true });

    const errors = await open(page, w, ADMIN);
    // The token is taken out of the address bar.
    await expect(page).toHaveURL(w.devtools);
    await expect(page.getByText('read-write')).toBeVisible();

    const table = page.getByRole('table', { name: /connected peers/i });
    const aliceRow = table.getByRole('row').filter({ has: page.getByRole('button', { name: 'alice', exact: true }) });
    await expect(aliceRow).toBeVisible();
    await expect(table.getByRole('button', { name: 'bob', exact: true })).toBeVisible();
    await expect(table.getByRole('row').filter({ hasText: 'carol' })).toContainText('not inspectable');
    // MsgQ: every mailbox of hers (inbox 2, jobs 1).
    await expect(await cell(table, aliceRow, 'MsgQ')).toHaveText('3');

    // Sorting by MsgQ puts the deepest mailbox first.
    await table.getByRole('button', { name: 'MsgQ' }).click();
    await expect(table.getByRole('columnheader', { name: 'MsgQ' })).toHaveAttribute('aria-sort', 'descending');
    await expect(table.getByRole('row').nth(1)).toContainText('alice');
    await shot(page, testInfo, 'peers');

    // Alice's detail: her inbox and the messages in it.
    await aliceRow.getByRole('button', { name: 'alice', exact: true }).click();
    await expect(page.getByRole('heading', { level: 1, name: /alice/ })).toBeVisible();
    const inbox = page.getByRole('region', { name: 'Mailbox inbox' });
    await expect(inbox.getByRole('heading', { name: /inbox 2 waiting/ })).toBeVisible();
    const first = inbox.getByRole('button', { name: /from bob.*hello from bob/ });
    await first.click();
    await expect(first).toHaveAttribute('aria-expanded', 'true');
    await expect(inbox.getByRole('list', { name: /Body of message/ }).getByText('"hello from bob"')).toBeVisible();
    await inbox.getByRole('button', { name: /from bob.*Uint8Array\(4\)/ }).click();
    await expect(inbox.getByText('de ad be ef', { exact: true })).toBeVisible();
    const handlers = page.getByRole('region', { name: 'Request handlers' });
    await expect(handlers.getByRole('row').filter({ hasText: 'echo' })).toContainText('5');
    await expect(page.getByRole('list', { name: 'Subscriptions' })).toContainText('news.*');
    await expect(page.getByRole('list', { name: 'Groups' })).toContainText('readers');
    await shot(page, testInfo, 'peer-alice');
    await page.setViewportSize({ width: 1280, height: 1040 });
    // The README's picture is rewritten only on request (UPDATE_DOCS_SCREENSHOTS=1): a test run
    // leaves the tree clean.
    await page.screenshot({ path: process.env.UPDATE_DOCS_SCREENSHOTS === '1' ? docsShot : testInfo.outputPath('docs-devtools-peer.png'), fullPage: false });
    await page.setViewportSize({ width: 1280, height: 860 });

    // Carol did not opt in: the relay's view only, and why.
    await page.getByRole('button', { name: '← All peers' }).click();
    await table.getByRole('button', { name: 'carol', exact: true }).click();
    await expect(page.getByRole('note')).toContainText('did not opt in to inspection (connect with inspect: true)');
    await expect(page.getByRole('heading', { name: 'Connection (what the relay knows)' })).toBeVisible();

    // The live trace: a filter on carol's Msg frames, then a new message shows up.
    await page.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Live trace' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Live' })).toBeVisible();
    await page.getByLabel('Peer', { exact: true }).fill('carol');
    await page.getByRole('checkbox', { name: 'Msg' }).check();
    await page.getByRole('button', { name: 'Apply filter' }).click();
    await expect(page.getByRole('button', { name: 'Apply filter' })).toBeEnabled();
    const trace = page.getByRole('list', { name: 'Trace events' });
    // bob's message is traced by the relay before carol's, in the same stream: the filter keeps it out.
    await bob.send('alice', { text: 'not traced' }, { waitForDelivery: true });
    await carol.send('alice', { text: 'traced' }, { waitForDelivery: true });
    const row = trace.getByRole('listitem').filter({ hasText: /carol → alice/ }).first();
    await expect(row).toContainText('Msg');
    await expect(trace.getByRole('listitem').filter({ hasText: /bob → alice/ })).toHaveCount(0);
    await row.getByRole('button').click();
    await expect(row.getByRole('list', { name: /Trace event/ })).toContainText('"carol"');
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Paused' })).toBeVisible();
    await page.getByRole('button', { name: 'Resume' }).click();
    await shot(page, testInfo, 'trace');

    // Topics and groups, and the overview's counters and charts.
    const nav = page.getByRole('navigation', { name: 'Views' });
    await nav.getByRole('button', { name: 'Topics & groups' }).click();
    await expect(page.getByRole('region', { name: 'Subscriptions' }).getByRole('row').filter({ hasText: 'news.*' })).toContainText('alice');
    await expect(page.getByRole('region', { name: 'Groups' }).getByRole('row').filter({ hasText: 'readers' })).toContainText('alice');
    await nav.getByRole('button', { name: 'Overview' }).click();
    await expect(page.getByRole('img', { name: 'Messages per second chart' })).toBeVisible();
    await expect(page.getByText('Connections', { exact: true }).first()).toBeVisible();
    await shot(page, testInfo, 'overview');

    // A peer that leaves moves to the recently disconnected list, with its reason.
    await nav.getByRole('button', { name: /Peers/ }).click();
    await table.getByRole('button', { name: 'Disconnect carol' }).click();
    const dialog = page.getByRole('dialog', { name: 'Disconnect carol?' });
    await dialog.getByLabel('Reason (optional)').fill('maintenance window');
    await dialog.getByRole('button', { name: 'Disconnect' }).click();
    await expect(dialog).toBeHidden();
    const closed = page.getByRole('region', { name: 'Recently disconnected' }).getByRole('table');
    await expect(closed.getByRole('row').filter({ hasText: 'carol' }).first()).toContainText('maintenance window');

    // Purge alice's inbox: cancel first, then confirm.
    await table.getByRole('button', { name: 'alice', exact: true }).click();
    await inbox.getByRole('button', { name: 'Purge mailbox inbox' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await expect(page.getByRole('dialog')).toBeHidden();
    await expect(inbox.getByRole('heading', { name: /inbox 4 waiting/ })).toBeVisible();
    await inbox.getByRole('button', { name: 'Purge mailbox inbox' }).click();
    const purge = page.getByRole('dialog', { name: 'Purge alice/inbox?' });
    await purge.getByRole('button', { name: 'Purge' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Purged 4 messages from alice/inbox.' })).toBeVisible();
    await expect(inbox.getByRole('heading', { name: /inbox 0 waiting/ })).toBeVisible();
    expect(alice.mailbox().stats().depth).toBe(0);
    await shot(page, testInfo, 'purged');

    await expect(page.getByRole('alert')).toHaveCount(0);
    expect(errors, 'uncaught errors in the devtools').toEqual([]);
  } finally {
    await stop(w);
  }
});

test('devtools - a wrong admin token is refused with the relay\'s reason', async ({ page }, testInfo) => {
  const w = await start();
  try {
    const errors = await open(page, w, 'not-the-token');
    const alert = page.getByRole('alert');
    await expect(alert).toContainText('Could not connect');
    await expect(alert).toContainText('not the admin token');
    await expect(page).toHaveURL(w.devtools);
    // The form is there to try again, with what was tried.
    await expect(page.getByLabel('Relay URL')).toHaveValue(w.relay.url);
    await expect(page.getByLabel('Admin token')).toHaveValue('not-the-token');
    await shot(page, testInfo, 'refused');
    // A right token typed into the form connects.
    await page.getByLabel('Admin token').fill(ADMIN);
    await page.getByRole('button', { name: 'Connect' }).click();
    await expect(page.getByRole('heading', { level: 1, name: 'Peers' })).toBeVisible();
    expect(errors).toEqual([]);
  } finally {
    await stop(w);
  }
});

test('devtools - a read-only token offers no disconnect or purge, and no message bodies', async ({ page }, testInfo) => {
  const w = await start();
  try {
    const alice = await connect(w.relay.url, { name: 'alice', inspect: true });
    const bob = await connect(w.relay.url, { name: 'bob' });
    w.peers.push(alice, bob);
    alice.mailbox();
    await bob.send('alice', { text: 'secret' }, { waitForDelivery: true });

    const errors = await open(page, w, READ);
    await expect(page.getByText('read-only')).toBeVisible();
    const table = page.getByRole('table', { name: /connected peers/i });
    await expect(table.getByRole('button', { name: 'bob', exact: true })).toBeVisible();
    await expect(page.getByRole('button', { name: /^Disconnect/ })).toHaveCount(0);

    await table.getByRole('button', { name: 'alice', exact: true }).click();
    const inbox = page.getByRole('region', { name: 'Mailbox inbox' });
    await expect(inbox.getByRole('heading', { name: /inbox 1 waiting/ })).toBeVisible();
    await expect(inbox).toContainText('Messages not shown: this admin token may not see message bodies.');
    await expect(inbox.getByRole('button', { name: /from bob/ })).toHaveCount(0);
    await expect(page.getByText('secret')).toHaveCount(0);
    await expect(page.getByRole('button', { name: /Purge/ })).toHaveCount(0);
    await shot(page, testInfo, 'read-only');
    expect(errors).toEqual([]);
  } finally {
    await stop(w);
  }
});

test('devtools - a relay of a cluster shows every relay and its peers, through the Redis backplane', async ({ page }, testInfo) => {
  const { startRedis } = await import('../packages/node/test/fixtures/redis.js');
  const redis = await startRedis();
  const prefix = `devtools${Date.now()}`;
  const relays: Relay[] = [];
  const peers: Peer[] = [];
  try {
    const a = await createRelay({ host: '127.0.0.1', port: 0, adminToken: ADMIN, serve: { '/devtools/': dist }, backplane: { redis: redis.url, prefix } });
    relays.push(a);
    const b = await createRelay({ host: '127.0.0.1', port: 0, backplane: { redis: redis.url, prefix } });
    relays.push(b);
    peers.push(await connect(a.url, { name: 'here' }));
    for (const name of ['there1', 'there2']) peers.push(await connect(b.url, { name }));
    const otherRelay = b.router.inspect().cluster!.relay;
    const w: World = { relay: a, peers: [], devtools: `${a.url.replace(/^ws/, 'http').replace(/\/$/, '')}/devtools/` };
    const errors = await open(page, w, ADMIN);
    await page.getByRole('navigation', { name: 'Views' }).getByRole('button', { name: 'Overview' }).click();
    const cluster = page.getByRole('region', { name: 'Cluster' });
    await expect(cluster).toContainText('reachable');
    const row = cluster.getByRole('row', { name: new RegExp(otherRelay) });
    await expect(row).toContainText('2');
    await expect(cluster.getByRole('row', { name: /this relay/ })).toContainText('1');
    await shot(page, testInfo, 'cluster');
    // Redis goes away: the overview says so.
    await redis.kill();
    await expect(cluster).toContainText('unreachable');
    expect(errors).toEqual([]);
  } finally {
    await Promise.allSettled(peers.map((p) => p.close()));
    await Promise.allSettled(relays.map((r) => r.close(1000)));
    await redis.stop();
  }
});
