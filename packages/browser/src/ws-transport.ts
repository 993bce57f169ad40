/**
 * A Transport over the browser's `WebSocket`. One WebSocket message is one missive message (a
 * batch of frames); a text message breaks the protocol and closes the socket (1003, as in Node).
 *
 * Browsers differ from `ws` in three ways this file absorbs:
 * - there is no `drain` event: after `send` returned false, `bufferedAmount` is polled (only
 *   while it is over the high-water mark, every 1 ms doubling to 16 ms) until it falls back;
 * - a socket cannot stop reading: `pause()` holds received messages in memory until `resume()`,
 *   so the sender sees no backpressure from a paused browser reader;
 * - `close(code)` accepts only 1000 and 3000–4999: any other code (1002 PROTOCOL, 1003, 1009...)
 *   goes on the wire as 1000 with the same reason. This end still reports the code it asked for,
 *   and missive sends the real error code in its BYE frame before closing anyway.
 */
import { ClosedError, CloseCode, TimeoutError, type CloseInfo, type Transport, type TransportHandlers, type TransportStatus } from '@missive/core';
import { withoutCredentials } from '@missive/core/internal';
import { Deliveries } from './deliveries.js';
import { truncateUtf8 } from './utf8.js';

export interface WsTransportOptions {
  /**
   * Bytes queued in the socket (`WebSocket.bufferedAmount`) above which `send` returns false.
   * @default 1048576
   */
  highWaterMark?: number;
}

export interface OpenWsTransportOptions extends WsTransportOptions {
  /** Milliseconds the WebSocket may take to open before it is given up. @default 10000 */
  timeout?: number;
  /** WebSocket subprotocols, passed to the `WebSocket` constructor. */
  protocols?: string | string[];
}

const DEFAULT_HWM = 1024 * 1024;
/** The drain poll starts at this delay (ms) and doubles up to DRAIN_POLL_MAX. */
const DRAIN_POLL_MIN = 1;
const DRAIN_POLL_MAX = 16;
/** RFC 6455 limits a close reason to 123 bytes of UTF-8. */
const MAX_REASON_BYTES = 123;
const TEXT_REFUSED = 'PROTOCOL: text messages are not accepted';

/**
 * Wraps a browser `WebSocket` that is already open as a Transport. Sets `binaryType` to
 * `arraybuffer`. Prefer {@link openWsTransport}, which attaches its listeners before the socket
 * opens; with this function, messages that arrived before the call are not seen.
 */
export function wsTransport(socket: WebSocket, options: WsTransportOptions = {}): Transport {
  if (socket.readyState !== WebSocket.OPEN) throw new TypeError('wsTransport() needs an open WebSocket (use openWsTransport(url) to open one)');
  return new BrowserWsTransport(socket, highWaterMark(options), socket.url);
}

/**
 * Opens a WebSocket to `url` and resolves with its Transport once it is open. Listeners are
 * attached before the socket opens, and messages received before `listen` are kept for it.
 * Rejects with ClosedError (its `cause` says why) if the socket closes or fails before it
 * opens, or does not open within `timeout`; with the browser's SyntaxError for a bad URL.
 */
export function openWsTransport(url: string | URL, options: OpenWsTransportOptions = {}): Promise<Transport> {
  return new Promise<Transport>((resolve, reject) => {
    const hwm = highWaterMark(options);
    const timeout = options.timeout ?? 10_000;
    if (!(timeout > 0)) throw new TypeError('timeout must be a positive number of ms');
    const ws = new WebSocket(url, options.protocols);
    const transport = new BrowserWsTransport(ws, hwm, String(url));
    const done = (): void => {
      clearTimeout(timer);
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('close', onClose);
    };
    const onOpen = (): void => {
      done();
      resolve(transport);
    };
    const onClose = (ev: CloseEvent): void => {
      done();
      const detail = ev.code === CloseCode.ABNORMAL ? 'connection failed' : `closed with ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`;
      reject(new ClosedError(`cannot open WebSocket to ${String(url)}: ${detail}`, { cause: new Error(`WebSocket ${detail} (close code ${ev.code})`) }));
    };
    const timer = setTimeout(() => {
      done();
      transport.close({ code: CloseCode.NORMAL, reason: 'open timed out' });
      reject(new ClosedError(`cannot open WebSocket to ${String(url)}: no answer within ${timeout} ms`, { cause: new TimeoutError(`WebSocket did not open within ${timeout} ms`) }));
    }, timeout);
    ws.addEventListener('open', onOpen);
    ws.addEventListener('close', onClose);
  });
}

