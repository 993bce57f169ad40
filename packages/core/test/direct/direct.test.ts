/**
 * Direct links between two peers over the memory transport: real signalling through a Router,
 * an in-memory channel (see connector.ts). Traffic moves to the direct path and back to the
 * relay without loss, duplicates or reordering.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decode, encode } from '@msgpack/msgpack';
import { BodyCodec, encodeFrame, frame, Kind, PROTOCOL_VERSION, type Frame } from '../../src/internal.js';
import { type LinkEvent, type Peer, type PeerOptions, type Tunnel } from '../../src/index.js';
import { Rng } from '../../src/testing.js';
import { Net, nextEvent, RawClient } from '../helpers.js';
import { Board } from './connector.js';

const fast = { stallTimeout: 300, retryMin: 50, retryMax: 400, attemptTimeout: 1000 };

function peerOptions(board: Board, name: string, extra: PeerOptions = {}): PeerOptions {
  return { name, direct: 'auto', directConnector: board.connector(name), directOptions: fast, ...extra };
}

/** Resolves once `peer` reports traffic to `name` on `link`. */
function linked(peer: Peer, name: string, link: LinkEvent['link']): Promise<LinkEvent> {
  if (peer.linkTo(name) === link) return Promise.resolve({ name, link });
  return new Promise((resolve) => {
    const off = peer.on('link', (e) => {
      if (e.name === name && e.link === link) {
        off();
        resolve(e);
      }
    });
  });
}

/** Frames of a kind the relay received, from its own counters. */
function relayFrames(net: Net, kind: string): number {
  return net.router.metrics().framesIn[kind] ?? 0;
}

