/**
 * Codec tests over exact bytes: the batch framing (`[u32 LE length][kind][flags][fields][body]`),
 * LEB128 varuints, length-prefixed UTF-8 strings, every frame kind, the body codecs, and every
 * way a malformed message must fail (ProtocolError, code PROTOCOL, with a `reason` naming the rule).
 */
import { describe, expect, it } from 'vitest';
import { codecFlag, decodeBody, encodeBody } from '../src/codec/body.js';
import { ByteReader, ByteWriter, varuintSize } from '../src/codec/bytes.js';
import {
  AckStatus,
  BodyCodec,
  decodeBatch,
  decodeFrame,
  encodeBatch,
  encodeFrame,
  frame,
  FrameTooLargeError,
  Kind,
  kindName,
  schemas,
  type Frame,
} from '../src/codec/frames.js';
import { ProtocolError } from '../src/errors.js';

const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
const le32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
/** A one-frame batch: the u32 LE length prefix, then the frame bytes. */
const unit = (frameBytes: number[]): number[] => [...le32(frameBytes.length), ...frameBytes];

function decodeAll(bytes: Uint8Array | number[], maxFrame = 1024 * 1024): Frame[] {
  const out: Frame[] = [];
  decodeBatch(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes), maxFrame, (f) => out.push(f));
  return out;
}

/** Runs `fn`, which must throw a ProtocolError; returns it. */
function protocolError(fn: () => unknown): ProtocolError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error('expected a ProtocolError, nothing was thrown');
  expect(thrown).toBeInstanceOf(ProtocolError);
  const err = thrown as ProtocolError;
  expect(err.code).toBe('PROTOCOL');
  expect(err.name).toBe(err.constructor.name);
  expect(err.message).toBe(`protocol error: ${err.reason}`);
  return err;
}

const reasonOf = (bytes: number[] | Uint8Array, maxFrame?: number): string => protocolError(() => decodeAll(bytes, maxFrame)).reason;

function writeVaruint(n: number): number[] {
  const w = new ByteWriter(4);
  w.varuint(n);
  return [...w.take()];
}

function writeStr(s: string, initialSize = 16): number[] {
  const w = new ByteWriter(initialSize);
  w.str(s);
  return [...w.take()];
}

function readVaruint(bytes: number[]): number {
  return new ByteReader(Uint8Array.from(bytes), 0, bytes.length).varuint('n');
}

function readStr(bytes: number[]): string {
  return new ByteReader(Uint8Array.from(bytes), 0, bytes.length).str('s');
}

describe('varuint (LEB128)', () => {
  const cases: [number, number[]][] = [
    [0, [0x00]],
    [1, [0x01]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [300, [0xac, 0x02]],
    [16383, [0xff, 0x7f]],
    [16384, [0x80, 0x80, 0x01]],
    [2 ** 32, [0x80, 0x80, 0x80, 0x80, 0x10]],
    [2 ** 35, [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]],
    [Number.MAX_SAFE_INTEGER, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]],
  ];

  it.each(cases)('encodes %d as exact bytes and decodes them back', (n, bytes) => {
    expect(writeVaruint(n)).toEqual(bytes);
    expect(varuintSize(n)).toBe(bytes.length);
    expect(readVaruint(bytes)).toBe(n);
  });

  it('accepts a non-minimal encoding of a small value', () => {
    expect(readVaruint([0x81, 0x80, 0x00])).toBe(1);
  });

  it('rejects 2^53 and above with PROTOCOL', () => {
    const err = protocolError(() => readVaruint([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]));
    expect(err.reason).toBe('n exceeds 2^53');
    expect(protocolError(() => readVaruint([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])).reason).toBe('n exceeds 2^53');
  });

  it('rejects a varuint longer than 8 bytes with PROTOCOL', () => {
    const err = protocolError(() => readVaruint([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]));
    expect(err.reason).toBe('n varuint longer than 8 bytes');
  });

  it('rejects a varuint cut off after a continuation byte', () => {
    expect(protocolError(() => readVaruint([0x80])).reason).toBe('truncated n');
    expect(protocolError(() => readVaruint([])).reason).toBe('truncated n');
  });

  it('refuses to encode values the decoder would reject, negatives, NaN and Infinity', () => {
    for (const bad of [-1, -0.5, Number.NaN, Infinity, -Infinity, 2 ** 53, Number.MAX_VALUE]) {
      expect(() => writeVaruint(bad), String(bad)).toThrow(RangeError);
    }
  });

  it('drops the fraction of a non-integer', () => {
    expect(writeVaruint(1.5)).toEqual([0x01]);
    expect(writeVaruint(127.9)).toEqual([0x7f]);
    expect(writeVaruint(300.7)).toEqual([0xac, 0x02]);
  });
});

