/**
 * One direct link's state and its Transport, over a data channel reached through a narrow port
 * (DataChannelPort) and fed the channel's events by the simple-peer adapter (open.ts). Knows
 * nothing of simple-peer, so it is tested with a fake channel and fake timers.
 *
 * - Sending: transport messages are queued (OutQueue) and handed to the channel in messages of
 *   at most `chunkSize` bytes, only while the channel buffers less than CHANNEL_HIGH; more go
 *   when it falls to its `bufferedAmountLowThreshold` (the `bufferedamountlow` event, or a poll
 *   where the implementation has no such event). `send` returns false above `highWaterMark`.
 * - Receiving: channel messages are reassembled (Reassembler, bounded by `maxMessageBytes`) and
 *   delivered in order; held while paused or before `listen`.
 * - Closing: `close()` queues a CLOSE (code and reason) after everything already sent; the other
 *   end reports it and destroys its connection, which is this end's signal that all arrived. A
 *   link that fails reports a close whose `kind` says why (see DirectCloseKind).
 */
import { ClosedError, CloseCode, LimitError, ProtocolError, TimeoutError, type CloseInfo, type Transport, type TransportHandlers, type TransportStatus } from '@missive/core';
import { OutQueue, Reassembler } from './chunks.js';
import { LinkHealth, type HealthOptions } from './health.js';
import { Deliveries } from '../deliveries.js';
import { truncateUtf8 } from '../utf8.js';
import { decodeChannelMessage, encodeClose, encodePing, MAX_REASON_BYTES } from './wire.js';

/** Where a link is: `connecting` until its data channel opens. */
export type DirectLinkState = 'connecting' | 'open' | 'closing' | 'closed';

/**
 * Why a link ended:
 * - `closed`: this end called `close()`;
 * - `remote-closed`: the other end closed it (its code and reason);
 * - `channel-closed`: the data channel or the peer connection closed without a close message
 *   (the other page went away, its connection was destroyed);
 * - `ice-failed`: ICE (or DTLS) failed: no candidate pair connects the two ends;
 * - `ice-disconnected`: ICE stayed `disconnected` longer than the grace period;
 * - `timeout`: the channel did not open within `timeoutMs`;
 * - `stalled`: queued bytes stopped leaving for `stallMs`;
 * - `idle`: nothing came from the other end for `idleTimeoutMs`;
 * - `too-big`: the other end announced a message above `maxMessageBytes`;
 * - `protocol`: malformed signalling or data channel bytes from the other end;
 * - `error`: anything else (WebRTC negotiation errors, the signal callback failed, simple-peer
 *   could not be loaded); `error.cause` holds the original.
 */
export type DirectCloseKind =
  | 'closed'
  | 'remote-closed'
  | 'channel-closed'
  | 'ice-failed'
  | 'ice-disconnected'
  | 'timeout'
  | 'stalled'
  | 'idle'
  | 'too-big'
  | 'protocol'
  | 'error';

/** A Transport CloseInfo with the reason a direct link ended. */
export interface DirectCloseInfo extends CloseInfo {
  kind: DirectCloseKind;
}

/** Counters of one link, for diagnostics and the Peer's link choice. */
export interface DirectLinkStats {
  state: DirectLinkState;
  /** The last ICE connection state seen (`new` before any). */
  iceState: string;
  /** Bytes waiting to leave: queued by the link plus buffered in the data channel. */
  bufferedAmount: number;
  /** Size of the data channel messages this end sends (0 before the channel opens). */
  chunkSize: number;
  /** Transport messages sent and received. */
  messagesOut: number;
  messagesIn: number;
  /** Data channel messages and their bytes (headers included), sent and received. */
  chunksOut: number;
  chunksIn: number;
  bytesOut: number;
  bytesIn: number;
}

