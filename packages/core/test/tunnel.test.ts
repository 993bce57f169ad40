/**
 * Tunnels (docs/tunnels.md) over the memory transport: opening and refusal, ordered bytes and
 * whole messages, credit flow control bounding the writer, the relay and the reader to one
 * window, fairness with requests, half-close, abort, link loss, and the relay's checks on
 * tunnel frames from raw clients.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { frame, Kind, PROTOCOL_VERSION, type Frame } from '../src/internal.js';
import {
  ClosedError,
  createPeer,
  DEFAULT_CHUNK_SIZE,
  DEFAULT_TUNNEL_MAX_WINDOW,
  DEFAULT_TUNNEL_WINDOW,
  memoryTransportPair,
  NoRouteError,
  type Transport,
  type TransportHandlers,
  ProtocolError,
  RemoteError,
  TimeoutError,
  type Peer,
  type Tunnel,
} from '../src/index.js';
import { pattern, sameBytes as same } from '../src/testing.js';
import { Net, RawClient } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Everything a bytes-mode readable yields until it ends. */
async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of readable) parts.push(chunk);
  return concat(parts);
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${String(v)}`);
    },
    (err: unknown) => err,
  );
}

/** Accepted tunnels of a handler, in arrival order, with a way to await the n-th. */
function accepting<T = Uint8Array>(peer: Peer, protocol: string, options?: Parameters<Peer['onTunnel']>[2]) {
  const tunnels: Tunnel<T>[] = [];
  const waiters: { n: number; resolve(t: Tunnel<T>): void }[] = [];
  peer.onTunnel<T>(
    protocol,
    (t) => {
      tunnels.push(t);
      for (const w of waiters.filter((w) => w.n === tunnels.length)) w.resolve(t);
    },
    options,
  );
  return {
    tunnels,
    nth: (n: number): Promise<Tunnel<T>> =>
      tunnels.length >= n ? Promise.resolve(tunnels[n - 1]!) : new Promise((resolve) => waiters.push({ n, resolve })),
  };
}

/** Two named peers on the net. */
async function pair(): Promise<{ alice: Peer; bob: Peer }> {
  return { alice: await net.peer({ name: 'alice' }), bob: await net.peer({ name: 'bob' }) };
}

/** A round trip alice → bob → alice: every tunnel frame alice sent before it has reached bob. */
async function roundTrip(alice: Peer): Promise<void> {
  await alice.request('bob/ping', undefined, { timeout: 5000 });
}

describe('tunnel - open', () => {
  it('opens to a handler and carries bytes both ways (echo)', async () => {
    const { alice, bob } = await pair();
    const accepted: Tunnel[] = [];
    bob.onTunnel('echo', async (t) => {
      accepted.push(t);
      await t.readable.pipeTo(t.writable);
    });
    const t = await alice.tunnel('bob', 'echo', { timeout: 5000 });
    expect(t).toMatchObject({ protocol: 'echo', remote: 'bob', mode: 'bytes', state: 'open' });
    const data = pattern(200_000, 1);
    const echoed = readAll(t.readable);
    const w = t.writable.getWriter();
    await w.write(data.subarray(0, 1000));
    await w.write(data.subarray(1000));
    await w.close();
    expect(same(await echoed, data)).toBe(true);
    const theirs = accepted[0]!;
    expect(theirs).toMatchObject({ protocol: 'echo', remote: 'alice', mode: 'bytes' });
    expect([t.bytesOut, t.bytesIn, theirs.bytesIn, theirs.bytesOut]).toEqual([200_000, 200_000, 200_000, 200_000]);
    // Both directions ended: both ends are closed.
    await expect.poll(() => [t.state, theirs.state]).toEqual(['closed', 'closed']);
  });

  it('rejects with NO_ROUTE when there is no such peer', async () => {
    const { alice } = await pair();
    const err = await rejection(alice.tunnel('nobody', 'file', { timeout: 5000 }));
    expect(err).toBeInstanceOf(NoRouteError);
    expect(err).toMatchObject({ code: 'NO_ROUTE' });
  });

  it('rejects with NO_ROUTE when the peer has no handler for the protocol (or removed it)', async () => {
    const { alice, bob } = await pair();
    bob.onTunnel('file', () => {});
    await expect(alice.tunnel('bob', 'chat', { timeout: 5000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
    const off = bob.onTunnel('chat', () => {});
    await expect(alice.tunnel('bob', 'chat', { timeout: 5000 })).resolves.toMatchObject({ state: 'open' });
    off();
    const err = await rejection(alice.tunnel('bob', 'chat', { timeout: 5000 }));
    expect(err).toBeInstanceOf(NoRouteError);
  });

  it('rejects with REMOTE carrying the thrown code when the handler refuses', async () => {
    const { alice, bob } = await pair();
    bob.onTunnel('file', () => {
      throw Object.assign(new Error('quota exceeded'), { code: 'QUOTA' });
    });
    const err = await rejection(alice.tunnel('bob', 'file', { timeout: 5000 }));
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ code: 'REMOTE', remoteCode: 'QUOTA', message: 'quota exceeded' });
    // A refusal leaves the link fine for the next tunnel.
    bob.onTunnel('file', () => {});
    await expect(alice.tunnel('bob', 'file', { timeout: 5000 })).resolves.toMatchObject({ state: 'open' });
  });

  it('rejects with TIMEOUT when the other side never answers', async () => {
    const alice = await net.peer({ name: 'alice' });
    // bob is connected but deaf to tunnels: his TOPENs vanish on the way in.
    const bob = await net.peer({ name: 'bob' }, { in: (f) => (f.kind === Kind.TOpen ? [] : [f]) });
    bob.onTunnel('file', () => {});
    const started = Date.now();
    const err = await rejection(alice.tunnel('bob', 'file', { timeout: 100 }));
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toMatchObject({ code: 'TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });

  it('rejects with the signal\'s reason when aborted before or while opening', async () => {
    const { alice, bob } = await pair();
    bob.onTunnel('file', () => {});
    const reason = new Error('user left');
    await expect(alice.tunnel('bob', 'file', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    // Aborted while its TOPEN is on the way: it rejects at once, before bob's answer.
    const ac = new AbortController();
    const opening = alice.tunnel('bob', 'file', { signal: ac.signal, timeout: 5000 });
    ac.abort(reason);
    await expect(opening).rejects.toBe(reason);
    // The peer is fine afterwards.
    await expect(alice.tunnel('bob', 'file', { timeout: 5000 })).resolves.toMatchObject({ state: 'open' });
  });

  it('rejects with CLOSED when the link drops while opening', async () => {
    const { peer: alice, server } = await net.link({ name: 'alice' });
    await net.peer({ name: 'bob' }, { in: (f) => (f.kind === Kind.TOpen ? [] : [f]) });
    const opening = rejection(alice.tunnel('bob', 'file', { timeout: 10_000 }));
    await alice.peers(); // the TOPEN has reached the relay
    server.close({ code: 1006, reason: 'cut' });
    expect(await opening).toBeInstanceOf(ClosedError);
  });

  it('rejects with CLOSED on a closed peer, and TypeError for a bad protocol', async () => {
    const { alice } = await pair();
    await expect(alice.tunnel('bob', 'bad protocol')).rejects.toBeInstanceOf(TypeError);
    await alice.close();
    await expect(alice.tunnel('bob', 'file')).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('tunnel - bytes and messages', () => {
  it('keeps bytes in order over many writes of mixed sizes, some larger than a chunk', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const received = readAll((await accepted.nth(1)).readable);
    const data = pattern(3_000_000, 2);
    const w = t.writable.getWriter();
    let off = 0;
    for (let i = 0; off < data.length; i++) {
      // 1 byte up to 3 chunks: most writes are small, every 50th is bigger than a chunk.
      const size = i % 50 === 0 ? 3 * DEFAULT_CHUNK_SIZE + 17 : 1 + ((i * 7919) % 20_000);
      await w.write(data.subarray(off, off + size));
      off += size;
    }
    await w.close();
    const got = await received;
    expect(got.length).toBe(data.length);
    expect(same(got, data)).toBe(true);
  });

  it('carries a stream through a window smaller than a chunk', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file', { window: 4096 });
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const received = readAll((await accepted.nth(1)).readable);
    const data = pattern(300_000, 3);
    const w = t.writable.getWriter();
    await w.write(data);
    await w.close();
    expect(same(await received, data)).toBe(true);
  });

  it('splits chunks under a small relay frame limit, so the limit never bites', async () => {
    await net.close();
    net = new Net({ limits: { maxFrameBytes: 16 * 1024 } });
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const received = readAll((await accepted.nth(1)).readable);
    const data = pattern(500_000, 4);
    const w = t.writable.getWriter();
    await w.write(data);
    await w.close();
    expect(same(await received, data)).toBe(true);
    expect(alice.connected && bob.connected).toBe(true);
    expect(net.router.metrics().protocolErrors).toBe(0);
  });

  it('messages mode: reassembles a value larger than a chunk and the window, then small ones in order', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting<unknown>(bob, 'rpc', { mode: 'messages' });
    const t = await alice.tunnel<unknown>('bob', 'rpc', { mode: 'messages', timeout: 5000 });
    const theirs = await accepted.nth(1);
    // Over 300 KiB encoded: more than a chunk (64 KiB) and more than bob's window (256 KiB).
    const big = { blob: pattern(300 * 1024, 5), text: 'x'.repeat(20_000), list: Array.from({ length: 1000 }, (_, i) => i) };
    const small = [1, 'two', { three: 3 }, null, [4, 5], new Uint8Array([6, 7]), new Uint8Array(0), undefined];
    const got: unknown[] = [];
    const reading = (async () => {
      for await (const m of theirs.readable) got.push(m);
    })();
    const w = t.writable.getWriter();
    await w.write(big);
    for (const m of small) await w.write(m);
    await w.close();
    await reading;
    expect(got).toHaveLength(1 + small.length);
    const first = got[0] as typeof big;
    expect(same(first.blob, big.blob)).toBe(true);
    expect(first.text).toBe(big.text);
    expect(first.list).toEqual(big.list);
    expect(got.slice(1)).toEqual(small);
    expect(theirs.bytesIn).toBe(t.bytesOut);
    expect(t.bytesOut).toBeGreaterThan(DEFAULT_TUNNEL_WINDOW + 20_000);
  });

  it('messages mode: the acceptor writes back, between peers of different codecs', async () => {
    const alice = await net.peer({ name: 'alice', codec: 'json' });
    const bob = await net.peer({ name: 'bob' });
    bob.onTunnel<{ n: number }>(
      'double',
      async (t) => {
        const w = t.writable.getWriter();
        for await (const m of t.readable) await w.write({ n: m.n * 2 });
        await w.close();
      },
      { mode: 'messages' },
    );
    const t = await alice.tunnel<{ n: number }>('bob', 'double', { mode: 'messages', timeout: 5000 });
    const w = t.writable.getWriter();
    for (let n = 0; n < 50; n++) await w.write({ n });
    await w.close();
    const got: number[] = [];
    for await (const m of t.readable) got.push(m.n);
    expect(got).toEqual(Array.from({ length: 50 }, (_, n) => n * 2));
  });

  it('messages mode: a message over maxMessageBytes is refused at the writer with LIMIT', async () => {
    const { alice, bob } = await pair();
    accepting(bob, 'rpc', { mode: 'messages' });
    const t = await alice.tunnel<unknown>('bob', 'rpc', { mode: 'messages', maxMessageBytes: 1000, timeout: 5000 });
    await expect(t.writable.getWriter().write(pattern(2000))).rejects.toMatchObject({ code: 'LIMIT' });
  });
});

describe('tunnel - flow control', () => {
  it('a paused reader bounds the writer, the relay and the reader to one window; reading resumes it', async () => {
    const alice = await net.peer({ name: 'alice' });
    // bob's transport is ours, to stop it delivering to him (a reader whose socket is full).
    const [client, server] = memoryTransportPair();
    net.router.accept(server);
    const bob = await createPeer(client, { name: 'bob' });
    net.peers.push(bob);
    bob.handle('ping', () => 'pong');
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const window = DEFAULT_TUNNEL_WINDOW;
    const data = pattern(1024 * 1024, 6);
    const w = t.writable.getWriter();

    // 1. bob's link delivers nothing: alice may send one window, and the relay holds it.
    client.pause();
    let written = false;
    const writing = w.write(data).then(() => (written = true));
    await expect.poll(() => t.bytesOut).toBe(window);
    await alice.peers(); // a round trip to the relay: everything alice sent has reached it
    const frameOverhead = 64 * 4; // a few TDATA headers and batch length prefixes
    const relayHeld = net.router.bufferedAmount(bob.id)!;
    expect(relayHeld).toBeGreaterThanOrEqual(window);
    expect(relayHeld).toBeLessThanOrEqual(window + frameOverhead);
    expect(t.bytesOut).toBe(window);
    expect(written).toBe(false);

    // 2. bob's link delivers again, but nobody reads: bob holds one window, the relay none.
    client.resume();
    await expect.poll(() => theirs.bytesIn).toBe(window);
    await roundTrip(alice);
    await roundTrip(alice);
    expect(theirs.bytesIn).toBe(window);
    expect(t.bytesOut).toBe(window);
    expect(net.router.bufferedAmount(bob.id)).toBeLessThanOrEqual(frameOverhead);
    expect(written).toBe(false);

    // 3. Reading drains it all, the write completes, and no read ever held more than the
    // window granted at that moment (which may grow once the reader keeps up).
    const reader = theirs.readable.getReader();
    const parts: Uint8Array[] = [];
    let read = 0;
    while (read < data.length) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      read += value.length;
      expect(theirs.bytesIn - read).toBeLessThanOrEqual(theirs.window);
      expect(t.bytesOut - read).toBeLessThanOrEqual(theirs.window);
    }
    await writing;
    expect(written).toBe(true);
    expect(same(concat(parts), data)).toBe(true);
  });

  it('a writer whose link is over its high-water mark waits for it to drain, whatever its credit: a request is never behind a whole window', async () => {
    // alice's transport is ours, to stop the relay reading it (a full socket towards the relay).
    const [client, server] = memoryTransportPair();
    net.router.accept(server);
    const alice = await createPeer(client, { name: 'alice' });
    net.peers.push(alice);
    const bob = await net.peer({ name: 'bob' });
    bob.handle('ping', () => 'pong');
    const window = 8 * 1024 * 1024;
    const accepted = accepting(bob, 'bulk', { window });
    const t = await alice.tunnel('bob', 'bulk', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const data = pattern(window, 21);
    const reading = readAll(theirs.readable);

    server.pause();
    const w = t.writable.getWriter();
    const writing = (async () => {
      for (let off = 0; off < data.length; off += 65536) await w.write(data.subarray(off, off + 65536));
      await w.close();
    })();
    // The credit would let alice queue all 8 MiB; the link's high-water mark (1 MiB) stops her.
    await expect.poll(() => client.bufferedAmount).toBeGreaterThan(1024 * 1024);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const hwm = 1024 * 1024;
    expect(t.bytesOut).toBeLessThanOrEqual(hwm + 65536);
    expect(client.bufferedAmount).toBeLessThanOrEqual(hwm + 65536 + 1024);
    // A request made now waits behind at most that, and answers once the link moves.
    const reply = alice.request('bob/ping', undefined, { timeout: 5000 });
    server.resume();
    await expect(reply).resolves.toBe('pong');
    await writing;
    expect(same(await reading, data)).toBe(true);
  });

  it('a bulk transfer, 20 other tunnels and requests share one link: all complete in order, and requests answer throughout', async () => {
    const { alice, bob } = await pair();
    bob.handle<number, number>('ping', (n) => n);
    const N = 20;
    const BULK = 16 * 1024 * 1024;
    const SMALL = 256 * 1024;
    // The acceptor learns its tunnels in opening order: tunnel 0 is the bulk one.
    const accepted: Tunnel[] = [];
    const results: Promise<Uint8Array>[] = [];
    bob.onTunnel('bulk', (t) => {
      accepted.push(t);
      results.push(readAll(t.readable));
    });
    const tunnels = await Promise.all(Array.from({ length: N + 1 }, () => alice.tunnel('bob', 'bulk', { timeout: 5000 })));
    const bulkIn = accepted[0]!;
    let transferring = true;
    /** Bulk bytes bob had received when each answer came. */
    const answeredAt: number[] = [];
    const requests = (async () => {
      for (let i = 0; transferring; i++) {
        expect(await alice.request<number>('bob/ping', i, { timeout: 5000 })).toBe(i);
        if (transferring) answeredAt.push(bulkIn.bytesIn);
      }
    })();
    const sent = tunnels.map((_, i) => pattern(i === 0 ? BULK : SMALL, 100 + i));
    await Promise.all(
      tunnels.map(async (t, i) => {
        const w = t.writable.getWriter();
        const data = sent[i]!;
        const step = i === 0 ? 1024 * 1024 : 10_000;
        for (let off = 0; off < data.length; off += step) await w.write(data.subarray(off, off + step));
        await w.close();
      }),
    );
    const got = await Promise.all(results);
    transferring = false;
    await requests;
    expect(got).toHaveLength(N + 1);
    got.forEach((bytes, i) => expect(same(bytes, sent[i]!), `tunnel ${i}`).toBe(true));
    // Requests were answered all through the bulk transfer, not only around it: between two
    // answers (and after the last one) the bulk moved by a few windows (one, as measured), never
    // by a large part of it. Counted in bytes, not time, so a slow machine does not change it.
    const gaps = [...answeredAt, BULK].map((at, i) => at - (i === 0 ? 0 : answeredAt[i - 1]!));
    expect(answeredAt.length).toBeGreaterThanOrEqual(15);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(4 * DEFAULT_TUNNEL_WINDOW);
  });
});

/**
 * A transport whose incoming messages arrive `ms` later (in order): a link with latency, where
 * a reader that keeps up waits for data and the window, not the reader, limits a transfer.
 */
function delayed(inner: Transport, ms: number): Transport {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let closed = false;
  const later = (fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  return {
    get status() {
      return inner.status;
    },
    get bufferedAmount() {
      return inner.bufferedAmount;
    },
    send: (data) => inner.send(data),
    listen: (h: TransportHandlers) =>
      inner.listen({
        message: (data) => later(() => !closed && h.message(data)),
        drain: () => h.drain(),
        close: (info) => {
          closed = true;
          for (const t of timers) clearTimeout(t);
          h.close(info);
        },
      }),
    pause: () => inner.pause(),
    resume: () => inner.resume(),
    close: (info) => inner.close(info),
  };
}

/** alice on the net, and bob on a link whose incoming messages are delayed by 2 ms. */
async function slowLinkPair(): Promise<{ alice: Peer; bob: Peer }> {
  const alice = await net.peer({ name: 'alice' });
  const [client, server] = memoryTransportPair();
  net.router.accept(server);
  const bob = await createPeer(delayed(client, 2), { name: 'bob' });
  net.peers.push(bob);
  return { alice, bob };
}

describe('tunnel - window growth', () => {
  /** Writes `data` in 64 KiB writes and reads it all, returning the largest unread backlog seen. */
  async function transfer(t: Tunnel, theirs: Tunnel, data: Uint8Array, onRead?: () => void): Promise<{ got: Uint8Array; maxAhead: number }> {
    const w = t.writable.getWriter();
    const writing = (async () => {
      for (let off = 0; off < data.length; off += 65536) await w.write(data.subarray(off, off + 65536));
      await w.close();
    })();
    const parts: Uint8Array[] = [];
    let read = 0;
    let maxAhead = 0;
    for await (const chunk of theirs.readable) {
      parts.push(chunk);
      read += chunk.length;
      // What the writer has sent beyond what was read never exceeds the window granted.
      maxAhead = Math.max(maxAhead, t.bytesOut - read);
      expect(t.bytesOut - read).toBeLessThanOrEqual(theirs.window);
      onRead?.();
    }
    await writing;
    return { got: concat(parts), maxAhead };
  }

  it('doubles the window while the reader keeps up and the writer runs out of credit, up to maxWindow', async () => {
    const { alice, bob } = await slowLinkPair();
    const accepted = accepting(bob, 'bulk');
    const t = await alice.tunnel('bob', 'bulk', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    expect(theirs.window).toBe(DEFAULT_TUNNEL_WINDOW);
    const windows = new Set<number>();
    const data = pattern(24 * 1024 * 1024, 11);
    const { got } = await transfer(t, theirs, data, () => windows.add(theirs.window));
    expect(same(got, data)).toBe(true);
    // 256 KiB, 512 KiB, 1 MiB, 2 MiB, 4 MiB: each step a doubling, and never past the maximum.
    const seen = [...windows].sort((a, b) => a - b);
    expect(seen.at(-1)).toBe(DEFAULT_TUNNEL_MAX_WINDOW);
    for (const w of seen) expect(Math.log2(w / DEFAULT_TUNNEL_WINDOW) % 1).toBe(0);
  });

  it('keeps a window given as an option fixed, unless maxWindow is given too', async () => {
    const { alice, bob } = await slowLinkPair();
    const fixed = accepting(bob, 'fixed', { window: 64 * 1024 });
    const growing = accepting(bob, 'growing', { window: 64 * 1024, maxWindow: 512 * 1024 });
    const data = pattern(8 * 1024 * 1024, 12);

    const t1 = await alice.tunnel('bob', 'fixed', { timeout: 5000 });
    const r1 = await transfer(t1, await fixed.nth(1), data);
    expect(same(r1.got, data)).toBe(true);
    expect((await fixed.nth(1)).window).toBe(64 * 1024);
    expect(r1.maxAhead).toBeLessThanOrEqual(64 * 1024);

    const t2 = await alice.tunnel('bob', 'growing', { timeout: 5000 });
    const r2 = await transfer(t2, await growing.nth(1), data);
    expect(same(r2.got, data)).toBe(true);
    expect((await growing.nth(1)).window).toBe(512 * 1024);
    expect(r2.maxAhead).toBeLessThanOrEqual(512 * 1024);
  });

  it('does not grow while the reader lags behind: a slow reader keeps the first window', async () => {
    const { alice, bob } = await slowLinkPair();
    bob.handle('ping', () => 'pong');
    const accepted = accepting(bob, 'slow');
    const t = await alice.tunnel('bob', 'slow', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const w = t.writable.getWriter();
    const writing = w.write(pattern(4 * 1024 * 1024, 13));
    writing.catch(() => {});
    await expect.poll(() => theirs.bytesIn).toBe(DEFAULT_TUNNEL_WINDOW);
    // Read one chunk at a time, letting the writer refill the window after each: every chunk
    // arrives to a reader that still has most of a window unread.
    const reader = theirs.readable.getReader();
    for (let i = 0; i < 20; i++) {
      await reader.read();
      await roundTrip(alice);
      await roundTrip(alice);
      expect(theirs.window).toBe(DEFAULT_TUNNEL_WINDOW);
      expect(t.bytesOut - theirs.bytesIn).toBe(0);
      expect(theirs.bytesIn - (i + 1) * DEFAULT_CHUNK_SIZE).toBeLessThanOrEqual(DEFAULT_TUNNEL_WINDOW);
    }
    t.abort('done');
  });

  it('a reader that stops after its window grew holds at most maxWindow; so does the relay', async () => {
    const { alice, bob } = await slowLinkPair();
    bob.handle('ping', () => 'pong');
    const maxWindow = 1024 * 1024;
    const accepted = accepting(bob, 'grow-then-stop', { maxWindow });
    const t = await alice.tunnel('bob', 'grow-then-stop', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const w = t.writable.getWriter();
    const writing = (async () => {
      for (let i = 0; i < 256; i++) await w.write(pattern(65536, 100 + i));
    })();
    writing.catch(() => {});
    // Read until the window has grown to its maximum, then stop reading.
    const reader = theirs.readable.getReader();
    let read = 0;
    while (theirs.window < maxWindow) read += (await reader.read()).value!.length;
    // The writer runs on until its credit is spent: up to a window ahead (credit is granted a
    // quarter window at a time, so at least three quarters).
    await expect.poll(() => t.bytesOut - read, { timeout: 5000 }).toBeGreaterThanOrEqual((maxWindow * 3) / 4);
    await roundTrip(alice);
    await roundTrip(alice);
    const ahead = t.bytesOut - read;
    expect(ahead).toBeLessThanOrEqual(maxWindow);
    await roundTrip(alice);
    expect(t.bytesOut - read).toBe(ahead);
    expect(theirs.bytesIn - read).toBeLessThanOrEqual(maxWindow);
    expect(net.router.bufferedAmount(bob.id)).toBeLessThanOrEqual(maxWindow + 64 * 16);
    t.abort('done');
  });

  it('refuses a maxWindow smaller than the window', async () => {
    const { alice, bob } = await pair();
    accepting(bob, 'x');
    await expect(alice.tunnel('bob', 'x', { window: 1024 * 1024, maxWindow: 512 * 1024 })).rejects.toThrow(RangeError);
  });
});

describe('tunnel - closing', () => {
  it('half-close: the reader sees the end and the other direction goes on', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const aw = t.writable.getWriter();
    await aw.write(pattern(1000, 7));
    await aw.close();
    // bob reads alice's side to its end...
    expect(same(await readAll(theirs.readable), pattern(1000, 7))).toBe(true);
    expect(theirs.state).toBe('open');
    // ...and still writes back, a lot, then closes his side too.
    const back = pattern(700_000, 8);
    const receiving = readAll(t.readable);
    const bw = theirs.writable.getWriter();
    await bw.write(back);
    await bw.close();
    expect(same(await receiving, back)).toBe(true);
    await expect.poll(() => [t.state, theirs.state]).toEqual(['closed', 'closed']);
  });

  it('close(): the other side reads what was sent, then ends; its writes fail with CLOSED', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const w = t.writable.getWriter();
    await w.write(pattern(5000, 9));
    await t.close('done here');
    expect(t.state).toBe('closed');
    expect(same(await readAll(theirs.readable), pattern(5000, 9))).toBe(true);
    expect(theirs.state).toBe('closed');
    const err = await rejection(theirs.writable.getWriter().write(new Uint8Array(1)));
    expect(err).toBeInstanceOf(ClosedError);
    expect((err as Error).message).toContain('done here');
  });

  it('abort(reason): the other side\'s readable and writable fail with REMOTE, code ABORTED, and the reason', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const reader = theirs.readable.getReader();
    const pendingRead = reader.read();
    t.abort('disk full');
    expect(t.state).toBe('closed');
    for (const err of [await rejection(pendingRead), await rejection(theirs.writable.getWriter().write(new Uint8Array(1)))]) {
      expect(err).toBeInstanceOf(RemoteError);
      expect(err).toMatchObject({ code: 'REMOTE', remoteCode: 'ABORTED', message: 'disk full' });
    }
    expect(theirs.state).toBe('closed');
    // The aborting side's own streams fail too.
    await expect(t.writable.getWriter().write(new Uint8Array(1))).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('a handler whose promise rejects aborts the tunnel with its message', async () => {
    const { alice, bob } = await pair();
    bob.onTunnel('file', async (t) => {
      await t.readable.getReader().read();
      throw new Error('bad header');
    });
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    await t.writable.getWriter().write(new Uint8Array([1]));
    const err = await rejection(t.readable.getReader().read());
    expect(err).toMatchObject({ code: 'REMOTE', remoteCode: 'ABORTED', message: 'bad header' });
  });

  it('cancelling the readable or aborting the writable aborts the tunnel for the other side', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t1 = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const t2 = await alice.tunnel('bob', 'file', { timeout: 5000 });
    await (await accepted.nth(1)).readable.cancel('not interested');
    await expect(t1.readable.getReader().read()).rejects.toMatchObject({ code: 'REMOTE', remoteCode: 'ABORTED', message: 'not interested' });
    await t2.writable.abort(new Error('changed my mind'));
    const theirs = await accepted.nth(2);
    await expect(theirs.readable.getReader().read()).rejects.toMatchObject({ code: 'REMOTE', remoteCode: 'ABORTED', message: 'changed my mind' });
    expect([t1.state, t2.state, theirs.state]).toEqual(['closed', 'closed', 'closed']);
  });
});

describe('tunnel - link loss', () => {
  /** Reads until the stream ends (undefined) or fails (its error). */
  async function readToError(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<unknown> {
    try {
      while (!(await reader.read()).done);
      return undefined;
    } catch (err) {
      return err;
    }
  }

  /** alice writes 2 MiB to bob, who reads slowly; resolves once bytes are flowing. */
  async function midTransfer(alice: Peer, bob: Peer) {
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const writing = t.writable.getWriter().write(pattern(2 * 1024 * 1024, 10));
    const reader = theirs.readable.getReader();
    let read = 0;
    while (read < 100_000) read += (await reader.read()).value!.length;
    return { t, theirs, writing, reader };
  }

  it('both ends fail with CLOSED when the writer\'s link is cut mid-transfer', async () => {
    const { peer: alice, server } = await net.link({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const { t, writing, reader } = await midTransfer(alice, bob);
    server.close({ code: 1006, reason: 'cut' });
    expect(await rejection(writing)).toBeInstanceOf(ClosedError);
    // bob's stream fails with CLOSED: it does not end as if the transfer were complete.
    expect(await readToError(reader)).toBeInstanceOf(ClosedError);
    expect(t.state).toBe('closed');
  });

  it('both ends fail with CLOSED when the reader\'s link is cut, and a reconnected peer does not resume', async () => {
    const alice = await net.peer({ name: 'alice' });
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: { initialDelay: 1, maxDelay: 10 } });
    const { theirs, writing, reader } = await midTransfer(alice, bob);
    const reconnected = new Promise<void>((resolve) => bob.once('reconnected', () => resolve()));
    dial.cut();
    expect(await rejection(writing)).toBeInstanceOf(ClosedError);
    expect(await readToError(reader)).toBeInstanceOf(ClosedError);
    expect(theirs.state).toBe('closed');
    await reconnected;
    // The old tunnel stays dead; a new one works.
    const accepted = accepting(bob, 'again');
    const t2 = await alice.tunnel('bob', 'again', { timeout: 5000 });
    const received = readAll((await accepted.nth(1)).readable);
    const w = t2.writable.getWriter();
    await w.write(pattern(1000, 11));
    await w.close();
    expect(same(await received, pattern(1000, 11))).toBe(true);
  });

  it('peer.close() fails its tunnels with CLOSED, and the other end\'s too', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const mine = rejection(t.readable.getReader().read());
    const other = rejection(theirs.readable.getReader().read());
    await alice.close();
    expect(await mine).toBeInstanceOf(ClosedError);
    expect(await rejection(t.writable.getWriter().write(new Uint8Array(1)))).toBeInstanceOf(ClosedError);
    expect(await other).toBeInstanceOf(ClosedError);
    expect(await rejection(theirs.writable.getWriter().write(new Uint8Array(1)))).toBeInstanceOf(ClosedError);
    expect([t.state, theirs.state]).toEqual(['closed', 'closed']);
  });
});

describe('tunnel - relay checks', () => {
  const hello = (name: string): Frame => frame(Kind.Hello, { version: PROTOCOL_VERSION, name, namespace: '', secret: '', token: '', session: '' });

  /** A raw client that has finished its handshake as `name`. */
  async function raw(name: string): Promise<RawClient> {
    const c = new RawClient(net.router);
    c.send(hello(name));
    await expect.poll(() => c.of(Kind.Welcome).length).toBe(1);
    return c;
  }

  it('drops tunnel frames from a peer that is not an end of the tunnel', async () => {
    const { alice, bob } = await pair();
    const accepted = accepting(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const mallory = await raw('mallory');
    const evil = new Uint8Array([0xee, 0xee]);
    // As the opener (dir 0) to bob, as the acceptor (dir 1) to alice, and a close of each side:
    // tid 1 is alice's first tunnel.
    mallory.send(
      frame(Kind.TData, { to: 'bob', from: '', tid: 1, dir: 0, eom: 1 }, evil, 3),
      frame(Kind.TData, { to: 'alice', from: '', tid: 1, dir: 1, eom: 1 }, evil, 3),
      frame(Kind.TCredit, { to: 'alice', from: '', tid: 1, dir: 1, bytes: 1 << 30 }),
      frame(Kind.TEnd, { to: 'bob', from: '', tid: 1, dir: 0 }),
      frame(Kind.TClose, { to: 'alice', from: '', tid: 1, dir: 1, code: 'ABORTED', message: 'gotcha' }),
    );
    await expect.poll(() => net.router.metrics().drops['NO_TUNNEL']).toBe(5);
    // The real tunnel is untouched and carries only alice's bytes.
    const received = readAll(theirs.readable);
    const w = t.writable.getWriter();
    await w.write(pattern(10_000, 12));
    await w.close();
    expect(same(await received, pattern(10_000, 12))).toBe(true);
    expect(t.bytesIn).toBe(0);
  });

  it('forgets a tunnel after both TENDs, and after a TCLOSE', async () => {
    const bob = await net.peer({ name: 'bob' });
    bob.onTunnel('sink', (t) => void t.writable.close());
    const mallory = await raw('mallory');
    const open = (tid: number): Frame => frame(Kind.TOpen, { to: 'bob/sink', from: '', tid, window: 65536 });
    const data = (tid: number): Frame => frame(Kind.TData, { to: 'bob', from: '', tid, dir: 0, eom: 1 }, pattern(10), 3);
    mallory.send(open(1), open(2));
    // bob accepts both and half-closes his side of each at once.
    await expect.poll(() => mallory.of(Kind.TEnd).map((f) => f.tid)).toEqual([1, 2]);
    mallory.send(data(1), data(2));
    await expect.poll(() => net.router.metrics().framesOut['TData']).toBe(2);
    mallory.send(
      frame(Kind.TEnd, { to: 'bob', from: '', tid: 1, dir: 0 }),
      frame(Kind.TClose, { to: 'bob', from: '', tid: 2, dir: 0, code: 'NORMAL', message: '' }),
      data(1),
      data(2),
    );
    await expect.poll(() => net.router.metrics().drops).toEqual({ NO_TUNNEL: 2 });
    expect(net.router.metrics().framesOut['TData']).toBe(2);
  });

  it('the relay cuts off a writer going beyond its credit: PROTOCOL at both ends, never more than the window held', async () => {
    // bob's transport is ours, to stop it delivering: only the relay can catch the excess.
    const [client, server] = memoryTransportPair();
    net.router.accept(server);
    const bob = await createPeer(client, { name: 'bob' });
    net.peers.push(bob);
    const accepted = accepting(bob, 'sink', { window: 4096 });
    const mallory = await raw('mallory');
    mallory.send(frame(Kind.TOpen, { to: 'bob/sink', from: '', tid: 7, window: 65536 }));
    await expect.poll(() => mallory.of(Kind.TAccept)).toEqual([expect.objectContaining({ tid: 7, window: 4096, from: 'bob' })]);
    const theirs = await accepted.nth(1);
    client.pause();
    // Exactly the window is fine; one byte more is not, nor is the flood after it.
    const data = (n: number): Frame => frame(Kind.TData, { to: 'bob', from: '', tid: 7, dir: 0, eom: 1 }, pattern(n), 3);
    mallory.send(data(4096), data(1), ...Array.from({ length: 10 }, () => data(60_000)));
    await expect.poll(() => mallory.of(Kind.TClose)).toEqual([expect.objectContaining({ tid: 7, code: 'PROTOCOL' })]);
    await expect.poll(() => net.router.metrics().drops).toEqual({ PROTOCOL: 1, NO_TUNNEL: 10 });
    // What the relay holds for bob: the window's worth and a TCLOSE, not the flood.
    expect(net.router.bufferedAmount(bob.id)).toBeLessThanOrEqual(4096 + 256);
    client.resume();
    await expect.poll(() => theirs.state).toBe('closed');
    // bob got the window's worth and not the excess; his streams fail with PROTOCOL.
    expect(theirs.bytesIn).toBe(4096);
    const err = await rejection(theirs.readable.getReader().read());
    expect(err).toBeInstanceOf(ProtocolError);
    expect(bob.connected).toBe(true);
  });

  it('a reader that receives more than it granted aborts the tunnel with PROTOCOL', async () => {
    const alice = await net.peer({ name: 'alice' });
    // Between the relay and bob, every tunnel data frame arrives twice (the relay counted once).
    const bob = await net.peer({ name: 'bob' }, { in: (f) => (f.kind === Kind.TData ? [f, f] : [f]) });
    const accepted = accepting(bob, 'file', { window: 8192 });
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted.nth(1);
    const writing = t.writable.getWriter().write(pattern(8192, 13));
    const err = await rejection(t.readable.getReader().read());
    expect(err).toBeInstanceOf(ProtocolError);
    expect(theirs.state).toBe('closed');
    await writing.catch(() => {});
  });
});

describe('tunnel - limits', () => {
  it('refuses a tunnel beyond maxTunnels per connection with LIMIT, and allows one again after a close', async () => {
    await net.close();
    net = new Net({ limits: { maxTunnels: 2 } });
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.onTunnel('t', () => {});
    const first = await alice.tunnel('bob', 't');
    await alice.tunnel('bob', 't');
    await expect(alice.tunnel('bob', 't')).rejects.toMatchObject({ code: 'LIMIT' });
    first.abort('done');
    await expect.poll(() => alice.tunnel('bob', 't').then((t) => t.state).catch((e: { code: string }) => e.code)).toBe('open');
  });
});
