/**
 * `Router.metrics()`: frame and byte counters by kind, drops by reason, the request counter and
 * latency histogram, auth and protocol failures, and the connection and peer gauges, each
 * checked against an exchange whose frames are known exactly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BodyCodec, encodeBody, encodeFrame, frame, Kind, PROTOCOL_VERSION, type Frame } from '../src/internal.js';
import { AuthError, LATENCY_BOUNDS, type RouterMetrics, type RouterOptions } from '../src/index.js';
import { Net, RawClient, record } from './helpers.js';

let net: Net | undefined;
afterEach(async () => {
  await net?.close();
  net = undefined;
});

function start(options: RouterOptions = {}): Net {
  net = new Net(options);
  return net;
}

// Peers send a 32-character session token in HELLO.
const hello = (name = '', namespace = ''): Frame => frame(Kind.Hello, { version: PROTOCOL_VERSION, name, namespace, secret: '', token: '', session: 's'.repeat(32) });

/** What grew between two snapshots of a counter record (keys that did not change are left out). */
function growth(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** Growth of the four frame and byte counters between two snapshots. */
function traffic(before: RouterMetrics, after: RouterMetrics) {
  return {
    framesIn: growth(before.framesIn, after.framesIn),
    bytesIn: growth(before.bytesIn, after.bytesIn),
    framesOut: growth(before.framesOut, after.framesOut),
    bytesOut: growth(before.bytesOut, after.bytesOut),
  };
}

/** Bytes a frame takes on the wire inside a batch: its u32 length prefix and the frame. */
const wireSize = (f: Frame): number => encodeFrame(f).length;

describe('metrics - frames and bytes by kind', () => {
  it('counts a HELLO in and a WELCOME out for each peer that connects', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    const anon = await n.peer({ namespace: 'team' });
    const m = n.router.metrics();
    expect(m.framesIn).toEqual({ Hello: 2 });
    expect(m.bytesIn).toEqual({ Hello: wireSize(hello('alice')) + wireSize(hello('', 'team')) });
    expect(m.framesOut).toEqual({ Welcome: 2 });
    const welcome = (id: string, name: string, namespace: string): Frame => frame(Kind.Welcome, { id, name, namespace, maxFrame: 1024 * 1024 });
    expect(m.bytesOut).toEqual({ Welcome: wireSize(welcome(alice.id, 'alice', 'default')) + wireSize(welcome(anon.id, '', 'team')) });
  });

  it('counts exactly one Pub in and one Pub out per subscriber for a publish, with their sizes', async () => {
    const n = start();
    const pub = await n.peer({ name: 'pub' });
    const subs = await Promise.all([1, 2, 3].map((i) => n.peer({ name: `sub${i}` })));
    const got: unknown[] = [];
    await Promise.all(subs.map((s) => s.subscribe('news.*', (body) => got.push(body)).ready));
    const before = n.router.metrics();
    const body = { headline: 'metrics' };
    pub.publish('news.today', body);
    await expect.poll(() => got.length).toBe(3);
    const { bytes, codec } = encodeBody(body, BodyCodec.Msgpack);
    const sizeIn = wireSize(frame(Kind.Pub, { topic: 'news.today', from: '' }, bytes, codec));
    // The relay stamps the publisher's name; the body bytes are forwarded as they came.
    const sizeOut = wireSize(frame(Kind.Pub, { topic: 'news.today', from: 'pub' }, bytes, codec));
    expect(traffic(before, n.router.metrics())).toEqual({
      framesIn: { Pub: 1 },
      bytesIn: { Pub: sizeIn },
      framesOut: { Pub: 3 },
      bytesOut: { Pub: 3 * sizeOut },
    });
  });

  it('counts a durable send as one Msg and one Ack each way', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    await n.peer({ name: 'bob' });
    const before = n.router.metrics();
    await alice.send('bob', 'hello bob', { waitForDelivery: true });
    const t = traffic(before, n.router.metrics());
    expect(t.framesIn).toEqual({ Msg: 1, Ack: 1 });
    expect(t.framesOut).toEqual({ Msg: 1, Ack: 1 });
    // Forwarded frames grow by the sender's name the relay stamps in `from`.
    expect(t.bytesOut['Msg']).toBe(t.bytesIn['Msg']! + 'alice'.length);
    expect(t.bytesOut['Ack']).toBe(t.bytesIn['Ack']! + 'bob'.length);
  });

  it('counts a request as one Req and one Rep each way, and one request', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    bob.handle('echo', (body) => body);
    const before = n.router.metrics();
    await expect(alice.request('bob/echo', 'ping', { timeout: 5000 })).resolves.toBe('ping');
    const after = n.router.metrics();
    const t = traffic(before, after);
    expect(t.framesIn).toEqual({ Req: 1, Rep: 1 });
    expect(t.framesOut).toEqual({ Req: 1, Rep: 1 });
    expect(after.requests - before.requests).toBe(1);
    expect(after.requestLatency.count - before.requestLatency.count).toBe(1);
  });

  it('counts drops by reason', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    alice.publish('nobody.listens', 1);
    await expect(alice.request('nobody/x', 1, { timeout: 5000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
    expect(n.router.metrics().drops).toEqual({ NO_ROUTE: 2 });
    // Refused requests are not forwarded requests.
    expect(n.router.metrics().requests).toBe(0);
  });

  it('returns a snapshot that later traffic does not change', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    const snapshot = n.router.metrics();
    const copy = structuredClone(snapshot);
    await n.peer({ name: 'bob' });
    await alice.peers();
    expect(snapshot).toEqual(copy);
    expect(n.router.metrics().framesIn['Hello']).toBe(2);
  });
});

