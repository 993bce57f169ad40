/**
 * An in-memory transport pair: what one end sends, the other receives in a later macrotask, in
 * order, without copying. Honours pause/resume and reports backpressure like a socket would,
 * so Router and Peer behaviour tested over it holds over real sockets.
 */
import { ClosedError } from '../errors.js';
import { macrotask } from '../schedule.js';
import type { CloseInfo, Transport, TransportHandlers, TransportStatus } from './transport.js';
import { CloseCode } from './transport.js';

export interface MemoryTransportOptions {
  /**
   * Buffered bytes above which `send` returns false.
   * @default 1048576
   */
  highWaterMark?: number;
}

class MemoryEnd implements Transport {
  status: TransportStatus = 'open';
  other!: MemoryEnd;
  /** Messages sent to this end, not yet delivered to its handlers. */
  readonly inbox: Uint8Array[] = [];
  inboxBytes = 0;
  #handlers: TransportHandlers | undefined;
  #paused = false;
  #scheduled = false;
  #wantDrain = false;
  #closeInfo: CloseInfo | undefined;

  constructor(readonly highWaterMark: number) {}

  get bufferedAmount(): number {
    return this.other.inboxBytes;
  }

  send(data: Uint8Array): boolean {
    if (this.status !== 'open') throw new ClosedError('transport is closed');
    const o = this.other;
    o.inbox.push(data);
    o.inboxBytes += data.length;
    o.schedule();
    if (o.inboxBytes > this.highWaterMark) {
      this.#wantDrain = true;
      return false;
    }
    return true;
  }

  listen(handlers: TransportHandlers): void {
    if (this.#handlers) throw new Error('listen() called twice');
    this.#handlers = handlers;
    const pending = this.#pendingClose;
    if (pending) {
      this.#pendingClose = undefined;
      macrotask(() => handlers.close(pending));
    } else this.schedule();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.schedule();
  }

  close(info?: Partial<CloseInfo>): void {
    if (this.status !== 'open') return;
    const full: CloseInfo = { code: info?.code ?? CloseCode.NORMAL, reason: info?.reason ?? '' };
    if (info?.error) full.error = info.error;
    this.status = 'closing';
    this.other.status = 'closing';
    // Data already sent still reaches the other end (a graceful socket close), then both close.
    this.#closeInfo = full;
    this.other.#closeInfo = full;
    this.schedule();
    this.other.schedule();
  }

  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    macrotask(() => {
      this.#scheduled = false;
      this.pump();
    });
  }

  pump(): void {
    const h = this.#handlers;
    if (!h || this.status === 'closed') return;
    if (!this.#paused) {
      // Deliver what is queued now; messages sent during delivery wait for the next pump.
      let n = this.inbox.length;
      while (n-- > 0 && !this.#paused && this.#open()) {
        const data = this.inbox.shift()!;
        this.inboxBytes -= data.length;
        h.message(data);
      }
      this.other.maybeDrain();
    }
    if (this.#closeInfo && (this.inbox.length === 0 || this.#paused)) {
      // A paused reader never takes its queued data: a closing socket discards it likewise.
      // Each end finishes on its own once it has delivered its inbox: finishing the other end
      // here would discard what was sent to it before the close.
      this.finish();
    } else if (this.inbox.length > 0 && !this.#paused) {
      this.schedule();
    }
  }

  #open(): boolean {
    return this.status !== 'closed';
  }

  maybeDrain(): void {
    if (this.#wantDrain && this.other.inboxBytes <= this.highWaterMark && this.status === 'open') {
      this.#wantDrain = false;
      this.#handlers?.drain();
    }
  }

  finish(): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    this.inbox.length = 0;
    this.inboxBytes = 0;
    const info = this.#closeInfo ?? { code: CloseCode.ABNORMAL, reason: '' };
    if (this.#handlers) this.#handlers.close(info);
    else this.#pendingClose = info;
  }

  #pendingClose: CloseInfo | undefined;
}

/** Two connected in-memory transports. */
export function memoryTransportPair(options: MemoryTransportOptions = {}): [Transport, Transport] {
  const hwm = options.highWaterMark ?? 1024 * 1024;
  const a = new MemoryEnd(hwm);
  const b = new MemoryEnd(hwm);
  a.other = b;
  b.other = a;
  return [a, b];
}
