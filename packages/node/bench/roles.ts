/**
 * One benchmark role per process: a relay (missive or raw) or a client role. The orchestrator
 * (`run.ts`) forks this file with `--role …` and talks to it over IPC.
 */
// The built package (dist/), as users run it: transpiling src on the fly (tsx) adds per-closure
// costs of its own that would skew the figures.
import { connect, createRelay, FileStore, type OutboxStore, type Peer } from '@missive/node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startRawRelay } from './raw-relay.js';

type Impl = 'missive' | 'raw';
interface Args {
  role: string;
  /** For durable sends: 'memory', or a FileStore fsync mode ('always', 'interval', 'never'). */
  store?: string;
  impl: Impl;
  url: string;
  n: number;
  size: number;
  concurrency: number;
  duration: number;
  count: number;
  /** relay: serve an admin channel with this token. */
  adminToken?: string;
  /** relay: join the cluster on this Redis (with this key prefix). */
  redis?: string;
  prefix?: string;
  /** subscribers: the first part of their names (unique across a cluster). */
  tag?: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const send = (m: unknown): void => void process.send!(m);
const now = (): number => performance.timeOrigin + performance.now();
const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));
/**
 * A sender over its high-water mark sleeps a millisecond rather than spinning on setImmediate:
 * a spinning process takes a core from the relay and the receiver, which share two.
 */
const sleep1 = (): Promise<void> => new Promise((r) => setTimeout(r, 1));
const HWM = 1024 * 1024;
const onMessage = (fn: (m: { cmd: string }) => void): void => void process.on('message', fn);

function rawHeader(target: string, payload: number): Buffer {
  const b = Buffer.alloc(1 + target.length + payload, 0x61);
  b[0] = target.length;
  b.write(target, 1, 'latin1');
  return b;
}

async function rawClient(url: string, registration: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(registration);
  await new Promise<void>((resolve) => ws.once('message', () => resolve()));
  return ws;
}

const missiveOpts = { outboxCapacity: 1_000_000, mailboxCapacity: 1_000_000, maxPendingRequests: 100_000, connectTimeout: 30_000 };

process.on('message', (m: { cmd?: string }) => {
  if (m.cmd === 'exit') process.exit(0);
});

