/**
 * `openDirect`: one attempt at a WebRTC data channel to one other end, through simple-peer,
 * exposed as a missive Transport once open. This file is the adapter: it resolves the ICE
 * servers, loads simple-peer, carries signalling in and out, and turns simple-peer's events into
 * the session's (session.ts), which holds the link's state and its Transport.
 */
import { ClosedError, ProtocolError, type CloseInfo, type Transport } from '@missive/core';
import { Emitter } from '@missive/core/internal';
import { resolveLinkOptions, MIN_CHUNK, type DirectLinkOptions, type ResolvedLinkOptions } from './config.js';
import { directSupported } from './support.js';
import { loadSimplePeer, type SimplePeerInstance } from './load.js';
import { DirectSession, type DataChannelPort, type DirectCloseInfo, type DirectLinkState, type DirectLinkStats } from './session.js';
import { readSignal, toSignal } from './signal.js';

/** What a DirectLink reports as it goes. */
export interface DirectLinkEvents {
  /** The data channel opened: the link's Transport. */
  open: Transport;
  /** The ICE connection state changed (`checking`, `connected`, `disconnected`, ...). */
  ice: string;
  /** The link ended, open or not (once). */
  close: DirectCloseInfo;
}

/** One attempt at a direct link, from `openDirect`. */
export interface DirectLink {
  readonly initiator: boolean;
  readonly state: DirectLinkState;
  /** The last ICE connection state (`new` before any). */
  readonly iceState: string;
  /** The Transport, once the channel has opened (it stays set after the link closed). */
  readonly transport: Transport | undefined;
  /**
   * Resolves with the Transport when the data channel opens; rejects with ClosedError (`CLOSED`)
   * if the link ends first, its `cause` saying why (a TimeoutError for `timeout`).
   */
  readonly ready: Promise<Transport>;
  /** Resolves once, when the link ends, whether it opened or not. Never rejects. */
  readonly closed: Promise<DirectCloseInfo>;
  /**
   * Feeds one signalling message from the other end (what its `signal` callback produced, after
   * any JSON round trip), in the order it was produced. Malformed data, or an offer or answer
   * this end cannot take, ends the link (kind `protocol`). Ignored once the link has ended.
   */
  signal(data: unknown): void;
  /** Closes the link: the transport's `close`; before the channel opens, gives the attempt up. */
  close(info?: Partial<CloseInfo>): void;
  stats(): DirectLinkStats;
  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof DirectLinkEvents>(type: K, fn: (event: DirectLinkEvents[K]) => void): () => void;
  off<K extends keyof DirectLinkEvents>(type: K, fn: (event: DirectLinkEvents[K]) => void): void;
}

/** Signalling messages kept until simple-peer is loaded; more is not signalling but a flood. */
const MAX_PENDING_SIGNALS = 256;
/** The chunk size when the implementation does not say its SCTP max message size (RFC 8841 allows 64 KiB; 16 KiB is what every one takes). */
const FALLBACK_CHUNK = 16 * 1024;

/**
 * Opens one direct link. Returns at once: the link resolves its ICE servers, loads simple-peer (a
 * chunk of its own, fetched on the first call), and signals through `options.signal`; the other
 * end's signalling goes into `link.signal(data)`. `link.ready` gives the Transport.
 *
 * Throws TypeError or RangeError for invalid options; every other failure ends the link, and
 * `link.closed` (and the Transport's close handler, once open) says why.
 *
 * ```ts
 * const link = openDirect({ initiator: true, signal: (data) => relay.send(other, data) });
 * onSignalFromOther((data) => link.signal(data));
 * const transport = await link.ready;
 * ```
 */
export function openDirect(options: DirectLinkOptions): DirectLink {
  return new Link(resolveLinkOptions(options));
}


