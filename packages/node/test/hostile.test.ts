/**
 * Hostile and careless peers over real sockets: each test is one hole a peer could use to break
 * the relay's memory bound or the exactly-once promise of `send` (see docs/relay.md, "Limits",
 * and docs/guarantees.md). Raw clients (fixtures/raw-client.ts) send exact frames; memory is
 * measured in a relay process of its own (fixtures/relay-process.ts) after a full GC.
 */
import { encode } from '@msgpack/msgpack';
import { AckStatus, BodyCodec, encodeBatch, frame, Kind, type Frame } from '@missive/core/internal';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, createRelay, HELD_OVERHEAD, LimitError, type Peer, type Relay, type RelayOptions } from '../src/index.js';
import { Child, killChildren } from './fixtures/child.js';
import { parseExposition, sample } from './fixtures/prometheus.js';
import { RawClient, Rng } from './fixtures/raw-client.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const relays: Relay[] = [];
const peers: Peer[] = [];
const raws: RawClient[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const c of raws.splice(0)) c.terminate();
  await Promise.all(peers.splice(0).map((p) => p.close().catch(() => {})));
  await Promise.all(relays.splice(0).map((r) => r.close(1000)));
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});
afterAll(killChildren);

async function relay(options: RelayOptions = {}): Promise<Relay> {
  const r = await createRelay({ port: 0, ...options });
  relays.push(r);
  return r;
}
async function peer(url: string, options: Parameters<typeof connect>[1]): Promise<Peer> {
  const p = await connect(url, options);
  peers.push(p);
  return p;
}
function raw(url: string): RawClient {
  const c = new RawClient(url);
  raws.push(c);
  return c;
}

/** Resolves with the relay's `disconnect` event for the peer named `name`. */
function disconnected(r: Relay, name: string): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    const off = r.router.on('disconnect', (e) => {
      if (e.name !== name) return;
      off();
      resolve(e);
    });
  });
}

