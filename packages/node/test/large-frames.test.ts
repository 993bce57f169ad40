/**
 * Large frames through a real relay over ws on 127.0.0.1: bodies of LARGE_BODY bytes or more go
 * as a head flagged BODY_NEXT ending its ws message, then the body as the next ws message. Bodies
 * up to the 1 MiB frame limit and many of 200 KiB must arrive intact and in order among small
 * ones; a client may change its buffer as soon as a call returns; a raw client that breaks the
 * BODY_NEXT rules is closed alone while the others keep talking.
 */
import { BODY_NEXT, BodyCodec, decodeBatch, DEFAULT_MAX_FRAME, EMPTY_BODY, encodeBatch, encodeFrame, frame, Kind, LARGE_BODY, type Frame } from '@missive/core/internal';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, createRelay, type Peer, type Relay } from '../src/index.js';
import { pattern } from '@missive/core/testing';
import { helloFrame, RawClient } from './fixtures/raw-client.js';

const KiB = 1024;
/** The largest body that fits a default frame with room for any head these tests send. */
const NEAR_MAX = DEFAULT_MAX_FRAME - KiB;

let relay: Relay | undefined;
const peers: Peer[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await relay?.close();
  relay = undefined;
});

async function peer(name: string): Promise<Peer> {
  const p = await connect(relay!.url, { name, requestTimeout: 10_000 });
  peers.push(p);
  return p;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Length and hash: a mismatch reads at a glance, without a megabyte diff. */
const digest = (b: Uint8Array): string => `${b.length}:${sha256(b)}`;

/** Resolves with the first `n` bodies a subscription receives, in arrival order. */
function collect<T>(p: Peer, topic: string, n: number): { ready: Promise<void>; all: Promise<T[]> } {
  const got: T[] = [];
  let done!: (v: T[]) => void;
  const all = new Promise<T[]>((resolve) => (done = resolve));
  const sub = p.subscribe<T>(topic, (body) => {
    got.push(body);
    if (got.length === n) done(got);
  });
  return { ready: sub.ready, all };
}

/** A frame as a WireClient received it. */
interface WireEntry {
  frame: Frame;
  /** Index in `messages` of the ws message that carried it (its head, for BODY_NEXT). */
  message: number;
  /** Whether it was the last frame of that message. */
  last: boolean;
  /** For BODY_NEXT: the ws message that was its body. */
  bodyMessage: Buffer | undefined;
}

/**
 * A ws client below the Peer API that keeps every message as received and joins a BODY_NEXT
 * head with the next message, as a receiver must.
 */
class WireClient {
  readonly ws: WebSocket;
  /** Every ws message, as received. */
  readonly messages: Buffer[] = [];
  /** Frames in order; a BODY_NEXT head gets the next message as its body (flag left set). */
  readonly frames: WireEntry[] = [];
  readonly #waiters: { test: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  #head: WireEntry | undefined;

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(this.ws);
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      this.messages.push(data);
      const head = this.#head;
      if (head) {
        this.#head = undefined;
        head.frame.body = data;
        head.bodyMessage = data;
        this.#arrived(head.frame);
        return;
      }
      const here: WireEntry[] = [];
      const message = this.messages.length - 1;
      decodeBatch(data, Number.MAX_SAFE_INTEGER, (f) => here.push({ frame: f, message, last: false, bodyMessage: undefined }));
      here.at(-1)!.last = true;
      for (const e of here) {
        this.frames.push(e);
        if (e.frame.flags & BODY_NEXT) this.#head = e;
        else this.#arrived(e.frame);
      }
    });
  }

  #arrived(f: Frame): void {
    for (const w of this.#waiters.splice(0)) {
      if (w.test(f)) w.resolve(f);
      else this.#waiters.push(w);
    }
  }

  /** The next complete frame of this kind (its body joined). */
  next<K extends Frame['kind']>(kind: K): Promise<Extract<Frame, { kind: K }>> {
    return new Promise((resolve) => this.#waiters.push({ test: (f) => f.kind === kind, resolve: resolve as (f: Frame) => void }));
  }

  async hello(name: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('close', (code) => reject(new Error(`closed (${code}) before open`)));
    });
    const welcome = this.next(Kind.Welcome);
    this.ws.send(encodeBatch([helloFrame(name)]));
    await welcome;
  }
}

