/**
 * @missive/core/testing — the transport and store compliance suites, and the deterministic data
 * helpers missive's own tests share (a seeded generator, byte patterns). Every Transport
 * (memory, ws, WebRTC) runs its suite in a few lines, and every OutboxStore (memory, file,
 * IndexedDB) runs `storeCompliance` (store/compliance.ts) the same way:
 *
 * ```ts
 * import { describe, it } from 'vitest';
 * import { transportCompliance } from '@missive/core/testing';
 * transportCompliance('ws', { describe, it }, async () => { ...; return { a, b, cleanup } });
 * ```
 */
import type { CloseInfo, Transport, TransportHandlers } from './transport/transport.js';

/** A connected pair under test and how to dispose of whatever the factory started. */
export interface TransportPairFixture {
  a: Transport;
  b: Transport;
  cleanup?: () => Promise<void> | void;
}

/** The test functions of any runner with describe/it (vitest, jest, mocha, node:test). */
export interface SuiteApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>, timeout?: number): void;
}

class Recorder implements TransportHandlers {
  readonly messages: Uint8Array[] = [];
  closeInfo: CloseInfo | undefined;
  drains = 0;
  #waiters: (() => void)[] = [];
  message(data: Uint8Array): void {
    this.messages.push(data);
    this.#wake();
  }
  drain(): void {
    this.drains++;
    this.#wake();
  }
  close(info: CloseInfo): void {
    if (this.closeInfo) throw new Error('close reported twice');
    this.closeInfo = info;
    this.#wake();
  }
  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
  /** Resolves when `cond` holds, rejects after `ms`. */
  until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(`transport compliance: ${message}`);
}

/** mulberry32: a small seeded generator, so a failing random input can be replayed from its seed. */
export class Rng {
  #a: number;
  constructor(seed: number) {
    this.#a = seed >>> 0;
  }
  /** A uniform float in [0, 1). */
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** `n` bytes of a deterministic sequence that differs by `seed` and by position. */
export function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Byte-for-byte equality, as a boolean: a failing assertion does not print megabytes. */
export function sameBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Registers the compliance tests for one transport. `open` makes a fresh connected pair. */
export function transportCompliance(name: string, api: SuiteApi, open: () => Promise<TransportPairFixture>): void {
  const withPair = (fn: (p: TransportPairFixture, ra: Recorder, rb: Recorder) => Promise<void>) => async () => {
    const p = await open();
    const ra = new Recorder();
    const rb = new Recorder();
    try {
      await fn(p, ra, rb);
    } finally {
      if (p.a.status === 'open') p.a.close();
      if (p.b.status === 'open') p.b.close();
      await Promise.all([ra.until(() => ra.closeInfo !== undefined || !listening.has(ra), 'a closed').catch(() => {}), rb.until(() => rb.closeInfo !== undefined || !listening.has(rb), 'b closed').catch(() => {})]);
      await p.cleanup?.();
    }
  };
  const listening = new WeakSet<Recorder>();
  const listen = (t: Transport, r: Recorder): void => {
    listening.add(r);
    t.listen(r);
  };

  api.describe(`transport compliance: ${name}`, () => {
    api.it('delivers messages whole, in order, both ways', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      for (let i = 0; i < 200; i++) a.send(pattern(1 + (i % 50), i));
      for (let i = 0; i < 50; i++) b.send(pattern(10, 1000 + i));
      await rb.until(() => rb.messages.length === 200, '200 messages at b');
      await ra.until(() => ra.messages.length === 50, '50 messages at a');
      for (let i = 0; i < 200; i++) check(sameBytes(rb.messages[i]!, pattern(1 + (i % 50), i)), `message ${i} differs or is out of order`);
      for (let i = 0; i < 50; i++) check(sameBytes(ra.messages[i]!, pattern(10, 1000 + i)), `reply ${i} differs`);
    }));

    api.it('carries a 1 MiB message intact', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      const big = pattern(1024 * 1024, 7);
      a.send(big.slice());
      await rb.until(() => rb.messages.length === 1, 'the large message');
      check(sameBytes(rb.messages[0]!, big), '1 MiB message corrupted');
    }));

    api.it('delivers messages sent before the receiver listens', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      a.send(pattern(5, 1));
      a.send(pattern(5, 2));
      await new Promise((r) => setTimeout(r, 20));
      listen(b, rb);
      await rb.until(() => rb.messages.length === 2, 'queued messages');
      check(sameBytes(rb.messages[0]!, pattern(5, 1)) && sameBytes(rb.messages[1]!, pattern(5, 2)), 'queued messages wrong');
    }));

    api.it('reports backpressure while the reader is paused, then drains on resume', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      b.pause();
      let refused = false;
      const chunk = pattern(64 * 1024, 3);
      let sent = 0;
      // Bounded: a transport must signal backpressure within 256 MiB of unread data.
      for (let i = 0; i < 4096 && !refused; i++) {
        refused = !a.send(chunk.slice());
        sent++;
        if (i % 64 === 63) await new Promise((r) => setTimeout(r, 1));
      }
      check(refused, 'send() never returned false while the reader was paused');
      check(a.bufferedAmount > 0, 'bufferedAmount is 0 while data is unread');
      b.resume();
      await ra.until(() => ra.drains > 0, 'drain event', 20_000);
      await rb.until(() => rb.messages.length === sent, 'all messages after resume', 20_000);
    }), 60_000);

    api.it('closing one end closes both, once, with the code and reason', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      a.send(pattern(3, 9));
      a.close({ code: 4003, reason: 'bye now' });
      await ra.until(() => ra.closeInfo !== undefined, 'close at a');
      await rb.until(() => rb.closeInfo !== undefined, 'close at b');
      check(rb.closeInfo!.code === 4003, `b saw close code ${rb.closeInfo!.code}, expected 4003`);
      check(rb.closeInfo!.reason === 'bye now', `b saw reason "${rb.closeInfo!.reason}"`);
      check(rb.messages.length === 1, 'data sent before close was lost');
      check(a.status === 'closed' && b.status === 'closed', 'status is not closed');
    }));

    api.it('throws on send after close', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      b.close();
      await ra.until(() => ra.closeInfo !== undefined, 'close at a');
      let threw = false;
      try {
        a.send(pattern(1, 1));
      } catch (err) {
        threw = (err as { code?: string }).code === 'CLOSED';
      }
      check(threw, 'send after close did not throw a CLOSED error');
    }));
  });
}

export { storeCompliance } from './store/compliance.js';
export type { StoreFixture, StoreFixtureOptions } from './store/compliance.js';
