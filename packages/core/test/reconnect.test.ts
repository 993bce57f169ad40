import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Kind, macrotask } from '../src/internal.js';
import {
  AuthError,
  ClosedError,
  CloseCode,
  createPeer,
  type CloseInfo,
  type Peer,
  type PeerEvents,
  type RequestContext,
  type RouterEvents,
  type Transport,
  type TransportHandlers,
} from '../src/index.js';
import { Dial, gate, Net, nextEvent, record, tapped } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await net.close();
});

/** Backoff short enough that reconnections happen within a few ms on real timers. */
const FAST = { initialDelay: 5, maxDelay: 20 };

/**
 * Fakes the clocks peers and the router use, but not setImmediate: memory transports deliver
 * on it, so links keep working while the test moves time.
 */
function fakeClocks(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
}

function next<K extends keyof PeerEvents>(peer: Peer, type: K): Promise<PeerEvents[K]> {
  return nextEvent<PeerEvents[K]>((fn) => peer.on(type, fn));
}

/**
 * Resolves once the peer has emitted `n` more events of `type`. Under fake timers this is how
 * tests wait: `expect.poll` would advance the fake clock while it retries.
 */
function events<K extends keyof PeerEvents>(peer: Peer, type: K, n = 1): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const off = peer.on(type, () => {
      if (++seen < n) return;
      off();
      resolve();
    });
  });
}

/** A request handler that answers only when the test releases it; records each call. */
function held<B, R>(answer: (body: B) => R): {
  handler: (body: B, ctx: RequestContext) => Promise<R>;
  calls: { body: B; deadline: number }[];
  /** Resolves once the handler has been called `n` times in all. */
  called(n: number): Promise<void>;
  release(): void;
} {
  const calls: { body: B; deadline: number }[] = [];
  const waiting: (() => void)[] = [];
  const watchers: { n: number; resolve(): void }[] = [];
  return {
    calls,
    called: (n) => (calls.length >= n ? Promise.resolve() : new Promise((resolve) => watchers.push({ n, resolve }))),
    handler: (body, ctx) =>
      new Promise<R>((resolve) => {
        calls.push({ body, deadline: ctx.deadline });
        for (const w of watchers) if (calls.length >= w.n) w.resolve();
        waiting.push(() => resolve(answer(body)));
      }),
    release: () => {
      for (const w of waiting.splice(0)) w();
    },
  };
}

/**
 * A client end whose link the test can kill on the peer's side alone: after `sever()` the peer
 * sees its transport close, while the router's end stays open and its frames pile up unread
 * (a half-dead socket the relay has not noticed). `closed` resolves when the router's side
 * finally closes it.
 */
interface Severable {
  transport: Transport;
  sever(): void;
  closed: Promise<CloseInfo>;
}

function severable(inner: Transport): Severable {
  let handlers: TransportHandlers | undefined;
  let severed = false;
  let closedBy!: (info: CloseInfo) => void;
  const closed = new Promise<CloseInfo>((resolve) => (closedBy = resolve));
  const transport: Transport = {
    get status() {
      return severed ? 'closed' : inner.status;
    },
    get bufferedAmount() {
      return inner.bufferedAmount;
    },
    send(data) {
      if (severed) throw new ClosedError('transport is closed');
      return inner.send(data);
    },
    listen(h) {
      handlers = h;
      inner.listen({
        message: (d) => {
          if (!severed) h.message(d);
        },
        drain: () => {
          if (!severed) h.drain();
        },
        close: (info) => {
          closedBy(info);
          if (!severed) h.close(info);
        },
      });
    },
    pause: () => inner.pause(),
    resume: () => inner.resume(),
    close: (info) => {
      if (!severed) inner.close(info);
    },
  };
  return {
    transport,
    closed,
    sever() {
      severed = true;
      inner.pause(); // what the router sends now is never read
      macrotask(() => handlers!.close({ code: CloseCode.ABNORMAL, reason: 'socket died' }));
    },
  };
}

