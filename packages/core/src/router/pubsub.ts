/**
 * Pub/sub, groups and presence: PUB to the subscribers of a topic, BCAST to every member of a
 * group, SUB/UNSUB and JOIN/LEAVE (checked against the peer's grant and bounded per
 * connection), PEERS (the named peers of the namespace) and WATCH (presence events). Where the
 * subscriptions and memberships live is the registry's.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { checkName, splitAddress } from '../address.js';
import { BodyCodec, frame, Kind, PresenceEvent, type Frame, type FrameOf } from '../codec/frames.js';
import { ErrorCode } from '../errors.js';
import { checkPattern, checkTopic, matchTopic } from '../topics.js';
import { TRACE_TOPIC, type Admin } from './admin.js';
import type { ClusterSpace } from './cluster.js';
import type { Conn } from './conn.js';
import type { Space } from './registry.js';
import type { Relays } from './relays.js';
import { allowed, patternCovers } from './handshake.js';
import { DropReason } from './metrics.js';
import type { RouterPart, RouterPort } from './port.js';

export class PubSub implements RouterPart {
  readonly kinds = [Kind.Pub, Kind.Bcast, Kind.Sub, Kind.Unsub, Kind.Join, Kind.Leave, Kind.Peers, Kind.Watch] as const;
  readonly #port: RouterPort;
  readonly #admin: Admin;
  /** The cluster, when this relay is one of many. */
  relays: Relays | undefined;
  /** Reused for each publish's set of matching connections, and of relays. */
  readonly #matched = new Set<Conn>();
  readonly #relaysMatched = new Set<string>();

  readonly #registry: (ns: string) => Space<Conn> | undefined;

  constructor(port: RouterPort, admin: Admin, registry: (ns: string) => Space<Conn> | undefined) {
    this.#port = port;
    this.#admin = admin;
    this.#registry = registry;
  }

  frame(c: Conn, f: Frame): void {
    switch (f.kind) {
      case Kind.Pub:
        return this.#pub(c, f);
      case Kind.Bcast:
        return this.#bcast(c, f);
      case Kind.Sub:
      case Kind.Unsub:
        return this.#sub(c, f);
      case Kind.Join:
      case Kind.Leave:
        return this.#join(c, f);
      case Kind.Peers:
        return this.#peers(c, f);
      case Kind.Watch:
        c.space!.watch(c, f.on !== 0);
        return this.#port.flow.ok(c, f.ref);
    }
  }

  /** Actions with a ref are answered LIMIT; a PUB or BCAST is dropped (one ERR a second). */
  overRate(c: Conn, f: Frame, message: string): void {
    const { flow, metrics } = this.#port;
    switch (f.kind) {
      case Kind.Sub:
      case Kind.Unsub:
      case Kind.Join:
      case Kind.Leave:
      case Kind.Peers:
      case Kind.Watch:
        metrics.drop(c.label, f, '', DropReason.RATE);
        flow.send(c, frame(Kind.Err, { ref: f.ref, code: ErrorCode.LIMIT, message }), c);
        return;
      default:
        return flow.rateError(c, f, message);
    }
  }

  opened(c: Conn): void {
    if (c.name !== undefined) this.#presence(c, PresenceEvent.Join);
  }

  closed(c: Conn, wasOpen: boolean): void {
    if (wasOpen && c.name !== undefined) this.#presence(c, PresenceEvent.Leave);
  }

  #pub(c: Conn, f: FrameOf<typeof Kind.Pub>): void {
    const { flow, metrics } = this.#port;
    const bad = checkTopic(f.topic);
    if (bad) return flow.refuse(c, 0, ErrorCode.PROTOCOL, bad);
    if (!allowed(c.grant.publish, (p) => matchTopic(p, f.topic))) return flow.refuse(c, 0, ErrorCode.AUTH, `may not publish to "${f.topic}"`);
    if (this.#admin.active) this.#admin.count(c.namespace, f.topic, false);
    const subs = c.space!.subscribers(f.topic, this.#matched);
    f.from = c.label;
    let crossed = 0;
    if (this.relays) {
      // Once to each other relay with a subscriber, whatever their number there.
      const relays = (c.space as ClusterSpace<Conn>).relaysFor(f.topic, this.#relaysMatched);
      if (relays.size > 0) crossed = this.relays.publish(c.namespace, relays, f);
      relays.clear();
    }
    if (subs.size === 0) {
      if (crossed === 0) metrics.drop(c.label, f, f.topic, DropReason.NO_ROUTE);
      return;
    }
    flow.fanOut(c, subs, f, f.topic);
    subs.clear();
  }

  /** A publish from another relay: to the subscribers here. */
  inboundPub(ns: string, f: Frame): void {
    if (f.kind !== Kind.Pub) return;
    const space = this.#registry(ns);
    if (!space) return;
    const subs = space.subscribers(f.topic, this.#matched);
    if (subs.size > 0) this.#port.flow.fanOut({ label: f.from }, subs, f, f.topic);
    subs.clear();
  }

  /** A broadcast from another relay: to the members here. */
  inboundBcast(ns: string, group: string, f: Frame): void {
    if (f.kind !== Kind.Bcast) return;
    const members = this.#registry(ns)?.members(group);
    if (members && members.length > 0) this.#port.flow.fanOut({ label: f.from }, members, f, f.to);
  }

  /** A named peer joined or left another relay: tell the watchers here. */
  remotePresence(ns: string, name: string, id: string, join: boolean): void {
    const watchers = this.#registry(ns)?.watchers();
    if (!watchers || watchers.size === 0) return;
    const f = frame(Kind.Presence, { event: join ? PresenceEvent.Join : PresenceEvent.Leave, name, id });
    for (const w of watchers) {
      if (this.#port.flow.hasRoom(w)) w.connection.write(f);
      else this.#port.metrics.drop(name, f, w.label, DropReason.SLOW_CONSUMER);
    }
  }

  #bcast(c: Conn, f: FrameOf<typeof Kind.Bcast>): void {
    const { flow, metrics } = this.#port;
    const group = splitAddress(f.to).name;
    if (this.#admin.active) this.#admin.count(c.namespace, group, true);
    const members = c.space!.members(group);
    let crossed = 0;
    if (this.relays) {
      const relays = (c.space as ClusterSpace<Conn>).relaysWith(group);
      if (relays.size > 0) {
        f.from = c.label;
        crossed = this.relays.broadcast(c.namespace, group, relays, f);
      }
    }
    if (!members && crossed > 0) return;
    if (!members) {
      metrics.drop(c.label, f, f.to, DropReason.NO_ROUTE);
      flow.send(c, frame(Kind.Err, { ref: f.ref, code: ErrorCode.NO_ROUTE, message: `no group "${f.to}"` }), c);
      return;
    }
    f.from = c.label;
    flow.fanOut(c, members, f, f.to);
  }

  #sub(c: Conn, f: FrameOf<typeof Kind.Sub> | FrameOf<typeof Kind.Unsub>): void {
    const { flow, metrics, limits } = this.#port;
    const bad = checkPattern(f.pattern);
    if (bad) return flow.refuse(c, f.ref, ErrorCode.PROTOCOL, bad);
    if (f.pattern.charCodeAt(0) === 0x24) {
      // "$" topics are the relay's: an admin session may follow the live trace, nobody else.
      if (!c.grant.admin || f.pattern !== TRACE_TOPIC) return flow.refuse(c, f.ref, ErrorCode.AUTH, `"${f.pattern}" is reserved for the relay's admin sessions`);
      this.#admin.subscribeTrace(c, f.kind === Kind.Sub);
      return flow.ok(c, f.ref);
    }
    const space = c.space!;
    if (f.kind === Kind.Unsub) {
      space.unsubscribe(c, f.pattern);
      return flow.ok(c, f.ref);
    }
    if (!allowed(c.grant.subscribe, (p) => patternCovers(p, f.pattern))) return flow.refuse(c, f.ref, ErrorCode.AUTH, `may not subscribe to "${f.pattern}"`);
    if (!space.isSubscribed(c, f.pattern)) {
      const { maxSubscriptions, maxPatternTokens } = limits;
      if (space.subscriptionCount(c) >= maxSubscriptions) {
        metrics.drop(c.label, f, f.pattern, DropReason.LIMIT);
        return flow.refuse(c, f.ref, ErrorCode.LIMIT, `at most ${maxSubscriptions} subscriptions per connection`);
      }
      if (tokenCount(f.pattern) > maxPatternTokens) {
        metrics.drop(c.label, f, f.pattern, DropReason.LIMIT);
        return flow.refuse(c, f.ref, ErrorCode.LIMIT, `a pattern may have at most ${maxPatternTokens} tokens`);
      }
      space.subscribe(c, f.pattern);
    }
    flow.ok(c, f.ref);
  }

  #join(c: Conn, f: FrameOf<typeof Kind.Join> | FrameOf<typeof Kind.Leave>): void {
    const { flow } = this.#port;
    const bad = checkName(f.group, 'group');
    if (bad) return flow.refuse(c, f.ref, ErrorCode.PROTOCOL, bad);
    if (f.kind === Kind.Leave) {
      c.space!.leave(c, f.group);
      return flow.ok(c, f.ref);
    }
    if (!allowed(c.grant.groups, (p) => matchTopic(p, f.group))) return flow.refuse(c, f.ref, ErrorCode.AUTH, `may not join group "${f.group}"`);
    c.space!.join(c, f.group);
    flow.ok(c, f.ref);
  }

  #peers(c: Conn, f: FrameOf<typeof Kind.Peers>): void {
    const { flow, metrics } = this.#port;
    // The answer can be large: no work for a connection that would not get it.
    if (!flow.hasRoom(c)) return metrics.drop(c.label, f, c.label, DropReason.SLOW_CONSUMER);
    flow.send(c, frame(Kind.Ok, { ref: f.ref }, msgpackEncode(c.space!.named()), BodyCodec.Msgpack), c);
  }

  /** Tells the namespace's watchers (but `c`) that `c` joined or left. */
  #presence(c: Conn, event: number): void {
    const watchers = c.space?.watchers();
    if (!watchers || watchers.size === 0) return;
    const { flow, metrics } = this.#port;
    const f = frame(Kind.Presence, { event, name: c.name!, id: c.id });
    for (const w of watchers) {
      if (w === c) continue;
      if (flow.hasRoom(w)) w.connection.write(f);
      else metrics.drop(c.label, f, w.label, DropReason.SLOW_CONSUMER);
    }
  }
}

/** Tokens in a topic or pattern. */
function tokenCount(s: string): number {
  let n = 1;
  for (let i = s.indexOf('.'); i >= 0; i = s.indexOf('.', i + 1)) n++;
  return n;
}
