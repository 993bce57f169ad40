import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AckStatus, Kind, type Frame } from '../src/internal.js';
import type { Peer, PeerEvents, RouterOptions } from '../src/index.js';
import { Dial, gate, Net, record, tapped } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(async () => {
  vi.useRealTimers();
  await net.close();
});

async function restart(options: RouterOptions): Promise<Net> {
  await net.close();
  net = new Net(options);
  return net;
}

/** Backoff short enough that reconnections happen within a few ms. */
const FAST = { initialDelay: 5, maxDelay: 20 };

/**
 * Counts the relay's HELD answers to a peer (a tap for its inbound side): a test can wait until
 * the relay holds what was sent without polling, which would move fake clocks.
 */
function heldAcks(): { in: (f: Frame) => Frame[]; count(): number; reached(n: number): Promise<void> } {
  let n = 0;
  const waiting: { n: number; resolve(): void }[] = [];
  return {
    in: (f) => {
      if (f.kind === Kind.Ack && f.status === AckStatus.Held) {
        n++;
        for (const w of waiting) if (n >= w.n) w.resolve();
      }
      return [f];
    },
    count: () => n,
    reached: (target) => (n >= target ? Promise.resolve() : new Promise((resolve) => waiting.push({ n: target, resolve }))),
  };
}

/** Resolves once the peer has reported `n` expired ids in all (counting from this call). */
function expiredIds(peer: Peer, n: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const off = peer.on('expired', (e: PeerEvents['expired']) => {
      seen += e.ids.length;
      if (seen < n) return;
      off();
      resolve();
    });
  });
}

const bodies = (peer: Peer): unknown[] => peer.mailbox().peek(10_000).map((m) => m.body);

