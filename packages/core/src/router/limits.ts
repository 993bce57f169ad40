/** The Router's limits: what each bounds, its default, and their validation, in one place. */
import { DEFAULT_MAX_FRAME } from '../connection.js';

export interface RouterLimits {
  /** Largest frame accepted. @default 1048576 */
  maxFrameBytes: number;
  /** A connection must complete its handshake within this many ms. @default 10000 */
  handshakeTimeout: number;
  /** Connections at once, handshakes included; more are closed with LIMIT (4003). @default 10000 */
  maxConnections: number;
  /** Peers in one namespace; more are refused at the handshake with LIMIT. @default 10000 */
  maxPeersPerNamespace: number;
  /** Requests one peer may have awaiting a reply through the relay; more get a LIMIT reply. @default 1000 */
  maxPendingRequests: number;
  /**
   * Data frames (MSG, REQ, PUB, BCAST) per second per connection, with bursts up to twice
   * that (token bucket). Over it: MSG is refused (the sender retries), REQ gets LIMIT, PUB
   * and BCAST are dropped and the sender told LIMIT. @default 100000
   */
  rateLimit: number;
  /**
   * Outgoing bytes buffered for one connection (unsent batch + transport buffer) above which
   * best-effort frames to it (PUB, BCAST, PRESENCE) are dropped, MSGs refused (they stay in
   * the sender's outbox) and REQs answered LIMIT. @default 8388608
   */
  maxBufferedBytes: number;
  /** A connection above `maxBufferedBytes` for this many ms is disconnected as a slow consumer (4004). @default 5000 */
  slowConsumerTimeout: number;
  /**
   * How long (ms) the relay holds durable messages for a named peer that is not connected.
   * When it comes (back), they are delivered in order before anything else; when the hold
   * expires, each sender is told (`expired`). 0 turns holding off: such sends get NO_ROUTE.
   * @default 60000
   */
  holdTtl: number;
  /** Messages held per offline name; more are refused at once as expired. @default 1000 */
  holdMaxMessages: number;
  /** Bytes held per offline name. @default 1048576 */
  holdMaxBytes: number;
  /** Bytes held for all offline names together. @default 67108864 */
  holdMaxTotalBytes: number;
  /** Tunnels one connection may be an end of at once; more are refused with LIMIT. @default 1000 */
  maxTunnels: number;
  /** Subscription patterns one connection may hold at once; more are refused with LIMIT. @default 1000 */
  maxSubscriptions: number;
  /** Tokens in one subscription pattern (`a.b.>` has 3); longer patterns are refused with LIMIT. @default 32 */
  maxPatternTokens: number;
}

/** The limits of a Router given none. */
export const DEFAULT_LIMITS: Readonly<RouterLimits> = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME,
  handshakeTimeout: 10_000,
  maxConnections: 10_000,
  maxPeersPerNamespace: 10_000,
  maxPendingRequests: 1000,
  rateLimit: 100_000,
  maxBufferedBytes: 8 * 1024 * 1024,
  slowConsumerTimeout: 5000,
  holdTtl: 60_000,
  holdMaxMessages: 1000,
  holdMaxBytes: 1024 * 1024,
  holdMaxTotalBytes: 64 * 1024 * 1024,
  maxTunnels: 1000,
  maxSubscriptions: 1000,
  maxPatternTokens: 32,
});

/** Limits that must be positive numbers (Infinity allowed: no limit). */
const POSITIVE = [
  'maxConnections', 'maxPeersPerNamespace', 'maxPendingRequests', 'rateLimit', 'maxBufferedBytes', 'slowConsumerTimeout',
  'holdMaxMessages', 'holdMaxBytes', 'holdMaxTotalBytes', 'maxTunnels', 'maxSubscriptions', 'maxPatternTokens',
] as const satisfies readonly (keyof RouterLimits)[];

/** The defaults overridden by `given`; throws RangeError naming the first limit out of range. */
export function resolveLimits(given: Partial<RouterLimits> = {}): RouterLimits {
  const limits: RouterLimits = { ...DEFAULT_LIMITS, ...given };
  // The limit travels in WELCOME as a varuint and frame lengths are u32: it must fit both.
  const { maxFrameBytes, handshakeTimeout, holdTtl } = limits;
  if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
    throw new RangeError(`limits.maxFrameBytes must be an integer from 1 to 2^32-1, got ${maxFrameBytes}`);
  }
  if (!(handshakeTimeout > 0)) throw new RangeError(`limits.handshakeTimeout must be a positive number of ms, got ${handshakeTimeout}`);
  for (const key of POSITIVE) {
    if (!(limits[key] > 0)) throw new RangeError(`limits.${key} must be a positive number, got ${limits[key]}`);
  }
  if (!(holdTtl >= 0)) throw new RangeError(`limits.holdTtl must be 0 or more ms, got ${holdTtl}`);
  return limits;
}

/** A delay for setTimeout: past 2^31-1 ms (Infinity included) it would fire after 1 ms. */
export function timerDelay(ms: number): number {
  return Math.min(ms, 0x7fffffff);
}