describe('strings (varuint byte length + UTF-8)', () => {
  it('encodes ASCII, empty and non-ASCII strings as exact bytes', () => {
    expect(writeStr('')).toEqual([0]);
    expect(writeStr('abc')).toEqual([3, 0x61, 0x62, 0x63]);
    expect(writeStr('é')).toEqual([2, 0xc3, 0xa9]);
    expect(writeStr('a€')).toEqual([4, 0x61, 0xe2, 0x82, 0xac]);
    expect(writeStr('😀')).toEqual([4, 0xf0, 0x9f, 0x98, 0x80]);
    expect(writeStr('日本')).toEqual([6, 0xe6, 0x97, 0xa5, 0xe6, 0x9c, 0xac]);
  });

  it('uses a two-byte length for strings longer than 127 bytes', () => {
    expect(writeStr('a'.repeat(200))).toEqual([0xc8, 0x01, ...Array<number>(200).fill(0x61)]);
    // 100 chars × 2 bytes: the length prefix was sized for the worst case (3 bytes per char).
    expect(writeStr('é'.repeat(100))).toEqual([0xc8, 0x01, ...utf8('é'.repeat(100))]);
    // 50 chars × 2 bytes = 100: the worst case needed 2 prefix bytes, the real length needs 1.
    expect(writeStr('é'.repeat(50))).toEqual([100, ...utf8('é'.repeat(50))]);
    expect(writeStr('x'.repeat(128))).toEqual([0x80, 0x01, ...Array<number>(128).fill(0x78)]);
    expect(writeStr('€'.repeat(6000))).toEqual([...writeVaruint(18000), ...utf8('€'.repeat(6000))]);
  });

  it('reads back what it writes, for short and long, ASCII and non-ASCII strings', () => {
    const samples = [
      '', 'a', 'alice', 'é', 'naïve café', '日本語のテキスト', '😀👍🏽', '\u0000\u007f', '\ufeffbom',
      'a'.repeat(63), 'a'.repeat(64), 'a'.repeat(127), 'a'.repeat(128), 'é'.repeat(63), 'é'.repeat(64),
      'ü'.repeat(200), '😀'.repeat(100), 'x'.repeat(70_000),
    ];
    for (const s of samples) expect(readStr(writeStr(s)), s.slice(0, 20)).toBe(s);
  });

  it('writes a string intact at every position in a buffer that must grow', () => {
    // The writer grows its buffer while writing a length prefix: the bytes already encoded for
    // the string must survive the reallocation, whatever the position relative to the end.
    for (const s of ['é', 'ab€', '😀', 'é'.repeat(40), 'a'.repeat(5) + 'é', '€'.repeat(127)]) {
      for (let pad = 0; pad < 40; pad++) {
        const w = new ByteWriter(16);
        for (let i = 0; i < pad; i++) w.u8(0x2e);
        w.str(s);
        w.u8(0x21);
        const out = w.take();
        const r = new ByteReader(out, pad, out.length);
        expect(r.str('s'), `pad ${pad}`).toBe(s);
        expect(r.u8('end')).toBe(0x21);
      }
    }
  });

  it('rejects invalid UTF-8 with PROTOCOL naming the field', () => {
    const invalid = [
      [0xff],
      [0xc3], // truncated 2-byte sequence
      [0xc0, 0x80], // overlong NUL
      [0xed, 0xa0, 0x80], // UTF-16 surrogate half
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [...ascii('a'.repeat(70)), 0xfe], // long strings take the TextDecoder path
    ];
    for (const bytes of invalid) {
      const err = protocolError(() => readStr([...writeVaruint(bytes.length), ...bytes]));
      expect(err.reason).toBe('s is not valid UTF-8');
    }
  });

  it('rejects a length that runs past the end', () => {
    expect(protocolError(() => readStr([5, 0x61, 0x62])).reason).toBe('s length 5 exceeds frame');
    expect(protocolError(() => readStr([0x80, 0x80, 0x80, 0x80, 0x08])).reason).toBe('s length 2147483648 exceeds frame');
    expect(protocolError(() => readStr([0x80])).reason).toBe('truncated s length');
  });

  it('never reads past `end` even when the buffer continues', () => {
    const buf = Uint8Array.from([3, 0x61, 0x62, 0x63]);
    expect(protocolError(() => new ByteReader(buf, 0, 3).str('s')).reason).toBe('s length 3 exceeds frame');
    expect(protocolError(() => new ByteReader(buf, 1, 1).u8('b')).reason).toBe('truncated b');
  });
});