/** Samples `fn` on every event-loop turn that a timer allows, until stopped; keeps the maximum. */
function maxOf(fn: () => number | undefined): { readonly max: number; stop(): number } {
  let max = 0;
  const timer = setInterval(() => {
    max = Math.max(max, fn() ?? 0);
  }, 5);
  return {
    get max() {
      return max;
    },
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}

describe('hostile peers - every byte queued for a connection counts against its cap', () => {
  const CAP = 256 * KiB;
  const SLOW = 1000;
  /** The cap, plus at most one frame written past it and the batch it was in. */
  const BOUND = CAP + 64 * KiB + 64 * KiB;

  it('drops replies to a requester that stopped reading and cuts it as a slow consumer (4004)', async () => {
    const r = await relay({ limits: { maxBufferedBytes: CAP, slowConsumerTimeout: SLOW } });
    const bob = await peer(r.url, { name: 'bob' });
    bob.handle('echo', (body) => body);
    const mallory = raw(r.url);
    const welcome = await mallory.hello('mallory');
    mallory.ws.pause();
    const gone = disconnected(r, 'mallory');
    const buffered = maxOf(() => r.router.bufferedAmount(welcome.id));
    // 1600 requests of 32 KiB: 50 MiB of replies for a socket that reads nothing (more than
    // the kernel's socket buffers on loopback take, so the rest waits in the relay).
    const body = encode(new Uint8Array(32 * KiB));
    for (let i = 0; i < 1600; i += 20) {
      mallory.send(Array.from({ length: 20 }, (_, j) => frame(Kind.Req, { to: 'bob/echo', from: '', id: i + j + 1, timeout: 60_000 }, body, BodyCodec.Msgpack)));
    }
    const closed = await gone;
    expect(closed).toMatchObject({ code: 4004, reason: expect.stringMatching(/^LIMIT: slow consumer/) });
    expect(buffered.stop()).toBeLessThanOrEqual(BOUND);
    const m = r.router.metrics();
    expect(m.drops.SLOW_CONSUMER).toBeGreaterThan(0);
    expect(m.slowConsumerDisconnects).toBe(1);
    // Bob was not hurt: he still answers others.
    const alice = await peer(r.url, { name: 'alice' });
    await expect(alice.request('bob/echo', 'still here', { timeout: 2000 })).resolves.toBe('still here');
  });

  for (const [what, kind, N, make] of [
    // A million small frames (7–12 bytes each), each asking for an answer.
    ['PINGs', 'Ping', 1_000_000, (i: number): Frame => frame(Kind.Ping, { nonce: i })],
    ['SUB requests', 'Sub', 300_000, (i: number): Frame => frame(Kind.Sub, { ref: i + 1, pattern: `t.${i}` })],
    // With 300 named peers in the namespace, each PEERS answer is ~8 KiB: 160 MiB asked for.
    ['PEERS requests', 'Peers', 20_000, (i: number): Frame => frame(Kind.Peers, { ref: i + 1 })],
  ] as const) {
    it(`bounds what it buffers for a client flooding ${what} without reading the answers`, async () => {
      const r = await relay({ limits: { maxBufferedBytes: CAP, slowConsumerTimeout: SLOW } });
      if (kind === 'Peers') {
        const named = Array.from({ length: 300 }, () => raw(r.url));
        await Promise.all(named.map((c, i) => c.hello(`peer-with-a-longish-name-${i}`)));
      }
      const flooder = raw(r.url);
      const welcome = await flooder.hello('flooder');
      flooder.ws.pause();
      const buffered = maxOf(() => r.router.bufferedAmount(welcome.id));
      for (let i = 0; i < N; i += 5000) flooder.send(Array.from({ length: 5000 }, (_, j) => make(i + j)));
      await expect.poll(() => r.router.metrics().framesIn[kind], { timeout: 30_000 }).toBe(N);
      expect(buffered.stop()).toBeLessThanOrEqual(BOUND);
      // Over the rate (a burst of 200,000) they were refused; what was answered and not read
      // stopped at the cap.
      const drops = r.router.metrics().drops;
      expect((drops.RATE ?? 0) + (drops.SLOW_CONSUMER ?? 0)).toBeGreaterThan(N / 2);
    }, 45_000);
  }
});

describe('hostile peers - every frame kind a client sends falls under the rate limit', () => {
  const RATE = 10;
  /** One frame of each kind a client may send after its handshake, aimed at peer `target`. */
  const kinds: [string, (i: number) => Frame][] = [
    ['PING', (i) => frame(Kind.Ping, { nonce: i })],
    ['MSG', (i) => frame(Kind.Msg, { ref: i + 1, to: 'target', from: '', origin: 'o', seq: i + 1, base: 1, sentAt: 0 }, encode(i), BodyCodec.Msgpack)],
    ['ACK', (i) => frame(Kind.Ack, { to: 'target', from: '', dest: 'flooder', origin: 'o', seq: i + 1, status: AckStatus.Ok })],
    ['REQ', (i) => frame(Kind.Req, { to: 'target/echo', from: '', id: i + 1, timeout: 10_000 }, encode(i), BodyCodec.Msgpack)],
    ['REP', (i) => frame(Kind.Rep, { to: 'target', from: '', id: i + 1, code: '', message: '' }, encode(i), BodyCodec.Msgpack)],
    ['PUB', (i) => frame(Kind.Pub, { topic: 'news', from: '' }, encode(i), BodyCodec.Msgpack)],
    ['BCAST', (i) => frame(Kind.Bcast, { ref: 0, to: 'crew', from: '' }, encode(i), BodyCodec.Msgpack)],
    ['SUB', (i) => frame(Kind.Sub, { ref: i + 1, pattern: `t.${i}` })],
    ['UNSUB', (i) => frame(Kind.Unsub, { ref: i + 1, pattern: `t.${i}` })],
    ['JOIN', (i) => frame(Kind.Join, { ref: i + 1, group: `g${i}` })],
    ['LEAVE', (i) => frame(Kind.Leave, { ref: i + 1, group: `g${i}` })],
    ['PEERS', (i) => frame(Kind.Peers, { ref: i + 1 })],
    ['WATCH', (i) => frame(Kind.Watch, { ref: i + 1, on: i % 2 })],
    ['TOPEN', (i) => frame(Kind.TOpen, { to: 'target/file', from: '', tid: i + 1, window: 1024 })],
    ['TDATA', (i) => frame(Kind.TData, { to: 'target', from: '', tid: i + 1, dir: 0, eom: 1 }, encode(i), BodyCodec.Msgpack)],
    ['TCREDIT', (i) => frame(Kind.TCredit, { to: 'target', from: '', tid: i + 1, dir: 0, bytes: 10 })],
    ['TEND', (i) => frame(Kind.TEnd, { to: 'target', from: '', tid: i + 1, dir: 0 })],
    ['TCLOSE', (i) => frame(Kind.TClose, { to: 'target', from: '', tid: i + 1, dir: 0, code: 'NORMAL', message: '' })],
    ['TACCEPT', (i) => frame(Kind.TAccept, { to: 'target', from: '', tid: i + 1, window: 10 })],
  ];

  it.each(kinds)('counts %s frames against the rate and refuses those over it', async (_name, make) => {
    const r = await relay({ limits: { rateLimit: RATE } });
    const target = await peer(r.url, { name: 'target' });
    target.handle('echo', (b) => b);
    target.onTunnel('file', () => {});
    const flooder = raw(r.url);
    await flooder.hello('flooder');
    // 100 in one message: the bucket holds 2 × RATE, so at least 80 are over the rate.
    flooder.send(Array.from({ length: 100 }, (_, i) => make(i)));
    await expect.poll(() => r.router.metrics().drops.RATE ?? 0).toBeGreaterThanOrEqual(80);
    // The flooder is still connected (over the rate is not a protocol breach), and the relay
    // still serves others.
    expect(r.router.connections().map((c) => c.name).sort()).toEqual(['flooder', 'target']);
  });

  it('answers a PEERS over the rate with LIMIT, so the caller learns why', async () => {
    const r = await relay({ limits: { rateLimit: 1 } });
    const p = await peer(r.url, { name: 'p' });
    const results = await Promise.allSettled([p.peers(), p.peers(), p.peers()]);
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(LimitError);
  });
});

describe('hostile peers - acks are bound to the destination they name', () => {
  it('ignores a third peer acking messages it never received: they are still delivered, once, in order', async () => {
    const r = await relay();
    // Bob's mailbox holds one message: the rest wait in alice's outbox, refused and retried.
    const bob = await peer(r.url, { name: 'bob', mailboxCapacity: 1 });
    const alice = await peer(r.url, { name: 'alice' });
    const delivered: string[] = [];
    alice.on('delivered', ({ id }) => delivered.push(id));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => bob.mailbox().size).toBe(1);
    // Message ids are `origin:seq:dest`: mallory learned alice's origin and forges acks.
    const origin = ids[0]!.split(':')[0]!;
    const mallory = raw(r.url);
    await mallory.hello('mallory');
    mallory.send(ids.map((_, i) => frame(Kind.Ack, { to: 'alice', from: '', dest: 'bob', origin, seq: i + 1, status: AckStatus.Ok })));
    // Claiming to be bob by id does not help either.
    const bobId = r.router.connections().find((c) => c.name === 'bob')!.id;
    mallory.send(ids.map((_, i) => frame(Kind.Ack, { to: 'alice', from: '', dest: bobId, origin, seq: i + 1, status: AckStatus.Ok })));
    await expect.poll(() => r.router.metrics().drops.NOT_DESTINATION).toBe(10);
    expect(alice.outboxSize).toBe(4);
    // Bob reads everything: each message once, in order, and `delivered` once each.
    const got: unknown[] = [];
    for (let i = 0; i < 5; i++) got.push((await bob.receive({ timeout: 5000 })).body);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    await expect.poll(() => delivered.length).toBe(5);
    expect(delivered).toEqual(ids);
    expect(alice.outboxSize).toBe(0);
  });
});

