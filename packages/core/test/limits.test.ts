/**
 * The Router's limits: connections, peers per namespace, pending requests, message rate and
 * slow consumers. Each limit is driven past its bound and the test asserts the defined outcome
 * (an error code, a close code, a drop counted in the metrics) and that nothing else suffers.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BodyCodec, encodeBody, encodeFrame, frame, Kind, PROTOCOL_VERSION, type Frame, type FrameOf } from '../src/internal.js';
import {
  ClosedError,
  CloseCode,
  createPeer,
  LimitError,
  memoryTransportPair,
  NoRouteError,
  Router,
  type CloseInfo,
  type Peer,
  type RequestContext,
  type RouterLimits,
  type RouterOptions,
  type Transport,
} from '../src/index.js';
import { Net, nextEvent, RawClient, record } from './helpers.js';

let net: Net | undefined;
afterEach(async () => {
  await net?.close();
  net = undefined;
  vi.useRealTimers();
});

function start(options: RouterOptions = {}): Net {
  net = new Net(options);
  return net;
}

const hello = (name = '', namespace = ''): Frame => frame(Kind.Hello, { version: PROTOCOL_VERSION, name, namespace, secret: '', token: '', session: '' });

/** A handler that never answers on its own: it settles only when its signal aborts. */
const hang = (_body: unknown, ctx: RequestContext): Promise<never> =>
  new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));

/** A request's deadline long enough that a TIMEOUT could never be what settles it in a test. */
const LONG = 60_000;

/**
 * Resolves once `done()` holds, checked now and after each event `on` reports. Tests with a
 * faked clock wait with this rather than expect.poll, which advances fake timers as it polls.
 */
