/**
 * Direct links: a peer-to-peer channel (a WebRTC data channel, opened by a `DirectConnector`)
 * that carries the traffic between two named peers instead of the relay, which then carries
 * only the signalling. The link is chosen per destination where frames leave the Peer.
 *
 * Nothing is lost, duplicated or reordered across a change of path:
 * - Upgrade: once its side of the channel is open, a peer sends `switch` over the relay and
 *   then writes direct. The other side holds what arrives direct until that `switch` comes
 *   through the relay, so everything sent over the relay before it is handled first.
 * - Per-link acks: the frames each side writes on a link are numbered (1, 2, …, implicitly: the
 *   channel is ordered), kept until the other side acks them over the link, and counted.
 * - Fallback: when the channel closes, fails, or stalls (no ack progress within `stallTimeout`
 *   while frames wait, or more than `maxUnackedBytes` unacked), traffic returns to the relay at
 *   once: every unacked frame is sent again over the relay, each announced by a `replay` signal
 *   with its number, so the other side drops those it had already handled and takes the rest
 *   in order. A later upgrade is retried with backoff.
 * - Replies follow their request's path: a reply to a request that came over the relay goes
 *   back over the relay (the relay tracks that request), one to a request that came direct goes
 *   direct. If that link died before the reply was acked (or before it was written), the reply
 *   travels inside a `rep` signal over the relay: the relay drops a reply to a request it never
 *   saw. The requester takes a reply from a direct path only from the peer it asked.
 *
 * The signals are msgpack bodies of SIGNAL frames: over the relay (so its auth applies: a peer
 * can only signal the peers it may reach), and for acks on the link itself.
 */
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';
import { ID_PREFIX } from '../address.js';
import { AckStatus, BodyCodec, decodeBatch, encodeFrame, frame, Kind, type Frame, type FrameOf } from '../codec/frames.js';
import { Connection, DEFAULT_MAX_FRAME } from '../connection.js';
import { ClosedError, ErrorCode, messageOf } from '../errors.js';
import { randomHex } from '../store/ids.js';
import type { Transport } from '../transport/transport.js';
import { CloseCode } from '../transport/transport.js';
import type { PeerPart } from './port.js';
import type { Tracer } from './tracer.js';
import type { LinkEvent, LinkKind } from './types.js';

/** Opens direct channels: `@missive/browser` passes one built on simple-peer. */
export interface DirectConnector {
  /**
   * Starts an attempt to open a channel to the peer `remote`. `signal` carries this side's
   * signalling data (plain, JSON-able objects) to the other side; the attempt gets the other
   * side's through `DirectAttempt.signal`.
   */
  open(remote: string, options: { initiator: boolean; signal(data: unknown): void }): DirectAttempt;
}

/** One attempt at a direct channel. */
export interface DirectAttempt {
  /** Signalling data from the other side. */
  signal(data: unknown): void;
  /** The open channel, as a Transport; rejects when the attempt fails. */
  readonly ready: Promise<Transport>;
  /** Gives up: closes whatever was opened (the channel too, once `ready` has resolved). */
  close(): void;
}

/** Tuning of direct links (defaults in {@link DIRECT_DEFAULTS}). */
export interface DirectOptions {
  /** An attempt that has not opened a channel within this many ms fails. */
  attemptTimeout: number;
  /** A link whose unacked frames see no ack for this many ms has stalled: traffic falls back. */
  stallTimeout: number;
  /** More unacked bytes than this on a link also make it fall back (it bounds what a link keeps). */
  maxUnackedBytes: number;
  /** Backoff of upgrade attempts after a failure: from `retryMin` doubling up to `retryMax` ms. */
  retryMin: number;
  retryMax: number;
}

export const DIRECT_DEFAULTS: DirectOptions = {
  attemptTimeout: 15_000,
  stallTimeout: 5_000,
  maxUnackedBytes: 16 * 1024 * 1024,
  retryMin: 1_000,
  retryMax: 60_000,
};

