/**
 * `connect` in the browser: typed errors at connect, its options, reconnection with the
 * outbox as in Node (messages sent while the relay is away arrive once it is back), and a list
 * of relays (a dead one skipped, a closed one left for the next).
 */
import { connect as nodeConnect, createRelay } from '@missive/node';
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { expect, test, type PageError } from './fixtures.js';

test.describe('connect', () => {
  test('rejects with AUTH, NAME_TAKEN, LIMIT and CLOSED (with a cause), and a refused name can connect again once allowed', async ({ openApp }) => {
    const secured = await createRelay({ host: '127.0.0.1', port: 0, auth: { secrets: { alice: 's3cret', bob: 'b0b' } } });
    const small = await createRelay({ host: '127.0.0.1', port: 0, limits: { maxConnections: 1 } });
    const probe = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => probe.once('listening', resolve));
    const dead = `ws://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const bob = await nodeConnect(secured.url, { name: 'bob', secret: 'b0b' });
    try {
      const page = await openApp();
      const r = await page.evaluate(
        async ({ secured, small, dead }) => {
          const { connect } = window.missive;
          const fail = (p: Promise<{ close(): Promise<void> }>): Promise<PageError & { cause?: string }> =>
            p.then(
              async (peer) => {
                await peer.close();
                return { name: 'connected', code: undefined, message: '' };
              },
              (e: Error & { code?: string }) => ({ name: e.name, code: e.code, message: e.message, cause: (e.cause as Error | undefined)?.message }),
            );
          const auth = await fail(connect(secured, { name: 'alice', secret: 'wrong' }));
          const taken = await fail(connect(secured, { name: 'bob', secret: 'b0b' }));
          const first = await connect(small, { name: 'first' });
          const limit = await fail(connect(small, { name: 'second' }));
          await first.close();
          const unreachable = await fail(connect(dead, { name: 'carol' }));
          // The refused connects released alice's outbox (and its tab lock): she can connect now.
          const alice = await connect(secured, { name: 'alice', secret: 's3cret' });
          const name = alice.name;
          await alice.close();
          return { auth, taken, limit, unreachable, name };
        },
        { secured: secured.url, small: small.url, dead },
      );
      expect(r.auth.code).toBe('AUTH');
      expect(r.taken.code).toBe('NAME_TAKEN');
      expect(r.limit.code).toBe('LIMIT');
      expect(r.unreachable.code).toBe('CLOSED');
      expect(r.unreachable.message).toContain(dead);
      expect(r.unreachable.cause).toContain('1006');
      expect(r.name).toBe('alice');
    } finally {
      await bob.close();
      await Promise.all([secured.close(2000), small.close(2000)]);
    }
  });

  test('options - bad direct-link options are refused with TypeError, "indexeddb" needs a name, an anonymous peer gets a memory outbox', async ({ openApp, relay }) => {
    const page = await openApp();
    const r = await page.evaluate(async (url) => {
      const { connect } = window.missive;
      const name = (p: Promise<unknown>): Promise<string> => p.then(
        () => 'connected',
        (e: Error) => `${e.name}: ${e.message}`,
      );
      const direct = await name(connect(url, { name: 'd', direct: 'always' } as unknown as Parameters<typeof connect>[1]));
      const ice = await name(connect(url, { name: 'd', iceServers: 'stun:x' } as unknown as Parameters<typeof connect>[1]));
      const idbAnon = await name(connect(url, { store: 'indexeddb' }));
      const badStore = await name(connect(url, { name: 'd', store: 'disk' as 'memory' }));
      const anon = await connect(url);
      const anonId = anon.id;
      await anon.close();
      // With a memory outbox, the same name may be used in two pages at once (the relay decides).
      const mem = await connect(url, { name: 'm', store: 'memory' });
      await mem.close();
      return { direct, ice, idbAnon, badStore, anonId, dbs: (await indexedDB.databases()).map((d) => d.name) };
    }, relay.url);
    expect(r.direct).toMatch(/^TypeError: direct must be 'auto' or 'never'/);
    expect(r.ice).toMatch(/^TypeError: iceServers must be/);
    expect(r.idbAnon).toMatch(/^TypeError: .*needs a name/);
    expect(r.badStore).toMatch(/^TypeError: store must be/);
    expect(r.anonId).toMatch(/^~/);
    // Neither the anonymous nor the memory peer made an IndexedDB outbox.
    expect(r.dbs).toEqual([]);
  });

  test('reconnect - the page reconnects when the relay comes back, and what it sent meanwhile arrives once each, in order', async ({ openApp }) => {
    test.setTimeout(60_000);
    let relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const port = relay.port;
    const node = await nodeConnect(relay.url, { name: 'sink', reconnect: { initialDelay: 20, maxDelay: 200 } });
    try {
      const page = await openApp();
      await page.evaluate(async (url) => {
        const p = await window.missive.connect(url, { name: 'roamer', reconnect: { initialDelay: 20, maxDelay: 200 } });
        window.peers.roamer = p;
        const events: string[] = [];
        window.scratch = {
          events,
          down: new Promise<void>((resolve) => p.on('disconnected', () => resolve())),
          back: new Promise<void>((resolve) => p.on('reconnected', () => resolve())),
        };
        let delivered = 0;
        window.scratch.allDelivered = new Promise<void>((resolve) =>
          p.on('delivered', () => {
            if (++delivered === 11) resolve();
          }),
        );
        p.on('disconnected', ({ code }) => events.push(`disconnected ${code}`));
        p.on('reconnected', () => events.push('reconnected'));
        await p.send('sink', { n: 0 }, { waitForDelivery: true });
      }, relay.url);
      expect((await node.receive({ timeout: 5000 })).body).toEqual({ n: 0 });

      await relay.close(2000);
      await page.evaluate(async () => {
        await window.scratch!.down;
        // Queued in the outbox while there is no relay.
        for (let n = 1; n <= 10; n++) await window.peers.roamer!.send('sink', { n });
      });
      relay = await createRelay({ host: '127.0.0.1', port });
      await page.evaluate(() => window.scratch!.back);
      const got: unknown[] = [];
      for (let n = 1; n <= 10; n++) got.push((await node.receive({ timeout: 10_000 })).body);
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => ({ n: i + 1 })));
      // All acked, so nothing is resent: no duplicate can follow.
      await page.evaluate(() => window.scratch!.allDelivered);
      expect(node.mailbox().stats().depth).toBe(0);
      const events = await page.evaluate(() => window.scratch!.events);
      expect(events).toEqual(['disconnected 1001', 'reconnected']);
    } finally {
      await node.close();
      await relay.close(2000);
    }
  });

  test('several relays - a dead one is skipped at connect, a closed one left for the next, the URL in use shown; bad lists are TypeErrors', async ({ openApp }) => {
    const a = await createRelay({ host: '127.0.0.1', port: 0 });
    const b = await createRelay({ host: '127.0.0.1', port: 0 });
    const probe = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => probe.once('listening', resolve));
    const dead = `ws://127.0.0.1:${(probe.address() as AddressInfo).port}/`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const sink = await nodeConnect(b.url, { name: 'sink' });
    try {
      const page = await openApp();
      const first = await page.evaluate(
        async ({ dead, a, b }) => {
          const { connect } = window.missive;
          const errors: string[] = [];
          for (const bad of [[], ['http://127.0.0.1:1/'], [a, 'nope']]) {
            errors.push(await connect(bad, { store: 'memory' }).then(() => 'connected', (e: Error) => `${e.name}: ${e.message}`));
          }
          const p = await connect([dead, a, b], { name: 'roamer', store: 'memory', reconnect: { initialDelay: 20, maxDelay: 200 } });
          window.peers.roamer = p;
          window.scratch = { back: new Promise<void>((resolve) => p.on('reconnected', () => resolve())) };
          return { errors, url: p.inspect().session.url };
        },
        { dead, a: a.url, b: b.url },
      );
      expect(first.errors).toEqual([
        'TypeError: connect needs at least one relay URL: the list is empty',
        'TypeError: a relay URL starts with ws:// or wss://, not http:// ("http://127.0.0.1:1/")',
        'TypeError: not a URL: "nope" (item 1 of the list)',
      ]);
      expect(first.url).toBe(a.url);
      await a.close(2000);
      const url = await page.evaluate(async () => {
        await window.scratch!.back;
        await window.peers.roamer!.send('sink', 'on b', { waitForDelivery: true });
        return window.peers.roamer!.inspect().session.url;
      });
      expect(url).toBe(b.url);
      expect((await sink.receive({ timeout: 5000 })).body).toBe('on b');
    } finally {
      await sink.close();
      await Promise.all([a.close(2000), b.close(2000)]);
    }
  });
});