describe('hostile peers - subscription state is bounded', () => {
  it('refuses subscriptions past maxSubscriptions and patterns past maxPatternTokens with LIMIT', async () => {
    const r = await relay({ limits: { maxSubscriptions: 50, maxPatternTokens: 4 } });
    const p = await peer(r.url, { name: 'p' });
    const subs = Array.from({ length: 50 }, (_, i) => p.subscribe(`room.${i}`, () => {}));
    await Promise.all(subs.map((x) => x.ready));
    await expect(p.subscribe('room.extra', () => {}).ready).rejects.toMatchObject({ code: 'LIMIT', message: 'at most 50 subscriptions per connection' });
    // Unsubscribing makes room again.
    subs[0]!.unsubscribe();
    await expect(p.subscribe('room.extra', () => {}).ready).resolves.toBeUndefined();
    const q = await peer(r.url, { name: 'q' });
    await expect(q.subscribe('a.b.c.>', () => {}).ready).resolves.toBeUndefined();
    await expect(q.subscribe('a.b.c.d.e', () => {}).ready).rejects.toMatchObject({ code: 'LIMIT', message: 'a pattern may have at most 4 tokens' });
    expect(r.router.metrics().drops.LIMIT).toBe(2);
  });

  it('grows the relay by about what was sent for 1000 subscriptions of 1 KiB patterns', async () => {
    const options: RelayOptions = { port: 0, limits: { maxPatternTokens: 1024 } };
    const [relayProc, { url, gc }] = await Child.start<{ url: string; gc: boolean }>('relay-process.ts', options, ['--expose-gc']);
    expect(gc).toBe(true);
    const mem = async (): Promise<number> => {
      const { mem: m } = await relayProc.ask<{ mem: { heapUsed: number; external: number } }>({ cmd: 'mem' });
      return m.heapUsed + m.external;
    };
    const c = raw(url);
    await c.hello('subscriber');
    const before = await mem();
    const rng = new Rng(0x5b5);
    let sent = 0;
    for (let i = 0; i < 1000; i++) {
      // 512 one-character tokens: the worst case for a trie with a node per token.
      const pattern = Array.from({ length: 512 }, () => String.fromCharCode(97 + rng.int(26))).join('.').slice(0, 1023);
      sent += pattern.length;
      c.send([frame(Kind.Sub, { ref: i + 1, pattern })]);
    }
    await c.next(Kind.Ok, (f) => f.ref === 1000);
    expect(c.frames.filter((f) => f.kind === Kind.Ok)).toHaveLength(1000);
    const grown = (await mem()) - before;
    console.log(`1000 subscriptions, ${(sent / MiB).toFixed(2)} MiB of patterns: the relay grew by ${(grown / MiB).toFixed(2)} MiB`);
    expect(grown).toBeLessThan(4 * sent);
  });
});