describe('metrics - requests and latency', () => {
  it('counts forwarded requests and their round trips in a cumulative latency histogram', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    const bob = await n.peer({ name: 'bob' });
    bob.handle('echo', (body) => body);
    // A responder that takes its time: its round trip lands above the 50 ms bound.
    bob.handle('slow', (body) => new Promise((resolve) => setTimeout(() => resolve(body), 60)));
    const empty = n.router.metrics().requestLatency;
    expect(empty).toEqual({ bounds: LATENCY_BOUNDS, counts: new Array(LATENCY_BOUNDS.length + 1).fill(0), sum: 0, count: 0 });

    for (let i = 0; i < 5; i++) await alice.request('bob/echo', i, { timeout: 5000 });
    const fast = n.router.metrics();
    expect(fast.requests).toBe(5);
    expect(fast.requestLatency.count).toBe(5);
    expect(fast.requestLatency.counts.at(-1)).toBe(5);
    expect(fast.requestLatency.sum).toBeGreaterThan(0);

    await alice.request('bob/slow', 'zzz', { timeout: 5000 });
    const m = n.router.metrics();
    const h = m.requestLatency;
    expect(m.requests).toBe(6);
    expect(h.bounds).toEqual(LATENCY_BOUNDS);
    expect(h.counts).toHaveLength(LATENCY_BOUNDS.length + 1);
    expect(h.count).toBe(6);
    // Cumulative: each bucket holds every round trip at or below its bound; the last is +Inf.
    for (let i = 1; i < h.counts.length; i++) expect(h.counts[i]).toBeGreaterThanOrEqual(h.counts[i - 1]!);
    expect(h.counts.at(-1)).toBe(6);
    expect(h.counts[LATENCY_BOUNDS.indexOf(0.05)]).toBeLessThanOrEqual(5);
    expect(h.sum - fast.requestLatency.sum).toBeGreaterThanOrEqual(0.05);
    // Counts only ever grow.
    for (let i = 0; i < h.counts.length; i++) expect(h.counts[i]).toBeGreaterThanOrEqual(fast.requestLatency.counts[i]!);
  });

  it('does not count a request that is never answered in the histogram', async () => {
    const n = start();
    const alice = await n.peer({ name: 'alice' });
    const { peer: bob } = await n.link({ name: 'bob' });
    let started = false;
    bob.handle('never', () => {
      started = true;
      return new Promise(() => {});
    });
    const pending = alice.request('bob/never', 1, { timeout: 60_000 }).catch((e: unknown) => e);
    await expect.poll(() => started).toBe(true);
    await bob.close();
    await expect(pending).resolves.toMatchObject({ code: 'CLOSED' });
    const m = n.router.metrics();
    expect(m.requests).toBe(1);
    expect(m.requestLatency.count).toBe(0);
    expect(m.requestLatency.counts.at(-1)).toBe(0);
  });
});