class Link extends Emitter<DirectLinkEvents> implements DirectLink {
  readonly initiator: boolean;
  readonly ready: Promise<Transport>;
  readonly closed: Promise<DirectCloseInfo>;
  readonly #o: ResolvedLinkOptions;
  readonly #session: DirectSession;
  #peer: SimplePeerInstance | undefined;
  #pending: object[] = [];
  #transport: Transport | undefined;

  constructor(o: ResolvedLinkOptions) {
    super();
    this.#o = o;
    this.initiator = o.initiator;
    let resolveOpened!: (t: Transport) => void;
    let rejectOpened!: (err: Error) => void;
    let resolveClosed!: (info: DirectCloseInfo) => void;
    this.ready = new Promise<Transport>((resolve, reject) => {
      resolveOpened = resolve;
      rejectOpened = reject;
    });
    // Whoever waits on `closed` only must not meet an unhandled rejection.
    this.ready.catch(() => {});
    this.closed = new Promise<DirectCloseInfo>((resolve) => (resolveClosed = resolve));
    this.#session = new DirectSession({
      ...o,
      onOpen: (transport) => {
        this.#transport = transport;
        resolveOpened(transport);
        this.emit('open', transport);
      },
      onEnd: (info) => {
        globalThis.removeEventListener?.('pagehide', this.#onPageHide);
        const peer = this.#peer;
        if (peer && !peer.destroyed) peer.destroy();
        this.#pending = [];
        if (!this.#transport) rejectOpened(new ClosedError(`direct link not opened (${info.kind}): ${info.reason}`, info.error ? { cause: info.error } : undefined));
        resolveClosed(info);
        this.emit('close', info);
      },
    });
    // A page that goes away destroys its connections without a word to the other end, which
    // would notice only when ICE gives up: close first. (Node has no global addEventListener.)
    globalThis.addEventListener?.('pagehide', this.#onPageHide);
    void this.#start();
  }

  readonly #onPageHide = (): void => {
    this.#session.leave();
  };

  get state(): DirectLinkState {
    return this.#session.state;
  }

  get iceState(): string {
    return this.#session.iceState;
  }

  get transport(): Transport | undefined {
    return this.#transport;
  }

