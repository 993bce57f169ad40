/**
 * Fault injection against the delivery guarantee (docs/guarantees.md): a message accepted by
 * `send` lands in the recipient's mailbox exactly once, in send order per (sender, mailbox),
 * across dropped connections, relay restarts, an offline receiver (within the hold) and a sender
 * restart on a persistent store; `delivered` fires once per message.
 *
 * Everything runs over real sockets on 127.0.0.1 against relays in child processes
 * (fixtures/fault-relay.ts), which are SIGKILLed and restarted; links are cut by a TCP proxy
 * (fixtures/fault-proxy.ts); the restarting sender is a child process on a FileStore
 * (fixtures/fault-sender.ts); the backoff test's peer is a child process, so that "close() leaves
 * nothing running" is checked by the process exiting by itself (fixtures/fault-backoff.ts).
 * Random choices come from a seeded generator; the seed is printed, and MISSIVE_FAULT_SEED
 * replays a run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Rng } from '@missive/core/testing';
import { connect, type ConnectOptions, type Message, type Peer, type RelayOptions } from '../src/index.js';
import type { BackoffOptions, CloseReport } from './fixtures/fault-backoff.js';
import { TcpProxy } from './fixtures/fault-proxy.js';
import type { FaultRelayMetrics } from './fixtures/fault-relay.js';
import type { SenderOptions, SenderReport } from './fixtures/fault-sender.js';

/** Fast reconnection and ack timeout, and room for a whole stream in the outbox and mailbox. */
const FAST: ConnectOptions = {
  reconnect: { initialDelay: 20, maxDelay: 500 },
  ackTimeout: 1000,
  outboxCapacity: 20_000,
  mailboxCapacity: 20_000,
};

const SEED = Number(process.env.MISSIVE_FAULT_SEED ?? Date.now() % 1_000_000);

// ---- cleanup --------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
let cleanups: (() => unknown)[] = [];
/** Runs `fn` after the test, whatever happened (in reverse order of registration). */
function defer(fn: () => unknown): void {
  cleanups.push(fn);
}

afterEach(async () => {
  const fns = cleanups.reverse();
  cleanups = [];
  for (const fn of fns) {
    try {
      await fn();
    } catch {
      // cleanup goes on
    }
  }
  await Promise.all([...children].map(killChild));
});

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const done = once(child, 'exit');
  child.kill('SIGKILL');
  await done;
}

