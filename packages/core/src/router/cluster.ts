/**
 * Many relays as one (docs/scaling.md): what relays tell each other, over a `ClusterBus` that a
 * backplane provides (Redis pub/sub in `@missive/node`; `MemoryCluster` in one process).
 *
 * Each relay keeps a replica of who is on the other relays (named peers and ids, group members,
 * and which patterns each relay has subscribers for), updated by the messages below, so that
 * routing stays a synchronous lookup. Names are claimed atomically through the bus (with a lease
 * that lapses when a relay dies). A frame for a peer on another relay crosses once, encoded as
 * it will be written; a publish crosses once per relay with a matching subscriber, not once per
 * subscriber.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { ID_PREFIX } from '../address.js';
import { ByteReader, ByteWriter } from '../codec/bytes.js';
import { writeFramed, type Frame } from '../codec/frames.js';
import { TopicTrie } from '../topics.js';
import type { Claim, LocalPeer, RemotePeer, Registry, RegistrySizes, Route, Space } from './registry.js';
import { MemoryRegistry } from './registry.js';

/** Who holds a name: a connection of one relay, with the session it presented. */
export interface NameOwner {
  relay: string;
  id: string;
  session: string;
}

/** The outcome of a claim through the bus: `previous` is the holder it replaced (same session). */
export type BusClaim = { status: 'claimed'; previous?: NameOwner } | { status: 'taken' };

/** What a bus hands the relay. */
export interface ClusterHandler {
  /** A message from another relay, in the order that relay sent it. */
  message(from: string, data: Uint8Array): void;
  /** A relay stopped renewing its lease: everything of it is gone. */
  relayDown(relay: string): void;
  /** The bus lost, or regained, its shared state (Redis down, Redis back). */
  health?(ok: boolean, reason: string): void;
  /** Back after a gap in which other relays may have taken this one for dead: tell them everything again. */
  rejoined?(): void;
  /** A name this relay held was claimed by another relay (its lease lapsed): its local holder must go. */
  nameLost?(namespace: string, name: string, id: string): void;
}

/**
 * Carries messages between the relays of a cluster and arbitrates names. Messages from one
 * relay arrive in the order it sent them, whether sent to one relay or to all.
 */
