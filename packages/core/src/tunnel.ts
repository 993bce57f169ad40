/**
 * Tunnels: ordered, reliable, flow-controlled streams between two peers, opened by protocol
 * name. Each direction has a credit window: the reader grants the writer room as its queue
 * drains, so a slow reader bounds memory on the writer, the relay and the reader to one window.
 * Writes larger than a chunk are split; in `messages` mode the reader reassembles each message.
 */
import { decodeBody, encodeBody } from './codec/body.js';
import { BodyCodec, Kind, type FrameOf } from './codec/frames.js';
import { ClosedError, errorFromWire, LimitError, ProtocolError, RemoteError, WireCode } from './errors.js';

export type TunnelState = 'opening' | 'open' | 'closed';

/** What a tunnel's readable yields and its writable takes. */
export type TunnelMode = 'bytes' | 'messages';

export interface TunnelOptions {
  /** `bytes`: Uint8Array chunks (a byte stream). `messages`: any value, one per write. @default 'bytes' */
  mode?: TunnelMode;
  /**
   * Bytes this end lets the other send ahead of its reader, at first. @default 262144
   */
  window?: number;
  /**
   * Largest window this end grows to while its reader keeps up and the writer keeps running out
   * of credit; the bound on what a tunnel buffers. Defaults to `window` when `window` is given
   * (a fixed window), else 4194304.
   */
  maxWindow?: number;
  /** Largest data frame; bigger writes are split. @default 65536 */
  chunkSize?: number;
  /** Largest message in `messages` mode (reassembled in memory). @default 16777216 */
  maxMessageBytes?: number;
}

export interface TunnelOpenOptions extends TunnelOptions {
  /** Ms to wait for the other side to accept. @default 10000 */
  timeout?: number;
  signal?: AbortSignal;
}

export const DEFAULT_TUNNEL_WINDOW = 256 * 1024;
export const DEFAULT_TUNNEL_MAX_WINDOW = 4 * 1024 * 1024;

/** TDATA `eom` bits. */
const EOM = 0x01;
/** The writer has no credit left after this chunk: it may be held back by the window. */
const EXHAUSTED = 0x02;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;

/** How a tunnel reaches the wire; supplied by the Peer. */
export interface TunnelWire {
  /** Writes a tunnel frame; false if the link is down. */
  send(kind: 'data' | 'credit' | 'end' | 'close', fields: { eom?: number; bytes?: number; code?: string; message?: string }, body?: Uint8Array, flags?: number): boolean;
  codec: BodyCodec;
  /** Largest data payload the link carries in one frame (the frame limit less header room). */
  maxChunk: number;
  /**
   * Whether the link's transport is over its high-water mark: the writer then waits for
   * `onDrain`, so that a tunnel never queues more than that ahead of other traffic.
   */
  congested(): boolean;
  /** Called once when the tunnel is finished, to forget it. */
  done(): void;
}

/** What `Tunnel.inspect()` returns. */
export interface TunnelSnapshot {
  protocol: string;
  remote: string;
  mode: TunnelMode;
  state: TunnelState;
  bytesIn: number;
  bytesOut: number;
  /** The window this end grants now. */
  window: number;
  maxWindow: number;
  /** Bytes this end may still send. */
  credit: number;
  /** Bytes received and not yet read. */
  queuedBytes: number;
  localEnded: boolean;
  remoteEnded: boolean;
}

interface Queued {
  value: unknown;
  size: number;
}

export class Tunnel<T = Uint8Array> {
  readonly protocol: string;
  /** The other end's name (or id). */
  readonly remote: string;
  readonly readable: ReadableStream<T>;
  readonly writable: WritableStream<T>;
  readonly mode: TunnelMode;

