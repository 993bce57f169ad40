/**
 * Tunnels through the relay: TOPEN records a tunnel between its two ends, and its frames are
 * then accepted only from them, within the windows the ends granted each other (so the relay
 * never holds more than a window per direction). A tunnel ends when both sides sent TEND, at a
 * TCLOSE, or when an end goes; the other end is then told.
 */
import { splitAddress } from '../address.js';
import { frame, Kind, type Frame, type FrameOf } from '../codec/frames.js';
import { ErrorCode } from '../errors.js';
import type { Conn } from './conn.js';
import { DropReason } from './metrics.js';
import type { RouterPart, RouterPort } from './port.js';
import type { RemotePeer, Space } from './registry.js';
import type { Relays } from './relays.js';

/** A tunnel through the relay: frames are accepted only from its two ends. */
export interface TunnelRecord {
  tid: number;
  /** Either end may be a peer on another relay (a cluster): that relay keeps the same record. */
  opener: Conn | RemotePeer;
  acceptor: Conn | RemotePeer;
  /** TEND frames seen (the record goes at 2, or at TCLOSE). */
  ends: number;
  /**
   * Data bytes each end may still send ([opener, acceptor]), from the windows in TOPEN/TACCEPT
   * and the TCREDITs: a writer going beyond it is cut off here.
   */
  credit: [number, number];
}

type TunnelFrame = FrameOf<typeof Kind.TAccept> | FrameOf<typeof Kind.TData> | FrameOf<typeof Kind.TCredit> | FrameOf<typeof Kind.TEnd> | FrameOf<typeof Kind.TClose>;

function isTunnelFrame(f: Frame): f is TunnelFrame {
  return f.kind === Kind.TAccept || f.kind === Kind.TData || f.kind === Kind.TCredit || f.kind === Kind.TEnd || f.kind === Kind.TClose;
}

/** One tunnel of a connection, for `Router.inspect()`. */
export interface TunnelSnapshot {
  tid: number;
  opener: string;
  acceptor: string;
  /** Data bytes the opener, and the acceptor, may still send. */
  credit: [number, number];
  /** TEND frames seen. */
  ends: number;
}

export class Tunnels implements RouterPart {
  readonly kinds = [Kind.TOpen, Kind.TAccept, Kind.TData, Kind.TCredit, Kind.TEnd, Kind.TClose] as const;
  readonly #port: RouterPort;
  readonly #registry: (ns: string) => Space<Conn> | undefined;
  /** Open tunnels by `openerId:tid`. */
  readonly #tunnels = new Map<string, TunnelRecord>();
  /** The cluster, when this relay is one of many. */
  relays: Relays | undefined;

  constructor(port: RouterPort, registry: (ns: string) => Space<Conn> | undefined) {
    this.#port = port;
    this.#registry = registry;
  }

