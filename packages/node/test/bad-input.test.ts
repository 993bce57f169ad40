/**
 * Bad input over real sockets: a real relay (createRelay on port 0) is fed random bytes, cut-short
 * frames, msgpack of the wrong shape, junk bodies, text messages, oversized frames, floods of
 * handshakes and handshakes that never finish. Each offending connection must be closed alone with
 * the documented close code (after a BYE saying why, where the relay speaks), while the relay keeps
 * answering `GET /healthz` and two real peers keep talking through it, during and after.
 *
 * Inputs come from a seeded PRNG; a failure prints the seed and the offending bytes, and
 * `MISSIVE_FUZZ_SEED=<n> npx vitest run packages/node/test/bad-input.test.ts` replays it.
 */
import { encode } from '@msgpack/msgpack';
import {
  BodyCodec,
  decodeBatch,
  encodeBatch,
  frame,
  FrameTooLargeError,
  Kind,
  PROTOCOL_VERSION,
} from '@missive/core/internal';
import { connect as tcpConnect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, createRelay, ProtocolError, type Peer, type Relay } from '../src/index.js';
import { helloFrame, hex, inWaves, RawClient, Rng } from './fixtures/raw-client.js';

const SEED = Number(process.env['MISSIVE_FUZZ_SEED'] ?? 0x72656c61);
const MAX_FRAME = 16 * 1024;
const HANDSHAKE_TIMEOUT = 800;
/** The relay's ws `maxPayload` (relay.ts): a batch of 64 KiB plus one frame of up to MAX_FRAME. */
const WS_MAX_PAYLOAD = MAX_FRAME + 64 * 1024 + 1024;

interface Pair {
  relay: Relay;
  alice: Peer;
  bob: Peer;
  /** What alice has seen published on `chat`, and who waits for it. */
  chat: { seen: unknown[]; waiters: Map<number, () => void> };
}

let main: Pair;
const extraRelays: Relay[] = [];
const raws = new Set<RawClient>();

/** A raw client that is terminated after each test if still open. */
function raw(url = main.relay.url): RawClient {
  const c = new RawClient(url);
  raws.add(c);
  void c.closed.then(() => raws.delete(c));
  return c;
}

async function talkingPair(relay: Relay): Promise<Pair> {
  const alice = await connect(relay.url, { name: 'alice' });
  const bob = await connect(relay.url, { name: 'bob' });
  bob.handle('echo', (body) => body);
  bob.mailbox();
  const chat: Pair['chat'] = { seen: [], waiters: new Map() };
  await alice.subscribe<number>('chat', (n) => {
    chat.seen.push(n);
    chat.waiters.get(n)?.();
  }).ready;
  return { relay, alice, bob, chat };
}

async function closePair(p: Pair | undefined): Promise<void> {
  if (!p) return;
  await Promise.all([p.alice.close(), p.bob.close()]);
  await p.relay.close();
}

beforeAll(async () => {
  const relay = await createRelay({ port: 0, limits: { maxFrameBytes: MAX_FRAME, handshakeTimeout: HANDSHAKE_TIMEOUT } });
  main = await talkingPair(relay);
});
afterEach(async () => {
  for (const c of raws) c.terminate();
  raws.clear();
  await Promise.all(extraRelays.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await closePair(main);
});

let round = 0;
/** One request/reply, one durable send/receive and one publish between alice and bob. */
async function talkOnce(p: Pair): Promise<void> {
  const n = ++round;
  await expect(p.alice.request('bob/echo', { n }, { timeout: 5000 })).resolves.toEqual({ n });
  const id = await p.alice.send('bob', { n });
  await expect(p.bob.receive({ timeout: 5000 })).resolves.toMatchObject({ id, from: 'alice', body: { n } });
  const seen = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`publish ${n} not seen within 5 s`)), 5000);
    p.chat.waiters.set(n, () => {
      clearTimeout(timer);
      p.chat.waiters.delete(n);
      resolve();
    });
  });
  p.bob.publish('chat', n);
  await seen;
}

