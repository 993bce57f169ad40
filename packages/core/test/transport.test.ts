/**
 * The memory transport runs the shared compliance suite (as every real transport does), and the
 * Connection on top of a transport batches frames: one transport message per tick, or earlier
 * once the batch passes `flushBytes`.
 */
import { describe, expect, it } from 'vitest';
import { decodeBatch, encodeBatch, frame, FrameTooLargeError, Kind, type Frame } from '../src/codec/frames.js';
import { Connection, type ConnectionHandlers } from '../src/connection.js';
import { ProtocolError } from '../src/errors.js';
import { transportCompliance } from '../src/testing.js';
import { memoryTransportPair } from '../src/transport/memory.js';
import type { CloseInfo, Transport, TransportHandlers } from '../src/transport/transport.js';

transportCompliance('memory', { describe, it }, async () => {
  const [a, b] = memoryTransportPair();
  return { a, b };
});

/** Delegates to `inner`, recording every message handed to `send`. */
class CountingTransport implements Transport {
  readonly sent: Uint8Array[] = [];
  constructor(readonly inner: Transport) {}
  get status() {
    return this.inner.status;
  }
  get bufferedAmount() {
    return this.inner.bufferedAmount;
  }
  send(data: Uint8Array): boolean {
    this.sent.push(data.slice());
    return this.inner.send(data);
  }
  listen(handlers: TransportHandlers): void {
    this.inner.listen(handlers);
  }
  pause(): void {
    this.inner.pause();
  }
  resume(): void {
    this.inner.resume();
  }
  close(info?: Partial<CloseInfo>): void {
    this.inner.close(info);
  }
}

/** Records what arrives at the raw far end: whole messages and the frames in them. */
class FarEnd {
  readonly messages: Uint8Array[] = [];
  closed: CloseInfo | undefined;
  #wake: (() => void) | undefined;
  constructor(t: Transport) {
    t.listen({
      message: (d) => {
        this.messages.push(d);
        this.#wake?.();
      },
      drain: () => {},
      close: (info) => {
        this.closed = info;
        this.#wake?.();
      },
    });
  }
  get frames(): Frame[] {
    const out: Frame[] = [];
    for (const m of this.messages) decodeBatch(m, 1 << 30, (f) => out.push(f));
    return out;
  }
  until(cond: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('condition not met in time')), 2000);
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        } else this.#wake = check;
      };
      check();
    });
  }
}

function handlers(over: Partial<ConnectionHandlers> = {}): ConnectionHandlers & { frames: Frame[]; errors: ProtocolError[] } {
  const frames: Frame[] = [];
  const errors: ProtocolError[] = [];
  return {
    frames,
    errors,
    frame: (f) => frames.push(f),
    protocolError: (e) => errors.push(e),
    drain: () => {},
    close: () => {},
    ...over,
  };
}

const pings = (from: number, n: number): Frame[] => Array.from({ length: n }, (_, i) => frame(Kind.Ping, { nonce: from + i }));

const newCounters = () => ({ framesIn: new Float64Array(256), bytesIn: new Float64Array(256), framesOut: new Float64Array(256), bytesOut: new Float64Array(256) });

