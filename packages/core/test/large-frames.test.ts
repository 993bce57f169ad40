/**
 * Large frames over the memory transport: a frame whose body is LARGE_BODY bytes or more is not
 * copied into a batch. Its head ends the batch, flagged BODY_NEXT, and the body follows as the
 * next transport message, whole. These tests check delivery, order, buffer reuse by the sender,
 * the threshold, the wire shape (recorded at the transports), the Router's checks on raw input,
 * its metrics, and that a transport which copies on send gets the caller's view as it is.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BODY_NEXT,
  BodyCodec,
  decodeBatch,
  EMPTY_BODY,
  encodeBatch,
  encodeFrame,
  frame,
  FrameTooLargeError,
  Kind,
  kindName,
  LARGE_BODY,
  PROTOCOL_VERSION,
  type Frame,
} from '../src/internal.js';
import {
  createPeer,
  memoryTransportPair,
  ProtocolError,
  type CloseInfo,
  type ConnectionInfo,
  type Peer,
  type RouterMetrics,
  type Transport,
  type TransportHandlers,
} from '../src/index.js';
import { pattern, sameBytes as same } from '../src/testing.js';
import { Net, nextEvent, RawClient } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

const KiB = 1024;

// ---- recording the wire -----------------------------------------------------------------------

/** Every message a transport was given to send and every message it delivered, as is. */
interface Wire {
  sent: Uint8Array[];
  received: Uint8Array[];
  /** With `copiesOnSend`: for each recorded copy, the very object `send` was given. */
  given: Map<Uint8Array, Uint8Array>;
}

/**
 * Wraps a memory transport end and records both directions. Without `copiesOnSend` it records
 * and passes on the very objects. With it, it keeps its word as a real transport does: it copies
 * what `send` is given before returning (the caller may reuse the buffer), records and passes on
 * the copy, and remembers in `given` which object it was given.
 */
function recording(inner: Transport, copiesOnSend?: boolean): Transport & { wire: Wire } {
  const wire: Wire = { sent: [], received: [], given: new Map() };
  return {
    wire,
    ...(copiesOnSend === undefined ? {} : { copiesOnSend }),
    get status() {
      return inner.status;
    },
    get bufferedAmount() {
      return inner.bufferedAmount;
    },
    send(data: Uint8Array): boolean {
      if (copiesOnSend !== true) {
        wire.sent.push(data);
        return inner.send(data);
      }
      const copy = data.slice();
      wire.given.set(copy, data);
      wire.sent.push(copy);
      return inner.send(copy);
    },
    listen(h: TransportHandlers): void {
      inner.listen({
        message: (data) => {
          wire.received.push(data);
          h.message(data);
        },
        drain: () => h.drain(),
        close: (info: CloseInfo) => h.close(info),
      });
    },
    pause: () => inner.pause(),
    resume: () => inner.resume(),
    close: (info?: Partial<CloseInfo>) => inner.close(info),
  };
}

/** A peer of `net` whose transport records the wire. */
async function recordedPeer(name: string, copiesOnSend?: boolean): Promise<{ peer: Peer; wire: Wire }> {
  const [client, server] = memoryTransportPair();
  net.router.accept(server);
  const t = recording(client, copiesOnSend);
  const peer = await createPeer(t, { name, requestTimeout: 5000 });
  net.peers.push(peer);
  return { peer, wire: t.wire };
}

/** One frame as seen on the wire. */
interface WireFrame {
  frame: Frame;
  /** Bytes of its `[u32 length][frame]` unit in its batch (the head only, for BODY_NEXT). */
  unit: number;
  /** Index of the transport message that carried it (its head). */
  message: number;
  /** Whether it was the last frame of that message. */
  last: boolean;
  bodyNext: boolean;
  /** The body: bytes after the head, or the whole next message for BODY_NEXT. */
  body: Uint8Array;
  /** For BODY_NEXT: the message object that carried the body. */
  bodyMessage: Uint8Array | undefined;
}

/**
 * Parses recorded messages the way a receiver must: a batch whose last frame is flagged
 * BODY_NEXT is followed by a message that is that frame's body.
 */