function until(on: (fn: () => void) => () => void, done: () => boolean, ms = 5000): Promise<void> {
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('condition not reached in time'));
    }, ms);
    const off = on(() => {
      if (!done()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

describe('limits - maxConnections', () => {
  it('refuses the connection past maxConnections with BYE LIMIT and close 4003, and leaves the others be', async () => {
    const n = start({ limits: { maxConnections: 2 } });
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    bob.handle('echo', (body) => body);
    const raw = new RawClient(n.router);
    expect(await raw.closed).toMatchObject({ code: CloseCode.LIMIT });
    expect(raw.frames).toEqual([expect.objectContaining({ kind: Kind.Bye, code: 'LIMIT' })]);
    const err = await n.peer({ name: 'carol' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitError);
    expect(err).toMatchObject({ code: 'LIMIT' });
    expect(n.router.metrics().drops).toEqual({ LIMIT: 2 });
    // The two peers already in are untouched.
    expect(alice.connected && bob.connected).toBe(true);
    await expect(alice.request('bob/echo', 'still here', { timeout: LONG })).resolves.toBe('still here');
    expect(n.router.connections().map((c) => c.name).sort()).toEqual(['alice', 'bob']);
    // Once one leaves, there is room again.
    await bob.close();
    await expect.poll(() => n.router.connectionCount).toBe(1);
    const carol = await n.peer({ name: 'carol' });
    carol.handle('echo', (body) => body);
    await expect(alice.request('carol/echo', 'hi carol', { timeout: LONG })).resolves.toBe('hi carol');
  });

  it('counts a connection still in its handshake against maxConnections', async () => {
    const n = start({ limits: { maxConnections: 1 } });
    const silent = new RawClient(n.router);
    await expect(n.peer({ name: 'alice' })).rejects.toMatchObject({ code: 'LIMIT' });
    // The silent one finishes its handshake and is a full member.
    silent.send(hello('silent'));
    await expect.poll(() => silent.of(Kind.Welcome).map((w) => w.name)).toEqual(['silent']);
    expect(silent.closeInfo).toBeUndefined();
  });
});

describe('limits - maxPeersPerNamespace', () => {
  it('refuses a peer in a full namespace with LIMIT and accepts it in another', async () => {
    const n = start({ limits: { maxPeersPerNamespace: 2 } });
    await n.peer({ name: 'a1', namespace: 'team' });
    const a2 = await n.peer({ namespace: 'team' });
    const err = await n.peer({ name: 'a3', namespace: 'team' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitError);
    expect(err).toMatchObject({ code: 'LIMIT' });
    const raw = new RawClient(n.router);
    raw.send(hello('a4', 'team'));
    expect(await raw.closed).toMatchObject({ code: CloseCode.LIMIT });
    expect(raw.frames).toEqual([expect.objectContaining({ kind: Kind.Bye, code: 'LIMIT' })]);
    // Another namespace has its own count.
    const elsewhere = await n.peer({ name: 'a3', namespace: 'other' });
    expect(elsewhere.namespace).toBe('other');
    expect(n.router.namespaces()).toEqual(new Map([['team', 2], ['other', 1]]));
    // Room again once a member leaves.
    await a2.close();
    await expect.poll(() => n.router.namespaces().get('team')).toBe(1);
    const a3 = await n.peer({ name: 'a3', namespace: 'team' });
    expect(a3.namespace).toBe('team');
  });
});

describe('limits - maxPendingRequests (relay side)', () => {
  it('answers a request past the limit with LIMIT at once, per requester, and frees a slot when a reply comes', async () => {
    const n = start({ limits: { maxPendingRequests: 3 } });
    // The peers' own limit is higher, so the relay's is the one that bites.
    const alice = await n.peer({ name: 'alice', maxPendingRequests: 100 });
    const carol = await n.peer({ name: 'carol', maxPendingRequests: 100 });
    const bob = await n.peer({ name: 'bob' });
    const held: (() => void)[] = [];
    bob.handle<number, number>('hold', (body) => new Promise<number>((resolve) => held.push(() => resolve(body))));
    bob.handle('echo', (body) => body);
    const pending = [1, 2, 3].map((i) => alice.request<number>('bob/hold', i, { timeout: LONG }));
    await expect.poll(() => held.length).toBe(3);
    // With a 60 s deadline, only the relay's LIMIT can settle this within the test's time.
    const refused = await alice.request('bob/echo', 4, { timeout: LONG }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LimitError);
    expect(refused).toMatchObject({ code: 'LIMIT' });
    // The limit is per requester.
    await expect(carol.request('bob/echo', 'carol', { timeout: LONG })).resolves.toBe('carol');
    // A reply frees one slot.
    held[0]!();
    await expect(pending[0]).resolves.toBe(1);
    await expect(alice.request('bob/echo', 5, { timeout: LONG })).resolves.toBe(5);
    const fourth = alice.request<number>('bob/hold', 6, { timeout: LONG });
    await expect.poll(() => held.length).toBe(4);
    await expect(alice.request('bob/echo', 7, { timeout: LONG })).rejects.toMatchObject({ code: 'LIMIT' });
    for (const release of held.slice(1)) release();
    await expect(Promise.all([pending[1], pending[2], fourth])).resolves.toEqual([2, 3, 6]);
    const m = n.router.metrics();
    expect(m.drops).toEqual({ LIMIT: 2 });
    // Refused requests were not forwarded: 4 held + 2 echoes.
    expect(m.requests).toBe(6);
  });

  it('rejects the requests in flight with CLOSED as soon as their responder closes, and forgets them', async () => {
    const n = start({ limits: { maxPendingRequests: 3 } });
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    const carol = await n.peer({ name: 'carol' });
    const started: number[] = [];
    bob.handle<number, never>('hang', (body, ctx) => {
      started.push(body);
      return hang(body, ctx);
    });
    carol.handle('echo', (body) => body);
    // A 60 s deadline: a TIMEOUT instead of CLOSED would fail the test by its own timeout.
    const pending = [1, 2, 3].map((i) => alice.request('bob/hang', i, { timeout: LONG }).catch((e: unknown) => e));
    await expect.poll(() => started.length).toBe(3);
    await bob.close();
    for (const err of await Promise.all(pending)) {
      expect(err).toBeInstanceOf(ClosedError);
      expect(err).toMatchObject({ code: 'CLOSED' });
    }
    // The relay no longer counts them: alice has her whole allowance again.
    await expect(Promise.all([1, 2, 3].map((i) => alice.request('carol/echo', i, { timeout: LONG })))).resolves.toEqual([1, 2, 3]);
  });

  it('rejects with CLOSED when the responder\'s link is cut, not only when it closes politely', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    const { peer: bob, server } = await n.link({ name: 'bob' });
    const started: number[] = [];
    bob.handle<number, never>('hang', (body, ctx) => {
      started.push(body);
      return hang(body, ctx);
    });
    const pending = [1, 2].map((i) => alice.request('bob/hang', i, { timeout: LONG }).catch((e: unknown) => e));
    await expect.poll(() => started.length).toBe(2);
    server.close({ code: CloseCode.ABNORMAL, reason: 'link lost' });
    const errors = await Promise.all(pending);
    expect(errors.map((e) => (e as ClosedError).code)).toEqual(['CLOSED', 'CLOSED']);
    expect(errors[0]).toBeInstanceOf(ClosedError);
    expect(alice.connected).toBe(true);
  });
});

describe('limits - replies only from the routed responder', () => {
  const rep = (req: FrameOf<typeof Kind.Req>, value: unknown, id = req.id): Frame => {
    const { bytes, codec } = encodeBody(value, BodyCodec.Msgpack);
    return frame(Kind.Rep, { to: req.from, from: '', id, code: '', message: '' }, bytes, codec);
  };

  it('forwards the first REP only: a duplicate, an unasked one and a third party\'s are dropped as NOT_REQUESTED', async () => {
    const n = start();
    const repsToAlice: Frame[] = [];
    const alice = await n.peer({ name: 'alice' }, { in: (f) => (f.kind === Kind.Rep && repsToAlice.push(f), [f]) });
    const bob = new RawClient(n.router);
    const mallory = new RawClient(n.router);
    bob.send(hello('bob'));
    mallory.send(hello('mallory'));
    await expect.poll(() => bob.of(Kind.Welcome).length + mallory.of(Kind.Welcome).length).toBe(2);
    const reply = alice.request('bob/answer', 'question', { timeout: LONG });
    await expect.poll(() => bob.of(Kind.Req).length).toBe(1);
    const req = bob.of(Kind.Req)[0]!;
    expect(req).toMatchObject({ from: 'alice', to: 'bob/answer' });
    // Mallory answers first; the relay knows the request went to bob.
    mallory.send(rep(req, 'forged'), frame(Kind.Ping, { nonce: 1 }));
    await expect.poll(() => mallory.of(Kind.Pong).length).toBe(1);
    bob.send(rep(req, 'first'), rep(req, 'second'), rep(req, 'unasked', req.id + 1000), frame(Kind.Ping, { nonce: 2 }));
    await expect.poll(() => bob.of(Kind.Pong).length).toBe(1);
    await expect(reply).resolves.toBe('first');
    // A round trip on alice's link: anything the relay sent her before its answer has arrived.
    await alice.peers();
    expect(repsToAlice).toHaveLength(1);
    const m = n.router.metrics();
    expect(m.drops).toEqual({ NOT_REQUESTED: 3 });
    expect(m.framesIn.Rep).toBe(4);
    expect(m.framesOut.Rep).toBe(1);
    expect(mallory.closeInfo).toBeUndefined();
    expect(bob.closeInfo).toBeUndefined();
  });
});

describe('limits - rateLimit', () => {
  // The token bucket reads Date.now(): with only Date faked, time stands still until the test
  // moves it, so exactly 2 × rateLimit frames pass in a burst; transports and retries run on
  // real timers.
  const freezeDate = (): void => void vi.useFakeTimers({ toFake: ['Date'] });

  it('drops PUBs over the rate and tells the publisher LIMIT at most once a second', async () => {
    freezeDate();
    const n = start({ limits: { rateLimit: 5 } });
    const pub = await n.peer({ name: 'pub' });
    const sub = await n.peer({ name: 'sub' });
    const got: number[] = [];
    await sub.subscribe<number>('ticks', (body) => got.push(body)).ready;
    const errors = record(pub, 'error');
    let published = 0;
    /**
     * Round trips on both links: what the relay did with earlier publishes has arrived. A PEERS
     * counts against the rate too: once the relay has taken every publish, the clock moves
     * 200 ms, one token for it.
     */
    const settle = async (): Promise<void> => {
      await expect.poll(() => n.router.metrics().framesIn.Pub).toBe(published);
      vi.setSystemTime(Date.now() + 200);
      await pub.peers();
      await sub.peers();
    };
    const publish = (i: number): void => {
      pub.publish('ticks', i);
      published++;
    };
    for (let i = 0; i < 15; i++) publish(i);
    await settle();
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(LimitError);
    expect(errors[0]).toMatchObject({ code: 'LIMIT' });
    expect(n.router.metrics().drops).toEqual({ RATE: 5 });
    // A second after the first error the bucket holds 5 tokens again, and one more error may be sent.
    vi.setSystemTime(Date.now() + 1000);
    for (let i = 15; i < 25; i++) publish(i);
    await settle();
    // Within that same second: dropped, and no further error.
    for (let i = 25; i < 30; i++) publish(i);
    await settle();
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 19]);
    expect(errors.map((e) => (e as LimitError).code)).toEqual(['LIMIT', 'LIMIT']);
    expect(n.router.metrics().drops).toEqual({ RATE: 15 });
    expect(pub.connected).toBe(true);
  });

  it('refills rateLimit tokens per second, never to more than a burst of twice the rate', async () => {
    freezeDate();
    const n = start({ limits: { rateLimit: 5 } });
    const pub = await n.peer({ name: 'pub' });
    const sub = await n.peer({ name: 'sub' });
    let got = 0;
    await sub.subscribe('ticks', () => got++).ready;
    const rateDrops = (): number => n.router.metrics().drops.RATE ?? 0;
    /**
     * Publishes `count` at this instant and returns how many got through, once the relay has
     * either delivered or dropped each (no round trip on pub's link: it would take a token).
     */
    const burst = async (count: number): Promise<number> => {
      const before = got;
      const dropsBefore = rateDrops();
      for (let i = 0; i < count; i++) pub.publish('ticks', i);
      await expect.poll(() => got - before + rateDrops() - dropsBefore).toBe(count);
      return got - before;
    };
    expect(await burst(12)).toBe(10);
    vi.setSystemTime(Date.now() + 400); // 2 tokens
    expect(await burst(5)).toBe(2);
    vi.setSystemTime(Date.now() + 100_000); // long idle: still only a burst of 10
    expect(await burst(15)).toBe(10);
    expect(await burst(1)).toBe(0);
  });

  it('drops BCASTs over the rate like PUBs', async () => {
    freezeDate();
    const n = start({ limits: { rateLimit: 1 } });
    const caster = await n.peer({ name: 'caster' });
    const member = await n.peer({ name: 'member' });
    await member.join('crew');
    const errors = record(caster, 'error');
    for (let i = 0; i < 4; i++) caster.broadcast('crew', i);
    // A PEERS round trip counts against the rate too: once the relay has taken the broadcasts,
    // one second brings one token for it.
    await expect.poll(() => n.router.metrics().framesIn.Bcast).toBe(4);
    vi.setSystemTime(Date.now() + 1000);
    await caster.peers();
    await member.peers();
    expect(member.mailbox().size).toBe(2);
    expect((await member.receive({ timeout: LONG })).body).toBe(0);
    expect((await member.receive({ timeout: LONG })).body).toBe(1);
    expect(errors.map((e) => (e as LimitError).code)).toEqual(['LIMIT']);
    expect(n.router.metrics().drops).toEqual({ RATE: 2 });
  });

  it('answers a REQ over the rate with LIMIT', async () => {
    freezeDate();
    const n = start({ limits: { rateLimit: 5 } });
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    bob.handle('echo', (body) => body);
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => alice.request('bob/echo', i, { timeout: LONG })));
    expect(results.slice(0, 10).map((r) => (r.status === 'fulfilled' ? r.value : r.reason))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of results.slice(10)) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(LimitError);
    }
    // 200 ms refills one token: one more request passes, the next does not.
    vi.setSystemTime(Date.now() + 200);
    await expect(alice.request('bob/echo', 'again', { timeout: LONG })).resolves.toBe('again');
    await expect(alice.request('bob/echo', 'too soon', { timeout: LONG })).rejects.toMatchObject({ code: 'LIMIT' });
    // Bob's replies are his own frames, not alice's: they were never limited.
    expect(n.router.metrics().drops).toEqual({ RATE: 3 });
  });

  it('does not lose durable sends over the rate: they are refused, retried, and all arrive once, in order', async () => {
    freezeDate();
    const n = start({ limits: { rateLimit: 10 } });
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await alice.send('bob', i));
    const rateDrops = (): number => n.router.metrics().drops['RATE'] ?? 0;
    const onDrop = (fn: () => void): (() => void) => n.router.on('trace', (e) => e.type === 'drop' && fn());
    // The burst (2 × 10) gets through; the rest are refused and stay in alice's outbox.
    await until((fn) => alice.on('delivered', fn), () => delivered.length === 20);
    const refusedOnce = rateDrops();
    expect(refusedOnce).toBeGreaterThan(0);
    // Alice retries while the clock stands still: refused again, nothing more delivered.
    await until(onDrop, () => rateDrops() > refusedOnce);
    expect(delivered).toHaveLength(20);
    expect(alice.outboxSize).toBe(20);
    expect(bob.mailbox().size).toBe(20);
    // Two seconds refill the bucket (20 tokens): the retries go through.
    vi.setSystemTime(Date.now() + 2000);
    await until((fn) => alice.on('delivered', fn), () => delivered.length === 40);
    expect(delivered.map((d) => d.id)).toEqual(ids);
    expect(alice.outboxSize).toBe(0);
    // One more message after the 40 is acked after any stray repeat: nothing came twice.
    vi.setSystemTime(Date.now() + 2000);
    await alice.send('bob', 'last', { waitForDelivery: true });
    const bodies: unknown[] = [];
    while (bob.mailbox().size > 0) bodies.push((await bob.receive({ timeout: LONG })).body);
    expect(bodies).toEqual([...Array.from({ length: 40 }, (_, i) => i), 'last']);
    expect(delivered).toHaveLength(41);
  });
});

