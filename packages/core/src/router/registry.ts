/**
 * Where a relay keeps who is where: names, ids, groups, topic subscriptions and presence
 * watchers, per namespace. The Router reaches them only through the `Registry` and `Space`
 * interfaces below; `MemoryRegistry` is the default, and a backplane (many relays as one)
 * implements the same interfaces over shared state.
 *
 * What a remote implementation must keep in mind (docs/core.md, "Router internals"):
 * - lookups on the hot path (`route`, `pick`, `members`, `subscribers`, `watchers`) are
 *   synchronous, over a view the relay keeps locally;
 * - claiming a name may be asynchronous (an atomic claim in shared state); everything else
 *   changes the local view at once and may be propagated in the background;
 * - a name is owned by one relay at a time; a route is a peer connected here (`LocalPeer`, what
 *   the Router gave the registry) or a `RemotePeer` on another relay, which the Router reaches
 *   through a `RelayLink`.
 */
import { ID_PREFIX } from '../address.js';
import type { Frame } from '../codec/frames.js';
import { TopicTrie } from '../topics.js';

/** A connection of this relay, as a registry sees it. */
export interface LocalPeer {
  readonly kind: 'local';
  /** Relay-assigned, unique per relay run. */
  readonly id: string;
  /** Its name once claimed; undefined for an anonymous peer. */
  readonly name: string | undefined;
  /** The session token it presented at HELLO ('' if none): a reconnection with it takes the name back. */
  readonly session: string;
}

/** A peer connected to another relay, as a backplane's registry knows it. */
export interface RemotePeer {
  readonly kind: 'remote';
  /** The relay it is connected to. */
  readonly relay: string;
  readonly id: string;
  readonly name: string | undefined;
}

/** Where a name or id leads: a connection of this relay, or a peer on another relay. */
export type Route<P extends LocalPeer> = P | RemotePeer;

/**
 * Carries frames to peers on other relays; a backplane provides it. Without one, a route to a
 * `RemotePeer` is treated as no route.
 */
export interface RelayLink {
  /**
   * Sends `f` (its `from` already stamped) to `to` on its relay. The frame object and its body
   * are valid only during the call: copy or encode them. False when the link cannot take it
   * now (the frame is then dropped as if the peer were slow).
   */
  forward(to: RemotePeer, f: Frame): boolean;
}

/**
 * The outcome of claiming a name: the claimant has it; another peer holds it; or a connection
 * of this relay holds it with the claimant's own session (an earlier link of the same peer not
 * yet seen dead), which the Router closes before claiming again.
 */
export type Claim<P extends LocalPeer> = { readonly status: 'claimed' } | { readonly status: 'taken' } | { readonly status: 'replace'; readonly holder: P };

/** Sizes of a registry's state, for `Router.inspect()`. */
export interface RegistrySizes {
  namespaces: number;
  peers: number;
  names: number;
  groups: number;
  /** Subscriptions (pattern, peer) held. */
  subscriptions: number;
  watchers: number;
}

/**
 * Names, groups, subscriptions and presence watchers of every namespace. The Router calls
 * `claim` (for a named peer) then `add` when a handshake completes, and `remove` when the
 * connection ends (also after a claim whose connection closed before `add`).
 */
export interface Registry<P extends LocalPeer = LocalPeer> {
  /** Peers in a namespace now (the `maxPeersPerNamespace` limit is checked against it). */
  count(namespace: string): number;
  /**
   * Claims `name` in `namespace` for `peer`. Once claimed, the name routes to the peer (after
   * `add`) until `remove`. May be asynchronous; the Router awaits it.
   */
  claim(namespace: string, peer: P, name: string): Claim<P> | PromiseLike<Claim<P>>;
  /** Makes `peer` routable by its id (and by the name it claimed); returns its namespace. */
  add(namespace: string, peer: P): Space<P>;
  /**
   * Forgets `peer`: its id, its name (if it holds it), its groups, subscriptions and watch.
   * Safe to call for a peer that was never added, and more than once.
   */
  remove(namespace: string, peer: P): void;
  /** A namespace that has peers, or undefined. */
  space(namespace: string): Space<P> | undefined;
  /** Peer counts by namespace. */
  namespaces(): Map<string, number>;
  sizes(): RegistrySizes;
}

