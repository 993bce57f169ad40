/** The data channel bytes of a direct link (wire.ts) and their splitting (chunks.ts), as exact bytes. */
import { describe, expect, it } from 'vitest';
import { pattern, Rng, sameBytes } from '@missive/core/testing';
import { OutQueue, Reassembler } from '../../src/direct/chunks.js';
import { decodeChannelMessage, encodeClose, encodeFirst, encodeMore, encodePing, encodeWhole, type ChannelMessage } from '../../src/direct/wire.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

type Data = Exclude<ChannelMessage, { type: 'close' } | { type: 'ping' }>;
function dataMessage(m: Uint8Array): Data {
  const d = decodeChannelMessage(m);
  if (d.type === 'close' || d.type === 'ping') throw new Error(`not a data message: ${d.type}`);
  return d;
}

describe('direct wire', () => {
  it('encode - each channel message has its type byte and big-endian fields', () => {
    expect(encodeWhole(bytes(7, 8))).toEqual(bytes(0, 7, 8));
    expect(encodeFirst(0x01020304, bytes(9))).toEqual(bytes(1, 1, 2, 3, 4, 9));
    expect(encodeMore(bytes(5, 6))).toEqual(bytes(2, 5, 6));
    expect(encodeClose(4003, 'ok')).toEqual(bytes(3, 0x0f, 0xa3, 0x6f, 0x6b));
    expect(encodePing()).toEqual(bytes(4));
  });

  it('decode - reads back what encode wrote; payloads are views, not copies', () => {
    const raw = bytes(0, 1, 2, 3);
    const whole = decodeChannelMessage(raw);
    expect(whole).toEqual({ type: 'whole', data: bytes(1, 2, 3) });
    expect(whole.type === 'whole' && whole.data.buffer).toBe(raw.buffer);
    expect(decodeChannelMessage(bytes(1, 0, 0, 1, 0, 42))).toEqual({ type: 'first', total: 256, part: bytes(42) });
    expect(decodeChannelMessage(bytes(2))).toEqual({ type: 'more', part: bytes() });
    expect(decodeChannelMessage(encodeClose(1000, 'bye é'))).toEqual({ type: 'close', code: 1000, reason: 'bye é' });
    expect(decodeChannelMessage(bytes(4))).toEqual({ type: 'ping' });
  });

  it('decode - a message inside a larger buffer is read at its offset', () => {
    const buf = bytes(99, 99, 1, 0, 0, 0, 9, 7, 99);
    expect(decodeChannelMessage(buf.subarray(2, 8))).toEqual({ type: 'first', total: 9, part: bytes(7) });
  });

  it('decode - rejects empty, truncated, oversized and unknown messages with PROTOCOL', () => {
    expect(codeOf(() => decodeChannelMessage(bytes()))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(bytes(1, 0, 0, 1)))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(bytes(3, 3)))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(bytes(3, 3, 232, 0xff, 0xfe)))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(new Uint8Array(3 + 124).fill(97, 3).fill(3, 0, 1)))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(bytes(4, 0)))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(bytes(5)))).toBe('PROTOCOL');
    expect(codeOf(() => decodeChannelMessage(bytes(255, 1)))).toBe('PROTOCOL');
  });

  it('close - a reason is cut to 123 bytes of UTF-8 on a character boundary', () => {
    const m = decodeChannelMessage(encodeClose(1000, 'é'.repeat(100)));
    expect(m).toEqual({ type: 'close', code: 1000, reason: 'é'.repeat(61) });
  });
});

describe('direct chunks', () => {
  it('OutQueue - a message that fits goes WHOLE; a longer one as FIRST then MOREs of at most the chunk size', () => {
    const q = new OutQueue();
    q.push(pattern(10, 1));
    q.push(pattern(40, 2)); // 11 in the FIRST, 15 and 14 in MOREs
    q.pushControl(encodeClose(1000, ''));
    expect(q.bytes).toBe(50 + 3);
    const out: Uint8Array[] = [];
    for (let m = q.next(16); m; m = q.next(16)) out.push(m);
    expect(out.map((m) => [m[0], m.length])).toEqual([
      [0, 11],
      [1, 16],
      [2, 16],
      [2, 15],
      [3, 3],
    ]);
    expect(q.empty).toBe(true);
    expect(q.bytes).toBe(0);
  });

  it('OutQueue - splitting is true between the parts of one message', () => {
    const q = new OutQueue();
    q.push(pattern(40, 3));
    expect(q.splitting).toBe(false);
    q.next(16);
    expect(q.splitting).toBe(true);
    q.next(16);
    q.next(16);
    expect(q.splitting).toBe(false);
    expect(q.empty).toBe(true);
  });

  it('round trip - random sizes and chunk sizes come back whole and in order', () => {
    const rng = new Rng(42);
    for (let round = 0; round < 20; round++) {
      const size = 6 + rng.int(300);
      const q = new OutQueue();
      const sent = Array.from({ length: 1 + rng.int(20) }, (_, i) => pattern(rng.int(2000), round * 100 + i));
      for (const m of sent) q.push(m);
      const r = new Reassembler(1 << 20);
      const got: Uint8Array[] = [];
      for (let m = q.next(size); m; m = q.next(size)) {
        expect(m.length).toBeLessThanOrEqual(size);
        const whole = r.take(dataMessage(m));
        if (whole) got.push(whole);
      }
      expect(got.length).toBe(sent.length);
      got.forEach((g, i) => expect(sameBytes(g, sent[i]!), `message ${i} at chunk size ${size}`).toBe(true));
      expect(r.pending).toBe(0);
    }
  });

  it('Reassembler - a message announced above the bound is refused at its FIRST with LIMIT', () => {
    const r = new Reassembler(100);
    expect(codeOf(() => r.take(dataMessage(encodeFirst(101, bytes(1)))))).toBe('LIMIT');
    expect(codeOf(() => new Reassembler(2).take(dataMessage(encodeWhole(bytes(1, 2, 3)))))).toBe('LIMIT');
    expect(r.take(dataMessage(encodeFirst(100, bytes(1))))).toBeUndefined();
    expect(r.pending).toBe(1);
  });

  it('Reassembler - parts out of place are PROTOCOL errors', () => {
    expect(codeOf(() => new Reassembler(100).take(dataMessage(encodeMore(bytes(1)))))).toBe('PROTOCOL');
    expect(codeOf(() => new Reassembler(100).take(dataMessage(encodeFirst(1, bytes(1)))))).toBe('PROTOCOL');
    const r = new Reassembler(100);
    r.take(dataMessage(encodeFirst(3, bytes(1))));
    expect(codeOf(() => r.take(dataMessage(encodeWhole(bytes(1)))))).toBe('PROTOCOL');
    const s = new Reassembler(100);
    s.take(dataMessage(encodeFirst(3, bytes(1))));
    expect(codeOf(() => s.take(dataMessage(encodeFirst(3, bytes(1)))))).toBe('PROTOCOL');
    const t = new Reassembler(100);
    t.take(dataMessage(encodeFirst(3, bytes(1))));
    expect(codeOf(() => t.take(dataMessage(encodeMore(bytes(2, 3, 4)))))).toBe('PROTOCOL');
  });
});