function highWaterMark(options: WsTransportOptions): number {
  const hwm = options.highWaterMark ?? DEFAULT_HWM;
  if (typeof hwm !== 'number' || !(hwm >= 0)) throw new TypeError('highWaterMark must be a number >= 0');
  return hwm;
}

class BrowserWsTransport implements Transport {
  readonly #ws: WebSocket;
  readonly #hwm: number;
  readonly #url: string;
  readonly #deliveries = new Deliveries();
  /** What this end asked for in `close()`: reported to its own handlers. */
  #requested: CloseInfo | undefined;
  #errored = false;
  /** A text message came: nothing more is delivered. */
  #refused = false;
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #drainDelay = DRAIN_POLL_MIN;
  /** The browser copies what `send` is given before it returns. */
  readonly copiesOnSend = true;

  constructor(ws: WebSocket, hwm: number, url: string) {
    this.#ws = ws;
    this.#hwm = hwm;
    this.#url = withoutCredentials(url);
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', this.#onMessage);
    ws.addEventListener('error', this.#onError);
    ws.addEventListener('close', this.#onClose);
  }

  get status(): TransportStatus {
    const s = this.#ws.readyState;
    if (s === WebSocket.OPEN && !this.#requested) return 'open';
    return s === WebSocket.CLOSED ? 'closed' : 'closing';
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** The socket's URL (without user name or password). */
  get url(): string {
    return this.#url;
  }

  send(data: Uint8Array): boolean {
    if (this.status !== 'open') throw new ClosedError('websocket is not open');
    // Never a SharedArrayBuffer view here: missive's buffers are all plain ArrayBuffers.
    this.#ws.send(data as Uint8Array<ArrayBuffer>);
    if (this.#ws.bufferedAmount > this.#hwm) {
      this.#watchDrain();
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
    if (this.#requested || this.#ws.readyState >= WebSocket.CLOSING) return;
    const code = info?.code ?? CloseCode.NORMAL;
    const reason = truncateUtf8(info?.reason ?? '', MAX_REASON_BYTES);
    this.#requested = { code, reason };
    if (info?.error) this.#requested.error = info.error;
    this.#stopDrainWatch();
    // Browsers throw InvalidAccessError for any other code (see the file comment).
    const wireCode = code === CloseCode.NORMAL || (code >= 3000 && code <= 4999) ? code : CloseCode.NORMAL;
    this.#ws.close(wireCode, reason);
  }

  // Arrow functions: one listener each, removable, with `this` bound.
  readonly #onMessage = (ev: MessageEvent): void => {
    if (this.#deliveries.closeInfo || this.#refused) return;
    const data: unknown = ev.data;
    if (!(data instanceof ArrayBuffer)) {
      this.#refused = true;
      this.close({ code: 1003, reason: TEXT_REFUSED });
      return;
    }
    this.#deliveries.message(new Uint8Array(data));
  };

  readonly #onError = (): void => {
    this.#errored = true;
  };

  readonly #onClose = (ev: CloseEvent): void => {
    this.#stopDrainWatch();
    this.#ws.removeEventListener('message', this.#onMessage);
    this.#ws.removeEventListener('error', this.#onError);
    this.#ws.removeEventListener('close', this.#onClose);
    let info: CloseInfo;
    if (this.#requested) info = this.#requested;
    else {
      info = { code: ev.code, reason: ev.reason };
      // Browsers give no detail on a failed socket: the close code (1006) is all there is.
      if (this.#errored || !ev.wasClean) info.error = new Error(`WebSocket to ${this.#url} failed (close code ${ev.code}${ev.wasClean ? '' : ', not clean'})`);
    }
    // What arrived before the close still goes first, unless the reader is paused: a paused
    // reader never takes its queued data, and a closing socket discards it (as in core's pair).
    this.#deliveries.close(info, this.#refused);
  };

  #watchDrain(): void {
    if (this.#drainTimer !== undefined) return;
    this.#drainDelay = DRAIN_POLL_MIN;
    this.#drainTimer = setTimeout(this.#pollDrain, this.#drainDelay);
  }

  readonly #pollDrain = (): void => {
    this.#drainTimer = undefined;
    if (this.status !== 'open') return;
    if (this.#ws.bufferedAmount <= this.#hwm) {
      this.#deliveries.drain();
      return;
    }
    this.#drainDelay = Math.min(this.#drainDelay * 2, DRAIN_POLL_MAX);
    this.#drainTimer = setTimeout(this.#pollDrain, this.#drainDelay);
  };

  #stopDrainWatch(): void {
    clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
  }
}