/** The data channel, as the session uses it. */
export interface DataChannelPort {
  /** Hands one message to the channel; throws if the channel refuses it. */
  send(message: Uint8Array): void;
  /** The channel's `bufferedAmount`. */
  readonly bufferedAmount: number;
  /**
   * Sets the channel's `bufferedAmountLowThreshold` and calls `onLow` on each
   * `bufferedamountlow`; returns false if the channel has no such event (the session polls).
   */
  watchLow(threshold: number, onLow: () => void): boolean;
  /** Removes what `watchLow` added. */
  unwatch(): void;
}

export interface SessionOptions extends HealthOptions {
  highWaterMark: number;
  maxMessageBytes: number;
  timeoutMs: number;
  /** Called once when the link ends, before the close is reported: destroy the connection. */
  onEnd(info: DirectCloseInfo): void;
  onOpen(transport: Transport): void;
}

/** The channel is refilled from the queue up to this many buffered bytes... */
const CHANNEL_HIGH = 1024 * 1024;
/** ...when it has fallen to this many (or to `highWaterMark`, if lower). */
const CHANNEL_LOW = 256 * 1024;
/** After its CLOSE left, a closing end waits this long for the other end to hang up. */
export const CLOSE_LINGER_MS = 2000;
/** Without `bufferedamountlow`, the channel is polled from 1 ms, doubling to 16 ms. */
const POLL_MIN = 1;
const POLL_MAX = 16;

const codeOf: Record<Exclude<DirectCloseKind, 'closed' | 'remote-closed'>, number> = {
  'channel-closed': CloseCode.ABNORMAL,
  'ice-failed': CloseCode.ABNORMAL,
  'ice-disconnected': CloseCode.ABNORMAL,
  timeout: CloseCode.TIMEOUT,
  stalled: CloseCode.TIMEOUT,
  idle: CloseCode.TIMEOUT,
  'too-big': CloseCode.TOO_BIG,
  protocol: CloseCode.PROTOCOL,
  error: CloseCode.ABNORMAL,
};

export class DirectSession implements Transport {
  readonly #o: SessionOptions;
  readonly #health: LinkHealth;
  readonly #out = new OutQueue();
  readonly #reasm: Reassembler;
  #state: DirectLinkState = 'connecting';
  #iceState = 'new';
  #port: DataChannelPort | undefined;
  #chunkSize = 0;
  #lowEvents = false;
  #lowThreshold = 0;
  /** Bytes handed to the channel so far. */
  #handed = 0;
  readonly #deliveries = new Deliveries();
  #needDrain = false;
  /** What a closing link reports once it has closed. */
  #closing: DirectCloseInfo | undefined;
  #closeInfo: DirectCloseInfo | undefined;
  #openTimer: ReturnType<typeof setTimeout> | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #pollTimer: ReturnType<typeof setTimeout> | undefined;
  #pollDelay = POLL_MIN;
  #stats = { messagesOut: 0, messagesIn: 0, chunksOut: 0, chunksIn: 0, bytesIn: 0 };
  /** The channel copies what `send` is given before it returns; chunks are copies too. */
  readonly copiesOnSend = false;

