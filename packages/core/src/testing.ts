/**
 * @missive/core/testing — the transport compliance suite. Every Transport (memory, ws, WebRTC)
 * runs it in a few lines:
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

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

function same(x: Uint8Array, y: Uint8Array): boolean {
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
      for (let i = 0; i < 200; i++) a.send(bytes(1 + (i % 50), i));
      for (let i = 0; i < 50; i++) b.send(bytes(10, 1000 + i));
      await rb.until(() => rb.messages.length === 200, '200 messages at b');
      await ra.until(() => ra.messages.length === 50, '50 messages at a');
      for (let i = 0; i < 200; i++) check(same(rb.messages[i]!, bytes(1 + (i % 50), i)), `message ${i} differs or is out of order`);
      for (let i = 0; i < 50; i++) check(same(ra.messages[i]!, bytes(10, 1000 + i)), `reply ${i} differs`);
    }));

    api.it('carries a 1 MiB message intact', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      const big = bytes(1024 * 1024, 7);
      a.send(big.slice());
      await rb.until(() => rb.messages.length === 1, 'the large message');
      check(same(rb.messages[0]!, big), '1 MiB message corrupted');
    }));

    api.it('delivers messages sent before the receiver listens', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      a.send(bytes(5, 1));
      a.send(bytes(5, 2));
      await new Promise((r) => setTimeout(r, 20));
      listen(b, rb);
      await rb.until(() => rb.messages.length === 2, 'queued messages');
      check(same(rb.messages[0]!, bytes(5, 1)) && same(rb.messages[1]!, bytes(5, 2)), 'queued messages wrong');
    }));

    api.it('reports backpressure while the reader is paused, then drains on resume', withPair(async ({ a, b }, ra, rb) => {
      listen(a, ra);
      listen(b, rb);
      b.pause();
      let refused = false;
      const chunk = bytes(64 * 1024, 3);
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
      a.send(bytes(3, 9));
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
        a.send(bytes(1, 1));
      } catch (err) {
        threw = (err as { code?: string }).code === 'CLOSED';
      }
      check(threw, 'send after close did not throw a CLOSED error');
    }));
  });
}
