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
import { local } from './forwarding.js';
import { DropReason } from './metrics.js';
import type { RouterPart, RouterPort } from './port.js';

/** A tunnel through the relay: frames are accepted only from its two ends. */
export interface TunnelRecord {
  tid: number;
  opener: Conn;
  acceptor: Conn;
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
  /** Open tunnels by `openerId:tid`. */
  readonly #tunnels = new Map<string, TunnelRecord>();

  constructor(port: RouterPort) {
    this.#port = port;
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
    if (t) this.#end(t, ErrorCode.LIMIT, message);
  }

  /** Tunnels through this peer are over: their other ends fail with CLOSED. */
  closed(c: Conn): void {
    for (const t of [...c.tunnels]) {
      this.#forget(t);
      const other = t.opener === c ? t.acceptor : t.opener;
      other.connection.write(
        frame(Kind.TClose, { to: other.label, from: c.label, tid: t.tid, dir: t.opener === c ? 0 : 1, code: ErrorCode.CLOSED, message: `${c.label} disconnected` }),
      );
    }
  }

  inspect(c: Conn): TunnelSnapshot[] {
    return [...c.tunnels].map((t) => ({ tid: t.tid, opener: t.opener.label, acceptor: t.acceptor.label, credit: [t.credit[0], t.credit[1]], ends: t.ends }));
  }

  /** TOPEN: records the tunnel and forwards it, or answers NO_ROUTE for an unknown peer. */
  #open(c: Conn, f: FrameOf<typeof Kind.TOpen>): void {
    const { flow, metrics, limits } = this.#port;
    const target = local(c.space, splitAddress(f.to).name);
    const key = `${c.id}:${f.tid}`;
    const refuse = (code: typeof ErrorCode.NO_ROUTE | typeof ErrorCode.PROTOCOL | typeof ErrorCode.LIMIT, message: string, reason: DropReason = code): void => {
      metrics.drop(c.label, f, f.to, reason);
      flow.send(c, frame(Kind.TClose, { to: c.label, from: '', tid: f.tid, dir: 1, code, message }), c);
    };
    if (!target) return refuse(ErrorCode.NO_ROUTE, `no peer "${splitAddress(f.to).name}"`);
    if (this.#tunnels.has(key)) return refuse(ErrorCode.PROTOCOL, `tunnel ${f.tid} is already open`);
    // Each open tunnel costs the relay a record: bounded per connection, at both ends.
    const max = limits.maxTunnels;
    if (c.tunnels.size >= max || target.tunnels.size >= max) return refuse(ErrorCode.LIMIT, `at most ${max} open tunnels per connection`);
    if (!flow.hasRoom(target)) return refuse(ErrorCode.LIMIT, `"${target.label}" is not keeping up`, DropReason.SLOW_CONSUMER);
    const t: TunnelRecord = { tid: f.tid, opener: c, acceptor: target, ends: 0, credit: [0, f.window] };
    this.#tunnels.set(key, t);
    c.ownTunnels().add(t);
    target.ownTunnels().add(t);
    f.from = c.label;
    flow.forward(c, target, f);
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
      return this.#end(t, ErrorCode.PROTOCOL, 'tunnel data beyond the granted window');
    }
    if (f.kind !== Kind.TClose && !flow.hasRoom(target)) {
      // Dropping a tunnel frame would break the stream: the tunnel ends instead, and the relay
      // queues nothing more for a connection that is not reading.
      metrics.drop(c.label, f, f.to, DropReason.SLOW_CONSUMER);
      return this.#end(t, ErrorCode.LIMIT, `${target.label} is not keeping up (over its relay buffer)`);
    }
    if (f.kind === Kind.TClose || (f.kind === Kind.TEnd && ++t.ends === 2)) this.#forget(t);
    f.from = c.label;
    // A TCLOSE goes through even over the cap: at most one per tunnel end.
    flow.forward(c, target, f, f.kind === Kind.TClose);
  }

  /** The open tunnel a frame from `c` belongs to, if `c` is the end it says it comes from. */
  #tunnelOf(c: Conn, f: TunnelFrame): TunnelRecord | undefined {
    const fromOpener = f.kind !== Kind.TAccept && f.dir === 0;
    const opener = fromOpener ? c : local(c.space, f.to);
    const t = opener && this.#tunnels.get(`${opener.id}:${f.tid}`);
    if (!t || (fromOpener ? t.opener !== c : t.acceptor !== c)) return undefined;
    return t;
  }

  /**
   * Ends a tunnel from the relay: each end gets a TCLOSE as if from the other end. Sent even to
   * a connection over its buffer cap (one small frame per tunnel end).
   */
  #end(t: TunnelRecord, code: string, message: string): void {
    this.#forget(t);
    const { opener: o, acceptor: a } = t;
    o.connection.write(frame(Kind.TClose, { to: o.label, from: a.label, tid: t.tid, dir: 1, code, message }));
    a.connection.write(frame(Kind.TClose, { to: a.label, from: o.label, tid: t.tid, dir: 0, code, message }));
  }

  #forget(t: TunnelRecord): void {
    this.#tunnels.delete(`${t.opener.id}:${t.tid}`);
    t.opener.tunnels.delete(t);
    t.acceptor.tunnels.delete(t);
  }
}