describe('hold - messages for an offline name', () => {
  it('holds sends to a named peer that is not connected, without reporting them undeliverable', async () => {
    const alice = await net.peer({ name: 'alice' });
    const undeliverable = record(alice, 'undeliverable');
    const delivered = record(alice, 'delivered');
    for (let i = 0; i < 5; i++) await alice.send('bob', i);
    await expect.poll(() => net.router.metrics().held.messages).toBe(5);
    expect(net.router.metrics().held.bytes).toBeGreaterThan(0);
    expect(undeliverable).toEqual([]);
    expect(delivered).toEqual([]);
    expect(alice.outboxSize).toBe(5);
  });

  it('delivers what it held when the peer first connects, in order, before newer messages, once each', async () => {
    const alice = await net.peer({ name: 'alice' });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => net.router.metrics().held.messages).toBe(5);
    const bob = await net.peer({ name: 'bob' });
    const newer = await alice.send('bob', 'newer', { waitForDelivery: true });
    expect(bob.mailbox().peek(10).map((m) => [m.id, m.from, m.body])).toEqual([...ids.map((id, i) => [id, 'alice', i]), [newer, 'alice', 'newer']]);
    expect(delivered.map((d) => d.id)).toEqual([...ids, newer]);
    expect(bob.mailbox().stats().received).toBe(6);
    expect(net.router.metrics().held).toEqual({ messages: 0, bytes: 0 });
    expect(alice.outboxSize).toBe(0);
  });

  it('holds sends while a named peer is reconnecting and delivers them when it is back, in order, once each', async () => {
    const alice = await net.peer({ name: 'alice' });
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    const before = await alice.send('bob', 'before', { waitForDelivery: true });
    const door = gate();
    dial.gate = door.promise;
    dial.cut();
    await expect.poll(() => net.router.connections().map((c) => c.name)).toEqual(['alice']);
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => net.router.metrics().held.messages).toBe(5);
    door.open();
    await expect.poll(() => delivered.length).toBe(5);
    const newer = await alice.send('bob', 'newer', { waitForDelivery: true });
    expect(bob.mailbox().peek(10).map((m) => m.id)).toEqual([before, ...ids, newer]);
    expect(bodies(bob)).toEqual(['before', 0, 1, 2, 3, 4, 'newer']);
    expect(delivered.map((d) => d.id)).toEqual([...ids, newer]);
    expect(bob.mailbox().stats().received).toBe(7);
    expect(net.router.metrics().held.messages).toBe(0);
  });

  it('keeps one copy when the sender reconnects and resends what the relay already holds', async () => {
    const held = heldAcks();
    const dial = new Dial(net.router, (client) => tapped(client, { in: held.in }));
    const { peer: alice } = await net.reconnecting({ name: 'alice', reconnect: FAST }, dial);
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await alice.send('bob', i));
    await held.reached(3);
    dial.cut();
    // After reconnecting, alice sends the three again; the relay answers HELD and keeps one copy.
    await held.reached(6);
    expect(net.router.metrics().held.messages).toBe(3);
    const bob = await net.peer({ name: 'bob' });
    await expect.poll(() => delivered.length).toBe(3);
    const newer = await alice.send('bob', 'newer', { waitForDelivery: true });
    expect(bodies(bob)).toEqual([0, 1, 2, 'newer']);
    expect(bob.mailbox().stats().received).toBe(4);
    expect(delivered.map((d) => d.id)).toEqual([...ids, newer]);
  });

  it('settles held messages delivered while their sender was away once it is back, without a second copy', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => net.router.metrics().held.messages).toBe(3);
    const door = gate();
    dial.gate = door.promise;
    dial.cut();
    await expect.poll(() => net.router.connections()).toEqual([]);
    // bob gets them while alice is away: its acks find nobody to go to.
    const bob = await net.peer({ name: 'bob' });
    await expect.poll(() => bodies(bob)).toEqual([0, 1, 2]);
    door.open();
    // alice resends on reconnection; bob acks without delivering again.
    await expect.poll(() => delivered.length).toBe(3);
    expect(delivered.map((d) => d.id)).toEqual(ids);
    expect(bob.mailbox().stats().received).toBe(3);
    expect(alice.outboxSize).toBe(0);
  });

  it('sends held messages again after ackTimeout when they are lost on the way to the peer that came for them', async () => {
    const alice = await net.peer({ name: 'alice', ackTimeout: 200 });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => net.router.metrics().held.messages).toBe(3);
    // bob's first link loses every MSG the relay sends it (the held ones), then drops.
    const dial = new Dial(net.router, (client, n) => (n === 1 ? tapped(client, { in: (f) => (f.kind === Kind.Msg ? [] : [f]) }) : client));
    const { peer: bob } = await net.reconnecting({ name: 'bob', reconnect: FAST }, dial);
    expect(net.router.metrics().held.messages).toBe(0);
    dial.cut();
    await expect.poll(() => delivered.length, { timeout: 5000 }).toBe(3);
    expect(delivered.map((d) => d.id)).toEqual(ids);
    expect(bodies(bob)).toEqual([0, 1, 2]);
  });

  it('settles a held message whose ack was lost when the receiver dropped, without a second copy', async () => {
    const alice = await net.peer({ name: 'alice', ackTimeout: 200 });
    const delivered = record(alice, 'delivered');
    const id = await alice.send('bob', 'held');
    await expect.poll(() => net.router.metrics().held.messages).toBe(1);
    // bob takes the held message on its first link, but its ack never leaves; then that link drops.
    const dial = new Dial(net.router, (client, n) => (n === 1 ? tapped(client, { out: (f) => (f.kind === Kind.Ack ? [] : [f]) }) : client));
    const { peer: bob } = await net.reconnecting({ name: 'bob', reconnect: FAST }, dial);
    await expect.poll(() => bodies(bob)).toEqual(['held']);
    dial.cut();
    await expect.poll(() => delivered, { timeout: 5000 }).toEqual([{ id, to: 'bob' }]);
    expect(bob.mailbox().stats().received).toBe(1);
    expect(alice.outboxSize).toBe(0);
  });

  it('probes the relay with only the oldest held message on ack timeout while the receiver stays away', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const held = heldAcks();
    const alice = await net.peer({ name: 'alice', ackTimeout: 1000 }, { in: held.in });
    const trace = record(alice, 'trace');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send('bob', i));
    await held.reached(5);
    const sent = (): string[] => trace.filter((e) => e.type === 'send' && e.kind === 'Msg').map((e) => e.id!);
    expect(sent()).toEqual(ids);
    // Three ack timeouts: each sends the oldest alone, which the relay still holds.
    for (let n = 1; n <= 3; n++) {
      const answered = held.reached(5 + n);
      await vi.advanceTimersByTimeAsync(1100);
      await answered;
    }
    expect(sent()).toEqual([...ids, ids[0], ids[0], ids[0]]);
    expect(net.router.metrics().held.messages).toBe(5);
    const bob = await net.peer({ name: 'bob' });
    const newer = await alice.send('bob', 'newer', { waitForDelivery: true });
    expect(bodies(bob)).toEqual([0, 1, 2, 3, 4, 'newer']);
    expect(bob.mailbox().peek(10).map((m) => m.id)).toEqual([...ids, newer]);
  });
});