  /** Writes `f` to an end of a tunnel: a connection here, or a peer on another relay. */
  #write(ns: string, end: Conn | RemotePeer, f: Frame, force = false, from?: Conn): void {
    if (end.kind === 'remote') {
      this.relays?.forward(ns, end, f);
      return;
    }
    if (from) this.#port.flow.forward(from, end, f, force);
    else end.connection.write(f);
  }

  get size(): number {
    return this.#tunnels.size;
  }

  frame(c: Conn, f: Frame): void {
    if (f.kind === Kind.TOpen) this.#open(c, f);
    else if (isTunnelFrame(f)) this.#frame(c, f);
  }

  overRate(c: Conn, f: Frame, message: string): void {
    if (f.kind !== Kind.TOpen && !isTunnelFrame(f)) return this.#port.flow.rateError(c, f, message);
    this.#port.metrics.drop(c.label, f, f.to, DropReason.RATE);
    if (f.kind === Kind.TOpen) {
      this.#port.flow.send(c, frame(Kind.TClose, { to: c.label, from: '', tid: f.tid, dir: 1, code: ErrorCode.LIMIT, message }), c);
      return;
    }
    const t = this.#tunnelOf(c, f);
    if (t) this.#end(c.namespace, t, ErrorCode.LIMIT, message);
  }

  /** Tunnels through this peer are over: their other ends fail with CLOSED. */
  closed(c: Conn): void {
    for (const t of [...c.tunnels]) {
      this.#forget(t);
      const other = t.opener === c ? t.acceptor : t.opener;
      this.#write(c.namespace, other, frame(Kind.TClose, { to: label(other), from: c.label, tid: t.tid, dir: t.opener === c ? 0 : 1, code: ErrorCode.CLOSED, message: `${c.label} disconnected` }));
    }
  }

  inspect(c: Conn): TunnelSnapshot[] {
    return [...c.tunnels].map((t) => ({ tid: t.tid, opener: label(t.opener), acceptor: label(t.acceptor), credit: [t.credit[0], t.credit[1]], ends: t.ends }));
  }

  /** TOPEN: records the tunnel and forwards it, or answers NO_ROUTE for an unknown peer. */
  #open(c: Conn, f: FrameOf<typeof Kind.TOpen>): void {
    const { flow, metrics, limits } = this.#port;
    const route = c.space?.route(splitAddress(f.to).name);
    const target = route?.kind === 'local' || (route?.kind === 'remote' && this.relays) ? route : undefined;
    const key = `${c.id}:${f.tid}`;
    const refuse = (code: typeof ErrorCode.NO_ROUTE | typeof ErrorCode.PROTOCOL | typeof ErrorCode.LIMIT, message: string, reason: DropReason = code): void => {
      metrics.drop(c.label, f, f.to, reason);
      flow.send(c, frame(Kind.TClose, { to: c.label, from: '', tid: f.tid, dir: 1, code, message }), c);
    };
    if (!target) return refuse(ErrorCode.NO_ROUTE, `no peer "${splitAddress(f.to).name}"`);
    if (this.#tunnels.has(key)) return refuse(ErrorCode.PROTOCOL, `tunnel ${f.tid} is already open`);
    // Each open tunnel costs the relay a record: bounded per connection, at both ends.
    const max = limits.maxTunnels;
    if (c.tunnels.size >= max || (target.kind === 'local' && target.tunnels.size >= max)) return refuse(ErrorCode.LIMIT, `at most ${max} open tunnels per connection`);
    if (target.kind === 'local' && !flow.hasRoom(target)) return refuse(ErrorCode.LIMIT, `"${target.label}" is not keeping up`, DropReason.SLOW_CONSUMER);
    const t: TunnelRecord = { tid: f.tid, opener: c, acceptor: target, ends: 0, credit: [0, f.window] };
    f.from = c.label;
    if (target.kind === 'remote') {
      if (!this.relays!.forward(c.namespace, target, f)) return refuse(ErrorCode.LIMIT, 'the cluster backplane cannot carry it now');
      this.#tunnels.set(key, t);
      c.ownTunnels().add(t);
      return;
    }
    this.#tunnels.set(key, t);
    c.ownTunnels().add(t);
    target.ownTunnels().add(t);
    flow.forward(c, target, f);
  }

  /**
   * A tunnel frame another relay carried here for the connection `id` (a cluster): the same
   * record is kept on both relays, and the window is enforced where the sending end is.
   */
  inbound(relay: string, ns: string, id: string, f: Frame, unit: Uint8Array): void {
    const { metrics, flow } = this.#port;
    const space = this.#registry(ns);
    const here = space?.route(id);
    const target = here?.kind === 'local' ? here : undefined;
    const from = (f as { from: string }).from;
    const sender = space?.route(from);
    const remote: RemotePeer = sender?.kind === 'remote' ? sender : { kind: 'remote', relay, id: from, name: undefined };
    if (f.kind === Kind.TOpen) {
      const key = `${remote.id}:${f.tid}`;
      const back = (code: string, message: string): void => void this.relays?.forward(ns, remote, frame(Kind.TClose, { to: from, from: '', tid: f.tid, dir: 1, code, message }));
      if (!target) return back(ErrorCode.NO_ROUTE, `no peer "${id}"`);
      if (this.#tunnels.has(key)) return back(ErrorCode.PROTOCOL, `tunnel ${f.tid} is already open`);
      if (target.tunnels.size >= this.#port.limits.maxTunnels) return back(ErrorCode.LIMIT, `at most ${this.#port.limits.maxTunnels} open tunnels per connection`);
      if (!flow.hasRoom(target)) return back(ErrorCode.LIMIT, `"${target.label}" is not keeping up`);
      const t: TunnelRecord = { tid: f.tid, opener: remote, acceptor: target, ends: 0, credit: [0, f.window] };
      this.#tunnels.set(key, t);
      target.ownTunnels().add(t);
      target.connection.writeEncoded(unit);
      return;
    }
    if (!isTunnelFrame(f) || !target) return metrics.drop(from, f, id, DropReason.NO_TUNNEL);
    const fromOpener = f.kind !== Kind.TAccept && f.dir === 0;
    const t = this.#tunnels.get(`${fromOpener ? remote.id : target.id}:${f.tid}`);
    const end = t && (fromOpener ? t.opener : t.acceptor);
    if (!t || !end || end.kind !== 'remote' || end.relay !== relay) return metrics.drop(from, f, id, DropReason.NO_TUNNEL);
    if (f.kind === Kind.TAccept) t.credit[0] += f.window;
    else if (f.kind === Kind.TCredit) t.credit[fromOpener ? 1 : 0] += f.bytes;
    else if (f.kind === Kind.TData) t.credit[fromOpener ? 0 : 1] -= f.body.length;
    if (f.kind !== Kind.TClose && !flow.hasRoom(target)) {
      metrics.drop(from, f, id, DropReason.SLOW_CONSUMER);
      return this.#end(ns, t, ErrorCode.LIMIT, `${target.label} is not keeping up (over its relay buffer)`);
    }
    if (f.kind === Kind.TClose || (f.kind === Kind.TEnd && ++t.ends === 2)) this.#forget(t);
    target.connection.writeEncoded(unit);
  }

  /** A relay died: the tunnels with an end there are over. */
  relayDown(relay: string): void {
    for (const t of [...this.#tunnels.values()]) {
      const far = t.opener.kind === 'remote' ? t.opener : t.acceptor.kind === 'remote' ? t.acceptor : undefined;
      if (!far || far.relay !== relay) continue;
      const near = (t.opener.kind === 'local' ? t.opener : t.acceptor) as Conn;
      this.#forget(t);
      near.connection.write(frame(Kind.TClose, { to: near.label, from: label(far), tid: t.tid, dir: t.opener === near ? 1 : 0, code: ErrorCode.CLOSED, message: 'the relay of the other end went away' }));
    }
  }

  /**
   * Frames of an open tunnel go to its other end, and only from one of its ends: `dir` says
   * which (TACCEPT always comes from the acceptor).
   */
  #frame(c: Conn, f: TunnelFrame): void {
    const { flow, metrics } = this.#port;
    const t = this.#tunnelOf(c, f);
    if (!t) return metrics.drop(c.label, f, f.to, DropReason.NO_TUNNEL);
    const fromOpener = f.kind !== Kind.TAccept && f.dir === 0;
    const target = fromOpener ? t.acceptor : t.opener;
    const d: 0 | 1 = fromOpener ? 0 : 1;
    if (f.kind === Kind.TAccept) t.credit[0] += f.window;
    else if (f.kind === Kind.TCredit) t.credit[fromOpener ? 1 : 0] += f.bytes;
    else if (f.kind === Kind.TData && (t.credit[d] -= f.body.length) < 0) {
      metrics.drop(c.label, f, f.to, DropReason.PROTOCOL);
      return this.#end(c.namespace, t, ErrorCode.PROTOCOL, 'tunnel data beyond the granted window');
    }
    if (f.kind !== Kind.TClose && target.kind === 'local' && !flow.hasRoom(target)) {
      // Dropping a tunnel frame would break the stream: the tunnel ends instead, and the relay
      // queues nothing more for a connection that is not reading.
      metrics.drop(c.label, f, f.to, DropReason.SLOW_CONSUMER);
      return this.#end(c.namespace, t, ErrorCode.LIMIT, `${target.label} is not keeping up (over its relay buffer)`);
    }
    if (f.kind === Kind.TClose || (f.kind === Kind.TEnd && ++t.ends === 2)) this.#forget(t);
    f.from = c.label;
    // A TCLOSE goes through even over the cap: at most one per tunnel end.
    this.#write(c.namespace, target, f, f.kind === Kind.TClose, c);
  }

  /** The open tunnel a frame from `c` belongs to, if `c` is the end it says it comes from. */
  #tunnelOf(c: Conn, f: TunnelFrame): TunnelRecord | undefined {
    const fromOpener = f.kind !== Kind.TAccept && f.dir === 0;
    const opener = fromOpener ? c : c.space?.route(f.to);
    const t = opener && this.#tunnels.get(`${opener.id}:${f.tid}`);
    if (!t || (fromOpener ? t.opener !== c : t.acceptor !== c)) return undefined;
    return t;
  }

  /**
   * Ends a tunnel from the relay: each end gets a TCLOSE as if from the other end. Sent even to
   * a connection over its buffer cap (one small frame per tunnel end).
   */
  #end(ns: string, t: TunnelRecord, code: string, message: string): void {
    this.#forget(t);
    const { opener: o, acceptor: a } = t;
    this.#write(ns, o, frame(Kind.TClose, { to: label(o), from: label(a), tid: t.tid, dir: 1, code, message }));
    this.#write(ns, a, frame(Kind.TClose, { to: label(a), from: label(o), tid: t.tid, dir: 0, code, message }));
  }

  #forget(t: TunnelRecord): void {
    this.#tunnels.delete(`${t.opener.id}:${t.tid}`);
    if (t.opener.kind === 'local') t.opener.tunnels.delete(t);
    if (t.acceptor.kind === 'local') t.acceptor.tunnels.delete(t);
  }
}

/** The label an end is addressed by: its name, else its id. */
function label(p: Conn | RemotePeer): string {
  return p.kind === 'local' ? p.label : (p.name ?? p.id);
}