describe('reconnect - events and restored state', () => {
  it('emits disconnected, then reconnecting with attempt and delay, then reconnected with the new id', async () => {
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    const events: [string, unknown][] = [];
    for (const type of ['disconnected', 'reconnecting', 'reconnected', 'close'] as const) bob.on(type, (e) => events.push([type, e]));
    const oldId = bob.id;
    const back = next(bob, 'reconnected');
    dial.cut();
    const { id } = await back;
    expect(events.map(([type]) => type)).toEqual(['disconnected', 'reconnecting', 'reconnected']);
    expect(events[0]![1]).toMatchObject({ code: CloseCode.ABNORMAL, reason: 'cut' });
    const attempt = events[1]![1] as PeerEvents['reconnecting'];
    expect(attempt.attempt).toBe(1);
    expect(attempt.delay).toBeGreaterThanOrEqual(0);
    expect(attempt.delay).toBeLessThanOrEqual(FAST.initialDelay);
    expect(events[2]![1]).toEqual({ attempt: 1, id });
    expect(id).toBe(bob.id);
    expect(id).not.toBe(oldId);
    expect(bob.name).toBe('bob');
    expect(bob.connected).toBe(true);
    expect(dial.calls).toBe(2);
  });

  it('claims its name again, re-joins its groups, re-subscribes and watches presence again', async () => {
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    bob.handle('echo', (body) => ({ bob: body }));
    await bob.join('workers');
    const news: unknown[] = [];
    await bob.subscribe('news.*', (body) => news.push(body)).ready;
    const joins = record(bob, 'peer-join');
    await bob.peers(); // answered after the WATCH: presence is watched from here on
    const alice = await net.peer({ name: 'alice' });
    await expect.poll(() => joins.map((j) => j.name)).toEqual(['alice']);

    const back = next(bob, 'reconnected');
    dial.cut();
    await back;
    // The relay answers PEERS after what bob re-sent before it on the new link.
    await bob.peers();
    expect(net.router.connections().find((c) => c.name === 'bob')).toMatchObject({ id: bob.id, groups: ['workers'], subscriptions: ['news.*'] });

    // The name: requests and sends by name reach the new link.
    await expect(alice.request('bob/echo', 1, { timeout: 5000 })).resolves.toEqual({ bob: 1 });
    const id = await alice.send('bob', 'after');
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ id, from: 'alice', body: 'after' });
    // The group: a request to it reaches bob.
    await expect(alice.request('workers/echo', 2, { timeout: 5000 })).resolves.toEqual({ bob: 2 });
    // The subscription: publishes after the reconnection arrive.
    alice.publish('news.today', 'headline');
    await expect.poll(() => news).toEqual(['headline']);
    // Presence: joins after the reconnection arrive.
    const carol = await net.peer({ name: 'carol' });
    await expect.poll(() => joins).toEqual([
      { name: 'alice', id: alice.id },
      { name: 'carol', id: carol.id },
    ]);
  });

  it('restores neither a group left nor a subscription dropped while disconnected, and sends a join made meanwhile', async () => {
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    await bob.join('workers');
    const sub = bob.subscribe('news.*', () => {});
    await sub.ready;
    const door = gate();
    dial.gate = door.promise;
    const down = next(bob, 'disconnected');
    dial.cut();
    await down;
    await bob.leave('workers');
    sub.unsubscribe();
    let joined = false;
    const late = bob.join('late').then(() => (joined = true));
    expect(joined).toBe(false);
    const back = next(bob, 'reconnected');
    door.open();
    await back;
    await late;
    await bob.peers();
    expect(net.router.connections()).toEqual([{ id: bob.id, name: 'bob', namespace: 'default', groups: ['late'], subscriptions: [] }]);
  });
});

