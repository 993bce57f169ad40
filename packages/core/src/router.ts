/**
 * The Router is the relay's logic, independent of sockets: it accepts transports, runs the
 * handshake and the auth hook, keeps the name registry, groups and subscriptions of each
 * namespace, and forwards frames. It routes on frame headers only: bodies are copied through
 * untouched, never decoded. Nothing a connection sends can make it throw: a malformed frame
 * closes that connection alone with a PROTOCOL reason.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { checkName, ID_PREFIX, splitAddress } from './address.js';
import { randomToken } from './store/ids.js';
import { ByteWriter } from './codec/bytes.js';
import {
  AckStatus,
  BodyCodec,
  frame,
  FrameTooLargeError,
  Kind,
  kindName,
  PresenceEvent,
  PROTOCOL_VERSION,
  encodeFrame,
  writeFramed,
  type Frame,
  type FrameOf,
} from './codec/frames.js';
import { Connection, DEFAULT_MAX_FRAME, LARGE_BODY, type ConnectionHandlers } from './connection.js';
import { Emitter } from './emitter.js';
import { ErrorCode, ProtocolError, type ErrorCode as Code } from './errors.js';
import { checkPattern, checkTopic, matchTopic, TopicTrie } from './topics.js';
import type { TraceEvent } from './trace.js';
import type { CloseInfo, Transport } from './transport/transport.js';
import { CloseCode } from './transport/transport.js';

/** What a connecting peer presents. */
export interface AuthRequest {
  /** Requested name ('' for an anonymous peer). */
  name: string;
  namespace: string;
  /** Shared secret ('' if none). */
  secret: string;
  /** Signed token ('' if none). */
  token: string;
}

/**
 * What an auth hook grants. Omitted lists allow everything; patterns use topic wildcards
 * (`*` one token, `>` the rest).
 */
export interface AuthGrant {
  /** The name the peer gets (must equal a requested name, if one was requested). */
  name?: string;
  namespace?: string;
  /** Group names (patterns) the peer may join. */
  groups?: readonly string[];
  /** Topics (patterns) it may publish to. */
  publish?: readonly string[];
  /** Topic patterns it may subscribe with. */
  subscribe?: readonly string[];
  /** When the grant ends (ms since epoch); the session is then closed with an AUTH reason. */
  expiresAt?: number;
}

/** Decides whether a peer may connect. Throw (ideally an AuthError) or reject to refuse. */
export type AuthHook = (request: AuthRequest) => AuthGrant | void | Promise<AuthGrant | void>;

export interface RouterLimits {
  /** Largest frame accepted. @default 1048576 */
  maxFrameBytes: number;
  /** A connection must complete its handshake within this many ms. @default 10000 */
  handshakeTimeout: number;
  /** Connections at once, handshakes included; more are closed with LIMIT (4003). @default 10000 */
  maxConnections: number;
  /** Peers in one namespace; more are refused at the handshake with LIMIT. @default 10000 */
  maxPeersPerNamespace: number;
  /** Requests one peer may have awaiting a reply through the relay; more get a LIMIT reply. @default 1000 */
  maxPendingRequests: number;
  /**
   * Data frames (MSG, REQ, PUB, BCAST) per second per connection, with bursts up to twice
   * that (token bucket). Over it: MSG is refused (the sender retries), REQ gets LIMIT, PUB
   * and BCAST are dropped and the sender told LIMIT. @default 100000
   */
  rateLimit: number;
  /**
   * Outgoing bytes buffered for one connection (unsent batch + transport buffer) above which
   * best-effort frames to it (PUB, BCAST, PRESENCE) are dropped, MSGs refused (they stay in
   * the sender's outbox) and REQs answered LIMIT. @default 8388608
   */
  maxBufferedBytes: number;
  /** A connection above `maxBufferedBytes` for this many ms is disconnected as a slow consumer (4004). @default 5000 */
  slowConsumerTimeout: number;
  /**
   * How long (ms) the relay holds durable messages for a named peer that is not connected.
   * When it comes (back), they are delivered in order before anything else; when the hold
   * expires, each sender is told (`expired`). 0 turns holding off: such sends get NO_ROUTE.
   * @default 60000
   */
  holdTtl: number;
  /** Messages held per offline name; more are refused at once as expired. @default 1000 */
  holdMaxMessages: number;
  /** Bytes held per offline name. @default 1048576 */
  holdMaxBytes: number;
  /** Bytes held for all offline names together. @default 67108864 */
  holdMaxTotalBytes: number;
  /** Tunnels one connection may be an end of at once; more are refused with LIMIT. @default 1000 */
  maxTunnels: number;
  /** Subscription patterns one connection may hold at once; more are refused with LIMIT. @default 1000 */
  maxSubscriptions: number;
  /** Tokens in one subscription pattern (`a.b.>` has 3); longer patterns are refused with LIMIT. @default 32 */
  maxPatternTokens: number;
}

/**
 * A durable message held for an offline name, kept compactly: the frame encoded once (its
 * `from` already stamped), sent as is on delivery, plus what expiry and dedup need.
 */
interface Held {
  /** `[u32 length][frame]`, ready for `writeEncoded`. */
  unit: Uint8Array;
  origin: string;
  seq: number;
  /** The sender's label (its name, or id), told when the hold expires. */
  sender: string;
  /** What this message counts against the hold limits: its encoded size plus HELD_OVERHEAD. */
  bytes: number;
  at: number;
}

/**
 * Bytes of process memory a held message costs beyond its encoded frame (the record, the
 * Uint8Array and its backing store, array slots), measured on Node 20 x64 with 200,000 small
 * held messages (packages/node/test/hostile.test.ts checks it). Counting it makes
 * `holdMaxTotalBytes` a bound on real memory, not only on payload bytes.
 */
export const HELD_OVERHEAD = 400;

/** The messages held for one offline name, in arrival order. */
interface Hold {
  namespace: string;
  name: string;
  msgs: Held[];
  bytes: number;
}

/** Counters and gauges of a Router (see `Router.metrics()`). Frame counters are by kind name. */
export interface RouterMetrics {
  connections: number;
  /** Peers by namespace. */
  peers: Map<string, number>;
  framesIn: Record<string, number>;
  bytesIn: Record<string, number>;
  framesOut: Record<string, number>;
  bytesOut: Record<string, number>;
  /** Frames dropped, by reason (see {@link DropReason}). */
  drops: Partial<Record<DropReason, number>>;
  /** Durable messages held for offline names now, and their bytes. */
  held: { messages: number; bytes: number };
  /** Requests forwarded to a peer. */
  requests: number;
  /** Request round trips through the relay, seconds: cumulative counts per upper bound. */
  requestLatency: { bounds: readonly number[]; counts: number[]; sum: number; count: number };
  slowConsumerDisconnects: number;
  authFailures: number;
  protocolErrors: number;
}

/**
 * Why the relay dropped or refused a frame: the `reason` label of `missive_drops_total` and of
 * `drop` trace events. docs/relay.md lists the same table (a test holds them equal).
 */
