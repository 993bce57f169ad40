/**
 * Flow: what keeps one connection from costing the relay more than its share. The message rate
 * (a token bucket per connection), the cap on bytes buffered for a connection (frames for a
 * connection over it are refused or dropped), and the slow consumer that stays over it too long
 * (disconnected). Also answers PING, the one frame that is only about the link.
 */
import { ByteWriter } from '../codec/bytes.js';
import { frame, Kind, writeFramed, type Frame, type FrameOf } from '../codec/frames.js';
import { LARGE_BODY } from '../connection.js';
import { ErrorCode, type ErrorCode as Code } from '../errors.js';
import { CloseCode } from '../transport/transport.js';
import { clock, type Conn } from './conn.js';
import { DropReason } from './metrics.js';
import type { RouterPart, RouterPort } from './port.js';

/** A connection's flow state, for `Router.inspect()`. */
export interface FlowSnapshot {
  /** Outgoing bytes buffered for it now. */
  bufferedBytes: number;
  /** Frames it may still send at once (the token bucket; refilled at `rateLimit` a second). */
  tokens: number;
  /** Since when (ms since epoch) it has been over `maxBufferedBytes`; 0 when it is not. */
  overSince: number;
}

export class Flow implements RouterPart {
  readonly kinds = [Kind.Ping] as const;
  readonly #port: RouterPort;
  readonly #fanout = new ByteWriter(4096);
  /**
   * The connections over their buffer cap, with since when (ms since epoch). Kept here, not on
   * each connection: few are ever over it, and the sweep then visits only them.
   */
  readonly #over = new Map<Conn, number>();
  /** When the last rate-limit ERR went to each connection that has had one (at most one a second). */
  readonly #rateErrAt = new Map<Conn, number>();

  constructor(port: RouterPort) {
    this.#port = port;
  }

  accepted(c: Conn): void {
    c.tokens = this.#port.limits.rateLimit * 2;
    c.refilled = clock();
  }

  closed(c: Conn): void {
    this.#over.delete(c);
    this.#rateErrAt.delete(c);
  }

  frame(c: Conn, f: FrameOf<typeof Kind.Ping>): void {
    this.send(c, frame(Kind.Pong, { nonce: f.nonce }), c);
  }

  /** Takes one token from the connection's bucket; false when it is empty. */
  rate(c: Conn): boolean {
    if (c.tokens >= 1) {
      c.tokens--;
      return true;
    }
    // `clock()` differences are the same integers as Date.now() differences.
    const now = clock();
    const rate = this.#port.limits.rateLimit;
    c.tokens = Math.min(rate * 2, c.tokens + ((now - c.refilled) * rate) / 1000);
    c.refilled = now;
    if (c.tokens >= 1) {
      c.tokens--;
      return true;
    }
    return false;
  }