function parseWire(messages: readonly Uint8Array[]): WireFrame[] {
  const out: WireFrame[] = [];
  let waiting: WireFrame | undefined;
  messages.forEach((m, i) => {
    if (waiting) {
      waiting.body = m;
      waiting.bodyMessage = m;
      waiting = undefined;
      return;
    }
    const here: WireFrame[] = [];
    decodeBatch(m, Number.MAX_SAFE_INTEGER, (f, unit) => {
      here.push({ frame: f, unit, message: i, last: false, bodyNext: (f.flags & BODY_NEXT) !== 0, body: f.body, bodyMessage: undefined });
    });
    here.at(-1)!.last = true;
    for (const w of here) if (w.bodyNext && w.last) waiting = w;
    out.push(...here);
  });
  return out;
}

/** The frames of one kind on the wire. */
const ofKind = (frames: WireFrame[], kind: number): WireFrame[] => frames.filter((w) => w.frame.kind === kind);

/** Resolves with the first `n` bodies a subscription receives. */
function collect<T>(peer: Peer, pattern: string, n: number): { ready: Promise<void>; got: T[]; all: Promise<T[]> } {
  const got: T[] = [];
  let done!: (v: T[]) => void;
  const all = new Promise<T[]>((resolve) => (done = resolve));
  const sub = peer.subscribe<T>(pattern, (body) => {
    got.push(body);
    if (got.length === n) done(got);
  });
  return { ready: sub.ready, got, all };
}

const hello = (name = ''): Frame => frame(Kind.Hello, { version: PROTOCOL_VERSION, name, namespace: '', secret: '', token: '', session: '' });

/** A raw client past its handshake (the Router has taken its name). */
async function rawWelcomed(name: string): Promise<RawClient> {
  const connected = nextEvent<ConnectionInfo>((fn) => net.router.on('connect', (e) => e.name === name && fn(e)));
  const raw = new RawClient(net.router);
  raw.send(hello(name));
  await connected;
  return raw;
}

/** Two ordinary peers answering requests through the same Router. */
async function talkers(): Promise<{ alice: Peer; bob: Peer }> {
  const alice = await net.peer({ name: 'alice', requestTimeout: 5000 });
  const bob = await net.peer({ name: 'bob', requestTimeout: 5000 });
  bob.handle('echo', (body) => body);
  return { alice, bob };
}

// ---- tests ------------------------------------------------------------------------------------