describe('reconnect - the outbox', () => {
  it('keeps sends made while disconnected and delivers them after reconnecting, once each, in order', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const door = gate();
    dial.gate = door.promise;
    const down = next(alice, 'disconnected');
    dial.cut();
    await down;
    expect(alice.connected).toBe(false);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await alice.send('bob', i));
    expect(alice.outboxSize).toBe(10);
    expect(bob.mailbox().size).toBe(0);

    door.open();
    await expect.poll(() => delivered.length).toBe(10);
    // Acks of a later message come after any stray repeat of earlier ones.
    const last = await alice.send('bob', 'last', { waitForDelivery: true });
    expect(delivered).toEqual([...ids, last].map((id) => ({ id, to: 'bob' })));
    expect(bob.mailbox().peek(20).map((m) => [m.id, m.body])).toEqual([...ids.map((id, i) => [id, i]), [last, 'last']]);
    expect(bob.mailbox().stats().received).toBe(11);
    expect(alice.outboxSize).toBe(0);
  });

  it('resends what was unacked when the link dropped, and the receiver keeps one copy', async () => {
    // On the first link alice never hears an ack, so everything she sent on it is unacked.
    const dial = new Dial(net.router, (client, n) => (n === 1 ? tapped(client, { in: (f) => (f.kind === Kind.Ack ? [] : [f]) }) : client));
    const { peer: alice } = await net.reconnecting({ name: 'alice', reconnect: FAST }, dial);
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => bob.mailbox().size).toBe(5);
    expect(alice.outboxSize).toBe(5);

    dial.cut();
    await expect.poll(() => delivered.length).toBe(5);
    const last = await alice.send('bob', 'last', { waitForDelivery: true });
    expect(delivered.map((d) => d.id)).toEqual([...ids, last]);
    expect(bob.mailbox().peek(20).map((m) => m.body)).toEqual([0, 1, 2, 3, 4, 'last']);
    expect(bob.mailbox().stats().received).toBe(6);
  });

  it('delivers 1,000 messages once each, in order, with the sender\'s link cut five times mid-stream', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const bob = await net.peer({ name: 'bob', mailboxCapacity: 2000 });
    await streamWithCuts(alice, bob, dial, alice);
  });

  it('delivers 1,000 messages once each, in order, with the receiver\'s link cut five times mid-stream', async () => {
    // What the relay forwards into a dying link is lost: the sender's ack timeout covers that.
    const alice = await net.peer({ name: 'alice', ackTimeout: 200 });
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST, mailboxCapacity: 2000 });
    await streamWithCuts(alice, bob, dial, bob);
  });
});

/**
 * Sends 1,000 messages from alice to bob in five rounds of 200 and cuts the link of `cut` (made
 * by `dial`) while bob takes in the 50th new message of each round, so the rest of the round is
 * in flight or unacked. After odd rounds the next round is sent before the link is back, into
 * the outbox. Then every message must have landed once, in order, and been `delivered` once.
 */
async function streamWithCuts(alice: Peer, bob: Peer, dial: Dial, cut: Peer): Promise<void> {
  const ROUNDS = 5;
  const PER = 200;
  const delivered = record(alice, 'delivered');
  const drops = record(cut, 'disconnected');
  const trace = record(alice, 'trace');
  let taken = 0;
  bob.on('trace', (e) => {
    if (e.type === 'receive' && e.kind === 'Msg' && ++taken % PER === 50) dial.cut();
  });
  const ids: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const down = events(cut, 'disconnected');
    const back = events(cut, 'reconnected');
    ids.push(...(await Promise.all(Array.from({ length: PER }, (_, i) => alice.send('bob', r * PER + i)))));
    await down;
    if (r % 2 === 0) await back;
  }
  await expect.poll(() => delivered.length, { timeout: 10_000 }).toBe(ROUNDS * PER);
  // Acks of a later message come after any stray repeat of earlier ones.
  const last = await alice.send('bob', 'last', { waitForDelivery: true });
  expect(drops).toHaveLength(ROUNDS);
  expect(new Set(ids).size).toBe(ROUNDS * PER);
  expect(delivered.map((d) => d.id)).toEqual([...ids, last]);
  const got = bob.mailbox().peek(2000);
  expect(got.map((m) => m.id)).toEqual([...ids, last]);
  expect(got.map((m) => m.body)).toEqual([...Array.from({ length: ROUNDS * PER }, (_, i) => i), 'last']);
  expect(bob.mailbox().stats().received).toBe(ROUNDS * PER + 1);
  expect(alice.outboxSize).toBe(0);
  // Messages were sent more than once: landing once is the receiver's dedup at work.
  expect(trace.filter((e) => e.type === 'send' && e.kind === 'Msg').length).toBeGreaterThan(ROUNDS * PER + 1);
}

