/**
 * The session: the link to the relay and its lifecycle. It attaches a handshaken link, notices
 * when it drops, redials with backoff (when the peer was made from a transport factory), and
 * ends for good on a fatal refusal, after too many attempts, or on close. Every frame a Peer
 * sends goes through `write`; every frame it gets comes out of `events.frame`.
 */
import type { Frame } from '../codec/frames.js';
import { frame, Kind } from '../codec/frames.js';
import type { Connection } from '../connection.js';
import { ClosedError, ErrorCode, errorFromCode, type MissiveError, type ProtocolError } from '../errors.js';
import { openLink, type HelloFields, type Link } from '../link.js';
import type { CloseInfo, Transport } from '../transport/transport.js';
import { CloseCode } from '../transport/transport.js';
import type { PeerSnapshot } from './snapshot.js';
import type { PeerEvents, ReconnectOptions, TransportFactory } from './types.js';

/** What the session reports to the Peer. */
export interface SessionEvents {
  frame(f: Frame): void;
  protocolError(err: ProtocolError): void;
  drain(): void;
  /** A link is attached; `attempt` is 0 for the first connection, else the reconnection attempt. */
  attached(attempt: number): void;
  /** The link dropped and reconnection starts (`disconnected` is emitted by the session). */
  lost(error: ClosedError): void;
  /** The session is over: reconnecting cannot help, or it gave up. The Peer shuts down. */
  ended(error: MissiveError, info: CloseInfo): void;
  /** The link closed after the Peer shut down (its own close, or a fatal one). */
  linkClosed(info: CloseInfo): void;
  emit<K extends 'disconnected' | 'reconnecting'>(type: K, event: PeerEvents[K]): void;
}

export interface SessionOptions {
  hello: HelloFields;
  factory: TransportFactory | undefined;
  reconnect: ReconnectOptions | false | undefined;
  connectTimeout: number;
}

/** Close reasons after which reconnecting cannot help. */
export const FATAL_BYE = new Set<string>([ErrorCode.AUTH, ErrorCode.NAME_TAKEN, ErrorCode.PROTOCOL]);

export class Session {
  #conn!: Connection;
  #id = '';
  #name: string | undefined;
  #namespace = '';
  #maxFrame = 0;
  readonly #hello: HelloFields;
  readonly #factory: TransportFactory | undefined;
  readonly #reconnect: Required<ReconnectOptions> | undefined;
  readonly #connectTimeout: number;
  readonly #events: SessionEvents;
  #reconnecting = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** A transport being connected during a reconnection, closed if the peer closes first. */
  #dialing: Transport | undefined;
  /** Set once the Peer has shut down: nothing is redialled after that. */
  #ended = false;
  #attempts = 0;

  constructor(options: SessionOptions, events: SessionEvents) {
    this.#hello = options.hello;
    this.#factory = options.factory;
    this.#connectTimeout = options.connectTimeout;
    this.#reconnect =
      options.factory && options.reconnect !== false
        ? { initialDelay: 100, maxDelay: 10_000, factor: 2, maxAttempts: Number.POSITIVE_INFINITY, ...options.reconnect }
        : undefined;
    this.#events = events;
  }