describe('large frames: delivery and wire shape', () => {
  it('delivers a 100 KiB body by send and by request byte-identical, as a BODY_NEXT head ending its message and the body as the next message, passed through the Router without a copy', async () => {
    const { peer: alice, wire: aw } = await recordedPeer('alice');
    const { peer: bob, wire: bw } = await recordedPeer('bob');
    bob.handle<Uint8Array>('echo', (body) => body);
    const sent = pattern(100 * KiB, 1);
    const asked = pattern(100 * KiB, 2);

    const id = await alice.send('bob', sent);
    const msg = await bob.mailbox<Uint8Array>().receive({ timeout: 5000 });
    expect(msg).toMatchObject({ id, from: 'alice', to: 'bob' });
    expect(msg.body).toBeInstanceOf(Uint8Array);
    expect(same(msg.body, sent)).toBe(true);

    const reply = await alice.request<Uint8Array>('bob/echo', asked);
    expect(same(reply, asked)).toBe(true);

    // Each large frame, in each of the four places it was seen: head flagged BODY_NEXT, last of
    // its message; the next message is exactly the body (no length prefix, no other frame).
    const where = {
      'Msg sent by alice': ofKind(parseWire(aw.sent), Kind.Msg),
      'Msg received by bob': ofKind(parseWire(bw.received), Kind.Msg),
      'Req sent by alice': ofKind(parseWire(aw.sent), Kind.Req),
      'Req received by bob': ofKind(parseWire(bw.received), Kind.Req),
      'Rep sent by bob': ofKind(parseWire(bw.sent), Kind.Rep),
      'Rep received by alice': ofKind(parseWire(aw.received), Kind.Rep),
    };
    for (const [label, frames] of Object.entries(where)) {
      expect(frames, label).toHaveLength(1);
      const w = frames[0]!;
      expect({ label, bodyNext: w.bodyNext, last: w.last, codec: w.frame.flags & 0x03 }).toEqual({ label, bodyNext: true, last: true, codec: BodyCodec.Raw });
      expect(w.bodyMessage!.length, label).toBe(100 * KiB);
      expect(same(w.body, label.startsWith('Msg') ? sent : asked), label).toBe(true);
      // The head carries no body bytes: its unit is a few dozen bytes.
      expect(w.unit, label).toBeLessThan(100);
    }
    // The Router hands the received body message on as it is (a stable view): the very object
    // alice's transport sent is the one bob's transport delivered, and back.
    expect(where['Msg received by bob'][0]!.bodyMessage).toBe(where['Msg sent by alice'][0]!.bodyMessage);
    expect(where['Req received by bob'][0]!.bodyMessage).toBe(where['Req sent by alice'][0]!.bodyMessage);
    expect(where['Rep received by alice'][0]!.bodyMessage).toBe(where['Rep sent by bob'][0]!.bodyMessage);
    // No transport message other than those bodies was that large: nothing was batched with them.
    for (const m of [...aw.sent, ...aw.received, ...bw.sent, ...bw.received]) {
      if (m.length >= LARGE_BODY) expect(m.length).toBe(100 * KiB);
    }
  });

  it('delivers a large publish intact to a subscriber (the Router fans out the head, then the same body)', async () => {
    const { peer: alice, wire: aw } = await recordedPeer('alice');
    const { peer: bob, wire: bw } = await recordedPeer('bob');
    const body = pattern(100 * KiB, 3);
    const c = collect<Uint8Array>(bob, 'big.data', 1);
    await c.ready;
    alice.publish('big.data', body);
    const [got] = await c.all;
    expect(same(got!, body)).toBe(true);
    const out = ofKind(parseWire(aw.sent), Kind.Pub);
    expect(out.map((w) => [w.bodyNext, w.last, w.body.length])).toEqual([[true, true, 100 * KiB]]);
    // A large body is not copied into each subscriber's batch: each gets a BODY_NEXT head and
    // then the very body the Router received (the memory transport passes it by reference).
    const inn = ofKind(parseWire(bw.received), Kind.Pub);
    expect(inn.map((w) => [w.bodyNext, w.body.length])).toEqual([[true, 100 * KiB]]);
    expect(same(inn[0]!.body, body)).toBe(true);
    expect(inn[0]!.bodyMessage).toBe(out[0]!.bodyMessage);
  });

  it('batches a body of LARGE_BODY - 1 bytes and sends one of LARGE_BODY bytes as a BODY_NEXT head and its own message', async () => {
    const { peer: alice, wire: aw } = await recordedPeer('alice');
    const { peer: bob, wire: bw } = await recordedPeer('bob');
    expect(LARGE_BODY).toBe(16 * KiB);
    const under = pattern(LARGE_BODY - 1, 4);
    const at = pattern(LARGE_BODY, 5);
    await alice.send('bob', under);
    await alice.send('bob', at);
    const first = await bob.receive<Uint8Array>({ timeout: 5000 });
    const second = await bob.receive<Uint8Array>({ timeout: 5000 });
    expect(same(first.body, under)).toBe(true);
    expect(same(second.body, at)).toBe(true);

    for (const [label, messages] of [['sent by alice', aw.sent], ['received by bob', bw.received]] as const) {
      const msgs = ofKind(parseWire(messages), Kind.Msg);
      expect(msgs.map((w) => [w.body.length, w.bodyNext]), label).toEqual([
        [LARGE_BODY - 1, false],
        [LARGE_BODY, true],
      ]);
      // The small one's body is inside its batch, after its head.
      const small = msgs[0]!;
      expect(small.unit, label).toBeGreaterThan(LARGE_BODY - 1);
      expect(small.body.buffer, label).toBe(messages[small.message]!.buffer);
      // The large one's body is a message of its own, exactly LARGE_BODY bytes.
      const large = msgs[1]!;
      expect(large.last, label).toBe(true);
      expect(messages[large.message + 1], label).toBe(large.bodyMessage);
      expect(large.bodyMessage!.length, label).toBe(LARGE_BODY);
    }
  });
});