describe('hold - expiry', () => {
  it('tells the sender exactly which held messages expired, and never delivers them', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    await restart({ limits: { holdTtl: 1000 } });
    const held = heldAcks();
    const alice = await net.peer({ name: 'alice' }, { in: held.in });
    const expired = record(alice, 'expired');
    const undeliverable = record(alice, 'undeliverable');
    const first = [await alice.send('bob', 1), await alice.send('bob', 2), await alice.send('bob', 3)];
    await held.reached(3);
    await vi.advanceTimersByTimeAsync(500);
    const second = [await alice.send('bob', 4), await alice.send('bob', 5)];
    await held.reached(5);
    expect(net.router.metrics().held.messages).toBe(5);

    // 1250 ms after the first three, 750 after the other two: only the first three expire.
    const three = expiredIds(alice, 3);
    await vi.advanceTimersByTimeAsync(750);
    await three;
    expect(expired.flatMap((e) => e.ids)).toEqual(first);
    expect(net.router.metrics().held.messages).toBe(2);
    expect(net.router.metrics().drops.EXPIRED).toBe(3);
    expect(alice.outboxSize).toBe(2);

    const two = expiredIds(alice, 2);
    await vi.advanceTimersByTimeAsync(500);
    await two;
    expect(expired.flatMap((e) => e.ids)).toEqual([...first, ...second]);
    expect(net.router.metrics().held).toEqual({ messages: 0, bytes: 0 });
    expect(net.router.metrics().drops.EXPIRED).toBe(5);
    expect(alice.outboxSize).toBe(0);
    expect(undeliverable).toEqual([]);

    // bob connecting now gets none of them: only what is sent from here on.
    const bob = await net.peer({ name: 'bob' });
    const fresh = await alice.send('bob', 'fresh', { waitForDelivery: true });
    expect(bob.mailbox().peek(10).map((m) => [m.id, m.body])).toEqual([[fresh, 'fresh']]);
    expect(expired.flatMap((e) => e.ids)).toHaveLength(5);
  });

  it('rejects a send waiting for delivery with NO_ROUTE when its hold expires', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    await restart({ limits: { holdTtl: 1000 } });
    const held = heldAcks();
    const alice = await net.peer({ name: 'alice' }, { in: held.in });
    const waiting = alice.send('bob', 'in vain', { waitForDelivery: true }).catch((e: unknown) => e);
    await held.reached(1);
    const gone = expiredIds(alice, 1);
    await vi.advanceTimersByTimeAsync(1500);
    await gone;
    await expect(waiting).resolves.toMatchObject({ code: 'NO_ROUTE' });
  });
});