/** What the direct links need of the Peer. */
export interface DirectPort {
  /** Writes a frame over the relay. */
  relayWrite(f: Frame, stableBody?: boolean): boolean;
  /** Whether the relay link is up. */
  readonly connected: boolean;
  /** This peer's name (direct links are between named peers only). */
  readonly name: string | undefined;
  /** The relay's frame limit (frames replayed over the relay stay under it). */
  readonly maxFrame: number;
  /**
   * Hands a frame that came over a direct path (a link, or a `rep` signal; its `from` set) to
   * the Peer's dispatch, which answers a request from it over the same path (`reply`).
   */
  deliver(f: Frame): void;
  /** A direct link drained (tunnel writers waiting on congestion go on). */
  drain(): void;
  link(e: LinkEvent): void;
  /**
   * The direct link these tunnels ran on is gone: they fail (a tunnel stays on the path it was
   * opened on, as tunnels do not survive a relay reconnection either). Keys as in Tunnels:
   * `o:tid` (opened here) and `a:remote:tid` (accepted here).
   */
  tunnelsLost(keys: string[], error: Error): void;
  error(err: unknown): void;
  readonly tracer: Tracer;
}

type Signal =
  | { t: 'want' }
  | { t: 'no' }
  | { t: 'sig'; a: string; d: unknown }
  | { t: 'switch'; a: string }
  | { t: 'replay'; a: string; n: number; h: number }
  /** A reply to a request that came direct (frame `n` of link `a`, when it was written on one). */
  | { t: 'rep'; a?: string; n?: number; f: Uint8Array }
  | { t: 'ack'; n: number };

interface Retained {
  n: number;
  f: Frame;
}

interface Link {
  a: string;
  conn: Connection;
  // Outbound: frames written on the link, the other side's ack, and what it has not acked.
  sent: number;
  acked: number;
  retained: Retained[];
  unackedBytes: number;
  /** When the oldest unacked frame was written, or an ack last made progress. */
  progressAt: number;
  // Inbound: frames that came on the link, before the other side's `switch` came over the relay.
  switched: boolean;
  held: Frame[];
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Tunnels opened or accepted over this link (keys as in Tunnels); they live and die with it. */
  tunnels: Set<string>;
}

interface Remote {
  name: string;
  link: Link | undefined;
  attempt: { a: string; handle: DirectAttempt; timer: ReturnType<typeof setTimeout> } | undefined;
  /** A `switch` for link `a` that came before this side's end of the channel opened. */
  earlySwitch: string | undefined;
  /** Inbound numbering of the newest link: replays of its frames are checked against it. */
  inA: string | undefined;
  inCount: number;
  /** The highest inbound frame number handled (via the link or a replay). */
  inDone: number;
  /**
   * Set by a `replay` signal: the next relay frame from this peer is frame `n` of link `a`, if
   * its fingerprint is `h` (the relay may have dropped the replayed frame, as it drops any frame
   * to a slow consumer: then the next frame is another one, and is taken as it is).
   */
  replay: { a: string; n: number; h: number } | undefined;
  /** No attempt before this time (backoff after a failure, or a refusal). */
  retryAt: number;
  backoff: number;
  failures: number;
  lastError: string | undefined;
  /** Waiting for the other side (the initiator) to start, after a `want`. */
  wanted: number;
  /**
   * A frame came from this peer (a message, ack, request, reply or tunnel frame): it is a live
   * peer, not a group or an offline name. No upgrade starts before.
   */
  heard: boolean;
  /** Traffic went to it before it was heard from: the upgrade starts when it is. */
  pending: boolean;
}

/** Frame kinds that may travel on a direct link (all addressed to one peer). */
const DIRECT_KINDS = new Set<number>([Kind.Msg, Kind.Req, Kind.Rep, Kind.Ack, Kind.TOpen, Kind.TAccept, Kind.TData, Kind.TCredit, Kind.TEnd, Kind.TClose]);
const TUNNEL_KINDS = new Set<number>([Kind.TOpen, Kind.TAccept, Kind.TData, Kind.TCredit, Kind.TEnd, Kind.TClose]);
/** Kinds whose traffic starts an upgrade under `direct: 'auto'`. */
const UPGRADE_KINDS = new Set<number>([Kind.Msg, Kind.Req, Kind.TOpen]);
/** Inbound frames held before `switch` beyond which the link is paused. */
const HOLD_PAUSE = 256;
/** Frames handled before an ack is sent at once (otherwise after ACK_DELAY ms). */
const ACK_EVERY = 32;
const ACK_DELAY = 20;

