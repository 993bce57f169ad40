/**
 * A Transport over a `ws` WebSocket (client or server side). One WebSocket message is one
 * missive message (a batch of frames); text messages are refused with close code 1003.
 */
import { ClosedError, CloseCode, type CloseInfo, type Transport, type TransportHandlers, type TransportStatus } from '@missive/core';
import { withoutCredentials } from '@missive/core/internal';
import type { Socket } from 'node:net';
import WebSocket from 'ws';

export interface WsTransportOptions {
  /**
   * Outgoing bytes not yet written to the socket above which `send` returns false.
   * @default 1048576
   */
  highWaterMark?: number;
  /**
   * Declares that `ws.send` copies what it is given before it returns, so a large body may be
   * handed over without a copy of our own. True only for a client socket without compression
   * whose masks are never all zero (ws skips the masking copy for a zero mask), which is what
   * `connect` opens. @default false
   */
  copiesOnSend?: boolean;
}

const DEFAULT_HWM = 1024 * 1024;

/**
 * What every transport made with the same options shares (one object for them all, not two
 * fields in each), and, on the relay's side, the set that tracks them.
 */
interface Shared {
  readonly hwm: number;
  readonly copiesOnSend: boolean;
  readonly sockets: ServerSockets | undefined;
}
const PLAIN: Shared = { hwm: DEFAULT_HWM, copiesOnSend: false, sockets: undefined };
const COPYING: Shared = { hwm: DEFAULT_HWM, copiesOnSend: true, sockets: undefined };

/** Wraps an open `ws` WebSocket as a Transport. */
export function wsTransport(socket: WebSocket, options: WsTransportOptions = {}): Transport {
  const hwm = options.highWaterMark ?? DEFAULT_HWM;
  const copiesOnSend = options.copiesOnSend === true;
  const shared = hwm !== DEFAULT_HWM ? { hwm, copiesOnSend, sockets: undefined } : copiesOnSend ? COPYING : PLAIN;
  return new WsTransport(socket, shared);
}

/** The relay's sockets (`ServerSockets.WebSocket`): their events go to their transport first, then to any listener (none, unless someone adds one). */
class RelaySocket extends WebSocket {
  override emit(event: string | symbol, ...args: any[]): boolean {
    const t = (this as unknown as Partial<Owned>)[OWNER];
    if (t !== undefined) {
      switch (event) {
        case 'message':
          t.onMessage(args[0] as Buffer, args[1] as boolean);
          break;
        case 'close':
          t.onClose(args[0] as number, args[1] as Buffer);
          break;
        case 'error':
          t.onError(args[0] as Error);
          // Handled: with no listener of its own, EventEmitter would throw it.
          if (this.listenerCount('error') === 0) return true;
          break;
        case 'ping':
          t.onPing(args[0] as Buffer);
          break;
        case 'pong':
          t.onPong();
          break;
      }
    }
    return super.emit(event, ...args);
  }
}

/**
 * The relay's side: transports for the sockets its WebSocketServer accepts, each tracked until
 * its socket closes, for the heartbeat and for shutdown. What a relay holds per idle socket is
 * what this is about. The server runs with:
 * - `WebSocket: ServerSockets.WebSocket`, whose events go straight to the socket's transport:
 *   no listeners, whose table grows past its first size (by 96 bytes a socket) from the fourth
 *   event name on;
 * - `clientTracking: false`: ws's own tracking adds a closure (and its context) and a second
 *   'close' listener to every socket; this set does the same for less;
 * - `autoPong: false`: ws's automatic pong keeps a closure per socket; the transport answers
 *   pings itself, as ws would.
 * @internal
 */
export class ServerSockets {
  /** The WebSocketServer's `WebSocket` option. */
  static readonly WebSocket: typeof WebSocket = RelaySocket;

  readonly #all = new Set<WsTransport>();
  readonly #shared: Shared = { hwm: DEFAULT_HWM, copiesOnSend: false, sockets: this };
  #emptied: (() => void) | undefined;

