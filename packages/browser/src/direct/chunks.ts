/**
 * Splitting transport messages into data channel messages (OutQueue) and putting them back
 * together (Reassembler), over the channel messages of wire.ts. No I/O: the session hands
 * OutQueue's messages to the channel and the channel's messages to Reassembler.
 */
import { LimitError, ProtocolError } from '@missive/core';
import { encodeFirst, encodeMore, encodeWhole, FIRST_HEAD, MORE_HEAD, WHOLE_HEAD, type ChannelMessage } from './wire.js';

interface Item {
  /** A transport message to split, or a channel message ready to go (`control`). */
  data: Uint8Array;
  control: boolean;
}

/**
 * Outgoing transport messages and control messages, in order. `next(size)` gives the next channel
 * message of at most `size` bytes: a message that fits goes WHOLE, a longer one as FIRST and
 * MOREs, all of them before anything queued after it.
 */
export class OutQueue {
  #items: (Item | undefined)[] = [];
  #head = 0;
  /** Bytes of the head message already handed out. */
  #offset = 0;
  #bytes = 0;

  /** Payload bytes not yet handed out. */
  get bytes(): number {
    return this.#bytes;
  }

  get empty(): boolean {
    return this.#head === this.#items.length;
  }

  /** True while a long message is half handed out: nothing else may go between its parts. */
  get splitting(): boolean {
    return this.#offset > 0;
  }

  push(message: Uint8Array): void {
    this.#items.push({ data: message, control: false });
    this.#bytes += message.length;
  }

  /** Queues a ready channel message (CLOSE) after everything queued so far. */
  pushControl(message: Uint8Array): void {
    this.#items.push({ data: message, control: true });
    this.#bytes += message.length;
  }

  /** Drops everything not yet handed out (the link is ending). */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.#offset = 0;
    this.#bytes = 0;
  }

  /** The next channel message, at most `size` bytes (size > FIRST_HEAD); undefined when empty. */
  next(size: number): Uint8Array | undefined {
    const item = this.#items[this.#head];
    if (!item) return undefined;
    const { data } = item;
    if (item.control) {
      this.#shift(data.length);
      return data;
    }
    if (this.#offset === 0) {
      if (data.length + WHOLE_HEAD <= size) {
        this.#shift(data.length);
        return encodeWhole(data);
      }
      const n = size - FIRST_HEAD;
      this.#offset = n;
      this.#bytes -= n;
      return encodeFirst(data.length, data.subarray(0, n));
    }
    const n = Math.min(size - MORE_HEAD, data.length - this.#offset);
    const part = data.subarray(this.#offset, this.#offset + n);
    if (this.#offset + n === data.length) this.#shift(n);
    else {
      this.#offset += n;
      this.#bytes -= n;
    }
    return encodeMore(part);
  }

  #shift(n: number): void {
    this.#items[this.#head] = undefined; // let the bytes go
    this.#head++;
    this.#offset = 0;
    this.#bytes -= n;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * Rebuilds transport messages from WHOLE, FIRST and MORE. A message announced above `max` bytes
 * is refused at its FIRST (LimitError), before any memory is taken for it; parts out of place
 * (a MORE with no FIRST, a WHOLE or FIRST inside a message, parts past the announced length) are
 * a ProtocolError. After either, the reassembler is not used again: the session closes the link.
 */
export class Reassembler {
  readonly #max: number;
  #buf: Uint8Array | undefined;
  #filled = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Bytes held for a message not yet complete. */
  get pending(): number {
    return this.#filled;
  }

  /** The complete message `m` ends, or undefined while one is still being assembled. */
  take(m: Exclude<ChannelMessage, { type: 'close' } | { type: 'ping' }>): Uint8Array | undefined {
    switch (m.type) {
      case 'whole':
        if (this.#buf) throw new ProtocolError('WHOLE inside a chunked message');
        if (m.data.length > this.#max) throw this.#tooBig(m.data.length);
        // A plain view on bytes only this end holds: the receiver may keep it.
        return new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.length);
      case 'first':
        if (this.#buf) throw new ProtocolError('FIRST inside a chunked message');
        if (m.total > this.#max) throw this.#tooBig(m.total);
        if (m.part.length >= m.total) throw new ProtocolError(`FIRST holds ${m.part.length} of ${m.total} bytes: the message fits in a WHOLE`);
        this.#buf = new Uint8Array(m.total);
        this.#buf.set(m.part);
        this.#filled = m.part.length;
        return undefined;
      case 'more': {
        const buf = this.#buf;
        if (!buf) throw new ProtocolError('MORE without a FIRST');
        if (this.#filled + m.part.length > buf.length) throw new ProtocolError(`parts overrun the announced ${buf.length} bytes`);
        buf.set(m.part, this.#filled);
        this.#filled += m.part.length;
        if (this.#filled < buf.length) return undefined;
        this.#buf = undefined;
        this.#filled = 0;
        return buf;
      }
    }
  }

  #tooBig(n: number): LimitError {
    return new LimitError(`a message of ${n} bytes exceeds maxMessageBytes (${this.#max})`);
  }
}
