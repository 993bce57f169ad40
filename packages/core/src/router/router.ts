/**
 * The Router is the relay's logic, independent of sockets: it accepts transports, runs the
 * handshake and the auth hook, and forwards frames between the peers of each namespace. It
 * routes on frame headers only: bodies are copied through untouched, never decoded. Nothing a
 * connection sends can make it throw: a malformed frame closes that connection alone with a
 * PROTOCOL reason.
 *
 * This file is the facade: it owns the connections and hands each client frame to the one part
 * that handles its kind (docs/core.md, "Router internals"):
 * - `handshake.ts`: HELLO, auth, the name claim, WELCOME, the session clocks;
 * - `forwarding.ts`: MSG/ACK, REQ/REP and SIGNAL between two peers, held messages;
 * - `tunnels.ts`: tunnels and their windows;
 * - `pubsub.ts`: PUB, BCAST, subscriptions, groups, PEERS and presence;
 * - `flow.ts`: the rate limit, the buffer cap and slow consumers; every frame out goes through it;
 * - `metrics.ts`: counters, drops and traces; `limits.ts`: the limits and their defaults;
 * - `registry.ts` (`Registry`) and `holds.ts` (`HoldStore`): where names, groups, subscriptions,
 *   watchers and held messages live, replaceable (a backplane implements both).
 */
import { ID_PREFIX } from '../address.js';
import { frame, Kind, kindName, type Frame } from '../codec/frames.js';
import { Connection, type ConnectionHandlers } from '../connection.js';
import { Emitter } from '../emitter.js';
import { FrameTooLargeError } from '../codec/frames.js';
import { ErrorCode, ProtocolError, type ErrorCode as Code } from '../errors.js';
import { randomToken } from '../store/ids.js';
import type { TraceEvent } from '../trace.js';
import type { CloseInfo, Transport } from '../transport/transport.js';
import { CloseCode } from '../transport/transport.js';
import { Admin, type AdminAuthHook } from './admin.js';
import { ClusterRegistry, type ClusterBus } from './cluster.js';
import { Conn, type ConnectionInfo } from './conn.js';
import { Relays, type ClusterSnapshot } from './relays.js';
import { Flow, type FlowSnapshot } from './flow.js';
import { Forwarding, type RequestsSnapshot } from './forwarding.js';
import { Handshake, type AuthHook } from './handshake.js';
import { MemoryHoldStore, type HoldSnapshot, type HoldStore } from './holds.js';
import { resolveLimits, type RouterLimits } from './limits.js';
import { DropReason, Metrics, type RouterMetrics } from './metrics.js';
import type { RouterPart, RouterPort } from './port.js';
import { PubSub } from './pubsub.js';
import { MemoryRegistry, type Registry, type RegistryFactory, type RegistrySizes } from './registry.js';
import { Tunnels, type TunnelSnapshot } from './tunnels.js';

export interface RouterOptions {
  auth?: AuthHook;
  limits?: Partial<RouterLimits>;
  /**
   * Makes the registry: where names, groups, subscriptions and watchers live. Generic in the
   * Router's own connection objects, which a registry only stores and hands back.
   * @default () => new MemoryRegistry()
   */
  registry?: RegistryFactory;
  /** Where messages for offline names are held; it enforces the hold limits. @default a `MemoryHoldStore` over `limits` */
  holds?: HoldStore;
  /**
   * Accepts admin sessions (a HELLO in the `$admin` namespace) with their rights, or throws to
   * refuse. Without it the relay has no admin channel. See docs/devtools.md.
   */
  adminAuth?: AdminAuthHook;
  /**
   * Makes this relay one of a cluster that acts as one relay (docs/scaling.md): names, groups,
   * subscriptions and presence are shared through the bus, and frames for peers on other relays
   * cross it. Replaces `registry`. Await `router.ready` before accepting peers.
   */
  cluster?: ClusterBus;
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
  /** The cluster's backplane was lost, or came back. */
  cluster: { ok: boolean; reason: string };
}

/** One connection as `Router.inspect()` shows it. */
export interface ConnectionSnapshot extends ConnectionInfo {
  state: 'handshake' | 'open' | 'closed';
  flow: FlowSnapshot;
  requests: RequestsSnapshot;
  tunnels: TunnelSnapshot[];
}

/** A plain, JSON-serialisable snapshot of a Router's state (`Router.inspect()`). */
export interface RouterSnapshot {
  limits: RouterLimits;
  connections: ConnectionSnapshot[];
  registry: RegistrySizes;
  held: HoldSnapshot;
  /** Tunnels open through the relay. */
  tunnels: number;
  /** The cluster, when this relay is one of many. */
  cluster?: ClusterSnapshot;
}

/** Client-to-relay frame kinds; anything else from a client is a protocol error. */
const FROM_CLIENT = new Set<number>([
  Kind.Hello, Kind.Bye, Kind.Ping, Kind.Msg, Kind.Ack, Kind.Req, Kind.Rep, Kind.Pub, Kind.Bcast, Kind.Signal,
  Kind.Sub, Kind.Unsub, Kind.Join, Kind.Leave, Kind.Peers, Kind.Watch,
  Kind.TOpen, Kind.TAccept, Kind.TData, Kind.TCredit, Kind.TEnd, Kind.TClose,
]);

