/**
 * A Connection puts frames on a Transport: frames written in the same tick are batched into one
 * transport message (flushed at the end of the tick, or as soon as the batch passes
 * `flushBytes`), and each incoming message is decoded into frames in order.
 */
import { ByteWriter } from './codec/bytes.js';
import { BODY_NEXT, decodeBatch, FrameTooLargeError, writeFramed, writeFramedHead, type Frame } from './codec/frames.js';
import { ProtocolError } from './errors.js';
import type { CloseInfo, Transport, TransportHandlers } from './transport/transport.js';
import { CloseCode } from './transport/transport.js';

export interface ConnectionOptions {
  /** Largest frame accepted from the other end. @default 1048576 */
  maxFrameBytes?: number;
  /** A batch is flushed once it holds this many bytes, without waiting for the tick to end. @default 65536 */
  flushBytes?: number;
  /** Per-kind frame and byte counters (indexed by kind byte), shared by a Router's connections. */
  counters?: FrameCounters;
}

/** Frame and byte counts indexed by frame kind (each a Float64Array of 256). */
export interface FrameCounters {
  framesIn: Float64Array;
  bytesIn: Float64Array;
  framesOut: Float64Array;
  bytesOut: Float64Array;
}

/**
 * What a Connection reports. Each call also passes the connection, so one handlers object can
 * serve many connections (the Router's does; it finds its state through `connection.owner`).
 */
export interface ConnectionHandlers<O = unknown> {
  frame(f: Frame, connection: Connection<O>): void;
  /** A message broke the protocol. The connection is not closed by itself: the owner decides. */
  protocolError(err: ProtocolError, connection: Connection<O>): void;
  drain(connection: Connection<O>): void;
  close(info: CloseInfo, connection: Connection<O>): void;
}

export const DEFAULT_MAX_FRAME = 1024 * 1024;

/** Frames with a body this large or larger are sent as their own message, not batched. */
export const LARGE_BODY = 16 * 1024;

/** Batch writers not in use, shared by every Connection of the process (at most 64 kept). */
const pool: ByteWriter[] = [];
function takeWriter(): ByteWriter {
  return pool.pop() ?? new ByteWriter(4096);
}
function giveWriter(w: ByteWriter): void {
  // A writer grown by one huge batch is not kept: the pool's memory stays bounded.
  if (pool.length < 64 && w.buf.length <= 256 * 1024) pool.push(w);
}

export class Connection<O = unknown> {
  readonly transport: Transport;
  readonly maxFrameBytes: number;
  readonly #flushBytes: number;
  // The batch being written this tick. Writers come from a shared pool and go back at each
  // flush, so an idle connection (the relay holds thousands) holds no buffer at all.
  #w: ByteWriter | undefined;
  #scheduled = false;
  #closed = false;
  #congested = false;
  /** A frame that arrived with BODY_NEXT, waiting for its body (the next message). */
  #head: Frame | undefined;
  #headSize = 0;
  readonly #counters: FrameCounters | undefined;
  // This connection's own frame and byte counts (with `counters` only): for the devtools.
  #framesIn = 0;
  #bytesIn = 0;
  #framesOut = 0;
  #bytesOut = 0;
  readonly #handlers: ConnectionHandlers<O>;
  /** Whatever the creator attached (the Router's per-connection state). */
  readonly owner: O;

  // No closures per connection: the transport calls this object's methods, and decodeBatch
  // calls `deliver` with this as its context. A relay holds thousands of connections.
  constructor(transport: Transport, handlers: ConnectionHandlers<O>, options: ConnectionOptions = {}, owner?: O) {
    this.transport = transport;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME;
    this.#flushBytes = options.flushBytes ?? 64 * 1024;
    this.#counters = options.counters;
    this.#handlers = handlers;
    this.owner = owner as O;
    transport.listen(new TransportSink(this));
  }

