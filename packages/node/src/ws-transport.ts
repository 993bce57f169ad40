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

/** Wraps an open `ws` WebSocket as a Transport. */
export function wsTransport(socket: WebSocket, options: WsTransportOptions = {}): Transport {
  return new WsTransport(socket, options.highWaterMark ?? 1024 * 1024, options.copiesOnSend === true);
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

class WsTransport implements Transport {
  readonly #ws: WebSocket;
  readonly #hwm: number;
  #handlers: TransportHandlers | undefined;
  #early: Uint8Array[] = [];
  #closeInfo: CloseInfo | undefined;
  #error: Error | undefined;
  #pending = 0;
  #wantDrain = false;
  #closing = false;
  readonly copiesOnSend: boolean;

  constructor(ws: WebSocket, hwm: number, copiesOnSend: boolean) {
    this.#ws = ws;
    this.copiesOnSend = copiesOnSend;
    this.#hwm = hwm;
    ws.binaryType = 'nodebuffer';
    // One set of listener functions for every socket (`this` is the socket): a relay holds
    // thousands of connections, and per-socket closures add up.
    (ws as Owned)[OWNER] = this;
    ws.on('message', onMessage);
    ws.on('error', onError);
    ws.on('close', onClose);
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
    else this.#early.push(data);
  }

  /** @internal */
  onError(err: Error): void {
    this.#error = err;
  }

  /** @internal */
  onClose(code: number, reason: Buffer): void {
    const info: CloseInfo = { code, reason: reason.toString() };
    if (this.#error) info.error = this.#error;
    this.#closeInfo = info;
    this.#handlers?.close(info);
  }

  get status(): TransportStatus {
    const s = this.#ws.readyState;
    if (s === WebSocket.OPEN && !this.#closing) return 'open';
    return s === WebSocket.CLOSED ? 'closed' : 'closing';
  }

  get bufferedAmount(): number {
    return this.#pending;
  }

  send(data: Uint8Array): boolean {
    if (this.status !== 'open') throw new ClosedError('websocket is not open');
    const n = data.length;
    this.#pending += n;
    this.#ws.send(data, { binary: true }, () => {
      this.#pending -= n;
      if (this.#wantDrain && this.#pending <= this.#hwm) {
        this.#wantDrain = false;
        this.#handlers?.drain();
      }
    });
    if (this.#pending > this.#hwm) {
      this.#wantDrain = true;
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
    for (const m of this.#early.splice(0)) handlers.message(m);
    if (this.#closeInfo) handlers.close(this.#closeInfo);
  }

  pause(): void {
    this.#ws.pause();
  }

  resume(): void {
    this.#ws.resume();
  }

  close(info?: Partial<CloseInfo>): void {
    if (this.#closing || this.#ws.readyState >= WebSocket.CLOSING) return;
    this.#closing = true;
    const code = info?.code ?? CloseCode.NORMAL;
    // Close reasons are limited to 123 bytes by RFC 6455.
    const reason = Buffer.from(info?.reason ?? '').subarray(0, 123).toString();
    if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
    else this.#ws.close(code, reason);
  }
}