export interface ClusterBus {
  /** This relay's id, unique in the cluster. */
  readonly relay: string;
  /** Joins the cluster; messages and relay deaths go to `handler` from then on. */
  start(handler: ClusterHandler): Promise<void>;
  /**
   * To one relay. False when the bus cannot carry it now (the frame is dropped as if slow).
   * `data` is not changed after the call: the bus may keep it until it is sent.
   */
  send(relay: string, data: Uint8Array): boolean;
  /** To every other relay (`data` as for `send`). */
  broadcast(data: Uint8Array): boolean;
  /**
   * Claims `name` in `namespace` for `owner`, atomically across the cluster, with a lease the
   * bus renews while this relay lives: free or held by the same session → claimed.
   */
  claim(namespace: string, name: string, owner: NameOwner): Promise<BusClaim>;
  /** Gives the name up, if `owner` still holds it. */
  release(namespace: string, name: string, owner: NameOwner): void;
  /** Whether the shared state is reachable now. */
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** Bus message types. */
export const Msg = {
  Hello: 0,
  State: 1,
  Add: 2,
  Remove: 3,
  Join: 4,
  Leave: 5,
  Sub: 6,
  Unsub: 7,
  Frame: 8,
  Pub: 9,
  Bcast: 10,
  Kick: 11,
} as const;

export type BusMessage =
  | [typeof Msg.Hello]
  | [typeof Msg.State, [string, string, string | null][], [string, string, string][], [string, string][]]
  | [typeof Msg.Add, string, string, string | null]
  | [typeof Msg.Remove, string, string]
  | [typeof Msg.Join | typeof Msg.Leave, string, string, string]
  | [typeof Msg.Sub | typeof Msg.Unsub, string, string]
  /** namespace, target id, the encoded frame unit */
  | [typeof Msg.Frame, string, string, Uint8Array]
  | [typeof Msg.Pub, string, Uint8Array]
  | [typeof Msg.Bcast, string, string, Uint8Array]
  | [typeof Msg.Kick, string, string, string];

// One encoder and decoder for the module: making them per message costs more than the message
// (the profile of a relay carrying a stream to another relay showed it first).
const encoder = new Encoder();
const decoder = new Decoder();

/** First byte of a data message (a frame, publish or broadcast): never a msgpack array's. */
const DATA = 0xc1;
// One writer for the data messages: each is built in it and copied out once.
const dataWriter = new ByteWriter(64 * 1024);

/**
 * Encodes a bus message into a buffer of its own (the bus may keep it). The data messages
 * (Frame, Pub, Bcast: most of the traffic) skip msgpack: `0xc1, type, namespace, target or
 * group, then the frame as written on a connection`, built in one pass and copied out once.
 */
export function encodeBus(m: BusMessage): Uint8Array {
  return encoder.encode(m);
}

/** A Frame, Pub or Bcast bus message carrying `f` (its `from` stamped), in the binary form. */
export function encodeData(type: typeof Msg.Frame | typeof Msg.Pub | typeof Msg.Bcast, namespace: string, to: string, f: Frame): Uint8Array {
  const w = dataWriter;
  w.pos = 0;
  w.u8(DATA);
  w.u8(type);
  w.str(namespace);
  w.str(to);
  writeFramed(w, f);
  return w.take();
}

/** Decodes a bus message, or undefined when it is not one (a relay never trusts the bus's bytes blindly). */
export function decodeBus(data: Uint8Array): BusMessage | undefined {
  if (data[0] === DATA) {
    try {
      const r = new ByteReader(data, 2, data.length);
      const ns = r.str('bus namespace');
      const to = r.str('bus target');
      const unit = data.subarray(r.pos);
      switch (data[1]) {
        case Msg.Frame:
          return [Msg.Frame, ns, to, unit];
        case Msg.Pub:
          return [Msg.Pub, ns, unit];
        case Msg.Bcast:
          return [Msg.Bcast, ns, to, unit];
        default:
          return undefined;
      }
    } catch {
      return undefined;
    }
  }
  try {
    const m = decoder.decode(data);
    return Array.isArray(m) && typeof m[0] === 'number' ? (m as BusMessage) : undefined;
  } catch {
    return undefined;
  }
}

/** The other relays' peers in one namespace, as this relay knows them. */
class RemoteState {
  readonly byName = new Map<string, RemotePeer>();
  readonly byId = new Map<string, RemotePeer>();
  /** Group → its remote members, in join order. */
  readonly groups = new Map<string, RemotePeer[]>();
  /** Which relays have subscribers for which patterns. */
  readonly topics = new TopicTrie<string>();
  /** relay → patterns it subscribed to (to undo them when it goes). */
  readonly patterns = new Map<string, Set<string>>();

  get empty(): boolean {
    return this.byId.size === 0 && this.patterns.size === 0;
  }
}

/** What the ClusterRegistry tells the Router about the other relays. */
export interface ClusterEvents {
  /** A named peer appeared on, or left, another relay (presence for local watchers). */
  presence(namespace: string, name: string, id: string, join: boolean): void;
}

/**
 * The registry of a relay in a cluster: its own peers in a `MemoryRegistry`, plus the replica of
 * the other relays'. Changes to its own are applied at once and told to the others.
 */
export class ClusterRegistry<P extends LocalPeer = LocalPeer> implements Registry<P> {
  readonly #local = new MemoryRegistry<P>();
  readonly #remote = new Map<string, RemoteState>();
  readonly #spaces = new Map<string, ClusterSpace<P>>();
  readonly #bus: ClusterBus;
  readonly #events: ClusterEvents;
  /** Local subscribers per namespace and pattern: the relay subscribes once, for all of them. */
  readonly #subCounts = new Map<string, Map<string, number>>();

  constructor(bus: ClusterBus, events: ClusterEvents) {
    this.#bus = bus;
    this.#events = events;
  }

  get relay(): string {
    return this.#bus.relay;
  }

