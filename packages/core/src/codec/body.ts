/**
 * Body codecs. A body is encoded once by its sender and decoded once by its receiver; the
 * frame's flags say which codec, so peers with different codecs interoperate.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { ProtocolError } from '../errors.js';
import { BodyCodec, EMPTY_BODY } from './frames.js';

/** Codec names a peer may choose. */
export type CodecName = 'msgpack' | 'json';

const textEncoder = new TextEncoder();
// One encoder and decoder for the module: constructing them per body costs more than encoding a
// small body. Neither is re-entered (no extension codecs call back into them).
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The flag value for a codec name. */
export function codecFlag(name: CodecName): BodyCodec {
  return name === 'json' ? BodyCodec.Json : BodyCodec.Msgpack;
}

/**
 * Encodes a body value. `undefined` becomes an empty body (codec None), so a request without
 * payload costs no bytes. Throws a TypeError if the value cannot be represented. Without
 * `transient`, the bytes are the caller's to keep (a Uint8Array value is copied: its owner may
 * reuse it). With `transient`, they are only valid until the next call and may be the value
 * itself: for bodies written out at once.
 */
export function encodeBody(value: unknown, codec: BodyCodec, transient = false): { bytes: Uint8Array; codec: BodyCodec } {
  if (value === undefined) return { bytes: EMPTY_BODY, codec: BodyCodec.None };
  // Binary travels as itself (codec Raw) whatever the peer's codec: no msgpack framing to build
  // or parse, and JSON peers can send binary too. The receiver gets a Uint8Array either way.
  if (value instanceof Uint8Array) return { bytes: transient ? value : value.slice(), codec: BodyCodec.Raw };
  if (codec === BodyCodec.Json) {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError('body cannot be encoded as JSON');
    return { bytes: textEncoder.encode(text), codec };
  }
  if (codec === BodyCodec.Raw) {
    if (!(value instanceof Uint8Array)) throw new TypeError('raw body must be a Uint8Array');
    return { bytes: value, codec };
  }
  // `transient` bodies are copied into a batch at once, so they may share the encoder's buffer
  // (valid until the next encode) instead of being copied out of it first.
  return { bytes: transient ? encoder.encodeSharedRef(value) : encoder.encode(value), codec: BodyCodec.Msgpack };
}

/** Decodes a body with the codec named by the frame flags. Throws ProtocolError if malformed. */
export function decodeBody(bytes: Uint8Array, flags: number): unknown {
  const codec = flags & 0x03;
  if (codec === BodyCodec.None) return undefined;
  if (codec === BodyCodec.Raw) return bytes.slice();
  try {
    if (codec === BodyCodec.Json) return JSON.parse(textDecoder.decode(bytes));
    return decoder.decode(bytes);
  } catch (err) {
    throw new ProtocolError(`body is not valid ${codec === BodyCodec.Json ? 'JSON' : 'msgpack'}`, { cause: err });
  }
}