describe('Connection batching', () => {
  it('sends the frames written in one tick as one transport message, in order', async () => {
    const [a, b] = memoryTransportPair();
    const t = new CountingTransport(a);
    const far = new FarEnd(b);
    const counters = newCounters();
    const conn = new Connection(t, handlers(), { counters });
    for (const f of pings(1, 50)) expect(conn.write(f)).toBe(true);
    expect(t.sent).toHaveLength(0); // nothing leaves before the tick ends
    expect(conn.bufferedAmount).toBeGreaterThan(0);
    await far.until(() => far.messages.length >= 1);
    expect(t.sent).toHaveLength(1);
    expect(far.messages).toHaveLength(1);
    expect([...far.messages[0]!]).toEqual([...encodeBatch(pings(1, 50))]);
    expect(counters.framesOut[Kind.Ping]).toBe(50);
    expect(counters.bytesOut[Kind.Ping]).toBe(far.messages[0]!.length);
    conn.close();
  });

  it('sends frames written in different ticks as different messages', async () => {
    const [a, b] = memoryTransportPair();
    const t = new CountingTransport(a);
    const far = new FarEnd(b);
    const conn = new Connection(t, handlers());
    conn.write(frame(Kind.Ping, { nonce: 1 }));
    conn.write(frame(Kind.Ping, { nonce: 2 }));
    await Promise.resolve();
    await Promise.resolve();
    conn.write(frame(Kind.Ping, { nonce: 3 }));
    await far.until(() => far.frames.length === 3);
    expect(t.sent).toHaveLength(2);
    expect(far.frames.map((f) => (f as { nonce: number }).nonce)).toEqual([1, 2, 3]);
    conn.close();
  });

  it('flushes a batch as soon as it passes flushBytes, without waiting for the tick to end', async () => {
    const [a, b] = memoryTransportPair();
    const t = new CountingTransport(a);
    const far = new FarEnd(b);
    const conn = new Connection(t, handlers(), { flushBytes: 100 });
    // Each PING unit is 7 bytes (4 length + kind + flags + a one-byte nonce): the 15th reaches 105.
    const frames = pings(1, 20);
    for (let i = 0; i < 14; i++) conn.write(frames[i]!);
    expect(t.sent).toHaveLength(0);
    conn.write(frames[14]!);
    expect(t.sent).toHaveLength(1); // flushed synchronously inside write()
    expect(t.sent[0]!.length).toBe(105);
    for (let i = 15; i < 20; i++) conn.write(frames[i]!);
    expect(t.sent).toHaveLength(1);
    await far.until(() => far.messages.length === 2);
    expect(t.sent).toHaveLength(2);
    expect(far.messages.map((m) => m.length)).toEqual([105, 35]);
    expect(far.frames).toEqual(frames);
    conn.close();
  });

  it('a single frame larger than flushBytes goes out at once, alone after what was queued', () => {
    const [a, b] = memoryTransportPair();
    const t = new CountingTransport(a);
    new FarEnd(b);
    const conn = new Connection(t, handlers(), { flushBytes: 64 });
    conn.write(frame(Kind.Ping, { nonce: 1 }));
    conn.write(frame(Kind.Pub, { topic: 't', from: '' }, new Uint8Array(200), 3));
    expect(t.sent).toHaveLength(1);
    const out: Frame[] = [];
    decodeBatch(t.sent[0]!, 1 << 20, (f) => out.push(f));
    expect(out.map((f) => f.kind)).toEqual([Kind.Ping, Kind.Pub]);
    conn.close();
  });

  it('pre-encoded units (fan-out) join the same batch', async () => {
    const [a, b] = memoryTransportPair();
    const t = new CountingTransport(a);
    const far = new FarEnd(b);
    const counters = newCounters();
    const conn = new Connection(t, handlers(), { counters });
    conn.write(frame(Kind.Ping, { nonce: 1 }));
    conn.writeEncoded(encodeBatch([frame(Kind.Ping, { nonce: 2 })]));
    conn.write(frame(Kind.Ping, { nonce: 3 }));
    await far.until(() => far.messages.length === 1);
    expect(far.frames).toEqual(pings(1, 3));
    expect(counters.framesOut[Kind.Ping]).toBe(3);
    conn.close();
  });

  it('close() flushes the pending batch before closing, then refuses writes', async () => {
    const [a, b] = memoryTransportPair();
    const far = new FarEnd(b);
    const conn = new Connection(a, handlers());
    conn.write(frame(Kind.Ping, { nonce: 1 }));
    conn.write(frame(Kind.Bye, { code: 'NORMAL', message: 'done' }));
    conn.close(4003, 'because');
    expect(conn.open).toBe(false);
    expect(conn.write(frame(Kind.Ping, { nonce: 2 }))).toBe(false);
    await far.until(() => far.closed !== undefined);
    expect(far.frames.map((f) => f.kind)).toEqual([Kind.Ping, Kind.Bye]);
    expect(far.closed).toMatchObject({ code: 4003, reason: 'because' });
  });
});

describe('Connection decoding', () => {
  it('hands every frame of an incoming message to the handler, in order', async () => {
    const [a, b] = memoryTransportPair();
    const h = handlers();
    const counters = newCounters();
    const conn = new Connection(a, h, { counters });
    b.send(encodeBatch(pings(10, 5)));
    b.send(encodeBatch(pings(15, 2)));
    await expect.poll(() => h.frames.length).toBe(7);
    expect(h.frames).toEqual(pings(10, 7));
    expect(counters.framesIn[Kind.Ping]).toBe(7);
    conn.close();
  });

  it('reports a malformed message as a ProtocolError and leaves closing to the owner', async () => {
    const [a, b] = memoryTransportPair();
    const h = handlers();
    const conn = new Connection(a, h);
    b.send(Uint8Array.from([2, 0, 0, 0, 0x7f, 0x00]));
    await expect.poll(() => h.errors.length).toBe(1);
    expect(h.errors[0]).toBeInstanceOf(ProtocolError);
    expect(h.errors[0]!.reason).toBe('unknown frame kind 0x7f');
    expect(conn.open).toBe(true);
    b.send(encodeBatch(pings(1, 1)));
    await expect.poll(() => h.frames.length).toBe(1);
    conn.close();
  });

  it('reports a frame over maxFrameBytes as FrameTooLargeError', async () => {
    const [a, b] = memoryTransportPair();
    const h = handlers();
    const conn = new Connection(a, h, { maxFrameBytes: 16 });
    b.send(encodeBatch([frame(Kind.Pub, { topic: 't', from: '' }, new Uint8Array(100), 3)]));
    await expect.poll(() => h.errors.length).toBe(1);
    expect(h.errors[0]).toBeInstanceOf(FrameTooLargeError);
    expect(h.frames).toHaveLength(0);
    conn.close();
  });

  it('delivers nothing more once the owner closes it, not even the rest of the same message', async () => {
    const [a, b] = memoryTransportPair();
    let conn: Connection | undefined;
    const h = handlers({
      frame: (f) => {
        h.frames.push(f);
        if (h.frames.length === 2) conn!.close(1002, 'enough');
      },
    });
    conn = new Connection(a, h);
    const closed = new Promise<void>((resolve) => b.listen({ message: () => {}, drain: () => {}, close: () => resolve() }));
    // Five frames, then a malformed one: only two frames may be seen, and no error reported.
    b.send(Uint8Array.from([...encodeBatch(pings(1, 5)), 2, 0, 0, 0, 0x7f, 0x00]));
    await closed;
    expect(h.frames).toEqual(pings(1, 2));
    expect(h.errors).toHaveLength(0);
  });
});