export class Router extends Emitter<RouterEvents> {
  readonly limits: RouterLimits;
  readonly #registry: Registry<Conn>;
  readonly #holds: HoldStore;
  readonly #conns = new Set<Conn>();
  readonly #metrics: Metrics;
  readonly #flow: Flow;
  readonly #handshake: Handshake;
  readonly #forwarding: Forwarding;
  readonly #tunnels: Tunnels;
  readonly #admin: Admin;
  readonly #relays: Relays | undefined;
  /** Resolves once the relay has joined its cluster (at once without one). */
  readonly ready: Promise<void>;
  readonly #parts: readonly RouterPart[];
  /** The part that handles each frame kind, by kind byte. */
  readonly #byKind: (RouterPart | undefined)[] = new Array(256).fill(undefined);
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
    drain: (conn) => this.#flow.drained(conn.owner),
    close: (info, conn) => {
      this.#onClose(conn.owner, info);
      const waiter = this.#closeWaiters?.get(conn.owner);
      if (waiter) {
        this.#closeWaiters!.delete(conn.owner);
        waiter();
      }
    },
  };
  /** While `close()` runs: what learns when each connection's transport has closed. */
  #closeWaiters: Map<Conn, () => void> | undefined;

  constructor(options: RouterOptions = {}) {
    super();
    this.limits = resolveLimits(options.limits);
    const bus = options.cluster;
    const clusterRegistry = bus ? new ClusterRegistry<Conn>(bus, { presence: (ns, name, id, join) => pubsub.remotePresence(ns, name, id, join) }) : undefined;
    this.#registry = clusterRegistry ?? (options.registry ? options.registry<Conn>() : new MemoryRegistry<Conn>());
    this.#holds = options.holds ?? new MemoryHoldStore(this.limits);
    // Trace events go to `trace` listeners and to the admin channel's trace sessions; they are
    // built only while one of them would take them.
    this.#metrics = new Metrics(
      (e) => {
        if (admin.tracing) admin.trace(e);
        this.emit('trace', e);
      },
      () => admin.tracing || this.listens('trace'),
    );
    const port: RouterPort = {
      limits: this.limits,
      metrics: this.#metrics,
      get flow() {
        return flow;
      },
      conns: this.#conns,
      kick: (c, closeCode, code, message) => this.#kick(c, closeCode, code, message),
      emit: (type, event) => this.emit(type, event),
      sweep: () => this.#startSweep(),
    };
    const flow = (this.#flow = new Flow(port));
    const admin = (this.#admin = new Admin(port, {
      relayId: this.#idBase,
      metrics: () => this.metrics(),
      connection: (c) => ({ state: c.state, flow: this.#flow.inspect(c), requests: this.#forwarding.inspect(c), tunnels: this.#tunnels.inspect(c) }),
    }));
    this.#forwarding = new Forwarding(port, this.#holds, this.#registry, admin);
    this.#tunnels = new Tunnels(port, (ns) => this.#registry.space(ns));
    this.#handshake = new Handshake(port, {
      auth: options.auth,
      adminAuth: options.adminAuth,
      adminRefused: () => admin.refused++,
      registry: this.#registry,
      deliverHeld: (c) => this.#forwarding.deliverHeld(c),
      opened: (c) => this.#opened(c),
      fail: (c, err) => this.#fail(c, err),
    });
    const pubsub = new PubSub(port, admin, (ns) => this.#registry.space(ns));
    this.#parts = [this.#handshake, this.#flow, this.#forwarding, this.#tunnels, pubsub, admin];
    if (bus && clusterRegistry) {
      const relays = (this.#relays = new Relays(port, bus, clusterRegistry, {
        forwarding: this.#forwarding,
        pubsub,
        tunnels: this.#tunnels,
        health: (ok, reason) => this.emit('cluster', { ok, reason }),
      }));
      this.#forwarding.relays = relays;
      this.#tunnels.relays = relays;
      pubsub.relays = relays;
      this.ready = relays.start();
    } else this.ready = Promise.resolve();
    for (const part of this.#parts) for (const k of part.kinds) this.#byKind[k] = part;
    this.on('auth-failure', () => this.#metrics.authFailures++);
  }

  /** A snapshot of the counters and gauges (rendered as Prometheus text by the Node relay). */
  metrics(): RouterMetrics {
    const m = this.#metrics.snapshot({ connections: this.#conns.size, peers: this.namespaces(), held: { messages: this.#holds.messages, bytes: this.#holds.bytes }, adminRefused: this.#admin.refused });
    if (this.#relays) m.cluster = this.#relays.inspect();
    return m;
  }

  /**
   * A plain snapshot of every part's state: each connection (its flow, requests and tunnels),
   * the registry's sizes and what is held. For diagnostics and the devtools; it costs a walk
   * over every connection.
   */
  inspect(): RouterSnapshot {
    const connections: ConnectionSnapshot[] = [];
    for (const c of this.#conns) {
      connections.push({ ...c.info(), state: c.state, flow: this.#flow.inspect(c), requests: this.#forwarding.inspect(c), tunnels: this.#tunnels.inspect(c) });
    }
    const snap: RouterSnapshot = { limits: { ...this.limits }, connections, registry: this.#registry.sizes(), held: this.#holds.inspect(), tunnels: this.#tunnels.size };
    if (this.#relays) snap.cluster = this.#relays.inspect();
    return snap;
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
    const c = new Conn([this.#idBase, (this.#nextId++).toString(36)].join(''));
    const full = this.#conns.size >= this.limits.maxConnections;
    this.#conns.add(c);
    c.connection = new Connection<Conn>(transport, this.#handlers, { maxFrameBytes: this.limits.maxFrameBytes, counters: this.#metrics.counters }, c);
    if (full) {
      this.#metrics.count(DropReason.LIMIT);
      this.#kick(c, CloseCode.LIMIT, ErrorCode.LIMIT, `relay is at its ${this.limits.maxConnections}-connection limit`);
      return;
    }
    this.#startSweep();
    for (const part of this.#parts) part.accepted?.(c);
  }

  /** Named and anonymous peers of a namespace (or all namespaces). */
  connections(namespace?: string): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const c of this.#conns) {
      if (c.state !== 'open' || (namespace !== undefined && c.namespace !== namespace)) continue;
      out.push(c.info());
    }
    return out;
  }

  /** Peer counts by namespace. */
  namespaces(): Map<string, number> {
    return this.#registry.namespaces();
  }

  /**
   * Stops accepting, tells every peer the relay is going away, and closes every connection.
   * Resolves when all transports have closed, or after `timeout` ms (then the rest are cut).
   */
  async close(timeout = 5000): Promise<void> {
    this.#closing = true;
    const pending: Promise<void>[] = [];
    const waiters = (this.#closeWaiters ??= new Map());
    for (const c of this.#conns) {
      pending.push(new Promise<void>((resolve) => waiters.set(c, resolve)));
      this.#kick(c, CloseCode.GOING_AWAY, ErrorCode.CLOSED, 'relay shutting down');
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(pending), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout)))]);
    clearTimeout(timer);
    for (const c of this.#conns) this.#onClose(c, { code: CloseCode.GOING_AWAY, reason: 'relay shut down' });
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    // Held messages are not acked: their senders still have them and resend on reconnect.
    this.#holds.clear();
    await this.#relays?.close();
  }

  #startSweep(): void {
    this.#sweeper ??= setInterval(() => this.#sweep(), 250);
  }

  /** Expires unanswered requests and held messages, and disconnects slow consumers. */
  #sweep(): void {
    const now = Date.now();
    for (const part of this.#parts) part.sweep?.(now);
    if (this.#conns.size === 0 && !this.#parts.some((p) => p.busy?.())) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Handles one decoded frame. The frame object is this call's alone: forwarding stamps `from` on it in place. */
  #onFrame(c: Conn, f: Frame): void {
    if (c.state === 'closed') return;
    try {
      if (!FROM_CLIENT.has(f.kind)) throw new ProtocolError(`${kindName(f.kind)} frames are sent by the relay, not to it`);
      if (c.state === 'handshake') {
        if (f.kind !== Kind.Hello || c.hello) throw new ProtocolError(`${kindName(f.kind)} before WELCOME`);
        this.#handshake.hello(c, f).catch((err: unknown) => this.#fail(c, new ProtocolError(`internal error handling Hello: ${String(err)}`)));
        return;
      }
      if (f.kind === Kind.Hello) throw new ProtocolError('second HELLO');
      if (f.kind === Kind.Bye) return c.connection.close(CloseCode.NORMAL, 'bye');
      const part = this.#byKind[f.kind]!;
      // Every other kind a client sends counts against its rate, whatever it costs the relay.
      if (!this.#flow.rate(c)) {
        const message = `rate limit of ${this.limits.rateLimit} frames per second exceeded`;
        return part.overRate ? part.overRate(c, f, message) : this.#flow.rateError(c, f, message);
      }
      part.frame!(c, f);
    } catch (err) {
      if (err instanceof ProtocolError) this.#fail(c, err);
      else this.#fail(c, new ProtocolError(`internal error handling ${kindName(f.kind)}: ${String(err)}`));
    }
  }

  #opened(c: Conn): void {
    for (const part of this.#parts) part.opened?.(c);
    if (this.listens('connect')) this.emit('connect', c.info());
  }

  /** Closes one connection for breaking the protocol; others are unaffected. */
  #fail(c: Conn, err: ProtocolError): void {
    if (c.state === 'closed') return;
    this.#metrics.protocolErrors++;
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
    this.#conns.delete(c);
    const summary = wasOpen && this.listens('disconnect') ? c.info() : undefined;
    for (const part of this.#parts) part.closed?.(c, wasOpen);
    this.#admin.record(c, wasOpen, closeInfo);
    if (c.namespace !== '') this.#registry.remove(c.namespace, c);
    if (summary) this.emit('disconnect', { ...summary, code: closeInfo.code, reason: closeInfo.reason });
  }
}
