/**
 * A Peer is one endpoint: it talks to a Router over any Transport. Its API is the same in Node
 * and the browser and over every transport.
 *
 * This class is a facade over parts, each in its own file with its own frames and state and
 * handed a narrow port (port.ts): the session (the link, reconnection), the outbox (durable
 * sends), the inbox (mailboxes, dedup, acks back), requests, tunnels, pub/sub, groups and
 * presence, and the registrations the relay must know again after a reconnection. Frames leave
 * through one method, `#write`; frames arrive through one dispatch, `#onFrame`; the lifecycle
 * (attached, link lost, closed, inspect) is a loop over the parts.
 */
import { checkName, DEFAULT_PORT } from '../address.js';
import { codecFlag } from '../codec/body.js';
import { Kind, kindName, type BodyCodec, type Frame } from '../codec/frames.js';
import { DEFAULT_MAX_FRAME } from '../connection.js';
import { Emitter } from '../emitter.js';
import { ClosedError, errorFromCode, ProtocolError, type MissiveError } from '../errors.js';
import { openLink, type HelloFields, type Link } from '../link.js';
import { DEFAULT_MAILBOX_CAPACITY, type Mailbox, type Message } from '../mailbox.js';
import { MemoryStore, type OutboxState, type OutboxStore } from '../store/outbox.js';
import { DedupTable } from '../store/dedup.js';
import { randomHex } from '../store/ids.js';
import type { CloseInfo, Transport } from '../transport/transport.js';
import { CloseCode } from '../transport/transport.js';
import type { Tunnel, TunnelOpenOptions, TunnelOptions } from '../tunnel.js';
import { DirectLinks } from './direct.js';
import { Groups } from './groups.js';
import { Inbox } from './inbox.js';
import { Outbox } from './outbox.js';
import type { PeerPart, PeerPort } from './port.js';
import { PubSub } from './pubsub.js';
import { Registrations } from './registrations.js';
import { Requests, type ControlHandler } from './requests.js';
import { Session } from './session.js';
import { Tracer } from './tracer.js';
import { Tunnels } from './tunnels.js';
import type {
  Handler,
  LinkKind,
  PeerEvents,
  PeerInfo,
  PeerOptions,
  PublishMeta,
  RequestOptions,
  SendOptions,
  Subscription,
  TransportFactory,
  TunnelHandler,
} from './types.js';
import type { PeerSnapshot } from './snapshot.js';

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

export class Peer extends Emitter<PeerEvents> {
  readonly #session: Session;
  readonly #tracer: Tracer;
  readonly #codec: BodyCodec;
  readonly #store: OutboxStore;
  readonly #regs: Registrations;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  readonly #requests: Requests;
  readonly #tunnels: Tunnels;
  readonly #pubsub: PubSub;
  readonly #groups: Groups;
  readonly #direct: DirectLinks;
  /** Every part, in the order lifecycle hooks run. */
  readonly #parts: readonly PeerPart[];
  #nextRef = 1;
  #closed: ClosedError | undefined;
  #closeEmitted = false;
  /** Settles when the store has closed, after the peer shut down. */
  #storeClosed: Promise<void> = Promise.resolve();