describe('large frames: order', () => {
  it('keeps publish order around large frames: small, large, small, large, small arrive in that order', async () => {
    const { peer: alice, wire: aw } = await recordedPeer('alice');
    const bob = await net.peer({ name: 'bob' });
    const sizes = [10, 64 * KiB, 20, 100 * KiB, 30];
    const bodies = sizes.map((n, i) => pattern(n, 10 + i));
    const c = collect<Uint8Array>(bob, 'seq', bodies.length);
    await c.ready;
    // All in one tick: the first small publish shares a batch with the first large head.
    for (const b of bodies) alice.publish('seq', b);
    const got = await c.all;
    expect(got.map((b) => b.length)).toEqual(sizes);
    got.forEach((b, i) => expect(same(b, bodies[i]!), `publish ${i}`).toBe(true));

    const pubs = ofKind(parseWire(aw.sent), Kind.Pub);
    expect(pubs.map((w) => [w.body.length, w.bodyNext, w.last])).toEqual([
      [10, false, false],
      [64 * KiB, true, true],
      [20, false, false],
      [100 * KiB, true, true],
      [30, false, true],
    ]);
    // Each small frame written before a large one went out in the same message as its head.
    expect(pubs[0]!.message).toBe(pubs[1]!.message);
    expect(pubs[2]!.message).toBe(pubs[3]!.message);
    expect(pubs[4]!.message).toBe(pubs[3]!.message + 2);
  });

  it('keeps send order around a large message: small, large, small reach the mailbox in order', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const bodies = [pattern(5, 20), pattern(200 * KiB, 21), pattern(7, 22), pattern(LARGE_BODY, 23), pattern(9, 24)];
    const ids = await Promise.all(bodies.map((b) => alice.send('bob', b)));
    for (let i = 0; i < bodies.length; i++) {
      const m = await bob.receive<Uint8Array>({ timeout: 5000 });
      expect(m.id).toBe(ids[i]);
      expect(same(m.body, bodies[i]!), `message ${i}`).toBe(true);
    }
  });

  it('keeps small and large requests and their replies apart and intact when interleaved', async () => {
    const { alice } = await talkers();
    const bodies = [pattern(3, 30), pattern(80 * KiB, 31), pattern(4, 32), pattern(300 * KiB, 33), pattern(5, 34)];
    const replies = await Promise.all(bodies.map((b) => alice.request<Uint8Array>('bob/echo', b)));
    replies.forEach((r, i) => expect(same(r, bodies[i]!), `reply ${i}`).toBe(true));
  });
});