describe('frames - exact bytes', () => {
  it('PING nonce 5', () => {
    const bytes = [...encodeFrame(frame(Kind.Ping, { nonce: 5 }))];
    expect(bytes).toEqual([3, 0, 0, 0, 0x04, 0x00, 0x05]);
    expect(decodeAll(bytes)).toEqual([{ kind: Kind.Ping, flags: 0, nonce: 5, body: new Uint8Array(0) }]);
  });

  it('HELLO', () => {
    const f = frame(Kind.Hello, { version: 1, name: 'alice', namespace: '', secret: '', token: '', session: '' });
    const bytes = [...encodeFrame(f)];
    expect(bytes).toEqual(unit([0x01, 0x00, 0x01, 5, ...ascii('alice'), 0, 0, 0, 0]));
    expect(bytes.slice(0, 4)).toEqual([13, 0, 0, 0]);
    expect(decodeAll(bytes)).toEqual([f]);
  });

  it('BYE with a non-ASCII message', () => {
    const f = frame(Kind.Bye, { code: 'LIMIT', message: 'trop gros: é' });
    const bytes = [...encodeFrame(f)];
    expect(bytes).toEqual(unit([0x03, 0x00, 5, ...ascii('LIMIT'), 13, ...utf8('trop gros: é')]));
    expect(decodeAll(bytes)).toEqual([f]);
  });

  it('MSG with a msgpack body and multi-byte varuints', () => {
    const body = Uint8Array.from([0x81, 0xa1, 0x61, 0x01]); // msgpack {a: 1}
    const f = frame(Kind.Msg, { ref: 1, to: 'bob', from: '', origin: 'o', seq: 300, base: 1, sentAt: 2 ** 35 }, body, BodyCodec.Msgpack);
    const bytes = [...encodeFrame(f)];
    expect(bytes).toEqual(
      unit([
        0x10, 0x01, // kind MSG, flags msgpack
        0x01, // ref 1
        3, ...ascii('bob'), // to
        0, // from ''
        1, ...ascii('o'), // origin
        0xac, 0x02, // seq 300
        0x01, // base 1
        0x80, 0x80, 0x80, 0x80, 0x80, 0x01, // sentAt 2^35
        0x81, 0xa1, 0x61, 0x01, // body
      ]),
    );
    expect(bytes.slice(0, 4)).toEqual([23, 0, 0, 0]);
    const [decoded] = decodeAll(bytes);
    expect(decoded).toEqual(f);
    expect(decodeBody(decoded!.body, decoded!.flags)).toEqual({ a: 1 });
  });

  it('ACK with a u8 status', () => {
    const f = frame(Kind.Ack, { to: 'a', from: 'b', dest: 'c', origin: 'o', seq: 1, status: AckStatus.Gap });
    expect([...encodeFrame(f)]).toEqual(unit([0x11, 0x00, 1, 0x61, 1, 0x62, 1, 0x63, 1, 0x6f, 0x01, 0x02]));
    expect(decodeAll(encodeFrame(f))).toEqual([f]);
  });

  it('WATCH and OK with a body', () => {
    expect([...encodeFrame(frame(Kind.Watch, { ref: 7, on: 1 }))]).toEqual(unit([0x25, 0x00, 0x07, 0x01]));
    const ok = frame(Kind.Ok, { ref: 9 }, Uint8Array.from([0x90]), BodyCodec.Msgpack);
    expect([...encodeFrame(ok)]).toEqual(unit([0x27, 0x01, 0x09, 0x90]));
  });

  it('TDATA with tid, dir, eom and a raw body; TCLOSE with code and message', () => {
    const data = frame(Kind.TData, { to: 'b', from: 'a', tid: 300, dir: 1, eom: 1 }, Uint8Array.from([1, 2, 3]), BodyCodec.Raw);
    expect([...encodeFrame(data)]).toEqual(unit([0x32, 0x03, 1, 0x62, 1, 0x61, 0xac, 0x02, 0x01, 0x01, 1, 2, 3]));
    expect(decodeAll(encodeFrame(data))).toEqual([data]);
    const close = frame(Kind.TClose, { to: 'b', from: '', tid: 1, dir: 0, code: 'ABORTED', message: 'x' });
    expect([...encodeFrame(close)]).toEqual(unit([0x35, 0x00, 1, 0x62, 0, 1, 0, 7, ...new TextEncoder().encode('ABORTED'), 1, 0x78]));
    expect(decodeAll(encodeFrame(close))).toEqual([close]);
  });

  it('the PUB example of docs/protocol.md', () => {
    const body = encodeBody({ t: 1 }, BodyCodec.Json);
    const bytes = [...encodeFrame(frame(Kind.Pub, { topic: 'a.b', from: '' }, body.bytes, body.codec))];
    expect(bytes).toEqual([0x0e, 0, 0, 0, 0x14, 0x02, 0x03, 0x61, 0x2e, 0x62, 0x00, 0x7b, 0x22, 0x74, 0x22, 0x3a, 0x31, 0x7d]);
  });

  it('a batch is the concatenation of its length-prefixed frames, decoded in order', () => {
    const frames = [frame(Kind.Ping, { nonce: 5 }), frame(Kind.Pong, { nonce: 6 }), frame(Kind.Peers, { ref: 128 })];
    const bytes = [...encodeBatch(frames)];
    expect(bytes).toEqual([3, 0, 0, 0, 0x04, 0, 5, 3, 0, 0, 0, 0x05, 0, 6, 4, 0, 0, 0, 0x24, 0, 0x80, 0x01]);
    expect(decodeAll(bytes)).toEqual(frames);
  });

  it('decodes a body as a view of the message, without copying', () => {
    const msg = encodeFrame(frame(Kind.Pub, { topic: 't', from: '' }, Uint8Array.from([1, 2, 3]), BodyCodec.Raw));
    const [f] = decodeAll(msg);
    expect(f!.body.buffer).toBe(msg.buffer);
    expect([...f!.body]).toEqual([1, 2, 3]);
  });

  it('decodes a frame in the middle of a larger buffer', () => {
    const bytes = Uint8Array.from([0xee, 0xee, 0x04, 0x00, 0x2a, 0xee]);
    expect(decodeFrame(bytes, 2, 5)).toEqual({ kind: Kind.Ping, flags: 0, nonce: 42, body: new Uint8Array(0) });
  });

  it('names kinds for traces and errors', () => {
    expect(kindName(Kind.Hello)).toBe('Hello');
    expect(kindName(0x7f)).toBe('0x7f');
  });
});