/** GET /healthz in a loop until stopped; every answer's status (0 for a failed fetch). */
function pollHealth(port: number): { stop(): Promise<number[]> } {
  const statuses: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3000) });
        await res.text();
        statuses.push(res.status);
      } catch {
        statuses.push(0);
      }
      // Pace the poll so it does not become a load test of its own.
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return statuses;
    },
  };
}

/**
 * Runs `barrage` while /healthz is polled and the pair talks in a loop; then asserts every health
 * check answered 200, the pair completed rounds without an error, and still talks afterwards.
 */
async function throughout<T>(barrage: () => Promise<T>, p: Pair = main): Promise<T> {
  const health = pollHealth(p.relay.port);
  const errors: unknown[] = [];
  let rounds = 0;
  let stopped = false;
  const talk = (async () => {
    while (!stopped) {
      try {
        await talkOnce(p);
        rounds++;
      } catch (err) {
        errors.push(err);
        return;
      }
    }
  })();
  let result: T;
  try {
    result = await barrage();
  } finally {
    stopped = true;
    await talk;
  }
  const statuses = await health.stop();
  expect(errors).toEqual([]);
  expect(rounds).toBeGreaterThan(0);
  expect(statuses.length).toBeGreaterThan(0);
  expect(statuses.filter((s) => s !== 200)).toEqual([]);
  expect(p.relay.server.listening).toBe(true);
  await talkOnce(p);
  return result;
}

const le32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
/** The msgpack encoding of a value (a Uint8Array too: as msgpack bin, not as a raw body). */
const msgpackEncode = (value: unknown): Uint8Array => encode(value);
const SKIP = Symbol('skip');
const BREACH = Symbol('breach');

/**
 * What the relay must do with `input` sent as the first message of a connection: 1009 if the
 * first problem is a frame over the limit, 1002 for any other breach (a malformed frame, or a
 * well-formed one that is not HELLO), SKIP for the rare input that is a valid HELLO.
 */
function expectedClose(input: Uint8Array): 1002 | 1009 | typeof SKIP {
  try {
    decodeBatch(input, MAX_FRAME, (f) => {
      throw f.kind === Kind.Hello && f.version === PROTOCOL_VERSION ? SKIP : BREACH;
    });
    return 1002; // unreachable: an empty message throws, a non-empty one has a first frame
  } catch (err) {
    if (err === SKIP) return SKIP;
    return err instanceof FrameTooLargeError ? 1009 : 1002;
  }
}

const KINDS = Object.values(Kind);

function randomInput(rng: Rng): Uint8Array {
  switch (rng.int(4)) {
    case 0: // noise of any length, the empty message included
      return rng.bytes(rng.int(80));
    case 1: {
      // one unit with a true length around noise
      const f = rng.bytes(1 + rng.int(300));
      return concat(le32(f.length), f);
    }
    case 2: {
      // a known kind and valid-looking flags, then noise for the header fields and body
      const f = concat(Uint8Array.of(rng.pick(KINDS), rng.int(4)), rng.bytes(rng.int(120)));
      return concat(le32(f.length), f);
    }
    default: {
      // several units, one of them lying about its length
      const parts: Uint8Array[] = [];
      const n = 1 + rng.int(4);
      for (let i = 0; i < n; i++) {
        const f = concat(Uint8Array.of(rng.pick(KINDS), 0), rng.bytes(rng.int(40)));
        const lie = rng.int(4) === 0 ? rng.int(2) === 0 ? rng.int(0x1_0000_0000) : f.length + 1 + rng.int(8) : f.length;
        parts.push(le32(lie), f);
      }
      return concat(...parts);
    }
  }
}

/** Opens a connection, sends `input` as its first message, and checks the relay's answer. */
async function expectRefused(input: Uint8Array, url?: string): Promise<string | undefined> {
  const want = expectedClose(input);
  if (want === SKIP) return undefined;
  const c = raw(url);
  await c.opened;
  c.send(input);
  const closed = await c.closed;
  const wantBye = want === 1009 ? 'LIMIT' : 'PROTOCOL';
  if (closed.code !== want || c.bye?.code !== wantBye || !closed.reason.startsWith(`${wantBye}:`)) {
    return `input ${hex(input)}: want ${want}/${wantBye}, got ${closed.code} "${closed.reason}" BYE ${c.bye?.code ?? 'none'}`;
  }
  return undefined;
}

