/**
 * Pure byte-level helpers: a growable writer and a bounds-checked reader for the frame
 * header fields (u8, varuint, utf-8 string). No I/O; every read failure is a ProtocolError.
 */
import { ProtocolError } from '../errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes needed by the LEB128 varuint encoding of n. */
export function varuintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A growable byte buffer, reused across batches (`reset`), written front to back. */
export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initialSize = 16 * 1024) {
    this.buf = new Uint8Array(initialSize);
  }

  ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(n: number): void {
    this.ensure(1);
    this.buf[this.pos++] = n;
  }

  u32(n: number): void {
    this.ensure(4);
    this.setU32(this.pos, n);
    this.pos += 4;
  }

  /** Little-endian u32 at `at` (written by hand: no DataView per writer). */
  setU32(at: number, n: number): void {
    const b = this.buf;
    b[at] = n & 0xff;
    b[at + 1] = (n >>> 8) & 0xff;
    b[at + 2] = (n >>> 16) & 0xff;
    b[at + 3] = (n >>> 24) & 0xff;
  }

  /**
   * Writes `n` in LEB128, dropping any fraction. Throws a RangeError unless 0 <= n < 2^53: the
   * decoder refuses larger values, a negative one would wrap, and NaN or Infinity never end.
   */
  varuint(n: number): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER)) throw new RangeError(`varuint out of range: ${n}`);
    this.ensure(8);
    const buf = this.buf;
    while (n >= 0x80) {
      buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[this.pos++] = n;
  }

  /** A varuint byte length followed by the UTF-8 bytes. */
  str(s: string): void {
    const len = s.length;
    if (len === 0) {
      this.u8(0);
      return;
    }
    // ASCII fast path: most names, topics and codes are short ASCII.
    if (len < 128) {
      this.ensure(1 + len * 3);
      const buf = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === len) {
        buf[this.pos] = len;
        this.pos = start + len;
        return;
      }
    }
    const max = len * 3;
    const prefix = varuintSize(max);
    // At least 8: `varuint` below must not grow the buffer, which would drop the string bytes
    // already encoded past `pos`.
    this.ensure(Math.max(prefix + max, 8));
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos + prefix));
    const actual = varuintSize(written);
    if (actual !== prefix) this.buf.copyWithin(this.pos + actual, this.pos + prefix, this.pos + prefix + written);
    this.varuint(written);
    this.pos += written;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A copy of what was written; the writer can then be reset and reused. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}

/** Reads fields from `buf[pos, end)`; never reads past `end`. */
export class ByteReader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  u8(field: string): number {
    if (this.pos >= this.end) throw new ProtocolError(`truncated ${field}`);
    return this.buf[this.pos++]!;
  }

  /** A varuint; `field` + `suffix` names it in errors (joined only then: this is the hot path). */
  varuint(field: string, suffix = ''): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new ProtocolError(`truncated ${field}${suffix}`);
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) throw new ProtocolError(`${field}${suffix} exceeds 2^53`);
        return result;
      }
      mul *= 128;
    }
    throw new ProtocolError(`${field}${suffix} varuint longer than 8 bytes`);
  }

  /**
   * A string field. Short ASCII is built with `+=`, the fastest way for per-message fields; with
   * `flat`, it is decoded in one piece instead, for strings kept for a connection's life (a
   * peer's name or session), since a string built with `+=` is a chain of rope nodes.
   */
  str(field: string, flat = false): string {
    const len = this.varuint(field, ' length');
    if (len > this.end - this.pos) throw new ProtocolError(`${field} length ${len} exceeds frame`);
    const start = this.pos;
    this.pos += len;
    if (len < 64 && !flat) {
      let s = '';
      for (let i = start; i < start + len; i++) {
        const c = this.buf[i]!;
        if (c >= 0x80) return decodeUtf8(this.buf.subarray(start, start + len), field);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return decodeUtf8(this.buf.subarray(start, start + len), field);
  }
}

function decodeUtf8(bytes: Uint8Array, field: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ProtocolError(`${field} is not valid UTF-8`);
  }
}