/** Sample header values for a kind: non-ASCII and long strings, large uints, u8 extremes. */
function sampleFrame(kind: number, variant: number): Frame {
  const schema = (schemas as Record<number, { fields: readonly (readonly [string, string])[]; body: boolean }>)[kind]!;
  const strs = ['', 'alice', 'é-ü-日本-😀', 'x'.repeat(300), 'ñ'.repeat(90), '~id0/port', 'room.*.>'];
  const uints = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
  const fields: Record<string, string | number> = {};
  schema.fields.forEach(([name, type], i) => {
    const k = variant + i;
    fields[name] = type === 'str' ? strs[k % strs.length]! : type === 'uint' ? uints[k % uints.length]! : (k * 97) % 256;
  });
  const body = schema.body && variant % 2 === 1 ? encodeBody({ variant, text: 'ok é' }, BodyCodec.Msgpack) : undefined;
  return frame(kind as Kind, fields as never, body?.bytes, body?.codec ?? 0) as Frame;
}

const allKinds = Object.keys(schemas).map(Number);

describe('frames - roundtrip', () => {
  it('covers every kind', () => {
    expect(allKinds.sort((a, b) => a - b)).toEqual(Object.values(Kind).sort((a, b) => a - b));
  });

  it.each(allKinds.map((k) => [kindName(k), k]))('roundtrips every field of %s', (_name, kind) => {
    for (let variant = 0; variant < 8; variant++) {
      const f = sampleFrame(kind, variant);
      const decoded = decodeAll(encodeFrame(f));
      expect(decoded).toHaveLength(1);
      expect({ ...decoded[0]!, body: [...decoded[0]!.body] }).toEqual({ ...f, body: [...f.body] });
    }
  });

  it('roundtrips a batch holding every kind, in order', () => {
    const frames = allKinds.map((k, i) => sampleFrame(k, i));
    const decoded = decodeAll(encodeBatch(frames));
    expect(decoded.map((f) => ({ ...f, body: [...f.body] }))).toEqual(frames.map((f) => ({ ...f, body: [...f.body] })));
  });

  it('roundtrips non-ASCII strings wherever they fall in a large batch', () => {
    // encodeBatch starts with a 16 KiB buffer: walk a BYE's short non-ASCII message across its end.
    for (let pad = 16_330; pad < 16_390; pad++) {
      const frames: Frame[] = [
        frame(Kind.Pub, { topic: 't', from: '' }, new Uint8Array(pad), BodyCodec.Raw),
        frame(Kind.Bye, { code: 'x', message: 'é' }),
        frame(Kind.Err, { ref: 1, code: 'ü', message: 'ça' }),
      ];
      const decoded = decodeAll(encodeBatch(frames));
      expect(decoded[1], `pad ${pad}`).toMatchObject({ code: 'x', message: 'é' });
      expect(decoded[2], `pad ${pad}`).toMatchObject({ ref: 1, code: 'ü', message: 'ça' });
    }
  });
});