  /** Relay-assigned id of the current link. */
  get id(): string {
    return this.#id;
  }
  get name(): string | undefined {
    return this.#name;
  }
  get namespace(): string {
    return this.#namespace;
  }
  /** The relay's frame limit, from WELCOME. */
  get maxFrame(): number {
    return this.#maxFrame;
  }
  /** The smaller of the relay's frame limit and what this link accepts. */
  get linkMaxFrame(): number {
    return Math.min(this.#maxFrame, this.#conn.maxFrameBytes);
  }
  get connected(): boolean {
    return !this.#ended && !this.#reconnecting && this.#conn.open;
  }
  get reconnecting(): boolean {
    return this.#reconnecting;
  }
  get bufferedAmount(): number {
    return this.#conn.bufferedAmount;
  }
  get congested(): boolean {
    return this.#conn.congested;
  }
  /** Whether the current link's transport has closed. */
  get transportClosed(): boolean {
    return this.#conn.transport.status === 'closed';
  }

  /** Writes a frame on the current link; false when it is not open. */
  write(f: Frame, stableBody = false): boolean {
    return this.#conn.write(f, stableBody);
  }

  /** Takes a freshly handshaken link into use. */
  attach(link: Link, attempt = 0): void {
    this.#conn = link.conn;
    this.#id = link.welcome.id;
    this.#name = link.welcome.name || undefined;
    this.#namespace = link.welcome.namespace;
    this.#maxFrame = link.welcome.maxFrame;
    const events = this.#events;
    link.attach({
      frame: (f) => events.frame(f),
      protocolError: (err) => events.protocolError(err),
      drain: () => events.drain(),
      close: (info, bye) => this.#onLinkClose(link.conn, info, bye),
    });
    events.attached(attempt);
  }

  /** Breaks the protocol: the link is closed with 1002 (and a reconnection follows, if any). */
  protocolError(err: ProtocolError): void {
    this.#conn.close(CloseCode.PROTOCOL, err.reason.slice(0, 120));
  }

  /**
   * Closes the link on purpose (BYE first). Returns whether the link was open, in which case
   * `events.linkClosed` follows once its transport has closed.
   */
  close(): boolean {
    if (!this.#conn.open) return false;
    this.#conn.write(frame(Kind.Bye, { code: 'NORMAL', message: 'peer closed' }));
    this.#conn.close(CloseCode.NORMAL, 'peer closed');
    return true;
  }

  /** Stops for good: no more reconnection, and a transport being dialled is closed. */
  end(): void {
    this.#ended = true;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#dialing?.close({ code: CloseCode.NORMAL, reason: 'peer closed' });
    this.#dialing = undefined;
  }

  inspect(): PeerSnapshot['session'] {
    return {
      id: this.#id,
      name: this.#name,
      namespace: this.#namespace,
      url: this.#conn.transport.url,
      connected: this.connected,
      reconnecting: this.#reconnecting,
      attempts: this.#attempts,
      bufferedAmount: this.#conn.bufferedAmount,
      maxFrame: this.#maxFrame,
    };
  }

  #onLinkClose(conn: Connection, info: CloseInfo, bye: { code: string; message: string } | undefined): void {
    if (conn !== this.#conn) return; // an older link, already replaced
    if (this.#ended) return this.#events.linkClosed(info);
    const why = bye ? `${bye.code}: ${bye.message}` : info.reason || `code ${info.code}`;
    const error = new ClosedError(`link closed (${why})`, { cause: info.error });
    // Refused credentials, a broken protocol, an oversized frame, a newer session of this very
    // peer or an admin's disconnect: reconnecting would only repeat it (or undo it).
    const fatalBye = bye !== undefined && FATAL_BYE.has(bye.code);
    const fatal = fatalBye || info.code === CloseCode.REPLACED || info.code === CloseCode.TOO_BIG || info.code === CloseCode.KICKED;
    if (!this.#reconnect || fatal) {
      this.#events.ended(fatalBye ? errorFromCode(bye.code, bye.message) : error, info);
      return;
    }
    this.#reconnecting = true;
    const e: PeerEvents['disconnected'] = { code: info.code, reason: info.reason };
    if (info.error) e.error = info.error;
    this.#events.emit('disconnected', e);
    this.#events.lost(error);
    this.#redial(1);
  }

  #redial(attempt: number): void {
    if (this.#ended) return;
    const r = this.#reconnect!;
    if (attempt > r.maxAttempts) {
      this.#events.ended(new ClosedError(`gave up reconnecting after ${r.maxAttempts} attempts`), { code: CloseCode.ABNORMAL, reason: 'reconnection failed' });
      return;
    }
    this.#attempts = attempt;
    const ceiling = Math.min(r.maxDelay, r.initialDelay * r.factor ** (attempt - 1));
    const delay = Math.random() * ceiling;
    // Armed before the event, so a listener that calls close() clears it.
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#dial(attempt);
    }, delay);
    this.#events.emit('reconnecting', { attempt, delay });
  }

  async #dial(attempt: number): Promise<void> {
    if (this.#ended) return;
    let link: Link;
    try {
      const transport = await this.#factory!();
      if (this.#ended) return transport.close({ code: CloseCode.NORMAL, reason: 'peer closed' });
      this.#dialing = transport;
      link = await openLink(transport, this.#hello, this.#connectTimeout);
    } catch (err) {
      this.#dialing = undefined;
      if (this.#ended) return;
      const code = (err as { code?: string }).code;
      if (code !== undefined && FATAL_BYE.has(code)) {
        this.#events.ended(err as ClosedError, { code: CloseCode.ABNORMAL, reason: `reconnection refused: ${(err as Error).message}` });
        return;
      }
      return this.#redial(attempt + 1);
    }
    this.#dialing = undefined;
    if (this.#ended) return link.conn.close(CloseCode.NORMAL, 'peer closed');
    this.#reconnecting = false;
    this.#attempts = 0;
    this.attach(link, attempt);
  }
}