  private constructor(options: PeerOptions, store: OutboxStore, state: OutboxState, hello: HelloFields, factory: TransportFactory | undefined) {
    super();
    this.#codec = codecFlag(options.codec ?? 'msgpack');
    this.#store = store;
    this.#tracer = new Tracer((e) => this.emit('trace', e));
    const requestTimeout = options.requestTimeout ?? 10_000;
    const session = (this.#session = new Session(
      { hello, factory, reconnect: options.reconnect, connectTimeout: options.connectTimeout ?? 10_000 },
      {
        frame: (f) => this.#onRelayFrame(f),
        protocolError: (err) => this.#protocolError(err),
        drain: () => {
          this.#tunnels.onDrain();
          this.emit('drain', undefined);
        },
        attached: (attempt) => this.#attached(attempt),
        lost: (error) => {
          for (const part of this.#parts) part.linkLost?.(error);
        },
        ended: (error, info) => this.#shutdown(error, info),
        linkClosed: (info) => this.#shutdown(this.#closed!, info),
        emit: (type, event) => this.emit(type, event),
      },
    ));
    const self = this;
    const port: PeerPort = {
      write: (f, stableBody) => this.#write(f, stableBody),
      reply: (f, direct) => (direct ? this.#direct.reply(f) : session.write(f)),
      get connected() {
        return session.connected;
      },
      get closedError() {
        return self.#closed;
      },
      nextRef: () => this.#nextRef++,
      tracer: this.#tracer,
      error: (err) => this.#emitError(err),
      emit: (type, event) => this.emit(type, event),
      codec: this.#codec,
      get label() {
        return session.name ?? session.id;
      },
      get id() {
        return session.id;
      },
    };
    this.#regs = new Registrations(port, requestTimeout);
    this.#outbox = new Outbox(port, store, state, {
      outboxCapacity: options.outboxCapacity ?? 10_000,
      sendWindow: options.sendWindow ?? 512,
      ackTimeout: options.ackTimeout ?? 10_000,
    });
    this.#inbox = new Inbox(port, store, new DedupTable(undefined, state.dedup), options.mailboxCapacity ?? DEFAULT_MAILBOX_CAPACITY);
    // The inspection code is loaded on the relay's first control request, not with the Peer:
    // an app that never opts in (most) does not ship it in its first chunk.
    const inspect = options.inspect;
    let inspection: ControlHandler | undefined;
    const control: ControlHandler | undefined = inspect
      ? async (port, body) => {
          if (!inspection) {
            const { inspectionControl } = await import('./inspection.js');
            inspection ??= inspectionControl(inspect, {
              snapshot: (peek) => this.inspect({ peek }),
              mailbox: (p) => this.#inbox.existing(p),
              maxFrame: () => (session.maxFrame > 0 ? session.linkMaxFrame : DEFAULT_MAX_FRAME),
            });
          }
          return inspection(port, body);
        }
      : undefined;
    this.#requests = new Requests(port, { requestTimeout, maxPendingRequests: options.maxPendingRequests ?? 10_000, control });
    this.#tunnels = new Tunnels(
      port,
      {
        maxFrame: () => (session.maxFrame > 0 ? session.linkMaxFrame : DEFAULT_MAX_FRAME),
        // Either path may carry a tunnel to `remote`: writers wait while either is congested.
        congested: (remote) => session.congested || this.#direct.congested(remote) === true,
      },
      requestTimeout,
    );
    this.#pubsub = new PubSub(port, this.#regs);
    this.#groups = new Groups(port, this.#regs);
    this.#direct = new DirectLinks(
      {
        relayWrite: (f, stableBody) => session.write(f, stableBody),
        get connected() {
          return session.connected;
        },
        get name() {
          return session.name;
        },
        get maxFrame() {
          return session.maxFrame;
        },
        deliver: (f) => this.#onFrame(f, true),
        drain: () => this.#tunnels.onDrain(),
        link: (e) => this.emit('link', e),
        tunnelsLost: (keys, err) => this.#tunnels.fail(keys, err),
        error: (err) => this.#emitError(err),
        tracer: this.#tracer,
      },
      options.directConnector,
      options.direct ?? 'never',
      options.directOptions,
    );
    // Direct links first (they close when the relay link drops), then registrations (the relay learns subscriptions and groups before anything that may
    // depend on them), then retried requests, then the outbox's streams.
    this.#parts = [this.#direct, this.#regs, this.#requests, this.#outbox, this.#inbox, this.#tunnels, this.#pubsub, this.#groups];
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
    peer.#session.attach(link);
    return peer;
  }

  /** Relay-assigned id, unique in the relay; it changes when the peer reconnects. */
  get id(): string {
    return this.#session.id;
  }

  /** The name, if the peer has one. */
  get name(): string | undefined {
    return this.#session.name;
  }

  get namespace(): string {
    return this.#session.namespace;
  }

  /** Whether the link is up (false while reconnecting). */
  get connected(): boolean {
    return this.#closed === undefined && this.#session.connected;
  }

  /**
   * Bytes written but not yet taken by the transport (this tick's batch plus the transport's
   * buffer). Producers of best-effort traffic (`publish`, `broadcast`) can pause above their
   * own bound and resume on the `drain` event.
   */
  get bufferedAmount(): number {
    return this.#session.bufferedAmount;
  }

  /** Unacknowledged messages in the outbox. */
  get outboxSize(): number {
    return this.#outbox.size;
  }

  // ---- mailboxes and send -------------------------------------------------------------------

  /**
   * The mailbox for `port` (default `inbox`), created on first use. Messages to a port whose
   * mailbox was never opened are refused with NO_ROUTE, except `inbox`, which always exists.
   */
  mailbox<T = unknown>(port: string = DEFAULT_PORT, options: { capacity?: number } = {}): Mailbox<T> {
    return this.#inbox.mailbox<T>(port, options.capacity);
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
  send(to: string, body: unknown, options: SendOptions = {}): Promise<string> {
    return this.#outbox.send(to, body, options);
  }

  // ---- request / reply ----------------------------------------------------------------------

  /**
   * Registers the handler for requests to `port` on this peer (replaces any earlier one).
   * Its return value is the reply; if it throws, the requester gets a RemoteError carrying the
   * thrown error's `code` (a string) and message. Returns a function that removes the handler.
   */
  handle<B = unknown, R = unknown>(port: string, handler: Handler<B, R>): () => void {
    return this.#requests.handle(port, handler);
  }

  /**
   * Sends a request to `name/port` (a peer, or one member of a group) and resolves with the
   * reply. Rejects with TimeoutError, ClosedError, NoRouteError, RemoteError or LimitError.
   */
  request<R = unknown>(address: string, body?: unknown, options: RequestOptions = {}): Promise<R> {
    return this.#requests.request<R>(address, body, options);
  }

  // ---- tunnels ------------------------------------------------------------------------------

  /**
   * Accepts tunnels opened to this peer with `protocol`. The handler gets each open tunnel; if
   * it throws at once, the opener's `tunnel()` rejects with REMOTE (its code); if its promise
   * rejects later, the tunnel is aborted with that reason. Returns a function that removes it.
   */
  onTunnel<T = Uint8Array>(protocol: string, handler: TunnelHandler<T>, options: TunnelOptions = {}): () => void {
    return this.#tunnels.onTunnel(protocol, handler, options);
  }

  /**
   * Opens a tunnel to the peer `address` for `protocol`. Rejects with NO_ROUTE when there is no
   * such peer or it has no handler for the protocol, REMOTE when its handler refuses, TIMEOUT,
   * the signal's reason, or CLOSED when the link is down.
   */
  tunnel<T = Uint8Array>(address: string, protocol: string, options: TunnelOpenOptions = {}): Promise<Tunnel<T>> {
    return this.#tunnels.open<T>(address, protocol, options);
  }

  // ---- pub/sub, groups, broadcast, presence --------------------------------------------------

  /**
   * Subscribes to topics matching `pattern` (`*` one token, `>` the rest). Best-effort: messages
   * published while the link is down are not seen. Throws TypeError for a bad pattern.
   */
  subscribe<T = unknown>(pattern: string, handler: (body: T, meta: PublishMeta) => void): Subscription {
    return this.#pubsub.subscribe(pattern, handler);
  }

  /** Publishes to a concrete topic. Best-effort, at most once; throws TypeError for a bad topic. */
  publish(topic: string, body?: unknown): void {
    this.#pubsub.publish(topic, body);
  }

  /**
   * Joins a group: requests to the group may now come here, and its broadcasts do. The
   * membership is restored after a reconnection. Rejects with AUTH outside the grant.
   */
  join(group: string): Promise<void> {
    return this.#groups.join(group);
  }

  /** Leaves a group (and stops restoring it after reconnections). */
  leave(group: string): Promise<void> {
    return this.#groups.leave(group);
  }

  /**
   * Delivers `body` to the mailbox (`group/port`, default `inbox`) of every member of a group,
   * best-effort. An unknown group is reported through the `error` event (NO_ROUTE).
   */
  broadcast(group: string, body?: unknown): void {
    this.#groups.broadcast(group, body);
  }

  /** The named peers currently connected in this namespace (including this one). */
  peers(): Promise<PeerInfo[]> {
    return this.#groups.peers();
  }

  protected override listenerAdded(type: keyof PeerEvents): void {
    if (type === 'trace') this.#tracer.on = true;
    else if (type === 'peer-join' || type === 'peer-leave') this.#groups.watch();
  }

  protected override listenerRemoved(type: keyof PeerEvents): void {
    if (type === 'trace') this.#tracer.on = this.listens('trace');
  }

  // ---- diagnostics --------------------------------------------------------------------------

  /** Which path traffic to the peer `name` takes now: `'direct'` once upgraded, else `'relay'`. */
  linkTo(name: string): LinkKind {
    return this.#direct.linkTo(name);
  }

  /**
   * A plain, JSON-serialisable snapshot of every part: the link, mailboxes (with up to `peek`
   * of each one's first messages, decoded), the outbox, requests and handlers, tunnels,
   * subscriptions, groups and registrations.
   */
  inspect(options: { peek?: number } = {}): PeerSnapshot {
    return {
      session: this.#session.inspect(),
      closed: this.#closed !== undefined,
      inbox: this.#inbox.inspect(options.peek ?? 0),
      outbox: this.#outbox.inspect(),
      requests: this.#requests.inspect(),
      tunnels: this.#tunnels.inspect(),
      pubsub: this.#pubsub.inspect(),
      groups: this.#groups.inspect(),
      registrations: this.#regs.inspect(),
      direct: this.#direct.inspect(),
    };
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Closes the link. Pending requests and waiting receives reject with ClosedError; unacked
   * sends stay in the store (with the default memory store, they are gone with the peer).
   */
  async close(): Promise<void> {
    if (this.#closed) return this.#storeClosed;
    const error = new ClosedError('peer closed');
    const info = { code: CloseCode.NORMAL, reason: 'peer closed' };
    // Listening before the link closes: a transport may report its close at once.
    let off: () => void = () => {};
    const closed = new Promise<void>((resolve) => (off = this.once('close', () => resolve())));
    const wasOpen = this.#session.close();
    if (!wasOpen) off();
    this.#shutdown(error, info);
    if (wasOpen) await closed;
    // The store has flushed and released its file (a FileStore can be reopened at once).
    await this.#storeClosed;
  }

  /** The link is up: every part sends again what the relay must know. */
  #attached(attempt: number): void {
    for (const part of this.#parts) part.attached?.();
    if (attempt > 0) this.emit('reconnected', { attempt, id: this.#session.id });
  }

  #shutdown(error: MissiveError, info: CloseInfo): void {
    if (!this.#closed) {
      const closed = (this.#closed = error instanceof ClosedError ? error : new ClosedError(error.message, { cause: error }));
      this.#session.end();
      for (const part of this.#parts) part.closed?.(closed);
      this.#storeClosed = this.#store.close().catch((err: unknown) => this.#emitError(err));
    }
    if (this.#session.transportClosed && !this.#closeEmitted) {
      this.#closeEmitted = true;
      const e: PeerEvents['close'] = { code: info.code, reason: info.reason };
      if (info.code !== CloseCode.NORMAL) e.error = this.#closed;
      this.emit('close', e);
    }
  }

  #protocolError(err: ProtocolError): void {
    this.#emitError(err);
    this.#session.protocolError(err);
  }

  #emitError(err: unknown): void {
    this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }

  // ---- frames -------------------------------------------------------------------------------

  /**
   * The one place frames leave this peer: over the direct link to their destination when there
   * is one, else over the relay.
   */
  #write(f: Frame, stableBody = false): boolean {
    const direct = this.#direct;
    if (direct.active) {
      const written = direct.write(f, stableBody);
      if (written !== undefined) return written;
    }
    return this.#session.write(f, stableBody);
  }

  /** A frame from the relay: checked against a pending replay of a direct link's frame first. */
  #onRelayFrame(f: Frame): void {
    const direct = this.#direct;
    if (direct.replaying && f.kind !== Kind.Signal && !direct.relayFrame(f)) return;
    if (direct.active) direct.heard(f);
    this.#onFrame(f);
  }

  /** A frame from the relay, or from a direct path (`direct`: a link or a reply signal). */
  #onFrame(f: Frame, direct = false): void {
    switch (f.kind) {
      case Kind.Msg:
        return this.#inbox.onMsg(f);
      case Kind.Ack:
        return this.#outbox.onAck(f);
      case Kind.Req:
        void this.#requests.onReq(f, direct);
        return;
      case Kind.Rep:
        return this.#requests.onRep(f, direct);
      case Kind.Pub:
        return this.#pubsub.onPub(f);
      case Kind.Bcast:
        return this.#inbox.onBcast(f);
      case Kind.Ok:
        return this.#regs.onOk(f);
      case Kind.Err:
        // A control's ref, else a MSG's (the relay settled it), else an error with no caller.
        if (!this.#regs.onErr(f) && !this.#outbox.onErr(f)) this.#emitError(errorFromCode(f.code, f.message));
        return;
      case Kind.Presence:
        return this.#groups.onPresence(f);
      case Kind.Signal:
        return this.#direct.onSignal(f);
      case Kind.Bye:
        return; // the link keeps it for the close that follows
      case Kind.Pong:
        return;
      case Kind.TOpen:
        return this.#tunnels.onOpen(f);
      case Kind.TAccept:
      case Kind.TData:
      case Kind.TCredit:
      case Kind.TEnd:
      case Kind.TClose:
        return this.#tunnels.onFrame(f);
      default:
        return this.#protocolError(new ProtocolError(`unexpected ${kindName(f.kind)} from relay`));
    }
  }
}
