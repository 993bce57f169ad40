/**
 * A Peer is one endpoint: it talks to a Router over any Transport. Its API is the same in Node
 * and the browser and over every transport.
 */
import { decode as msgpackDecode } from '@msgpack/msgpack';
import { checkAddress, checkName, DEFAULT_PORT, splitAddress } from './address.js';
import { codecFlag, decodeBody, encodeBody, type CodecName } from './codec/body.js';
import { AckStatus, BodyCodec, EMPTY_BODY, frame, Kind, kindName, PresenceEvent, type Frame, type FrameOf } from './codec/frames.js';
import { DEFAULT_MAX_FRAME, type Connection } from './connection.js';
import { openLink, type HelloFields, type Link } from './link.js';
import { Emitter } from './emitter.js';
import {
  ClosedError,
  ErrorCode,
  errorFromCode,
  errorFromWire,
  handlerCode,
  LimitError,
  messageOf,
  MissiveError,
  NoRouteError,
  ProtocolError,
  remoteWireCode,
  TimeoutError,
  WireCode,
} from './errors.js';
import { randomHex, randomStart } from './store/ids.js';
import { DEFAULT_MAILBOX_CAPACITY, Mailbox, type Message } from './mailbox.js';
import { MemoryStore, type OutboxEntry, type OutboxStore } from './outbox.js';
import { checkPattern, checkTopic, matchTopic } from './topics.js';
import type { TraceEvent } from './trace.js';
import { Tunnel, type TunnelOpenOptions, type TunnelOptions, type TunnelWire } from './tunnel.js';
import type { CloseInfo, Transport } from './transport/transport.js';
import { CloseCode } from './transport/transport.js';

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
}

type Handler<B, R> = (body: B, ctx: RequestContext) => R | Promise<R>;

/** Handles an accepted tunnel. Throw at once to refuse it. */
export type TunnelHandler<T = Uint8Array> = (tunnel: Tunnel<T>) => void | Promise<void>;

interface PendingRequest {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timer: ReturnType<typeof setTimeout>;
  cleanup(): void;
  /** Sent again after a reconnection instead of failing with CLOSED. */
  retry: boolean;
  /** Whether it went out on the current link. */
  sent: boolean;
  to: string;
  timeout: number;
  deadline: number;
  /** The encoded body (a copy: it may be sent again later). */
  body: Uint8Array;
  flags: number;
}

interface Control {
  resolve(body: Uint8Array, flags: number): void;
  reject(err: Error): void;
}

interface DestQueue {
  /** Unacked entries in seq order. */
  entries: OutboxEntry[];
  /** How many leading entries were transmitted in the current round. */
  sent: number;
  /** Set while waiting to retransmit after a refusal. */
  retry: ReturnType<typeof setTimeout> | undefined;
  backoff: number;
  /** When the oldest unacked entry was last sent, or an ack last made progress. */
  progressAt: number;
}

interface SubEntry {
  subs: Set<LocalSub>;
  ready: Promise<void>;
}

interface LocalSub {
  pattern: string;
  handler: (body: unknown, meta: PublishMeta) => void;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

const RETRY_MIN = 20;
/** setTimeout's largest delay (about 24.8 days); longer deadlines are clamped to it. */
const MAX_TIMEOUT = 0x7fffffff;
const RETRY_MAX = 1000;
/** Receiver dedup streams remembered in memory (oldest forgotten first). */
const MAX_DEDUP_STREAMS = 10_000;

/**
 * Connects a Peer to a Router: sends HELLO and resolves after WELCOME. Given a transport, the
 * peer lives as long as it; given a factory, it reconnects when the link drops (see
 * `PeerOptions.reconnect`). The first connection is not retried: it rejects with AuthError,
 * NameTakenError, LimitError, ProtocolError, TimeoutError or ClosedError (with the cause), after
 * closing `options.store` (so a retry can open the same store again).
 */
export function createPeer(source: Transport | TransportFactory, options: PeerOptions = {}): Promise<Peer> {
  return Peer.connect(source, options);
}

/** Close reasons after which reconnecting cannot help. */
const FATAL_BYE = new Set<string>([ErrorCode.AUTH, ErrorCode.NAME_TAKEN, ErrorCode.PROTOCOL]);

interface Registration {
  build(ref: number): Frame;
  done: boolean;
  waiters: Waiter[];
  /** Called when the relay refuses it for good (AUTH, PROTOCOL). */
  refused?: () => void;
}

export class Peer extends Emitter<PeerEvents> {
  #id = '';
  #name: string | undefined;
  #namespace = '';
  #conn!: Connection;
  readonly #factory: TransportFactory | undefined;
  readonly #reconnect: Required<ReconnectOptions> | undefined;
  readonly #hello: HelloFields;
  #reconnecting = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** A transport being connected during a reconnection, closed if the peer closes first. */
  #dialing: Transport | undefined;
  readonly #ackTimer: ReturnType<typeof setInterval>;
  readonly #codec: BodyCodec;
  readonly #opts: Required<Omit<PeerOptions, 'name' | 'namespace' | 'secret' | 'token' | 'store' | 'codec' | 'reconnect'>>;
  readonly #store: OutboxStore;
  readonly #origin: string;
  readonly #mailboxes = new Map<string, Mailbox>();
  readonly #handlers = new Map<string, Handler<unknown, unknown>>();
  readonly #pending = new Map<number, PendingRequest>();
  readonly #controls = new Map<number, Control>();
  /** Subscriptions, groups and presence watching: re-sent on every (re)connection. */
  readonly #regs = new Map<string, Registration>();
  /** Msg refs in flight → entry, and back. An entry keeps one ref across retransmissions. */
  readonly #msgRefs = new Map<number, OutboxEntry>();
  readonly #refOf = new Map<OutboxEntry, number>();
  /** Entries the relay holds for an offline receiver: on ack timeout only the oldest is probed. */
  readonly #held = new Set<OutboxEntry>();
  #expiredIds: string[] = [];
  readonly #dests = new Map<string, DestQueue>();
  readonly #seqs: Map<string, number>;
  readonly #dedup: Map<string, number>;
  readonly #subs = new Map<string, SubEntry>();
  /** Topic → matching entries of #subs; cleared whenever #subs changes. */
  readonly #matchCache = new Map<string, SubEntry[]>();
  readonly #deliveryWaiters = new Map<string, Waiter>();
  readonly #handling = new Set<HandlerContext>();
  /** Tunnels by `o:tid` (opened here) or `a:remote:tid` (accepted here). */
  readonly #tunnels = new Map<string, Tunnel<unknown>>();
  readonly #tunnelHandlers = new Map<string, { handler: TunnelHandler<never>; options: TunnelOptions }>();
  /** Tunnels opened here waiting for TACCEPT. */
  readonly #opening = new Map<number, { resolve(): void; reject(err: Error): void }>();
  #nextTid = 1;
  /** The relay's frame limit, from WELCOME: tunnel chunks are kept under it. */
  #maxFrame = DEFAULT_MAX_FRAME;
  #outboxSize = 0;
  #nextRef = 1;
  // Request ids start at a random point: if this peer's name reconnects as a new session, a late
  // reply to the old session's request cannot match a new request with the same id.
  #nextReq = 1 + randomStart();
  #nextBcast = 0;
  #closed: ClosedError | undefined;