describe('limits - slow consumers', () => {
  const CAP = 128 * 1024;
  const FLUSH_BYTES = 64 * 1024;
  const TIMEOUT = 2000;
  const PAD = new Uint8Array(1000);
  const FLOOD = 600;
  /** Bytes of one flood PUB as the relay forwards it. */
  const pubSize = (i: number): number => {
    const { bytes, codec } = encodeBody({ i, pad: PAD }, BodyCodec.Msgpack);
    return encodeFrame(frame(Kind.Pub, { topic: 'flood', from: 'pub' }, bytes, codec)).length;
  };

  interface Setup {
    n: Net;
    /** The slow peer's own end of its link: pausing it stops it reading. */
    client: Transport;
    slow: Peer;
    /** The `i` of every flood publish the slow peer received, in order. */
    got: number[];
    pub: Peer;
    alice: Peer;
    bob: Peer;
    /** Largest `router.bufferedAmount(slow.id)` seen while the relay routed. */
    maxBuffered: () => number;
  }

  /**
   * A relay whose sweep (setInterval) and clock (Date) are faked, so the slow-consumer timeout
   * elapses exactly when the test advances it; transports and peers run on real timers.
   */
  async function setup(wrap: (server: Transport) => Transport = (t) => t): Promise<Setup> {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const n = start({ limits: { maxBufferedBytes: CAP, slowConsumerTimeout: TIMEOUT } });
    const [client, server] = memoryTransportPair();
    n.router.accept(wrap(server));
    const slow = await createPeer(client, { name: 'slow' });
    n.peers.push(slow);
    const got: number[] = [];
    await slow.subscribe<{ i: number }>('flood', (body) => got.push(body.i)).ready;
    slow.handle('work', (body) => body);
    const pub = await n.peer({ name: 'pub' });
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    bob.handle('echo', (body) => body);
    let max = 0;
    n.router.on('trace', () => (max = Math.max(max, n.router.bufferedAmount(slow.id) ?? 0)));
    return { n, client, slow, got, pub, alice, bob, maxBuffered: () => max };
  }

  /** Pauses the slow peer's reading and floods it with publishes until it is over the cap. */
  async function flood(s: Setup): Promise<void> {
    s.client.pause();
    for (let i = 0; i < FLOOD; i++) s.pub.publish('flood', { i, pad: PAD });
    await until((fn) => s.n.router.on('trace', fn), () => s.n.router.metrics().framesIn['Pub'] === FLOOD);
    expect(s.n.router.bufferedAmount(s.slow.id)).toBeGreaterThan(CAP);
  }

  it('drops publishes to a peer over its buffer cap and keeps the relay\'s buffer for it bounded', async () => {
    const s = await setup();
    await flood(s);
    const m = s.n.router.metrics();
    expect(m.drops['SLOW_CONSUMER']).toBeGreaterThan(0);
    // Forwarded + dropped = everything published.
    expect(m.framesOut['Pub']! + m.drops['SLOW_CONSUMER']!).toBe(FLOOD);
    expect(s.maxBuffered()).toBeGreaterThan(CAP);
    expect(s.maxBuffered()).toBeLessThanOrEqual(CAP + FLUSH_BYTES + pubSize(FLOOD));
    // Other peers are unaffected; a request to the slow one is refused with LIMIT at once.
    await expect(s.alice.request('bob/echo', 'ok', { timeout: LONG })).resolves.toBe('ok');
    await expect(s.alice.request('slow/work', 'x', { timeout: LONG })).rejects.toMatchObject({ code: 'LIMIT' });
    s.client.resume();
    // Its round trip's answer comes after everything the relay had buffered for it.
    await s.slow.peers();
    expect(s.n.router.bufferedAmount(s.slow.id)).toBe(0);
    // What it received came in order, once each; the rest was dropped, not queued.
    expect(s.got.length).toBe(m.framesOut['Pub']);
    expect(s.got).toEqual([...s.got].sort((a, b) => a - b));
    expect(new Set(s.got).size).toBe(s.got.length);
    await expect(s.alice.request('slow/work', 'x', { timeout: LONG })).resolves.toBe('x');
  });

  it('keeps durable sends to a slow peer in the sender\'s outbox and delivers them all, in order, once it reads again', async () => {
    const s = await setup();
    await flood(s);
    const delivered = record(s.alice, 'delivered');
    const before = s.n.router.metrics().drops['SLOW_CONSUMER']!;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await s.alice.send('slow', i));
    // Each was refused at the relay (counted as a SLOW_CONSUMER drop) and kept by alice.
    await until(
      (fn) => s.n.router.on('trace', fn),
      () => s.n.router.metrics().drops['SLOW_CONSUMER']! - before >= 10,
    );
    expect(s.alice.outboxSize).toBe(10);
    expect(delivered).toEqual([]);
    // Just short of the timeout: still connected.
    vi.advanceTimersByTime(TIMEOUT - 1);
    expect(s.client.status).toBe('open');
    await expect(s.alice.request('bob/echo', 'meanwhile', { timeout: LONG })).resolves.toBe('meanwhile');
    s.client.resume();
    await until((fn) => s.alice.on('delivered', fn), () => delivered.length === 10);
    expect(delivered.map((d) => d.id)).toEqual(ids);
    expect(s.alice.outboxSize).toBe(0);
    const bodies: unknown[] = [];
    while (s.slow.mailbox().size > 0) bodies.push((await s.slow.receive({ timeout: LONG })).body);
    expect(bodies).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Back under the cap, the timeout no longer runs.
    vi.advanceTimersByTime(TIMEOUT * 2);
    expect(s.slow.connected).toBe(true);
    expect(s.n.router.metrics().slowConsumerDisconnects).toBe(0);
  });

  it('disconnects a peer over its cap for slowConsumerTimeout with 4004, while others keep talking', async () => {
    const s = await setup();
    await flood(s);
    const closed = nextEvent<{ code: number; reason: string; error?: Error }>((fn) => s.slow.on('close', fn));
    const disconnect = nextEvent<{ name: string | undefined; code: number }>((fn) => s.n.router.on('disconnect', fn));
    vi.advanceTimersByTime(TIMEOUT - 1);
    expect(s.client.status).toBe('open');
    expect(s.n.router.metrics().slowConsumerDisconnects).toBe(0);
    await expect(s.alice.request('bob/echo', 'before', { timeout: LONG })).resolves.toBe('before');
    // The next sweep finds it over the cap for the whole timeout.
    vi.advanceTimersByTime(250);
    await expect(closed).resolves.toMatchObject({ code: CloseCode.SLOW_CONSUMER, error: { code: 'CLOSED' } });
    expect(s.slow.connected).toBe(false);
    await expect(disconnect).resolves.toMatchObject({ name: 'slow', code: CloseCode.SLOW_CONSUMER });
    expect(s.n.router.metrics().slowConsumerDisconnects).toBe(1);
    expect(s.n.router.connections().map((c) => c.name).sort()).toEqual(['alice', 'bob', 'pub']);
    // The others carry on; the slow one is gone.
    await expect(s.alice.request('bob/echo', 'after', { timeout: LONG })).resolves.toBe('after');
    await expect(s.alice.request('slow/work', 'x', { timeout: LONG })).rejects.toBeInstanceOf(NoRouteError);
    s.pub.publish('flood', { i: -1, pad: PAD });
    vi.advanceTimersByTime(TIMEOUT * 2);
    expect(s.n.router.metrics().slowConsumerDisconnects).toBe(1);
  });

  it('counts a slow consumer once even when its transport takes a while to close', async () => {
    // Like a socket waiting for its close handshake: close() is requested but does not finish.
    let finishClose: (() => void) | undefined;
    const slowToClose = (inner: Transport): Transport => ({
      get status() {
        return finishClose && inner.status === 'open' ? 'closing' : inner.status;
      },
      get bufferedAmount() {
        return inner.bufferedAmount;
      },
      send: (data) => inner.send(data),
      listen: (handlers) => inner.listen(handlers),
      pause: () => inner.pause(),
      resume: () => inner.resume(),
      close: (info?: Partial<CloseInfo>) => void (finishClose ??= () => inner.close(info)),
    });
    const s = await setup(slowToClose);
    await flood(s);
    const disconnect = nextEvent<{ name: string | undefined }>((fn) => s.n.router.on('disconnect', fn));
    vi.advanceTimersByTime(TIMEOUT + 250);
    expect(finishClose).toBeDefined();
    // More sweeps run while the close is still in progress.
    vi.advanceTimersByTime(2000);
    expect(s.n.router.metrics().slowConsumerDisconnects).toBe(1);
    // Its name is free already, though its transport has not finished closing.
    expect(s.n.router.connections().map((c) => c.name)).not.toContain('slow');
    await expect(s.n.peer({ name: 'slow' })).resolves.toMatchObject({ name: 'slow' });
    finishClose!();
    await expect(disconnect).resolves.toMatchObject({ name: 'slow' });
    expect(s.n.router.connectionCount).toBe(4); // pub, alice, bob and the new 'slow'
    expect(s.n.router.metrics().slowConsumerDisconnects).toBe(1);
  });
});