describe('large frames through a relay over ws', () => {
  it('carries a body of 1 MiB minus headroom and several of 200 KiB by request/reply and send, intact, with small ones around them in order', async () => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    bob.handle<Uint8Array>('echo', (body) => body);

    // Request/reply: the largest body that fits a frame, both ways.
    const near = pattern(NEAR_MAX, 1);
    expect(digest(await alice.request<Uint8Array>('bob/echo', near))).toBe(digest(near));

    // Several 200 KiB requests at once among small ones: each reply is its own request's body.
    const asked = Array.from({ length: 9 }, (_, i) => pattern(i % 3 === 1 ? 200 * KiB : 10 + i, 10 + i));
    const replies = await Promise.all(asked.map((b) => alice.request<Uint8Array>('bob/echo', b)));
    expect(replies.map(digest)).toEqual(asked.map(digest));

    // Sends: small, large, small... all queued in one tick; the mailbox gets them in order.
    const sent = [pattern(1, 30), pattern(200 * KiB, 31), pattern(2, 32), pattern(200 * KiB, 33), pattern(3, 34), pattern(NEAR_MAX, 35), pattern(4, 36), pattern(200 * KiB, 37), pattern(5, 38)];
    const ids = await Promise.all(sent.map((b) => alice.send('bob', b)));
    const received: { id: string; digest: string }[] = [];
    for (let i = 0; i < sent.length; i++) {
      const m = await bob.receive<Uint8Array>({ timeout: 10_000 });
      received.push({ id: m.id, digest: digest(m.body) });
    }
    expect(received).toEqual(sent.map((b, i) => ({ id: ids[i], digest: digest(b) })));

    // Publishes, small and large in one tick, reach a subscriber in order.
    const published = [pattern(6, 40), pattern(200 * KiB, 41), pattern(7, 42), pattern(NEAR_MAX, 43), pattern(8, 44)];
    const c = collect<Uint8Array>(bob, 'big.>', published.length);
    await c.ready;
    for (const b of published) alice.publish('big.data', b);
    expect((await c.all).map(digest)).toEqual(published.map(digest));
  });

  it('lets a client change its buffer as soon as publish, send or request returns (the client socket copies while masking)', async () => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    bob.handle<Uint8Array>('echo', (body) => body);
    const c = collect<Uint8Array>(bob, 'reuse', 1);
    await c.ready;
    const buf = pattern(200 * KiB, 50);
    const expected = buf.slice();

    alice.publish('reuse', buf);
    buf.fill(0xa1);
    const pub = (await c.all)[0]!;

    buf.set(expected);
    await alice.send('bob', buf);
    buf.fill(0xa2);
    const msg = await bob.receive<Uint8Array>({ timeout: 10_000 });

    buf.set(expected);
    const reply = alice.request<Uint8Array>('bob/echo', buf);
    buf.fill(0xa3);

    expect([digest(pub), digest(msg.body), digest(await reply)]).toEqual([digest(expected), digest(expected), digest(expected)]);
  });

  it('puts a large frame on the wire as a BODY_NEXT head ending its ws message and the body as the next ws message, and takes one in the same shape', async () => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const alice = await peer('alice');
    const carol = new WireClient(relay.url);
    await carol.hello('carol');
    const asked = pattern(300 * KiB, 60);
    const answer = pattern(NEAR_MAX, 61);

    const reply = alice.request<Uint8Array>('carol/big', asked);
    const req = await carol.next(Kind.Req);
    const entry = carol.frames.find((e) => e.frame === req)!;
    expect(req.flags & BODY_NEXT).toBe(BODY_NEXT);
    expect(entry.last).toBe(true);
    // The ws message after the head's is the body, exactly.
    expect(carol.messages[entry.message + 1]).toBe(entry.bodyMessage);
    expect(digest(req.body)).toBe(digest(asked));

    // Answered the same way by hand: a REP head flagged BODY_NEXT, then the body as its own message.
    const head = frame(Kind.Rep, { to: req.from, from: '', id: req.id, code: '', message: '' }, EMPTY_BODY, BodyCodec.Raw | BODY_NEXT);
    carol.ws.send(encodeBatch([head]));
    carol.ws.send(answer);
    expect(digest(await reply)).toBe(digest(answer));
    // Nothing carol received was both large and a batch: only the body travelled whole.
    expect(carol.messages.filter((m) => m.length >= LARGE_BODY).map((m) => m.length)).toEqual([300 * KiB]);
  });
});