describe('hold - bounds', () => {
  it('refuses sends over holdMaxMessages for a name at once as expired', async () => {
    await restart({ limits: { holdMaxMessages: 3 } });
    const alice = await net.peer({ name: 'alice' });
    const expired = record(alice, 'expired');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => expired.flatMap((e) => e.ids)).toEqual(ids.slice(3));
    expect(net.router.metrics().held.messages).toBe(3);
    expect(net.router.metrics().drops.EXPIRED).toBe(2);
    // The bound is per name: another offline name still has room.
    await alice.send('carol', 'for carol');
    await expect.poll(() => net.router.metrics().held.messages).toBe(4);

    const bob = await net.peer({ name: 'bob' });
    await expect.poll(() => alice.outboxSize).toBe(1); // carol's
    const newer = await alice.send('bob', 'newer', { waitForDelivery: true });
    expect(bob.mailbox().peek(10).map((m) => m.id)).toEqual([...ids.slice(0, 3), newer]);
    expect(bodies(bob)).toEqual([0, 1, 2, 'newer']);
    expect(expired.flatMap((e) => e.ids)).toEqual(ids.slice(3));
  });

  it('refuses sends over holdMaxBytes for a name at once as expired', async () => {
    // Each 400-byte body costs about 850 held bytes (its encoded frame and HELD_OVERHEAD).
    await restart({ limits: { holdMaxBytes: 2000 } });
    const alice = await net.peer({ name: 'alice' });
    const expired = record(alice, 'expired');
    const body = new Uint8Array(400);
    const ids = [await alice.send('bob', body), await alice.send('bob', body), await alice.send('bob', body)];
    await expect.poll(() => expired.flatMap((e) => e.ids)).toEqual([ids[2]]);
    expect(net.router.metrics().held.messages).toBe(2);
    expect(net.router.metrics().held.bytes).toBeLessThanOrEqual(2000);
    expect(net.router.metrics().drops.EXPIRED).toBe(1);
    // Another name has a budget of its own.
    await alice.send('carol', body);
    await expect.poll(() => net.router.metrics().held.messages).toBe(3);
    expect(expired.flatMap((e) => e.ids)).toEqual([ids[2]]);
  });

  it('refuses sends over holdMaxTotalBytes across all offline names at once as expired', async () => {
    await restart({ limits: { holdMaxTotalBytes: 2000 } });
    const alice = await net.peer({ name: 'alice' });
    const expired = record(alice, 'expired');
    const body = new Uint8Array(400);
    await alice.send('bob', body);
    await alice.send('carol', body);
    await expect.poll(() => net.router.metrics().held.messages).toBe(2);
    const refused = await alice.send('dave', body);
    await expect.poll(() => expired.flatMap((e) => e.ids)).toEqual([refused]);
    expect(net.router.metrics().held.messages).toBe(2);
    expect(net.router.metrics().held.bytes).toBeLessThanOrEqual(2000);
    expect(net.router.metrics().drops.EXPIRED).toBe(1);
    // Room comes back once a name connects and takes its messages.
    const bob = await net.peer({ name: 'bob' });
    await expect.poll(() => bob.mailbox().size).toBe(1);
    await alice.send('dave', 'small');
    await expect.poll(() => net.router.metrics().held.messages).toBe(2);
    expect(expired).toHaveLength(1);
  });
});

describe('hold - what is not held', () => {
  it('with holdTtl: 0, reports a send to an offline name undeliverable with NO_ROUTE', async () => {
    await restart({ limits: { holdTtl: 0 } });
    const alice = await net.peer({ name: 'alice' });
    const undeliverable = record(alice, 'undeliverable');
    const expired = record(alice, 'expired');
    const id = await alice.send('bob', 'hello?');
    await expect.poll(() => undeliverable.map((u) => [u.id, u.to, u.error.code])).toEqual([[id, 'bob', 'NO_ROUTE']]);
    expect(net.router.metrics().held).toEqual({ messages: 0, bytes: 0 });
    expect(alice.outboxSize).toBe(0);
    expect(expired).toEqual([]);
    // bob connecting later gets nothing.
    const bob = await net.peer({ name: 'bob' });
    const next = await alice.send('bob', 'now', { waitForDelivery: true });
    expect(bob.mailbox().peek(10).map((m) => m.id)).toEqual([next]);
  });

  it('answers a request to an offline name with NO_ROUTE at once', async () => {
    const alice = await net.peer({ name: 'alice' });
    await expect(alice.request('bob/work', 1, { timeout: 5000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
    expect(net.router.metrics().held.messages).toBe(0);
  });

  it('reports a send to an unknown id undeliverable with NO_ROUTE at once: ids are not held', async () => {
    const alice = await net.peer({ name: 'alice' });
    const undeliverable = record(alice, 'undeliverable');
    const id = await alice.send('~nobody', 'hello?');
    await expect.poll(() => undeliverable.map((u) => [u.id, u.error.code])).toEqual([[id, 'NO_ROUTE']]);
    expect(net.router.metrics().held.messages).toBe(0);
    expect(alice.outboxSize).toBe(0);
  });
});
