/**
 * Frame kinds, their header fields, and the batch framing. See docs/protocol.md for the byte
 * layout. A frame is `kind u8 | flags u8 | header fields | body`; the body is opaque bytes
 * encoded once by the sender (codec in the flags) and never decoded by the Router.
 */
import { ProtocolError } from '../errors.js';
import { ByteReader, ByteWriter } from './bytes.js';

/** Protocol version carried by HELLO. A Router refuses any other. */
export const PROTOCOL_VERSION = 1;

/** Frame kinds on the wire. */
export const Kind = {
  Hello: 0x01,
  Welcome: 0x02,
  Bye: 0x03,
  Ping: 0x04,
  Pong: 0x05,
  Msg: 0x10,
  Ack: 0x11,
  Req: 0x12,
  Rep: 0x13,
  Pub: 0x14,
  Bcast: 0x15,
  Signal: 0x16,
  Sub: 0x20,
  Unsub: 0x21,
  Join: 0x22,
  Leave: 0x23,
  Peers: 0x24,
  Watch: 0x25,
  Presence: 0x26,
  Ok: 0x27,
  Err: 0x28,
  TOpen: 0x30,
  TAccept: 0x31,
  TData: 0x32,
  TCredit: 0x33,
  TEnd: 0x34,
  TClose: 0x35,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];
export type KindName = keyof typeof Kind;

/** Body codec, in the low two bits of the flags byte. */
export const BodyCodec = { None: 0, Msgpack: 1, Json: 2, Raw: 3 } as const;
export type BodyCodec = (typeof BodyCodec)[keyof typeof BodyCodec];

/** Ack status values. */
export const AckStatus = { Ok: 0, Limit: 1, Gap: 2, NoRoute: 3, Held: 4, Expired: 5 } as const;
export type AckStatus = (typeof AckStatus)[keyof typeof AckStatus];

/** Presence event values. */
export const PresenceEvent = { Join: 1, Leave: 2 } as const;

type FieldType = 'u8' | 'uint' | 'str';
interface Schema {
  readonly fields: readonly (readonly [string, FieldType])[];
  /** Whether frames of this kind may carry a body. */
  readonly body: boolean;
}

