/**
 * What the parts of a Peer are handed (a narrow port, as nats.js hands its heartbeats a
 * three-method port), and the lifecycle each implements. No part sees the Peer or another part
 * except through what its constructor is given.
 */
import type { BodyCodec, Frame, FrameOf, Kind } from '../codec/frames.js';
import type { ClosedError } from '../errors.js';
import type { PeerEvents } from './types.js';
import type { Tracer } from './tracer.js';

export interface PeerPort {
  /**
   * Sends a frame: the one place frames leave a Peer. False when the link is down (the frame
   * is dropped, not queued). `stableBody` says the body will not change (see Connection.write).
   */
  write(f: Frame, stableBody?: boolean): boolean;
  /**
   * Sends the reply to a request over the path the request came on: `direct` if it came over
   * a direct link (see DirectLinks.reply), else over the relay, which tracks the request.
   */
  reply(f: FrameOf<typeof Kind.Rep>, direct: boolean): boolean;
  /** Whether the link is up (false while reconnecting and after close). */
  readonly connected: boolean;
  /** Why the peer is closed, once it is. */
  readonly closedError: ClosedError | undefined;
  /** The next frame reference: one counter for every part, since ERR frames name refs. */
  nextRef(): number;
  readonly tracer: Tracer;
  /** Reports an asynchronous failure that has no caller to reject (the `error` event). */
  error(err: unknown): void;
  /** Emits one of the Peer's public events. */
  emit<K extends keyof PeerEvents>(type: K, event: PeerEvents[K]): void;
  /** The codec of bodies this peer sends. */
  readonly codec: BodyCodec;
  /** This peer's name, or its id when it has none (for messages that name it). */
  readonly label: string;
  /** The relay-assigned id of the current link. */
  readonly id: string;
}

/** The lifecycle of a part; the Peer calls each hook on every part, in order. */
export interface PeerPart {
  /** A link is up (the first, or after a reconnection): send again what the relay must know. */
  attached?(): void;
  /** The link dropped and the peer reconnects: fail what cannot survive a new link. */
  linkLost?(error: ClosedError): void;
  /** The peer closed for good: fail everything pending and stop every timer. */
  closed?(error: ClosedError): void;
  /** A plain, JSON-serialisable snapshot of the part's state, for diagnostics. */
  inspect(): unknown;
}