describe('metrics - failures', () => {
  it('counts refused connects and refused actions as auth failures', async () => {
    const n = start({
      auth: (req) => {
        if (req.name === 'mallory') throw new AuthError('not you');
        if (req.name === 'limited') return { publish: ['chat.>'], subscribe: ['chat.*'], groups: ['readers'] };
        return {};
      },
    });
    await expect(n.peer({ name: 'mallory' })).rejects.toMatchObject({ code: 'AUTH' });
    expect(n.router.metrics().authFailures).toBe(1);
    const limited = await n.peer({ name: 'limited' });
    const errors = record(limited, 'error');
    limited.publish('admin.shutdown', 1);
    await expect(limited.subscribe('admin.*', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    await expect(limited.join('admins')).rejects.toMatchObject({ code: 'AUTH' });
    expect(errors.map((e) => (e as AuthError).code)).toEqual(['AUTH']);
    expect(n.router.metrics().authFailures).toBe(4);
    // What the grant allows is not counted, and the connection stays usable.
    limited.publish('chat.lobby', 1);
    await limited.subscribe('chat.lobby', () => {}).ready;
    await limited.join('readers');
    expect(n.router.metrics().authFailures).toBe(4);
    expect(limited.connected).toBe(true);
  });

  it('counts each connection closed for a protocol breach, and nothing else', async () => {
    const n = start({ limits: { maxFrameBytes: 1024 } });
    const early = new RawClient(n.router);
    early.send(frame(Kind.Ping, { nonce: 1 }));
    const big = new RawClient(n.router);
    big.send(hello(), frame(Kind.Pub, { topic: 'a.b', from: '' }, new Uint8Array(2000), BodyCodec.Raw));
    // An invalid pattern is refused with ERR PROTOCOL, but the connection stays: not counted.
    const polite = new RawClient(n.router);
    polite.send(hello(), frame(Kind.Sub, { ref: 1, pattern: 'a..b' }), frame(Kind.Ping, { nonce: 2 }));
    expect(await early.closed).toMatchObject({ code: 1002 });
    expect(await big.closed).toMatchObject({ code: 1009 });
    await expect.poll(() => polite.of(Kind.Pong).length).toBe(1);
    expect(polite.of(Kind.Err)).toEqual([expect.objectContaining({ ref: 1, code: 'PROTOCOL' })]);
    expect(n.router.metrics().protocolErrors).toBe(2);
    // Nor is a polite goodbye.
    polite.send(frame(Kind.Bye, { code: 'NORMAL', message: 'bye' }));
    expect(await polite.closed).toMatchObject({ code: 1000 });
    expect(n.router.metrics().protocolErrors).toBe(2);
  });
});

describe('metrics - gauges', () => {
  it('reports open connections, handshakes included, and peers by namespace', async () => {
    const n = start();
    expect(n.router.metrics()).toMatchObject({ connections: 0, peers: new Map() });
    await n.peer({ name: 'a' });
    const b = await n.peer({ namespace: 'team' });
    const c = await n.peer({ name: 'c', namespace: 'team' });
    const raw = new RawClient(n.router); // has not said HELLO yet
    expect(n.router.metrics()).toMatchObject({ connections: 4, peers: new Map([['default', 1], ['team', 2]]) });
    await c.close();
    await expect.poll(() => n.router.metrics().peers).toEqual(new Map([['default', 1], ['team', 1]]));
    await b.close();
    // An emptied namespace is gone from the gauge.
    await expect.poll(() => n.router.metrics().peers).toEqual(new Map([['default', 1]]));
    expect(n.router.metrics().connections).toBe(2);
    raw.send(hello('r', 'elsewhere'));
    await expect.poll(() => n.router.metrics().peers).toEqual(new Map([['default', 1], ['elsewhere', 1]]));
    expect(n.router.metrics().connections).toBe(2);
  });
});