/** The header fields of each kind, in wire order. The single source of truth for the codec. */
export const schemas = {
  [Kind.Hello]: { fields: [['version', 'uint'], ['name', 'str'], ['namespace', 'str'], ['secret', 'str'], ['token', 'str'], ['session', 'str']], body: false },
  [Kind.Welcome]: { fields: [['id', 'str'], ['name', 'str'], ['namespace', 'str'], ['maxFrame', 'uint']], body: false },
  [Kind.Bye]: { fields: [['code', 'str'], ['message', 'str']], body: false },
  [Kind.Ping]: { fields: [['nonce', 'uint']], body: false },
  [Kind.Pong]: { fields: [['nonce', 'uint']], body: false },
  [Kind.Msg]: { fields: [['ref', 'uint'], ['to', 'str'], ['from', 'str'], ['origin', 'str'], ['seq', 'uint'], ['base', 'uint'], ['sentAt', 'uint']], body: true },
  [Kind.Ack]: { fields: [['to', 'str'], ['from', 'str'], ['dest', 'str'], ['origin', 'str'], ['seq', 'uint'], ['status', 'u8']], body: false },
  [Kind.Req]: { fields: [['to', 'str'], ['from', 'str'], ['id', 'uint'], ['timeout', 'uint']], body: true },
  [Kind.Rep]: { fields: [['to', 'str'], ['from', 'str'], ['id', 'uint'], ['code', 'str'], ['message', 'str']], body: true },
  [Kind.Pub]: { fields: [['topic', 'str'], ['from', 'str']], body: true },
  [Kind.Bcast]: { fields: [['ref', 'uint'], ['to', 'str'], ['from', 'str']], body: true },
  // Direct-link signalling (and, on a direct link, its acks): a msgpack body, forwarded like a
  // request to the peer named by `to`, best-effort.
  [Kind.Signal]: { fields: [['to', 'str'], ['from', 'str']], body: true },
  [Kind.Sub]: { fields: [['ref', 'uint'], ['pattern', 'str']], body: false },
  [Kind.Unsub]: { fields: [['ref', 'uint'], ['pattern', 'str']], body: false },
  [Kind.Join]: { fields: [['ref', 'uint'], ['group', 'str']], body: false },
  [Kind.Leave]: { fields: [['ref', 'uint'], ['group', 'str']], body: false },
  [Kind.Peers]: { fields: [['ref', 'uint']], body: false },
  [Kind.Watch]: { fields: [['ref', 'uint'], ['on', 'u8']], body: false },
  [Kind.Presence]: { fields: [['event', 'u8'], ['name', 'str'], ['id', 'str']], body: false },
  [Kind.Ok]: { fields: [['ref', 'uint']], body: true },
  [Kind.Err]: { fields: [['ref', 'uint'], ['code', 'str'], ['message', 'str']], body: false },
  // Tunnels: `tid` is chosen by the opener; `dir` is 0 from the opener, 1 from the acceptor.
  [Kind.TOpen]: { fields: [['to', 'str'], ['from', 'str'], ['tid', 'uint'], ['window', 'uint']], body: false },
  [Kind.TAccept]: { fields: [['to', 'str'], ['from', 'str'], ['tid', 'uint'], ['window', 'uint']], body: false },
  [Kind.TData]: { fields: [['to', 'str'], ['from', 'str'], ['tid', 'uint'], ['dir', 'u8'], ['eom', 'u8']], body: true },
  [Kind.TCredit]: { fields: [['to', 'str'], ['from', 'str'], ['tid', 'uint'], ['dir', 'u8'], ['bytes', 'uint']], body: false },
  [Kind.TEnd]: { fields: [['to', 'str'], ['from', 'str'], ['tid', 'uint'], ['dir', 'u8']], body: false },
  [Kind.TClose]: { fields: [['to', 'str'], ['from', 'str'], ['tid', 'uint'], ['dir', 'u8'], ['code', 'str'], ['message', 'str']], body: false },
} as const satisfies Record<Kind, Schema>;

type Schemas = typeof schemas;
type FieldValue<T extends FieldType> = T extends 'str' ? string : number;
type FieldsOf<F> = F extends readonly (readonly [string, FieldType])[]
  ? { [E in F[number] as E[0]]: FieldValue<E[1]> }
  : never;

/** A decoded (or to-be-encoded) frame of kind K: its header fields, flags and body. */
export type FrameOf<K extends Kind> = { kind: K; flags: number; body: Uint8Array } & FieldsOf<Schemas[K]['fields']>;
/** Any frame. */
export type Frame = { [K in Kind]: FrameOf<K> }[Kind];

const EMPTY = new Uint8Array(0);

/**
 * Frame flag: this frame's body is the whole of the next transport message (large bodies are
 * sent that way, so that no one copies them into or out of a batch). Such a frame ends its batch.
 */
export const BODY_NEXT = 0x04;
export { EMPTY as EMPTY_BODY };

const kindNames = new Map<number, KindName>(Object.entries(Kind).map(([k, v]) => [v, k as KindName]));
/** Human name of a kind number (for traces and errors). */
export function kindName(kind: number): string {
  return kindNames.get(kind) ?? `0x${kind.toString(16)}`;
}

/** Builds a frame with an empty body and zero flags unless given. */
export function frame<K extends Kind>(
  kind: K,
  fields: FieldsOf<Schemas[K]['fields']>,
  body: Uint8Array = EMPTY,
  flags = 0,
): FrameOf<K> {
  return { kind, flags, body, ...fields } as FrameOf<K>;
}

/** Appends one frame (without the batch length prefix) to `w`. */
export function writeFrame(w: ByteWriter, f: Frame): void {
  writeFrameHead(w, f);
  if (f.body.length > 0) w.bytes(f.body);
}

/**
 * Appends `[u32 length][frame without its body]` with the `BODY_NEXT` flag set: the body is to
 * be sent as the next transport message, whole, and this must be the last frame of its batch.
 */
