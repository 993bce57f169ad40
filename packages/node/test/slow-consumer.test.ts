/**
 * A consumer that stops reading cannot sink the relay. The relay runs in a child process
 * (fixtures/relay-process.ts) so its heap is measured alone, sampled over IPC after a GC, while
 * publishers in another child process (fixtures/flooder-process.ts) flood the paused consumer's
 * topic with 200 MiB and a pair of peers in this process keeps doing request/reply.
 */
import { frame, Kind } from '@missive/core/internal';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type Peer, type RelayOptions } from '../src/index.js';
import { Child, every, killChildren } from './fixtures/child.js';
import type { FloodOptions } from './fixtures/flooder-process.js';
import { parseExposition, sample } from './fixtures/prometheus.js';
import { RawClient } from './fixtures/raw-client.js';

const MiB = 1024 * 1024;
const MAX_BUFFERED = 8 * MiB;
const SLOW_CONSUMER_TIMEOUT = 2000;
const BODY = 64 * 1024;
const PUBLISHES = 3200; // 200 MiB in all

interface Mem {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

const peers: Peer[] = [];
const raws: RawClient[] = [];
afterAll(async () => {
  for (const c of raws) c.terminate();
  await Promise.all(peers.map((p) => p.close().catch(() => {})));
  await killChildren();
});

async function metrics(port: number): Promise<ReturnType<typeof parseExposition>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return parseExposition(await res.text());
}

const mib = (n: number): string => (n / MiB).toFixed(1);

describe('slow consumers', () => {
  it('drops for a client that stops reading, disconnects it with 4004, and keeps the relay within its memory bound', async () => {
    const relayOptions: RelayOptions = { port: 0, limits: { maxBufferedBytes: MAX_BUFFERED, slowConsumerTimeout: SLOW_CONSUMER_TIMEOUT } };
    const [relay, { url, port, gc }] = await Child.start<{ url: string; port: number; gc: boolean }>('relay-process.ts', relayOptions, ['--expose-gc']);
    expect(gc).toBe(true);
    const mem = async (): Promise<Mem & { lagMax: number }> => {
      const r = await relay.ask<{ mem: Mem; lagMax: number }>({ cmd: 'mem' });
      return { ...r.mem, lagMax: r.lagMax };
    };
    const baseline = await mem();

    // A subscriber that completes the handshake, subscribes, then never reads again.
    const slow = new RawClient(url);
    raws.push(slow);
    await slow.hello('slow');
    slow.send([frame(Kind.Sub, { ref: 1, pattern: 'flood.>' })]);
    await slow.next(Kind.Ok, (f) => f.ref === 1);
    slow.ws.pause();

    const floodOptions: FloodOptions = { url, peers: 2, topic: 'flood.data', count: PUBLISHES, bodyBytes: BODY, highWaterMark: 1 * MiB };
    const [flooder] = await Child.start<{ ready: true }>('flooder-process.ts', floodOptions);

    // A pair doing request/reply throughout, and the relay's memory sampled throughout.
    const asker = await connect(url, { name: 'asker' });
    const answerer = await connect(url, { name: 'answerer' });
    peers.push(asker, answerer);
    answerer.handle('now', () => Date.now());
    const latencies = every(20, async () => {
      const t = performance.now();
      await asker.request('answerer/now', undefined, { timeout: 5000 });
      return performance.now() - t;
    });
    const samples = every(100, mem);

    const started = performance.now();
    let floodMs = 0;
    let disconnectedAt = 0;
    let memSamples: (Mem & { lagMax: number })[] = [];
    let rtts: number[] = [];
    try {
      const flooded = await flooder.ask<{ done?: true; ms: number; error?: string }>({ cmd: 'flood' });
      expect(flooded.error).toBeUndefined();
      floodMs = flooded.ms;
      // The relay gives up on the consumer once it has been over the cap for the timeout.
      await expect
        .poll(async () => sample(await metrics(port), 'missive_slow_consumer_disconnects_total'), { timeout: SLOW_CONSUMER_TIMEOUT + 10_000, interval: 50 })
        .toBe(1);
      disconnectedAt = performance.now() - started;
    } finally {
      memSamples = await samples.stop();
      rtts = await latencies.stop();
    }
    const peak = memSamples.reduce((a, s) => (s.heapUsed + s.external > a.heapUsed + a.external ? s : a), baseline);
    console.log(
      `flood of ${(PUBLISHES * BODY) / MiB} MiB took ${floodMs.toFixed(0)} ms; slow consumer cut at ${disconnectedAt.toFixed(0)} ms\n` +
        `relay memory: baseline heapUsed ${mib(baseline.heapUsed)} + external ${mib(baseline.external)} MiB; peak of ${memSamples.length} samples ` +
        `heapUsed ${mib(peak.heapUsed)} + external ${mib(peak.external)} (arrayBuffers ${mib(peak.arrayBuffers)}) MiB; ` +
        `max rss ${mib(Math.max(...memSamples.map((s) => s.rss)))} MiB; longest relay event-loop stall ${Math.max(...memSamples.map((s) => s.lagMax)).toFixed(0)} ms\n` +
        `request/reply: ${rtts.length} round trips, max ${Math.max(...rtts).toFixed(1)} ms`,
    );
    expect(disconnectedAt).toBeGreaterThanOrEqual(SLOW_CONSUMER_TIMEOUT);

    // Reading again, the consumer finds what was buffered for it, then the BYE and the close.
    slow.ws.resume();
    const closed = await slow.closed;
    expect(closed).toMatchObject({ code: 4004, reason: expect.stringMatching(/^LIMIT: slow consumer/) });
    expect(slow.bye).toMatchObject({ code: 'LIMIT' });
    const got = slow.frames.filter((f) => f.kind === Kind.Pub).length;
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(PUBLISHES / 2);

    const m = await metrics(port);
    expect(sample(m, 'missive_frames_in_total', { kind: 'Pub' })).toBe(PUBLISHES);
    expect(sample(m, 'missive_drops_total', { reason: 'SLOW_CONSUMER' })).toBeGreaterThan(0);
    expect(sample(m, 'missive_slow_consumer_disconnects_total')).toBe(1);

    // The relay's memory stayed within the cap plus a fixed allowance, all along.
    expect(memSamples.length).toBeGreaterThanOrEqual(5);
    expect(peak.heapUsed + peak.external).toBeLessThanOrEqual(MAX_BUFFERED + 64 * MiB);

    // Request/reply kept answering while all this went on.
    expect(rtts.length).toBeGreaterThan(10);
    expect(Math.max(...rtts)).toBeLessThan(1000);
    await expect(asker.request('answerer/now', undefined, { timeout: 1000 })).resolves.toBeTypeOf('number');
  }, 90_000);
});