describe('hostile peers - held messages are bounded by real memory', () => {
  it('keeps the memory of 200,000 small held messages within holdMaxTotalBytes', async () => {
    const TOTAL = 32 * MiB;
    const options: RelayOptions = {
      port: 0,
      limits: { rateLimit: 10_000_000, holdMaxMessages: 1_000_000, holdMaxBytes: 1024 * MiB, holdMaxTotalBytes: TOTAL },
    };
    const [relayProc, { url, port, gc }] = await Child.start<{ url: string; port: number; gc: boolean }>('relay-process.ts', options, ['--expose-gc']);
    expect(gc).toBe(true);
    const mem = async (): Promise<number> => {
      const { mem: m } = await relayProc.ask<{ mem: { heapUsed: number; external: number } }>({ cmd: 'mem' });
      return m.heapUsed + m.external;
    };
    const sender = raw(url);
    await sender.hello('sender');
    const before = await mem();
    const N = 200_000;
    const body = encode('sixteen bytes!!');
    for (let i = 0; i < N; i += 1000) {
      const batch: Frame[] = [];
      for (let j = i; j < i + 1000; j++) {
        batch.push(frame(Kind.Msg, { ref: j + 1, to: `offline-${j % 400}`, from: '', origin: 'attacker', seq: Math.floor(j / 400) + 1, base: 1, sentAt: 0 }, body, BodyCodec.Msgpack));
      }
      sender.ws.send(encodeBatch(batch));
    }
    // The relay answers each MSG in order (HELD or EXPIRED): the last answer comes last.
    await sender.next(Kind.Ack, (f) => f.dest === 'offline-399' && f.seq === N / 400);
    expect(sender.frames.filter((f) => f.kind === Kind.Ack)).toHaveLength(N);
    const grown = (await mem()) - before;
    const metrics = parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    const heldBytes = sample(metrics, 'missive_held_bytes')!;
    const held = sample(metrics, 'missive_held_messages')!;
    console.log(`held ${held} of ${N} messages, counted ${(heldBytes / MiB).toFixed(1)} MiB; the relay grew by ${(grown / MiB).toFixed(1)} MiB (limit ${TOTAL / MiB} MiB)`);
    expect(heldBytes).toBeLessThanOrEqual(TOTAL);
    expect(held).toBeLessThan(N);
    expect(sender.frames.filter((f) => f.kind === Kind.Ack && f.status === AckStatus.Expired).length).toBe(N - held);
    // What is counted bounds what is used: the held messages fit in the limit for real.
    expect(grown).toBeLessThanOrEqual(TOTAL + 2 * MiB);
    expect(HELD_OVERHEAD).toBeGreaterThan(0);
  }, 60_000);
});