export function writeFramedHead(w: ByteWriter, f: Frame): void {
  const at = w.pos;
  w.u32(0);
  writeFrameHead(w, f, f.flags | BODY_NEXT);
  w.setU32(at, w.pos - at - 4);
}

function writeFrameHead(w: ByteWriter, f: Frame, flags = f.flags): void {
  w.u8(f.kind);
  w.u8(flags);
  // The kinds on the hot path are written field by field (same order as `schemas`); the rest
  // go through the schema table.
  switch (f.kind) {
    case Kind.Pub:
      w.str(f.topic);
      w.str(f.from);
      break;
    case Kind.Msg:
      w.varuint(f.ref);
      w.str(f.to);
      w.str(f.from);
      w.str(f.origin);
      w.varuint(f.seq);
      w.varuint(f.base);
      w.varuint(f.sentAt);
      break;
    case Kind.Req:
      w.str(f.to);
      w.str(f.from);
      w.varuint(f.id);
      w.varuint(f.timeout);
      break;
    case Kind.Rep:
      w.str(f.to);
      w.str(f.from);
      w.varuint(f.id);
      w.str(f.code);
      w.str(f.message);
      break;
    case Kind.Ack:
      w.str(f.to);
      w.str(f.from);
      w.str(f.dest);
      w.str(f.origin);
      w.varuint(f.seq);
      w.u8(f.status);
      break;
    case Kind.Bcast:
      w.varuint(f.ref);
      w.str(f.to);
      w.str(f.from);
      break;
    default:
      writeFields(w, f);
  }
}

function writeFields(w: ByteWriter, f: Frame): void {
  const schema: Schema = schemas[f.kind];
  const values = f as unknown as Record<string, string | number>;
  for (const [name, type] of schema.fields) {
    const v = values[name];
    if (type === 'str') w.str(v as string);
    else if (type === 'uint') w.varuint(v as number);
    else w.u8(v as number);
  }
}

/** Field labels (`Msg.to`) per kind, built once: error messages name the field that broke. */
const labels = new Map<number, string[]>(
  Object.entries(schemas).map(([k, sc]: [string, Schema]) => [Number(k), sc.fields.map(([f]) => `${kindName(Number(k))}.${f}`)]),
);

/**
 * Decodes one frame occupying `buf[start, end)`. The body is a view into `buf` (no copy).
 * Throws ProtocolError naming the broken rule.
 */
