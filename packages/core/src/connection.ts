/**
 * A Connection puts frames on a Transport: frames written in the same tick are batched into one
 * transport message (flushed at the end of the tick, or as soon as the batch passes
 * `flushBytes`), and each incoming message is decoded into frames in order.
 */
import { ByteWriter } from './codec/bytes.js';
import { decodeBatch, FrameTooLargeError, writeFramed, type Frame } from './codec/frames.js';
import { ProtocolError } from './errors.js';
import type { CloseInfo, Transport } from './transport/transport.js';
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

export interface ConnectionHandlers {
  frame(f: Frame): void;
  /** A message broke the protocol. The connection is not closed by itself: the owner decides. */
  protocolError(err: ProtocolError): void;
  drain(): void;
  close(info: CloseInfo): void;
}

export const DEFAULT_MAX_FRAME = 1024 * 1024;

export class Connection {
  readonly transport: Transport;
  readonly maxFrameBytes: number;
  readonly #flushBytes: number;
  // Starts small: an idle connection should cost little (the relay holds thousands). It grows
  // with a burst and is given back after a flush once it is large (see `flush`).
  #w = new ByteWriter(256);
  #scheduled = false;
  #closed = false;
  readonly #counters: FrameCounters | undefined;
  /** Frames and bytes written, for stats. */
  framesOut = 0;
  bytesOut = 0;
  framesIn = 0;
  bytesIn = 0;

  constructor(transport: Transport, handlers: ConnectionHandlers, options: ConnectionOptions = {}) {
    this.transport = transport;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME;
    this.#flushBytes = options.flushBytes ?? 64 * 1024;
    const counters = (this.#counters = options.counters);
    const onFrame = (f: Frame, size: number): void => {
      // The owner may close the connection while handling a frame (a protocol breach): the
      // rest of that message is not delivered.
      if (this.#closed) return;
      this.framesIn++;
      if (counters) {
        counters.framesIn[f.kind]!++;
        counters.bytesIn[f.kind]! += size;
      }
      handlers.frame(f);
    };
    transport.listen({
      message: (data) => {
        if (this.#closed) return;
        this.bytesIn += data.length;
        try {
          decodeBatch(data, this.maxFrameBytes, onFrame);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          if (!this.#closed) handlers.protocolError(err);
        }
      },
      drain: () => handlers.drain(),
      close: (info) => {
        this.#closed = true;
        handlers.close(info);
      },
    });
  }

  get open(): boolean {
    return !this.#closed && this.transport.status === 'open';
  }

  /** Bytes queued in this connection's batch plus the transport's buffer. */
  get bufferedAmount(): number {
    return this.#w.pos + this.transport.bufferedAmount;
  }

  /** Queues a frame for the current batch. Returns false if the connection is closed. */
  write(f: Frame): boolean {
    if (!this.open) return false;
    const at = this.#w.pos;
    writeFramed(this.#w, f);
    this.framesOut++;
    if (this.#counters) {
      this.#counters.framesOut[f.kind]!++;
      this.#counters.bytesOut[f.kind]! += this.#w.pos - at;
    }
    this.#afterWrite();
    return true;
  }

  /** Queues an already encoded `[u32 length][frame]` unit (a fan-out frame encoded once). */
  writeEncoded(unit: Uint8Array): boolean {
    if (!this.open) return false;
    this.#w.bytes(unit);
    this.framesOut++;
    if (this.#counters) {
      this.#counters.framesOut[unit[4]!]!++;
      this.#counters.bytesOut[unit[4]!]! += unit.length;
    }
    this.#afterWrite();
    return true;
  }

  #afterWrite(): void {
    if (this.#w.pos >= this.#flushBytes) this.flush();
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
    if (this.#w.pos === 0 || !this.open) return;
    const data = this.#w.take();
    if (this.#w.buf.length > 256 * 1024) this.#w = new ByteWriter(256);
    this.bytesOut += data.length;
    this.transport.send(data);
  }

  /** Flushes, then closes the transport. */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.transport.close({ code, reason });
  }
}

export { FrameTooLargeError };