describe('direct links', () => {
  let net: Net;
  afterEach(() => net.close());

  async function pair(board = new Board(), a: PeerOptions = {}, b: PeerOptions = {}) {
    net = new Net();
    const alice = await net.peer(peerOptions(board, 'alice', a));
    const bob = await net.peer(peerOptions(board, 'bob', b));
    return { board, alice, bob };
  }

  async function upgrade(alice: Peer, bob: Peer): Promise<void> {
    bob.handle('ping', () => 'pong');
    await alice.request('bob/ping', null);
    await Promise.all([linked(alice, 'bob', 'direct'), linked(bob, 'alice', 'direct')]);
  }

  it('moves traffic between two peers to the direct link, the relay carrying none of it', async () => {
    const { alice, bob } = await pair();
    expect(alice.linkTo('bob')).toBe('relay');
    await upgrade(alice, bob);
    expect(alice.linkTo('bob')).toBe('direct');
    expect(bob.linkTo('alice')).toBe('direct');

    const before = { msg: relayFrames(net, 'Msg'), req: relayFrames(net, 'Req'), rep: relayFrames(net, 'Rep'), tdata: relayFrames(net, 'TData'), ack: relayFrames(net, 'Ack') };
    for (let i = 0; i < 50; i++) await alice.send('bob', i);
    const got: unknown[] = [];
    for (let i = 0; i < 50; i++) got.push((await bob.receive()).body);
    expect(got).toEqual([...Array(50).keys()]);
    expect(await alice.request('bob/ping', null)).toBe('pong');
    bob.onTunnel('echo', async (t) => {
      await t.readable.pipeTo(t.writable);
    });
    const t = await alice.tunnel('bob/echo', 'echo');
    const w = t.writable.getWriter();
    const r = t.readable.getReader();
    const chunk = new Uint8Array(200_000).map((_, i) => i & 0xff);
    await w.write(chunk);
    await w.close();
    let echoed = 0;
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      echoed += value.length;
    }
    expect(echoed).toBe(chunk.length);
    await expect.poll(() => alice.outboxSize).toBe(0);
    expect({ msg: relayFrames(net, 'Msg'), req: relayFrames(net, 'Req'), rep: relayFrames(net, 'Rep'), tdata: relayFrames(net, 'TData'), ack: relayFrames(net, 'Ack') }).toEqual(before);
    expect(alice.inspect().direct.remotes).toEqual([expect.objectContaining({ name: 'bob', link: 'direct' })]);
  });

  it('falls back to the relay when the channel closes mid-stream: nothing lost, duplicated or reordered', async () => {
    const { board, alice, bob } = await pair();
    await upgrade(alice, bob);
    const N = 3000;
    const received: number[] = [];
    const reading = (async () => {
      while (received.length < N) received.push((await bob.receive<number>()).body);
    })();
    const fellBack = linked(alice, 'bob', 'relay');
    for (let i = 0; i < N; i++) {
      if (i === 1000) board.end('alice', 'bob').close({ code: 1006, reason: 'channel died' });
      await alice.send('bob', i);
    }
    expect((await fellBack).reason).toContain('channel died');
    await reading;
    expect(received).toEqual([...Array(N).keys()]);
    await expect.poll(() => alice.outboxSize).toBe(0);
  });

  it('ends a tunnel opened on the direct link when the channel dies (tunnels keep their path), while messages carry on', async () => {
    const { board, alice, bob } = await pair();
    await upgrade(alice, bob);
    let accepted: Tunnel | undefined;
    bob.onTunnel('sink', (t) => {
      accepted = t;
    });
    const t = await alice.tunnel('bob/sink', 'sink');
    const w = t.writable.getWriter();
    await w.write(new Uint8Array(1000));
    const tdata = relayFrames(net, 'TData');
    board.end('alice', 'bob').close({ code: 1006, reason: 'channel died' });
    await linked(alice, 'bob', 'relay');
    await expect(w.write(new Uint8Array(10))).rejects.toThrow(/direct link to bob failed/);
    await expect.poll(() => accepted?.state).toBe('closed');
    expect(relayFrames(net, 'TData')).toBe(tdata);
    await alice.send('bob', 'still here');
    expect((await bob.receive()).body).toBe('still here');
  });

  it('keeps a tunnel opened over the relay on the relay, intact through an upgrade and a fallback', async () => {
    const { board, alice, bob } = await pair();
    const size = 3 * 1024 * 1024;
    const data = new Uint8Array(size).map((_, i) => (i * 7 + (i >> 13)) & 0xff);
    const received = new Promise<Uint8Array>((resolve, reject) => {
      bob.onTunnel('sink', async (t) => {
        const parts: Uint8Array[] = [];
        try {
          for await (const chunk of t.readable) parts.push(chunk);
          resolve(Buffer.concat(parts));
        } catch (err) {
          reject(err);
        }
      });
    });
    const t = await alice.tunnel('bob/sink', 'sink');
    const w = t.writable.getWriter();
    bob.handle('ping', () => 'pong');
    for (let at = 0; at < size; at += 64 * 1024) {
      if (at === 1024 * 1024) {
        await alice.request('bob/ping', null);
        await linked(alice, 'bob', 'direct');
      }
      if (at === 2 * 1024 * 1024) board.end('alice', 'bob').close({ code: 1006, reason: 'channel died' });
      await w.write(data.subarray(at, at + 64 * 1024));
    }
    await w.close();
    expect(Buffer.from(await received).equals(Buffer.from(data))).toBe(true);
  });

  it('falls back when the channel stalls, and resends what the stalled channel swallowed', async () => {
    const { board, alice, bob } = await pair();
    await upgrade(alice, bob);
    bob.handle('echo', (x) => x);
    board.end('alice', 'bob').swallow = true;
    const fellBack = linked(alice, 'bob', 'relay');
    const replies = Promise.all([1, 2, 3].map((n) => alice.request('bob/echo', n, { timeout: 5000 })));
    for (let i = 0; i < 20; i++) await alice.send('bob', i);
    expect((await fellBack).reason).toMatch(/stalled/);
    expect(await replies).toEqual([1, 2, 3]);
    const got: number[] = [];
    for (let i = 0; i < 20; i++) got.push((await bob.receive<number>()).body);
    expect(got).toEqual([...Array(20).keys()]);
    expect(bob.mailbox().size).toBe(0);
  });

  it('takes what came over the channel before its own side of it opened, in order', async () => {
    const board = new Board();
    board.slowOpen = true;
    const { alice, bob } = await pair(board);
    alice.handle('echo', (x) => x);
    // Bob answers the offer, so his side opens first: he writes at once, before alice's side is open.
    const asked: Promise<unknown>[] = [];
    bob.on('link', (e) => {
      if (e.link !== 'direct') return;
      for (let i = 0; i < 5; i++) asked.push(bob.request('alice/echo', i, { timeout: 2000 }));
      for (let i = 0; i < 5; i++) void bob.send('alice', i);
    });
    await upgrade(alice, bob);
    expect(asked).toHaveLength(5);
    // More traffic after it: alice's acks for it must not cover frames she never took.
    for (let i = 5; i < 45; i++) await bob.send('alice', i);
    expect(await Promise.all(asked)).toEqual([0, 1, 2, 3, 4]);
    const got: number[] = [];
    for (let i = 0; i < 45; i++) got.push((await alice.receive<number>({ timeout: 2000 })).body);
    expect(got).toEqual([...Array(45).keys()]);
    expect(bob.linkTo('alice')).toBe('direct');
  });

  it('handles in order what the link brought before the switch came over the relay, even past the pause bound', async () => {
    net = new Net();
    const board = new Board();
    // Bob's relay link keeps alice's `switch` back until the test lets it go: meanwhile what
    // alice writes on the link waits at bob (the first 256 held, the rest in the paused channel).
    let holding = true;
    const kept: Frame[] = [];
    const isSwitch = (f: Frame): boolean => f.kind === Kind.Signal && (decode(f.body) as { t?: string }).t === 'switch';
    const alice = await net.peer(peerOptions(board, 'alice'));
    const bob = await net.peer(peerOptions(board, 'bob'), {
      in: (f) => {
        if (holding && isSwitch(f)) {
          kept.push(f);
          return [];
        }
        if (!holding && kept.length > 0) return [...kept.splice(0), f];
        return [f];
      },
    });
    const carol = await net.peer({ name: 'carol' });
    bob.handle('echo', (x) => x);
    await alice.request('bob/echo', 0);
    await linked(alice, 'bob', 'direct');
    const echoed = alice.request('bob/echo', 1, { timeout: 3000 });
    for (let i = 0; i < 400; i++) await alice.send('bob', i);
    const echoed2 = alice.request('bob/echo', 2, { timeout: 3000 });
    await expect.poll(() => board.end('bob', 'alice').queued).toBeGreaterThan(0);
    expect(kept).toHaveLength(1);
    holding = false;
    await carol.send('bob', 'nudge');
    expect(await Promise.all([echoed, echoed2])).toEqual([1, 2]);
    const got: unknown[] = [];
    for (let i = 0; i < 401; i++) got.push((await bob.receive({ timeout: 3000 })).body);
    expect(got.filter((x) => x !== 'nudge')).toEqual([...Array(400).keys()]);
    expect(bob.linkTo('alice')).toBe('direct');
  });

  it('gets the reply to a request that went direct when the reply was lost with the link (the relay never saw that request)', async () => {
    const { board, alice, bob } = await pair();
    await upgrade(alice, bob);
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    bob.handle('slow', async (x) => {
      await gate;
      return x;
    });
    const asked = alice.request('bob/slow', 7, { timeout: 5000 });
    // The request reached bob and he acked it on the link: alice keeps nothing of it to resend.
    await expect.poll(() => {
      const r = alice.inspect().direct.remotes[0]!;
      return r.sent > 0 && r.acked === r.sent;
    }).toBe(true);
    // Now bob's side swallows: his reply goes into the link and is lost there.
    board.end('bob', 'alice').swallow = true;
    const fellBack = linked(bob, 'alice', 'relay');
    release();
    expect((await fellBack).reason).toMatch(/stalled/);
    expect(await asked).toBe(7);
    expect(net.router.metrics().drops.NOT_REQUESTED ?? 0).toBe(0);
  });

  it('answers a request over the path it came on: a reply to a relayed request is not sent on a direct link', async () => {
    const { alice, bob } = await pair();
    bob.handle('echo', (x) => x);
    // Alice asks by bob's id (never a direct path); the upgrade happens meanwhile by name.
    await upgrade(alice, bob);
    const repsBefore = net.router.metrics().framesIn.Rep ?? 0;
    expect(await alice.request(`${bob.id}/echo`, 'by id')).toBe('by id');
    expect((net.router.metrics().framesIn.Rep ?? 0) - repsBefore).toBe(1);
    expect(net.router.metrics().drops.NOT_REQUESTED ?? 0).toBe(0);
  });

  it('refuses a reply on a direct link from a peer the request did not go to', async () => {
    net = new Net();
    const board = new Board();
    const alice = await net.peer(peerOptions(board, 'alice'));
    const bob = await net.peer(peerOptions(board, 'bob'));
    const carol = await net.peer({ name: 'carol' });
    await upgrade(alice, bob);
    // Carol takes her time; meanwhile bob forges her reply on the direct link (he has seen
    // alice's request ids, which count up).
    let answer: (() => void) | undefined;
    carol.handle('slow', () => new Promise<string>((res) => (answer = () => res('from carol'))));
    const ids: number[] = [];
    alice.on('trace', (e) => {
      if (e.type === 'send' && e.kind === 'Req') ids.push(Number(e.id));
    });
    const asked = alice.request('carol/slow', null, { timeout: 5000 });
    await expect.poll(() => answer !== undefined).toBe(true);
    board.end('bob', 'alice').inner.send(encodeFrame(frame(Kind.Rep, { to: 'alice', from: '', id: ids[0]!, code: '', message: '' }, encode('forged'), BodyCodec.Msgpack)));
    expect(await alice.request('bob/ping', null)).toBe('pong');
    answer!();
    expect(await asked).toBe('from carol');
  });

  it('falls back once a link holds more than maxUnackedBytes unacked, keeping what it holds bounded', async () => {
    const { board, alice, bob } = await pair(new Board(), { directOptions: { ...fast, stallTimeout: 60_000, maxUnackedBytes: 64 * 1024 } });
    await upgrade(alice, bob);
    board.end('alice', 'bob').swallow = true;
    const fellBack = linked(alice, 'bob', 'relay');
    let peak = 0;
    for (let i = 0; i < 40; i++) {
      await alice.send('bob', new Uint8Array(4096).fill(i));
      peak = Math.max(peak, alice.inspect().direct.remotes[0]?.unackedBytes ?? 0);
    }
    expect((await fellBack).reason).toMatch(/more than 65536 bytes unacknowledged/);
    expect(peak).toBeLessThanOrEqual(64 * 1024 + 4096 + 64);
    for (let i = 0; i < 40; i++) expect((await bob.receive<Uint8Array>()).body[0]).toBe(i);
  });

  it('upgrades again after a fallback, with backoff', async () => {
    const { board, alice, bob } = await pair();
    await upgrade(alice, bob);
    board.end('alice', 'bob').close({ code: 1006, reason: 'gone' });
    await linked(alice, 'bob', 'relay');
    await alice.send('bob', 'keep going');
    await expect.poll(async () => {
      await alice.send('bob', 'traffic');
      return alice.linkTo('bob');
    }, { timeout: 3000 }).toBe('direct');
    expect(board.attempts).toBeGreaterThanOrEqual(4);
  });

  it('stays on the relay when the channel cannot open, and retries later', async () => {
    const board = new Board();
    board.failing = true;
    const { alice, bob } = await pair(board);
    bob.handle('ping', () => 'pong');
    for (let i = 0; i < 5; i++) expect(await alice.request('bob/ping', null)).toBe('pong');
    expect(alice.linkTo('bob')).toBe('relay');
    await expect.poll(() => alice.inspect().direct.remotes[0]?.failures ?? 0).toBeGreaterThanOrEqual(1);
    expect(alice.inspect().direct.remotes[0]!.lastError).toMatch(/ICE failed/);
    // Backoff: a burst of traffic does not start an attempt per frame.
    const attempts = board.attempts;
    for (let i = 0; i < 20; i++) await alice.request('bob/ping', null);
    expect(board.attempts).toBeLessThanOrEqual(attempts + 1);
    board.failing = false;
    await expect.poll(async () => {
      await alice.request('bob/ping', null);
      return alice.linkTo('bob');
    }, { timeout: 3000 }).toBe('direct');
  });

  it('the larger name asks the smaller to initiate', async () => {
    const { board, alice, bob } = await pair();
    alice.handle('ping', () => 'pong');
    await bob.request('alice/ping', null);
    await Promise.all([linked(bob, 'alice', 'direct'), linked(alice, 'bob', 'direct')]);
    // bob wanted the link; alice, the smaller name, made the offer.
    expect(board.initiators).toEqual(['alice']);
  });

  it('stays on the relay with a peer that takes no direct links, without asking again and again', async () => {
    const board = new Board();
    const { alice, bob } = await pair(board, {}, { direct: 'never' });
    bob.handle('ping', () => 'pong');
    for (let i = 0; i < 10; i++) await alice.request('bob/ping', null);
    await expect.poll(() => alice.inspect().direct.remotes[0]?.lastError).toMatch(/no direct links/);
    const signals = relayFrames(net, 'Signal');
    for (let i = 0; i < 20; i++) await alice.request('bob/ping', null);
    expect(relayFrames(net, 'Signal')).toBe(signals);
    expect(alice.linkTo('bob')).toBe('relay');
  });

  it('starts no attempt towards a group or an offline name, only towards a peer that answers', async () => {
    const { board, alice, bob } = await pair();
    await bob.join('workers');
    bob.handle('ping', () => 'pong');
    // alice is the smaller name, so she would initiate: a request to the group is answered by
    // bob, a send to an offline name is held; neither name ever sends anything back.
    for (let i = 0; i < 5; i++) expect(await alice.request('workers/ping', null)).toBe('pong');
    void alice.send('zed', 'for later').catch(() => undefined);
    await expect.poll(() => net.router.inspect().held.messages).toBe(1);
    // The only attempts are between alice and bob, who exchanged traffic (bob answered the
    // group's requests): none towards the group or the offline name.
    expect(await alice.request('bob/ping', null)).toBe('pong');
    await Promise.all([linked(alice, 'bob', 'direct'), linked(bob, 'alice', 'direct')]);
    expect(new Set(board.pairs)).toEqual(new Set(['alice->bob', 'bob->alice']));
    expect(alice.linkTo('workers')).toBe('relay');
    expect(alice.linkTo('zed')).toBe('relay');
  });

  it('never opens a link with direct: never, and sends no signal', async () => {
    const board = new Board();
    const { alice, bob } = await pair(board, { direct: 'never' }, { direct: 'never' });
    bob.handle('ping', () => 'pong');
    for (let i = 0; i < 5; i++) await alice.request('bob/ping', null);
    expect(board.attempts).toBe(0);
    expect(relayFrames(net, 'Signal')).toBe(0);
  });

  it('ignores malformed and forged signals from a third peer, and the link keeps working', async () => {
    const { alice, bob } = await pair();
    await upgrade(alice, bob);
    const errors: Error[] = [];
    bob.on('error', (e) => errors.push(e));
    const mallory = new RawClient(net.router);
    mallory.send(frame(Kind.Hello, { version: PROTOCOL_VERSION, name: 'mallory', namespace: '', secret: '', token: '', session: 'm' }));
    const rng = new Rng(0xd1ec7);
    const shapes: unknown[] = [
      null, 7, 'x', [], { t: 'nope' }, { t: 'sig' }, { t: 'sig', a: 5 }, { t: 'switch' }, { t: 'replay', a: 'x', n: -1, h: 0 },
      { t: 'replay', a: 'x', n: 1.5, h: 0 }, { t: 'ack', n: 'all' }, { t: 'want', extra: true }, { t: 'no' },
      // Well formed, but from mallory: they touch mallory's own state at bob, never alice's.
      { t: 'replay', a: 'whatever', n: 1, h: 1 }, { t: 'switch', a: 'whatever' }, { t: 'ack', n: 1_000_000 },
      // Reply signals: no frame, bytes that are no frame, a frame that is no reply, a bad length
      // prefix, a bad number; then a well-formed reply to a request bob never made.
      { t: 'rep' }, { t: 'rep', f: 'x' }, { t: 'rep', f: new Uint8Array([1, 2, 3]) },
      { t: 'rep', f: encodeFrame(frame(Kind.Msg, { ref: 1, to: 'bob', from: '', origin: 'o', seq: 1, base: 1, sentAt: 0 }, new Uint8Array(1), BodyCodec.Raw)) },
      { t: 'rep', f: encodeFrame(frame(Kind.Rep, { to: 'bob', from: '', id: 1, code: '', message: '' }, new Uint8Array(1), BodyCodec.Raw)).subarray(0, 9) },
      { t: 'rep', a: 'x', n: 0, f: encodeFrame(frame(Kind.Rep, { to: 'bob', from: '', id: 1, code: '', message: '' }, new Uint8Array(1), BodyCodec.Raw)) },
      { t: 'rep', f: encodeFrame(frame(Kind.Rep, { to: 'bob', from: '', id: 12345, code: '', message: '' }, new Uint8Array(1), BodyCodec.Raw)) },
      { t: 'rep', f: encodeFrame(frame(Kind.Rep, { to: 'alice', from: '', id: 12345, code: '', message: '' }, new Uint8Array(1), BodyCodec.Raw)) },
    ];
    for (const s of shapes) mallory.send(frame(Kind.Signal, { to: 'bob', from: '' }, encode(s), BodyCodec.Msgpack));
    for (let i = 0; i < 300; i++) {
      const body = new Uint8Array(1 + rng.int(64)).map(() => rng.int(256));
      mallory.send(frame(Kind.Signal, { to: rng.pick(['bob', 'alice']), from: '' }, body, rng.pick([BodyCodec.Msgpack, BodyCodec.Json, BodyCodec.Raw])));
    }
    // A forged `from` is overwritten by the relay.
    mallory.send(frame(Kind.Signal, { to: 'bob', from: 'alice' }, encode({ t: 'replay', a: 'x', n: 1, h: 1 }), BodyCodec.Msgpack));
    for (let i = 0; i < 100; i++) await alice.send('bob', i);
    const got: number[] = [];
    for (let i = 0; i < 100; i++) got.push((await bob.receive<number>()).body);
    expect(got).toEqual([...Array(100).keys()]);
    expect(alice.linkTo('bob')).toBe('direct');
    expect(errors).toEqual([]);
    mallory.transport.close();
  });

  it('closes its direct links when the relay link drops, and carries on over the relay after reconnecting', async () => {
    net = new Net();
    const board = new Board();
    const { peer: alice, dial } = await net.reconnecting(peerOptions(board, 'alice', { reconnect: { initialDelay: 5, maxDelay: 20 } }));
    const bob = await net.peer(peerOptions(board, 'bob'));
    await upgrade(alice, bob);
    const fellBack = linked(alice, 'bob', 'relay');
    dial.cut();
    expect((await fellBack).reason).toMatch(/relay link dropped/);
    await nextEvent((fn) => alice.on('reconnected', fn));
    for (let i = 0; i < 10; i++) await alice.send('bob', i);
    const got: number[] = [];
    for (let i = 0; i < 10; i++) got.push((await bob.receive<number>()).body);
    expect(got).toEqual([...Array(10).keys()]);
  });
});