export function decodeFrame(buf: Uint8Array, start: number, end: number): Frame {
  if (end - start < 2) throw new ProtocolError('frame shorter than 2 bytes');
  const kind = buf[start]!;
  const flags = buf[start + 1]!;
  const schema: Schema | undefined = (schemas as Record<number, Schema>)[kind];
  if (schema === undefined) throw new ProtocolError(`unknown frame kind 0x${kind.toString(16)}`);
  if ((flags & ~0x07) !== 0) throw new ProtocolError(`reserved flag bits set (0x${flags.toString(16)})`);
  const r = new ByteReader(buf, start + 2, end);
  let out: Frame;
  // Hot kinds build their object in one literal (one hidden class per kind); fields are read in
  // the order of `schemas`.
  switch (kind) {
    case Kind.Pub:
      out = { kind, flags, topic: r.str('Pub.topic'), from: r.str('Pub.from'), body: EMPTY };
      break;
    case Kind.Msg:
      out = {
        kind, flags, ref: r.varuint('Msg.ref'), to: r.str('Msg.to'), from: r.str('Msg.from'), origin: r.str('Msg.origin'),
        seq: r.varuint('Msg.seq'), base: r.varuint('Msg.base'), sentAt: r.varuint('Msg.sentAt'), body: EMPTY,
      };
      break;
    case Kind.Req:
      out = { kind, flags, to: r.str('Req.to'), from: r.str('Req.from'), id: r.varuint('Req.id'), timeout: r.varuint('Req.timeout'), body: EMPTY };
      break;
    case Kind.Rep:
      out = {
        kind, flags, to: r.str('Rep.to'), from: r.str('Rep.from'), id: r.varuint('Rep.id'), code: r.str('Rep.code'),
        message: r.str('Rep.message'), body: EMPTY,
      };
      break;
    case Kind.Ack:
      out = {
        kind, flags, to: r.str('Ack.to'), from: r.str('Ack.from'), dest: r.str('Ack.dest'), origin: r.str('Ack.origin'),
        seq: r.varuint('Ack.seq'), status: r.u8('Ack.status'), body: EMPTY,
      };
      break;
    case Kind.Bcast:
      out = { kind, flags, ref: r.varuint('Bcast.ref'), to: r.str('Bcast.to'), from: r.str('Bcast.from'), body: EMPTY };
      break;
    default: {
      const o: Record<string, unknown> = { kind, flags };
      const names = labels.get(kind)!;
      schema.fields.forEach(([field, type], i) => {
        const label = names[i]!;
        // Kinds off the hot path (HELLO, WELCOME, SUB, JOIN…) carry the strings a connection
        // keeps: decode them flat.
        o[field] = type === 'str' ? r.str(label, true) : type === 'uint' ? r.varuint(label) : r.u8(label);
      });
      o['body'] = EMPTY;
      out = o as Frame;
    }
  }
  if (flags & BODY_NEXT) {
    // The body comes as the next message; the Connection joins them.
    if (!schema.body) throw new ProtocolError(`${kindName(kind)} frame carries a body`);
    if ((flags & 0x03) === BodyCodec.None) throw new ProtocolError(`${kindName(kind)} body without a codec`);
    if (r.pos < end) throw new ProtocolError(`${kindName(kind)} frame has BODY_NEXT and body bytes`);
  } else if (r.pos < end) {
    if (!schema.body) throw new ProtocolError(`${kindName(kind)} frame carries a body`);
    if ((flags & 0x03) === BodyCodec.None) throw new ProtocolError(`${kindName(kind)} body without a codec`);
    out.body = buf.subarray(r.pos, end);
  }
  return out;
}

/** Encodes a single frame as a complete one-frame batch (used for fan-out and tests). */
export function encodeFrame(f: Frame): Uint8Array {
  const w = new ByteWriter(64 + f.body.length);
  writeFramed(w, f);
  return w.take();
}

/** Appends `[u32 length][frame]` to `w`: the unit of a batch. */
export function writeFramed(w: ByteWriter, f: Frame): void {
  const at = w.pos;
  w.u32(0);
  writeFrame(w, f);
  w.setU32(at, w.pos - at - 4);
}

/** Encodes frames into one batch (one transport message). */
export function encodeBatch(frames: readonly Frame[]): Uint8Array {
  const w = new ByteWriter();
  for (const f of frames) writeFramed(w, f);
  return w.take();
}

/**
 * Decodes a batch, calling `onFrame` for each frame in order. Throws ProtocolError on the first
 * malformed frame (earlier frames of the batch have already been delivered: they were valid).
 * `maxFrame` bounds each frame's length; exceeding it is a ProtocolError with `limit` set.
 */
export function decodeBatch<C = undefined>(
  data: Uint8Array,
  maxFrame: number,
  onFrame: (this: C, f: Frame, size: number) => void,
  context?: C,
): void {
  if (data.length === 0) throw new ProtocolError('empty message');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  while (pos < data.length) {
    if (data.length - pos < 4) throw new ProtocolError('truncated frame length');
    const len = view.getUint32(pos, true);
    pos += 4;
    if (len > maxFrame) throw new FrameTooLargeError(len, maxFrame);
    if (len > data.length - pos) throw new ProtocolError(`frame length ${len} exceeds message`);
    onFrame.call(context as C, decodeFrame(data, pos, pos + len), len + 4);
    pos += len;
  }
}

/** A frame longer than the allowed maximum; the connection is closed with LIMIT. */
export class FrameTooLargeError extends ProtocolError {
  override name = 'FrameTooLargeError';
  constructor(
    readonly size: number,
    readonly max: number,
  ) {
    super(`frame of ${size} bytes exceeds the ${max}-byte limit`);
  }
}