  count(namespace: string): number {
    return this.#local.count(namespace) + (this.#remote.get(namespace)?.byId.size ?? 0);
  }

  claim(namespace: string, peer: P, name: string): Claim<P> | Promise<Claim<P>> {
    const here = this.#local.claim(namespace, peer, name);
    if (here.status !== 'claimed') return here;
    const owner: NameOwner = { relay: this.#bus.relay, id: peer.id, session: peer.session };
    return this.#bus.claim(namespace, name, owner).then(
      (r) => {
        if (r.status === 'taken') {
          this.#local.release(namespace, peer, name);
          return { status: 'taken' } as const;
        }
        const prev = r.previous;
        if (prev && prev.relay !== this.#bus.relay) this.#bus.send(prev.relay, encodeBus([Msg.Kick, namespace, prev.id, 'replaced by a new session of the same peer on another relay']));
        return { status: 'claimed' } as const;
      },
      (err: unknown) => {
        this.#local.release(namespace, peer, name);
        throw err;
      },
    );
  }

  add(namespace: string, peer: P): Space<P> {
    this.#local.add(namespace, peer);
    this.#bus.broadcast(encodeBus([Msg.Add, namespace, peer.id, peer.name ?? null]));
    return this.#space(namespace);
  }

  remove(namespace: string, peer: P): void {
    const s = this.#local.space(namespace);
    if (!s || s.route(peer.id) !== peer) return this.#local.remove(namespace, peer);
    const held = peer.name !== undefined && s.route(peer.name) === peer;
    for (const p of s.patternsOf(peer)) this.unsubscribed(namespace, p);
    this.#local.remove(namespace, peer);
    this.#bus.broadcast(encodeBus([Msg.Remove, namespace, peer.id]));
    if (held) this.#bus.release(namespace, peer.name!, { relay: this.#bus.relay, id: peer.id, session: peer.session });
    this.#tidy(namespace);
  }

  space(namespace: string): Space<P> | undefined {
    if (!this.#local.space(namespace) && !this.#remote.get(namespace)) return undefined;
    return this.#space(namespace);
  }

  namespaces(): Map<string, number> {
    const out = this.#local.namespaces();
    for (const [ns, r] of this.#remote) out.set(ns, (out.get(ns) ?? 0) + r.byId.size);
    return out;
  }

  sizes(): RegistrySizes {
    const out = this.#local.sizes();
    for (const r of this.#remote.values()) {
      out.peers += r.byId.size;
      out.names += r.byName.size;
    }
    return out;
  }

  /** How many other relays have subscribers for some pattern. */
  subscribedRelays(): number {
    const relays = new Set<string>();
    for (const r of this.#remote.values()) for (const [relay, pats] of r.patterns) if (pats.size > 0) relays.add(relay);
    return relays.size;
  }

  /** Peers on other relays, by relay (for the devtools and `/metrics`). */
  remotePeers(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.#remote.values()) for (const p of r.byId.values()) out.set(p.relay, (out.get(p.relay) ?? 0) + 1);
    return out;
  }

  // ---- what the local peers do, told to the others ----

  /** @internal ClusterSpace: a local peer subscribed to `pattern`. */
  subscribed(namespace: string, pattern: string): void {
    let m = this.#subCounts.get(namespace);
    if (!m) this.#subCounts.set(namespace, (m = new Map()));
    const n = m.get(pattern) ?? 0;
    m.set(pattern, n + 1);
    if (n === 0) this.#bus.broadcast(encodeBus([Msg.Sub, namespace, pattern]));
  }

  /** @internal ClusterSpace: a local peer's subscription to `pattern` went. */
  unsubscribed(namespace: string, pattern: string): void {
    const m = this.#subCounts.get(namespace);
    const n = m?.get(pattern);
    if (!m || n === undefined) return;
    if (n > 1) return void m.set(pattern, n - 1);
    m.delete(pattern);
    if (m.size === 0) this.#subCounts.delete(namespace);
    this.#bus.broadcast(encodeBus([Msg.Unsub, namespace, pattern]));
  }

  /** @internal ClusterSpace */
  told(m: BusMessage): void {
    this.#bus.broadcast(encodeBus(m));
  }

  /** @internal ClusterSpace: the local space. */
  localSpace(namespace: string): Space<P> | undefined {
    return this.#local.space(namespace);
  }

  /** @internal ClusterSpace */
  remoteState(namespace: string): RemoteState | undefined {
    return this.#remote.get(namespace);
  }

  /** Ensures the local space exists (for ClusterSpace writes). */
  ensureLocal(namespace: string): Space<P> {
    return this.#local.ensure(namespace);
  }

  // ---- what the other relays tell ----

  /** Everything this relay has, for a relay that just joined. */
  state(): BusMessage {
    const peers: [string, string, string | null][] = [];
    const groups: [string, string, string][] = [];
    for (const [ns, count] of this.#local.namespaces()) {
      if (count === 0) continue;
      const s = this.#local.space(ns)!;
      for (const p of this.#local.peersOf(ns)) {
        peers.push([ns, p.id, p.name ?? null]);
        for (const g of s.groupsOf(p)) groups.push([ns, g, p.id]);
      }
    }
    const subs: [string, string][] = [];
    for (const [ns, m] of this.#subCounts) for (const p of m.keys()) subs.push([ns, p]);
    return [Msg.State, peers, groups, subs];
  }

  /** Applies a state or change message from `relay`. Returns false for a message it does not handle. */
  apply(relay: string, m: BusMessage): boolean {
    switch (m[0]) {
      case Msg.State: {
        this.relayDown(relay, false);
        for (const [ns, id, name] of m[1]) this.#addRemote(relay, ns, id, name, false);
        for (const [ns, g, id] of m[2]) this.#joinRemote(relay, ns, g, id);
        for (const [ns, p] of m[3]) this.#subRemote(relay, ns, p);
        return true;
      }
      case Msg.Add:
        this.#addRemote(relay, m[1], m[2], m[3], true);
        return true;
      case Msg.Remove:
        this.#removeRemote(relay, m[1], m[2], true);
        return true;
      case Msg.Join:
        this.#joinRemote(relay, m[1], m[2], m[3]);
        return true;
      case Msg.Leave: {
        const list = this.#remote.get(m[1])?.groups.get(m[2]);
        if (list) this.#dropMember(m[1], m[2], list, (p) => p.relay === relay && p.id === m[3]);
        return true;
      }
      case Msg.Sub:
        this.#subRemote(relay, m[1], m[2]);
        return true;
      case Msg.Unsub: {
        const r = this.#remote.get(m[1]);
        if (r?.patterns.get(relay)?.delete(m[2])) r.topics.remove(m[2], relay);
        return true;
      }
      default:
        return false;
    }
  }

  /** Forgets everything of `relay` (it died, or sent its whole state again). */
  relayDown(relay: string, announce = true): void {
    for (const [ns, r] of this.#remote) {
      for (const p of [...r.byId.values()]) if (p.relay === relay) this.#removeRemote(relay, ns, p.id, announce);
      const pats = r.patterns.get(relay);
      if (pats) {
        for (const p of pats) r.topics.remove(p, relay);
        r.patterns.delete(relay);
      }
      if (r.empty) this.#remote.delete(ns);
    }
  }

  #state(ns: string): RemoteState {
    let r = this.#remote.get(ns);
    if (!r) this.#remote.set(ns, (r = new RemoteState()));
    return r;
  }

  #addRemote(relay: string, ns: string, id: string, name: string | null, announce: boolean): void {
    if (!id.startsWith(ID_PREFIX)) return;
    const r = this.#state(ns);
    const peer: RemotePeer = { kind: 'remote', relay, id, name: name ?? undefined };
    r.byId.set(id, peer);
    if (name !== null) {
      r.byName.set(name, peer);
      if (announce) this.#events.presence(ns, name, id, true);
    }
  }

  #removeRemote(relay: string, ns: string, id: string, announce: boolean): void {
    const r = this.#remote.get(ns);
    const peer = r?.byId.get(id);
    if (!r || !peer || peer.relay !== relay) return;
    r.byId.delete(id);
    if (peer.name !== undefined && r.byName.get(peer.name) === peer) {
      r.byName.delete(peer.name);
      if (announce) this.#events.presence(ns, peer.name, id, false);
    }
    for (const [g, list] of r.groups) this.#dropMember(ns, g, list, (p) => p === peer);
    if (r.empty) this.#remote.delete(ns);
  }

  #joinRemote(relay: string, ns: string, group: string, id: string): void {
    const r = this.#state(ns);
    const peer = r.byId.get(id);
    if (!peer || peer.relay !== relay) return;
    let list = r.groups.get(group);
    if (!list) r.groups.set(group, (list = []));
    if (!list.includes(peer)) list.push(peer);
  }

  #dropMember(ns: string, group: string, list: RemotePeer[], which: (p: RemotePeer) => boolean): void {
    const i = list.findIndex(which);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#remote.get(ns)?.groups.delete(group);
  }