/** Resolves with `{ code, signal }` when the child exits. */
function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (exited(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

// ---- child processes ------------------------------------------------------------------------

/** Forks `fixtures/<name>` with `args` as JSON (run from TypeScript sources through tsx). */
function forkFixture(name: string, args: unknown): ChildProcess {
  const file = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const child = fork(file, [JSON.stringify(args)], {
    execArgv: ['--conditions=source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The child's next IPC message; rejects if it exits first or takes longer than `ms`. */
function nextMessage<T>(child: ChildProcess, what: string, ms = 15_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: unknown): void => {
      done();
      resolve(m as T);
    };
    const onExit = (code: number | null, signal: string | null): void => {
      done();
      reject(new Error(`${what} exited (${String(code ?? signal)}) before answering`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} did not answer within ${ms} ms`));
    }, ms);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** A relay in a child process (fixtures/fault-relay.ts). */
class RelayChild {
  #queue: Promise<unknown> = Promise.resolve();
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
  ) {}

  static async start(options: RelayOptions): Promise<RelayChild> {
    const child = forkFixture('fault-relay.ts', options);
    const { url, port } = await nextMessage<{ url: string; port: number }>(child, 'relay');
    return new RelayChild(child, url, port);
  }

  /** The router's hold gauge, frame counters and drops. */
  metrics(): Promise<FaultRelayMetrics> {
    const next = this.#queue.then(() => {
      const reply = nextMessage<FaultRelayMetrics>(this.child, 'relay metrics');
      this.child.send({ cmd: 'metrics' });
      return reply;
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  /** SIGKILL: no goodbye to anyone; resolves once the process is gone (its port is free). */
  kill(): Promise<void> {
    return killChild(this.child);
  }

  /** A graceful shutdown (peers see 1001); resolves once the process is gone. */
  async stop(): Promise<void> {
    const done = exitOf(this.child);
    this.child.send({ cmd: 'close' });
    await withTimeout(done, 10_000, 'relay did not stop');
  }
}

/** A port that was free a moment ago (for a relay that must come back on the same port). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---- observing a stream ---------------------------------------------------------------------

/** Conditions re-checked whenever something happens (`poke`), each with a deadline. */
class Progress {
  readonly #waiters = new Set<() => void>();
  readonly poke = (): void => {
    for (const w of [...this.#waiters]) w();
  };

  until(check: () => boolean, ms: number, what: () => string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#waiters.delete(w);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`timed out after ${ms} ms waiting for ${what()} (seed ${SEED})`));
      }, ms);
      this.#waiters.add(w);
    });
  }
}

interface Recorded {
  /** Messages in the receiver's inbox, in arrival order. */
  received: Message<{ n: number }>[];
  /** `delivered` ids at the sender, in event order. */
  delivered: string[];
  /** Ids of every `expired` event at the sender. */
  expired: string[];
  /** Link drops and reconnections seen by each side. */
  drops: { sender: number; receiver: number };
  reconnects: { sender: number; receiver: number };
}

/** Records what a sender and a receiver see; every event pokes `progress`. */
function record(sender: Peer, receiver: Peer, progress: Progress, onMessage?: (m: Message<{ n: number }>) => void): Recorded {
  const r: Recorded = { received: [], delivered: [], expired: [], drops: { sender: 0, receiver: 0 }, reconnects: { sender: 0, receiver: 0 } };
  sender.on('delivered', ({ id }) => {
    r.delivered.push(id);
    progress.poke();
  });
  sender.on('expired', ({ ids }) => {
    r.expired.push(...ids);
    progress.poke();
  });
  for (const [side, peer] of [['sender', sender], ['receiver', receiver]] as const) {
    peer.on('disconnected', () => {
      r.drops[side]++;
      progress.poke();
    });
    peer.on('reconnected', () => {
      r.reconnects[side]++;
      progress.poke();
    });
  }
  void (async () => {
    for await (const m of receiver.mailbox<{ n: number }>()) {
      r.received.push(m);
      onMessage?.(m);
      progress.poke();
    }
  })();
  return r;
}

/**
 * How a list of ids differs from the expected one, in a form that prints well even for 10,000
 * ids: all zeros / -1 means identical.
 */
function compare(got: readonly string[], want: readonly string[]): { duplicates: number; missing: number; unexpected: number; firstMismatch: number } {
  const seen = new Set<string>();
  let duplicates = 0;
  for (const id of got) {
    if (seen.has(id)) duplicates++;
    seen.add(id);
  }
  const wanted = new Set(want);
  let firstMismatch = -1;
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) {
      firstMismatch = i;
      break;
    }
  }
  return {
    duplicates,
    missing: want.filter((id) => !seen.has(id)).length,
    unexpected: [...seen].filter((id) => !wanted.has(id)).length,
    firstMismatch,
  };
}

const IDENTICAL = { duplicates: 0, missing: 0, unexpected: 0, firstMismatch: -1 };

/**
 * Sends `{ n }` for n = from … from + count − 1, letting I/O run after every `burst` sends (so
 * messages are in flight all along); resolves with the ids.
 */
async function sendNumbered(sender: Peer, to: string, from: number, count: number, before?: (n: number) => void, burst = 50): Promise<string[]> {
  const ids: string[] = [];
  for (let n = from; n < from + count; n++) {
    before?.(n);
    ids.push(await sender.send(to, { n }));
    if (ids.length % burst === 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return ids;
}

async function peer(url: string, options: ConnectOptions): Promise<Peer> {
  const p = await connect(url, options);
  defer(() => p.close());
  return p;
}

async function proxyTo(port: number): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(port);
  defer(() => proxy.close());
  return proxy;
}

/**
 * Sends one last message and waits for both its delivery and its arrival: the stream before it
 * is settled (the receiver accepts only in order), so counts taken afterwards are final.
 */
async function settle(sender: Peer, to: string, r: Recorded, progress: Progress): Promise<string> {
  const id = await withTimeout(sender.send(to, { n: -1 }, { waitForDelivery: true }), 15_000, 'final message not delivered');
  await progress.until(() => r.received.some((m) => m.id === id), 5000, () => 'the final message in the mailbox');
  return id;
}

/**
 * A stream from a sender process on a FileStore (fixtures/fault-sender.ts) to a receiver in this
 * process, numbered 1..total; `start()` (re)starts the sender on the same store directory.
 */
async function durableStream(url: string, total: number) {
  const dir = await mkdtemp(join(tmpdir(), 'missive-faults-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const receiver = await peer(url, { ...FAST, name: 'receiver' });
  const progress = new Progress();
  const received: Message<{ n: number }>[] = [];
  void (async () => {
    for await (const m of receiver.mailbox<{ n: number }>()) {
      received.push(m);
      progress.poke();
    }
  })();
  const options: SenderOptions = { url, dir, name: 'durable', to: 'receiver', total, concurrency: 32 };
  type Ready = Extract<SenderReport, { ready: true }>;
  const s = {
    progress,
    received,
    /** Ids of sends that resolved, by n, over every run of the sender. */
    resolved: new Map<number, string>(),
    errors: [] as string[],
    retries: 0,
    done: false,
    async start(): Promise<{ child: ChildProcess; ready: Ready }> {
      s.done = false;
      const child = forkFixture('fault-sender.ts', options);
      let ready: Ready | undefined;
      child.on('message', (m: SenderReport) => {
        if ('ok' in m) s.resolved.set(m.n, m.ok);
        else if ('ready' in m) ready = m;
        else if ('retrying' in m) s.retries++;
        else if ('done' in m) s.done = true;
        else s.errors.push(m.error);
        progress.poke();
      });
      // An exit the test did not cause (child.kill) is a failure.
      void exitOf(child).then(({ code, signal }) => {
        if (!child.killed) s.errors.push(`sender exited by itself (${String(code ?? signal)})`);
        progress.poke();
      });
      await progress.until(() => ready !== undefined || s.errors.length > 0, 20_000, () => 'the sender to connect');
      if (!ready) throw new Error(`sender did not start: ${s.errors.join('; ')}`);
      return { child, ready };
    },
    /** Waits until the receiver has all `total` and the sender's outbox is empty. */
    finished(): Promise<void> {
      return progress.until(
        () => (s.done && received.length >= total) || s.errors.length > 0,
        30_000,
        () => `all ${total} received (${received.length}) and the sender's outbox empty (${String(s.done)})`,
      );
    },
    /** The guarantee, after a sender restart from `ready` (first run's origin `origin`). */
    check(origin: string, ready: Ready, atKill: { maxResolved: number }): void {
      expect(s.errors).toEqual([]);
      // The same stream: same origin, numbering goes on after what the store kept.
      expect(ready.origin).toBe(origin);
      expect(ready.next).toBeGreaterThan(atKill.maxResolved);
      // One stream, numbered 1..total: every message exactly once, in order. That includes every
      // send that resolved before the kill, and any whose append was durable but whose send had
      // not reported yet (the store resent them).
      const seqs = received.map((m) => Number(m.id.split(':')[1]));
      expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(received.map((m) => m.body.n)).toEqual(seqs);
      expect(new Set(received.map((m) => m.id)).size).toBe(total);
      expect(received.every((m) => m.id.startsWith(`${origin}:`) && m.from === 'durable')).toBe(true);
      const ids = new Set(received.map((m) => m.id));
      expect([...s.resolved.values()].filter((id) => !ids.has(id))).toEqual([]);
    },
  };
  return s;
}

// ---- the tests ------------------------------------------------------------------------------

describe('delivery under faults', () => {
  it('relay SIGKILLed halfway through 10,000 sends and restarted on its port: each arrives once, in order; delivered fires once each', async () => {
    const COUNT = 10_000;
    const port = await freePort();
    let relay = await RelayChild.start({ port });
    const receiver = await peer(relay.url, { ...FAST, name: 'receiver' });
    const sender = await peer(relay.url, { ...FAST, name: 'sender' });
    const progress = new Progress();
    const r = record(sender, receiver, progress);

    let restarted: Promise<RelayChild> | undefined;
    let atKill = { received: 0, unacked: 0 };
    const ids = await sendNumbered(sender, 'receiver', 0, COUNT, (n) => {
      if (n !== COUNT / 2) return;
      atKill = { received: r.received.length, unacked: sender.outboxSize };
      // Killed now, mid-stream: sends go on (into the outbox) while it is down and restarting.
      restarted = relay.kill().then(() => RelayChild.start({ port }));
    }, 250);
    relay = await restarted!;
    // The kill landed with messages in flight: sent, not yet acked.
    expect(atKill.unacked).toBeGreaterThan(0);

    await progress.until(
      () => r.received.length >= COUNT && r.delivered.length >= COUNT,
      30_000,
      () => `${COUNT} received and delivered (received ${r.received.length}, delivered ${r.delivered.length})`,
    );
    const last = await settle(sender, 'receiver', r, progress);
    const all = [...ids, last];

    expect(compare(r.received.map((m) => m.id), all)).toEqual(IDENTICAL);
    expect(r.received.map((m) => m.body.n)).toEqual([...Array.from({ length: COUNT }, (_, i) => i), -1]);
    expect(compare([...r.delivered].sort(), [...all].sort())).toEqual(IDENTICAL);
    expect(sender.outboxSize).toBe(0);
    // Both really lost the relay and came back to the new one.
    expect(r.drops).toEqual({ sender: 1, receiver: 1 });
    expect(r.reconnects).toEqual({ sender: 1, receiver: 1 });
    console.log(`relay kill at send ${COUNT / 2}: ${atKill.received} received, ${atKill.unacked} unacked at that moment`);
  }, 40_000);

  it('links cut at random points 20 times during 5,000 sends: each arrives once, in order; delivered fires once each', async () => {
    const COUNT = 5000;
    const CUTS = 20;
    const rng = new Rng(SEED);
    console.log(`link cuts: seed ${SEED}`);
    const relay = await RelayChild.start({ port: 0 });
    const proxies = { sender: await proxyTo(relay.port), receiver: await proxyTo(relay.port) };
    const receiver = await peer(proxies.receiver.url, { ...FAST, name: 'receiver' });
    const sender = await peer(proxies.sender.url, { ...FAST, name: 'sender' });
    const progress = new Progress();

    // Cut k fires once the receiver holds about 150 + 220k messages (+0..180), then 0-30 ms later
    // (the stream moves in window-sized batches: the delay lands the cut at a random phase of
    // them, with messages or acks in flight), on one side or both.
    const at = Array.from({ length: CUTS }, (_, k) => Math.floor(150 + 220 * k + rng.next() * 180));
    let next = 0;
    let cuts = 0;
    let stopped = false;
    defer(() => (stopped = true));
    const log: string[] = [];
    const cut = (): void => {
      if (stopped) return;
      const pick = rng.next();
      const sides = pick < 1 / 3 ? (['sender'] as const) : pick < 2 / 3 ? (['receiver'] as const) : (['sender', 'receiver'] as const);
      const n = sides.reduce((sum, side) => sum + proxies[side].cut(), 0);
      if (n > 0) {
        cuts++;
        log.push(`${sides.join('+')}@${r.received.length}`);
        progress.poke();
      } else if (cuts < CUTS) {
        // That side is still reconnecting from an earlier cut: cut again once it is back.
        setTimeout(cut, 5);
      }
    };
    const r = record(sender, receiver, progress, () => {
      while (next < CUTS && r.received.length >= at[next]!) {
        next++;
        setTimeout(cut, rng.next() * 30);
      }
    });

    const ids = await sendNumbered(sender, 'receiver', 0, COUNT);
    await progress.until(
      () => cuts >= CUTS && r.received.length >= COUNT && r.delivered.length >= COUNT,
      30_000,
      () => `${CUTS} cuts and ${COUNT} received and delivered (cuts ${cuts}, received ${r.received.length}, delivered ${r.delivered.length})`,
    );
    const last = await settle(sender, 'receiver', r, progress);
    const all = [...ids, last];

    // Every cut destroyed at least one live TCP connection. Some land on a link still in its
    // handshake (a reconnection), which fails and is retried without a `disconnected` event.
    expect(cuts).toBe(CUTS);
    expect(r.drops.sender).toBeGreaterThan(0);
    expect(r.drops.receiver).toBeGreaterThan(0);
    expect(compare(r.received.map((m) => m.id), all)).toEqual(IDENTICAL);
    expect(compare([...r.delivered].sort(), [...all].sort())).toEqual(IDENTICAL);
    expect(sender.outboxSize).toBe(0);
    console.log(`cuts (side@received): ${log.join(' ')}; drops ${JSON.stringify(r.drops)}`);
  }, 40_000);

  it('receiver offline for a while: the relay holds what is sent meanwhile and delivers it in order when it is back', async () => {
    const ACK_TIMEOUT = 500;
    const relay = await RelayChild.start({ port: 0 });
    const proxy = await proxyTo(relay.port);
    const receiver = await peer(proxy.url, { ...FAST, name: 'receiver', reconnect: { initialDelay: 20, maxDelay: 200 } });
    const sender = await peer(relay.url, { ...FAST, name: 'sender', ackTimeout: ACK_TIMEOUT });
    const progress = new Progress();
    const r = record(sender, receiver, progress);
    const left: string[] = [];
    sender.on('peer-leave', ({ name }) => {
      left.push(name);
      progress.poke();
    });
    await sender.peers(); // the presence watch is in place

    const before = await sendNumbered(sender, 'receiver', 0, 100);
    await progress.until(() => r.delivered.length === 100, 10_000, () => '100 delivered before going offline');

    proxy.down();
    await progress.until(() => left.includes('receiver'), 5000, () => 'the relay to see the receiver leave');
    const during = await sendNumbered(sender, 'receiver', 100, 300);
    await expect.poll(async () => (await relay.metrics()).held.messages, { timeout: 5000, interval: 20 }).toBe(300);
    const sentBefore = (await relay.metrics()).framesIn.Msg;
    // Offline "for a while": past the sender's ack timeout several times over. The relay told the
    // sender it holds them, so they are not all sent again meanwhile: at most the oldest, once per
    // ack timeout, as a probe (which the relay answers HELD again, keeping one copy).
    await new Promise((resolve) => setTimeout(resolve, 3 * ACK_TIMEOUT));
    const m = await relay.metrics();
    expect(m.held.messages).toBe(300);
    expect(m.framesIn.Msg! - sentBefore!).toBeLessThanOrEqual(4);
    expect(r.received).toHaveLength(100);
    expect(r.drops.receiver).toBe(1);

    proxy.up();
    await progress.until(() => r.received.length >= 400 && r.delivered.length >= 400, 10_000, () => `400 received (${r.received.length})`);
    const last = await settle(sender, 'receiver', r, progress);
    const all = [...before, ...during, last];
    expect(compare(r.received.map((x) => x.id), all)).toEqual(IDENTICAL);
    expect(compare([...r.delivered].sort(), [...all].sort())).toEqual(IDENTICAL);
    expect(r.expired).toEqual([]);
    expect((await relay.metrics()).held.messages).toBe(0);
  }, 30_000);

  it('receiver away longer than holdTtl: expired fires for exactly the held messages, none of which is ever delivered', async () => {
    const HOLD_TTL = 500;
    const relay = await RelayChild.start({ port: 0, limits: { holdTtl: HOLD_TTL } });
    const proxies = { sender: await proxyTo(relay.port), receiver: await proxyTo(relay.port) };
    const fast = { ...FAST, reconnect: { initialDelay: 20, maxDelay: 200 } };
    const receiver = await peer(proxies.receiver.url, { ...fast, name: 'receiver' });
    const sender = await peer(proxies.sender.url, { ...fast, name: 'sender' });
    const progress = new Progress();
    const r = record(sender, receiver, progress);
    const presence: string[] = [];
    sender.on('peer-leave', ({ name }) => {
      presence.push(`-${name}`);
      progress.poke();
    });
    sender.on('peer-join', ({ name }) => {
      presence.push(`+${name}`);
      progress.poke();
    });
    await sender.peers(); // the presence watch is in place
    const count = (s: string): number => presence.filter((p) => p === s).length;

    // 1. Delivered normally.
    const first = await sendNumbered(sender, 'receiver', 0, 20);
    await progress.until(() => r.delivered.length === 20, 10_000, () => '20 delivered');

    // 2. The receiver goes away; what is sent now is held, then expires while the sender is
    // connected: the relay tells it, and each id comes back in an `expired` event.
    proxies.receiver.down();
    await progress.until(() => count('-receiver') === 1, 5000, () => 'the receiver to leave');
    const lost = await sendNumbered(sender, 'receiver', 20, 50);
    await progress.until(() => r.expired.length >= 50, 5000, () => `50 expired (${r.expired.length})`);
    expect(compare([...r.expired].sort(), [...lost].sort())).toEqual(IDENTICAL);
    expect(sender.outboxSize).toBe(0);
    expect((await relay.metrics()).held.messages).toBe(0);

    // 3. The receiver is back: nothing of the expired ones comes, and the stream goes on after them.
    proxies.receiver.up();
    await progress.until(() => r.reconnects.receiver === 1, 5000, () => 'the receiver to reconnect');
    const after = await sendNumbered(sender, 'receiver', 70, 20);
    await progress.until(() => r.delivered.length === 40, 10_000, () => `40 delivered (${r.delivered.length})`);

    // 4. If the sender is offline when a hold expires, nobody can tell it: the relay drops the
    // held copies silently, but the sender still has them in its outbox (they were never acked),
    // resends them when its link is back, and the relay holds them again for a new TTL (or
    // forwards them, if the receiver is back by then). Nothing is lost and nothing expires
    // unreported; the TTL only restarts.
    proxies.receiver.down();
    await progress.until(() => count('-receiver') === 2, 5000, () => 'the receiver to leave again');
    const resent = await sendNumbered(sender, 'receiver', 90, 30);
    await expect.poll(async () => (await relay.metrics()).held.messages, { timeout: 5000, interval: 20 }).toBe(30);
    const expiredBefore = (await relay.metrics()).drops.EXPIRED ?? 0;
    proxies.sender.down();
    await expect.poll(async () => (await relay.metrics()).drops.EXPIRED ?? 0, { timeout: 5000, interval: 20 }).toBe(expiredBefore + 30);
    expect((await relay.metrics()).held.messages).toBe(0);
    expect(sender.outboxSize).toBe(30);
    proxies.receiver.up();
    proxies.sender.up();
    await progress.until(() => r.delivered.length === 70, 10_000, () => `70 delivered (${r.delivered.length})`);

    const last = await settle(sender, 'receiver', r, progress);
    const delivered = [...first, ...after, ...resent, last];
    expect(compare(r.received.map((x) => x.id), delivered)).toEqual(IDENTICAL);
    expect(compare([...r.delivered].sort(), [...delivered].sort())).toEqual(IDENTICAL);
    // Exactly the ones never delivered expired, each reported once.
    expect(compare([...r.expired].sort(), [...lost].sort())).toEqual(IDENTICAL);
    expect(r.received.map((x) => x.body.n)).toEqual([...Array.from({ length: 20 }, (_, i) => i), ...Array.from({ length: 50 }, (_, i) => 70 + i), -1]);
  }, 30_000);

  it('sender on a FileStore SIGKILLed mid-stream and restarted: every resolved send arrives, each once, in sequence order', async () => {
    const TOTAL = 3000;
    const killAfter = 800 + Math.floor(new Rng(SEED + 1).next() * 800);
    console.log(`sender restart: seed ${SEED}, kill after ${killAfter} resolved sends`);
    const relay = await RelayChild.start({ port: 0 });
    const stream = await durableStream(relay.url, TOTAL);

    const first = await stream.start();
    expect(first.ready).toMatchObject({ next: 1, unacked: 0, attempts: 1 });
    await stream.progress.until(() => stream.resolved.size >= killAfter || stream.errors.length > 0, 20_000, () => `${killAfter} sends resolved (${stream.resolved.size})`);
    await killChild(first.child);
    const atKill = { resolved: stream.resolved.size, maxResolved: Math.max(...stream.resolved.keys()), received: stream.received.length };

    const second = await stream.start();
    await stream.finished();
    stream.check(first.ready.origin, second.ready, atKill);
    console.log(
      `sender killed with ${atKill.resolved} sends resolved, ${atKill.received} received; ` +
        `restarted with ${second.ready.unacked} unacked in its store, next ${second.ready.next}`,
    );
  }, 40_000);

  it('sender on a FileStore restarted while the relay is down too: it retries connect() on a fresh FileStore and resends when the relay is back', async () => {
    const TOTAL = 600;
    const port = await freePort();
    let relay = await RelayChild.start({ port });
    const stream = await durableStream(relay.url, TOTAL);

    const first = await stream.start();
    await stream.progress.until(() => stream.resolved.size >= 200 || stream.errors.length > 0, 20_000, () => `200 sends resolved (${stream.resolved.size})`);
    await Promise.all([killChild(first.child), relay.kill()]);
    const atKill = { resolved: stream.resolved.size, maxResolved: Math.max(...stream.resolved.keys()), received: stream.received.length };

    // The sender comes back first and finds no relay: its connect() fails and is retried, each
    // time on a new FileStore over the same directory (the failed attempt must have let go of it).
    const second = stream.start();
    second.catch(() => {}); // awaited below
    await stream.progress.until(() => stream.retries >= 2 || stream.errors.length > 0, 15_000, () => 'the restarted sender to retry connecting');
    relay = await RelayChild.start({ port });
    const { ready } = await second;
    expect(ready.attempts).toBeGreaterThan(2);
    await stream.finished();
    stream.check(first.ready.origin, ready, atKill);
  }, 40_000);

  it('reconnect backoff against a real relay: jittered delays grow within their bounds, and close() during backoff leaves nothing running', async () => {
    const relay = await RelayChild.start({ port: 0 });
    const base = { url: relay.url, initialDelay: 10, maxDelay: 320, factor: 2, closeAtAttempt: 12 };
    const ceiling = (n: number): number => Math.min(base.maxDelay, base.initialDelay * base.factor ** (n - 1));
    const runs = await Promise.all(
      (['in-listener', 'mid-backoff'] as const).map(async (closeMode) => {
        const options: BackoffOptions = { ...base, name: `backoff-${closeMode}`, closeMode };
        const child = forkFixture('fault-backoff.ts', options);
        expect(await nextMessage(child, 'backoff peer')).toEqual({ ready: true });
        const attempts: { attempt: number; delay: number; at: number }[] = [];
        const exit = exitOf(child);
        const closed = new Promise<CloseReport>((resolve) => {
          child.on('message', (m: { reconnecting?: (typeof attempts)[number]; closed?: CloseReport }) => {
            if (m.reconnecting) attempts.push(m.reconnecting);
            if (m.closed) resolve(m.closed);
          });
        });
        return { closeMode, child, attempts, closed, exit };
      }),
    );
    await relay.stop();

    for (const run of runs) {
      const report = await withTimeout(run.closed, 15_000, `${run.closeMode}: close() was not reached`);
      // Left alone (IPC disconnected), the process ends by itself: nothing keeps it alive.
      const exit = await withTimeout(run.exit, 5000, `${run.closeMode}: the process did not exit by itself after close(); active: ${report.after.join(', ')}`);
      expect(exit, `${run.closeMode}: exit code 3 means a reconnecting event came after close()`).toEqual({ code: 0, signal: null });

      const { attempts } = run;
      expect(attempts.map((a) => a.attempt)).toEqual(Array.from({ length: base.closeAtAttempt }, (_, i) => i + 1));
      for (const a of attempts) {
        expect(a.delay).toBeGreaterThanOrEqual(0);
        expect(a.delay, `attempt ${a.attempt}`).toBeLessThanOrEqual(ceiling(a.attempt));
      }
      // Each attempt waited its delay before the next. Node counts a timer from the event loop's
      // cached clock, which can lag performance.now() by the time the current callback has run
      // (a few ms, more on a first, cold run of the code): hence the allowance.
      for (let i = 0; i + 1 < attempts.length; i++) {
        expect(attempts[i + 1]!.at - attempts[i]!.at, `gap after attempt ${i + 1}`).toBeGreaterThanOrEqual(attempts[i]!.delay - 20);
      }
      // They grow: attempts 1-3 can wait 70 ms in all at most, attempts 7-12 (each up to 320 ms)
      // less than that together with probability below 1e-6.
      const sum = (from: number, to: number): number => attempts.slice(from - 1, to).reduce((s, a) => s + a.delay, 0);
      expect(sum(7, 12)).toBeGreaterThan(sum(1, 3));

      // Everything pending ended with CLOSED; nothing is left of the peer: no timer, no socket.
      expect(report.outcomes).toEqual({ send: 'CLOSED', request: 'CLOSED', receive: 'CLOSED', sendAfterClose: 'CLOSED' });
      expect(report.closeEvent).toEqual({ code: 1000 });
      // Pipes are the child's stdio and IPC channel (ref'd while a report is being written),
      // never the peer's.
      const leftover = report.after.filter((x) => x !== 'PipeWrap');
      for (const x of report.before) if (leftover.includes(x)) leftover.splice(leftover.indexOf(x), 1);
      expect.soft(leftover, `${run.closeMode}: resources active after close() that were not before connect()`).toEqual([]);
    }
  }, 30_000);
});