async function main(): Promise<void> {
  switch (args.role) {
    case 'relay': {
      const relay =
        args.impl === 'raw'
          ? await startRawRelay()
          : await createRelay({ port: 0, heartbeatInterval: 60_000, ...(args.adminToken ? { adminToken: args.adminToken } : {}), ...(args.redis ? { backplane: { redis: args.redis, prefix: args.prefix ?? 'bench' } } : {}), limits: { maxBufferedBytes: 64 * 1024 * 1024, rateLimit: 100_000_000, maxConnections: 100_000, maxPeersPerNamespace: 100_000, maxPendingRequests: 100_000 } });
      const url = 'url' in relay ? relay.url : `ws://127.0.0.1:${relay.port}`;
      onMessage(async (m) => {
        if (m.cmd === 'mem') {
          for (let i = 0; i < 3; i++) {
            global.gc?.();
            await immediate();
          }
          const u = process.memoryUsage();
          send({ mem: { rss: u.rss, heap: u.heapUsed, external: u.external + u.arrayBuffers } });
        } else if (m.cmd === 'stop') {
          await relay.close();
          process.exit(0);
        }
      });
      send({ ready: true, url });
      return;
    }

    case 'recv': {
      // Counts n messages of one-way traffic; reports the time the last one arrived.
      let count = 0;
      const done = (): void => send({ done: true, at: now(), count });
      if (args.impl === 'raw') {
        const ws = await rawClient(args.url, 'recv');
        ws.on('message', () => {
          if (++count === args.n) done();
        });
      } else {
        const p = await connect(args.url, { name: 'recv', ...missiveOpts });
        await p.subscribe('bench.oneway', () => {
          if (++count === args.n) done();
        }).ready;
      }
      send({ ready: true });
      return;
    }

    case 'send': {
      // Sends n messages of `size` bytes as fast as backpressure allows, on 'go'.
      let write: () => void;
      let buffered: () => number;
      if (args.impl === 'raw') {
        const ws = await rawClient(args.url, 'send');
        const msg = rawHeader('recv', args.size);
        write = () => ws.send(msg, { binary: true });
        buffered = () => ws.bufferedAmount;
      } else {
        const p: Peer = await connect(args.url, { name: 'send', ...missiveOpts });
        const body = new Uint8Array(args.size).fill(0x61);
        write = () => p.publish('bench.oneway', body);
        buffered = () => p.bufferedAmount;
      }
      send({ ready: true });
      onMessage(async (m) => {
        if (m.cmd !== 'go') return;
        for (let sent = 0; sent < args.n; ) {
          for (let i = 0; i < 256 && sent < args.n; i++, sent++) write();
          while (buffered() > HWM) await sleep1();
          await Promise.resolve();
        }
        send({ sent: true });
      });
      return;
    }

    case 'responder': {
      if (args.impl === 'raw') {
        const ws = await rawClient(args.url, 'responder');
        ws.on('message', (data: Buffer) => {
          // [len]responder [len]requester [u32 id] payload → [len]requester [len]responder [u32 id] payload
          const l1 = data[0]!;
          const l2 = data[1 + l1]!;
          const out = Buffer.allocUnsafe(data.length);
          data.copy(out, 0, 1 + l1, 2 + l1 + l2);
          out[1 + l2] = l1;
          data.copy(out, 2 + l2, 1, 1 + l1);
          data.copy(out, 2 + l1 + l2, 2 + l1 + l2);
          ws.send(out, { binary: true });
        });
      } else {
        const p = await connect(args.url, { name: 'responder', ...missiveOpts });
        p.handle('echo', (body) => body);
      }
      send({ ready: true });
      return;
    }

    case 'requester': {
      let call: () => Promise<unknown>;
      if (args.impl === 'raw') {
        const ws = await rawClient(args.url, 'requester');
        const pending = new Map<number, () => void>();
        let next = 0;
        ws.on('message', (data: Buffer) => {
          const l1 = data[0]!;
          const l2 = data[1 + l1]!;
          const id = data.readUInt32LE(2 + l1 + l2);
          pending.get(id)?.();
          pending.delete(id);
        });
        const target = 'responder';
        const me = 'requester';
        call = () =>
          new Promise<void>((resolve) => {
            const id = next++ >>> 0;
            const b = Buffer.alloc(2 + target.length + me.length + 4 + args.size, 0x61);
            b[0] = target.length;
            b.write(target, 1, 'latin1');
            b[1 + target.length] = me.length;
            b.write(me, 2 + target.length, 'latin1');
            b.writeUInt32LE(id, 2 + target.length + me.length);
            pending.set(id, resolve);
            ws.send(b, { binary: true });
          });
      } else {
        const p = await connect(args.url, { name: 'requester', ...missiveOpts });
        const body = new Uint8Array(args.size).fill(0x61);
        call = () => p.request('responder/echo', body, { timeout: 30_000 });
      }
      send({ ready: true });
      onMessage(async (m) => {
        if (m.cmd !== 'go') return;
        // Warm up, then measure.
        for (let i = 0; i < 200; i++) await call();
        const latencies: number[] = [];
        const start = performance.now();
        const end = start + args.duration;
        await Promise.all(
          Array.from({ length: args.concurrency }, async () => {
            while (performance.now() < end) {
              const t = performance.now();
              await call();
              latencies.push(performance.now() - t);
            }
          }),
        );
        const elapsed = performance.now() - start;
        latencies.sort((a, b) => a - b);
        const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
        send({ result: { rps: (latencies.length / elapsed) * 1000, p50: q(0.5), p99: q(0.99) } });
      });
      return;
    }

    case 'subscribers': {
      // `count` subscribers in this process, each expecting n messages.
      let finished = 0;
      const onDone = (): void => {
        if (++finished === args.count) send({ done: true, at: now() });
      };
      for (let s = 0; s < args.count; s++) {
        let got = 0;
        if (args.impl === 'raw') {
          const ws = await rawClient(args.url, `sub${s}@subs`);
          ws.on('message', () => {
            if (++got === args.n) onDone();
          });
        } else {
          const p = await connect(args.url, { name: `${args.tag ?? ''}sub${s}`, ...missiveOpts });
          await p.subscribe('bench.fan', () => {
            if (++got === args.n) onDone();
          }).ready;
        }
      }
      send({ ready: true });
      return;
    }

    case 'publisher': {
      let write: () => void;
      let buffered: () => number;
      if (args.impl === 'raw') {
        const ws = await rawClient(args.url, 'pub');
        const msg = rawHeader('subs', args.size);
        write = () => ws.send(msg, { binary: true });
        buffered = () => ws.bufferedAmount;
      } else {
        const p = await connect(args.url, { name: 'pub', ...missiveOpts });
        const body = new Uint8Array(args.size).fill(0x61);
        write = () => p.publish('bench.fan', body);
        buffered = () => p.bufferedAmount;
      }
      send({ ready: true });
      onMessage(async (m) => {
        if (m.cmd !== 'go') return;
        for (let sent = 0; sent < args.n; ) {
          for (let i = 0; i < 64 && sent < args.n; i++, sent++) write();
          while (buffered() > HWM) await sleep1();
          await immediate();
        }
      });
      return;
    }

    case 'devtools': {
      // What the devtools app does while open: follow the live trace (the relay's default rate)
      // and poll the overview, the peers table (with each inspectable peer's summary) and the
      // topics once a second.
      const p = await connect(args.url, { namespace: '$admin', token: 'bench-admin' });
      // BENCH_DEVTOOLS=connected|trace|poll narrows what the session does, to find what costs.
      const mode = process.env.BENCH_DEVTOOLS ?? 'full';
      let events = 0;
      let saturated = 0;
      if (mode === 'full' || mode === 'trace') {
        await p.subscribe('$relay.trace', (b) => {
          const batch = b as { events: unknown[]; saturated: boolean };
          events += batch.events.length;
          if (batch.saturated) saturated++;
        }).ready;
        await p.request('$relay/trace', {});
      }
      const poll = setInterval(() => {
        if (mode !== 'full' && mode !== 'poll') return;
        for (const op of ['overview', 'peers', 'topics']) p.request(`$relay/${op}`, {}, { timeout: 5000 }).catch(() => {});
      }, 1000);
      onMessage((m) => {
        if (m.cmd === 'report') send({ events, saturated });
        if (m.cmd === 'exit') clearInterval(poll);
      });
      send({ ready: true });
      return;
    }

    case 'drecv': {
      // Takes n durable messages from its mailbox; reports when the last one arrived.
      const p = await connect(args.url, { name: 'drecv', ...missiveOpts });
      let count = 0;
      void (async () => {
        for await (const _ of p.mailbox()) if (++count === args.n) send({ done: true, at: now(), count });
      })();
      send({ ready: true });
      return;
    }

    case 'dsend': {
      // Sends n durable messages (`send`, acked end to end) with the given outbox store.
      let dir: string | undefined;
      let store: OutboxStore | undefined;
      if (args.store && args.store !== 'memory') {
        dir = mkdtempSync(join(tmpdir(), 'missive-bench-'));
        store = new FileStore(dir, { fsync: args.store as 'always' | 'interval' | 'never' });
      }
      const p = await connect(args.url, { name: 'dsend', ...missiveOpts, ...(store ? { store } : {}) });
      const body = new Uint8Array(args.size).fill(0x61);
      send({ ready: true });
      onMessage(async (m) => {
        if (m.cmd !== 'go') return;
        // Keep at most 10,000 unacked: the outbox is bounded.
        for (let sent = 0; sent < args.n; ) {
          const batch: Promise<string>[] = [];
          for (let i = 0; i < 500 && sent < args.n; i++, sent++) batch.push(p.send('drecv', body));
          await Promise.all(batch);
          while (p.outboxSize > 10_000) await immediate();
        }
        while (p.outboxSize > 0) await immediate();
        await p.close();
        if (dir) rmSync(dir, { recursive: true, force: true });
        send({ sent: true });
      });
      return;
    }

    case 'trecv': {
      // Accepts one tunnel and reads n × size bytes from it.
      const p = await connect(args.url, { name: 'trecv', ...missiveOpts });
      const total = args.n * args.size;
      // BENCH_TUNNEL_WINDOW fixes the receiving window (bytes) instead of letting it grow, to see what the window costs.
      const window = process.env.BENCH_TUNNEL_WINDOW ? Number(process.env.BENCH_TUNNEL_WINDOW) : undefined;
      p.onTunnel('bench', async (t) => {
        let got = 0;
        for await (const chunk of t.readable) {
          got += chunk.length;
          if (got >= total) send({ done: true, at: now(), count: got });
        }
      }, { window });
      send({ ready: true });
      return;
    }

    case 'tsend': {
      // Opens a tunnel and writes n chunks of `size` bytes, as fast as its credit allows.
      const p = await connect(args.url, { name: 'tsend', ...missiveOpts });
      send({ ready: true });
      onMessage(async (m) => {
        if (m.cmd !== 'go') return;
        const t = await p.tunnel('trecv', 'bench');
        const w = t.writable.getWriter();
        const chunk = new Uint8Array(args.size).fill(0x61);
        for (let i = 0; i < args.n; i++) {
          await w.ready;
          void w.write(chunk);
        }
        await w.close();
        send({ sent: true });
      });
      return;
    }

    case 'idle': {
      // Warm the relay up first (its code compiled, its tables sized) with connections that
      // come and go, so the baseline taken after 'warmed' holds no one-off costs; then hold
      // `count` idle peers.
      const open = (name: string): Promise<WebSocket | Peer> =>
        args.impl === 'raw' ? rawClient(args.url, name) : connect(args.url, { name, ...missiveOpts });
      const shut = (c: WebSocket | Peer): Promise<void> =>
        c instanceof WebSocket ? new Promise<void>((r) => (c.once('close', () => r()), c.close())) : c.close();
      const warm: (WebSocket | Peer)[] = [];
      for (let i = 0; i < 200; i++) warm.push(await open(`warm${i}`));
      await Promise.all(warm.map(shut));
      send({ warmed: true });
      onMessage(async (m) => {
        if (m.cmd !== 'go') return;
        const held: unknown[] = [];
        for (let i = 0; i < args.count; i++) held.push(await open(`idle${i}`));
        send({ ready: true, held: held.length });
      });
      return;
    }
  }
  throw new Error(`unknown role ${args.role}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