/**
 * One namespace. Lookups are synchronous (they run for every frame); changes apply to the local
 * view at once. A peer's memberships are kept here, not on the peer.
 */
export interface Space<P extends LocalPeer = LocalPeer> {
  readonly name: string;
  /** The peer with this name, or this id (ids start with `~`). */
  route(nameOrId: string): Route<P> | undefined;
  /** One member of a group, round-robin in join order; undefined if it has none. */
  pick(group: string): Route<P> | undefined;
  /** The members of a group connected here (for a broadcast), or undefined if there is no such group. */
  members(group: string): readonly P[] | undefined;
  /** Adds every peer connected here with a subscription matching `topic` to `into`, once each. */
  subscribers(topic: string, into: Set<P>): Set<P>;
  /** Peers connected here that asked for presence events. */
  watchers(): ReadonlySet<P>;
  /** Named peers of the namespace (the PEERS answer). */
  named(): { name: string; id: string }[];
  join(peer: P, group: string): void;
  leave(peer: P, group: string): void;
  subscribe(peer: P, pattern: string): void;
  unsubscribe(peer: P, pattern: string): void;
  watch(peer: P, on: boolean): void;
  /** The groups `peer` joined, in join order. */
  groupsOf(peer: P): string[];
  /** The patterns `peer` subscribed with, in order. */
  patternsOf(peer: P): string[];
  isSubscribed(peer: P, pattern: string): boolean;
  subscriptionCount(peer: P): number;
}

/** Makes a Registry for a Router (`RouterOptions.registry`). */
export type RegistryFactory = <P extends LocalPeer>() => Registry<P>;

const CLAIMED = Object.freeze({ status: 'claimed' as const });
const TAKEN = Object.freeze({ status: 'taken' as const });

/** The registry of a relay that runs alone: everything in this process. */
export class MemoryRegistry<P extends LocalPeer = LocalPeer> implements Registry<P> {
  readonly #spaces = new Map<string, MemorySpace<P>>();

  count(namespace: string): number {
    return this.#spaces.get(namespace)?.byId.size ?? 0;
  }

  claim(namespace: string, peer: P, name: string): Claim<P> {
    const s = this.#make(namespace);
    const holder = s.byName.get(name);
    if (holder === undefined || holder === peer) {
      s.byName.set(name, peer);
      return CLAIMED;
    }
    // The same peer reconnecting (its old link not yet seen dead) takes its name back.
    if (peer.session !== '' && holder.session === peer.session) return { status: 'replace', holder };
    return TAKEN;
  }

  add(namespace: string, peer: P): Space<P> {
    const s = this.#make(namespace);
    s.byId.set(peer.id, peer);
    return s;
  }

  /** Undoes a claim of `name` by `peer` that will not be followed by `add` (a cluster refused it). */
  release(namespace: string, peer: P, name: string): void {
    const s = this.#spaces.get(namespace);
    if (!s || s.byName.get(name) !== peer) return;
    s.byName.delete(name);
    if (s.byId.size === 0 && s.byName.size === 0) this.#spaces.delete(namespace);
  }

  /** The namespace's space, made if it has none yet. */
  ensure(namespace: string): Space<P> {
    return this.#make(namespace);
  }

  /** The peers of a namespace (by id). */
  peersOf(namespace: string): Iterable<P> {
    return this.#spaces.get(namespace)?.byId.values() ?? [];
  }

  remove(namespace: string, peer: P): void {
    const s = this.#spaces.get(namespace);
    if (!s) return;
    s.forget(peer);
    if (s.byId.size === 0 && s.byName.size === 0) this.#spaces.delete(namespace);
  }

  space(namespace: string): Space<P> | undefined {
    return this.#spaces.get(namespace);
  }

  namespaces(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.#spaces.values()) out.set(s.name, s.byId.size);
    return out;
  }