describe('large frames: the sender keeps its buffer', () => {
  it.each([
    ['batched', 1 * KiB],
    ['at LARGE_BODY', LARGE_BODY],
    ['100 KiB', 100 * KiB],
  ])('a %s body changed right after publish, send or request returns still arrives as it was', async (_label, size) => {
    const { alice, bob } = await talkers();
    const c = collect<Uint8Array>(bob, 'reuse', 1);
    await c.ready;

    const pubBuf = pattern(size, 40);
    const pubCopy = pubBuf.slice();
    alice.publish('reuse', pubBuf);
    pubBuf.fill(0xee);

    const sendBuf = pattern(size, 41);
    const sendCopy = sendBuf.slice();
    await alice.send('bob', sendBuf);
    sendBuf.fill(0xee);

    const reqBuf = pattern(size, 42);
    const reqCopy = reqBuf.slice();
    const reply = alice.request<Uint8Array>('bob/echo', reqBuf);
    reqBuf.fill(0xee);

    const [pub] = await c.all;
    expect(same(pub!, pubCopy)).toBe(true);
    const msg = await bob.receive<Uint8Array>({ timeout: 5000 });
    expect(same(msg.body, sendCopy)).toBe(true);
    expect(same(await reply, reqCopy)).toBe(true);
  });

  it.each([
    ['batched', 1 * KiB],
    ['100 KiB', 100 * KiB],
  ])('a %s send refused by a full mailbox and sent again later carries the bytes it had at send, though the caller reused its buffer', async (_label, size) => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob', mailboxCapacity: 1 });
    await alice.send('bob', 'filler', { waitForDelivery: true });
    const buf = pattern(size, 43);
    const copy = buf.slice();
    const id = await alice.send('bob', buf);
    // Refused (LIMIT) while the mailbox is full; the outbox will send it again.
    await expect.poll(() => bob.mailbox().stats().refused).toBeGreaterThan(0);
    buf.fill(0xee);
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'filler' });
    const again = await bob.receive<Uint8Array>({ timeout: 5000 });
    expect(again.id).toBe(id);
    expect(same(again.body, copy)).toBe(true);
  });

  it('a transport that copies on send gets the caller\'s very view (no copy); one that does not gets a copy; send always keeps its own', async () => {
    const { peer: copier, wire: cw } = await recordedPeer('copier', true);
    const { peer: plain, wire: pw } = await recordedPeer('plain');
    const bob = await net.peer({ name: 'bob' });
    bob.handle('echo', (body) => body);
    const c = collect<Uint8Array>(bob, 'views', 2);
    await c.ready;
    // Views into the middle of larger buffers: identity is checked by buffer and offset.
    const backing = [pattern(300 * KiB, 50), pattern(300 * KiB, 51)];
    const views = (i: number): Uint8Array[] => [0, 1, 2].map((k) => backing[i]!.subarray(1000 + k * 100 * KiB, 1000 + k * 100 * KiB + 90 * KiB));
    const [cPub, cSend, cReq] = views(0) as [Uint8Array, Uint8Array, Uint8Array];
    const [pPub, pSend, pReq] = views(1) as [Uint8Array, Uint8Array, Uint8Array];

    copier.publish('views', cPub);
    await copier.send('bob', cSend);
    const cReply = copier.request<Uint8Array>('bob/echo', cReq, { timeout: 5000 });
    plain.publish('views', pPub);
    await plain.send('bob', pSend);
    const pReply = plain.request<Uint8Array>('bob/echo', pReq, { timeout: 5000 });

    const bodiesOf = (wire: Wire): Uint8Array[] => parseWire(wire.sent).filter((w) => w.bodyNext).map((w) => w.bodyMessage!);
    const copierBodies = bodiesOf(cw).map((copy) => cw.given.get(copy)!);
    expect(copierBodies).toHaveLength(3);
    copierBodies.forEach((sent, i) => {
      const view = [cPub, cSend, cReq][i]!;
      if (view === cSend) {
        // The outbox copies a Uint8Array at send (it may be sent again later) and hands that
        // copy over as it is.
        expect(sent.buffer).not.toBe(backing[0]!.buffer);
        expect(same(sent, view)).toBe(true);
        return;
      }
      expect(sent).toBe(view);
      expect(sent.buffer).toBe(backing[0]!.buffer);
      expect(sent.byteOffset).toBe(view.byteOffset);
      expect(sent.byteLength).toBe(90 * KiB);
    });
    const plainBodies = bodiesOf(pw);
    expect(plainBodies).toHaveLength(3);
    plainBodies.forEach((sent, i) => {
      const view = [pPub, pSend, pReq][i]!;
      expect(sent.buffer).not.toBe(backing[1]!.buffer);
      expect(same(sent, view)).toBe(true);
    });

    // Everything arrives intact either way.
    const pubs = await c.all;
    expect(pubs.map((b) => same(b, cPub) || same(b, pPub))).toEqual([true, true]);
    expect(same(await cReply, cReq)).toBe(true);
    expect(same(await pReply, pReq)).toBe(true);
    const msgs = [await bob.receive<Uint8Array>({ timeout: 5000 }), await bob.receive<Uint8Array>({ timeout: 5000 })];
    expect(msgs.map((m) => [m.from, same(m.body, m.from === 'copier' ? cSend : pSend)]).sort()).toEqual([
      ['copier', true],
      ['plain', true],
    ]);
  });
});

