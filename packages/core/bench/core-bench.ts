/// <reference types="node" />
/**
 * `npm run bench -w packages/core`: messages per second through Router + codec over the
 * in-memory transport, and request/reply round trips per second. One process; the figures are
 * the core's own cost (no sockets). Prints a table; asserts nothing.
 */
// The built package (dist/), as users run it (see packages/node/bench/roles.ts).
import { createPeer, memoryTransportPair, Router, type CodecName, type Peer } from '@missive/core';

const DURATION_MS = Number(process.env.BENCH_MS ?? 1500);

async function setup(codec: CodecName): Promise<{ router: Router; a: Peer; b: Peer; close(): Promise<void> }> {
  // The relay's defaults protect a shared relay (100,000 frames/s per connection, 8 MiB buffered);
  // this measures the Router's own speed, so they are raised out of the way.
  const router = new Router({ limits: { rateLimit: 1e9, maxBufferedBytes: 256 * 1024 * 1024 } });
  const link = () => {
    const [c, s] = memoryTransportPair();
    router.accept(s);
    return c;
  };
  const a = await createPeer(link(), { name: 'a', codec, outboxCapacity: 100_000, mailboxCapacity: 100_000 });
  const b = await createPeer(link(), { name: 'b', codec, outboxCapacity: 100_000, mailboxCapacity: 100_000 });
  return { router, a, b, close: async () => { await a.close(); await b.close(); await router.close(); } };
}

const macrotask = () => new Promise<void>((r) => setImmediate(r));

/** Waits for `done`, failing loudly after 30 s instead of spinning forever. */
async function until(done: () => boolean, what: () => string): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`benchmark stalled: ${what()}`);
    await macrotask();
  }
}

function bodyOf(size: number): { data: string } {
  // msgpack/JSON of { data: '...' } is a few bytes more than `size`; close enough for a label.
  return { data: 'x'.repeat(Math.max(0, size - 8)) };
}

/** Publish → subscriber, best-effort path. Keeps at most `window` messages in flight. */
async function pubsub(codec: CodecName, size: number): Promise<number> {
  const { a, b, close } = await setup(codec);
  let received = 0;
  const sub = b.subscribe('bench.x', () => received++);
  await sub.ready;
  const body = bodyOf(size);
  let sent = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    for (let i = 0; i < 500; i++) a.publish('bench.x', body);
    sent += 500;
    await until(() => sent - received <= 5000, () => `${sent - received} publishes outstanding`);
  }
  await until(() => received >= sent, () => `${sent - received} publishes never arrived`);
  const rate = received / ((performance.now() - start) / 1000);
  await close();
  return rate;
}

/** Durable send → mailbox, with end-to-end acks and dedup. */
async function durable(codec: CodecName, size: number): Promise<number> {
  const { a, b, close } = await setup(codec);
  const body = bodyOf(size);
  const mb = b.mailbox();
  let received = 0;
  const drain = (async () => {
    for await (const _ of mb) received++;
  })();
  let sent = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    const batch: Promise<string>[] = [];
    for (let i = 0; i < 500; i++) batch.push(a.send('b', body));
    await Promise.all(batch);
    sent += 500;
    await until(() => a.outboxSize <= 5000, () => `outbox stuck at ${a.outboxSize}`);
  }
  await until(() => received >= sent && a.outboxSize === 0, () => `${sent - received} sends not delivered`);
  const rate = sent / ((performance.now() - start) / 1000);
  await close();
  await drain;
  return rate;
}

async function requests(codec: CodecName, concurrency: number): Promise<number> {
  const { a, b, close } = await setup(codec);
  b.handle('echo', (x) => x);
  const body = bodyOf(64);
  let done = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - start < DURATION_MS) {
        await a.request('b/echo', body);
        done++;
      }
    }),
  );
  const rate = done / ((performance.now() - start) / 1000);
  await close();
  return rate;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(12);

const rows: [string, string, number][] = [];
for (const codec of ['msgpack', 'json'] as const) {
  for (const size of [64, 1024]) {
    rows.push([`publish → subscriber, ${size} B`, codec, await pubsub(codec, size)]);
    rows.push([`send → mailbox (acked), ${size} B`, codec, await durable(codec, size)]);
  }
  rows.push(['request/reply, concurrency 1', codec, await requests(codec, 1)]);
  rows.push(['request/reply, concurrency 100', codec, await requests(codec, 100)]);
}

console.log(`\n@missive/core — Router + codec over the in-memory transport (${DURATION_MS} ms per row, node ${process.version})\n`);
console.log(`| ${'workload'.padEnd(34)} | codec   | ${'per second'.padStart(12)} |`);
console.log(`|${'-'.repeat(36)}|---------|${'-'.repeat(14)}|`);
for (const [name, codec, rate] of rows) console.log(`| ${name.padEnd(34)} | ${codec.padEnd(7)} | ${fmt(rate)} |`);
