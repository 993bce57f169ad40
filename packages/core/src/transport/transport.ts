/**
 * The Transport contract: ordered, reliable delivery of whole messages (each one a batch of
 * frames) between two ends. Sockets, WebRTC data channels and the in-memory pair implement it;
 * everything above it (Connection, Router, Peer) is transport-agnostic.
 */

/** Why a transport closed. `code` follows WebSocket close codes (see docs/protocol.md). */
export interface CloseInfo {
  code: number;
  reason: string;
  /** The underlying error when the close was not requested by either end. */
  error?: Error;
}

/** Callbacks a transport calls; set once through `listen`. */
export interface TransportHandlers {
  /** One whole message, in order. The receiver owns the bytes. */
  message(data: Uint8Array): void;
  /** Buffered outgoing bytes fell back below the high-water mark after `send` returned false. */
  drain(): void;
  /** The transport closed (once), from either end or because the link failed. */
  close(info: CloseInfo): void;
}

export type TransportStatus = 'open' | 'closing' | 'closed';

export interface Transport {
  readonly status: TransportStatus;
  /** Bytes handed to `send` that the other end has not yet taken. */
  readonly bufferedAmount: number;
  /**
   * Queues one message. The transport owns `data` afterwards. Returns false once
   * `bufferedAmount` is above the high-water mark: the caller should wait for `drain`
   * (the message is still queued). Throws ClosedError if the transport is not open.
   */
  send(data: Uint8Array): boolean;
  /**
   * True when `send` has copied `data` by the time it returns (a client WebSocket does while
   * masking; a browser WebSocket always does), so the caller may change it afterwards. A large
   * message body that is not known to stay unchanged is copied before `send` otherwise.
   */
  readonly copiesOnSend?: boolean;
  /**
   * Optional: where this transport leads, for diagnostics (a client WebSocket's URL, without
   * user name or password). A Peer shows it as `inspect().session.url`.
   */
  readonly url?: string;
  /**
   * Optional: hold what `send` writes until `uncork`, so that several messages leave in one
   * write (a socket's cork). Used around a batch and the large body sent after it.
   */
  cork?(): void;
  uncork?(): void;
  /** Starts delivery to `handlers`. Messages that arrived earlier are delivered first. Call once. */
  listen(handlers: TransportHandlers): void;
  /** Stops delivering incoming messages (they stay queued, so the sender sees backpressure). */
  pause(): void;
  /** Resumes delivery after `pause`. */
  resume(): void;
  /** Closes both directions; pending outgoing messages are flushed first where the medium allows. */
  close(info?: Partial<CloseInfo>): void;
}

/** Close codes used by missive (WebSocket-compatible numbers). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL: 1002,
  ABNORMAL: 1006,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  /** Try again later: the relay cannot serve this now (a cluster's backplane is down). */
  UNAVAILABLE: 1013,
  /** missive-specific codes live in the 4000–4999 private range. */
  AUTH: 4001,
  NAME_TAKEN: 4002,
  LIMIT: 4003,
  SLOW_CONSUMER: 4004,
  TIMEOUT: 4005,
  /** The same peer connected again (same session): this older connection is closed. */
  REPLACED: 4006,
  /** An admin disconnected the peer (devtools): it does not reconnect on its own. */
  KICKED: 4007,
} as const;