  private constructor(
    options: PeerOptions,
    store: OutboxStore,
    state: { origin: string; entries: OutboxEntry[]; seqs: Map<string, number>; dedup: Map<string, number> },
    hello: HelloFields,
    factory: TransportFactory | undefined,
  ) {
    super();
    this.#codec = codecFlag(options.codec ?? 'msgpack');
    this.#opts = {
      mailboxCapacity: options.mailboxCapacity ?? DEFAULT_MAILBOX_CAPACITY,
      requestTimeout: options.requestTimeout ?? 10_000,
      maxPendingRequests: options.maxPendingRequests ?? 10_000,
      outboxCapacity: options.outboxCapacity ?? 10_000,
      sendWindow: options.sendWindow ?? 512,
      connectTimeout: options.connectTimeout ?? 10_000,
      ackTimeout: options.ackTimeout ?? 10_000,
    };
    this.#hello = hello;
    this.#factory = factory;
    this.#reconnect =
      factory && options.reconnect !== false
        ? { initialDelay: 100, maxDelay: 10_000, factor: 2, maxAttempts: Number.POSITIVE_INFINITY, ...options.reconnect }
        : undefined;
    this.#store = store;
    this.#origin = state.origin;
    this.#seqs = state.seqs;
    this.#dedup = state.dedup;
    this.#mailboxes.set(DEFAULT_PORT, new Mailbox(DEFAULT_PORT, this.#opts.mailboxCapacity));
    for (const e of state.entries) this.#enqueue(e);
    // Restored entries count against the outbox like new ones (each ack decrements it).
    this.#outboxSize = state.entries.length;
    this.#ackTimer = setInterval(() => this.#checkAcks(), Math.max(50, Math.min(1000, this.#opts.ackTimeout / 4)));
  }

  /** See {@link createPeer}. */
  static async connect(source: Transport | TransportFactory, options: PeerOptions = {}): Promise<Peer> {
    const factory = typeof source === 'function' ? source : undefined;
    if (options.name !== undefined) {
      const bad = checkName(options.name);
      if (bad) {
        if (!factory) (source as Transport).close({ code: CloseCode.NORMAL, reason: 'invalid name' });
        throw new TypeError(bad);
      }
    }
    const store = options.store ?? new MemoryStore();
    const state = await store.open();
    const hello: HelloFields = {
      name: options.name ?? '',
      namespace: options.namespace ?? '',
      secret: options.secret ?? '',
      token: options.token ?? '',
      // Proves to the relay, on reconnection, that this is the same peer as the old link.
      session: randomHex(16),
    };
    let link: Link;
    try {
      const transport = factory ? await factory() : (source as Transport);
      link = await openLink(transport, hello, options.connectTimeout ?? 10_000);
    } catch (err) {
      // No peer came to be: release the store (a FileStore's lock), so a retry can open it again.
      await store.close().catch(() => {});
      throw err;
    }
    const peer = new Peer(options, store, state, hello, factory);
    peer.#attach(link);
    return peer;
  }

  /** Relay-assigned id, unique in the relay; it changes when the peer reconnects. */
  get id(): string {
    return this.#id;
  }

  /** The name, if the peer has one. */
  get name(): string | undefined {
    return this.#name;
  }

  get namespace(): string {
    return this.#namespace;
  }