  constructor(options: SessionOptions) {
    this.#o = options;
    this.#reasm = new Reassembler(options.maxMessageBytes);
    this.#health = new LinkHealth(options, {
      sentBytes: () => this.#handed - (this.#port?.bufferedAmount ?? 0),
      queuedBytes: () => this.bufferedAmount,
      ping: () => this.#ping(),
      fail: (kind, message) => this.fail(kind, new TimeoutError(message)),
    });
    if (options.timeoutMs > 0) {
      this.#openTimer = setTimeout(() => this.fail('timeout', new TimeoutError(`the direct link did not open within ${options.timeoutMs} ms`)), options.timeoutMs);
    }
  }

  // ---- Transport ----

  get status(): TransportStatus {
    if (this.#state === 'open') return 'open';
    return this.#state === 'closed' ? 'closed' : 'closing';
  }

  get bufferedAmount(): number {
    return this.#out.bytes + (this.#port?.bufferedAmount ?? 0);
  }

  send(data: Uint8Array): boolean {
    if (this.#state !== 'open') throw new ClosedError(`the direct link is ${this.#state}`);
    if (data.length > this.#o.maxMessageBytes) throw new LimitError(`a message of ${data.length} bytes exceeds maxMessageBytes (${this.#o.maxMessageBytes})`);
    this.#out.push(data);
    this.#stats.messagesOut++;
    this.#pump();
    if (this.bufferedAmount > this.#o.highWaterMark) {
      this.#needDrain = true;
      this.#waitLow();
      return false;
    }
    return true;
  }

  listen(handlers: TransportHandlers): void {
    this.#deliveries.listen(handlers);
  }

  pause(): void {
    this.#deliveries.pause();
  }

  resume(): void {
    this.#deliveries.resume();
  }

  close(info?: Partial<CloseInfo>): void {
    const closing: DirectCloseInfo = { code: info?.code ?? CloseCode.NORMAL, reason: truncateUtf8(info?.reason ?? '', MAX_REASON_BYTES), kind: 'closed' };
    if (info?.error) closing.error = info.error;
    this.#close(closing, true);
  }

  // ---- from the adapter ----

  get state(): DirectLinkState {
    return this.#state;
  }

  get iceState(): string {
    return this.#iceState;
  }

  get closeInfo(): DirectCloseInfo | undefined {
    return this.#closeInfo;
  }

  stats(): DirectLinkStats {
    return { state: this.#state, iceState: this.#iceState, bufferedAmount: this.bufferedAmount, chunkSize: this.#chunkSize, ...this.#stats, bytesOut: this.#handed };
  }

  /** The data channel opened: `chunkSize` is the largest message this end may send on it. */
  opened(port: DataChannelPort, chunkSize: number): void {
    if (this.#state !== 'connecting') return;
    clearTimeout(this.#openTimer);
    this.#state = 'open';
    this.#port = port;
    this.#chunkSize = chunkSize;
    this.#lowThreshold = Math.min(CHANNEL_LOW, this.#o.highWaterMark);
    this.#lowEvents = port.watchLow(this.#lowThreshold, this.#onLow);
    this.#health.start();
    this.#o.onOpen(this);
  }

  /** One message from the data channel (any time: the other end may open first). */
  message(data: Uint8Array | string): void {
    if (this.#state === 'closed') return;
    this.#health.received();
    this.#stats.chunksIn++;
    if (typeof data === 'string') {
      this.#abort('protocol', new ProtocolError('a text message on the data channel'));
      return;
    }
    this.#stats.bytesIn += data.length;
    let frame: Uint8Array | undefined;
    try {
      const m = decodeChannelMessage(data);
      if (m.type === 'ping') return;
      if (m.type === 'close') {
        this.#end(this.#closing ?? { code: m.code, reason: m.reason, kind: 'remote-closed' });
        return;
      }
      frame = this.#reasm.take(m);
    } catch (err) {
      this.#abort(err instanceof LimitError ? 'too-big' : 'protocol', err as Error);
      return;
    }
    if (!frame) return;
    this.#stats.messagesIn++;
    this.#deliveries.message(frame);
  }

  /** Each ICE connection state, as the connection reports it. */
  ice(state: string): void {
    this.#iceState = state;
    this.#health.iceState(state);
    if (state === 'failed') this.fail('ice-failed', new ClosedError('ICE failed: no candidate pair connects the two ends (a TURN server in iceServers may be needed)'));
  }

  /** The channel or the connection is gone. A closing end takes that as the other end's answer. */
  channelClosed(error?: Error): void {
    if (this.#closing) this.#end(this.#closing);
    else this.fail('channel-closed', new ClosedError('the data channel closed without a close message', error ? { cause: error } : undefined));
  }

  /**
   * The page is going away (`pagehide`): there is no time for the close handshake. The CLOSE is
   * handed to the channel at once (unless half a message is in the way), and the link ends.
   */
  leave(): void {
    if (this.#state === 'closed') return;
    const info: DirectCloseInfo = this.#closing ?? { code: CloseCode.GOING_AWAY, reason: 'the page went away', kind: 'closed' };
    if (this.#port && this.#state !== 'connecting' && !this.#out.splitting) {
      try {
        this.#port.send(encodeClose(info.code, info.reason));
      } catch {
        // The channel is closing already: the other end learns it from the channel.
      }
    }
    this.#end(info);
  }

  /** The link failed: it ends now (a closing link reports what it was closing with). */
  fail(kind: Exclude<DirectCloseKind, 'closed' | 'remote-closed'>, error: Error): void {
    if (this.#state === 'closed') return;
    this.#end(this.#closing ?? { code: codeOf[kind], reason: error.message, kind, error });
  }

  // ---- inside ----

  /** A failure the other end should hear about: a CLOSE with its code, then the end. */
  #abort(kind: 'too-big' | 'protocol', error: Error): void {
    this.#close({ code: codeOf[kind], reason: error.message, kind, error }, false);
  }

  #close(info: DirectCloseInfo, flush: boolean): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    if (this.#state === 'connecting' || !this.#port) {
      this.#end(info);
      return;
    }
    this.#state = 'closing';
    this.#closing = info;
    // A half-sent message must not be cut by the CLOSE: its other parts would be missing.
    if (!flush && !this.#out.splitting) this.#out.clear();
    this.#out.pushControl(encodeClose(info.code, info.reason));
    this.#pump();
  }

  #end(info: DirectCloseInfo): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#openTimer);
    clearTimeout(this.#lingerTimer);
    clearTimeout(this.#pollTimer);
    this.#health.stop();
    this.#out.clear();
    this.#port?.unwatch();
    this.#closeInfo = info;
    this.#o.onEnd(info);
    // What arrived before the close still goes first, unless the reader is paused (as a socket).
    this.#deliveries.close(info);
  }

  #pump(): void {
    const port = this.#port;
    if (!port || this.#state === 'closed' || this.#state === 'connecting') return;
    while (port.bufferedAmount < CHANNEL_HIGH) {
      const m = this.#out.next(this.#chunkSize);
      if (!m) break;
      try {
        port.send(m);
      } catch (err) {
        this.fail('error', new ClosedError('the data channel refused a message', { cause: err }));
        return;
      }
      this.#handed += m.length;
      this.#stats.chunksOut++;
      this.#health.sent();
    }
    if (this.#needDrain && this.bufferedAmount <= this.#o.highWaterMark) {
      this.#needDrain = false;
      this.#deliveries.drain();
    }
    if (!this.#out.empty || this.#needDrain) this.#waitLow();
    else if (this.#state === 'closing' && this.#lingerTimer === undefined) {
      const closing = this.#closing!;
      this.#lingerTimer = setTimeout(() => this.#end(closing), CLOSE_LINGER_MS);
    }
  }

  readonly #onLow = (): void => {
    this.#pump();
  };

  /** Without `bufferedamountlow`, polls the channel until it falls to the threshold. */
  #waitLow(): void {
    if (this.#lowEvents || this.#pollTimer !== undefined || this.#state === 'closed') return;
    this.#pollDelay = POLL_MIN;
    this.#pollTimer = setTimeout(this.#poll, this.#pollDelay);
  }

  readonly #poll = (): void => {
    this.#pollTimer = undefined;
    if (!this.#port || this.#state === 'closed') return;
    if (this.#port.bufferedAmount <= this.#lowThreshold) {
      this.#pump();
      return;
    }
    this.#pollDelay = Math.min(this.#pollDelay * 2, POLL_MAX);
    this.#pollTimer = setTimeout(this.#poll, this.#pollDelay);
  };

  #ping(): void {
    const port = this.#port;
    if (!port || this.#state !== 'open' || !this.#out.empty) return;
    try {
      port.send(encodePing());
    } catch (err) {
      this.fail('error', new ClosedError('the data channel refused a ping', { cause: err }));
      return;
    }
    this.#handed += 1;
    this.#health.sent();
  }
}
