/**
 * Forwarding between two peers: messages (MSG, and their ACKs), requests and replies (REQ,
 * REP), and direct-link signalling (SIGNAL). A durable message for a name that is not connected
 * is held (`HoldStore`) and delivered when the name comes back. A request is tracked until its
 * reply, its deadline, or its responder's end, and only the peer it was routed to may answer.
 */
import { ID_PREFIX, RELAY_NAME, splitAddress } from '../address.js';
import { AckStatus, encodeFrame, frame, Kind, type Frame, type FrameOf } from '../codec/frames.js';
import { ErrorCode } from '../errors.js';
import type { Admin } from './admin.js';
import type { Conn } from './conn.js';
import type { HoldResult, HoldStore } from './holds.js';
import { DropReason } from './metrics.js';
import { isThenable, type RouterPart, type RouterPort } from './port.js';
import type { RemotePeer, Registry, Route, Space } from './registry.js';
import type { Relays } from './relays.js';

/** A request in flight through the relay: only `responder` may answer it. Either end may be on another relay. */
export interface InFlight {
  id: number;
  requester: Conn | RemotePeer;
  responder: Conn | RemotePeer;
  /** `performance.now()` when it was forwarded (for the latency histogram). */
  start: number;
  /** When it expires (ms since epoch). */
  deadline: number;
}

type Kinds = typeof Kind.Msg | typeof Kind.Ack | typeof Kind.Req | typeof Kind.Rep | typeof Kind.Signal;

/** A connection's requests, for `Router.inspect()`. */
export interface RequestsSnapshot {
  /** Requests it sent that await a reply. */
  awaiting: number;
  /** Requests routed to it that it has not answered. */
  serving: number;
}

export class Forwarding implements RouterPart {
  readonly kinds = [Kind.Msg, Kind.Ack, Kind.Req, Kind.Rep, Kind.Signal] as const;
  readonly #port: RouterPort;
  readonly #holds: HoldStore;
  readonly #registry: Registry<Conn>;
  readonly #admin: Admin;
  /** The cluster, when this relay is one of many. */
  relays: Relays | undefined;

  constructor(port: RouterPort, holds: HoldStore, registry: Registry<Conn>, admin: Admin) {
    this.#port = port;
    this.#holds = holds;
    this.#registry = registry;
    this.#admin = admin;
  }