  #state: TunnelState = 'opening';
  #bytesIn = 0;
  #bytesOut = 0;
  readonly #wire: TunnelWire;
  /** The window this end grants now: it grows, up to #maxWindow, while it holds the flow back. */
  #window: number;
  readonly #maxWindow: number;
  readonly #chunk: number;
  readonly #maxMessage: number;
  /** Bytes we may still send (granted by the other side). */
  #credit = 0;
  /** The writer, waiting for credit or for the link to drain: woken by either, and by an error. */
  #writerWaiters: (() => void)[] = [];
  /** Bytes we granted the other side that have not arrived yet. */
  #outstanding = 0;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #pullWaiter: (() => void) | undefined;
  /** Parts of a `messages`-mode message being reassembled. */
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #remoteEnded = false;
  #localEnded = false;
  #error: Error | undefined;
  #rc!: ReadableStreamDefaultController<T>;
  #wc!: WritableStreamDefaultController;

  /** @internal Made by the Peer. */
  constructor(protocol: string, remote: string, wire: TunnelWire, options: TunnelOptions = {}) {
    this.protocol = protocol;
    this.remote = remote;
    this.#wire = wire;
    this.mode = options.mode ?? 'bytes';
    this.#window = options.window ?? DEFAULT_TUNNEL_WINDOW;
    this.#maxWindow = options.maxWindow ?? (options.window === undefined ? DEFAULT_TUNNEL_MAX_WINDOW : this.#window);
    this.#chunk = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.#maxMessage = options.maxMessageBytes ?? 16 * 1024 * 1024;
    if (!(this.#window >= 1024) || !(this.#chunk >= 1) || this.#chunk > 1024 * 1024) {
      throw new RangeError('tunnel window must be at least 1024 bytes and chunkSize between 1 byte and 1 MiB');
    }
    if (!(this.#maxWindow >= this.#window)) throw new RangeError('tunnel maxWindow must be at least window');
    // The frame limit must never bite: a chunk always fits in one frame with its header.
    this.#chunk = Math.max(1, Math.min(this.#chunk, wire.maxChunk));
    // What we grant at open (sent in TOPEN or TACCEPT).
    this.#outstanding = this.#window;
    // highWaterMark 0: we keep the queue ourselves, so we know exactly what is unread.
    this.readable = new ReadableStream<T>(
      {
        start: (c) => {
          this.#rc = c;
        },
        pull: () => this.#pull(),
        cancel: (reason) => this.abort(reason ?? 'reader cancelled'),
      },
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<T>({
      start: (c) => {
        this.#wc = c;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#end(),
      abort: (reason) => this.abort(reason ?? 'writer aborted'),
    });
  }

  get state(): TunnelState {
    return this.#state;
  }

  /** Payload bytes received and sent. */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** The window this end grants now (sent at open, then grown up to `maxWindow`). */
  get window(): number {
    return this.#window;
  }

  /** A plain snapshot for diagnostics: state, bytes each way, credit and the unread queue. */
  inspect(): TunnelSnapshot {
    return {
      protocol: this.protocol,
      remote: this.remote,
      mode: this.mode,
      state: this.#state,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      window: this.#window,
      maxWindow: this.#maxWindow,
      credit: this.#credit,
      queuedBytes: this.#queuedBytes,
      localEnded: this.#localEnded,
      remoteEnded: this.#remoteEnded,
    };
  }

  /**
   * Closes gracefully: finishes this side's writing (the other side reads to the end), stops
   * reading, and tells the other side, whose pending writes fail with CLOSED.
   */
  async close(reason = ''): Promise<void> {
    if (this.#state === 'closed') return;
    if (!this.#localEnded) {
      this.#localEnded = true;
      this.#wire.send('end', {});
    }
    this.#wire.send('close', { code: WireCode.NORMAL, message: reason });
    this.#finish(new ClosedError(`tunnel closed${reason ? `: ${reason}` : ''}`), true);
  }

  /** Ends the tunnel at once. The other side's streams fail with REMOTE (`ABORTED`) and the reason. */
  abort(reason?: unknown): void {
    if (this.#state === 'closed') return;
    const message = reason instanceof Error ? reason.message : String(reason ?? 'aborted');
    this.#wire.send('close', { code: WireCode.ABORTED, message });
    this.#finish(reason instanceof Error ? reason : new ClosedError(`tunnel aborted: ${message}`), false);
  }

  // ---- driven by the Peer ------------------------------------------------------------------

  /** @internal The other side accepted and granted `window` bytes. */
  opened(window: number): void {
    if (this.#state !== 'opening') return;
    this.#state = 'open';
    this.#addCredit(window);
  }

  /** @internal */
  onData(f: FrameOf<typeof Kind.TData>): void {
    if (this.#state === 'closed') return;
    const size = f.body.length;
    this.#outstanding -= size;
    if (this.#outstanding < 0 || this.#remoteEnded) {
      return this.#protocolViolation(this.#remoteEnded ? 'data after end of stream' : 'data beyond the granted window');
    }
    this.#bytesIn += size;
    // The writer ran out of credit while this reader has (almost) nothing unread: the window,
    // not the reader, holds the flow back. Grow it (as QUIC and yamux receivers do); the next
    // grant includes the difference.
    if (f.eom & EXHAUSTED && this.#window < this.#maxWindow && this.#queuedBytes + size <= this.#chunk) {
      this.#window = Math.min(this.#maxWindow, this.#window * 2);
    }
    // The body is a view into a message this end owns. A large chunk is most of its message and
    // is kept as it is; a small one is copied, so it does not pin the rest of its batch.
    const body = size * 2 >= f.body.buffer.byteLength ? f.body : f.body.slice();
    if (this.mode === 'bytes') {
      if (size > 0) this.#push(body, size);
    } else {
      this.#partBytes += size;
      if (this.#partBytes > this.#maxMessage) {
        this.#protocolViolation(`message larger than ${this.#maxMessage} bytes`);
        return;
      }
      this.#parts.push(body);
      // A message larger than the window could never complete if its parts held the window:
      // they are bounded by maxMessageBytes instead, and only whole messages count as queued.
      if (!(f.eom & EOM)) this.#grant();
      else {
        const whole = concat(this.#parts, this.#partBytes);
        const bytes = this.#partBytes;
        this.#parts = [];
        this.#partBytes = 0;
        let value: unknown;
        try {
          value = decodeBody(whole, f.flags);
        } catch (err) {
          return this.#protocolViolation((err as ProtocolError).reason ?? 'undecodable message');
        }
        this.#push(value, bytes);
      }
    }
  }

  /** @internal The link's transport drained. */
  onDrain(): void {
    this.#wakeWriter();
  }

  /** @internal */
  onCredit(bytes: number): void {
    this.#addCredit(bytes);
  }

  /** @internal The other side will send no more. */
  onEnd(): void {
    this.#remoteEnded = true;
    this.#wakeReader();
    this.#maybeDone();
  }

  /** @internal The other side closed or aborted, or the relay reports it gone. */
  onClose(code: string, message: string): void {
    if (this.#state === 'closed') return;
    if (code === WireCode.NORMAL) {
      // Graceful: what has arrived is still readable; writing is over.
      this.#remoteEnded = true;
      this.#finish(new ClosedError(`tunnel closed by ${this.remote}${message ? `: ${message}` : ''}`), true);
      return;
    }
    const err = code === WireCode.ABORTED ? new RemoteError(WireCode.ABORTED, message || 'aborted by the other side') : errorFromWire(code, message);
    this.#finish(err, false);
  }

  /** @internal The link dropped, or the peer closed. */
  fail(err: Error): void {
    this.#finish(err, false);
  }

  // ---- internals -----------------------------------------------------------------------------

  async #write(chunk: T): Promise<void> {
    if (this.#error) throw this.#error;
    let bytes: Uint8Array;
    let flags: number;
    if (this.mode === 'bytes') {
      if (!(chunk instanceof Uint8Array)) throw new TypeError('a bytes-mode tunnel writes Uint8Array chunks');
      bytes = chunk;
      flags = BodyCodec.Raw;
      if (bytes.length === 0) return;
    } else {
      ({ bytes, codec: flags } = encodeBody(chunk, this.#wire.codec));
      if (bytes.length > this.#maxMessage) throw new LimitError(`message of ${bytes.length} bytes exceeds ${this.#maxMessage}`);
    }
    let off = 0;
    do {
      // Sends what the credit allows (at most a chunk): waiting for a whole chunk's credit
      // would never end when the other side's window is smaller than a chunk. Credit bounds
      // what waits at the reader; the link's high-water mark bounds what waits in the socket
      // ahead of other traffic (a window may be megabytes). An empty message needs no credit.
      while (!this.#error && ((off < bytes.length && this.#credit <= 0) || this.#wire.congested())) {
        await new Promise<void>((resolve) => this.#writerWaiters.push(resolve));
      }
      if (this.#error) throw this.#error;
      const n = Math.min(this.#chunk, bytes.length - off, this.#credit);
      // Bytes mode keeps no message boundaries: every chunk is marked as complete.
      const last = this.mode === 'bytes' || off + n >= bytes.length;
      this.#credit -= n;
      const eom = (last ? EOM : 0) | (this.#credit === 0 ? EXHAUSTED : 0);
      if (!this.#wire.send('data', { eom }, bytes.subarray(off, off + n), flags)) {
        throw this.#error ?? new ClosedError('link is down');
      }
      this.#bytesOut += n;
      off += n;
    } while (off < bytes.length);
  }

  #addCredit(n: number): void {
    this.#credit += n;
    this.#wakeWriter();
  }

  #wakeWriter(): void {
    for (const w of this.#writerWaiters.splice(0)) w();
  }

  #end(): void {
    if (this.#error) throw this.#error;
    if (this.#localEnded) return;
    this.#localEnded = true;
    this.#wire.send('end', {});
    this.#maybeDone();
  }

  #push(value: unknown, size: number): void {
    this.#queue.push({ value, size });
    this.#queuedBytes += size;
    this.#wakeReader();
  }

  #pull(): Promise<void> | void {
    const item = this.#queue.shift();
    if (item) {
      this.#queuedBytes -= item.size;
      this.#rc.enqueue(item.value as T);
      this.#grant();
      return;
    }
    if (this.#remoteEnded || this.#state === 'closed') {
      if (this.#error && !this.#graceful) this.#rc.error(this.#error);
      else this.#rc.close();
      this.#maybeDone();
      return;
    }
    return new Promise<void>((resolve) => {
      this.#pullWaiter = () => {
        this.#pullWaiter = undefined;
        resolve(this.#pull() as undefined);
      };
    });
  }

  #wakeReader(): void {
    this.#pullWaiter?.();
  }

  /** Tells the other side how much more it may send, once enough room has opened. */
  #grant(): void {
    if (this.#state === 'closed' || this.#remoteEnded) return;
    const room = this.#window - this.#queuedBytes - this.#outstanding;
    // A quarter of the window at a time: each grant is a message through the relay.
    if (room >= this.#window / 4) {
      this.#outstanding += room;
      this.#wire.send('credit', { bytes: room });
    }
  }

  #protocolViolation(reason: string): void {
    this.#wire.send('close', { code: 'PROTOCOL', message: reason });
    this.#finish(new ProtocolError(`tunnel: ${reason}`), false);
  }

  #graceful = false;

  /** Both directions are done: nothing more to send or read. */
  #maybeDone(): void {
    if (this.#state !== 'closed' && this.#localEnded && this.#remoteEnded && this.#queue.length === 0) {
      this.#state = 'closed';
      this.#graceful = true;
      this.#wire.done();
    }
  }

  #finish(err: Error, graceful: boolean): void {
    if (this.#state === 'closed' && this.#error) return;
    this.#state = 'closed';
    this.#error = err;
    this.#graceful = graceful;
    this.#wakeWriter();
    // The writable fails: no more writes. The readable: on a graceful close, what arrived can
    // still be read to its end; otherwise it fails at once.
    try {
      this.#wc.error(err);
    } catch {
      /* already closed */
    }
    if (!graceful) {
      this.#queue.length = 0;
      this.#queuedBytes = 0;
      try {
        this.#rc.error(err);
      } catch {
        /* already closed */
      }
    } else this.#remoteEnded = true;
    this.#wakeReader();
    this.#wire.done();
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