export class DirectLinks implements PeerPart {
  readonly #port: DirectPort;
  readonly #connector: DirectConnector | undefined;
  readonly #auto: boolean;
  readonly #opts: DirectOptions;
  readonly #remotes = new Map<string, Remote>();
  /** Remotes with a `replay` pending (checked for each relay frame while non-zero). */
  #replays = 0;
  /** Open links (the Peer skips all routing work while zero and not in auto mode). */
  #open = 0;
  #stallTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(port: DirectPort, connector: DirectConnector | undefined, mode: 'auto' | 'never', options: Partial<DirectOptions> = {}) {
    this.#port = port;
    this.#connector = connector;
    this.#auto = mode === 'auto' && connector !== undefined;
    this.#opts = { ...DIRECT_DEFAULTS, ...options };
  }

  /** Whether any frame may go direct (false: the Peer writes everything to the relay). */
  get active(): boolean {
    return this.#open > 0 || this.#auto;
  }

  /** Whether relay frames must be checked against a pending replay. */
  get replaying(): boolean {
    return this.#replays > 0;
  }

  /** Which path traffic to `name` takes now. */
  linkTo(name: string): LinkKind {
    const l = this.#remotes.get(name)?.link;
    return l !== undefined ? 'direct' : 'relay';
  }

  /** Whether the direct link to `name` is over its high-water mark (undefined: no direct link). */
  congested(name: string): boolean | undefined {
    return this.#remotes.get(name)?.link?.conn.congested;
  }

  // ---- frames out --------------------------------------------------------------------------

  /**
   * Writes `f` on the direct link to its destination if there is one (returns whether written);
   * undefined means "not direct": the Peer writes it to the relay. Under `auto`, traffic to a
   * named peer starts an upgrade.
   */
  write(f: Frame, stableBody: boolean): boolean | undefined {
    if (!DIRECT_KINDS.has(f.kind)) return undefined;
    const to = (f as { to: string }).to;
    const slash = to.indexOf('/');
    const name = slash < 0 ? to : to.slice(0, slash);
    const r = this.#remotes.get(name);
    const link = r?.link;
    if (link !== undefined) {
      // A tunnel keeps the path it was opened on (the relay keeps per-tunnel state for the
      // tunnels it carries, so one cannot move between paths).
      if (TUNNEL_KINDS.has(f.kind)) {
        const key = tunnelKey(f as TunnelFrame, name, true);
        if (f.kind === Kind.TOpen) link.tunnels.add(key);
        else if (!link.tunnels.has(key)) return undefined;
        if (f.kind === Kind.TClose) link.tunnels.delete(key);
      }
      return this.#writeLink(r!, link, f, stableBody);
    }
    if (this.#auto && UPGRADE_KINDS.has(f.kind)) this.#want(r, name);
    return undefined;
  }

  /**
   * Writes the reply to a request that came over a direct path: on the link to the requester,
   * or, with none (it died since), inside a `rep` signal over the relay.
   */
  reply(f: FrameOf<typeof Kind.Rep>): boolean {
    const r = this.#remotes.get(f.to);
    const link = r?.link;
    if (link !== undefined) return this.#writeLink(r!, link, f, false);
    if (!this.#port.connected) return false;
    this.#relayReply(f.to, f, undefined, undefined);
    return true;
  }

  /**
   * Sends a reply inside a `rep` signal (the relay forwards signals between peers that may reach
   * each other and keeps no request state for them). One too large to fit under the relay's
   * frame limit is replaced by an error reply saying so.
   */
  #relayReply(to: string, f: Frame, a: string | undefined, n: number | undefined): void {
    let bytes = encodeFrame(f);
    // The signal's own fields and msgpack's headers take well under 256 bytes.
    if (bytes.length + 256 > (this.#port.maxFrame || DEFAULT_MAX_FRAME)) {
      const rep = f as FrameOf<typeof Kind.Rep>;
      const message = `the reply (${f.body.length} bytes) was lost with the direct link and is too large to send again over the relay`;
      bytes = encodeFrame(frame(Kind.Rep, { to: rep.to, from: '', id: rep.id, code: ErrorCode.LIMIT, message }, new Uint8Array(0), BodyCodec.None));
    }
    this.#signal(to, a === undefined ? { t: 'rep', f: bytes } : { t: 'rep', a, n, f: bytes });
  }

  #writeLink(r: Remote, link: Link, f: Frame, stableBody: boolean): boolean {
    // Kept until acked, to be sent again over the relay if the link dies: the body must not change.
    const kept = stableBody ? f : ({ ...f, body: f.body.slice() } as Frame);
    if (link.retained.length === 0) link.progressAt = Date.now();
    link.retained.push({ n: ++link.sent, f: kept });
    link.unackedBytes += kept.body.length + 64;
    link.conn.write(kept, true);
    if (link.unackedBytes > this.#opts.maxUnackedBytes) this.#fallback(r, `more than ${this.#opts.maxUnackedBytes} bytes unacknowledged`);
    return true;
  }

  // ---- upgrades ----------------------------------------------------------------------------

  #remote(name: string): Remote {
    let r = this.#remotes.get(name);
    if (!r) {
      r = { name, link: undefined, attempt: undefined, earlySwitch: undefined, inA: undefined, inCount: 0, inDone: 0, replay: undefined, retryAt: 0, backoff: this.#opts.retryMin, failures: 0, lastError: undefined, wanted: 0, heard: false, pending: false };
      this.#remotes.set(name, r);
    }
    return r;
  }

  /** Traffic to `name`: start (or ask the other side to start) an attempt, unless one is due later. */
  #want(existing: Remote | undefined, name: string): void {
    const me = this.#port.name;
    if (me === undefined || name === me || name.startsWith(ID_PREFIX) || this.#closed || !this.#port.connected) return;
    const r = existing ?? this.#remote(name);
    if (!r.heard) {
      // A group, an offline name or a peer that never answers would cost an attempt that cannot
      // succeed: wait until traffic comes back from it.
      r.pending = true;
      return;
    }
    const now = Date.now();
    if (r.attempt !== undefined || r.link !== undefined || now < r.retryAt) return;
    if (me < name) return this.#start(r, true, randomHex(8));
    // The smaller name initiates (so two peers never offer to each other at once): ask it to.
    if (now - r.wanted < this.#opts.attemptTimeout) return;
    r.wanted = now;
    this.#signal(name, { t: 'want' });
  }

  #start(r: Remote, initiator: boolean, a: string): void {
    const connector = this.#connector!;
    let handle: DirectAttempt;
    try {
      handle = connector.open(r.name, { initiator, signal: (d) => this.#signal(r.name, { t: 'sig', a, d }) });
    } catch (err) {
      return this.#failed(r, `could not start: ${messageOf(err)}`);
    }
    const timer = setTimeout(() => {
      if (r.attempt?.a === a) this.#failed(r, `no channel within ${this.#opts.attemptTimeout} ms`);
    }, this.#opts.attemptTimeout);
    r.attempt = { a, handle, timer };
    handle.ready.then(
      (transport) => {
        if (r.attempt?.a !== a || this.#closed) return transport.close({ code: CloseCode.NORMAL, reason: 'attempt superseded' });
        clearTimeout(timer);
        r.attempt = undefined;
        this.#opened(r, a, transport);
      },
      (err: unknown) => {
        if (r.attempt?.a === a) this.#failed(r, messageOf(err));
      },
    );
  }

  /** An attempt failed (or the other side refused): try again later, with backoff. */
  #failed(r: Remote, why: string, delay = r.backoff): void {
    if (r.attempt) {
      clearTimeout(r.attempt.timer);
      r.attempt.handle.close();
      r.attempt = undefined;
    }
    r.failures++;
    r.lastError = why;
    r.retryAt = Date.now() + delay;
    r.backoff = Math.min(r.backoff * 2, this.#opts.retryMax);
    this.#port.tracer.emit({ type: 'drop', kind: 'Signal', to: r.name, reason: `DIRECT_FAILED: ${why}`, at: Date.now() });
  }

  #opened(r: Remote, a: string, transport: Transport): void {
    const link: Link = {
      a,
      conn: undefined as unknown as Connection,
      sent: 0,
      acked: 0,
      retained: [],
      unackedBytes: 0,
      progressAt: Date.now(),
      switched: r.earlySwitch === a,
      held: [],
      ackTimer: undefined,
      tunnels: new Set(),
    };
    r.earlySwitch = undefined;
    r.link = link;
    r.inA = a;
    r.inCount = 0;
    r.inDone = 0;
    r.backoff = this.#opts.retryMin;
    r.lastError = undefined;
    this.#open++;
    // The other side may have written before this side's end reported open, and a transport may
    // hand what it holds over inside `listen`: nothing is taken before the link is set up.
    transport.pause();
    link.conn = new Connection(
      transport,
      {
        frame: (f) => this.#onLinkFrame(r, link, f),
        protocolError: (err) => this.#fallback(r, `protocol error on the direct link: ${err.message}`),
        drain: () => this.#port.drain(),
        close: (info) => this.#fallback(r, `direct link closed (${info.reason || `code ${info.code}`})`, link),
      },
      // Frames on the link are the relay's frames; room for a header over the relay's limit.
      { maxFrameBytes: (this.#port.maxFrame || DEFAULT_MAX_FRAME) + 4096 },
    );
    this.#stallTimer ??= setInterval(() => this.#checkStalls(), Math.max(50, this.#opts.stallTimeout / 4));
    // Everything written to the relay before this is handled first by the other side.
    this.#signal(r.name, { t: 'switch', a });
    this.#port.link({ name: r.name, link: 'direct' });
    if (r.link === link) transport.resume();
  }

  // ---- frames in ---------------------------------------------------------------------------

  #onLinkFrame(r: Remote, link: Link, f: Frame): void {
    if (r.link !== link) return;
    if (f.kind === Kind.Signal) {
      const s = this.#parse(f);
      if (s?.t === 'ack') return this.#onAck(link, s.n);
      return this.#fallback(r, 'unexpected signal on the direct link');
    }
    if (!DIRECT_KINDS.has(f.kind)) return this.#fallback(r, `unexpected frame kind ${f.kind} on the direct link`);
    const n = ++r.inCount;
    if (!link.switched) {
      link.held.push(f);
      if (link.held.length === HOLD_PAUSE) link.conn.transport.pause();
      return;
    }
    this.#handle(r, n, f);
  }

  /** Frame n of the newest inbound link: handled once, whichever path brought it. */
  #handle(r: Remote, n: number, f: Frame): void {
    if (n <= r.inDone) return;
    r.inDone = n;
    const link = r.link;
    if (link !== undefined && link.a === r.inA) this.#scheduleAck(link, r);
    // What the relay guarantees, checked here: the frame is from the peer at the other end, and
    // addressed to this one.
    if (link !== undefined && TUNNEL_KINDS.has(f.kind)) {
      const key = tunnelKey(f as TunnelFrame, r.name, false);
      if (f.kind === Kind.TOpen) link.tunnels.add(key);
      else if (f.kind === Kind.TClose) link.tunnels.delete(key);
    }
    this.#deliver(r.name, f);
  }

  /**
   * Hands a frame from a direct path to the Peer, with what the relay would have guaranteed
   * checked here: it is from the peer at the other end (`from`), and addressed to this one.
   */
  #deliver(from: string, f: Frame): void {
    (f as { from: string }).from = from;
    const to = (f as { to: string }).to;
    const slash = to.indexOf('/');
    if ((slash < 0 ? to : to.slice(0, slash)) !== this.#port.name) {
      return this.#port.tracer.drop('Direct', f as { from: string; to: string; body: Uint8Array }, 'NOT_DESTINATION');
    }
    this.#port.deliver(f);
  }

  /** Frame `n` of link `a`, resent over the relay: false if it was handled already (else it now is). */
  #firstTime(r: Remote, a: string, n: number): boolean {
    // Frames of an older link than the newest inbound one cannot be checked: take them.
    if (a !== r.inA) return true;
    if (n <= r.inDone) return false;
    r.inDone = n;
    return true;
  }

  #scheduleAck(link: Link, r: Remote): void {
    const unacked = r.inDone;
    if (unacked % ACK_EVERY === 0) return this.#sendAck(link, r);
    link.ackTimer ??= setTimeout(() => this.#sendAck(link, r), ACK_DELAY);
  }

  #sendAck(link: Link, r: Remote): void {
    clearTimeout(link.ackTimer);
    link.ackTimer = undefined;
    if (r.link !== link) return;
    link.conn.write(frame(Kind.Signal, { to: '', from: '' }, msgpackEncode({ t: 'ack', n: r.inDone }), BodyCodec.Msgpack), true);
  }

  #onAck(link: Link, n: number): void {
    if (!(n > link.acked) || n > link.sent) return;
    link.acked = n;
    let i = 0;
    const kept = link.retained;
    while (i < kept.length && kept[i]!.n <= n) link.unackedBytes -= kept[i++]!.f.body.length + 64;
    kept.splice(0, i);
    link.progressAt = Date.now();
  }

  /**
   * A frame arrived over the relay. If another peer sent it (not the relay in its name: a HELD,
   * EXPIRED or LIMIT ack is the relay's), that peer is live: start the upgrade that traffic to
   * it asked for, if any.
   */
  heard(f: Frame): void {
    if (!DIRECT_KINDS.has(f.kind) && f.kind !== Kind.Pub && f.kind !== Kind.Bcast) return;
    if (f.kind === Kind.Ack && f.status !== AckStatus.Ok && f.status !== AckStatus.Gap) return;
    const from = 'from' in f ? f.from : '';
    const r = this.#remotes.get(from);
    if (r === undefined || r.heard) return;
    r.heard = true;
    if (r.pending) {
      r.pending = false;
      this.#want(r, from);
    }
  }

  /** A SIGNAL from the relay. */
  onSignal(f: FrameOf<typeof Kind.Signal>): void {
    const s = this.#parse(f);
    const from = f.from;
    if (s === undefined || from === '' || from.startsWith(ID_PREFIX)) return;
    const able = this.#auto && this.#port.name !== undefined && !this.#closed;
    switch (s.t) {
      case 'want': {
        if (!able) return this.#signal(from, { t: 'no' });
        const r = this.#remote(from);
        if (r.link === undefined && r.attempt === undefined && this.#port.name! < from) {
          r.retryAt = 0;
          this.#start(r, true, randomHex(8));
        }
        return;
      }
      case 'no': {
        const r = this.#remote(from);
        return this.#failed(r, 'the other peer takes no direct links', this.#opts.retryMax);
      }
      case 'sig': {
        if (!able) return this.#signal(from, { t: 'no' });
        const r = this.#remote(from);
        if (r.attempt?.a === s.a) return r.attempt.handle.signal(s.d);
        if (r.link?.a === s.a) return; // late candidates for an open link
        // A new attempt from the other side: it replaces whatever this side had with it.
        if (r.attempt !== undefined) {
          clearTimeout(r.attempt.timer);
          r.attempt.handle.close();
          r.attempt = undefined;
        }
        if (r.link !== undefined) this.#fallback(r, 'the other peer started a new direct link', r.link, false);
        this.#start(r, false, s.a);
        // #start set r.attempt (unless the connector threw).
        (r.attempt as Remote['attempt'])?.handle.signal(s.d);
        return;
      }
      case 'switch': {
        const r = this.#remote(from);
        const link = r.link;
        if (link?.a !== s.a) {
          r.earlySwitch = s.a;
          return;
        }
        // The held frames first, then what the link brings after them: resuming the link may
        // hand frames over at once, and they are numbered after the held ones.
        const held = link.held;
        let n = r.inCount - held.length;
        for (let i = 0; i < held.length && r.link === link; i++) this.#handle(r, ++n, held[i]!);
        link.held = [];
        link.switched = true;
        if (held.length >= HOLD_PAUSE && r.link === link) link.conn.transport.resume();
        return;
      }
      case 'replay': {
        const r = this.#remote(from);
        if (r.replay === undefined) this.#replays++;
        r.replay = { a: s.a, n: s.n, h: s.h };
        return;
      }
      case 'rep':
        return this.#onRepSignal(from, s);
      case 'ack':
        return; // acks travel on the link only
    }
  }

  /** A reply inside a `rep` signal: handled once, like frame `n` of link `a` if it names one. */
  #onRepSignal(from: string, s: Extract<Signal, { t: 'rep' }>): void {
    // `f` is one frame as encodeFrame makes it: a batch of one.
    const frames: Frame[] = [];
    try {
      decodeBatch(s.f, this.#port.maxFrame || DEFAULT_MAX_FRAME, (f) => void frames.push(f));
    } catch {
      frames.length = 0;
    }
    const f = frames[0];
    if (frames.length !== 1 || f!.kind !== Kind.Rep) return this.#port.tracer.emit({ type: 'drop', kind: 'Signal', from, reason: 'MALFORMED', at: Date.now() });
    const r = this.#remotes.get(from);
    if (s.a !== undefined && r !== undefined && !this.#firstTime(r, s.a, s.n!)) return;
    this.#deliver(from, f!);
  }

  /** A frame from the relay while a replay is pending: false if it was already handled. */
  relayFrame(f: Frame): boolean {
    const from = (f as { from?: string }).from;
    if (from === undefined) return true;
    const r = this.#remotes.get(from);
    const replay = r?.replay;
    if (replay === undefined) return true;
    r!.replay = undefined;
    this.#replays--;
    // A replay of an older link than the newest inbound one cannot be checked, and a frame that
    // is not the announced one (the relay dropped that) is taken as it is.
    if (replay.a !== r!.inA || fingerprint(f) !== replay.h) return true;
    return this.#firstTime(r!, replay.a, replay.n);
  }

  #parse(f: FrameOf<typeof Kind.Signal>): Signal | undefined {
    if (f.flags !== BodyCodec.Msgpack) return undefined;
    let s: unknown;
    try {
      s = msgpackDecode(f.body);
    } catch {
      return undefined;
    }
    if (typeof s !== 'object' || s === null) return undefined;
    const o = s as Record<string, unknown>;
    switch (o.t) {
      case 'want':
      case 'no':
        return { t: o.t };
      case 'sig':
        return typeof o.a === 'string' ? { t: 'sig', a: o.a, d: o.d } : undefined;
      case 'switch':
        return typeof o.a === 'string' ? { t: 'switch', a: o.a } : undefined;
      case 'replay':
        return typeof o.a === 'string' && Number.isSafeInteger(o.n) && (o.n as number) > 0 && Number.isSafeInteger(o.h)
          ? { t: 'replay', a: o.a, n: o.n as number, h: o.h as number }
          : undefined;
      case 'rep': {
        if (!(o.f instanceof Uint8Array)) return undefined;
        if (o.a === undefined) return { t: 'rep', f: o.f };
        return typeof o.a === 'string' && Number.isSafeInteger(o.n) && (o.n as number) > 0 ? { t: 'rep', a: o.a, n: o.n as number, f: o.f } : undefined;
      }
      case 'ack':
        return Number.isSafeInteger(o.n) && (o.n as number) >= 0 ? { t: 'ack', n: o.n as number } : undefined;
      default:
        return undefined;
    }
  }

  #signal(to: string, s: Signal): void {
    this.#port.relayWrite(frame(Kind.Signal, { to, from: '' }, msgpackEncode(s), BodyCodec.Msgpack), true);
  }

  // ---- fallback ----------------------------------------------------------------------------

  /**
   * Traffic to `r` returns to the relay: the link is closed and its unacked frames are sent again
   * over the relay, each announced by a `replay` signal, in order.
   */
  #fallback(r: Remote, why: string, link: Link | undefined = r.link, retry = true): void {
    if (link === undefined || r.link !== link) return;
    r.link = undefined;
    this.#open--;
    clearTimeout(link.ackTimer);
    link.held.length = 0;
    link.conn.close(CloseCode.NORMAL, why.slice(0, 120));
    if (this.#port.connected) {
      for (const { n, f } of link.retained) {
        // Frames of tunnels on this link are not resent: those tunnels end below.
        if (TUNNEL_KINDS.has(f.kind)) continue;
        // The relay drops a reply to a request it never saw (this one came direct).
        if (f.kind === Kind.Rep) {
          this.#relayReply(r.name, f, link.a, n);
          continue;
        }
        this.#signal(r.name, { t: 'replay', a: link.a, n, h: fingerprint(f) });
        this.#port.relayWrite(f, true);
      }
    }
    link.retained.length = 0;
    if (link.tunnels.size > 0) this.#port.tunnelsLost([...link.tunnels], new ClosedError(`the direct link to ${r.name} failed: ${why}`));
    if (retry) {
      r.lastError = why;
      r.failures++;
      r.retryAt = Date.now() + r.backoff;
      r.backoff = Math.min(r.backoff * 2, this.#opts.retryMax);
    }
    if (this.#open === 0 && this.#stallTimer !== undefined) {
      clearInterval(this.#stallTimer);
      this.#stallTimer = undefined;
    }
    this.#port.link({ name: r.name, link: 'relay', reason: why });
  }

  #checkStalls(): void {
    const now = Date.now();
    for (const r of this.#remotes.values()) {
      const link = r.link;
      if (link !== undefined && link.retained.length > 0 && now - link.progressAt > this.#opts.stallTimeout) {
        this.#fallback(r, `stalled: no ack for ${this.#opts.stallTimeout} ms`);
      }
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Closes every link and attempt; nothing is replayed (the relay link is down or closing). */
  #closeAll(why: string): void {
    for (const r of this.#remotes.values()) {
      if (r.attempt) {
        clearTimeout(r.attempt.timer);
        r.attempt.handle.close();
        r.attempt = undefined;
      }
      const link = r.link;
      if (link) {
        r.link = undefined;
        this.#open--;
        clearTimeout(link.ackTimer);
        link.conn.close(CloseCode.NORMAL, why);
        this.#port.link({ name: r.name, link: 'relay', reason: why });
        if (link.tunnels.size > 0) this.#port.tunnelsLost([...link.tunnels], new ClosedError(why));
      }
      if (r.replay) this.#replays--;
      r.replay = undefined;
    }
    clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
  }

  /**
   * The relay link dropped: direct links close too (signalling and fallback need the relay; what
   * they carried is recovered like the relay's own traffic: the outbox resends, requests and
   * tunnels fail).
   */
  linkLost(_error: ClosedError): void {
    this.#closeAll('the relay link dropped');
    this.#remotes.clear();
  }

  closed(_error: ClosedError): void {
    this.#closed = true;
    this.#closeAll('peer closed');
    this.#remotes.clear();
  }

  inspect(): DirectSnapshot {
    const now = Date.now();
    return {
      mode: this.#auto ? 'auto' : 'never',
      available: this.#connector !== undefined,
      remotes: [...this.#remotes.values()].map((r) => ({
        name: r.name,
        link: r.link ? 'direct' : r.attempt ? 'connecting' : 'relay',
        sent: r.link?.sent ?? 0,
        acked: r.link?.acked ?? 0,
        unackedBytes: r.link?.unackedBytes ?? 0,
        received: r.inDone,
        failures: r.failures,
        lastError: r.lastError,
        retryIn: Math.max(0, r.retryAt - now),
      })),
    };
  }
}