  /**
   * An over-rate frame nothing waits on (PING, ACK, PUB, BCAST): dropped, and the sender told
   * with one ERR LIMIT a second at most.
   */
  rateError(c: Conn, f: Frame, message: string): void {
    this.#port.metrics.drop(c.label, f, '', DropReason.RATE);
    const now = Date.now();
    if (now - (this.#rateErrAt.get(c) ?? 0) < 1000) return;
    // A closed connection is forgotten (closed()): it must not be remembered after.
    if (c.state !== 'closed') this.#rateErrAt.set(c, now);
    this.send(c, frame(Kind.Err, { ref: 0, code: ErrorCode.LIMIT, message }), c);
  }

  /** Whether `target` can take more now; notes when it went over its buffer cap. */
  hasRoom(target: Conn): boolean {
    if (target.connection.bufferedAmount <= this.#port.limits.maxBufferedBytes) return true;
    // A closed connection is forgotten (closed()): it must not be remembered after.
    if (!this.#over.has(target) && target.state !== 'closed') this.#over.set(target, Date.now());
    return false;
  }

  /**
   * Queues `f` for `target` when its outgoing buffer is within `maxBufferedBytes`; otherwise
   * drops it (SLOW_CONSUMER, on behalf of `from`) and returns false. Every frame the relay
   * queues for a connection comes through here, or through a path that checked the same room
   * first (forwarded MSG, REQ, tunnel frames, fan-out); the exceptions are bounded and named
   * where they are: the BYE that closes a connection, one TCLOSE per tunnel end, WELCOME and
   * the held messages (at most `holdMaxBytes`) written to a connection that just opened.
   */
  send(target: Conn, f: Frame, from: { readonly label: string }): boolean {
    if (!this.hasRoom(target)) {
      this.#port.metrics.drop(from.label, f, target.label, DropReason.SLOW_CONSUMER);
      return false;
    }
    target.connection.write(f);
    return true;
  }

  /**
   * Forwards a frame from `c` to `target` if `target` has room, else drops it (SLOW_CONSUMER)
   * and returns false. `force` skips the check, for a TCLOSE (one per tunnel end). The body is
   * a view into a message this relay received and owns: never changed, so it is not copied.
   */
  forward(c: Conn, target: Conn, f: Frame, force = false): boolean {
    const { metrics } = this.#port;
    if (!force && !this.hasRoom(target)) {
      metrics.drop(c.label, f, target.label, DropReason.SLOW_CONSUMER);
      return false;
    }
    target.connection.write(f, true);
    if (metrics.tracing) metrics.trace('forward', f, c.label, target.label);
    return true;
  }

  /**
   * Sends one frame to many connections (a publish, a broadcast). Encoded once; each target's
   * batch gets a copy of the same bytes. A large body is not copied at all: each target gets
   * the head, then the same received body.
   */
  fanOut(c: { readonly label: string }, targets: Iterable<Conn>, f: Frame, to: string): void {
    const { metrics } = this.#port;
    const large = f.body.length >= LARGE_BODY;
    const w = this.#fanout;
    if (!large) writeFramed(w, f);
    const unit = w.buf.subarray(0, w.pos);
    let n = 0;
    for (const t of targets) {
      if (!this.hasRoom(t)) {
        metrics.drop(c.label, f, t.label, DropReason.SLOW_CONSUMER);
        continue;
      }
      if (large) t.connection.write(f, true);
      else t.connection.writeEncoded(unit);
      n++;
    }
    w.pos = 0;
    if (metrics.tracing) metrics.traceFanOut(f, c.label, to, n);
  }

  /** Answers a request frame's `ref` with OK. */
  ok(c: Conn, ref: number): void {
    this.send(c, frame(Kind.Ok, { ref }), c);
  }

  /** Answers a request frame's `ref` with ERR; an AUTH refusal is an `auth-failure` event too. */
  refuse(c: Conn, ref: number, code: Code, message: string): void {
    if (code === ErrorCode.AUTH) this.#port.emit('auth-failure', { id: c.id, name: c.name ?? '', message });
    this.send(c, frame(Kind.Err, { ref, code, message }), c);
  }

  /** The transport drained: the connection may be back under its cap. */
  drained(c: Conn): void {
    if (c.connection.bufferedAmount <= this.#port.limits.maxBufferedBytes) this.#over.delete(c);
  }

  /** Disconnects the connections over their buffer cap for longer than `slowConsumerTimeout`. */
  sweep(now: number): void {
    const { limits, metrics } = this.#port;
    const cap = limits.maxBufferedBytes;
    if (this.#over.size === 0) return;
    // In the order the connections were accepted (a walk over them all, when more than one is
    // over: kicks and their events go in that order).
    const over = this.#over.size === 1 ? this.#over.keys() : [...this.#port.conns].filter((c) => this.#over.has(c));
    for (const c of over) {
      const since = this.#over.get(c);
      if (since === undefined) continue;
      if (c.connection.bufferedAmount <= cap) this.#over.delete(c);
      else if (now - since >= limits.slowConsumerTimeout && c.connection.open) {
        // `open`: a kicked connection's transport may take a while to close; count it once.
        metrics.slowConsumerDisconnects++;
        this.#port.kick(c, CloseCode.SLOW_CONSUMER, ErrorCode.LIMIT, `slow consumer: over ${cap} buffered bytes for ${limits.slowConsumerTimeout} ms`);
      }
    }
  }

  inspect(c: Conn): FlowSnapshot {
    return { bufferedBytes: c.connection.bufferedAmount, tokens: Math.floor(c.tokens), overSince: this.#over.get(c) ?? 0 };
  }
}