describe('hostile peers - connect gets the typed refusal even when it comes with the upgrade', () => {
  /**
   * A TCP proxy that forwards client → relay at once but holds relay → client bytes until the
   * relay ends the connection, then writes them in one chunk: the upgrade response, the BYE
   * and the close frame arrive in one read, every time.
   */
  async function batchingProxy(target: number): Promise<number> {
    const server = createServer((client: Socket) => {
      const upstream = tcpConnect(target, '127.0.0.1');
      let held = Buffer.alloc(0);
      let flushed = false;
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => {
        if (flushed) return void client.write(d);
        held = Buffer.concat([held, d]);
        if (hasCloseFrame(held)) {
          flushed = true;
          client.write(held);
        }
      });
      upstream.on('end', () => client.end());
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }

  /** Whether `b` holds an HTTP response head followed by a whole WebSocket close frame (server frames are unmasked). */
  function hasCloseFrame(b: Buffer): boolean {
    let at = b.indexOf('\r\n\r\n');
    if (at < 0) return false;
    at += 4;
    while (at + 2 <= b.length) {
      const opcode = b[at]! & 0x0f;
      let len = b[at + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        if (at + 4 > b.length) return false;
        len = b.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (at + 10 > b.length) return false;
        len = Number(b.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (at + head + len > b.length) return false;
      if (opcode === 0x8) return true;
      at += head + len;
    }
    return false;
  }

  it('rejects with LIMIT from a relay at maxConnections', async () => {
    const r = await relay({ limits: { maxConnections: 1 } });
    await peer(r.url, { name: 'first' });
    const port = await batchingProxy(r.port);
    await expect(connect(`ws://127.0.0.1:${port}/`, { name: 'second', reconnect: false })).rejects.toMatchObject({ code: 'LIMIT', name: 'LimitError' });
  });
});

describe('hostile peers - one character rule for names and topics', () => {
  for (const [what, ch] of [
    ['U+0080', '\u0080'],
    ['NEL U+0085', '\u0085'],
    ['CSI U+009B', '\u009b'],
  ] as const) {
    it(`refuses ${what} in a name at the handshake, and in topics, patterns and groups`, async () => {
      const r = await relay();
      const bad = raw(r.url);
      await bad.opened;
      bad.send([frame(Kind.Hello, { version: 1, name: `evil${ch}name`, namespace: '', secret: '', token: '', session: '' })]);
      expect(await bad.closed).toMatchObject({ code: 1002 });
      expect(bad.bye).toMatchObject({ code: 'PROTOCOL', message: expect.stringContaining('a control character') });
      // The Peer checks the same rule before sending anything.
      await expect(connect(r.url, { name: `evil${ch}name` })).rejects.toThrow(/control character/);
      const p = await peer(r.url, { name: 'fine' });
      expect(() => p.publish(`room${ch}`, 1)).toThrow(/control character/);
      expect(() => p.subscribe(`room.${ch}`, () => {})).toThrow(/control character/);
      await expect(p.join(`crew${ch}`)).rejects.toThrow(/control character/);
      // And the relay, for a client that does not.
      const c = raw(r.url);
      await c.hello('rawc');
      c.send([frame(Kind.Sub, { ref: 7, pattern: `room.${ch}` }), frame(Kind.Join, { ref: 8, group: `crew${ch}` })]);
      expect(await c.next(Kind.Err, (f) => f.ref === 7)).toMatchObject({ code: 'PROTOCOL' });
      expect(await c.next(Kind.Err, (f) => f.ref === 8)).toMatchObject({ code: 'PROTOCOL' });
    });
  }
});