  /**
   * A transport for a socket the server just accepted (made by `ServerSockets.WebSocket`); it
   * counts as having answered a ping.
   */
  accept(socket: WebSocket): Transport {
    if (!(socket instanceof RelaySocket)) throw new TypeError('ServerSockets: the WebSocketServer must make its sockets with ServerSockets.WebSocket');
    const t = new WsTransport(socket, this.#shared, false);
    this.#all.add(t);
    return t;
  }

  /** @internal A tracked transport's socket closed. */
  closed(t: WsTransport): void {
    this.#all.delete(t);
    if (this.#all.size === 0) this.#emptied?.();
  }

  /**
   * Terminates each socket that has not answered the previous ping (`missed` is told of each
   * first) and pings the others.
   */
  heartbeat(missed: () => void): void {
    for (const t of this.#all) t.beat(missed);
  }

  /** Terminates every socket; resolves once each has closed. */
  terminate(): Promise<void> {
    for (const t of this.#all) t.terminate();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#emptied = resolve));
  }
}

const OWNER = Symbol('missive.transport');
type Owned = WebSocket & { [OWNER]: WsTransport };
function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  (this as Owned)[OWNER].onMessage(data, isBinary);
}
function onError(this: WebSocket, err: Error): void {
  (this as Owned)[OWNER].onError(err);
}
function onClose(this: WebSocket, code: number, reason: Buffer): void {
  (this as Owned)[OWNER].onClose(code, reason);
}

/** What arrived before `listen`, and an error the socket reported before it closed (rare: made only then). */
class Held {
  readonly messages: Uint8Array[] = [];
  closeInfo: CloseInfo | undefined = undefined;
  error: Error | undefined = undefined;
}

// WsTransport.#bits
const WANT_DRAIN = 1;
const CLOSING = 2;
/** Server side: it answered the last heartbeat ping. */
const ALIVE = 4;
/** Server side: pongs sent in answer to the peer's pings and not yet written, counted from this bit up. */
const PONG = 8;
/** As ws's `maxPendingAutoPongs` (its default): a peer with this many pongs unwritten is cut. */
const MAX_PENDING_PONGS = 60;
const BINARY = { binary: true } as const;

class WsTransport implements Transport {
  readonly #ws: WebSocket;
  readonly #shared: Shared;
  #handlers: TransportHandlers | undefined = undefined;
  #pending = 0;
  #bits = ALIVE;
  #held: Held | undefined = undefined;

  /** `listeners` false: the socket hands its events over itself (`ServerSockets.WebSocket`). */
  constructor(ws: WebSocket, shared: Shared, listeners = true) {
    this.#ws = ws;
    this.#shared = shared;
    ws.binaryType = 'nodebuffer';
    (ws as Owned)[OWNER] = this;
    if (!listeners) return;
    // One set of listener functions for every socket (`this` is the socket): a relay holds
    // thousands of connections, and per-socket closures add up.
    ws.on('message', onMessage);
    ws.on('error', onError);
    ws.on('close', onClose);
  }

  get copiesOnSend(): boolean {
    return this.#shared.copiesOnSend;
  }

  /** A client socket's URL (without user name or password); undefined on the relay's side. */
  get url(): string | undefined {
    return this.#ws.url ? withoutCredentials(this.#ws.url) : undefined;
  }

  /** @internal */
  onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      this.close({ code: 1003, reason: 'PROTOCOL: text messages are not accepted' });
      return;
    }
    if (this.#handlers) this.#handlers.message(data);
    else (this.#held ??= new Held()).messages.push(data);
  }

  /** @internal */
  onError(err: Error): void {
    (this.#held ??= new Held()).error = err;
  }

  /** @internal */
  onClose(code: number, reason: Buffer): void {
    const info: CloseInfo = { code, reason: reason.toString() };
    const error = this.#held?.error;
    if (error) info.error = error;
    this.#shared.sockets?.closed(this);
    if (this.#handlers) this.#handlers.close(info);
    else (this.#held ??= new Held()).closeInfo = info;
  }

  /** @internal Server side: the peer answered a heartbeat ping. */
  onPong(): void {
    this.#bits |= ALIVE;
  }

  /** @internal Server side: answers a ping, as ws's `autoPong` would. */
  onPing(data: Buffer): void {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (this.#bits >> 3 >= MAX_PENDING_PONGS) {
      ws.terminate();
      return;
    }
    this.#bits += PONG;
    ws.pong(data, false, () => (this.#bits -= PONG));
  }

  /** @internal Server side: one heartbeat (see ServerSockets.heartbeat). */
  beat(missed: () => void): void {
    if ((this.#bits & ALIVE) === 0) {
      missed();
      this.#ws.terminate();
      return;
    }
    this.#bits &= ~ALIVE;
    this.#ws.ping();
  }

  /** @internal */
  terminate(): void {
    this.#ws.terminate();
  }

  get status(): TransportStatus {
    const s = this.#ws.readyState;
    if (s === WebSocket.OPEN && (this.#bits & CLOSING) === 0) return 'open';
    return s === WebSocket.CLOSED ? 'closed' : 'closing';
  }

  get bufferedAmount(): number {
    return this.#pending;
  }

  send(data: Uint8Array): boolean {
    if (this.status !== 'open') throw new ClosedError('websocket is not open');
    const n = data.length;
    this.#pending += n;
    this.#ws.send(data, BINARY, () => {
      this.#pending -= n;
      if ((this.#bits & WANT_DRAIN) !== 0 && this.#pending <= this.#shared.hwm) {
        this.#bits &= ~WANT_DRAIN;
        this.#handlers?.drain();
      }
    });
    if (this.#pending > this.#shared.hwm) {
      this.#bits |= WANT_DRAIN;
      return false;
    }
    return true;
  }

  /** Holds writes back until `uncork`, so that a batch and the large body after it leave in one write. */
  cork(): void {
    (this.#ws as unknown as { _socket?: Socket | null })._socket?.cork();
  }

  uncork(): void {
    (this.#ws as unknown as { _socket?: Socket | null })._socket?.uncork();
  }

  listen(handlers: TransportHandlers): void {
    if (this.#handlers) throw new Error('listen() called twice');
    this.#handlers = handlers;
    const held = this.#held;
    if (held === undefined) return;
    for (const m of held.messages.splice(0)) handlers.message(m);
    if (held.closeInfo) handlers.close(held.closeInfo);
  }

  pause(): void {
    this.#ws.pause();
  }

  resume(): void {
    this.#ws.resume();
  }

  close(info?: Partial<CloseInfo>): void {
    if ((this.#bits & CLOSING) !== 0 || this.#ws.readyState >= WebSocket.CLOSING) return;
    this.#bits |= CLOSING;
    const code = info?.code ?? CloseCode.NORMAL;
    // Close reasons are limited to 123 bytes by RFC 6455.
    const reason = Buffer.from(info?.reason ?? '').subarray(0, 123).toString();
    if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
    else this.#ws.close(code, reason);
  }
}