  /** Frames and bytes (with their length prefixes) this connection received and queued, when it counts (`counters`). */
  get stats(): { framesIn: number; bytesIn: number; framesOut: number; bytesOut: number } {
    return { framesIn: this.#framesIn, bytesIn: this.#bytesIn, framesOut: this.#framesOut, bytesOut: this.#bytesOut };
  }

  /** @internal Transport callback: one message, a batch of frames (or the body of the last). */
  received(data: Uint8Array): void {
    if (this.#closed) return;
    try {
      const head = this.#head;
      if (head === undefined) decodeBatch(data, this.maxFrameBytes, deliver, this);
      else {
        this.#head = undefined;
        this.#deliverBody(head, data);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      if (!this.#closed) this.#handlers.protocolError(err, this);
    }
  }

  /** @internal decodeBatch callback. */
  deliverFrame(f: Frame, size: number): void {
    // The owner may close the connection while handling a frame (a protocol breach): the rest
    // of that message is not delivered.
    if (this.#closed) return;
    if (this.#head !== undefined) {
      this.#head = undefined;
      throw new ProtocolError('a frame follows one whose body is the next message');
    }
    if (f.flags & BODY_NEXT) {
      f.flags &= ~BODY_NEXT;
      this.#head = f;
      this.#headSize = size;
      return;
    }
    this.#dispatch(f, size);
  }

  #deliverBody(f: Frame, body: Uint8Array): void {
    const size = this.#headSize + body.length;
    if (size - 4 > this.maxFrameBytes) throw new FrameTooLargeError(size - 4, this.maxFrameBytes);
    if (body.length === 0) throw new ProtocolError('empty message');
    f.body = body;
    this.#dispatch(f, size);
  }

  /** Counts a whole incoming frame (`size` bytes with its length prefix) and hands it on. */
  #dispatch(f: Frame, size: number): void {
    const counters = this.#counters;
    if (counters) {
      counters.framesIn[f.kind]!++;
      counters.bytesIn[f.kind]! += size;
      this.#framesIn++;
      this.#bytesIn += size;
    }
    this.#handlers.frame(f, this);
  }

  /** @internal Transport callback. */
  drained(): void {
    this.#congested = false;
    this.#handlers.drain(this);
  }

  /** The transport's last `send` returned false (over its high-water mark) and it has not drained yet. */
  get congested(): boolean {
    return this.#congested;
  }

  /** @internal Transport callback: the transport closed, from either end. */
  transportClosed(info: CloseInfo): void {
    this.#closed = true;
    this.#handlers.close(info, this);
  }

  /** Flushes, then closes the transport. */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.transport.close({ code, reason });
  }

  get open(): boolean {
    return !this.#closed && this.transport.status === 'open';
  }

  /** Bytes queued in this connection's batch plus the transport's buffer. */
  get bufferedAmount(): number {
    return (this.#w?.pos ?? 0) + this.transport.bufferedAmount;
  }

  /**
   * Queues a frame for the current batch. Returns false if the connection is closed.
   * A frame whose body is `LARGE_BODY` bytes or more goes out at once, its body as a message of
   * its own. `stableBody` says the body will never change (it came from a received message): it
   * is then handed to the transport without a copy.
   */
  write(f: Frame, stableBody = false): boolean {
    if (!this.open) return false;
    if (f.body.length >= LARGE_BODY) {
      this.#writeAlone(f, stableBody);
      return true;
    }
    const w = (this.#w ??= takeWriter());
    const at = w.pos;
    writeFramed(w, f);
    this.#countOut(f.kind, w.pos - at);
    this.#afterWrite();
    return true;
  }

  /** Queues an already encoded `[u32 length][frame]` unit (a fan-out frame encoded once). */
  writeEncoded(unit: Uint8Array): boolean {
    if (!this.open) return false;
    (this.#w ??= takeWriter()).bytes(unit);
    this.#countOut(unit[4]!, unit.length);
    this.#afterWrite();
    return true;
  }

  /**
   * A large body is not copied into the batch: the frame's head ends the batch (flag BODY_NEXT),
   * which is sent now, and the body follows as the next message as it is. A body that may still
   * change is copied once, unless the transport copies what it is given anyway.
   */
  #writeAlone(f: Frame, stableBody: boolean): void {
    const w = (this.#w ??= takeWriter());
    const at = w.pos;
    writeFramedHead(w, f);
    this.#countOut(f.kind, w.pos - at + f.body.length);
    const t = this.transport;
    t.cork?.();
    try {
      this.flush();
      // The batch's send may have closed the transport (an error): the body then stays here.
      if (t.status === 'open') this.#send(stableBody || t.copiesOnSend === true ? f.body : f.body.slice());
    } finally {
      t.uncork?.();
    }
  }

  #countOut(kind: number, bytes: number): void {
    const counters = this.#counters;
    if (counters) {
      counters.framesOut[kind]!++;
      counters.bytesOut[kind]! += bytes;
      this.#framesOut++;
      this.#bytesOut += bytes;
    }
  }

  #send(data: Uint8Array): void {
    if (!this.transport.send(data)) this.#congested = true;
  }

  #afterWrite(): void {
    if (this.#w!.pos >= this.#flushBytes) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  /** Sends the pending batch now. */
  flush(): void {
    const w = this.#w;
    if (w === undefined || w.pos === 0 || !this.open) return;
    this.#w = undefined;
    // A transport that copies before `send` returns gets the batch buffer itself; others get a
    // copy of their own, and the buffer goes back to the pool either way.
    this.#send(this.transport.copiesOnSend === true ? w.buf.subarray(0, w.pos) : w.take());
    w.pos = 0;
    giveWriter(w);
  }

}

function deliver(this: Connection<unknown>, f: Frame, size: number): void {
  this.deliverFrame(f, size);
}

/** Forwards transport callbacks to a Connection (an object, not closures, per connection). */
class TransportSink implements TransportHandlers {
  constructor(readonly c: Connection<unknown>) {}
  message(data: Uint8Array): void {
    this.c.received(data);
  }
  drain(): void {
    this.c.drained();
  }
  close(info: CloseInfo): void {
    this.c.transportClosed(info);
  }
}