describe('large frames: the Router refuses broken BODY_NEXT input', () => {
  const head = (flags = BodyCodec.Raw | BODY_NEXT, body: Uint8Array = EMPTY_BODY): Frame => frame(Kind.Pub, { topic: 'junk.large', from: '' }, body, flags);

  /** Closes a raw client that sends `messages` after its HELLO; alice and bob keep talking. */
  async function expectClosed(messages: Uint8Array[], closeCode: number, byeCode: string, reason: string): Promise<void> {
    const { alice, bob } = await talkers();
    const errors: ProtocolError[] = [];
    net.router.on('protocol-error', (e) => errors.push(e.error));
    const junk: unknown[] = [];
    await bob.subscribe('junk.>', (b) => junk.push(b)).ready;
    const raw = await rawWelcomed('raw');
    for (const m of messages) raw.transport.send(m);
    expect(await raw.closed).toMatchObject({ code: closeCode });
    expect(raw.frames.at(-1)).toMatchObject({ kind: Kind.Bye, code: byeCode, message: reason });
    expect(errors.map((e) => e.reason)).toEqual([reason]);
    await expect(alice.request('bob/echo', 'still here')).resolves.toBe('still here');
    expect(same(await alice.request<Uint8Array>('bob/echo', pattern(50 * KiB, 60)), pattern(50 * KiB, 60))).toBe(true);
    expect(junk).toEqual([]);
    expect(net.router.connections().map((c) => c.name).sort()).toEqual(['alice', 'bob']);
  }

  it('closes with PROTOCOL (1002) "empty message" when the body after a BODY_NEXT head is empty', async () => {
    await expectClosed([encodeBatch([head()]), new Uint8Array(0)], 1002, 'PROTOCOL', 'empty message');
  });

  it('closes with PROTOCOL (1002) when a frame follows a BODY_NEXT head in the same message', async () => {
    await expectClosed(
      [encodeBatch([head(), frame(Kind.Ping, { nonce: 1 })]), pattern(LARGE_BODY, 61)],
      1002,
      'PROTOCOL',
      'a frame follows one whose body is the next message',
    );
  });

  it.each([
    ['on a kind without a body', frame(Kind.Ping, { nonce: 1 }, EMPTY_BODY, BODY_NEXT | BodyCodec.Raw), 'Ping frame carries a body'],
    ['without a codec', head(BODY_NEXT), 'Pub body without a codec'],
    ['with body bytes after the head', head(BODY_NEXT | BodyCodec.Raw, pattern(10, 62)), 'Pub frame has BODY_NEXT and body bytes'],
  ])('closes with PROTOCOL (1002) on BODY_NEXT %s', async (_label, f, reason) => {
    await expectClosed([encodeBatch([f]), pattern(LARGE_BODY, 63)], 1002, 'PROTOCOL', reason);
  });

  it('closes with 1009 and BYE LIMIT when the body makes the frame larger than maxFrameBytes, and accepts one of exactly the limit', async () => {
    const max = 64 * KiB;
    await net.close();
    net = new Net({ limits: { maxFrameBytes: max } });
    const headLen = encodeFrame(head()).length - 4; // the frame's bytes without its length prefix
    const errors: ProtocolError[] = [];
    net.router.on('protocol-error', (e) => errors.push(e.error));

    // Exactly the limit: delivered, and the connection stays.
    const { alice, bob } = await talkers();
    const got = collect<Uint8Array>(bob, 'junk.>', 1);
    await got.ready;
    const fits = await rawWelcomed('fits');
    const fitting = pattern(max - headLen, 64);
    fits.transport.send(encodeBatch([head()]));
    fits.transport.send(fitting);
    fits.send(frame(Kind.Ping, { nonce: 9 }));
    await expect.poll(() => fits.of(Kind.Pong).length).toBe(1);
    expect(same((await got.all)[0]!, fitting)).toBe(true);
    expect(fits.closeInfo).toBeUndefined();

    // One byte more: the head alone is small, head + body is over.
    const over = await rawWelcomed('over');
    over.transport.send(encodeBatch([head()]));
    over.transport.send(pattern(max - headLen + 1, 65));
    expect(await over.closed).toMatchObject({ code: 1009 });
    const reason = `frame of ${max + 1} bytes exceeds the ${max}-byte limit`;
    expect(over.frames.at(-1)).toMatchObject({ kind: Kind.Bye, code: 'LIMIT', message: reason });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(FrameTooLargeError);
    expect(errors[0]!.reason).toBe(reason);

    await expect(alice.request('bob/echo', 'still here')).resolves.toBe('still here');
    expect(fits.closeInfo).toBeUndefined();
    expect(got.got).toHaveLength(1);
  });
});