  #subRemote(relay: string, ns: string, pattern: string): void {
    const r = this.#state(ns);
    let set = r.patterns.get(relay);
    if (!set) r.patterns.set(relay, (set = new Set()));
    if (set.has(pattern)) return;
    set.add(pattern);
    r.topics.add(pattern, relay);
  }

  #space(namespace: string): ClusterSpace<P> {
    let s = this.#spaces.get(namespace);
    if (!s) this.#spaces.set(namespace, (s = new ClusterSpace<P>(namespace, this)));
    return s;
  }

  #tidy(namespace: string): void {
    if (!this.#local.space(namespace) && !this.#remote.get(namespace)) this.#spaces.delete(namespace);
  }
}

/** One namespace across the cluster: the local space for this relay's peers, the replica for the others'. */
export class ClusterSpace<P extends LocalPeer> implements Space<P> {
  #next = 0;
  constructor(
    readonly name: string,
    readonly registry: ClusterRegistry<P>,
  ) {}

  #local(): Space<P> | undefined {
    return this.registry.localSpace(this.name);
  }

  route(nameOrId: string): Route<P> | undefined {
    const here = this.#local()?.route(nameOrId);
    if (here !== undefined) return here;
    const r = this.registry.remoteState(this.name);
    if (!r) return undefined;
    return nameOrId.startsWith(ID_PREFIX) ? r.byId.get(nameOrId) : r.byName.get(nameOrId);
  }

  /** Round-robin over the group's members on every relay: local ones first, then remote. */
  pick(group: string): Route<P> | undefined {
    const local = this.#local()?.members(group) ?? [];
    const remote = this.registry.remoteState(this.name)?.groups.get(group) ?? [];
    const n = local.length + remote.length;
    if (n === 0) return undefined;
    const i = this.#next++ % n;
    if (this.#next > 0x3fffffff) this.#next = 0;
    return i < local.length ? local[i] : remote[i - local.length];
  }

  members(group: string): readonly P[] | undefined {
    return this.#local()?.members(group);
  }

  /** The relays that have members of `group`. */
  relaysWith(group: string): Set<string> {
    const out = new Set<string>();
    for (const p of this.registry.remoteState(this.name)?.groups.get(group) ?? []) out.add(p.relay);
    return out;
  }

  subscribers(topic: string, into: Set<P>): Set<P> {
    const s = this.#local();
    return s ? s.subscribers(topic, into) : into;
  }

  /** The other relays with a subscriber for `topic`, once each. */
  relaysFor(topic: string, into: Set<string>): Set<string> {
    const r = this.registry.remoteState(this.name);
    return r ? r.topics.match(topic, into) : into;
  }

  watchers(): ReadonlySet<P> {
    return this.#local()?.watchers() ?? EMPTY;
  }

  named(): { name: string; id: string }[] {
    const out = this.#local()?.named() ?? [];
    const r = this.registry.remoteState(this.name);
    if (r) for (const [name, p] of r.byName) out.push({ name, id: p.id });
    return out;
  }

  join(peer: P, group: string): void {
    const s = this.registry.ensureLocal(this.name);
    if (s.groupsOf(peer).includes(group)) return;
    s.join(peer, group);
    this.registry.told([Msg.Join, this.name, group, peer.id]);
  }

  leave(peer: P, group: string): void {
    const s = this.#local();
    if (!s || !s.groupsOf(peer).includes(group)) return;
    s.leave(peer, group);
    this.registry.told([Msg.Leave, this.name, group, peer.id]);
  }

  subscribe(peer: P, pattern: string): void {
    const s = this.registry.ensureLocal(this.name);
    if (s.isSubscribed(peer, pattern)) return;
    s.subscribe(peer, pattern);
    this.registry.subscribed(this.name, pattern);
  }

  unsubscribe(peer: P, pattern: string): void {
    const s = this.#local();
    if (!s || !s.isSubscribed(peer, pattern)) return;
    s.unsubscribe(peer, pattern);
    this.registry.unsubscribed(this.name, pattern);
  }

  watch(peer: P, on: boolean): void {
    this.registry.ensureLocal(this.name).watch(peer, on);
  }

  groupsOf(peer: P): string[] {
    return this.#local()?.groupsOf(peer) ?? [];
  }

  patternsOf(peer: P): string[] {
    return this.#local()?.patternsOf(peer) ?? [];
  }

  isSubscribed(peer: P, pattern: string): boolean {
    return this.#local()?.isSubscribed(peer, pattern) ?? false;
  }

  subscriptionCount(peer: P): number {
    return this.#local()?.subscriptionCount(peer) ?? 0;
  }
}