describe('large frames: a raw ws client breaking the BODY_NEXT rules', () => {
  const head = (): Frame => frame(Kind.Pub, { topic: 'junk.large', from: '' }, EMPTY_BODY, BodyCodec.Raw | BODY_NEXT);

  /** Alice and bob, talking; bob sees anything published under `junk.`. */
  async function talkers(): Promise<{ alice: Peer; bob: Peer; junk: unknown[] }> {
    const alice = await peer('alice');
    const bob = await peer('bob');
    bob.handle('echo', (body) => body);
    const junk: unknown[] = [];
    await bob.subscribe('junk.>', (b) => junk.push(b)).ready;
    return { alice, bob, junk };
  }

  async function stillTalking(alice: Peer): Promise<void> {
    await expect(alice.request('bob/echo', 'still here')).resolves.toBe('still here');
    const big = pattern(200 * KiB, 70);
    expect(digest(await alice.request<Uint8Array>('bob/echo', big))).toBe(digest(big));
  }

  it.each([
    ['sends an empty message after a BODY_NEXT head', () => [encodeBatch([head()]), new Uint8Array(0)], 'empty message'],
    [
      'sends a second frame after a BODY_NEXT head in the same message',
      () => [encodeBatch([head(), frame(Kind.Ping, { nonce: 1 })]), pattern(LARGE_BODY, 71)],
      'a frame follows one whose body is the next message',
    ],
  ])('closes a client that %s with PROTOCOL (1002), alone', async (_label, messages, reason) => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const { alice, junk } = await talkers();
    const errors: string[] = [];
    relay.router.on('protocol-error', (e) => errors.push(e.error.reason));
    const raw = await RawClient.open(relay.url);
    await raw.hello('raw');
    for (const m of messages()) raw.send(m);
    expect(await raw.closed).toEqual({ code: 1002, reason: `PROTOCOL: ${reason}` });
    expect(raw.bye).toMatchObject({ code: 'PROTOCOL', message: reason });
    expect(raw.decodeError).toBeUndefined();
    expect(errors).toEqual([reason]);
    await stillTalking(alice);
    expect(junk).toEqual([]);
    expect(relay.router.connections().map((c) => c.name).sort()).toEqual(['alice', 'bob']);
  });

  it('closes a client whose body makes the frame larger than maxFrameBytes with 1009 and BYE LIMIT, alone', async () => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const { alice, junk } = await talkers();
    const raw = await RawClient.open(relay.url);
    await raw.hello('raw');
    const headLen = encodeFrame(head()).length - 4;
    raw.send(encodeBatch([head()]));
    raw.send(pattern(DEFAULT_MAX_FRAME - headLen + 1, 72));
    const reason = `frame of ${DEFAULT_MAX_FRAME + 1} bytes exceeds the ${DEFAULT_MAX_FRAME}-byte limit`;
    expect(await raw.closed).toEqual({ code: 1009, reason: `LIMIT: ${reason}`.slice(0, 120) });
    expect(raw.bye).toMatchObject({ code: 'LIMIT', message: reason });
    await stillTalking(alice);
    expect(junk).toEqual([]);
  });
});