describe('reconnect - requests', () => {
  it('rejects a request in flight with CLOSED when the link drops', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const bob = await net.peer({ name: 'bob' });
    const slow = held((n: number) => n);
    bob.handle('slow', slow.handler);
    bob.handle('echo', (body) => body);
    const pending = alice.request('bob/slow', 1, { timeout: 5000 }).catch((e: unknown) => e);
    await expect.poll(() => slow.calls.length).toBe(1);
    const back = next(alice, 'reconnected');
    dial.cut();
    const err = await pending;
    expect(err).toBeInstanceOf(ClosedError);
    expect(err).toMatchObject({ code: 'CLOSED' });
    await back;
    slow.release();
    // Not sent again, and the link serves new requests.
    await expect(alice.request('bob/echo', 2, { timeout: 5000 })).resolves.toBe(2);
    expect(slow.calls).toHaveLength(1);
  });

  it('rejects new requests with CLOSED at once while disconnected', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const bob = await net.peer({ name: 'bob' });
    let calls = 0;
    bob.handle('echo', (body) => (calls++, body));
    const door = gate();
    dial.gate = door.promise;
    const down = next(alice, 'disconnected');
    dial.cut();
    await down;
    let settled: unknown;
    const attempt = alice.request('bob/echo', 1, { timeout: 5000 }).then(
      () => (settled = 'resolved'),
      (e: unknown) => (settled = e),
    );
    await Promise.resolve(); // one microtask is enough for a promise rejected at call time
    expect(settled).toBeInstanceOf(ClosedError);
    await attempt;
    await expect(alice.peers()).rejects.toMatchObject({ code: 'CLOSED' });
    const back = next(alice, 'reconnected');
    door.open();
    await back;
    await expect(alice.request('bob/echo', 2, { timeout: 5000 })).resolves.toBe(2);
    expect(calls).toBe(1);
  });

  it('with retry, sends an in-flight request again after reconnecting, with what is left of its deadline', async () => {
    vi.useFakeTimers({ toFake: ['Date'] }); // Date only: time passes while alice is away
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const bob = await net.peer({ name: 'bob' });
    const slow = held((n: number) => n * 10);
    bob.handle('slow', slow.handler);
    const deadline = Date.now() + 5000;
    const reply = alice.request('bob/slow', 4, { timeout: 5000, retry: true });
    await slow.called(1);
    const door = gate();
    dial.gate = door.promise;
    const down = next(alice, 'disconnected');
    dial.cut();
    await down;
    vi.setSystemTime(Date.now() + 2000);
    door.open();
    await slow.called(2);
    // The responder sees the original deadline, not a fresh 5 s.
    expect(slow.calls.map((c) => c.deadline)).toEqual([deadline, deadline]);
    slow.release();
    await expect(reply).resolves.toBe(40);
  });

  it('with retry, sends a request made while disconnected once the link is back', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    const bob = await net.peer({ name: 'bob' });
    let calls = 0;
    bob.handle('echo', (body) => (calls++, body));
    const door = gate();
    dial.gate = door.promise;
    const down = next(alice, 'disconnected');
    dial.cut();
    await down;
    const reply = alice.request('bob/echo', 'later', { timeout: 5000, retry: true });
    door.open();
    await expect(reply).resolves.toBe('later');
    expect(calls).toBe(1);
  });

  it('with retry, rejects with TIMEOUT when the link is not back before the deadline', async () => {
    const { peer: alice, dial } = await net.reconnecting({ name: 'alice', reconnect: FAST });
    await net.peer({ name: 'bob' });
    const door = gate();
    dial.gate = door.promise;
    const down = next(alice, 'disconnected');
    dial.cut();
    await down;
    await expect(alice.request('bob/echo', 1, { timeout: 50, retry: true })).rejects.toMatchObject({ code: 'TIMEOUT' });
    // Closed while its dial waits: the transport the dial yields afterwards is closed at once.
    await alice.close();
    door.open();
    await expect.poll(() => dial.servers.length).toBe(2);
    await expect.poll(() => net.router.connections().map((c) => c.name)).toEqual(['bob']);
    await expect.poll(() => dial.servers[1]!.status).toBe('closed');
  });
});