describe('limits - validation', () => {
  const POSITIVE: (keyof RouterLimits)[] = [
    'handshakeTimeout',
    'maxConnections',
    'maxPeersPerNamespace',
    'maxPendingRequests',
    'rateLimit',
    'maxBufferedBytes',
    'slowConsumerTimeout',
  ];

  it.each(POSITIVE)('throws RangeError for a %s of zero, a negative number or NaN', (key) => {
    for (const bad of [0, -1, Number.NaN]) {
      expect(() => new Router({ limits: { [key]: bad } }), `${key}: ${bad}`).toThrow(RangeError);
    }
    expect(() => new Router({ limits: { [key]: 1 } })).not.toThrow();
  });

  it('throws RangeError for a maxFrameBytes that is not an integer from 1 to 2^32-1', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Infinity, 2 ** 32]) {
      expect(() => new Router({ limits: { maxFrameBytes: bad } }), `maxFrameBytes: ${bad}`).toThrow(RangeError);
    }
    expect(new Router({ limits: { maxFrameBytes: 2 ** 32 - 1 } }).limits.maxFrameBytes).toBe(2 ** 32 - 1);
  });

  it('fills unset limits with the defaults', () => {
    expect(new Router({ limits: { rateLimit: 7 } }).limits).toEqual({
      maxFrameBytes: 1024 * 1024,
      handshakeTimeout: 10_000,
      maxConnections: 10_000,
      maxPeersPerNamespace: 10_000,
      maxPendingRequests: 1000,
      rateLimit: 7,
      maxBufferedBytes: 8 * 1024 * 1024,
      slowConsumerTimeout: 5000,
      holdTtl: 60_000,
      holdMaxMessages: 1000,
      holdMaxBytes: 1024 * 1024,
      holdMaxTotalBytes: 64 * 1024 * 1024,
      maxTunnels: 1000,
      maxSubscriptions: 1000,
      maxPatternTokens: 32,
    });
  });

  it('does not cut handshakes at once when handshakeTimeout is beyond what setTimeout can count', async () => {
    // setTimeout turns a delay over 2^31-1 ms (or Infinity) into 1 ms.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const router = new Router({ limits: { handshakeTimeout: Infinity } });
    const [client, server] = memoryTransportPair();
    router.accept(server);
    vi.advanceTimersByTime(60 * 60 * 1000);
    expect(client.status).toBe('open');
    expect(router.connectionCount).toBe(1);
    vi.useRealTimers();
    await router.close(1000);
    expect(client.status).not.toBe('open');
  });
});