export const DropReason = {
  /** No peer, group or subscriber for it. */
  NO_ROUTE: 'NO_ROUTE',
  /** Refused by a limit: connections, pending requests, tunnels, subscriptions, pattern tokens. */
  LIMIT: 'LIMIT',
  /** The receiving connection is over `maxBufferedBytes`. */
  SLOW_CONSUMER: 'SLOW_CONSUMER',
  /** The sending connection is over `rateLimit`. */
  RATE: 'RATE',
  /** A reply from a peer the request was not routed to (or already answered). */
  NOT_REQUESTED: 'NOT_REQUESTED',
  /** An ACK from a peer that is not the destination it names (a forged or stale ack). */
  NOT_DESTINATION: 'NOT_DESTINATION',
  /** A held message whose hold expired, or that the hold had no room for. */
  EXPIRED: 'EXPIRED',
  /** A tunnel frame for no open tunnel, or from a peer that is not one of its ends. */
  NO_TUNNEL: 'NO_TUNNEL',
  /** A frame that broke a protocol rule the relay enforces per frame (tunnel data beyond its window). */
  PROTOCOL: 'PROTOCOL',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Upper bounds (seconds) of the request latency histogram. */
export const LATENCY_BOUNDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A tunnel through the relay: frames are accepted only from its two ends. */
interface TunnelRecord {
  tid: number;
  opener: Conn;
  acceptor: Conn;
  /** TEND frames seen (the record goes at 2, or at TCLOSE). */
  ends: number;
  /**
   * Data bytes each end may still send ([opener, acceptor]), from the windows in TOPEN/TACCEPT
   * and the TCREDITs: a writer going beyond it is cut off here, so the relay never holds more
   * than a window per direction of a tunnel.
   */
  credit: [number, number];
}

/** A request in flight through the relay: only `responder` may answer it. */
interface InFlight {
  id: number;
  requester: Conn;
  responder: Conn;
  start: number;
  deadline: number;
}

export interface RouterOptions {
  auth?: AuthHook;
  limits?: Partial<RouterLimits>;
}

/** Connection summary used in events and `connections()`. */
export interface ConnectionInfo {
  id: string;
  name: string | undefined;
  namespace: string;
  groups: string[];
  subscriptions: string[];
}

export interface RouterEvents {
  trace: TraceEvent;
  /** A peer finished its handshake. */
  connect: ConnectionInfo;
  /** A peer's connection ended. */
  disconnect: ConnectionInfo & { code: number; reason: string };
  /** A connection broke the protocol and was closed. */
  'protocol-error': { id: string; error: ProtocolError };
  /** An auth hook refused a connection or an action. */
  'auth-failure': { id: string; name: string; message: string };
}

interface Group {
  members: Conn[];
  next: number;
}

interface Namespace {
  name: string;
  byName: Map<string, Conn>;
  byId: Map<string, Conn>;
  groups: Map<string, Group>;
  topics: TopicTrie<Conn>;
  watchers: Set<Conn>;
}

type ConnState = 'handshake' | 'open' | 'closed';

// The shared empties of Conn's collections (never added to) and the grant of an open relay.
const NONE: Set<string> = new Set();
const NO_REQUESTS: Map<number, InFlight> = new Map();
const NO_SERVING: Set<InFlight> = new Set();
const NO_TUNNELS: Set<TunnelRecord> = new Set();
const OPEN_GRANT: AuthGrant = Object.freeze({});

class Conn {
  state: ConnState = 'handshake';
  name: string | undefined;
  /** The `from` stamped on what this peer sends: its name, else its id. */
  label: string;
  ns: Namespace | undefined;
  // Collections start as shared empty ones and become the connection's own on first add: an
  // idle connection (most of them) holds none. Only the add sites below may replace them.
  groups: Set<string> = NONE;
  patterns: Set<string> = NONE;
  grant: AuthGrant = OPEN_GRANT;
  /** The peer's session token from HELLO ('' if none): a reconnect with it may take the name back. */
  session = '';
  timer: ReturnType<typeof setTimeout> | undefined;
  connection!: Connection<Conn>;
  /** Set by `Router.close` to learn when this connection's transport has closed. */
  onClosed: (() => void) | undefined;
  /** Requests this peer sent that await a reply, by request id. */
  requests: Map<number, InFlight> = NO_REQUESTS;
  /** Requests routed to this peer that it has not answered. */
  serving: Set<InFlight> = NO_SERVING;
  /** Tunnels this peer is an end of. */
  tunnels: Set<TunnelRecord> = NO_TUNNELS;
  /** Token bucket for rateLimit. */
  tokens = 0;
  refilled = 0;
  /** When the outgoing buffer first went over maxBufferedBytes (0 = it is not over). */
  overSince = 0;
  /** Last time a rate-limit ERR was sent (they are sent at most once a second). */
  rateErrAt = 0;
  constructor(readonly id: string) {
    this.label = id;
  }
}

const DEFAULT_LIMITS: RouterLimits = {
  maxFrameBytes: DEFAULT_MAX_FRAME,
  handshakeTimeout: 10_000,
  maxConnections: 10_000,
  maxPeersPerNamespace: 10_000,
  maxPendingRequests: 1000,
  rateLimit: 100_000,
  maxBufferedBytes: 8 * 1024 * 1024,
  slowConsumerTimeout: 5000,
  holdTtl: 60_000,
  holdMaxMessages: 1000,
  holdMaxBytes: 1024 * 1024,
  holdMaxTotalBytes: 64 * 1024 * 1024,
  maxTunnels: 1000,
  maxSubscriptions: 1000,
  maxPatternTokens: 32,
};

/** Client-to-relay frame kinds; anything else from a client is a protocol error. */
const FROM_CLIENT = new Set<number>([
  Kind.Hello, Kind.Bye, Kind.Ping, Kind.Msg, Kind.Ack, Kind.Req, Kind.Rep, Kind.Pub, Kind.Bcast, Kind.Signal,
  Kind.Sub, Kind.Unsub, Kind.Join, Kind.Leave, Kind.Peers, Kind.Watch,
  Kind.TOpen, Kind.TAccept, Kind.TData, Kind.TCredit, Kind.TEnd, Kind.TClose,
]);

export class Router extends Emitter<RouterEvents> {
  readonly limits: RouterLimits;
  readonly #auth: AuthHook | undefined;
  readonly #namespaces = new Map<string, Namespace>();
  readonly #conns = new Set<Conn>();
  readonly #fanout = new ByteWriter(4096);
  /** Reused for each publish's set of matching connections. */
  readonly #matched = new Set<Conn>();
  // Ids are unique per router instance; the random part keeps ids from an earlier relay run
  // from naming a different peer after a restart.
  readonly #idBase = `${ID_PREFIX}${randomToken(4)}`;
  #nextId = 0;
  #closing = false;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  /** One handlers object for every connection (no closures per connection). */
  readonly #handlers: ConnectionHandlers<Conn> = {
    frame: (f, conn) => this.#onFrame(conn.owner, f),
    protocolError: (err, conn) => this.#fail(conn.owner, err),
    drain: (conn) => {
      if (conn.bufferedAmount <= this.limits.maxBufferedBytes) conn.owner.overSince = 0;
    },
    close: (info, conn) => {
      this.#onClose(conn.owner, info);
      conn.owner.onClosed?.();
    },
  };
  // Metrics: frame counters indexed by kind byte, shared with every Connection.
  readonly #counters = { framesIn: new Float64Array(256), bytesIn: new Float64Array(256), framesOut: new Float64Array(256), bytesOut: new Float64Array(256) };
  readonly #drops = new Map<DropReason, number>();
  readonly #latency = { counts: new Array<number>(LATENCY_BOUNDS.length + 1).fill(0), sum: 0, count: 0 };
  #requestsForwarded = 0;
  /** Held messages by `namespace\u0000name`. */
  readonly #holds = new Map<string, Hold>();
  /** Open tunnels by `openerId:tid`. */
  readonly #tunnels = new Map<string, TunnelRecord>();
  #heldBytes = 0;
  #heldCount = 0;
  #slowConsumerDisconnects = 0;
  #authFailures = 0;
  #protocolErrors = 0;

  constructor(options: RouterOptions = {}) {
    super();
    this.#auth = options.auth;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    // The limit travels in WELCOME as a varuint and frame lengths are u32: it must fit both.
    const { maxFrameBytes, handshakeTimeout } = this.limits;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`limits.maxFrameBytes must be an integer from 1 to 2^32-1, got ${maxFrameBytes}`);
    }
    if (!(handshakeTimeout > 0)) throw new RangeError(`limits.handshakeTimeout must be a positive number of ms, got ${handshakeTimeout}`);
    for (const key of ['maxConnections', 'maxPeersPerNamespace', 'maxPendingRequests', 'rateLimit', 'maxBufferedBytes', 'slowConsumerTimeout', 'holdMaxMessages', 'holdMaxBytes', 'holdMaxTotalBytes', 'maxTunnels', 'maxSubscriptions', 'maxPatternTokens'] as const) {
      if (!(this.limits[key] > 0)) throw new RangeError(`limits.${key} must be a positive number, got ${this.limits[key]}`);
    }
    if (!(this.limits.holdTtl >= 0)) throw new RangeError(`limits.holdTtl must be 0 or more ms, got ${this.limits.holdTtl}`);
    this.on('auth-failure', () => this.#authFailures++);
  }

  /** A snapshot of the counters and gauges (rendered as Prometheus text by the Node relay). */
  metrics(): RouterMetrics {
    const byKind = (a: Float64Array): Record<string, number> => {
      const out: Record<string, number> = {};
      for (let k = 0; k < 256; k++) if (a[k]! > 0) out[kindName(k)] = a[k]!;
      return out;
    };
    const counts: number[] = [];
    let cumulative = 0;
    for (const n of this.#latency.counts) counts.push((cumulative += n));
    return {
      connections: this.#conns.size,
      peers: this.namespaces(),
      framesIn: byKind(this.#counters.framesIn),
      bytesIn: byKind(this.#counters.bytesIn),
      framesOut: byKind(this.#counters.framesOut),
      bytesOut: byKind(this.#counters.bytesOut),
      drops: Object.fromEntries(this.#drops),
      requests: this.#requestsForwarded,
      held: { messages: this.#heldCount, bytes: this.#heldBytes },
      requestLatency: { bounds: LATENCY_BOUNDS, counts, sum: this.#latency.sum, count: this.#latency.count },
      slowConsumerDisconnects: this.#slowConsumerDisconnects,
      authFailures: this.#authFailures,
      protocolErrors: this.#protocolErrors,
    };
  }

  /** Outgoing bytes buffered for the peer with this id (for diagnostics and tests). */
  bufferedAmount(id: string): number | undefined {
    for (const c of this.#conns) if (c.id === id) return c.connection.bufferedAmount;
    return undefined;
  }

  /** Number of open transports (including those still in their handshake). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Takes ownership of a transport: runs the handshake, then routes its frames. */
  accept(transport: Transport): void {
    if (this.#closing) {
      transport.close({ code: CloseCode.GOING_AWAY, reason: 'relay shutting down' });
      return;
    }
    // join(), not +: a flat string, not a rope node the id would keep alive.
    const c = new Conn([this.#idBase, (this.#nextId++).toString(36)].join(""));
    const full = this.#conns.size >= this.limits.maxConnections;
    this.#conns.add(c);
    c.connection = new Connection<Conn>(transport, this.#handlers, { maxFrameBytes: this.limits.maxFrameBytes, counters: this.#counters }, c);
    c.tokens = this.limits.rateLimit * 2;
    c.refilled = Date.now();
    if (full) {
      this.#drop(c, undefined, '', DropReason.LIMIT);
      this.#kick(c, CloseCode.LIMIT, ErrorCode.LIMIT, `relay is at its ${this.limits.maxConnections}-connection limit`);
      return;
    }
    this.#sweeper ??= setInterval(() => this.#sweep(), 250);
    // Clamped: setTimeout turns a delay past 2^31-1 ms (Infinity included) into 1 ms.
    c.timer = setTimeout(() => {
      c.timer = undefined;
      if (c.state === 'handshake') this.#kick(c, CloseCode.TIMEOUT, ErrorCode.TIMEOUT, 'handshake not completed in time');
    }, Math.min(this.limits.handshakeTimeout, 0x7fffffff));
  }

  /** Named and anonymous peers of a namespace (or all namespaces). */
  connections(namespace?: string): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const c of this.#conns) {
      if (c.state !== 'open' || (namespace !== undefined && c.ns!.name !== namespace)) continue;
      out.push(info(c));
    }
    return out;
  }

  /** Peer counts by namespace. */
  namespaces(): Map<string, number> {
    const out = new Map<string, number>();
    for (const ns of this.#namespaces.values()) out.set(ns.name, ns.byId.size);
    return out;
  }

  /**
   * Stops accepting, tells every peer the relay is going away, and closes every connection.
   * Resolves when all transports have closed, or after `timeout` ms (then the rest are cut).
   */
  async close(timeout = 5000): Promise<void> {
    this.#closing = true;
    const pending: Promise<void>[] = [];
    for (const c of this.#conns) {
      pending.push(new Promise<void>((resolve) => (c.onClosed = resolve)));
      this.#kick(c, CloseCode.GOING_AWAY, ErrorCode.CLOSED, 'relay shutting down');
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(pending),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout))),
    ]);
    clearTimeout(timer);
    for (const c of this.#conns) this.#onClose(c, { code: CloseCode.GOING_AWAY, reason: 'relay shut down' });
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    // Held messages are not acked: their senders still have them and resend on reconnect.
    this.#holds.clear();
    this.#heldBytes = 0;
    this.#heldCount = 0;
  }

  /** Expires unanswered requests and held messages, and disconnects slow consumers. */
  #sweep(): void {
    const now = Date.now();
    const cap = this.limits.maxBufferedBytes;
    for (const c of this.#conns) {
      for (const r of c.requests.values()) if (r.deadline <= now) this.#settleRequest(r);
      if (c.overSince === 0) continue;
      if (c.connection.bufferedAmount <= cap) c.overSince = 0;
      else if (now - c.overSince >= this.limits.slowConsumerTimeout && c.connection.open) {
        // `open`: a kicked connection's transport may take a while to close; count it once.
        this.#slowConsumerDisconnects++;
        this.#kick(c, CloseCode.SLOW_CONSUMER, ErrorCode.LIMIT, `slow consumer: over ${cap} buffered bytes for ${this.limits.slowConsumerTimeout} ms`);
      }
    }
    for (const hold of this.#holds.values()) this.#expireHeld(hold, now);
    if (this.#conns.size === 0 && this.#holds.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Keeps a durable message for an offline name, or refuses it (expired) when over a bound. */
  #hold(c: Conn, f: FrameOf<typeof Kind.Msg>, name: string): void {
    const ns = c.ns!;
    const key = `${ns.name}\u0000${name}`;
    let hold = this.#holds.get(key);
    const dest = name;
    const tell = (status: number): void => {
      this.#send(c, frame(Kind.Ack, { to: c.label, from: dest, dest, origin: f.origin, seq: f.seq, status }), c);
    };
    // A resend of what is already held (the sender reconnected): keep one copy.
    if (hold?.msgs.some((h) => h.origin === f.origin && h.seq === f.seq)) return tell(AckStatus.Held);
    f.from = c.label;
    // Encoded once, into a buffer of its own: the hold keeps no view into the incoming message.
    const unit = encodeFrame(f);
    const bytes = unit.length + HELD_OVERHEAD;
    const l = this.limits;
    if ((hold?.msgs.length ?? 0) >= l.holdMaxMessages || (hold?.bytes ?? 0) + bytes > l.holdMaxBytes || this.#heldBytes + bytes > l.holdMaxTotalBytes) {
      this.#drop(c, f, f.to, DropReason.EXPIRED);
      return tell(AckStatus.Expired);
    }
    if (!hold) this.#holds.set(key, (hold = { namespace: ns.name, name, msgs: [], bytes: 0 }));
    hold.msgs.push({ unit, origin: f.origin, seq: f.seq, sender: c.label, bytes, at: Date.now() });
    hold.bytes += bytes;
    this.#heldBytes += bytes;
    this.#heldCount++;
    this.#sweeper ??= setInterval(() => this.#sweep(), 250);
    tell(AckStatus.Held);
  }

  /** Drops held messages older than holdTtl and tells their senders (if connected). */
  #expireHeld(hold: Hold, now: number): void {
    const ttl = this.limits.holdTtl;
    let n = 0;
    while (n < hold.msgs.length && hold.msgs[n]!.at + ttl <= now) n++;
    if (n === 0) return;
    const ns = this.#namespaces.get(hold.namespace);
    for (const h of hold.msgs.splice(0, n)) {
      this.#unhold(hold, h);
      const sender = ns && this.#peer(ns, h.sender);
      if (sender) this.#send(sender, frame(Kind.Ack, { to: sender.label, from: hold.name, dest: hold.name, origin: h.origin, seq: h.seq, status: AckStatus.Expired }), sender);
      this.#count(DropReason.EXPIRED);
    }
    if (hold.msgs.length === 0) this.#holds.delete(`${hold.namespace}\u0000${hold.name}`);
  }

  #unhold(hold: Hold, h: Held): void {
    hold.bytes -= h.bytes;
    this.#heldBytes -= h.bytes;
    this.#heldCount--;
  }

  /** Delivers what was held for `c`'s name, in order, ahead of anything else. */
  #deliverHeld(c: Conn): void {
    const key = `${c.ns!.name}\u0000${c.name}`;
    const hold = this.#holds.get(key);
    if (!hold) return;
    this.#holds.delete(key);
    // At most holdMaxBytes, into a fresh connection: within its buffer cap.
    for (const h of hold.msgs) {
      this.#unhold(hold, h);
      c.connection.writeEncoded(h.unit);
    }
  }

  #settleRequest(r: InFlight): void {
    r.requester.requests.delete(r.id);
    r.responder.serving.delete(r);
  }

  /** Takes one token from the connection's bucket; false when it is empty. */
  #rate(c: Conn): boolean {
    if (c.tokens >= 1) {
      c.tokens--;
      return true;
    }
    const now = Date.now();
    const rate = this.limits.rateLimit;
    c.tokens = Math.min(rate * 2, c.tokens + ((now - c.refilled) * rate) / 1000);
    c.refilled = now;
    if (c.tokens >= 1) {
      c.tokens--;
      return true;
    }
    return false;
  }

  /** Whether `target` can take more now; notes when it went over its buffer cap. */
  #hasRoom(target: Conn): boolean {
    if (target.connection.bufferedAmount <= this.limits.maxBufferedBytes) return true;
    if (target.overSince === 0) target.overSince = Date.now();
    return false;
  }

  /** Tells a MSG's sender to retry later (as if the receiver's mailbox were full). */
  #refuseMsg(c: Conn, f: FrameOf<typeof Kind.Msg>, reason: DropReason): void {
    this.#drop(c, f, f.to, reason);
    const dest = splitAddress(f.to).name;
    this.#send(c, frame(Kind.Ack, { to: c.label, from: dest, dest, origin: f.origin, seq: f.seq, status: AckStatus.Limit }), c);
  }

  /**
   * A frame over the sender's rate limit. Nothing it asks for is done; what waits on it learns
   * so: a MSG is refused (its sender retries), a request or an action with a ref is answered
   * LIMIT, a reply reaches its requester as LIMIT, a tunnel frame ends its tunnel with LIMIT;
   * the rest (PING, ACK, PUB, BCAST) are dropped, with one ERR LIMIT a second at most.
   */
  #overRate(c: Conn, f: Frame): void {
    const message = `rate limit of ${this.limits.rateLimit} frames per second exceeded`;
    switch (f.kind) {
      case Kind.Msg:
        return this.#refuseMsg(c, f, DropReason.RATE);
      case Kind.Req:
        this.#drop(c, f, f.to, DropReason.RATE);
        this.#send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.LIMIT, message }), c);
        return;
      case Kind.Rep: {
        this.#drop(c, f, f.to, DropReason.RATE);
        const requester = this.#peer(c.ns!, f.to);
        const r = requester?.requests.get(f.id);
        if (!requester || !r || r.responder !== c) return;
        this.#settleRequest(r);
        this.#send(requester, frame(Kind.Rep, { to: requester.label, from: c.label, id: f.id, code: ErrorCode.LIMIT, message: `${c.label} exceeded its rate limit: its reply was dropped` }), c);
        return;
      }
      case Kind.Sub:
      case Kind.Unsub:
      case Kind.Join:
      case Kind.Leave:
      case Kind.Peers:
      case Kind.Watch:
        this.#drop(c, f, '', DropReason.RATE);
        this.#send(c, frame(Kind.Err, { ref: f.ref, code: ErrorCode.LIMIT, message }), c);
        return;
      case Kind.TOpen:
        this.#drop(c, f, f.to, DropReason.RATE);
        this.#send(c, frame(Kind.TClose, { to: c.label, from: '', tid: f.tid, dir: 1, code: ErrorCode.LIMIT, message }), c);
        return;
      case Kind.TAccept:
      case Kind.TData:
      case Kind.TCredit:
      case Kind.TEnd:
      case Kind.TClose: {
        this.#drop(c, f, f.to, DropReason.RATE);
        const t = this.#tunnelOf(c, f);
        if (t) this.#endTunnel(t, ErrorCode.LIMIT, message);
        return;
      }
      default: {
        this.#drop(c, f, '', DropReason.RATE);
        const now = Date.now();
        if (now - c.rateErrAt < 1000) return;
        c.rateErrAt = now;
        this.#send(c, frame(Kind.Err, { ref: 0, code: ErrorCode.LIMIT, message }), c);
      }
    }
  }

  // ---- frames -------------------------------------------------------------------------------

  /** Handles one decoded frame. The frame object is this call's alone: forwarding stamps `from` on it in place. */
  #onFrame(c: Conn, f: Frame): void {
    if (c.state === 'closed') return;
    try {
      if (!FROM_CLIENT.has(f.kind)) throw new ProtocolError(`${kindName(f.kind)} frames are sent by the relay, not to it`);
      if (c.state === 'handshake') {
        if (f.kind !== Kind.Hello || c.ns !== undefined) throw new ProtocolError(`${kindName(f.kind)} before WELCOME`);
        this.#hello(c, f).catch((err: unknown) => this.#fail(c, new ProtocolError(`internal error handling Hello: ${String(err)}`)));
        return;
      }
      if (f.kind === Kind.Hello) throw new ProtocolError('second HELLO');
      if (f.kind === Kind.Bye) return c.connection.close(CloseCode.NORMAL, 'bye');
      // Every other kind a client sends counts against its rate, whatever it costs the relay.
      if (!this.#rate(c)) return this.#overRate(c, f);
      switch (f.kind) {
        case Kind.Ping:
          this.#send(c, frame(Kind.Pong, { nonce: f.nonce }), c);
          return;
        case Kind.Msg:
          return this.#msg(c, f);
        case Kind.Ack:
          return this.#ack(c, f);
        case Kind.Req:
          return this.#req(c, f);
        case Kind.Rep:
          return this.#rep(c, f);
        case Kind.Pub:
          return this.#pub(c, f);
        case Kind.Bcast:
          return this.#bcast(c, f);
        case Kind.Signal:
          return this.#signal(c, f);
        case Kind.Sub:
        case Kind.Unsub:
          return this.#sub(c, f);
        case Kind.Join:
        case Kind.Leave:
          return this.#join(c, f);
        case Kind.Peers:
          return this.#peers(c, f);
        case Kind.TOpen:
          return this.#tunnelOpen(c, f);
        case Kind.TAccept:
        case Kind.TData:
        case Kind.TCredit:
        case Kind.TEnd:
        case Kind.TClose:
          return this.#tunnelFrame(c, f);
        case Kind.Watch:
          if (f.on) c.ns!.watchers.add(c);
          else c.ns!.watchers.delete(c);
          this.#ok(c, f.ref);
          return;
        default:
          throw new ProtocolError(`unexpected ${kindName(f.kind)}`);
      }
    } catch (err) {
      if (err instanceof ProtocolError) this.#fail(c, err);
      else this.#fail(c, new ProtocolError(`internal error handling ${kindName(f.kind)}: ${String(err)}`));
    }
  }

  async #hello(c: Conn, f: FrameOf<typeof Kind.Hello>): Promise<void> {
    c.ns = PLACEHOLDER_NS; // marks the HELLO as seen while auth runs
    if (f.version !== PROTOCOL_VERSION) {
      return this.#fail(c, new ProtocolError(`unsupported protocol version ${f.version} (relay speaks ${PROTOCOL_VERSION})`));
    }
    let grant: AuthGrant = OPEN_GRANT;
    if (this.#auth) {
      try {
        grant = (await this.#auth({ name: f.name, namespace: f.namespace, secret: f.secret, token: f.token })) ?? {};
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.emit('auth-failure', { id: c.id, name: f.name, message });
        return this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, message || 'not authorized');
      }
      // Kicked while the hook ran (handshake timeout, a frame before WELCOME): go no further.
      if (c.state === 'closed' || !c.connection.open) return;
    }
    const name = grant.name ?? (f.name || undefined);
    if (f.name && grant.name !== undefined && grant.name !== f.name) {
      this.emit('auth-failure', { id: c.id, name: f.name, message: `granted name ${grant.name}` });
      return this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, `may not claim name "${f.name}"`);
    }
    if (name !== undefined) {
      const bad = checkName(name);
      if (bad) return this.#fail(c, new ProtocolError(bad));
    }
    const nsName = grant.namespace ?? (f.namespace || 'default');
    const badNs = checkName(nsName, 'namespace');
    if (badNs) return this.#fail(c, new ProtocolError(badNs));
    let ns = this.#namespace(nsName);
    if (ns.byId.size >= this.limits.maxPeersPerNamespace) {
      if (ns.byId.size === 0) this.#namespaces.delete(nsName);
      return this.#kick(c, CloseCode.LIMIT, ErrorCode.LIMIT, `namespace "${nsName}" is at its ${this.limits.maxPeersPerNamespace}-peer limit`);
    }
    // Before any takeover: expired credentials must not even replace an old session.
    if (grant.expiresAt !== undefined && grant.expiresAt <= Date.now()) {
      if (ns.byId.size === 0) this.#namespaces.delete(nsName);
      return this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, 'credentials expired');
    }
    const holder = name !== undefined ? ns.byName.get(name) : undefined;
    if (holder) {
      // The same peer reconnecting (its old link not yet seen dead) takes its name back; anyone
      // else is refused.
      if (f.session === '' || holder.session !== f.session) {
        return this.#kick(c, CloseCode.NAME_TAKEN, ErrorCode.NAME_TAKEN, `name "${name}" is taken in namespace "${nsName}"`);
      }
      this.#kick(holder, CloseCode.REPLACED, ErrorCode.CLOSED, 'replaced by a new session of the same peer');
      // If the holder was the namespace's last peer, its close dropped the namespace: join the
      // live one, not the dropped object, or later peers could never reach this one.
      ns = this.#namespace(nsName);
    }
    clearTimeout(c.timer);
    c.timer = undefined;
    c.state = 'open';
    c.ns = ns;
    c.grant = grant;
    c.session = f.session;
    c.name = name;
    c.label = name ?? c.id;
    ns.byId.set(c.id, c);
    if (name !== undefined) ns.byName.set(name, c);
    if (grant.expiresAt !== undefined) {
      // setTimeout overflows past 2^31-1 ms; far expiries are re-armed in steps.
      const arm = (): void => {
        const left = grant.expiresAt! - Date.now();
        c.timer = setTimeout(() => {
          if (left > 0x7fffffff) return arm();
          this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, 'credentials expired');
        }, Math.min(left, 0x7fffffff));
      };
      arm();
    }
    c.connection.write(frame(Kind.Welcome, { id: c.id, name: name ?? '', namespace: nsName, maxFrame: this.limits.maxFrameBytes }));
    if (name !== undefined) {
      this.#deliverHeld(c);
      this.#presence(ns, c, PresenceEvent.Join);
    }
    if (this.listens('connect')) this.emit('connect', info(c));
  }

  #msg(c: Conn, f: FrameOf<typeof Kind.Msg>): void {
    const name = splitAddress(f.to).name;
    const target = this.#peer(c.ns!, name);
    // A name that is not connected may be offline for a while: hold for it (ids are per session).
    if (!target && this.limits.holdTtl > 0 && !name.startsWith(ID_PREFIX)) return this.#hold(c, f, name);
    if (!target) {
      this.#drop(c, f, f.to, DropReason.NO_ROUTE);
      this.#send(c, frame(Kind.Err, { ref: f.ref, code: ErrorCode.NO_ROUTE, message: `no peer "${splitAddress(f.to).name}"` }), c);
      return;
    }
    // A slow receiver gets no more durable messages: they wait in the sender's outbox.
    if (!this.#hasRoom(target)) return this.#refuseMsg(c, f, DropReason.SLOW_CONSUMER);
    f.from = c.label;
    this.#forward(c, target, f);
  }

  /** SIGNAL (direct-link signalling): to a connected peer of the namespace, best-effort. */
  #signal(c: Conn, f: FrameOf<typeof Kind.Signal>): void {
    const target = this.#peer(c.ns!, f.to);
    if (!target || target === c) return this.#drop(c, f, f.to, DropReason.NO_ROUTE);
    f.from = c.label;
    this.#forward(c, target, f);
  }

  #req(c: Conn, f: FrameOf<typeof Kind.Req>): void {
    const name = splitAddress(f.to).name;
    const target = this.#peer(c.ns!, name) ?? this.#pickMember(c.ns!, name);
    if (!target) {
      this.#drop(c, f, f.to, DropReason.NO_ROUTE);
      this.#send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.NO_ROUTE, message: `no peer or group "${name}"` }), c);
      return;
    }
    const refuse = (reason: DropReason, message: string): void => {
      this.#drop(c, f, f.to, reason);
      this.#send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.LIMIT, message }), c);
    };
    if (c.requests.size >= this.limits.maxPendingRequests) {
      return refuse(DropReason.LIMIT, `${this.limits.maxPendingRequests} requests already awaiting replies`);
    }
    if (c.requests.has(f.id)) return refuse(DropReason.LIMIT, `request id ${f.id} is already in flight`);
    if (!this.#hasRoom(target)) return refuse(DropReason.SLOW_CONSUMER, `"${name}" is not keeping up`);
    const now = Date.now();
    const r: InFlight = { id: f.id, requester: c, responder: target, start: performance.now(), deadline: now + Math.min(f.timeout, 0x7fffffff) };
    if (c.requests === NO_REQUESTS) c.requests = new Map();
    c.requests.set(f.id, r);
    if (target.serving === NO_SERVING) target.serving = new Set();
    target.serving.add(r);
    this.#requestsForwarded++;
    f.from = c.label;
    this.#forward(c, target, f);
  }

  /** A reply is forwarded only from the peer the request was routed to, once. */
  #rep(c: Conn, f: FrameOf<typeof Kind.Rep>): void {
    const requester = this.#peer(c.ns!, f.to);
    const r = requester?.requests.get(f.id);
    if (!requester || !r || r.responder !== c) return this.#drop(c, f, f.to, requester ? DropReason.NOT_REQUESTED : DropReason.NO_ROUTE);
    this.#settleRequest(r);
    const seconds = (performance.now() - r.start) / 1000;
    const l = this.#latency;
    let i = 0;
    while (i < LATENCY_BOUNDS.length && seconds > LATENCY_BOUNDS[i]!) i++;
    l.counts[i]!++;
    l.sum += seconds;
    l.count++;
    f.from = c.label;
    // A requester that does not read its socket gets no more replies: it times out, and is cut
    // as a slow consumer if it stays over the cap.
    this.#forward(c, requester, f);
  }

  /** TOPEN: records the tunnel and forwards it, or answers NO_ROUTE for an unknown peer. */
  #tunnelOpen(c: Conn, f: FrameOf<typeof Kind.TOpen>): void {
    const target = this.#peer(c.ns!, splitAddress(f.to).name);
    const key = `${c.id}:${f.tid}`;
    const refuse = (code: typeof ErrorCode.NO_ROUTE | typeof ErrorCode.PROTOCOL | typeof ErrorCode.LIMIT, message: string, reason: DropReason = code): void => {
      this.#drop(c, f, f.to, reason);
      this.#send(c, frame(Kind.TClose, { to: c.label, from: '', tid: f.tid, dir: 1, code, message }), c);
    };
    if (!target) return refuse(ErrorCode.NO_ROUTE, `no peer "${splitAddress(f.to).name}"`);
    if (this.#tunnels.has(key)) return refuse(ErrorCode.PROTOCOL, `tunnel ${f.tid} is already open`);
    // Each open tunnel costs the relay a record: bounded per connection, at both ends.
    const max = this.limits.maxTunnels;
    if (c.tunnels.size >= max || target.tunnels.size >= max) return refuse(ErrorCode.LIMIT, `at most ${max} open tunnels per connection`);
    if (!this.#hasRoom(target)) return refuse(ErrorCode.LIMIT, `"${target.label}" is not keeping up`, DropReason.SLOW_CONSUMER);
    const t: TunnelRecord = { tid: f.tid, opener: c, acceptor: target, ends: 0, credit: [0, f.window] };
    this.#tunnels.set(key, t);
    if (c.tunnels === NO_TUNNELS) c.tunnels = new Set();
    if (target.tunnels === NO_TUNNELS) target.tunnels = new Set();
    c.tunnels.add(t);
    target.tunnels.add(t);
    f.from = c.label;
    this.#forward(c, target, f);
  }

  /**
   * Frames of an open tunnel go to its other end, and only from one of its ends: `dir` says
   * which (TACCEPT always comes from the acceptor).
   */
  #tunnelFrame(
    c: Conn,
    f: FrameOf<typeof Kind.TAccept> | FrameOf<typeof Kind.TData> | FrameOf<typeof Kind.TCredit> | FrameOf<typeof Kind.TEnd> | FrameOf<typeof Kind.TClose>,
  ): void {
    const t = this.#tunnelOf(c, f);
    if (!t) return this.#drop(c, f, f.to, DropReason.NO_TUNNEL);
    const fromOpener = f.kind !== Kind.TAccept && f.dir === 0;
    const target = fromOpener ? t.acceptor : t.opener;
    const d: 0 | 1 = fromOpener ? 0 : 1;
    if (f.kind === Kind.TAccept) t.credit[0] += f.window;
    else if (f.kind === Kind.TCredit) t.credit[fromOpener ? 1 : 0] += f.bytes;
    else if (f.kind === Kind.TData && (t.credit[d] -= f.body.length) < 0) {
      this.#drop(c, f, f.to, DropReason.PROTOCOL);
      return this.#endTunnel(t, ErrorCode.PROTOCOL, 'tunnel data beyond the granted window');
    }
    if (f.kind !== Kind.TClose && !this.#hasRoom(target)) {
      // Dropping a tunnel frame would break the stream: the tunnel ends instead, and the relay
      // queues nothing more for a connection that is not reading.
      this.#drop(c, f, f.to, DropReason.SLOW_CONSUMER);
      return this.#endTunnel(t, ErrorCode.LIMIT, `${target.label} is not keeping up (over its relay buffer)`);
    }
    if (f.kind === Kind.TClose || (f.kind === Kind.TEnd && ++t.ends === 2)) this.#forgetTunnel(t);
    f.from = c.label;
    // A TCLOSE goes through even over the cap: at most one per tunnel end.
    this.#forward(c, target, f, f.kind === Kind.TClose);
  }

  /** The open tunnel a frame from `c` belongs to, if `c` is the end it says it comes from. */
  #tunnelOf(
    c: Conn,
    f: FrameOf<typeof Kind.TAccept> | FrameOf<typeof Kind.TData> | FrameOf<typeof Kind.TCredit> | FrameOf<typeof Kind.TEnd> | FrameOf<typeof Kind.TClose>,
  ): TunnelRecord | undefined {
    const fromOpener = f.kind !== Kind.TAccept && f.dir === 0;
    const opener = fromOpener ? c : this.#peer(c.ns!, f.to);
    const t = opener && this.#tunnels.get(`${opener.id}:${f.tid}`);
    if (!t || (fromOpener ? t.opener !== c : t.acceptor !== c)) return undefined;
    return t;
  }

  /**
   * Ends a tunnel from the relay: each end gets a TCLOSE as if from the other end. Sent even to
   * a connection over its buffer cap (one small frame per tunnel end).
   */
  #endTunnel(t: TunnelRecord, code: string, message: string): void {
    this.#forgetTunnel(t);
    const { opener: o, acceptor: a } = t;
    o.connection.write(frame(Kind.TClose, { to: o.label, from: a.label, tid: t.tid, dir: 1, code, message }));
    a.connection.write(frame(Kind.TClose, { to: a.label, from: o.label, tid: t.tid, dir: 0, code, message }));
  }

  #forgetTunnel(t: TunnelRecord): void {
    this.#tunnels.delete(`${t.opener.id}:${t.tid}`);
    t.opener.tunnels.delete(t);
    t.acceptor.tunnels.delete(t);
  }

  /**
   * Acks go to the peer named (or id'd) in `to`; if it is gone they are dropped. An ack must
   * come from the destination it names (`dest`, by name or id): anyone else could make a sender
   * drop messages its receiver never got. Its `from` is stamped as that `dest`, so the sender
   * can check it too.
   */
  #ack(c: Conn, f: FrameOf<typeof Kind.Ack>): void {
    if (f.dest !== c.id && (c.name === undefined || f.dest !== c.name)) return this.#drop(c, f, f.to, DropReason.NOT_DESTINATION);
    const target = this.#peer(c.ns!, f.to);
    if (!target) return this.#drop(c, f, f.to, DropReason.NO_ROUTE);
    f.from = f.dest;
    this.#forward(c, target, f);
  }

  #pub(c: Conn, f: FrameOf<typeof Kind.Pub>): void {
    const bad = checkTopic(f.topic);
    if (bad) return this.#refuse(c, 0, ErrorCode.PROTOCOL, bad);
    if (!allowed(c.grant.publish, (p) => matchTopic(p, f.topic))) {
      return this.#refuse(c, 0, ErrorCode.AUTH, `may not publish to "${f.topic}"`);
    }
    const subs = c.ns!.topics.match(f.topic, this.#matched);
    if (subs.size === 0) return this.#drop(c, f, f.topic, DropReason.NO_ROUTE);
    f.from = c.label;
    this.#fanOut(c, subs, f, f.topic);
    subs.clear();
  }

  #bcast(c: Conn, f: FrameOf<typeof Kind.Bcast>): void {
    const group = c.ns!.groups.get(splitAddress(f.to).name);
    if (!group) {
      this.#drop(c, f, f.to, DropReason.NO_ROUTE);
      this.#send(c, frame(Kind.Err, { ref: f.ref, code: ErrorCode.NO_ROUTE, message: `no group "${f.to}"` }), c);
      return;
    }
    f.from = c.label;
    this.#fanOut(c, group.members, f, f.to);
  }

  #sub(c: Conn, f: FrameOf<typeof Kind.Sub> | FrameOf<typeof Kind.Unsub>): void {
    const bad = checkPattern(f.pattern);
    if (bad) return this.#refuse(c, f.ref, ErrorCode.PROTOCOL, bad);
    const ns = c.ns!;
    if (f.kind === Kind.Unsub) {
      if (c.patterns.delete(f.pattern)) ns.topics.remove(f.pattern, c);
      return this.#ok(c, f.ref);
    }
    if (!allowed(c.grant.subscribe, (p) => patternCovers(p, f.pattern))) {
      return this.#refuse(c, f.ref, ErrorCode.AUTH, `may not subscribe to "${f.pattern}"`);
    }
    if (!c.patterns.has(f.pattern)) {
      const { maxSubscriptions, maxPatternTokens } = this.limits;
      if (c.patterns.size >= maxSubscriptions) {
        this.#drop(c, f, f.pattern, DropReason.LIMIT);
        return this.#refuse(c, f.ref, ErrorCode.LIMIT, `at most ${maxSubscriptions} subscriptions per connection`);
      }
      if (tokenCount(f.pattern) > maxPatternTokens) {
        this.#drop(c, f, f.pattern, DropReason.LIMIT);
        return this.#refuse(c, f.ref, ErrorCode.LIMIT, `a pattern may have at most ${maxPatternTokens} tokens`);
      }
      if (c.patterns === NONE) c.patterns = new Set();
      c.patterns.add(f.pattern);
      ns.topics.add(f.pattern, c);
    }
    this.#ok(c, f.ref);
  }

  #join(c: Conn, f: FrameOf<typeof Kind.Join> | FrameOf<typeof Kind.Leave>): void {
    const bad = checkName(f.group, 'group');
    if (bad) return this.#refuse(c, f.ref, ErrorCode.PROTOCOL, bad);
    if (f.kind === Kind.Leave) {
      this.#leaveGroup(c, f.group);
      return this.#ok(c, f.ref);
    }
    if (!allowed(c.grant.groups, (p) => matchTopic(p, f.group))) {
      return this.#refuse(c, f.ref, ErrorCode.AUTH, `may not join group "${f.group}"`);
    }
    if (!c.groups.has(f.group)) {
      if (c.groups === NONE) c.groups = new Set();
      c.groups.add(f.group);
      let g = c.ns!.groups.get(f.group);
      if (!g) c.ns!.groups.set(f.group, (g = { members: [], next: 0 }));
      g.members.push(c);
    }
    this.#ok(c, f.ref);
  }

  #peers(c: Conn, f: FrameOf<typeof Kind.Peers>): void {
    // The answer can be large: no work for a connection that would not get it.
    if (!this.#hasRoom(c)) return this.#drop(c, f, c.label, DropReason.SLOW_CONSUMER);
    const list: { name: string; id: string }[] = [];
    for (const [name, p] of c.ns!.byName) list.push({ name, id: p.id });
    this.#send(c, frame(Kind.Ok, { ref: f.ref }, msgpackEncode(list), BodyCodec.Msgpack), c);
  }

  // ---- helpers ------------------------------------------------------------------------------

  #namespace(name: string): Namespace {
    let ns = this.#namespaces.get(name);
    if (!ns) {
      ns = { name, byName: new Map(), byId: new Map(), groups: new Map(), topics: new TopicTrie(), watchers: new Set() };
      this.#namespaces.set(name, ns);
    }
    return ns;
  }

  #peer(ns: Namespace, name: string): Conn | undefined {
    return name.startsWith(ID_PREFIX) ? ns.byId.get(name) : ns.byName.get(name);
  }

  /** Round-robin over the group's members, in join order. */
  #pickMember(ns: Namespace, group: string): Conn | undefined {
    const g = ns.groups.get(group);
    if (!g || g.members.length === 0) return undefined;
    const member = g.members[g.next % g.members.length]!;
    g.next = (g.next + 1) % g.members.length;
    return member;
  }

  /**
   * Forwards a frame from `c` to `target` if `target` has room (see `#send`), else drops it
   * (SLOW_CONSUMER) and returns false. `force` skips the check, for a TCLOSE (one per tunnel end).
   */
  #forward(c: Conn, target: Conn, f: Frame, force = false): boolean {
    if (!force && !this.#hasRoom(target)) {
      this.#drop(c, f, target.label, DropReason.SLOW_CONSUMER);
      return false;
    }
    // The body is a view into a message this relay received and owns: never changed.
    target.connection.write(f, true);
    if (this.listens('trace')) this.#trace('forward', f, c.label, target.label);
    return true;
  }

  #fanOut(c: Conn, targets: Iterable<Conn>, f: Frame, to: string): void {
    // Encoded once; each subscriber's batch gets a copy of the same bytes. A large body is not
    // copied at all: each subscriber gets the head, then the same received body (BODY_NEXT).
    const large = f.body.length >= LARGE_BODY;
    const w = this.#fanout;
    if (!large) writeFramed(w, f);
    const unit = w.buf.subarray(0, w.pos);
    let n = 0;
    for (const t of targets) {
      if (!this.#hasRoom(t)) {
        this.#drop(c, f, t.label, DropReason.SLOW_CONSUMER);
        continue;
      }
      if (large) t.connection.write(f, true);
      else t.connection.writeEncoded(unit);
      n++;
    }
    w.pos = 0;
    if (this.listens('trace')) {
      this.emit('trace', { type: 'forward', kind: kindName(f.kind), from: c.label, to: `${to} (${n})`, size: f.body.length, at: Date.now() });
    }
  }

  #ok(c: Conn, ref: number): void {
    this.#send(c, frame(Kind.Ok, { ref }), c);
  }

  #refuse(c: Conn, ref: number, code: Code, message: string): void {
    if (code === ErrorCode.AUTH) this.emit('auth-failure', { id: c.id, name: c.name ?? '', message });
    this.#send(c, frame(Kind.Err, { ref, code, message }), c);
  }

  /**
   * Queues `f` for `target` when its outgoing buffer is within `maxBufferedBytes`; otherwise
   * drops it (SLOW_CONSUMER, on behalf of `from`) and returns false. Every frame the relay
   * queues for a connection comes through here, or through a path that checked the same room
   * first (forwarded MSG, REQ, tunnel frames, fan-out); the exceptions are bounded and named
   * where they are: the BYE that closes a connection, one TCLOSE per tunnel end, WELCOME and
   * the held messages (at most `holdMaxBytes`) written to a connection that just opened.
   */
  #send(target: Conn, f: Frame, from: Conn): boolean {
    if (!this.#hasRoom(target)) {
      this.#drop(from, f, target.label, DropReason.SLOW_CONSUMER);
      return false;
    }
    target.connection.write(f);
    return true;
  }

  #drop(c: Conn, f: Frame | undefined, to: string, reason: DropReason): void {
    this.#count(reason);
    if (f && this.listens('trace')) this.#trace('drop', f, c.label, to, reason);
  }

  #count(reason: DropReason): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
  }

  #trace(type: TraceEvent['type'], f: Frame, from: string, to: string, reason?: string): void {
    const e: TraceEvent = { type, kind: kindName(f.kind), from, to, size: f.body.length, at: Date.now() };
    if (f.kind === Kind.Msg || f.kind === Kind.Ack) e.id = `${f.origin}:${f.seq}`;
    else if (f.kind === Kind.Req || f.kind === Kind.Rep) e.id = String(f.id);
    if (reason !== undefined) e.reason = reason;
    this.emit('trace', e);
  }

  #presence(ns: Namespace, c: Conn, event: number): void {
    if (ns.watchers.size === 0) return;
    const f = frame(Kind.Presence, { event, name: c.name!, id: c.id });
    for (const w of ns.watchers) {
      if (w === c) continue;
      if (this.#hasRoom(w)) w.connection.write(f);
      else this.#drop(c, f, w.label, DropReason.SLOW_CONSUMER);
    }
  }

  #leaveGroup(c: Conn, name: string): void {
    if (!c.groups.delete(name)) return;
    const ns = c.ns!;
    const g = ns.groups.get(name);
    if (!g) return;
    const i = g.members.indexOf(c);
    if (i >= 0) g.members.splice(i, 1);
    if (g.members.length === 0) ns.groups.delete(name);
    else if (g.next >= g.members.length) g.next = 0;
  }

  /** Closes one connection for breaking the protocol; others are unaffected. */
  #fail(c: Conn, err: ProtocolError): void {
    if (c.state === 'closed') return;
    this.#protocolErrors++;
    this.emit('protocol-error', { id: c.id, error: err });
    if (err instanceof FrameTooLargeError) this.#kick(c, CloseCode.TOO_BIG, ErrorCode.LIMIT, err.reason);
    else this.#kick(c, CloseCode.PROTOCOL, ErrorCode.PROTOCOL, err.reason);
  }

  /** Tells the peer why (BYE) and closes its transport. */
  #kick(c: Conn, closeCode: number, code: Code, message: string): void {
    if (c.state === 'closed' || !c.connection.open) return;
    c.connection.write(frame(Kind.Bye, { code, message }));
    const reason = `${code}: ${message}`.slice(0, 120);
    c.connection.close(closeCode, reason);
    // The peer is gone for routing now: its name, groups and subscriptions are freed at once,
    // not when its socket finishes closing (a slow consumer's close waits behind its buffer).
    this.#onClose(c, { code: closeCode, reason });
  }

  #onClose(c: Conn, closeInfo: CloseInfo): void {
    if (c.state === 'closed') return;
    const wasOpen = c.state === 'open';
    c.state = 'closed';
    clearTimeout(c.timer);
    this.#conns.delete(c);
    const ns = c.ns;
    if (ns && ns !== PLACEHOLDER_NS) {
      const summary = wasOpen && this.listens('disconnect') ? info(c) : undefined;
      ns.byId.delete(c.id);
      if (c.name !== undefined && ns.byName.get(c.name) === c) ns.byName.delete(c.name);
      for (const g of [...c.groups]) this.#leaveGroup(c, g);
      for (const p of c.patterns) ns.topics.remove(p, c);
      c.patterns.clear();
      ns.watchers.delete(c);
      // Requests this peer was serving will never be answered: tell their requesters now.
      for (const r of [...c.serving]) {
        this.#settleRequest(r);
        this.#send(r.requester, frame(Kind.Rep, { to: r.requester.label, from: '', id: r.id, code: ErrorCode.CLOSED, message: `${c.label} disconnected before replying` }), c);
      }
      for (const r of [...c.requests.values()]) this.#settleRequest(r);
      // Tunnels through this peer are over: their other ends fail with CLOSED.
      for (const t of [...c.tunnels]) {
        this.#forgetTunnel(t);
        const other = t.opener === c ? t.acceptor : t.opener;
        other.connection.write(
          frame(Kind.TClose, { to: other.label, from: c.label, tid: t.tid, dir: t.opener === c ? 0 : 1, code: ErrorCode.CLOSED, message: `${c.label} disconnected` }),
        );
      }
      if (c.name !== undefined) this.#presence(ns, c, PresenceEvent.Leave);
      if (ns.byId.size === 0) this.#namespaces.delete(ns.name);
      if (summary) this.emit('disconnect', { ...summary, code: closeInfo.code, reason: closeInfo.reason });
    }
  }
}

