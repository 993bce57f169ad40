/**
 * What a browser transport owes its handlers, shared by the WebSocket transport and direct links:
 * messages in order, held before `listen` and while paused (a browser cannot stop reading a
 * socket or a data channel, so holding them is all a pause can do); a drain that came due before
 * `listen`; the close, once, after the messages received before it.
 */
import type { CloseInfo, TransportHandlers } from '@missive/core';

export class Deliveries {
  #handlers: TransportHandlers | undefined;
  /** Received messages not yet delivered: before `listen`, or while paused. */
  #queue: Uint8Array[] = [];
  #paused = false;
  #flushing = false;
  /** A drain came due before `listen`: delivered by `listen`. */
  #drainDue = false;
  #closeInfo: CloseInfo | undefined;

  /** The close reported (or due), once there is one. */
  get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo;
  }

  listen(handlers: TransportHandlers): void {
    if (this.#handlers) throw new Error('listen() called twice');
    this.#handlers = handlers;
    this.#flush();
    if (this.#drainDue && !this.#closeInfo) {
      this.#drainDue = false;
      handlers.drain();
    }
    if (this.#closeInfo) handlers.close(this.#closeInfo);
  }

  message(data: Uint8Array): void {
    if (this.#closeInfo) return;
    if (this.#handlers && !this.#paused && this.#queue.length === 0) this.#handlers.message(data);
    else this.#queue.push(data);
  }

  drain(): void {
    if (this.#closeInfo) return;
    if (this.#handlers) this.#handlers.drain();
    else this.#drainDue = true;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#flush();
  }

  /**
   * Reports the close (the first one only). What arrived before it is delivered first, unless the
   * reader is paused (a paused reader never takes its queued data, as in core's memory pair) or
   * `discard` is set.
   */
  close(info: CloseInfo, discard = false): void {
    if (this.#closeInfo) return;
    if (!this.#paused && !discard) this.#flush();
    this.#queue = [];
    this.#closeInfo = info;
    this.#handlers?.close(info);
  }

  /** Delivers queued messages while listening and not paused; a handler may pause meanwhile. */
  #flush(): void {
    const h = this.#handlers;
    if (!h || this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0 && !this.#paused) h.message(this.#queue.shift()!);
    } finally {
      this.#flushing = false;
    }
  }
}