describe('Bad input over real sockets', () => {
  it('closes every connection that sends random bytes with PROTOCOL (1002) or LIMIT (1009), alone', async () => {
    const rng = new Rng(SEED);
    const inputs = Array.from({ length: 600 }, () => randomInput(rng));
    const skipped = inputs.filter((i) => expectedClose(i) === SKIP).length;
    const failures = await throughout(() => inWaves(inputs, 150, (input) => expectRefused(input)));
    expect(failures.filter(Boolean), `seed ${SEED}`).toEqual([]);
    expect(skipped).toBeLessThan(inputs.length / 100);
    // Both kinds of refusal were exercised.
    expect(inputs.some((i) => expectedClose(i) === 1009)).toBe(true);
    expect(inputs.some((i) => expectedClose(i) === 1002)).toBe(true);
  });

  it('closes a connection whose HELLO or first batch is cut short with PROTOCOL (1002)', async () => {
    const batch = encodeBatch([helloFrame('cut', 'ns'), frame(Kind.Sub, { ref: 1, pattern: 'a.b' })]);
    const cuts: Uint8Array[] = [];
    for (let at = 1; at < batch.length; at++) {
      cuts.push(batch.slice(0, at)); // the length prefix now overstates what follows
      if (at > 4) {
        // ...and the same cut with the length fixed up, so the frame's own fields run out
        const fixed = batch.slice(0, at);
        new DataView(fixed.buffer).setUint32(0, Math.min(at - 4, new DataView(batch.buffer).getUint32(0, true)), true);
        cuts.push(fixed);
      }
    }
    const failures = await throughout(() => inWaves(cuts, 100, (input) => expectRefused(input)));
    expect(failures.filter(Boolean)).toEqual([]);
  });

  it('closes an open connection whose frame is cut short after the handshake, leaving others alone', async () => {
    const pub = encodeBatch([frame(Kind.Pub, { topic: 'room.x', from: '' }, msgpackEncode({ text: 'hello there' }), BodyCodec.Msgpack)]);
    const cuts = Array.from({ length: pub.length - 1 }, (_, i) => pub.slice(0, i + 1));
    const results = await throughout(() =>
      inWaves(cuts, 50, async (cut, i) => {
        const c = raw();
        await c.hello(`cut-${i}`);
        c.send(cut);
        const closed = await c.closed;
        return { closed, bye: c.bye };
      }),
    );
    for (const { closed, bye } of results) {
      expect(closed.code).toBe(1002);
      expect(bye).toMatchObject({ code: 'PROTOCOL' });
    }
  });

  it('closes a connection that sends msgpack instead of frames, or frames of the wrong shape, with PROTOCOL', async () => {
    const wrongShapes: Uint8Array[] = [
      msgpackEncode({ kind: 'HELLO', version: 1, name: 'x' }),
      msgpackEncode([1, 1, 'x', '', '', '']),
      msgpackEncode(null),
      msgpackEncode('HELLO'),
      msgpackEncode(123456789),
      msgpackEncode({ length: 4, frame: new Uint8Array([1, 0, 1, 0]) }),
      // A HELLO carrying its fields as a msgpack body, and one with a body on top of valid fields.
      encodeBatch([frame(Kind.Hello, { version: PROTOCOL_VERSION, name: '', namespace: '', secret: '', token: '', session: '' }, msgpackEncode({ name: 'x' }), BodyCodec.Msgpack)]),
      concat(le32(2 + msgpackEncode({ name: 'x' }).length), Uint8Array.of(Kind.Hello, BodyCodec.Msgpack), msgpackEncode({ name: 'x' })),
    ];
    const failures = await throughout(async () => {
      const out = await Promise.all(wrongShapes.map((input) => expectRefused(input)));
      // After the handshake: control frames with bodies, relay-only kinds, msgpack as a batch.
      const afterHello: Uint8Array[] = [
        encodeBatch([frame(Kind.Sub, { ref: 1, pattern: 'a' }, msgpackEncode(['a']), BodyCodec.Msgpack)]),
        encodeBatch([frame(Kind.Welcome, { id: '~x', name: 'x', namespace: '', maxFrame: 1 })]),
        encodeBatch([frame(Kind.Ok, { ref: 1 }, msgpackEncode({ ok: true }), BodyCodec.Msgpack)]),
        msgpackEncode({ kind: 'PUB', topic: 'a', body: 'x' }),
      ];
      for (const [i, input] of afterHello.entries()) {
        const c = raw();
        await c.hello(`shape-${i}`);
        c.send(input);
        const closed = await c.closed;
        // The same rules as before the handshake, except that a HELLO is now a breach as well.
        const want = expectedClose(input) === 1009 ? 1009 : 1002;
        const wantBye = want === 1009 ? 'LIMIT' : 'PROTOCOL';
        if (closed.code !== want || c.bye?.code !== wantBye) out.push(`after hello ${hex(input)}: got ${closed.code} ${closed.reason}`);
      }
      return out;
    });
    expect(failures.filter(Boolean)).toEqual([]);
  });

  it('forwards frames with junk bodies untouched; the receiving peer reports PROTOCOL errors and keeps working', async () => {
    const { bob } = main;
    const errors: Error[] = [];
    const offError = bob.on('error', (e) => errors.push(e));
    const odd: unknown[] = [];
    const junkSub = bob.subscribe('junk.>', () => odd.push('junk delivered'));
    const oddSub = bob.subscribe('odd.>', (body) => odd.push(body));
    await Promise.all([junkSub.ready, oddSub.ready, bob.join('junkies')]);
    const junkBox = bob.mailbox('junk');
    try {
      const evil = raw();
      await evil.hello('evil');
      const value = msgpackEncode({ text: 'hello', list: [1, 2, 3], nested: { a: 'b' } });
      const junk: { flags: number; body: Uint8Array }[] = [
        // truncated msgpack: every strict prefix of a map is incomplete
        ...[1, 2, 5, 9, value.length - 1].map((n) => ({ flags: BodyCodec.Msgpack, body: value.slice(0, n) })),
        { flags: BodyCodec.Msgpack, body: Uint8Array.of(0xc1) }, // a byte msgpack never uses
        { flags: BodyCodec.Msgpack, body: Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61) }, // str32 claiming 4 GiB
        { flags: BodyCodec.Msgpack, body: Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff) }, // array32 claiming 4G items
        { flags: BodyCodec.Msgpack, body: Uint8Array.of(0x81, 0x91, 0x01, 0x02) }, // a map keyed by an array
        { flags: BodyCodec.Msgpack, body: Uint8Array.of(0xd5, 0xff, 0x01, 0x02) }, // a timestamp of a bad size
        { flags: BodyCodec.Msgpack, body: Uint8Array.of(0x01, 0x02) }, // trailing bytes
        { flags: BodyCodec.Json, body: Uint8Array.of(0x7b, 0x22, 0x61) }, // truncated JSON
        { flags: BodyCodec.Json, body: Uint8Array.of(0x22, 0xff, 0xfe, 0x22) }, // invalid UTF-8
      ];
      let ref = 1;
      for (const [i, { flags, body }] of junk.entries()) {
        evil.send([
          frame(Kind.Pub, { topic: 'junk.x', from: '' }, body, flags),
          frame(Kind.Msg, { ref: ref++, to: 'bob/junk', from: '', origin: `evil-${i}`, seq: 1, base: 1, sentAt: Date.now() }, body, flags),
          frame(Kind.Bcast, { ref: 0, to: 'junkies/junk', from: '' }, body, flags),
          frame(Kind.Req, { to: 'bob/echo', from: '', id: i + 1, timeout: 5000 }, body, flags),
        ]);
      }
      // Each junk MSG is settled (ACK NO_ROUTE) so the sender's stream does not stall; each junk
      // REQ is answered REMOTE:BAD_BODY.
      for (let i = 0; i < junk.length; i++) {
        await expect(evil.next(Kind.Ack, (a) => a.origin === `evil-${i}`)).resolves.toMatchObject({ status: 3, from: 'bob' });
        await expect(evil.next(Kind.Rep, (r) => r.id === i + 1)).resolves.toMatchObject({ code: 'REMOTE:BAD_BODY' });
      }
      await expect.poll(() => errors.length).toBe(junk.length * 3);
      for (const e of errors) {
        expect(e).toBeInstanceOf(ProtocolError);
        expect(e).toMatchObject({ code: 'PROTOCOL' });
      }

      // A junk reply rejects the request it answers with PROTOCOL.
      const asked = bob.request('evil/answer', { q: 1 }, { timeout: 5000 });
      const req = await evil.next(Kind.Req);
      evil.send([frame(Kind.Rep, { to: req.from, from: '', id: req.id, code: '', message: '' }, value.slice(0, 3), BodyCodec.Msgpack)]);
      await expect(asked).rejects.toMatchObject({ code: 'PROTOCOL' });

      // Valid msgpack of unusual shapes is delivered as decoded, in order.
      const deep = new Uint8Array(5001).fill(0x91);
      deep[5000] = 0xc0;
      for (const body of [msgpackEncode(null), Uint8Array.of(0xd4, 0x05, 0x01), deep, msgpackEncode(new Uint8Array([1, 2, 3]))]) {
        evil.send([frame(Kind.Pub, { topic: 'odd.x', from: '' }, body, BodyCodec.Msgpack)]);
      }
      await expect.poll(() => odd.length).toBe(4);
      expect(odd[0]).toBeNull();
      expect(odd[1]).toMatchObject({ type: 5 });
      expect([...(odd[1] as { data: Uint8Array }).data]).toEqual([1]);
      let depth = 0;
      for (let v = odd[2]; Array.isArray(v); v = v[0]) depth++;
      expect(depth).toBe(5000);
      expect(odd[3]).toBeInstanceOf(Uint8Array);
      expect([...(odd[3] as Uint8Array)]).toEqual([1, 2, 3]);

      // None of this reached a mailbox or a handler, and nobody was disconnected.
      expect(junkBox.stats().received).toBe(0);
      expect(evil.ws.readyState).toBe(evil.ws.OPEN);
      expect(bob.connected).toBe(true);
      await throughout(async () => {
        evil.send([frame(Kind.Pub, { topic: 'junk.y', from: '' }, Uint8Array.of(0xc1), BodyCodec.Msgpack)]);
        await expect.poll(() => errors.length).toBe(junk.length * 3 + 1);
      });
    } finally {
      offError();
      junkSub.unsubscribe();
      oddSub.unsubscribe();
      await bob.leave('junkies');
    }
  });

  it('closes a connection that sends a text message with 1003, before and after the handshake', async () => {
    await throughout(async () => {
      const before = raw();
      await before.opened;
      before.ws.send('{"kind":"HELLO"}');
      const after = raw();
      await after.hello('texter');
      after.ws.send('hello');
      // Many at once, too.
      const many = Array.from({ length: 100 }, () => raw());
      await Promise.all(many.map((c) => c.opened));
      for (const c of many) c.ws.send('x'.repeat(1000));
      const closes = await Promise.all([before, after, ...many].map((c) => c.closed));
      expect(closes.map((c) => c.code)).toEqual(new Array(102).fill(1003));
    });
  });

  it('closes a connection that sends a frame over maxFrameBytes with 1009 and BYE LIMIT', async () => {
    const { relay } = main;
    await throughout(async () => {
      // The length alone is over the limit (the frame itself never arrives).
      const lying = raw();
      await lying.opened;
      lying.send(concat(le32(MAX_FRAME + 1), Uint8Array.of(Kind.Ping, 0, 1)));
      // A whole frame over the limit, after the handshake.
      const big = raw();
      await big.hello('big');
      big.send([frame(Kind.Pub, { topic: 'chat', from: '' }, new Uint8Array(MAX_FRAME), BodyCodec.Raw)]);
      // A real peer publishing a body over the limit is cut off the same way.
      const peer = await connect(relay.url, { name: 'oversharer' });
      const peerClosed = new Promise<{ code: number; reason: string }>((resolve) => peer.on('close', resolve));
      peer.publish('chat', new Uint8Array(MAX_FRAME + 1));
      // And fifty at once.
      const many = Array.from({ length: 50 }, () => raw());
      await Promise.all(many.map((c) => c.opened));
      for (const c of many) c.send(concat(le32(0xffffffff), new Uint8Array(16)));

      for (const c of [lying, big, ...many]) {
        expect(await c.closed).toMatchObject({ code: 1009, reason: expect.stringMatching(/^LIMIT: frame of \d+ bytes exceeds the 16384-byte limit/) });
        expect(c.bye).toMatchObject({ code: 'LIMIT' });
      }
      expect(await peerClosed).toMatchObject({ code: 1009, reason: expect.stringMatching(/^LIMIT/) });
      // The oversized publish was not forwarded: alice saw only the numbered chat rounds.
      expect(main.chat.seen.every((n) => typeof n === 'number')).toBe(true);
    });
  });

  it('closes a connection whose message is over the WebSocket payload limit with 1009', async () => {
    await throughout(async () => {
      const before = raw();
      await before.opened;
      before.send(new Uint8Array(WS_MAX_PAYLOAD + 1));
      const after = raw();
      await after.hello('huge');
      after.send(new Rng(SEED).bytes(WS_MAX_PAYLOAD + 4096));
      expect((await before.closed).code).toBe(1009);
      expect((await after.closed).code).toBe(1009);
    });
  });

  it('welcomes hundreds of simultaneous handshakes, then forgets them when they go', async () => {
    const { relay } = main;
    const n = 400;
    await throughout(async () => {
      const clients = Array.from({ length: n }, () => raw());
      const welcomes = await Promise.all(clients.map((c, i) => c.opened.then(() => c.hello(i % 2 ? `flood-${i}` : '', i % 3 ? '' : 'flood'))));
      welcomes.forEach((w, i) => expect(w).toMatchObject({ name: i % 2 ? `flood-${i}` : '', namespace: i % 3 ? 'default' : 'flood' }));
      expect(new Set(welcomes.map((w) => w.id)).size).toBe(n);
      expect(relay.router.connectionCount).toBeGreaterThanOrEqual(n + 2);
      for (const c of clients) c.ws.close();
      await Promise.all(clients.map((c) => c.closed));
      await expect.poll(() => relay.router.connectionCount).toBe(2);
      expect([...relay.router.namespaces().keys()]).toEqual(['default']);
    });
  });

  it('gives a flood of claims on one name to exactly one connection and NAME_TAKEN (4002) to the rest', async () => {
    const n = 300;
    await throughout(async () => {
      const clients = Array.from({ length: n }, () => raw());
      const results = await Promise.allSettled(clients.map((c) => c.opened.then(() => c.hello('dup'))));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const losers = clients.filter((_, i) => results[i]!.status === 'rejected');
      for (const c of losers) {
        expect((await c.closed).code).toBe(4002);
        expect(c.bye).toMatchObject({ code: 'NAME_TAKEN' });
      }
    });
  });

  it('closes connections that send hundreds of HELLOs with PROTOCOL', async () => {
    await throughout(async () => {
      // Hundreds in one batch,
      const batched = Array.from({ length: 20 }, () => raw());
      await Promise.all(batched.map((c) => c.opened));
      for (const [i, c] of batched.entries()) c.send(encodeBatch(Array.from({ length: 500 }, (_, j) => helloFrame(`h${i}-${j}`))));
      // and hundreds in separate messages, without waiting for WELCOME.
      const streamed = Array.from({ length: 20 }, () => raw());
      await Promise.all(streamed.map((c) => c.opened));
      for (const [i, c] of streamed.entries()) for (let j = 0; j < 300; j++) c.send([helloFrame(`s${i}`)]);
      for (const c of [...batched, ...streamed]) {
        expect(await c.closed).toMatchObject({ code: 1002, reason: expect.stringMatching(/^PROTOCOL: (HELLO before WELCOME|second HELLO)/) });
      }
      // The first HELLO of each was welcomed, the next closed it, and its name went with it.
      expect(batched.every((c) => c.frames[0]?.kind === Kind.Welcome)).toBe(true);
      const names = (await main.alice.peers()).map((p) => p.name);
      expect(names.filter((n) => /^[hs]\d/.test(n))).toEqual([]);
    });
  });

  it('refuses connections beyond maxConnections with LIMIT (4003) and takes new ones once room is made', async () => {
    const relay = await createRelay({ port: 0, limits: { maxConnections: 52 } });
    const pair = await talkingPair(relay);
    try {
      await throughout(async () => {
        const admitted = Array.from({ length: 50 }, () => raw(relay.url));
        await Promise.all(admitted.map((c) => c.opened.then(() => c.hello())));
        const refused = Array.from({ length: 150 }, () => raw(relay.url));
        for (const c of refused) {
          expect((await c.closed).code).toBe(4003);
          expect(c.bye).toMatchObject({ code: 'LIMIT' });
        }
        for (const c of admitted) c.ws.close();
        await Promise.all(admitted.map((c) => c.closed));
        await expect.poll(() => relay.router.connectionCount).toBe(2);
        const late = raw(relay.url);
        await expect(late.hello('late')).resolves.toMatchObject({ name: 'late' });
      }, pair);
    } finally {
      await closePair(pair);
    }
  });

  it('closes connections that never finish the handshake after handshakeTimeout with TIMEOUT (4005)', async () => {
    await throughout(async () => {
      const silent = Array.from({ length: 100 }, () => raw());
      await Promise.all(silent.map((c) => c.opened));
      const openedAt = performance.now();
      for (const c of silent) {
        expect(await c.closed).toMatchObject({ code: 4005, reason: expect.stringMatching(/^TIMEOUT/) });
        expect(c.bye).toMatchObject({ code: 'TIMEOUT' });
      }
      const elapsed = performance.now() - openedAt;
      expect(elapsed).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT - 100);
      expect(elapsed).toBeLessThan(HANDSHAKE_TIMEOUT + 3000);
    });
  });

  it('closes connections whose auth never answers after handshakeTimeout with TIMEOUT (4005)', async () => {
    const relay = await createRelay({
      port: 0,
      limits: { handshakeTimeout: HANDSHAKE_TIMEOUT },
      auth: { custom: (req) => (req.name.startsWith('stuck') ? new Promise<never>(() => {}) : { name: req.name }) },
    });
    const pair = await talkingPair(relay);
    try {
      await throughout(async () => {
        const stuck = Array.from({ length: 50 }, () => raw(relay.url));
        await Promise.all(stuck.map((c, i) => c.opened.then(() => c.send([helloFrame(`stuck-${i}`)]))));
        for (const c of stuck) {
          expect((await c.closed).code).toBe(4005);
          expect(c.bye).toMatchObject({ code: 'TIMEOUT' });
        }
        await expect(connect(relay.url, { name: 'stuck-again', connectTimeout: 5000 })).rejects.toMatchObject({ code: 'TIMEOUT' });
      }, pair);
    } finally {
      await closePair(pair);
    }
  });

  it('closes TCP connections that never finish the WebSocket upgrade', async () => {
    const { relay } = main;
    await throughout(async () => {
      const sockets = Array.from({ length: 20 }, (_, i) => {
        const s = tcpConnect(relay.port, '127.0.0.1');
        s.on('error', () => {});
        s.resume(); // read, so the relay's answer and its end of the connection are seen
        s.on('connect', () => {
          // Half the connections say nothing; the others stop halfway through their upgrade.
          if (i % 2) s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
        });
        return s;
      });
      const deadline = HANDSHAKE_TIMEOUT + 3000;
      let timer: NodeJS.Timeout | undefined;
      const giveUp = new Promise<'still open'>((resolve) => (timer = setTimeout(() => resolve('still open'), deadline)));
      try {
        const outcomes = await Promise.all(sockets.map((s) => Promise.race([new Promise<'closed'>((resolve) => s.once('close', () => resolve('closed'))), giveUp])));
        expect(outcomes).toEqual(new Array(sockets.length).fill('closed'));
      } finally {
        clearTimeout(timer);
        for (const s of sockets) s.destroy();
      }
    });
  });
});
