/**
 * The FileStore log's records and their checksums (docs/stores.md, "File format"): pure
 * functions over bytes, and the replay loop that reads them back from a file handle.
 *
 *   crc32 u32le | length u32le | payload (length bytes; payload[0] is the record type)
 *
 * The CRC-32 covers the length field and the payload. Replaying stops at the first record that
 * is incomplete or fails its checksum: that is the torn tail of a write cut short by a crash,
 * never misparsed. A record whose checksum holds but whose payload is malformed is a bug or
 * tampering, and refuses the file with ProtocolError.
 */
import { LimitError, ProtocolError, type OutboxEntry } from '@missive/core';
import type { FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';

/** The header's magic: a file whose first record lacks it is not a missive outbox log. */
export const MAGIC = 'missive-outbox';
/** The log format version this code reads and writes. */
export const VERSION = 1;
/** Bytes before a record's payload: its CRC-32 and its length. */
export const HEAD = 8;
/** Largest record payload (an entry's body and addresses): more rejects the append with LIMIT. */
export const MAX_RECORD = 64 * 1024 * 1024;
/** Replay reads the file in chunks of this many bytes. */
const READ_CHUNK = 1024 * 1024;

/** Record types: the payload's first byte. */
export const Rec = { Header: 1, Append: 2, Ack: 3, Dedup: 4, Seq: 5 } as const;

/** A decoded record. */
export type LogRecord =
  | { type: typeof Rec.Header; version: number; origin: string }
  | { type: typeof Rec.Append; entry: OutboxEntry }
  | { type: typeof Rec.Ack; id: string }
  | { type: typeof Rec.Dedup; key: string; seq: number }
  | { type: typeof Rec.Seq; dest: string; seq: number };

// ---- encoding ---------------------------------------------------------------------------------

/** A record around a payload of `n` bytes that `fill` writes from offset 8. */
function record(n: number, fill: (b: Buffer) => void): Buffer {
  if (n > MAX_RECORD) throw new LimitError(`outbox record of ${n} bytes exceeds the file store's ${MAX_RECORD}`);
  const b = Buffer.allocUnsafe(HEAD + n);
  b.writeUInt32LE(n, 4);
  fill(b);
  b.writeUInt32LE(crc32(b.subarray(4)), 0);
  return b;
}

/** Header: type | `missive-outbox` | u8 version | origin (UTF-8, to the end). */
export function encodeHeader(origin: string, version: number = VERSION): Buffer {
  const n = Buffer.byteLength(origin);
  return record(2 + MAGIC.length + n, (b) => {
    b[HEAD] = Rec.Header;
    b.write(MAGIC, HEAD + 1, 'latin1');
    b[HEAD + 1 + MAGIC.length] = version;
    b.write(origin, HEAD + 2 + MAGIC.length, n, 'utf8');
  });
}

/**
 * Append: type | seq f64 | sentAt f64 | flags u32 | id, to, dest (u32 length + UTF-8 each) |
 * body (to the end). The entry must be valid (`invalidEntry`); a record over 64 MiB throws LIMIT.
 */
export function encodeAppend(e: OutboxEntry): Buffer {
  const id = Buffer.byteLength(e.id);
  const to = Buffer.byteLength(e.to);
  const dest = Buffer.byteLength(e.dest);
  return record(1 + 20 + 12 + id + to + dest + e.body.length, (b) => {
    let o = HEAD;
    b[o++] = Rec.Append;
    o = b.writeDoubleLE(e.seq, o);
    o = b.writeDoubleLE(e.sentAt, o);
    o = b.writeUInt32LE(e.flags, o);
    o = putString(b, o, e.id, id);
    o = putString(b, o, e.to, to);
    o = putString(b, o, e.dest, dest);
    b.set(e.body, o);
  });
}

/** Ack: type | id (UTF-8, to the end). */
export function encodeAck(id: string): Buffer {
  return encodeString(Rec.Ack, id);
}

/** Dedup: type | seq f64 | stream key (UTF-8, to the end). */
export function encodeDedup(key: string, seq: number): Buffer {
  return encodeString(Rec.Dedup, key, seq);
}

/** Seq: type | seq f64 | destination (UTF-8, to the end). Written by compaction. */
export function encodeSeq(dest: string, seq: number): Buffer {
  return encodeString(Rec.Seq, dest, seq);
}

/** Bytes of the dedup record of `key` (or the seq record of a destination): what it adds to a compacted log. */
export function markRecordBytes(key: string): number {
  return HEAD + 9 + Buffer.byteLength(key);
}

function encodeString(type: number, s: string, seq?: number): Buffer {
  const n = Buffer.byteLength(s);
  const at = seq === undefined ? 1 : 9;
  return record(at + n, (b) => {
    b[HEAD] = type;
    if (seq !== undefined) b.writeDoubleLE(seq, HEAD + 1);
    b.write(s, HEAD + at, n, 'utf8');
  });
}

function putString(b: Buffer, o: number, s: string, n: number): number {
  b.writeUInt32LE(n, o);
  b.write(s, o + 4, n, 'utf8');
  return o + 4 + n;
}

// ---- decoding ---------------------------------------------------------------------------------

/** Decodes a payload whose checksum matched (`at`: its record's offset, for the message). */
export function decodeRecord(p: Buffer, at: number): LogRecord {
  const bad = (): ProtocolError => new ProtocolError(`malformed outbox log record (type ${String(p[0])}) at byte ${at}`);
  let o = 1;
  const need = (n: number): void => {
    if (o + n > p.length) throw bad();
  };
  const str = (): string => {
    need(4);
    const n = p.readUInt32LE(o);
    o += 4;
    need(n);
    o += n;
    return p.toString('utf8', o - n, o);
  };
  switch (p[0]) {
    case Rec.Header:
      need(MAGIC.length + 1);
      if (p.toString('latin1', 1, 1 + MAGIC.length) !== MAGIC) throw new ProtocolError('not a missive outbox log');
      return { type: Rec.Header, version: p[1 + MAGIC.length]!, origin: p.toString('utf8', 2 + MAGIC.length) };
    case Rec.Append: {
      need(20);
      const seq = p.readDoubleLE(1);
      const sentAt = p.readDoubleLE(9);
      const flags = p.readUInt32LE(17);
      o = 21;
      const id = str();
      const to = str();
      const dest = str();
      // A copy, so the read buffer (the whole chunk) is not kept alive by a body.
      const body = new Uint8Array(p.subarray(o));
      return { type: Rec.Append, entry: { id, to, dest, seq, sentAt, body, flags } };
    }
    case Rec.Ack:
      return { type: Rec.Ack, id: p.toString('utf8', 1) };
    case Rec.Dedup:
    case Rec.Seq: {
      need(8);
      const seq = p.readDoubleLE(1);
      const s = p.toString('utf8', 9);
      return p[0] === Rec.Dedup ? { type: Rec.Dedup, key: s, seq } : { type: Rec.Seq, dest: s, seq };
    }
    default:
      throw new ProtocolError(`unknown outbox log record type ${String(p[0])} at byte ${at}`);
  }
}

/**
 * Reads the log in `fh` (`size` bytes, named `file` in errors) and hands every intact record to
 * `apply` with its size in bytes, in order; resolves with the offset just past the last one (the
 * rest is a torn tail). Rejects with ProtocolError, having applied nothing it could not trust, if
 * the first record is not a header of this version or a later record is a header or malformed.
 */
export async function replay(fh: FileHandle, size: number, file: string, apply: (r: LogRecord, bytes: number) => void): Promise<number> {
  const reader = new LogReader(fh, size);
  let pos = 0;
  while (pos < size) {
    const head = await reader.bytes(pos, HEAD);
    if (!head) break;
    const len = head.readUInt32LE(4);
    if (len < 1 || len > MAX_RECORD) break;
    const rec = await reader.bytes(pos, HEAD + len);
    if (!rec || crc32(rec.subarray(4)) !== rec.readUInt32LE(0)) break;
    const r = decodeRecord(rec.subarray(HEAD), pos);
    if ((pos === 0) !== (r.type === Rec.Header)) {
      throw new ProtocolError(pos === 0 ? `${file} is not a missive outbox log` : `${file}: header record at byte ${pos}`);
    }
    if (r.type === Rec.Header && r.version !== VERSION) throw new ProtocolError(`${file}: unsupported outbox log version ${r.version}`);
    apply(r, rec.length);
    pos += rec.length;
  }
  if (pos === 0) throw new ProtocolError(`${file} is not a missive outbox log (no valid header record)`);
  return pos;
}

/** Reads a file in 1 MiB chunks; a record straddling two chunks is read again whole. */
class LogReader {
  #buf = Buffer.alloc(0);
  #at = 0;
  constructor(
    readonly fh: FileHandle,
    readonly size: number,
  ) {}

  /** The `n` bytes at `pos`, or undefined if the file ends first. */
  async bytes(pos: number, n: number): Promise<Buffer | undefined> {
    if (pos + n > this.size) return undefined;
    if (pos >= this.#at && pos + n <= this.#at + this.#buf.length) return this.#buf.subarray(pos - this.#at, pos - this.#at + n);
    const len = Math.min(Math.max(n, READ_CHUNK), this.size - pos);
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.fh.read(buf, got, len - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < n) return undefined;
    this.#buf = buf.subarray(0, got);
    this.#at = pos;
    return this.#buf.subarray(0, n);
  }
}

// ---- CRC-32 -----------------------------------------------------------------------------------

let table: Uint32Array | undefined;

/**
 * CRC-32 (IEEE, as zlib), for Node versions without `zlib.crc32` (before 20.15).
 * @internal exported for tests
 */
export function crc32Js(data: Uint8Array, value = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 (IEEE): zlib's where Node has it, else {@link crc32Js}. */
export const crc32: (data: Uint8Array, value?: number) => number = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32 ?? crc32Js;
