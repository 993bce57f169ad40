/**
 * `connect` with several relay URLs (issue 13): the first connect tries them in order until one
 * takes the peer; each reconnection moves on to the next URL, round-robin, so a peer whose relay
 * closed or died lands on another and carries on there: durable sends queued during the gap
 * arrive exactly once, in order, and `delivered` fires once per message.
 *
 * The relays are separate (no backplane): two peers talk once both are on the same relay.
 * Everything runs over real sockets on 127.0.0.1 on free ports.
 */
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, createRelay, type ConnectOptions, type Peer, type PeerEvents, type Relay, type RelayUrls } from '../src/index.js';

const relays = new Set<Relay>();
const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await Promise.all([...relays].map((r) => r.close()));
  relays.clear();
});

/** A relay on a free port (or on `port`), and the sockets it accepted, to cut them. */
async function relay(port = 0): Promise<Relay & { cut(): Promise<void> }> {
  const r = await createRelay({ port });
  relays.add(r);
  const sockets = new Set<Socket>();
  r.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return Object.assign(r, {
    /** A crash as its peers see it: it stops listening and every connection is cut at once (no close frame). */
    async cut() {
      const stopped = new Promise<void>((resolve) => r.server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await stopped;
    },
  });
}

/** Fast reconnection and ack timeout, so a test of a dead relay takes a fraction of a second. */
const FAST: ConnectOptions = { reconnect: { initialDelay: 20, maxDelay: 200 }, ackTimeout: 1000, connectTimeout: 2000 };

async function peer(urls: RelayUrls, name: string, options: ConnectOptions = {}): Promise<Peer> {
  const p = await connect(urls, { name, ...FAST, ...options });
  peers.push(p);
  return p;
}

/** A ws:// URL on which nothing listens (a port that was free a moment ago). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `ws://127.0.0.1:${port}/`;
}

/** The peer's next `type` event. */
function next<K extends keyof PeerEvents>(p: Peer, type: K): Promise<PeerEvents[K]> {
  return new Promise((resolve) => {
    const off = p.on(type, (e) => {
      off();
      resolve(e);
    });
  });
}

/** Resolves once `p` has had `count` `delivered` events (and records each id). */
function deliveries(p: Peer, count: number): { ids: string[]; all: Promise<void> } {
  const ids: string[] = [];
  const all = new Promise<void>((resolve) => {
    p.on('delivered', ({ id }) => {
      ids.push(id);
      if (ids.length === count) resolve();
    });
  });
  return { ids, all };
}

/** Takes `n` messages from the inbox of `p` (each within 10 s). */
async function take(p: Peer, n: number): Promise<unknown[]> {
  const bodies: unknown[] = [];
  while (bodies.length < n) bodies.push((await p.receive({ timeout: 10_000 })).body);
  return bodies;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('connect with several relay URLs', () => {
  it('takes one URL as before, and says which one is in use', async () => {
    const a = await relay();
    const alice = await peer(a.url, 'alice');
    expect(alice.inspect().session.url).toBe(a.url);
    const bob = await peer(new URL(a.url), 'bob');
    expect(bob.inspect().session.url).toBe(a.url);
    await alice.send('bob', 'hi');
    await expect(bob.receive({ timeout: 2000 })).resolves.toMatchObject({ from: 'alice', body: 'hi' });
  });

  it('skips a relay that cannot be reached and connects to the next one', async () => {
    const live = await relay();
    const dead = await deadUrl();
    const alice = await peer([dead, live.url], 'alice');
    expect(alice.inspect().session.url).toBe(live.url);
    const bob = await peer([new URL(dead), new URL(live.url)], 'bob');
    await alice.send('bob', 'over the live one');
    await expect(bob.receive({ timeout: 2000 })).resolves.toMatchObject({ from: 'alice', body: 'over the live one' });
  });

  it('rejects with CLOSED naming every URL when none can be reached', async () => {
    const dead1 = await deadUrl();
    const dead2 = await deadUrl();
    const err = (await connect([dead1, dead2], { name: 'x' }).catch((e: unknown) => e)) as Error & { code?: string };
    expect(err.code).toBe('CLOSED');
    expect(err.message).toContain(dead1);
    expect(err.message).toContain(dead2);
    expect(err.cause).toMatchObject({ code: 'CLOSED' });
  });

  it('stops at a refusal another relay would repeat (NAME_TAKEN), without trying the next', async () => {
    const a = await relay();
    const b = await relay();
    await peer(a.url, 'alice');
    const err = await connect([a.url, b.url], { name: 'alice' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NAME_TAKEN' });
    expect(b.router.connectionCount).toBe(0);
  });

  it('throws a TypeError for an empty list or a URL that is not ws:// or wss://', async () => {
    const a = await relay();
    await expect(connect([], { name: 'x' })).rejects.toThrow(new TypeError('connect needs at least one relay URL: the list is empty'));
    await expect(connect('not a url', { name: 'x' })).rejects.toThrow(/^not a URL: "not a url"$/);
    await expect(connect([a.url, 'http://127.0.0.1:1/'], { name: 'x' })).rejects.toThrow(/starts with ws:\/\/ or wss:\/\/, not http:\/\/ .*item 1 of the list/);
    await expect(connect([a.url, 42 as unknown as string], { name: 'x' })).rejects.toThrow(/must be a string or a URL, not number/);
    await expect(connect(undefined as unknown as string, { name: 'x' })).rejects.toThrow(/needs a relay URL .* not undefined/);
    for (const bad of [[], 'not a url', 'http://127.0.0.1:1/', [a.url, 42]]) {
      await expect(connect(bad as RelayUrls)).rejects.toBeInstanceOf(TypeError);
    }
    expect(a.router.connectionCount).toBe(0); // nothing was dialled
  });

  for (const how of ['closes', 'dies'] as const) {
    it(`moves its peers to the next relay when theirs ${how}; sends queued during the gap arrive exactly once, in order`, async () => {
      const a = await relay();
      const b = await relay();
      const alice = await peer([a.url, b.url], 'alice');
      const bob = await peer([a.url, b.url], 'bob');
      const carol = await peer(b.url, 'carol'); // on B from the start
      expect(alice.inspect().session.url).toBe(a.url);
      expect(bob.inspect().session.url).toBe(a.url);

      const delivered = deliveries(alice, 200);
      // A stream from alice to bob on A, cut part-way through: some sends are in flight (or
      // delivered but not yet acked) when A goes.
      const first = range(1, 100).map((n) => alice.send('bob', n));
      const received = await take(bob, 20);
      const aliceMoved = next(alice, 'reconnected');
      const bobMoved = next(bob, 'reconnected');
      // Sent while alice has no link: they wait in her outbox.
      const gap = next(alice, 'disconnected').then(() => {
        expect(alice.inspect().session.connected).toBe(false);
        return range(101, 200).map((n) => alice.send('bob', n));
      });
      if (how === 'closes') await a.close();
      else await a.cut();
      const second = await gap;
      await Promise.all([...first, ...second]);
      await Promise.all([aliceMoved, bobMoved]);
      expect(alice.inspect().session.url).toBe(b.url);
      expect(bob.inspect().session.url).toBe(b.url);

      received.push(...(await take(bob, 180)));
      expect(received).toEqual(range(1, 200));
      await delivered.all;
      expect(new Set(delivered.ids).size).toBe(200);
      // Every send acked: nothing is resent any more, and nothing came twice.
      expect(bob.mailbox().tryReceive()).toBeUndefined();
      expect(alice.inspect().outbox).toMatchObject({ size: 0 });

      // On B, alice works with a peer that was there all along, both ways.
      carol.handle('echo', (body) => body);
      await expect(alice.request('carol/echo', 'ping', { timeout: 2000 })).resolves.toBe('ping');
      await alice.send('carol', 'hello carol', { waitForDelivery: true });
      await expect(carol.receive({ timeout: 2000 })).resolves.toMatchObject({ from: 'alice', body: 'hello carol' });
      await carol.send('alice', 'hello alice');
      await expect(alice.receive({ timeout: 2000 })).resolves.toMatchObject({ from: 'carol', body: 'hello alice' });
    });
  }

  it('goes round the list: from A to B, then back to A when B goes', async () => {
    const a = await relay();
    const b = await relay();
    const alice = await peer([a.url, b.url], 'alice');
    let moved = next(alice, 'reconnected');
    await a.close();
    await moved;
    expect(alice.inspect().session.url).toBe(b.url);

    const again = await relay(a.port); // A back on its port
    moved = next(alice, 'reconnected');
    await b.cut();
    await moved;
    expect(alice.inspect().session.url).toBe(again.url);
    expect(again.router.connections().map((c) => c.name)).toEqual(['alice']);
  });
});