  /**
   * Sends a frame this relay makes (an error reply, an ack in a receiver's name) to a route,
   * here or on another relay. `from` is whom a drop is counted for.
   */
  #to(ns: string, route: Conn | RemotePeer, f: Frame, from: { readonly label: string }): void {
    if (route.kind === 'local') this.#port.flow.send(route, f, from);
    else this.relays?.forward(ns, route, f);
  }

  frame(c: Conn, f: Frame): void {
    switch (f.kind) {
      case Kind.Msg:
        return this.#msg(c, f);
      case Kind.Ack:
        return this.#ack(c, f);
      case Kind.Req:
        return this.#req(c, f);
      case Kind.Rep:
        return this.#rep(c, f);
      case Kind.Signal:
        return this.#signal(c, f);
    }
  }

  overRate(c: Conn, f: Frame, message: string): void {
    const { flow, metrics } = this.#port;
    switch (f.kind) {
      case Kind.Msg:
        return this.#refuseMsg(c, f, DropReason.RATE);
      case Kind.Req:
        metrics.drop(c.label, f, f.to, DropReason.RATE);
        flow.send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.LIMIT, message }), c);
        return;
      case Kind.Rep: {
        metrics.drop(c.label, f, f.to, DropReason.RATE);
        const r = this.#served(c, f);
        if (!r) return;
        settle(r);
        this.#to(c.namespace, r.requester, frame(Kind.Rep, { to: labelOf(r.requester), from: c.label, id: f.id, code: ErrorCode.LIMIT, message: `${c.label} exceeded its rate limit: its reply was dropped` }), c);
        return;
      }
      default:
        return flow.rateError(c, f, message);
    }
  }

  /** Delivers what was held for `c`'s name, in order, ahead of anything else. */
  deliverHeld(c: Conn): void | PromiseLike<void> {
    // At most holdMaxBytes, into a fresh connection: within its buffer cap.
    return this.#holds.take(c.namespace, c.name!, (unit) => c.connection.writeEncoded(unit));
  }

  closed(c: Conn): void {
    // Requests this peer was serving will never be answered: tell their requesters now.
    for (const r of [...c.serving]) {
      settle(r);
      this.#to(c.namespace, r.requester, frame(Kind.Rep, { to: labelOf(r.requester), from: '', id: r.id, code: ErrorCode.CLOSED, message: `${c.label} disconnected before replying` }), c);
    }
    for (const r of [...c.requests.values()]) settle(r);
  }

  /** Expires unanswered requests and held messages (telling their senders). */
  sweep(now: number): void {
    for (const c of this.#port.conns) {
      for (const r of c.requests.values()) if (r.deadline <= now) settle(r);
      // Requests from other relays are known only to their responder here.
      for (const r of c.serving) if (r.requester.kind === 'remote' && r.deadline <= now) settle(r);
    }
    if (this.#holds.messages === 0 && !this.#holds.shared) return;
    this.#holds.expire(now - this.#port.limits.holdTtl, (h) => {
      // The sender may be on another relay (a shared hold store).
      const sender = this.#registry.space(h.namespace)?.route(h.sender);
      if (sender) this.#to(h.namespace, sender, frame(Kind.Ack, { to: h.sender, from: h.name, dest: h.name, origin: h.origin, seq: h.seq, status: AckStatus.Expired }), { label: h.name });
      this.#port.metrics.count(DropReason.EXPIRED);
    });
  }

  busy(): boolean {
    return this.#holds.messages > 0;
  }

  inspect(c: Conn): RequestsSnapshot {
    return { awaiting: c.requests.size, serving: c.serving.size };
  }

  #msg(c: Conn, f: FrameOf<typeof Kind.Msg>): void {
    const name = splitAddress(f.to).name;
    const route = c.space!.route(name);
    if (route?.kind === 'remote') {
      f.from = c.label;
      if (!this.relays?.forward(c.namespace, route, f)) this.#refuseMsg(c, f, DropReason.SLOW_CONSUMER);
      return;
    }
    const target = route;
    // A name that is not connected may be offline for a while: hold for it (ids are per session).
    if (!target && this.#port.limits.holdTtl > 0 && !name.startsWith(ID_PREFIX)) return this.#hold(c, f, name);
    const { flow, metrics } = this.#port;
    if (!target) {
      metrics.drop(c.label, f, f.to, DropReason.NO_ROUTE);
      flow.send(c, frame(Kind.Err, { ref: f.ref, code: ErrorCode.NO_ROUTE, message: `no peer "${name}"` }), c);
      return;
    }
    // A slow receiver gets no more durable messages: they wait in the sender's outbox.
    if (!flow.hasRoom(target)) return this.#refuseMsg(c, f, DropReason.SLOW_CONSUMER);
    f.from = c.label;
    flow.forward(c, target, f);
  }

  /** Keeps a durable message for an offline name, or refuses it (expired) when over a bound. */
  #hold(c: Conn, f: FrameOf<typeof Kind.Msg>, name: string): void {
    f.from = c.label;
    // Encoded once, into a buffer of its own: the hold keeps no view into the incoming message.
    const result = this.#holds.hold(c.namespace, name, { unit: encodeFrame(f), origin: f.origin, seq: f.seq, sender: c.label, at: Date.now() });
    const tell = (r: HoldResult | 'unavailable'): void => {
      if (c.state === 'closed') return;
      if (r === 'full') this.#port.metrics.drop(c.label, f, f.to, DropReason.EXPIRED);
      else if (r === 'unavailable') this.#port.metrics.drop(c.label, f, f.to, DropReason.LIMIT);
      else this.#port.sweep();
      // A store that cannot answer (shared storage down): retry later, as for a full mailbox.
      const status = r === 'full' ? AckStatus.Expired : r === 'unavailable' ? AckStatus.Limit : AckStatus.Held;
      this.#port.flow.send(c, frame(Kind.Ack, { to: c.label, from: name, dest: name, origin: f.origin, seq: f.seq, status }), c);
    };
    if (isThenable(result)) {
      result.then(tell, () => tell('unavailable'));
    } else tell(result);
  }

  /** Tells a MSG's sender to retry later (as if the receiver's mailbox were full). */
  #refuseMsg(c: Conn, f: FrameOf<typeof Kind.Msg>, reason: DropReason): void {
    this.#port.metrics.drop(c.label, f, f.to, reason);
    const dest = splitAddress(f.to).name;
    this.#port.flow.send(c, frame(Kind.Ack, { to: c.label, from: dest, dest, origin: f.origin, seq: f.seq, status: AckStatus.Limit }), c);
  }

  /**
   * Acks go to the peer named (or id'd) in `to`; if it is gone they are dropped. An ack must
   * come from the destination it names (`dest`, by name or id): anyone else could make a sender
   * drop messages its receiver never got. Its `from` is stamped as that `dest`, so the sender
   * can check it too.
   */
  #ack(c: Conn, f: FrameOf<typeof Kind.Ack>): void {
    const { flow, metrics } = this.#port;
    if (f.dest !== c.id && (c.name === undefined || f.dest !== c.name)) return metrics.drop(c.label, f, f.to, DropReason.NOT_DESTINATION);
    const target = c.space!.route(f.to);
    if (!target) return metrics.drop(c.label, f, f.to, DropReason.NO_ROUTE);
    f.from = f.dest;
    if (target.kind === 'remote') this.relays?.forward(c.namespace, target, f);
    else flow.forward(c, target, f);
  }

  /** SIGNAL (direct-link signalling): to a connected peer of the namespace, best-effort. */
  #signal(c: Conn, f: FrameOf<typeof Kind.Signal>): void {
    const target = c.space!.route(f.to);
    if (!target || target === c) return this.#port.metrics.drop(c.label, f, f.to, DropReason.NO_ROUTE);
    f.from = c.label;
    if (target.kind === 'remote') this.relays?.forward(c.namespace, target, f);
    else this.#port.flow.forward(c, target, f);
  }

  #req(c: Conn, f: FrameOf<typeof Kind.Req>): void {
    const { flow, metrics, limits } = this.#port;
    const { name, port } = splitAddress(f.to);
    if (name === RELAY_NAME) return this.#admin.request(c, f);
    if (port.charCodeAt(0) === 0x24) {
      // `$` ports are a peer's control ports: only the relay calls them.
      metrics.drop(c.label, f, f.to, DropReason.NO_ROUTE);
      this.#port.emit('auth-failure', { id: c.id, name: c.name ?? '', message: `request to the control port ${f.to}` });
      flow.send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.AUTH, message: `"${port}" is a control port: only the relay may call it` }), c);
      return;
    }
    const space = c.space!;
    let route = space.route(name);
    if (route === undefined) {
      route = space.pick(name);
      if (this.#admin.active) this.#admin.count(c.namespace, name, true);
    }
    const target = route?.kind === 'local' || (route?.kind === 'remote' && this.relays) ? route : undefined;
    if (!target) {
      metrics.drop(c.label, f, f.to, DropReason.NO_ROUTE);
      flow.send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.NO_ROUTE, message: `no peer or group "${name}"` }), c);
      return;
    }
    const refuse = (reason: DropReason, message: string): void => {
      metrics.drop(c.label, f, f.to, reason);
      flow.send(c, frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.LIMIT, message }), c);
    };
    if (c.requests.size >= limits.maxPendingRequests) return refuse(DropReason.LIMIT, `${limits.maxPendingRequests} requests already awaiting replies`);
    if (c.requests.has(f.id)) return refuse(DropReason.LIMIT, `request id ${f.id} is already in flight`);
    if (target.kind === 'local' && !flow.hasRoom(target)) return refuse(DropReason.SLOW_CONSUMER, `"${name}" is not keeping up`);
    const r: InFlight = { id: f.id, requester: c, responder: target, start: performance.now(), deadline: Date.now() + Math.min(f.timeout, 0x7fffffff) };
    f.from = c.label;
    if (target.kind === 'remote') {
      if (!this.relays!.forward(c.namespace, target, f)) return refuse(DropReason.SLOW_CONSUMER, 'the cluster backplane cannot carry it now');
      c.ownRequests().set(f.id, r);
      metrics.requests++;
      return;
    }
    c.ownRequests().set(f.id, r);
    target.ownServing().add(r);
    metrics.requests++;
    flow.forward(c, target, f);
  }

  /** The request `c` is answering with `f`, if it was routed to `c` and is still open. */
  #served(c: Conn, f: FrameOf<typeof Kind.Rep>): InFlight | undefined {
    const requester = local(c.space, f.to);
    if (requester) {
      const r = requester.requests.get(f.id);
      return r && r.responder === c ? r : undefined;
    }
    for (const r of c.serving) if (r.id === f.id && r.requester.kind === 'remote' && labelOf(r.requester) === f.to) return r;
    return undefined;
  }

  /**
   * A frame another relay carried here for the connection `id` of namespace `ns`. `unit` is the
   * frame encoded as it is written (forwarded as is); `f` its decoded header.
   */
  inbound(relay: string, ns: string, id: string, f: Frame, unit: Uint8Array): void {
    const space = this.#registry.space(ns);
    const target = local(space, id);
    const { flow, metrics } = this.#port;
    // The sender's route is looked up only for an answer back or a request's record: not per frame.
    const origin = (): Route<Conn> | undefined => space?.route((f as { from?: string }).from ?? '');
    const back = (reply: Frame): void => {
      const to = origin();
      if (to?.kind === 'remote') this.relays?.forward(ns, to, reply);
    };
    switch (f.kind) {
      case Kind.Msg: {
        const dest = splitAddress(f.to).name;
        if (!target || !flow.hasRoom(target)) {
          metrics.drop(f.from, f, f.to, target ? DropReason.SLOW_CONSUMER : DropReason.NO_ROUTE);
          // Retry later: the sender keeps it and resends in order.
          return back(frame(Kind.Ack, { to: f.from, from: dest, dest, origin: f.origin, seq: f.seq, status: AckStatus.Limit }));
        }
        target.connection.writeEncoded(unit);
        if (metrics.tracing) metrics.trace('forward', f, f.from, target.label);
        return;
      }
      case Kind.Ack:
      case Kind.Signal:
        if (!target) return metrics.drop(f.from, f, f.to, DropReason.NO_ROUTE);
        target.connection.writeEncoded(unit);
        if (metrics.tracing) metrics.trace('forward', f, f.from, target.label);
        return;
      case Kind.Req: {
        if (!target || !flow.hasRoom(target)) {
          metrics.drop(f.from, f, f.to, target ? DropReason.SLOW_CONSUMER : DropReason.NO_ROUTE);
          const code = target ? ErrorCode.LIMIT : ErrorCode.NO_ROUTE;
          return back(frame(Kind.Rep, { to: f.from, from: '', id: f.id, code, message: target ? `"${target.label}" is not keeping up` : `no peer "${id}"` }));
        }
        const from = origin();
        const requester: RemotePeer = from?.kind === 'remote' ? from : { kind: 'remote', relay, id: f.from, name: undefined };
        target.ownServing().add({ id: f.id, requester, responder: target, start: performance.now(), deadline: Date.now() + Math.min(f.timeout, 0x7fffffff) });
        target.connection.writeEncoded(unit);
        if (metrics.tracing) metrics.trace('forward', f, f.from, target.label);
        return;
      }
      case Kind.Rep: {
        const r = target?.requests.get(f.id);
        // Only the relay the request went to may answer it, once.
        if (!target || !r || r.responder.kind !== 'remote' || r.responder.relay !== relay) return metrics.drop(f.from, f, f.to, DropReason.NOT_REQUESTED);
        settle(r);
        metrics.latency((performance.now() - r.start) / 1000);
        target.connection.writeEncoded(unit);
        if (metrics.tracing) metrics.trace('forward', f, f.from, target.label);
        return;
      }
      default:
        return metrics.drop(relay, f, id, DropReason.PROTOCOL);
    }
  }

  /** A reply is forwarded only from the peer the request was routed to, once. */
  #rep(c: Conn, f: FrameOf<typeof Kind.Rep>): void {
    if (f.to === RELAY_NAME) return this.#admin.reply(c, f);
    const r = this.#served(c, f);
    if (!r) return this.#port.metrics.drop(c.label, f, f.to, c.space?.route(f.to) ? DropReason.NOT_REQUESTED : DropReason.NO_ROUTE);
    settle(r);
    f.from = c.label;
    if (r.requester.kind === 'remote') {
      this.relays?.forward(c.namespace, r.requester, f);
      return;
    }
    this.#port.metrics.latency((performance.now() - r.start) / 1000);
    // A requester that does not read its socket gets no more replies: it times out, and is cut
    // as a slow consumer if it stays over the cap.
    this.#port.flow.forward(c, r.requester, f);
  }
}

/**
 * The connection of this relay that `nameOrId` names in `space`. A
 * route to a peer on another relay counts as none here: relay-to-relay routing is the
 * backplane's (docs/core.md, "Router internals").
 */
export function local(space: Space<Conn> | undefined, nameOrId: string): Conn | undefined {
  const r = space?.route(nameOrId);
  return r?.kind === 'local' ? r : undefined;
}

function settle(r: InFlight): void {
  if (r.requester.kind === 'local') r.requester.requests.delete(r.id);
  if (r.responder.kind === 'local') r.responder.serving.delete(r);
}

/** The label a route is addressed by: a name, else its id. */
function labelOf(p: Conn | RemotePeer): string {
  return p.kind === 'local' ? p.label : (p.name ?? p.id);
}