describe('large frames: metrics', () => {
  /** Per-kind differences between two snapshots of one counter map (kinds that changed only). */
  function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
    return out;
  }
  const counters = (m: RouterMetrics) => ({ framesIn: m.framesIn, bytesIn: m.bytesIn, framesOut: m.framesOut, bytesOut: m.bytesOut });

  /** Bytes a frame seen on the wire counts for: its unit plus a BODY_NEXT body. */
  const counted = (w: WireFrame): number => w.unit + (w.bodyNext ? w.body.length : 0);
  /** The same frame, encoded whole as one batched unit. */
  const batchedSize = (w: WireFrame): number => encodeFrame({ ...w.frame, flags: w.frame.flags & ~BODY_NEXT, body: w.body }).length;

  it('counts a large request and its reply as one frame in and one out of their kind, bytes = head + body', async () => {
    const { peer: alice, wire: aw } = await recordedPeer('alice');
    const { peer: bob, wire: bw } = await recordedPeer('bob');
    bob.handle<Uint8Array>('echo', (body) => body);
    const before = counters(net.router.metrics());
    const body = pattern(100 * KiB, 70);
    const reply = await alice.request<Uint8Array>('bob/echo', body);
    expect(same(reply, body)).toBe(true);
    const after = counters(net.router.metrics());

    const reqIn = ofKind(parseWire(aw.sent), Kind.Req)[0]!;
    const reqOut = ofKind(parseWire(bw.received), Kind.Req)[0]!;
    const repIn = ofKind(parseWire(bw.sent), Kind.Rep)[0]!;
    const repOut = ofKind(parseWire(aw.received), Kind.Rep)[0]!;
    for (const w of [reqIn, reqOut, repIn, repOut]) expect(w.bodyNext).toBe(true);

    expect(delta(after.framesIn, before.framesIn)).toEqual({ Req: 1, Rep: 1 });
    expect(delta(after.framesOut, before.framesOut)).toEqual({ Req: 1, Rep: 1 });
    expect(delta(after.bytesIn, before.bytesIn)).toEqual({ Req: counted(reqIn), Rep: counted(repIn) });
    expect(delta(after.bytesOut, before.bytesOut)).toEqual({ Req: counted(reqOut), Rep: counted(repOut) });
    // Split or not, a frame counts the bytes it would as one batched unit.
    for (const w of [reqIn, reqOut, repIn, repOut]) expect(counted(w)).toBe(batchedSize(w));
    expect(counted(reqIn)).toBeGreaterThan(100 * KiB);
  });

  it('counts a large publish as one Pub in (split) and one Pub out (fanned out in a batch) with their full bytes', async () => {
    const { peer: alice, wire: aw } = await recordedPeer('alice');
    const { peer: bob, wire: bw } = await recordedPeer('bob');
    const c = collect<Uint8Array>(bob, 'm.large', 1);
    await c.ready;
    const before = counters(net.router.metrics());
    alice.publish('m.large', pattern(100 * KiB, 71));
    await c.all;
    const after = counters(net.router.metrics());
    const pubIn = ofKind(parseWire(aw.sent), Kind.Pub)[0]!;
    const pubOut = ofKind(parseWire(bw.received), Kind.Pub)[0]!;
    expect(delta(after.framesIn, before.framesIn)).toEqual({ Pub: 1 });
    expect(delta(after.framesOut, before.framesOut)).toEqual({ Pub: 1 });
    expect(delta(after.bytesIn, before.bytesIn)).toEqual({ Pub: counted(pubIn) });
    expect(delta(after.bytesOut, before.bytesOut)).toEqual({ Pub: counted(pubOut) });
    expect(counted(pubIn)).toBe(batchedSize(pubIn));
    expect(counted(pubOut)).toBe(batchedSize(pubOut));
    expect(kindName(pubIn.frame.kind)).toBe('Pub');
  });
});