describe('frames - malformed input gives PROTOCOL with a reason', () => {
  it('an empty message', () => {
    expect(reasonOf([])).toBe('empty message');
  });

  it('a message too short for a length prefix', () => {
    expect(reasonOf([1, 0, 0])).toBe('truncated frame length');
    // ...also after a valid frame
    expect(reasonOf([...encodeFrame(frame(Kind.Ping, { nonce: 1 })), 0])).toBe('truncated frame length');
  });

  it('a frame shorter than kind + flags', () => {
    expect(reasonOf(unit([]))).toBe('frame shorter than 2 bytes');
    expect(reasonOf(unit([0x04]))).toBe('frame shorter than 2 bytes');
  });

  it('an unknown kind', () => {
    expect(reasonOf(unit([0x00, 0x00]))).toBe('unknown frame kind 0x0');
    expect(reasonOf(unit([0x06, 0x00, 0x01]))).toBe('unknown frame kind 0x6');
    expect(reasonOf(unit([0x40, 0x00]))).toBe('unknown frame kind 0x40');
    expect(reasonOf(unit([0xff, 0x00, 0x01, 0x02]))).toBe('unknown frame kind 0xff');
  });

  it('reserved flag bits', () => {
    expect(reasonOf(unit([0x04, 0x08, 0x01]))).toBe('reserved flag bits set (0x8)');
    expect(reasonOf(unit([0x10, 0x81, 0x01]))).toBe('reserved flag bits set (0x81)');
  });

  it('a truncated field', () => {
    expect(reasonOf(unit([0x04, 0x00]))).toBe('truncated Ping.nonce');
    expect(reasonOf(unit([0x04, 0x00, 0x80]))).toBe('truncated Ping.nonce');
    expect(reasonOf(unit([0x11, 0x00, 1, 0x61, 1, 0x62, 1, 0x63, 1, 0x6f, 0x01]))).toBe('truncated Ack.status');
    expect(reasonOf(unit([0x01, 0x00, 0x01, 0x00]))).toBe('truncated Hello.namespace length');
  });

  it('every strict truncation of every kind\'s header fails, naming the field', () => {
    for (const kind of allKinds) {
      const f = sampleFrame(kind, 2);
      const full = encodeFrame({ ...f, body: new Uint8Array(0), flags: 0 } as Frame).subarray(4);
      for (let cut = 0; cut < full.length; cut++) {
        const reason = reasonOf(unit([...full.subarray(0, cut)]));
        if (cut < 2) expect(reason).toBe('frame shorter than 2 bytes');
        else expect(reason, `${kindName(kind)} cut at ${cut}`).toMatch(new RegExp(`^(truncated ${kindName(kind)}\\.\\w+( length)?|${kindName(kind)}\\.\\w+ length \\d+ exceeds frame)$`));
      }
    }
  });

  it('a string length beyond the frame', () => {
    expect(reasonOf(unit([0x03, 0x00, 10, 0x61]))).toBe('Bye.code length 10 exceeds frame');
    // A huge length must not allocate or read: it fails on the bound.
    expect(reasonOf(unit([0x10, 0x00, 0x01, ...writeVaruint(2 ** 50), 0x61]))).toBe(`Msg.to length ${2 ** 50} exceeds frame`);
    // The string may not borrow bytes from the next frame of the batch.
    expect(reasonOf([...unit([0x03, 0x00, 3, 0x61]), ...unit([0x04, 0x00, 0x01])])).toBe('Bye.code length 3 exceeds frame');
  });

  it('invalid UTF-8 in a string field', () => {
    expect(reasonOf(unit([0x03, 0x00, 0x02, 0xc3, 0x28, 0x00]))).toBe('Bye.code is not valid UTF-8');
    expect(reasonOf(unit([0x03, 0x00, 0x00, 0x01, 0xff]))).toBe('Bye.message is not valid UTF-8');
  });

  it('a varuint above 2^53 or longer than 8 bytes', () => {
    expect(reasonOf(unit([0x04, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]))).toBe('Ping.nonce exceeds 2^53');
    expect(reasonOf(unit([0x04, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('Ping.nonce varuint longer than 8 bytes');
    expect(reasonOf(unit([0x03, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]))).toBe('Bye.code length varuint longer than 8 bytes');
  });

  it('a body on a kind that has none', () => {
    expect(reasonOf(unit([0x04, 0x01, 0x05, 0x90]))).toBe('Ping frame carries a body');
    expect(reasonOf(unit([0x22, 0x00, 0x01, 0x01, 0x67, 0x00]))).toBe('Join frame carries a body');
  });

  it('a body without codec flags', () => {
    expect(reasonOf(unit([0x14, 0x00, 0x01, 0x74, 0x00, 0x90]))).toBe('Pub body without a codec');
  });

  it('a codec flag on an empty body is allowed', () => {
    expect(decodeAll(unit([0x14, 0x01, 0x01, 0x74, 0x00]))).toEqual([{ kind: Kind.Pub, flags: 1, topic: 't', from: '', body: new Uint8Array(0) }]);
  });

  it('a frame length beyond the message', () => {
    expect(reasonOf([10, 0, 0, 0, 0x04, 0x00, 0x01])).toBe('frame length 10 exceeds message');
    expect(reasonOf([0xff, 0xff, 0xff, 0x7f], 2 ** 32)).toBe('frame length 2147483647 exceeds message');
  });

  it('a frame larger than maxFrame is a FrameTooLargeError (a ProtocolError) before its bytes are looked at', () => {
    const err = protocolError(() => decodeAll([...le32(101), ...Array<number>(101).fill(0)], 100));
    expect(err).toBeInstanceOf(FrameTooLargeError);
    expect(err).toMatchObject({ size: 101, max: 100, reason: 'frame of 101 bytes exceeds the 100-byte limit' });
    // Checked against the declared length, even when the message is shorter.
    expect(protocolError(() => decodeAll([...le32(5000), 0x04, 0x00], 100))).toBeInstanceOf(FrameTooLargeError);
    // A frame of exactly maxFrame bytes is fine.
    expect(decodeAll(encodeFrame(frame(Kind.Pub, { topic: 't', from: '' }, new Uint8Array(95), BodyCodec.Raw)), 100)).toHaveLength(1);
  });

  it('frames before the broken one are delivered, in order, then decoding stops', () => {
    const seen: Frame[] = [];
    const bytes = Uint8Array.from([...encodeFrame(frame(Kind.Ping, { nonce: 1 })), ...unit([0x7f, 0x00]), ...encodeFrame(frame(Kind.Ping, { nonce: 3 }))]);
    const err = protocolError(() => decodeBatch(bytes, 1024, (f) => seen.push(f)));
    expect(err.reason).toBe('unknown frame kind 0x7f');
    expect(seen).toEqual([frame(Kind.Ping, { nonce: 1 })]);
  });
});

describe('body codecs', () => {
  it('msgpack is the default and encodes exact bytes', () => {
    expect(codecFlag('msgpack')).toBe(BodyCodec.Msgpack);
    const { bytes, codec } = encodeBody({ a: 1 }, BodyCodec.Msgpack);
    expect(codec).toBe(BodyCodec.Msgpack);
    expect([...bytes]).toEqual([0x81, 0xa1, 0x61, 0x01]);
    expect(decodeBody(bytes, BodyCodec.Msgpack)).toEqual({ a: 1 });
  });

  it('msgpack carries binary, nested values, and drops undefined properties', () => {
    const value = { bin: Uint8Array.from([1, 2, 255]), list: [1, 'two', null, true, 1.5, -3], deep: { é: '😀' }, gone: undefined };
    const { bytes } = encodeBody(value, BodyCodec.Msgpack);
    expect(decodeBody(bytes, BodyCodec.Msgpack)).toEqual({ bin: Uint8Array.from([1, 2, 255]), list: [1, 'two', null, true, 1.5, -3], deep: { é: '😀' } });
  });

  it('json encodes UTF-8 text', () => {
    expect(codecFlag('json')).toBe(BodyCodec.Json);
    const { bytes, codec } = encodeBody({ a: 1, s: 'é' }, BodyCodec.Json);
    expect(codec).toBe(BodyCodec.Json);
    expect([...bytes]).toEqual(utf8('{"a":1,"s":"é"}'));
    expect(decodeBody(bytes, BodyCodec.Json)).toEqual({ a: 1, s: 'é' });
    expect(decodeBody(Uint8Array.from(utf8('null')), BodyCodec.Json)).toBeNull();
  });

  it('undefined is an empty body with codec none, under every codec', () => {
    for (const c of [BodyCodec.Msgpack, BodyCodec.Json, BodyCodec.Raw]) {
      const { bytes, codec } = encodeBody(undefined, c);
      expect(bytes.length).toBe(0);
      expect(codec).toBe(BodyCodec.None);
    }
    expect(decodeBody(new Uint8Array(0), BodyCodec.None)).toBeUndefined();
    // A falsy value is still a value.
    expect([...encodeBody(null, BodyCodec.Msgpack).bytes]).toEqual([0xc0]);
    expect([...encodeBody(0, BodyCodec.Json).bytes]).toEqual(utf8('0'));
  });

  it('raw bodies are bytes, copied out of the frame on decode', () => {
    const src = Uint8Array.from([9, 8, 7]);
    expect(encodeBody(src, BodyCodec.Raw)).toEqual({ bytes: src, codec: BodyCodec.Raw });
    const out = decodeBody(src, BodyCodec.Raw) as Uint8Array;
    expect([...out]).toEqual([9, 8, 7]);
    expect(out.buffer).not.toBe(src.buffer);
    expect(() => encodeBody('text', BodyCodec.Raw)).toThrow(TypeError);
  });

  it('a value JSON cannot represent is a TypeError at encode', () => {
    expect(() => encodeBody(() => 1, BodyCodec.Json)).toThrow(TypeError);
    expect(() => encodeBody(Symbol('s'), BodyCodec.Json)).toThrow(TypeError);
    expect(() => encodeBody(10n, BodyCodec.Json)).toThrow(TypeError);
  });

  it('a body decodes with the codec its flags name, whatever the receiver prefers', () => {
    const asJson = encodeBody({ x: [1, 2] }, BodyCodec.Json);
    const asMsgpack = encodeBody({ x: [1, 2] }, BodyCodec.Msgpack);
    expect(decodeBody(asJson.bytes, asJson.codec)).toEqual(decodeBody(asMsgpack.bytes, asMsgpack.codec));
  });

  it('a malformed msgpack body is PROTOCOL with the cause attached', () => {
    const cases: number[][] = [
      [0xc1], // never-used byte
      [0x92, 0x01], // array of 2 with 1 element
      [0xdd, 0xff, 0xff, 0xff, 0xff], // array claiming 4 billion elements
      [0xa5, 0x61], // string cut short
      [0x01, 0x02], // extra bytes after a value
      [0x81, 0xa9, ...ascii('__proto__'), 0x01], // prototype pollution attempt
    ];
    for (const bytes of cases) {
      const err = protocolError(() => decodeBody(Uint8Array.from(bytes), BodyCodec.Msgpack));
      expect(err.reason).toBe('body is not valid msgpack');
      expect(err.cause).toBeInstanceOf(Error);
    }
  });

  it('a malformed JSON body is PROTOCOL', () => {
    for (const bytes of [utf8('{"a":'), utf8('undefined'), [], [0x22, 0xff, 0x22], utf8('{} x')]) {
      const err = protocolError(() => decodeBody(Uint8Array.from(bytes), BodyCodec.Json));
      expect(err.reason).toBe('body is not valid JSON');
    }
  });

  it('an empty body under msgpack is PROTOCOL, not undefined', () => {
    expect(protocolError(() => decodeBody(new Uint8Array(0), BodyCodec.Msgpack)).reason).toBe('body is not valid msgpack');
  });
});