describe('reconnect - backoff', () => {
  it('waits a random delay within min(maxDelay, initialDelay·factor^(n−1)) before attempt n, and the ceiling grows', async () => {
    fakeClocks();
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: { initialDelay: 100, maxDelay: 5000, factor: 2 } });
    const attempts = record(bob, 'reconnecting');
    dial.failing = true;
    const first = events(bob, 'reconnecting');
    dial.cut();
    await first;
    const N = 30;
    while (attempts.length < N) {
      const another = events(bob, 'reconnecting');
      await vi.advanceTimersByTimeAsync(Math.ceil(attempts.at(-1)!.delay) + 1);
      await another;
    }
    // One advance can cover two attempts when the next delay is below a millisecond, so count
    // against what was recorded: the first connection, then one failed dial per attempt but the last.
    expect(attempts.length).toBeGreaterThanOrEqual(N);
    expect(dial.calls).toBe(attempts.length);
    attempts.forEach((a, i) => {
      expect(a.attempt).toBe(i + 1);
      expect(a.delay).toBeGreaterThanOrEqual(0);
      expect(a.delay).toBeLessThanOrEqual(Math.min(5000, 100 * 2 ** i));
    });
    // Jittered below a ceiling that has grown: twenty draws under 5000 all below 100 would be 0.02^20.
    expect(Math.max(...attempts.slice(10).map((a) => a.delay))).toBeGreaterThan(100);
    expect(new Set(attempts.map((a) => a.delay)).size).toBeGreaterThan(1);
  });

  it('with Math.random at its top, waits exactly the ceiling and dials no earlier', async () => {
    fakeClocks();
    vi.spyOn(Math, 'random').mockReturnValue(1);
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: { initialDelay: 100, maxDelay: 3000, factor: 3 } });
    const attempts = record(bob, 'reconnecting');
    dial.failing = true;
    const first = events(bob, 'reconnecting');
    dial.cut();
    await first;
    const ceilings = [100, 300, 900, 2700, 3000, 3000, 3000, 3000];
    for (let n = 1; n <= ceilings.length; n++) {
      expect(attempts[n - 1]).toEqual({ attempt: n, delay: ceilings[n - 1] });
      const calls = dial.calls;
      const another = events(bob, 'reconnecting');
      await vi.advanceTimersByTimeAsync(ceilings[n - 1]! - 1);
      expect(dial.calls).toBe(calls);
      await vi.advanceTimersByTimeAsync(1);
      expect(dial.calls).toBe(calls + 1);
      await another;
    }
    // The link comes back on the next attempt.
    dial.failing = false;
    const back = next(bob, 'reconnected');
    await vi.advanceTimersByTimeAsync(3000);
    await expect(back).resolves.toMatchObject({ attempt: ceilings.length + 1 });
  });

  it('closes the peer with an error once maxAttempts attempts in a row have failed', async () => {
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: { ...FAST, maxAttempts: 3 } });
    const attempts = record(bob, 'reconnecting');
    const door = gate();
    dial.gate = door.promise;
    const down = next(bob, 'disconnected');
    dial.cut();
    await down;
    // Waiting when the peer gives up: a send awaiting delivery and a request with retry.
    const waiting = bob.send('alice', 'never', { waitForDelivery: true }).catch((e: unknown) => e);
    const request = bob.request('alice/x', 1, { timeout: 5000, retry: true }).catch((e: unknown) => e);
    const closed = next(bob, 'close');
    dial.failing = true;
    door.open();
    const e = await closed;
    expect(e).toMatchObject({ code: CloseCode.ABNORMAL, reason: 'reconnection failed' });
    expect(e.error).toBeInstanceOf(ClosedError);
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(dial.calls).toBe(4);
    expect(bob.connected).toBe(false);
    await expect(waiting).resolves.toMatchObject({ code: 'CLOSED' });
    await expect(request).resolves.toMatchObject({ code: 'CLOSED' });
    await expect(bob.send('alice', 1)).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('counts attempts afresh after each successful reconnection', async () => {
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: { ...FAST, maxAttempts: 2 } });
    const attempts = record(bob, 'reconnecting');
    for (let round = 0; round < 3; round++) {
      // One failed attempt, then the next succeeds: within maxAttempts each time.
      dial.failing = true;
      const failed = nextEvent<PeerEvents['reconnecting']>((fn) => bob.on('reconnecting', (e) => e.attempt === 2 && fn(e)));
      const back = next(bob, 'reconnected');
      dial.cut();
      await failed;
      dial.failing = false;
      await expect(back).resolves.toMatchObject({ attempt: 2 });
    }
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 1, 2, 1, 2]);
    expect(bob.connected).toBe(true);
  });

  it('close() during backoff cancels the attempt, leaves no timers and dials no more', async () => {
    fakeClocks();
    vi.spyOn(Math, 'random').mockReturnValue(1);
    const before = vi.getTimerCount();
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: { initialDelay: 1000, maxDelay: 1000 } });
    const attempts = record(bob, 'reconnecting');
    const reconnected = record(bob, 'reconnected');
    const closes = record(bob, 'close');
    dial.failing = true;
    const first = events(bob, 'reconnecting');
    dial.cut();
    await first;
    // Two failed attempts; the relay, left without connections, stops its sweep meanwhile.
    const twoMore = events(bob, 'reconnecting', 2);
    await vi.advanceTimersByTimeAsync(2500);
    await twoMore;
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect(net.router.connectionCount).toBe(0);
    const calls = dial.calls;
    await bob.close();
    expect(closes).toEqual([{ code: CloseCode.NORMAL, reason: 'peer closed' }]);
    expect(vi.getTimerCount()).toBe(before);
    dial.failing = false;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(dial.calls).toBe(calls);
    expect(attempts).toHaveLength(3);
    expect(reconnected).toEqual([]);
    expect(closes).toHaveLength(1);
  });

  it('close() during a reconnection handshake closes that transport and dials no more', async () => {
    await net.close();
    const auth = gate();
    let n = 0;
    net = new Net({ auth: async () => void (n++ > 0 && (await auth.promise)) });
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    const reconnected = record(bob, 'reconnected');
    dial.cut();
    // The second HELLO waits in the auth hook.
    await expect.poll(() => n).toBe(2);
    await expect.poll(() => net.router.connectionCount).toBe(1);
    await bob.close();
    await expect.poll(() => net.router.connectionCount).toBe(0);
    auth.open();
    expect(dial.calls).toBe(2);
    expect(reconnected).toEqual([]);
    expect(net.router.connections()).toEqual([]);
  });
});