  sizes(): RegistrySizes {
    const out: RegistrySizes = { namespaces: this.#spaces.size, peers: 0, names: 0, groups: 0, subscriptions: 0, watchers: 0 };
    for (const s of this.#spaces.values()) s.addSizes(out);
    return out;
  }

  #make(namespace: string): MemorySpace<P> {
    let s = this.#spaces.get(namespace);
    if (!s) this.#spaces.set(namespace, (s = new MemorySpace<P>(namespace)));
    return s;
  }
}

interface Group<P> {
  members: P[];
  /** The next member `pick` returns. */
  next: number;
}

/** What one peer joined and subscribed to (made on its first join or subscription). */
interface Memberships {
  groups: Set<string>;
  patterns: Set<string>;
}

const NONE: ReadonlySet<string> = new Set();

class MemorySpace<P extends LocalPeer> implements Space<P> {
  readonly byName = new Map<string, P>();
  readonly byId = new Map<string, P>();
  readonly #groups = new Map<string, Group<P>>();
  readonly #topics = new TopicTrie<P>();
  readonly #watchers = new Set<P>();
  readonly #of = new Map<P, Memberships>();

  constructor(readonly name: string) {}

  route(nameOrId: string): P | undefined {
    return nameOrId.startsWith(ID_PREFIX) ? this.byId.get(nameOrId) : this.byName.get(nameOrId);
  }

  pick(group: string): P | undefined {
    const g = this.#groups.get(group);
    if (!g || g.members.length === 0) return undefined;
    const member = g.members[g.next % g.members.length]!;
    g.next = (g.next + 1) % g.members.length;
    return member;
  }

  members(group: string): readonly P[] | undefined {
    return this.#groups.get(group)?.members;
  }

  subscribers(topic: string, into: Set<P>): Set<P> {
    return this.#topics.match(topic, into);
  }

  watchers(): ReadonlySet<P> {
    return this.#watchers;
  }

  named(): { name: string; id: string }[] {
    const list: { name: string; id: string }[] = [];
    for (const [name, p] of this.byName) list.push({ name, id: p.id });
    return list;
  }

  join(peer: P, group: string): void {
    const m = this.#memberships(peer);
    if (m.groups.has(group)) return;
    m.groups.add(group);
    let g = this.#groups.get(group);
    if (!g) this.#groups.set(group, (g = { members: [], next: 0 }));
    g.members.push(peer);
  }

  leave(peer: P, group: string): void {
    if (!this.#of.get(peer)?.groups.delete(group)) return;
    const g = this.#groups.get(group);
    if (!g) return;
    const i = g.members.indexOf(peer);
    if (i >= 0) g.members.splice(i, 1);
    if (g.members.length === 0) this.#groups.delete(group);
    else if (g.next >= g.members.length) g.next = 0;
  }

  subscribe(peer: P, pattern: string): void {
    const m = this.#memberships(peer);
    if (m.patterns.has(pattern)) return;
    m.patterns.add(pattern);
    this.#topics.add(pattern, peer);
  }

  unsubscribe(peer: P, pattern: string): void {
    if (this.#of.get(peer)?.patterns.delete(pattern)) this.#topics.remove(pattern, peer);
  }

  watch(peer: P, on: boolean): void {
    if (on) this.#watchers.add(peer);
    else this.#watchers.delete(peer);
  }

  groupsOf(peer: P): string[] {
    return [...(this.#of.get(peer)?.groups ?? NONE)];
  }

  patternsOf(peer: P): string[] {
    return [...(this.#of.get(peer)?.patterns ?? NONE)];
  }

  isSubscribed(peer: P, pattern: string): boolean {
    return this.#of.get(peer)?.patterns.has(pattern) ?? false;
  }

  subscriptionCount(peer: P): number {
    return this.#of.get(peer)?.patterns.size ?? 0;
  }

  /** Everything of `peer` goes: id, name (if it holds it), groups, subscriptions, watch. */
  forget(peer: P): void {
    this.byId.delete(peer.id);
    const name = peer.name;
    if (name !== undefined && this.byName.get(name) === peer) this.byName.delete(name);
    const m = this.#of.get(peer);
    if (m) {
      for (const g of [...m.groups]) this.leave(peer, g);
      for (const p of m.patterns) this.#topics.remove(p, peer);
      this.#of.delete(peer);
    }
    this.#watchers.delete(peer);
  }

  addSizes(out: RegistrySizes): void {
    out.peers += this.byId.size;
    out.names += this.byName.size;
    out.groups += this.#groups.size;
    out.watchers += this.#watchers.size;
    for (const m of this.#of.values()) out.subscriptions += m.patterns.size;
  }

  #memberships(peer: P): Memberships {
    let m = this.#of.get(peer);
    if (!m) this.#of.set(peer, (m = { groups: new Set(), patterns: new Set() }));
    return m;
  }
}