  /** Takes a freshly handshaken link into use and restores what the relay must know. */
  #attach(link: Link): void {
    this.#conn = link.conn;
    this.#id = link.welcome.id;
    this.#name = link.welcome.name || undefined;
    this.#namespace = link.welcome.namespace;
    this.#maxFrame = link.welcome.maxFrame;
    link.attach({
      frame: (f) => this.#onFrame(f),
      protocolError: (err) => this.#protocolError(err),
      drain: () => {
        for (const t of this.#tunnels.values()) t.onDrain();
        this.emit('drain', undefined);
      },
      close: (info, bye) => this.#onLinkClose(link.conn, info, bye),
    });
    for (const [key, reg] of this.#regs) this.#sendRegistration(key, reg);
    for (const [id, p] of this.#pending) if (!p.sent) this.#sendRequest(id, p);
    this.#held.clear();
    for (const q of this.#dests.values()) q.sent = 0;
    this.#resendAll();
  }

  #onLinkClose(conn: Connection, info: CloseInfo, bye: { code: string; message: string } | undefined): void {
    if (conn !== this.#conn) return; // an older link, already replaced
    const why = bye ? `${bye.code}: ${bye.message}` : info.reason || `code ${info.code}`;
    const error = new ClosedError(`link closed (${why})`, { cause: info.error });
    // Refused credentials, a broken protocol, an oversized frame or a newer session of this very
    // peer: reconnecting would only repeat it.
    const fatal = (bye !== undefined && FATAL_BYE.has(bye.code)) || info.code === CloseCode.REPLACED || info.code === CloseCode.TOO_BIG;
    if (this.#closed || !this.#reconnect || fatal) {
      this.#shutdown(this.#closed ?? (bye && FATAL_BYE.has(bye.code) ? errorFromCode(bye.code, bye.message) : error), info);
      return;
    }
    this.#linkLost(error, info);
  }

  /** The link dropped but the peer lives: fail what cannot survive, keep the rest, reconnect. */
  #linkLost(error: ClosedError, info: CloseInfo): void {
    this.#reconnecting = true;
    const e: PeerEvents['disconnected'] = { code: info.code, reason: info.reason };
    if (info.error) e.error = info.error;
    this.emit('disconnected', e);
    for (const [, p] of [...this.#pending]) {
      if (p.retry) p.sent = false;
      else {
        p.cleanup();
        p.reject(new ClosedError(`link closed before the reply came: ${error.message}`, { cause: error }));
      }
    }
    for (const c of [...this.#controls.values()]) c.reject(new ClosedError(error.message, { cause: error }));
    this.#controls.clear();
    for (const ctx of this.#handling) ctx.abort(error);
    this.#failTunnels(error);
    this.#redial(1);
  }

  #redial(attempt: number): void {
    const r = this.#reconnect!;
    if (attempt > r.maxAttempts) {
      this.#shutdown(new ClosedError(`gave up reconnecting after ${r.maxAttempts} attempts`), { code: CloseCode.ABNORMAL, reason: 'reconnection failed' });
      return;
    }
    const ceiling = Math.min(r.maxDelay, r.initialDelay * r.factor ** (attempt - 1));
    const delay = Math.random() * ceiling;
    // Armed before the event, so a listener that calls close() clears it.
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#dial(attempt);
    }, delay);
    this.emit('reconnecting', { attempt, delay });
  }

  async #dial(attempt: number): Promise<void> {
    if (this.#closed) return;
    let link: Link;
    try {
      const transport = await this.#factory!();
      if (this.#closed) return transport.close({ code: CloseCode.NORMAL, reason: 'peer closed' });
      this.#dialing = transport;
      link = await openLink(transport, this.#hello, this.#opts.connectTimeout);
    } catch (err) {
      this.#dialing = undefined;
      if (this.#closed) return;
      const code = (err as { code?: string }).code;
      if (code !== undefined && FATAL_BYE.has(code)) {
        this.#shutdown(err as ClosedError, { code: CloseCode.ABNORMAL, reason: `reconnection refused: ${(err as Error).message}` });
        return;
      }
      return this.#redial(attempt + 1);
    }
    this.#dialing = undefined;
    if (this.#closed) return link.conn.close(CloseCode.NORMAL, 'peer closed');
    this.#reconnecting = false;
    this.#attach(link);
    this.emit('reconnected', { attempt, id: this.#id });
  }

  /** Whether the link is up (false while reconnecting). */
  get connected(): boolean {
    return this.#closed === undefined && !this.#reconnecting && this.#conn.open;
  }

  /**
   * Bytes written but not yet taken by the transport (this tick's batch plus the transport's
   * buffer). Producers of best-effort traffic (`publish`, `broadcast`) can pause above their
   * own bound and resume on the `drain` event.
   */
  get bufferedAmount(): number {
    return this.#conn.bufferedAmount;
  }

  /** Unacknowledged messages in the outbox. */
  get outboxSize(): number {
    return this.#outboxSize;
  }

  // ---- mailboxes and send -------------------------------------------------------------------

  /**
   * The mailbox for `port` (default `inbox`), created on first use. Messages to a port whose
   * mailbox was never opened are refused with NO_ROUTE, except `inbox`, which always exists.
   */
  mailbox<T = unknown>(port: string = DEFAULT_PORT, options: { capacity?: number } = {}): Mailbox<T> {
    let m = this.#mailboxes.get(port);
    if (!m) {
      m = new Mailbox(port, options.capacity ?? this.#opts.mailboxCapacity);
      if (this.#closed) m.close(this.#closed);
      this.#mailboxes.set(port, m);
    }
    return m as Mailbox<T>;
  }

  /** Waits for the next message in the `inbox` mailbox. Shorthand for `mailbox().receive(options)`. */
  receive<T = unknown>(options?: Parameters<Mailbox<T>['receive']>[0]): Promise<Message<T>> {
    return this.mailbox<T>().receive(options);
  }

  /**
   * Sends a message to a named peer's mailbox (`name` or `name/port`). Resolves with the message
   * id once it is queued in the outbox; `delivered` fires when the receiver acks it. Rejects with
   * LIMIT when the outbox is full, CLOSED after `close()`, TypeError for a bad address or body.
   */
  async send(to: string, body: unknown, options: SendOptions = {}): Promise<string> {
    if (this.#closed) throw new ClosedError('peer is closed', { cause: this.#closed });
    const bad = checkAddress(to);
    if (bad) throw new TypeError(bad);
    if (this.#outboxSize >= this.#opts.outboxCapacity) {
      throw new LimitError(`outbox full (${this.#opts.outboxCapacity} unacknowledged messages)`);
    }
    // Not transient: the outbox keeps its own bytes, sent again after a LIMIT nack or a
    // reconnect, when the caller may have reused a Uint8Array.
    const { bytes, codec } = encodeBody(body, this.#codec);
    const dest = splitAddress(to).name;
    const seq = (this.#seqs.get(dest) ?? 0) + 1;
    this.#seqs.set(dest, seq);
    const entry: OutboxEntry = { id: `${this.#origin}:${seq}:${dest}`, to, dest, seq, sentAt: Date.now(), body: bytes, flags: codec };
    this.#outboxSize++;
    const delivered = options.waitForDelivery ? this.#waitDelivery(entry.id) : undefined;
    // Awaited below; until then (the store may take a while) a rejection is not unhandled.
    delivered?.catch(() => {});
    try {
      await this.#store.append(entry);
    } catch (err) {
      // Give the sequence number back if no later send took one (else `base` closes the gap).
      if (this.#seqs.get(dest) === seq) this.#seqs.set(dest, seq - 1);
      this.#outboxSize--;
      this.#deliveryWaiters.delete(entry.id);
      throw err;
    }
    this.#enqueue(entry);
    this.#pump(dest);
    if (delivered) await delivered;
    return entry.id;
  }

  #waitDelivery(id: string): Promise<void> {
    return new Promise<void>((resolve, reject) => this.#deliveryWaiters.set(id, { resolve, reject }));
  }

  #enqueue(entry: OutboxEntry): void {
    let q = this.#dests.get(entry.dest);
    if (!q) this.#dests.set(entry.dest, (q = { entries: [], sent: 0, retry: undefined, backoff: RETRY_MIN, progressAt: Date.now() }));
    q.entries.push(entry);
  }

  /** Transmits entries for `dest` up to the window. */
  #pump(dest: string): void {
    const q = this.#dests.get(dest);
    if (!q || q.retry !== undefined || !this.connected) return;
    const limit = Math.min(q.entries.length, this.#opts.sendWindow);
    if (q.sent === 0 && limit > 0) q.progressAt = Date.now();
    while (q.sent < limit) this.#transmit(q.entries[q.sent++]!, q.entries[0]!.seq);
  }

  #transmit(e: OutboxEntry, base: number): void {
    let ref = this.#refOf.get(e);
    if (ref === undefined) {
      ref = this.#nextRef++;
      this.#refOf.set(e, ref);
      this.#msgRefs.set(ref, e);
    }
    // Outbox bodies are the outbox's own (copied at send, or read back from a store): stable.
    this.#conn.write(frame(Kind.Msg, { ref, to: e.to, from: '', origin: this.#origin, seq: e.seq, base, sentAt: e.sentAt }, e.body, e.flags), true);
    if (this.listens('trace')) this.emit('trace', { type: 'send', kind: 'Msg', id: e.id, to: e.to, size: e.body.length, at: Date.now() });
  }

  #resendAll(): void {
    for (const dest of this.#dests.keys()) this.#pump(dest);
  }

  /** Removes an entry from the outbox (acked or settled). Returns false if it was not there. */
  #settle(dest: string, seq: number): OutboxEntry | undefined {
    const q = this.#dests.get(dest);
    if (!q) return undefined;
    // Acks nearly always settle the oldest entry: shift() is O(1) there, unlike splice.
    const i = q.entries[0]?.seq === seq ? 0 : q.entries.findIndex((e) => e.seq === seq);
    if (i < 0) return undefined;
    const e = i === 0 ? q.entries.shift() : q.entries.splice(i, 1)[0];
    if (i < q.sent) q.sent--;
    this.#held.delete(e!);
    const ref = this.#refOf.get(e!);
    if (ref !== undefined) {
      this.#refOf.delete(e!);
      this.#msgRefs.delete(ref);
    }
    if (q.entries.length === 0 && q.retry === undefined) this.#dests.delete(dest);
    this.#outboxSize--;
    void this.#store.ack(e!.id).catch((err: unknown) => this.#emitError(err));
    return e;
  }

  #onAck(f: FrameOf<typeof Kind.Ack>): void {
    if (f.origin !== this.#origin) return;
    // The relay stamps an ack's `from` as the peer that sent it (in the form of `dest`, by name
    // or id), or as `dest` when the relay itself answers for it (held, expired). Any other ack
    // was not sent by the destination: a third peer must not settle messages it never received.
    if (f.from !== f.dest) return this.#drop('Ack', f, 'NOT_DESTINATION');
    const dest = this.#destOf(f);
    if (dest === undefined) return; // a duplicate ack: the message was already settled
    if (f.status === AckStatus.Ok) {
      // The receiver acked what the relay said it held: the hold was flushed to it, so nothing
      // else of this stream is held any more (ack timeout must cover it again, in case the
      // flush went into a link that died).
      if (this.#held.size > 0) {
        const entries = this.#dests.get(dest)!.entries;
        const acked = entries.find((x) => x.seq === f.seq);
        if (acked && this.#held.has(acked)) for (const x of entries) this.#held.delete(x);
      }
      const e = this.#settle(dest, f.seq);
      if (!e) return;
      const q = this.#dests.get(dest);
      if (q) {
        q.backoff = RETRY_MIN;
        q.progressAt = Date.now();
      }
      if (this.listens('trace')) this.emit('trace', { type: 'ack', kind: 'Ack', id: e.id, from: f.from, to: e.to, at: Date.now() });
      this.emit('delivered', { id: e.id, to: e.to });
      this.#deliveryWaiters.get(e.id)?.resolve();
      this.#deliveryWaiters.delete(e.id);
      this.#pump(dest);
    } else if (f.status === AckStatus.NoRoute) {
      const e = this.#settle(dest, f.seq);
      if (e) this.#undeliverable(e, new NoRouteError(`no mailbox "${splitAddress(e.to).port}" on "${e.dest}"`));
    } else if (f.status === AckStatus.Held) {
      // The relay keeps it for the offline receiver: not sent again on ack timeout, only probed.
      const e = this.#dests.get(dest)?.entries.find((x) => x.seq === f.seq);
      if (e) this.#held.add(e);
    } else if (f.status === AckStatus.Expired) {
      const e = this.#settle(dest, f.seq);
      if (e) this.#expire(e);
    } else {
      // LIMIT (mailbox full) or GAP (an earlier message was refused): retransmit in order later.
      this.#rewind(dest);
    }
  }

  /** The destination queue an ack belongs to: the ack names it (`dest`, as we addressed it). */
  #destOf(f: FrameOf<typeof Kind.Ack>): string | undefined {
    const q = this.#dests.get(f.dest);
    if (!q) return undefined;
    // Nearly always the oldest entry; otherwise a stale ack for an entry settled earlier.
    return q.entries[0]?.seq === f.seq || q.entries.some((e) => e.seq === f.seq) ? f.dest : undefined;
  }

  #rewind(dest: string): void {
    const q = this.#dests.get(dest);
    if (!q || q.retry !== undefined) return;
    q.sent = 0;
    const delay = q.backoff;
    q.backoff = Math.min(q.backoff * 2, RETRY_MAX);
    q.retry = setTimeout(() => {
      q.retry = undefined;
      if (q.entries.length === 0) this.#dests.delete(dest);
      else this.#pump(dest);
    }, delay);
  }

  /** Reports expired entries in one `expired` event per tick. */
  #expire(e: OutboxEntry): void {
    if (this.listens('trace')) this.emit('trace', { type: 'drop', kind: 'Msg', id: e.id, to: e.to, reason: 'EXPIRED', at: Date.now() });
    this.#deliveryWaiters.get(e.id)?.reject(new NoRouteError(`the relay's hold for "${e.dest}" expired before it connected`));
    this.#deliveryWaiters.delete(e.id);
    if (this.#expiredIds.push(e.id) === 1) {
      queueMicrotask(() => {
        const ids = this.#expiredIds;
        this.#expiredIds = [];
        this.emit('expired', { ids });
      });
    }
    this.#pump(e.dest);
  }

  /**
   * Sends again, in order, what has waited too long for an ack. If the relay holds the oldest,
   * only that one is sent again: while still held the relay answers HELD once more; if the hold
   * was flushed into a link that died before the receiver read it, this probe reaches the
   * receiver, whose ack clears the stream's other held marks (see #onAck), so the next timeout
   * resends them.
   */
  #checkAcks(): void {
    if (!this.connected) return;
    const now = Date.now();
    for (const [dest, q] of this.#dests) {
      const oldest = q.entries[0];
      if (q.sent === 0 || q.retry !== undefined || !oldest) continue;
      if (now - q.progressAt >= this.#opts.ackTimeout) {
        q.progressAt = now;
        if (this.#held.has(oldest)) this.#transmit(oldest, oldest.seq);
        else this.#rewind(dest);
      }
    }
  }

  #undeliverable(e: OutboxEntry, error: MissiveError): void {
    if (this.listens('trace')) this.emit('trace', { type: 'drop', kind: 'Msg', id: e.id, to: e.to, reason: error.code, at: Date.now() });
    this.emit('undeliverable', { id: e.id, to: e.to, error });
    this.#deliveryWaiters.get(e.id)?.reject(error);
    this.#deliveryWaiters.delete(e.id);
    this.#pump(e.dest);
  }

  #onMsg(f: FrameOf<typeof Kind.Msg>): void {
    const { name: dest, port } = splitAddress(f.to);
    const ack = (status: number): void => {
      this.#conn.write(frame(Kind.Ack, { to: f.from, from: '', dest, origin: f.origin, seq: f.seq, status }));
    };
    const key = `${f.origin}\u0000${dest}`;
    // The sender says every sequence number below `base` is settled, so a stream we have no
    // state for (or whose gap was abandoned) restarts at `base`.
    const hwm = Math.max(this.#dedup.get(key) ?? 0, f.base - 1);
    if (f.seq <= (this.#dedup.get(key) ?? 0)) return ack(AckStatus.Ok); // duplicate: ack again, deliver nothing
    if (f.seq !== hwm + 1) return ack(AckStatus.Gap);
    const mailbox = this.#mailboxes.get(port);
    if (!mailbox) {
      this.#drop('Msg', f, 'NO_ROUTE');
      return ack(AckStatus.NoRoute);
    }
    let body: unknown;
    try {
      body = decodeBody(f.body, f.flags);
    } catch (err) {
      // An undecodable body can never be delivered: settle it so the stream does not stall.
      this.#emitError(err);
      this.#remember(key, f.seq);
      return ack(AckStatus.NoRoute);
    }
    const msg: Message = { id: `${f.origin}:${f.seq}:${dest}`, from: f.from, to: f.to, body, sentAt: f.sentAt };
    if (!mailbox.offer(msg)) {
      this.#drop('Msg', f, 'LIMIT');
      return ack(AckStatus.Limit);
    }
    this.#remember(key, f.seq);
    if (this.listens('trace')) this.emit('trace', { type: 'receive', kind: 'Msg', id: msg.id, from: f.from, to: f.to, size: f.body.length, at: Date.now() });
    void this.#store.setDedup(key, f.seq).then(
      () => ack(AckStatus.Ok),
      (err: unknown) => this.#emitError(err),
    );
  }

  #remember(key: string, seq: number): void {
    const d = this.#dedup;
    d.delete(key);
    d.set(key, seq);
    if (d.size > MAX_DEDUP_STREAMS) d.delete(d.keys().next().value!);
  }

  // ---- request / reply ----------------------------------------------------------------------

  /**
   * Registers the handler for requests to `port` on this peer (replaces any earlier one).
   * Its return value is the reply; if it throws, the requester gets a RemoteError carrying the
   * thrown error's `code` (a string) and message. Returns a function that removes the handler.
   */
  handle<B = unknown, R = unknown>(port: string, handler: Handler<B, R>): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    this.#handlers.set(port, handler as Handler<unknown, unknown>);
    return () => {
      if (this.#handlers.get(port) === (handler as Handler<unknown, unknown>)) this.#handlers.delete(port);
    };
  }

  /**
   * Sends a request to `name/port` (a peer, or one member of a group) and resolves with the
   * reply. Rejects with TimeoutError, ClosedError, NoRouteError, RemoteError or LimitError.
   */
  request<R = unknown>(address: string, body?: unknown, options: RequestOptions = {}): Promise<R> {
    const timeout = Math.min(options.timeout ?? this.#opts.requestTimeout, MAX_TIMEOUT);
    if (this.#closed) return Promise.reject(new ClosedError('peer is closed', { cause: this.#closed }));
    const bad = checkAddress(address);
    if (bad) return Promise.reject(new TypeError(bad));
    if (!Number.isFinite(timeout) || timeout <= 0) return Promise.reject(new TypeError('timeout must be a positive number of ms'));
    if (this.#pending.size >= this.#opts.maxPendingRequests) {
      return Promise.reject(new LimitError(`${this.#opts.maxPendingRequests} requests already pending`));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const retry = options.retry === true;
    if (this.#reconnecting && !retry) {
      return Promise.reject(new ClosedError('the link is down (reconnecting); pass { retry: true } to send it once it is back'));
    }
    let encoded: ReturnType<typeof encodeBody>;
    try {
      // A retried request keeps its own copy of the body (it may be written again after the
      // caller has reused a Uint8Array); others are written out at once.
      encoded = encodeBody(body, this.#codec, !retry);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.#nextReq++;
    return new Promise<R>((resolve, reject) => {
      const onAbort = (): void => {
        p.cleanup();
        reject(signal!.reason);
      };
      const p: PendingRequest = {
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => {
          p.cleanup();
          // Made when the deadline passes, not up front: capturing a stack costs ~8 µs, a
          // request's whole budget at c=1 is a few hundred. The message names the request.
          reject(new TimeoutError(`request to ${address} got no reply within ${timeout} ms`));
        }, timeout),
        cleanup: () => {
          clearTimeout(p.timer);
          signal?.removeEventListener('abort', onAbort);
          this.#pending.delete(id);
        },
        retry,
        sent: false,
        to: address,
        timeout,
        deadline: Date.now() + timeout,
        body: encoded.bytes,
        flags: encoded.codec,
      };
      this.#pending.set(id, p);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (!this.#reconnecting) this.#sendRequest(id, p);
    });
  }

  #sendRequest(id: number, p: PendingRequest): void {
    p.sent = true;
    // A retried request tells the responder only the time it has left.
    const timeout = Math.max(1, p.deadline - Date.now());
    this.#conn.write(frame(Kind.Req, { to: p.to, from: '', id, timeout }, p.body, p.flags));
    if (this.listens('trace')) this.emit('trace', { type: 'send', kind: 'Req', id: String(id), to: p.to, size: p.body.length, at: Date.now() });
  }

  #onRep(f: FrameOf<typeof Kind.Rep>): void {
    const p = this.#pending.get(f.id);
    if (!p) return; // timed out or aborted already
    p.cleanup();
    if (this.listens('trace')) this.emit('trace', { type: 'receive', kind: 'Rep', id: String(f.id), from: f.from, size: f.body.length, at: Date.now() });
    if (f.code === '') {
      try {
        p.resolve(decodeBody(f.body, f.flags));
      } catch (err) {
        p.reject(err);
      }
    } else {
      p.reject(errorFromWire(f.code, f.message));
    }
  }

  async #onReq(f: FrameOf<typeof Kind.Req>): Promise<void> {
    const port = splitAddress(f.to).port;
    const reply = (code: string, message: string, value?: unknown): void => {
      let bytes: Uint8Array;
      let codec: number;
      try {
        ({ bytes, codec } = encodeBody(value, this.#codec, true));
      } catch (err) {
        code = remoteWireCode(err, 'ENCODE');
        message = `reply could not be encoded: ${messageOf(err)}`;
        bytes = new Uint8Array(0);
        codec = BodyCodec.None;
      }
      this.#conn.write(frame(Kind.Rep, { to: f.from, from: '', id: f.id, code, message }, bytes, codec));
    };
    const handler = this.#handlers.get(port);
    if (!handler) {
      this.#drop('Req', f, 'NO_ROUTE');
      return reply(ErrorCode.NO_ROUTE, `no handler for "${port}" on ${this.name ?? this.id}`);
    }
    const ctx = new HandlerContext(f.from, f.to, Date.now() + Math.min(f.timeout, MAX_TIMEOUT));
    this.#handling.add(ctx);
    try {
      const body = decodeBody(f.body, f.flags);
      if (this.listens('trace')) this.emit('trace', { type: 'receive', kind: 'Req', id: String(f.id), from: f.from, to: f.to, size: f.body.length, at: Date.now() });
      const result = await handler(body, ctx);
      if (ctx.live()) reply('', '', result);
    } catch (err) {
      if (!ctx.live()) return;
      reply(remoteWireCode(err, err instanceof ProtocolError ? 'BAD_BODY' : handlerCode(err)), messageOf(err));
    } finally {
      ctx.done();
      this.#handling.delete(ctx);
    }
  }

  // ---- tunnels ------------------------------------------------------------------------------

  /**
   * Accepts tunnels opened to this peer with `protocol`. The handler gets each open tunnel; if
   * it throws at once, the opener's `tunnel()` rejects with REMOTE (its code); if its promise
   * rejects later, the tunnel is aborted with that reason. Returns a function that removes it.
   */
  onTunnel<T = Uint8Array>(protocol: string, handler: TunnelHandler<T>, options: TunnelOptions = {}): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const entry = { handler: handler as TunnelHandler<never>, options };
    this.#tunnelHandlers.set(protocol, entry);
    return () => {
      if (this.#tunnelHandlers.get(protocol) === entry) this.#tunnelHandlers.delete(protocol);
    };
  }

  /**
   * Opens a tunnel to the peer `address` for `protocol`. Rejects with NO_ROUTE when there is no
   * such peer or it has no handler for the protocol, REMOTE when its handler refuses, TIMEOUT,
   * the signal's reason, or CLOSED when the link is down.
   */
  tunnel<T = Uint8Array>(address: string, protocol: string, options: TunnelOpenOptions = {}): Promise<Tunnel<T>> {
    const timeout = Math.min(options.timeout ?? this.#opts.requestTimeout, MAX_TIMEOUT);
    const timeoutError = new TimeoutError(`tunnel to ${address} (${protocol}) was not accepted within ${timeout} ms`);
    if (this.#closed) return Promise.reject(new ClosedError('peer is closed', { cause: this.#closed }));
    if (this.#reconnecting) return Promise.reject(new ClosedError('the link is down (reconnecting)'));
    const bad = checkAddress(address) ?? (checkName(protocol, 'protocol') ? `bad protocol "${protocol}"` : undefined);
    if (bad) return Promise.reject(new TypeError(bad));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const remote = splitAddress(address).name;
    const tid = this.#nextTid++;
    const key = `o:${tid}`;
    let t: Tunnel<T>;
    try {
      t = new Tunnel<T>(protocol, remote, this.#tunnelWire(key, remote, tid, 0), options);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#tunnels.set(key, t as Tunnel<unknown>);
    return new Promise<Tunnel<T>>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#opening.delete(tid);
      };
      const giveUp = (err: unknown): void => {
        settle();
        t.abort(err);
        reject(err);
      };
      const onAbort = (): void => giveUp(signal!.reason);
      const timer = setTimeout(() => giveUp(timeoutError), timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#opening.set(tid, {
        resolve: () => {
          settle();
          resolve(t);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      this.#conn.write(frame(Kind.TOpen, { to: `${remote}/${protocol}`, from: '', tid, window: t.window }));
    });
  }

  #tunnelWire(key: string, remote: string, tid: number, dir: number): TunnelWire {
    return {
      codec: this.#codec,
      // Room for a TDATA header (two names of at most 128 characters, tid, dir, eom) in the
      // smaller of the relay's frame limit and what this link accepts (the other end's is the same).
      maxChunk: Math.min(this.#maxFrame, this.#conn.maxFrameBytes) - 1024,
      congested: () => this.#conn.congested,
      send: (kind, fields, body, flags) => {
        if (!this.connected) return false;
        const to = remote;
        if (kind === 'data') return this.#conn.write(frame(Kind.TData, { to, from: '', tid, dir, eom: fields.eom ?? 1 }, body ?? EMPTY_BODY, flags ?? 0));
        if (kind === 'credit') return this.#conn.write(frame(Kind.TCredit, { to, from: '', tid, dir, bytes: fields.bytes ?? 0 }));
        if (kind === 'end') return this.#conn.write(frame(Kind.TEnd, { to, from: '', tid, dir }));
        return this.#conn.write(frame(Kind.TClose, { to, from: '', tid, dir, code: fields.code ?? WireCode.NORMAL, message: fields.message ?? '' }));
      },
      done: () => this.#tunnels.delete(key),
    };
  }

  #onTunnelOpen(f: FrameOf<typeof Kind.TOpen>): void {
    const protocol = splitAddress(f.to).port;
    const refuse = (code: string, message: string): void => {
      this.#conn.write(frame(Kind.TClose, { to: f.from, from: '', tid: f.tid, dir: 1, code, message }));
    };
    const entry = this.#tunnelHandlers.get(protocol);
    if (!entry) return refuse(ErrorCode.NO_ROUTE, `no tunnel handler for "${protocol}" on ${this.name ?? this.id}`);
    const key = `a:${f.from}:${f.tid}`;
    let t: Tunnel<unknown>;
    try {
      t = new Tunnel(protocol, f.from, this.#tunnelWire(key, f.from, f.tid, 1), entry.options);
    } catch (err) {
      return refuse(remoteWireCode(err), messageOf(err));
    }
    this.#tunnels.set(key, t);
    t.opened(f.window);
    let result: unknown;
    try {
      result = entry.handler(t as Tunnel<never>);
    } catch (err) {
      this.#tunnels.delete(key);
      return refuse(remoteWireCode(err), messageOf(err));
    }
    this.#conn.write(frame(Kind.TAccept, { to: f.from, from: '', tid: f.tid, window: t.window }));
    if (result instanceof Promise) result.catch((err: unknown) => t.abort(err));
  }

  #onTunnelFrame(f: FrameOf<typeof Kind.TAccept> | FrameOf<typeof Kind.TData> | FrameOf<typeof Kind.TCredit> | FrameOf<typeof Kind.TEnd> | FrameOf<typeof Kind.TClose>): void {
    const opened = f.kind === Kind.TAccept || f.dir === 1;
    const key = opened ? `o:${f.tid}` : `a:${f.from}:${f.tid}`;
    const t = this.#tunnels.get(key);
    if (!t) return;
    switch (f.kind) {
      case Kind.TAccept:
        t.opened(f.window);
        this.#opening.get(f.tid)?.resolve();
        return;
      case Kind.TData:
        return t.onData(f);
      case Kind.TCredit:
        return t.onCredit(f.bytes);
      case Kind.TEnd:
        return t.onEnd();
      case Kind.TClose: {
        const opening = opened ? this.#opening.get(f.tid) : undefined;
        t.onClose(f.code, f.message);
        if (opening) {
          opening.reject(errorFromWire(f.code === WireCode.NORMAL || f.code === WireCode.ABORTED ? ErrorCode.CLOSED : f.code, f.message));
        }
        return;
      }
    }
  }

  /** Every tunnel fails (they are not resumed across links); opens in progress reject. */
  #failTunnels(err: Error): void {
    for (const o of [...this.#opening.values()]) o.reject(err);
    for (const t of [...this.#tunnels.values()]) t.fail(err);
    this.#tunnels.clear();
  }

  // ---- pub/sub, groups, broadcast -----------------------------------------------------------

  /**
   * Subscribes to topics matching `pattern` (`*` one token, `>` the rest). Best-effort: messages
   * published while the link is down are not seen. Throws TypeError for a bad pattern.
   */
  subscribe<T = unknown>(pattern: string, handler: (body: T, meta: PublishMeta) => void): Subscription {
    const bad = checkPattern(pattern);
    if (bad) throw new TypeError(bad);
    if (this.#closed) throw new ClosedError('peer is closed');
    const local: LocalSub = { pattern, handler: handler as LocalSub['handler'] };
    let entry = this.#subs.get(pattern);
    if (!entry) {
      const created: SubEntry = { subs: new Set(), ready: Promise.resolve() };
      created.ready = this.#register(`sub:${pattern}`, (ref) => frame(Kind.Sub, { ref, pattern }), () => {
        if (this.#subs.get(pattern) === created) this.#subsChanged().delete(pattern);
      });
      // A refused subscription is reported through `ready`; do not also make it unhandled.
      created.ready.catch(() => {});
      entry = created;
      this.#subsChanged().set(pattern, entry);
    }
    entry.subs.add(local);
    const e = entry;
    return {
      pattern,
      ready: e.ready,
      unsubscribe: () => {
        if (!e.subs.delete(local) || e.subs.size > 0 || this.#subs.get(pattern) !== e) return;
        this.#subsChanged().delete(pattern);
        this.#unregister(`sub:${pattern}`, (ref) => frame(Kind.Unsub, { ref, pattern })).catch(() => {});
      },
    };
  }

  /** Publishes to a concrete topic. Best-effort, at most once; throws TypeError for a bad topic. */
  publish(topic: string, body?: unknown): void {
    const bad = checkTopic(topic);
    if (bad) throw new TypeError(bad);
    if (this.#closed) throw new ClosedError('peer is closed');
    const { bytes, codec } = encodeBody(body, this.#codec, true);
    this.#conn.write({ kind: Kind.Pub, flags: codec, topic, from: '', body: bytes });
    if (this.listens('trace')) this.emit('trace', { type: 'send', kind: 'Pub', id: topic, size: bytes.length, at: Date.now() });
  }

  /** The subscription entries matching `topic`, cached until the subscriptions change. */
  #matching(topic: string): SubEntry[] {
    let list = this.#matchCache.get(topic);
    if (list === undefined) {
      list = [];
      for (const [pattern, entry] of this.#subs) if (matchTopic(pattern, topic)) list.push(entry);
      if (this.#matchCache.size >= 1024) this.#matchCache.clear();
      this.#matchCache.set(topic, list);
    }
    return list;
  }

  /** Returns #subs for a change, dropping the match cache first. */
  #subsChanged(): Map<string, SubEntry> {
    this.#matchCache.clear();
    return this.#subs;
  }

  #onPub(f: FrameOf<typeof Kind.Pub>): void {
    let body: unknown;
    let decoded = false;
    const meta: PublishMeta = { topic: f.topic, from: f.from };
    for (const entry of this.#matching(f.topic)) {
      if (!decoded) {
        try {
          body = decodeBody(f.body, f.flags);
        } catch (err) {
          return this.#emitError(err);
        }
        decoded = true;
        if (this.listens('trace')) this.emit('trace', { type: 'receive', kind: 'Pub', id: f.topic, from: f.from, size: f.body.length, at: Date.now() });
      }
      for (const s of entry.subs) {
        try {
          s.handler(body, meta);
        } catch (err) {
          this.#emitError(err);
        }
      }
    }
  }

  /**
   * Joins a group: requests to the group may now come here, and its broadcasts do. The
   * membership is restored after a reconnection. Rejects with AUTH outside the grant.
   */
  join(group: string): Promise<void> {
    const bad = checkName(group, 'group');
    if (bad) return Promise.reject(new TypeError(bad));
    return this.#register(`join:${group}`, (ref) => frame(Kind.Join, { ref, group }));
  }

  /** Leaves a group (and stops restoring it after reconnections). */
  leave(group: string): Promise<void> {
    const bad = checkName(group, 'group');
    if (bad) return Promise.reject(new TypeError(bad));
    return this.#unregister(`join:${group}`, (ref) => frame(Kind.Leave, { ref, group }));
  }

  // ---- registrations: what the relay must know of this peer, restored on reconnection ------

  /**
   * Records a registration (subscription, membership, presence watch) and sends it if the link
   * is up; it is sent again after every reconnection. Resolves once the relay has it; rejects
   * if the relay refuses it (the registration is then dropped) or the peer closes.
   */
  #register(key: string, build: (ref: number) => Frame, refused?: () => void): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError('peer is closed', { cause: this.#closed }));
    let reg = this.#regs.get(key);
    if (!reg) {
      reg = { build, done: false, waiters: [] };
      if (refused) reg.refused = refused;
      this.#regs.set(key, reg);
      if (this.connected) this.#sendRegistration(key, reg);
    }
    if (reg.done) return Promise.resolve();
    const r = reg;
    return new Promise<void>((resolve, reject) => r.waiters.push({ resolve, reject }));
  }

  #sendRegistration(key: string, reg: Registration): void {
    const ref = this.#nextRef++;
    this.#control(ref, reg.build(ref)).then(
      () => {
        if (this.#regs.get(key) !== reg) return;
        reg.done = true;
        for (const w of reg.waiters.splice(0)) w.resolve();
      },
      (err: unknown) => {
        if (this.#regs.get(key) !== reg) return;
        // The link dropped: it is sent again on reconnection. Anything else is a refusal.
        if (err instanceof ClosedError && !this.#closed) return;
        this.#regs.delete(key);
        reg.refused?.();
        if (reg.waiters.length === 0) this.#emitError(err);
        for (const w of reg.waiters.splice(0)) w.reject(err as Error);
      },
    );
  }

  /** Drops a registration and tells the relay (if the link is up). */
  #unregister(key: string, build: (ref: number) => Frame): Promise<void> {
    const reg = this.#regs.get(key);
    this.#regs.delete(key);
    for (const w of reg?.waiters.splice(0) ?? []) w.reject(new ClosedError('cancelled by a later leave or unsubscribe'));
    if (!this.connected) return Promise.resolve();
    const ref = this.#nextRef++;
    return this.#control(ref, build(ref)).then(() => undefined);
  }

  /**
   * Delivers `body` to the mailbox (`group/port`, default `inbox`) of every member of a group,
   * best-effort. An unknown group is reported through the `error` event (NO_ROUTE).
   */
  broadcast(group: string, body?: unknown): void {
    const bad = checkAddress(group);
    if (bad) throw new TypeError(bad);
    if (this.#closed) throw new ClosedError('peer is closed');
    const { bytes, codec } = encodeBody(body, this.#codec, true);
    this.#conn.write(frame(Kind.Bcast, { ref: 0, to: group, from: '' }, bytes, codec));
    if (this.listens('trace')) this.emit('trace', { type: 'send', kind: 'Bcast', to: group, size: bytes.length, at: Date.now() });
  }

  #onBcast(f: FrameOf<typeof Kind.Bcast>): void {
    const mailbox = this.#mailboxes.get(splitAddress(f.to).port);
    if (!mailbox) return this.#drop('Bcast', f, 'NO_ROUTE');
    let body: unknown;
    try {
      body = decodeBody(f.body, f.flags);
    } catch (err) {
      return this.#emitError(err);
    }
    const msg: Message = { id: `bcast:${this.id}:${this.#nextBcast++}`, from: f.from, to: f.to, body, sentAt: Date.now() };
    if (!mailbox.offer(msg)) return this.#drop('Bcast', f, 'LIMIT');
    if (this.listens('trace')) this.emit('trace', { type: 'receive', kind: 'Bcast', id: msg.id, from: f.from, to: f.to, size: f.body.length, at: Date.now() });
  }

  // ---- presence -----------------------------------------------------------------------------

  /** The named peers currently connected in this namespace (including this one). */
  async peers(): Promise<PeerInfo[]> {
    const ref = this.#nextRef++;
    const { body, flags } = await this.#control(ref, frame(Kind.Peers, { ref }));
    const list = flags === BodyCodec.Msgpack ? msgpackDecode(body) : undefined;
    if (!Array.isArray(list)) throw new ProtocolError('PEERS reply is not a list');
    return list as PeerInfo[];
  }

  protected override listenerAdded(type: keyof PeerEvents): void {
    if (type === 'peer-join' || type === 'peer-leave') {
      this.#register('watch', (ref) => frame(Kind.Watch, { ref, on: 1 })).catch(() => {});
    }
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Closes the link. Pending requests and waiting receives reject with ClosedError; unacked
   * sends stay in the store (with the default memory store, they are gone with the peer).
   */
  async close(): Promise<void> {
    if (this.#closed) return this.#storeClosed;
    if (this.#conn.open) {
      this.#conn.write(frame(Kind.Bye, { code: 'NORMAL', message: 'peer closed' }));
      const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
      this.#conn.close(CloseCode.NORMAL, 'peer closed');
      this.#shutdown(new ClosedError('peer closed'), { code: CloseCode.NORMAL, reason: 'peer closed' });
      await closed;
    } else this.#shutdown(new ClosedError('peer closed'), { code: CloseCode.NORMAL, reason: 'peer closed' });
    // The store has flushed and released its file (a FileStore can be reopened at once).
    await this.#storeClosed;
  }

  /** Settles when the store has closed, after the peer shut down. */
  #storeClosed: Promise<void> = Promise.resolve();

  #closeEmitted = false;

  #shutdown(error: MissiveError, info: CloseInfo): void {
    if (!this.#closed) {
      this.#closed = error instanceof ClosedError ? error : new ClosedError(error.message, { cause: error });
      clearInterval(this.#ackTimer);
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      this.#dialing?.close({ code: CloseCode.NORMAL, reason: 'peer closed' });
      this.#dialing = undefined;
      for (const reg of this.#regs.values()) for (const w of reg.waiters.splice(0)) w.reject(new ClosedError(error.message, { cause: error }));
      this.#regs.clear();
      for (const p of [...this.#pending.values()]) {
        p.cleanup();
        p.reject(new ClosedError(`link closed before the reply came: ${error.message}`, { cause: error }));
      }
      for (const c of this.#controls.values()) c.reject(new ClosedError(error.message, { cause: error }));
      this.#controls.clear();
      for (const w of this.#deliveryWaiters.values()) w.reject(new ClosedError(error.message, { cause: error }));
      this.#deliveryWaiters.clear();
      for (const ctx of this.#handling) ctx.abort(error);
      this.#failTunnels(this.#closed);
      for (const m of this.#mailboxes.values()) m.close(error);
      for (const q of this.#dests.values()) clearTimeout(q.retry);
      this.#dests.clear();
      this.#msgRefs.clear();
      this.#refOf.clear();
      this.#storeClosed = this.#store.close().catch((err: unknown) => this.#emitError(err));
    }
    if (this.#conn.transport.status === 'closed' && !this.#closeEmitted) {
      this.#closeEmitted = true;
      const e: PeerEvents['close'] = { code: info.code, reason: info.reason };
      if (info.code !== CloseCode.NORMAL) e.error = this.#closed!;
      this.emit('close', e);
    }
  }

  #protocolError(err: ProtocolError): void {
    this.#emitError(err);
    this.#conn.close(CloseCode.PROTOCOL, err.reason.slice(0, 120));
  }

  // ---- dispatch -----------------------------------------------------------------------------

  #onFrame(f: Frame): void {
    switch (f.kind) {
      case Kind.Msg:
        return this.#onMsg(f);
      case Kind.Ack:
        return this.#onAck(f);
      case Kind.Req:
        void this.#onReq(f);
        return;
      case Kind.Rep:
        return this.#onRep(f);
      case Kind.Pub:
        return this.#onPub(f);
      case Kind.Bcast:
        return this.#onBcast(f);
      case Kind.Ok: {
        const c = this.#controls.get(f.ref);
        this.#controls.delete(f.ref);
        c?.resolve(f.body, f.flags);
        return;
      }
      case Kind.Err:
        return this.#onErr(f);
      case Kind.Presence: {
        const e = { name: f.name, id: f.id };
        if (f.event === PresenceEvent.Join) this.emit('peer-join', e);
        else if (f.event === PresenceEvent.Leave) this.emit('peer-leave', e);
        return;
      }
      case Kind.Bye:
        return; // the link keeps it for the close that follows
      case Kind.Pong:
        return;
      case Kind.TOpen:
        return this.#onTunnelOpen(f);
      case Kind.TAccept:
      case Kind.TData:
      case Kind.TCredit:
      case Kind.TEnd:
      case Kind.TClose:
        return this.#onTunnelFrame(f);
      default:
        return this.#protocolError(new ProtocolError(`unexpected ${kindName(f.kind)} from relay`));
    }
  }

  #onErr(f: FrameOf<typeof Kind.Err>): void {
    const err = errorFromCode(f.code, f.message);
    const control = this.#controls.get(f.ref);
    if (control) {
      this.#controls.delete(f.ref);
      return control.reject(err);
    }
    const entry = this.#msgRefs.get(f.ref);
    if (entry) {
      this.#msgRefs.delete(f.ref);
      if (this.#settle(entry.dest, entry.seq)) this.#undeliverable(entry, err);
      return;
    }
    this.#emitError(err);
  }

  #control(ref: number, f: Frame): Promise<{ body: Uint8Array; flags: number }> {
    if (this.#closed) return Promise.reject(new ClosedError('peer is closed', { cause: this.#closed }));
    if (this.#reconnecting) return Promise.reject(new ClosedError('the link is down (reconnecting)'));
    const timeoutError = new TimeoutError(`relay did not answer ${kindName(f.kind)}`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#controls.delete(ref);
        reject(timeoutError);
      }, this.#opts.requestTimeout);
      this.#controls.set(ref, {
        resolve: (body, flags) => {
          clearTimeout(timer);
          resolve({ body, flags });
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.#conn.write(f);
    });
  }

  #drop(kind: string, f: { from: string; to?: string; body: Uint8Array }, reason: string): void {
    if (this.listens('trace')) this.emit('trace', { type: 'drop', kind, from: f.from, to: f.to ?? '', reason, size: f.body.length, at: Date.now() });
  }

  #emitError(err: unknown): void {
    this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
}

/**
 * The context of one request being handled. Its `signal` is made only if the handler reads it:
 * most handlers never do, and an AbortController plus a deadline timer per request is the
 * largest cost of a small request at the responder. Without them, the deadline is checked when
 * the handler returns: past it, or after the peer closed, no reply is sent.
 */
class HandlerContext implements RequestContext {
  #ac: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #aborted: unknown;
  constructor(
    readonly from: string,
    readonly to: string,
    readonly deadline: number,
  ) {}

  get signal(): AbortSignal {
    if (!this.#ac) {
      const ac = (this.#ac = new AbortController());
      if (this.#aborted !== undefined) ac.abort(this.#aborted);
      else {
        this.#timer = setTimeout(() => ac.abort(new TimeoutError('requester deadline passed')), Math.max(0, this.deadline - Date.now()));
      }
    }
    return this.#ac.signal;
  }

  /** Whether a reply should still be sent. */
  live(): boolean {
    return this.#aborted === undefined && !this.#ac?.signal.aborted && Date.now() <= this.deadline;
  }

  abort(reason: unknown): void {
    this.#aborted = reason;
    this.#ac?.abort(reason);
  }

  done(): void {
    clearTimeout(this.#timer);
  }
}
