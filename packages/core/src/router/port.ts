/**
 * What the parts of a Router are handed (a port, not the Router), and the lifecycle each
 * implements. The Router dispatches each client frame kind to the one part that owns it, and
 * runs the lifecycle hooks on every part in order.
 */
import type { Frame, Kind } from '../codec/frames.js';
import type { ErrorCode } from '../errors.js';
import type { Conn } from './conn.js';
import type { Flow } from './flow.js';
import type { RouterLimits } from './limits.js';
import type { Metrics } from './metrics.js';
import type { RouterEvents } from './router.js';

export interface RouterPort {
  readonly limits: Readonly<RouterLimits>;
  readonly metrics: Metrics;
  /** The one way out: every frame a part queues for a connection goes through `flow`. */
  readonly flow: Flow;
  /** Every connection of the Router, handshakes included. */
  readonly conns: ReadonlySet<Conn>;
  /** Tells the peer why (BYE), closes its transport, and releases it at once. */
  kick(c: Conn, closeCode: number, code: ErrorCode, message: string): void;
  /** Emits one of the Router's public events. */
  emit<K extends keyof RouterEvents>(type: K, event: RouterEvents[K]): void;
  /** Makes sure the sweep runs (held messages and requests expire, slow consumers go). */
  sweep(): void;
}

/** The lifecycle of a part; each hook is optional. */
export interface RouterPart {
  /** The frame kinds this part handles (each kind has one owner). */
  readonly kinds: readonly Kind[];
  /** A frame of one of `kinds` from an open connection, within its rate. */
  frame?(c: Conn, f: Frame): void;
  /**
   * A frame of one of `kinds` over its sender's rate: nothing it asks for is done, and what
   * waits on it learns so. `message` says which limit. Without this hook the frame is dropped
   * with one ERR LIMIT a second at most (`Flow.rateError`).
   */
  overRate?(c: Conn, f: Frame, message: string): void;
  /** A transport was accepted; its handshake starts. */
  accepted?(c: Conn): void;
  /** A handshake completed (after WELCOME and the held messages). */
  opened?(c: Conn): void;
  /**
   * The connection ended (closed from either end, or kicked): release what it holds and tell
   * whoever waits on it. `wasOpen`: it had completed its handshake. Runs before the registry
   * forgets the connection.
   */
  closed?(c: Conn, wasOpen: boolean): void;
  /** Periodic work (every 250 ms while there are connections or held messages). */
  sweep?(now: number): void;
  /** Whether the part still has work for the sweep with no connection left (held messages do). */
  busy?(): boolean;
}

/** Whether a hook answered with a promise (hooks of remote implementations may). */
export { isThenable } from '../schedule.js';
