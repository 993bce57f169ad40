/**
 * The Peer's public types: options, events, and what its methods take and give. In a file of
 * their own so that every part of the Peer can use them without importing the facade.
 */
import type { MissiveError } from '../errors.js';
import type { OutboxStore } from '../store/outbox.js';
import type { CodecName } from '../codec/body.js';
import type { TraceEvent } from '../trace.js';
import type { Transport } from '../transport/transport.js';
import type { Tunnel } from '../tunnel.js';
import type { DirectConnector, DirectOptions } from './direct.js';

export interface PeerOptions {
  /** Unique name in the namespace; omit for an anonymous peer (reachable by its `id`). */
  name?: string;
  /** @default 'default' */
  namespace?: string;
  /** Shared secret for the relay's auth. */
  secret?: string;
  /** Signed token for the relay's auth. */
  token?: string;
  /** Codec for bodies this peer sends. @default 'msgpack' */
  codec?: CodecName;
  /** Capacity of mailboxes created without an explicit one. @default 1000 */
  mailboxCapacity?: number;
  /** Default request deadline in ms. @default 10000 */
  requestTimeout?: number;
  /** Most requests awaiting a reply at once; more reject with LIMIT. @default 10000 */
  maxPendingRequests?: number;
  /** Most unacknowledged `send`s held in the outbox; more reject with LIMIT. @default 10000 */
  outboxCapacity?: number;
  /** Most unacked messages in flight per destination; the rest wait in the outbox. @default 512 */
  sendWindow?: number;
  /** Outbox and dedup storage. @default new MemoryStore() */
  store?: OutboxStore;
  /** Handshake deadline in ms. @default 10000 */
  connectTimeout?: number;
  /**
   * Reconnection after the link drops, when the peer was created from a transport factory (as
   * `connect(url)` does). `false` turns it off. See {@link ReconnectOptions}.
   */
  reconnect?: ReconnectOptions | false;
  /**
   * A sent message neither acked nor held by the relay after this many ms is sent again (from
   * the oldest unacked one, in order): it covers frames lost on the far side of the relay. While
   * the relay holds the oldest, only that one is sent again, once per period, as a probe.
   * @default 10000
   */
  ackTimeout?: number;
  /**
   * Direct links: under `'auto'`, traffic between two named peers that both have a
   * `directConnector` moves to a direct channel, and back to the relay if it fails (nothing
   * lost, duplicated or reordered). `@missive/browser` defaults to `'auto'` and passes its
   * connector. @default 'never' in @missive/core
   */
  direct?: 'auto' | 'never';
  /**
   * Lets the relay's admin channel (the devtools) inspect this peer: its mailboxes with their
   * first messages, outbox, handlers, subscriptions, tunnels and links, and purge a mailbox.
   * `{ bodies: false }` answers with stats and message headers only, never a body. Only the
   * relay can ask (docs/devtools.md). @default false
   */
  inspect?: boolean | InspectOptions;
  /** Opens direct channels (WebRTC). Without one, this peer stays on the relay. */
  directConnector?: DirectConnector;
  /** Timeouts and bounds of direct links; see {@link DirectOptions} for the defaults. */
  directOptions?: Partial<DirectOptions>;
}

/**
 * Reconnection backoff: attempt n waits a random time between 0 and
 * min(maxDelay, initialDelay × factor^(n−1)) ("full jitter"), so peers cut off together do not
 * all return at once.
 */
export interface ReconnectOptions {
  /** @default 100 */
  initialDelay?: number;
  /** @default 10000 */
  maxDelay?: number;
  /** @default 2 */
  factor?: number;
  /** Give up (and close the peer) after this many failed attempts in a row. @default Infinity */
  maxAttempts?: number;
}

/** Makes a fresh transport to the relay, for the first connection and each reconnection. */
export type TransportFactory = () => Promise<Transport>;

/** Metadata passed to request handlers. */
export interface RequestContext {
  /** Requester's name or id. */
  from: string;
  /** The address the request was sent to. */
  to: string;
  /** Aborted at the requester's deadline or when the link closes. */
  signal: AbortSignal;
  /** The requester's deadline, ms since the epoch. */
  deadline: number;
}

/** Metadata passed to subscription handlers. */
export interface PublishMeta {
  topic: string;
  from: string;
}

export interface RequestOptions {
  /** Deadline in ms. @default the peer's requestTimeout (10000) */
  timeout?: number;
  signal?: AbortSignal;
  /**
   * For idempotent requests: if the link drops before the reply, send it again after
   * reconnecting (within the deadline) instead of rejecting with CLOSED. @default false
   */
  retry?: boolean;
}

export interface SendOptions {
  /** Resolves only once the message is acked by the receiver, instead of once queued. */
  waitForDelivery?: boolean;
}

/** A live subscription. */
export interface Subscription {
  readonly pattern: string;
  /** Resolves once the relay has the subscription (publishes after that are seen). */
  readonly ready: Promise<void>;
  unsubscribe(): void;
}

export interface PeerInfo {
  name: string;
  id: string;
}

export interface PeerEvents {
  /** The receiver acked a `send`. Fires once per message. */
  delivered: { id: string; to: string };
  /** A `send` was settled without delivery (no such peer or mailbox); it left the outbox. */
  undeliverable: { id: string; to: string; error: MissiveError };
  'peer-join': PeerInfo;
  'peer-leave': PeerInfo;
  trace: TraceEvent;
  /** An asynchronous failure with no caller to reject: a refused publish, a throwing subscriber. */
  error: Error;
  /** The link closed. `error` says why when it was not this peer's own `close()`. */
  close: { code: number; reason: string; error?: Error };
  /** The transport's buffer fell back below its high-water mark (see `bufferedAmount`). */
  drain: undefined;
  /**
   * The relay gave up holding these sends for an offline peer (its hold expired or was full):
   * they left the outbox undelivered.
   */
  expired: { ids: string[] };
  /** The link dropped; the peer is reconnecting (sends wait in the outbox). */
  disconnected: { code: number; reason: string; error?: Error };
  /** A reconnection attempt is scheduled after `delay` ms. */
  reconnecting: { attempt: number; delay: number };
  /**
   * The link is back and the name re-claimed; group joins, subscriptions, the presence watch and
   * the unacked outbox have been sent again (the relay confirms them a round trip later).
   */
  reconnected: { attempt: number; id: string };
  /** Traffic to a peer changed path: upgraded to a direct link, or back to the relay (with why). */
  link: LinkEvent;
}

/** The path traffic to a peer takes: through the relay, or over a direct (WebRTC) link. */
export type LinkKind = 'relay' | 'direct';

/** What the `link` event carries. */
export interface LinkEvent {
  /** The other peer. */
  name: string;
  link: LinkKind;
  /** Why traffic returned to the relay (absent on an upgrade). */
  reason?: string;
}

/** A request handler: its return value (or what its promise resolves to) is the reply. */
export type Handler<B, R> = (body: B, ctx: RequestContext) => R | Promise<R>;

/** Handles an accepted tunnel. Throw at once to refuse it. */
export type TunnelHandler<T = Uint8Array> = (tunnel: Tunnel<T>) => void | Promise<void>;

/** What an inspectable peer shows the relay's admin channel. */
export interface InspectOptions {
  /** Include message bodies in peeked mailboxes (when the admin may see them). @default true */
  bodies?: boolean;
}