describe('reconnect - refusals that end it', () => {
  it('closes the peer instead of retrying when the relay refuses its credentials on reconnection', async () => {
    await net.close();
    let refuse = false;
    net = new Net({
      auth: () => {
        if (refuse) throw new AuthError('revoked');
      },
    });
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    const attempts = record(bob, 'reconnecting');
    const closed = next(bob, 'close');
    refuse = true;
    dial.cut();
    const e = await closed;
    expect(e.code).toBe(CloseCode.ABNORMAL);
    expect(e.reason).toContain('revoked');
    expect(e.error).toMatchObject({ code: 'CLOSED', cause: { code: 'AUTH', message: 'revoked' } });
    expect(attempts).toHaveLength(1);
    expect(dial.calls).toBe(2);
    expect(bob.connected).toBe(false);
    await expect(bob.send('alice', 1)).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('closes the peer instead of retrying when another peer took its name meanwhile', async () => {
    const { peer: bob, dial } = await net.reconnecting({ name: 'bob', reconnect: FAST });
    const door = gate();
    dial.gate = door.promise;
    const down = next(bob, 'disconnected');
    dial.cut();
    await down;
    await expect.poll(() => net.router.connections()).toEqual([]);
    const impostor = await net.peer({ name: 'bob' });
    const closed = next(bob, 'close');
    door.open();
    const e = await closed;
    expect(e).toMatchObject({ code: CloseCode.ABNORMAL, error: { code: 'CLOSED', cause: { code: 'NAME_TAKEN' } } });
    expect(dial.calls).toBe(2);
    expect(net.router.connections().map((c) => [c.name, c.id])).toEqual([['bob', impostor.id]]);
  });
});

describe('reconnect - session takeover', () => {
  it('takes its name back from its own half-dead link, which the relay closes with 4006', async () => {
    let first!: Severable;
    const dial = new Dial(net.router, (client, n) => (n === 1 ? (first = severable(client)).transport : client));
    const { peer: bob } = await net.reconnecting({ name: 'bob', reconnect: FAST }, dial);
    bob.handle('echo', (body) => ({ bob: body }));
    await bob.join('workers');
    const oldId = bob.id;
    const door = gate();
    dial.gate = door.promise;
    const down = next(bob, 'disconnected');
    first.sever();
    await down;
    // bob knows its link is dead; the relay does not, and still gives the name to it.
    expect(net.router.connections().map((c) => [c.name, c.id])).toEqual([['bob', oldId]]);

    const replaced = nextEvent<RouterEvents['disconnect']>((fn) => net.router.on('disconnect', fn));
    const back = next(bob, 'reconnected');
    door.open();
    const { id } = await back;
    await expect(replaced).resolves.toMatchObject({ id: oldId, name: 'bob', code: CloseCode.REPLACED });
    await expect(first.closed).resolves.toMatchObject({ code: CloseCode.REPLACED });
    expect(bob.connected).toBe(true);
    await bob.peers();
    expect(net.router.connections()).toEqual([{ id, name: 'bob', namespace: 'default', groups: ['workers'], subscriptions: [] }]);

    // Peers that come afterwards reach the new link by name and by group.
    const alice = await net.peer({ name: 'alice' });
    await expect(alice.request('bob/echo', 1, { timeout: 5000 })).resolves.toEqual({ bob: 1 });
    await expect(alice.request('workers/echo', 2, { timeout: 5000 })).resolves.toEqual({ bob: 2 });
    const sent = await alice.send('bob', 'hi', { waitForDelivery: true }).then(() => bob.receive({ timeout: 5000 }));
    expect(sent).toMatchObject({ from: 'alice', body: 'hi' });

    // A different peer (another session) claiming the name is still refused.
    await expect(net.peer({ name: 'bob' })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
    expect(bob.connected).toBe(true);
  });

  it('refuses a different session the name while the half-dead link still holds it', async () => {
    let first!: Severable;
    const dial = new Dial(net.router, (client, n) => (n === 1 ? (first = severable(client)).transport : client));
    const { peer: bob } = await net.reconnecting({ name: 'bob', reconnect: FAST }, dial);
    const oldId = bob.id;
    const door = gate();
    dial.gate = door.promise;
    const down = next(bob, 'disconnected');
    first.sever();
    await down;
    await expect(net.peer({ name: 'bob' })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
    expect(net.router.connections().map((c) => c.id)).toEqual([oldId]);
    const back = next(bob, 'reconnected');
    door.open();
    await back;
    await expect(first.closed).resolves.toMatchObject({ code: CloseCode.REPLACED });
  });

  it('sends again, after ackTimeout, what the relay forwarded into the half-dead link', async () => {
    const alice = await net.peer({ name: 'alice', ackTimeout: 200 });
    let first!: Severable;
    const dial = new Dial(net.router, (client, n) => (n === 1 ? (first = severable(client)).transport : client));
    const { peer: bob } = await net.reconnecting({ name: 'bob', reconnect: FAST }, dial);
    const delivered = record(alice, 'delivered');
    const door = gate();
    dial.gate = door.promise;
    const down = next(bob, 'disconnected');
    first.sever();
    await down;
    const ids = [await alice.send('bob', 1), await alice.send('bob', 2), await alice.send('bob', 3)];
    // Forwarded to the old link, where nobody reads them.
    await expect.poll(() => net.router.bufferedAmount(net.router.connections().find((c) => c.name === 'bob')!.id)).toBeGreaterThan(0);
    door.open();
    await expect.poll(() => delivered.length).toBe(3);
    expect(delivered.map((d) => d.id)).toEqual(ids);
    expect(bob.mailbox().peek(10).map((m) => m.body)).toEqual([1, 2, 3]);
    expect(bob.mailbox().stats().received).toBe(3);
  });
});

describe('no reconnection', () => {
  it('closes a peer made from a transport when its link drops: close event with an error, pending requests CLOSED', async () => {
    const { peer: alice, server } = await net.link({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const slow = held((n: number) => n);
    bob.handle('slow', slow.handler);
    const events = { disconnected: record(alice, 'disconnected'), reconnecting: record(alice, 'reconnecting') };
    // Even a request with retry: there is nothing to retry on.
    const pending = [
      alice.request('bob/slow', 1, { timeout: 5000 }).catch((e: unknown) => e),
      alice.request('bob/slow', 2, { timeout: 5000, retry: true }).catch((e: unknown) => e),
    ];
    await expect.poll(() => slow.calls.length).toBe(2);
    const closed = next(alice, 'close');
    server.close({ code: CloseCode.ABNORMAL, reason: 'cut' });
    const e = await closed;
    expect(e).toMatchObject({ code: CloseCode.ABNORMAL, reason: 'cut' });
    expect(e.error).toBeInstanceOf(ClosedError);
    for (const p of pending) await expect(p).resolves.toMatchObject({ code: 'CLOSED' });
    expect(events).toEqual({ disconnected: [], reconnecting: [] });
    expect(alice.connected).toBe(false);
    await expect(alice.send('bob', 1)).rejects.toMatchObject({ code: 'CLOSED' });
    slow.release();
  });

  it('closes a peer made from a factory with reconnect: false when its link drops, and dials no more', async () => {
    const dial = new Dial(net.router);
    const alice = await createPeer(dial.factory, { name: 'alice', reconnect: false });
    net.peers.push(alice);
    const bob = await net.peer({ name: 'bob' });
    const slow = held((n: number) => n);
    bob.handle('slow', slow.handler);
    const reconnecting = record(alice, 'reconnecting');
    const pending = alice.request('bob/slow', 1, { timeout: 5000, retry: true }).catch((e: unknown) => e);
    await expect.poll(() => slow.calls.length).toBe(1);
    const closed = next(alice, 'close');
    dial.cut();
    await expect(closed).resolves.toMatchObject({ code: CloseCode.ABNORMAL, error: { code: 'CLOSED' } });
    await expect(pending).resolves.toMatchObject({ code: 'CLOSED' });
    expect(reconnecting).toEqual([]);
    expect(dial.calls).toBe(1);
    slow.release();
  });
});

describe('send - ack timeout', () => {
  it('sends a message lost on the receiver\'s side again after ackTimeout, and it lands once, in order', async () => {
    fakeClocks();
    const alice = await net.peer({ name: 'alice', ackTimeout: 1000 });
    let lost = 0;
    // bob's side of the link loses the third MSG, once.
    const bob = await net.peer({ name: 'bob' }, { in: (f) => (f.kind === Kind.Msg && f.seq === 3 && lost++ === 0 ? [] : [f]) });
    const delivered = record(alice, 'delivered');
    const sends = record(alice, 'trace');
    const two = events(alice, 'delivered', 2);
    const ids = [await alice.send('bob', 1), await alice.send('bob', 2), await alice.send('bob', 3)];
    await two;
    expect(lost).toBe(1);
    const msgSends = (): number => sends.filter((e) => e.type === 'send' && e.kind === 'Msg').length;
    expect(msgSends()).toBe(3);
    // Not before ackTimeout has passed since the last progress...
    await vi.advanceTimersByTimeAsync(900);
    expect(msgSends()).toBe(3);
    // ...then from the oldest unacked one.
    const third = events(alice, 'delivered');
    await vi.advanceTimersByTimeAsync(400);
    expect(msgSends()).toBe(4);
    await third;
    const last = await alice.send('bob', 4, { waitForDelivery: true });
    expect(delivered.map((d) => d.id)).toEqual([...ids, last]);
    expect(bob.mailbox().peek(10).map((m) => m.body)).toEqual([1, 2, 3, 4]);
    expect(bob.mailbox().stats().received).toBe(4);
  });

  it('sends a message again after ackTimeout when its ack is lost, and the receiver keeps one copy', async () => {
    fakeClocks();
    const lost = gate();
    let acks = 0;
    // alice's side of the link loses the first ACK, once.
    const alice = await net.peer(
      { name: 'alice', ackTimeout: 1000 },
      { in: (f) => (f.kind === Kind.Ack && acks++ === 0 ? (lost.open(), []) : [f]) },
    );
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const id = await alice.send('bob', 'once');
    await lost.promise;
    expect(bob.mailbox().size).toBe(1);
    expect(delivered).toEqual([]);
    const resent = events(alice, 'delivered');
    await vi.advanceTimersByTimeAsync(1300);
    await resent;
    expect(delivered).toEqual([{ id, to: 'bob' }]);
    expect(bob.mailbox().stats().received).toBe(1);
  });
});