/** What `DirectLinks.inspect()` returns (the `direct` part of `Peer.inspect()`). */
export interface DirectSnapshot {
  mode: 'auto' | 'never';
  /** Whether this peer can open direct links at all (it was given a connector). */
  available: boolean;
  remotes: {
    name: string;
    link: 'direct' | 'connecting' | 'relay';
    /** Frames written on the current link, and acked by the other side. */
    sent: number;
    acked: number;
    unackedBytes: number;
    /** Frames of the other side's current link handled here. */
    received: number;
    failures: number;
    lastError: string | undefined;
    /** Ms until the next upgrade attempt is allowed. */
    retryIn: number;
  }[];
}

/**
 * FNV-1a over a frame's encoding with an empty `from` (the relay stamps `from`; the sender
 * wrote it empty): identifies a replayed frame on arrival.
 */
function fingerprint(f: Frame): number {
  const bytes = encodeFrame({ ...f, from: '' } as Frame);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

type TunnelFrame = FrameOf<typeof Kind.TOpen> | FrameOf<typeof Kind.TAccept> | FrameOf<typeof Kind.TData> | FrameOf<typeof Kind.TCredit> | FrameOf<typeof Kind.TEnd> | FrameOf<typeof Kind.TClose>;

/**
 * The key Tunnels uses for the tunnel a frame belongs to, seen from this peer: `o:tid` if this
 * peer opened it, `a:remote:tid` if it accepted it. `out` says whether this peer writes the frame.
 */
function tunnelKey(f: TunnelFrame, remote: string, out: boolean): string {
  // TOPEN comes from the opener, TACCEPT from the acceptor; other frames say by `dir` (0: opener).
  const fromOpener = f.kind === Kind.TOpen ? true : f.kind === Kind.TAccept ? false : f.dir === 0;
  const openedHere = fromOpener === out;
  return openedHere ? `o:${f.tid}` : `a:${remote}:${f.tid}`;
}
