/**
 * The Router's counters and gauges, and its trace events: frame counters shared with every
 * Connection, drops by reason, the request latency histogram. Parts report here; `snapshot()`
 * builds what `Router.metrics()` returns.
 */
import { Kind, kindName, type Frame } from '../codec/frames.js';
import type { FrameCounters } from '../connection.js';
import type { TraceEvent } from '../trace.js';
import type { ClusterSnapshot } from './relays.js';

/**
 * Why the relay dropped or refused a frame: the `reason` label of `missive_drops_total` and of
 * `drop` trace events. docs/relay.md lists the same table (a test holds them equal).
 */
export const DropReason = {
  /** No peer, group or subscriber for it. */
  NO_ROUTE: 'NO_ROUTE',
  /** Refused by a limit: connections, pending requests, tunnels, subscriptions, pattern tokens. */
  LIMIT: 'LIMIT',
  /** The receiving connection is over `maxBufferedBytes`. */
  SLOW_CONSUMER: 'SLOW_CONSUMER',
  /** The sending connection is over `rateLimit`. */
  RATE: 'RATE',
  /** A reply from a peer the request was not routed to (or already answered). */
  NOT_REQUESTED: 'NOT_REQUESTED',
  /** An ACK from a peer that is not the destination it names (a forged or stale ack). */
  NOT_DESTINATION: 'NOT_DESTINATION',
  /** A held message whose hold expired, or that the hold had no room for. */
  EXPIRED: 'EXPIRED',
  /** A tunnel frame for no open tunnel, or from a peer that is not one of its ends. */
  NO_TUNNEL: 'NO_TUNNEL',
  /** A frame that broke a protocol rule the relay enforces per frame (tunnel data beyond its window). */
  PROTOCOL: 'PROTOCOL',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Upper bounds (seconds) of the request latency histogram. */
export const LATENCY_BOUNDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Counters and gauges of a Router (see `Router.metrics()`). Frame counters are by kind name. */
export interface RouterMetrics {
  connections: number;
  /** Peers by namespace. */
  peers: Map<string, number>;
  framesIn: Record<string, number>;
  bytesIn: Record<string, number>;
  framesOut: Record<string, number>;
  bytesOut: Record<string, number>;
  /** Frames dropped, by reason (see {@link DropReason}). */
  drops: Partial<Record<DropReason, number>>;
  /** Durable messages held for offline names now, and their bytes. */
  held: { messages: number; bytes: number };
  /** Requests forwarded to a peer. */
  requests: number;
  /** Request round trips through the relay, seconds: cumulative counts per upper bound. */
  requestLatency: { bounds: readonly number[]; counts: number[]; sum: number; count: number };
  slowConsumerDisconnects: number;
  authFailures: number;
  /** Admin sessions refused (a wrong or missing admin token). */
  adminRefused: number;
  protocolErrors: number;
  /** This relay's cluster, when it is one of many. */
  cluster?: ClusterSnapshot;
}

/** The gauges other parts own, read when a snapshot is taken. */
export interface Gauges {
  connections: number;
  peers: Map<string, number>;
  held: { messages: number; bytes: number };
  adminRefused: number;
}

export class Metrics {
  /** Frame and byte counters by kind byte, written by every Connection of the Router. */
  readonly counters: FrameCounters = { framesIn: new Float64Array(256), bytesIn: new Float64Array(256), framesOut: new Float64Array(256), bytesOut: new Float64Array(256) };
  requests = 0;
  slowConsumerDisconnects = 0;
  authFailures = 0;
  protocolErrors = 0;
  readonly #drops = new Map<DropReason, number>();
  readonly #latency = { counts: new Array<number>(LATENCY_BOUNDS.length + 1).fill(0), sum: 0, count: 0 };
  readonly #emit: (e: TraceEvent) => void;
  readonly #listening: () => boolean;

  constructor(emit: (e: TraceEvent) => void, listening: () => boolean) {
    this.#emit = emit;
    this.#listening = listening;
  }

  /** Whether anyone listens to `trace`: events are built only then. */
  get tracing(): boolean {
    return this.#listening();
  }

  /** Counts a dropped or refused frame and traces it; `from` is the label of the peer it came from. */
  drop(from: string, f: Frame | undefined, to: string, reason: DropReason): void {
    this.count(reason);
    if (f && this.tracing) this.trace('drop', f, from, to, reason);
  }

  /** Counts a drop that has no frame at hand (a held message expiring). */
  count(reason: DropReason): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
  }

  /** Records one request round trip. */
  latency(seconds: number): void {
    const l = this.#latency;
    let i = 0;
    while (i < LATENCY_BOUNDS.length && seconds > LATENCY_BOUNDS[i]!) i++;
    l.counts[i]!++;
    l.sum += seconds;
    l.count++;
  }

  /** Emits a trace event for one frame (callers check `tracing` first on hot paths). */
  trace(type: TraceEvent['type'], f: Frame, from: string, to: string, reason?: string): void {
    const e: TraceEvent = { type, kind: kindName(f.kind), from, to, size: f.body.length, at: Date.now() };
    if (f.kind === Kind.Msg || f.kind === Kind.Ack) e.id = `${f.origin}:${f.seq}`;
    else if (f.kind === Kind.Req || f.kind === Kind.Rep) e.id = String(f.id);
    if (reason !== undefined) e.reason = reason;
    this.#emit(e);
  }

  /** Emits a `forward` event for a fan-out of `f` to `n` connections. */
  traceFanOut(f: Frame, from: string, to: string, n: number): void {
    this.#emit({ type: 'forward', kind: kindName(f.kind), from, to: `${to} (${n})`, size: f.body.length, at: Date.now() });
  }

  snapshot(gauges: Gauges): RouterMetrics {
    const byKind = (a: Float64Array): Record<string, number> => {
      const out: Record<string, number> = {};
      for (let k = 0; k < 256; k++) if (a[k]! > 0) out[kindName(k)] = a[k]!;
      return out;
    };
    const counts: number[] = [];
    let cumulative = 0;
    for (const n of this.#latency.counts) counts.push((cumulative += n));
    const c = this.counters;
    return {
      connections: gauges.connections,
      peers: gauges.peers,
      framesIn: byKind(c.framesIn),
      bytesIn: byKind(c.bytesIn),
      framesOut: byKind(c.framesOut),
      bytesOut: byKind(c.bytesOut),
      drops: Object.fromEntries(this.#drops),
      requests: this.requests,
      held: gauges.held,
      requestLatency: { bounds: LATENCY_BOUNDS, counts, sum: this.#latency.sum, count: this.#latency.count },
      slowConsumerDisconnects: this.slowConsumerDisconnects,
      authFailures: this.authFailures,
      adminRefused: gauges.adminRefused,
      protocolErrors: this.protocolErrors,
    };
  }
}