const PLACEHOLDER_NS: Namespace = {
  name: '',
  byName: new Map(),
  byId: new Map(),
  groups: new Map(),
  topics: new TopicTrie(),
  watchers: new Set(),
};

function info(c: Conn): ConnectionInfo {
  return { id: c.id, name: c.name, namespace: c.ns?.name ?? '', groups: [...c.groups], subscriptions: [...c.patterns] };
}

function allowed(patterns: readonly string[] | undefined, test: (p: string) => boolean): boolean {
  return patterns === undefined || patterns.some(test);
}

/** Tokens in a topic or pattern. */
function tokenCount(s: string): number {
  let n = 1;
  for (let i = s.indexOf('.'); i >= 0; i = s.indexOf('.', i + 1)) n++;
  return n;
}

/** Whether every topic matched by `requested` is matched by `allowed`. */
export function patternCovers(allowedPattern: string, requested: string): boolean {
  const a = allowedPattern.split('.');
  const r = requested.split('.');
  for (let i = 0; i < a.length; i++) {
    const at = a[i]!;
    if (at === '>') return r.length > i;
    if (i >= r.length) return false;
    const rt = r[i]!;
    if (rt === '>') return false;
    if (at !== '*' && (rt === '*' || rt !== at)) return false;
  }
  return a.length === r.length;
}