const EMPTY: ReadonlySet<never> = new Set();

/**
 * A cluster in one process: buses that carry messages between Routers of the same process, with
 * names arbitrated in a shared map. For tests of routing across relays, and for running several
 * Routers in one process; a relay that `kill`s stops being heard, as a dead relay would.
 */
export class MemoryCluster {
  readonly #handlers = new Map<string, ClusterHandler>();
  readonly #names = new Map<string, NameOwner>();
  #next = 0;

  /** A bus for one more relay of this cluster. */
  bus(relay = `r${this.#next++}`): ClusterBus {
    const cluster = this;
    let closed = false;
    const deliver = (to: string, data: Uint8Array): void => {
      // Delivered as a task, in order, like a message over a socket.
      const copy = data.slice();
      queueMicrotask(() => {
        if (!closed) cluster.#handlers.get(to)?.message(relay, copy);
      });
    };
    return {
      relay,
      healthy: true,
      async start(handler) {
        cluster.#handlers.set(relay, handler);
        for (const other of cluster.#handlers.keys()) if (other !== relay) deliver(other, encodeBus([Msg.Hello]));
      },
      send(to, data) {
        if (closed || !cluster.#handlers.has(to)) return false;
        deliver(to, data);
        return true;
      },
      broadcast(data) {
        if (closed) return false;
        for (const other of cluster.#handlers.keys()) if (other !== relay) deliver(other, data);
        return true;
      },
      async claim(ns, name, owner) {
        const key = `${ns}\u0000${name}`;
        const held = cluster.#names.get(key);
        if (held && !(held.relay === owner.relay && held.id === owner.id) && (owner.session === '' || held.session !== owner.session)) return { status: 'taken' };
        cluster.#names.set(key, owner);
        return held && !(held.relay === owner.relay && held.id === owner.id) ? { status: 'claimed', previous: held } : { status: 'claimed' };
      },
      release(ns, name, owner) {
        const key = `${ns}\u0000${name}`;
        const held = cluster.#names.get(key);
        if (held && held.relay === owner.relay && held.id === owner.id) cluster.#names.delete(key);
      },
      async close() {
        if (closed) return;
        closed = true;
        cluster.#handlers.delete(relay);
        cluster.#down(relay);
      },
    };
  }

  /** The relay stops being heard: the others see it die and its names are freed (its lease lapsed). */
  kill(relay: string): void {
    this.#handlers.delete(relay);
    this.#down(relay);
  }

  #down(relay: string): void {
    for (const [k, o] of this.#names) if (o.relay === relay) this.#names.delete(k);
    for (const h of this.#handlers.values()) queueMicrotask(() => h.relayDown(relay));
  }
}
