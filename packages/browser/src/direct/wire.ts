/**
 * The bytes of a direct link's data channel: pure functions, no I/O.
 *
 * A data channel message is bounded by the SCTP max message size (256 KiB in Chromium, 64 KiB by
 * default between implementations that do not say), far below a missive transport message (up to
 * 16 MiB), so each transport message travels as one or more channel messages. A few control
 * messages share the channel. Every channel message starts with a type byte:
 *
 * | type | name  | after the type byte                                                      |
 * |------|-------|--------------------------------------------------------------------------|
 * | 0    | WHOLE | one whole transport message                                              |
 * | 1    | FIRST | u32 big-endian total length, then the first part of a longer message     |
 * | 2    | MORE  | the next part; the message is complete once `total` bytes have come      |
 * | 3    | CLOSE | u16 big-endian close code, then the reason in UTF-8 (at most 123 bytes)  |
 * | 4    | PING  | nothing: keeps an idle link's traffic check satisfied                    |
 *
 * The channel is ordered and reliable, so the parts of one message come back to back; CLOSE and
 * PING are never sent between them.
 */
import { ProtocolError } from '@missive/core';
import { truncateUtf8 } from '../utf8.js';

export const ChannelType = { WHOLE: 0, FIRST: 1, MORE: 2, CLOSE: 3, PING: 4 } as const;

/** Bytes before the payload: the type byte, and for FIRST the u32 total. */
export const WHOLE_HEAD = 1;
export const FIRST_HEAD = 5;
export const MORE_HEAD = 1;
/** RFC 6455's bound on a close reason, kept here so every transport cuts reasons alike. */
export const MAX_REASON_BYTES = 123;

/** One decoded channel message. Payloads are views into the received bytes, not copies. */
export type ChannelMessage =
  | { type: 'whole'; data: Uint8Array }
  | { type: 'first'; total: number; part: Uint8Array }
  | { type: 'more'; part: Uint8Array }
  | { type: 'close'; code: number; reason: string }
  | { type: 'ping' };

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A channel message: the type byte, `head - 1` bytes for the caller to fill, then `payload`. */
function tagged(type: number, head: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(head + payload.length);
  out[0] = type;
  out.set(payload, head);
  return out;
}

export function encodeWhole(data: Uint8Array): Uint8Array {
  return tagged(ChannelType.WHOLE, WHOLE_HEAD, data);
}

/** The first part of a message of `total` bytes (`part.length < total`). */
export function encodeFirst(total: number, part: Uint8Array): Uint8Array {
  const out = tagged(ChannelType.FIRST, FIRST_HEAD, part);
  new DataView(out.buffer).setUint32(1, total);
  return out;
}

export function encodeMore(part: Uint8Array): Uint8Array {
  return tagged(ChannelType.MORE, MORE_HEAD, part);
}

/** A CLOSE; the reason is cut to 123 bytes of UTF-8, on a character boundary. */
export function encodeClose(code: number, reason: string): Uint8Array {
  const out = tagged(ChannelType.CLOSE, 3, utf8.encode(truncateUtf8(reason, MAX_REASON_BYTES)));
  new DataView(out.buffer).setUint16(1, code);
  return out;
}

export function encodePing(): Uint8Array {
  return Uint8Array.of(ChannelType.PING);
}

/** Decodes one channel message. Throws ProtocolError for anything that breaks the table above. */
export function decodeChannelMessage(bytes: Uint8Array): ChannelMessage {
  if (bytes.length === 0) throw new ProtocolError('empty data channel message');
  const type = bytes[0];
  switch (type) {
    case ChannelType.WHOLE:
      return { type: 'whole', data: bytes.subarray(WHOLE_HEAD) };
    case ChannelType.FIRST: {
      if (bytes.length < FIRST_HEAD) throw new ProtocolError(`FIRST of ${bytes.length} bytes has no length`);
      const total = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(1);
      return { type: 'first', total, part: bytes.subarray(FIRST_HEAD) };
    }
    case ChannelType.MORE:
      return { type: 'more', part: bytes.subarray(MORE_HEAD) };
    case ChannelType.CLOSE: {
      if (bytes.length < 3) throw new ProtocolError(`CLOSE of ${bytes.length} bytes has no code`);
      if (bytes.length > 3 + MAX_REASON_BYTES) throw new ProtocolError(`CLOSE reason of ${bytes.length - 3} bytes exceeds ${MAX_REASON_BYTES}`);
      const code = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint16(1);
      let reason: string;
      try {
        reason = strictUtf8.decode(bytes.subarray(3));
      } catch (err) {
        throw new ProtocolError('CLOSE reason is not UTF-8', { cause: err });
      }
      return { type: 'close', code, reason };
    }
    case ChannelType.PING:
      if (bytes.length !== 1) throw new ProtocolError(`PING of ${bytes.length} bytes (expected 1)`);
      return { type: 'ping' };
    default:
      throw new ProtocolError(`unknown data channel message type ${String(type)}`);
  }
}