  signal(data: unknown): void {
    if (this.#session.state === 'closed') return;
    const s = readSignal(data, this.initiator ? 'answer' : 'offer');
    if (s instanceof ProtocolError) {
      this.#session.fail('protocol', s);
      return;
    }
    if (this.#peer) {
      feed(this.#peer, s, this.#session);
      return;
    }
    if (this.#pending.length >= MAX_PENDING_SIGNALS) {
      this.#session.fail('protocol', new ProtocolError(`more than ${MAX_PENDING_SIGNALS} signalling messages before the link started`));
      return;
    }
    this.#pending.push(s);
  }

  close(info?: Partial<CloseInfo>): void {
    this.#session.close(info);
  }

  stats(): DirectLinkStats {
    return this.#session.stats();
  }

  async #start(): Promise<void> {
    const o = this.#o;
    const session = this.#session;
    let iceServers: RTCIceServer[];
    try {
      iceServers = typeof o.iceServers === 'function' ? await o.iceServers() : o.iceServers;
      if (!Array.isArray(iceServers)) throw new TypeError('iceServers() must return an array of RTCIceServer');
    } catch (err) {
      session.fail('error', new ClosedError('iceServers() failed', { cause: err }));
      return;
    }
    if (this.#ended()) return;
    if (!directSupported(o.wrtc)) {
      session.fail('error', new ClosedError('no WebRTC here: this environment has no RTCPeerConnection (in Node, pass `wrtc`, for example @roamhq/wrtc)'));
      return;
    }
    let peer: SimplePeerInstance;
    try {
      const SimplePeer = await loadSimplePeer();
      if (this.#ended()) return;
      peer = new SimplePeer({
        initiator: o.initiator,
        config: { iceServers },
        trickle: true,
        // One 'data' event per data channel message, as the channel gave it.
        objectMode: true,
        channelName: 'missive',
        ...(o.wrtc ? { wrtc: o.wrtc } : {}),
      });
    } catch (err) {
      session.fail('error', new ClosedError(`cannot start WebRTC: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      return;
    }
    this.#peer = peer;
    this.#wire(peer);
    const pending = this.#pending;
    this.#pending = [];
    for (const s of pending) {
      if (session.state === 'closed') break;
      feed(peer, s, session);
    }
  }

  /** Read through a method: a getter read before an `await` would stay narrowed after it. */
  #ended(): boolean {
    return this.#session.state === 'closed';
  }

  #wire(peer: SimplePeerInstance): void {
    const session = this.#session;
    peer.on('signal', (data) => {
      if (session.state === 'closed') return;
      try {
        const out = this.#o.signal(toSignal(data));
        if (out && typeof out.then === 'function') out.then(undefined, (err: unknown) => session.fail('error', new ClosedError('the signal callback rejected', { cause: err })));
      } catch (err) {
        session.fail('error', new ClosedError('the signal callback threw', { cause: err }));
      }
    });
    peer.on('iceStateChange', (state) => {
      if (state === session.iceState) return;
      session.ice(state);
      this.emit('ice', state);
    });
    peer.on('data', (data) => {
      if (data instanceof Uint8Array) session.message(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else if (typeof data === 'string') session.message(data);
      else session.fail('protocol', new ProtocolError('the data channel gave neither bytes nor text'));
    });
    peer.on('connect', () => {
      const channel = peer._channel;
      if (!channel) {
        session.fail('error', new ClosedError('simple-peer connected without a data channel (an unexpected simple-peer version?)'));
        return;
      }
      session.opened(channelPort(channel), chunkSize(peer._pc, this.#o.chunkSize));
    });
    peer.on('error', (err) => {
      switch (err.code) {
        case 'ERR_ICE_CONNECTION_FAILURE':
        case 'ERR_CONNECTION_FAILURE':
          session.fail('ice-failed', new ClosedError('ICE failed: no candidate pair connects the two ends (a TURN server in iceServers may be needed)', { cause: err }));
          break;
        case 'ERR_DATA_CHANNEL':
        case 'ERR_ICE_CONNECTION_CLOSED':
          session.channelClosed(err);
          break;
        default:
          session.fail('error', new ClosedError(`WebRTC failed: ${err.message}`, { cause: err }));
      }
    });
    peer.on('close', () => session.channelClosed());
  }
}

/** Hands one checked signal to simple-peer, which throws once it has destroyed itself. */
function feed(peer: SimplePeerInstance, s: object, session: DirectSession): void {
  try {
    peer.signal(s);
  } catch (err) {
    session.fail('error', new ClosedError('WebRTC refused signalling data', { cause: err }));
  }
}

/** The data channel as the session uses it. */
function channelPort(channel: RTCDataChannel): DataChannelPort {
  let listener: (() => void) | undefined;
  return {
    send: (m) => channel.send(m as Uint8Array<ArrayBuffer>),
    get bufferedAmount() {
      return channel.bufferedAmount;
    },
    watchLow(threshold, onLow) {
      // Node's wrtc has neither the threshold nor the event: the session polls instead.
      if (typeof channel.bufferedAmountLowThreshold !== 'number' || typeof channel.addEventListener !== 'function') return false;
      channel.bufferedAmountLowThreshold = threshold;
      listener = onLow;
      channel.addEventListener('bufferedamountlow', listener);
      return true;
    },
    unwatch() {
      if (listener) channel.removeEventListener('bufferedamountlow', listener);
      listener = undefined;
    },
  };
}

/** The largest message to send: `wanted`, lowered to the SCTP max message size the connection negotiated. */
function chunkSize(pc: RTCPeerConnection | null | undefined, wanted: number): number {
  const max = pc?.sctp?.maxMessageSize;
  const limit = typeof max === 'number' && max > 0 ? max : FALLBACK_CHUNK;
  return Math.max(MIN_CHUNK, Math.min(wanted, limit));
}
