/**
 * Request/reply: requests this peer sent and awaits (each with a deadline, an abort path, and
 * a rejection on link loss unless `retry`), and the handlers that answer requests to it.
 */
import { checkAddress, RELAY_NAME, RESERVED_PREFIX, splitAddress } from '../address.js';
import { encodeBody } from '../codec/body.js';
import { decodeBody } from '../codec/body.js';
import { BodyCodec, frame, Kind, type FrameOf } from '../codec/frames.js';
import {
  ClosedError,
  errorFromWire,
  ErrorCode,
  handlerCode,
  LimitError,
  messageOf,
  MissiveError,
  ProtocolError,
  remoteWireCode,
  TimeoutError,
} from '../errors.js';
import { isThenable } from '../schedule.js';
import { randomStart } from '../store/ids.js';
import type { PeerPart, PeerPort } from './port.js';
import type { Handler, RequestContext, RequestOptions } from './types.js';

interface PendingRequest {
  id: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** The caller's abort signal and its listener, if it gave one. */
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Sent again after a reconnection instead of failing with CLOSED. */
  retry: boolean;
  /** Whether it went out on the current link. */
  sent: boolean;
  to: string;
  timeout: number;
  deadline: number;
  /** The encoded body (a copy when retried: it may be sent again later). */
  body: Uint8Array;
  flags: number;
}

/** Calls and failures of one handler, for diagnostics. */
interface HandlerStats {
  calls: number;
  errors: number;
  active: number;
}

/** How many recent handler durations are kept for the p50/p99 of `inspect()`. */
const LATENCY_SAMPLES = 256;

/** The last LATENCY_SAMPLES durations (ms) of one handler's calls. */
class Durations {
  readonly #ms = new Float64Array(LATENCY_SAMPLES);
  #n = 0;
  add(ms: number): void {
    this.#ms[this.#n++ % LATENCY_SAMPLES] = ms;
  }
  /** p50 and p99 of the kept samples, or nothing before the first call. */
  percentiles(): { p50?: number; p99?: number } {
    const n = Math.min(this.#n, LATENCY_SAMPLES);
    if (n === 0) return {};
    const sorted = this.#ms.slice(0, n).sort();
    const at = (q: number): number => Math.round(sorted[Math.min(n - 1, Math.floor(q * n))]! * 1000) / 1000;
    return { p50: at(0.5), p99: at(0.99) };
  }
}

/**
 * Answers the relay's control requests (ports starting with `$`): the Peer's inspection, when
 * it opted in. Throwing a MissiveError answers with its code.
 */
export type ControlHandler = (port: string, body: unknown) => unknown;

/** setTimeout's largest delay (about 24.8 days); longer deadlines are clamped to it. */
export const MAX_TIMEOUT = 0x7fffffff;

export interface RequestsOptions {
  requestTimeout: number;
  maxPendingRequests: number;
  /** Control requests from the relay; without it they are refused. */
  control?: ControlHandler | undefined;
}

export class Requests implements PeerPart {
  readonly #port: PeerPort;
  readonly #opts: RequestsOptions;
  readonly #pending = new Map<number, PendingRequest>();
  readonly #handlers = new Map<string, { fn: Handler<unknown, unknown>; stats: HandlerStats; durations: Durations }>();
  readonly #handling = new Set<HandlerContext>();
  // Request ids start at a random point: if this peer's name reconnects as a new session, a late
  // reply to the old session's request cannot match a new request with the same id.
  #nextReq = 1 + randomStart();
  /**
   * One timer for every pending request, armed for the earliest deadline (a timer set and
   * cleared per request costs more than the rest of a small request's bookkeeping).
   */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor(port: PeerPort, options: RequestsOptions) {
    this.#port = port;
    this.#opts = options;
  }

  /** See `Peer.handle`. */
  handle<B, R>(port: string, handler: Handler<B, R>): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    if (port.startsWith(RESERVED_PREFIX)) throw new TypeError(`port "${port}" starts with "${RESERVED_PREFIX}": those are the relay's control ports`);
    const entry = { fn: handler as Handler<unknown, unknown>, stats: { calls: 0, errors: 0, active: 0 }, durations: new Durations() };
    this.#handlers.set(port, entry);
    return () => {
      if (this.#handlers.get(port) === entry) this.#handlers.delete(port);
    };
  }

  /** See `Peer.request`. */
  request<R>(address: string, body: unknown, options: RequestOptions = {}): Promise<R> {
    const port = this.#port;
    const timeout = Math.min(options.timeout ?? this.#opts.requestTimeout, MAX_TIMEOUT);
    if (port.closedError) return Promise.reject(new ClosedError('peer is closed', { cause: port.closedError }));
    const bad = checkAddress(address);
    if (bad) return Promise.reject(new TypeError(bad));
    if (!Number.isFinite(timeout) || timeout <= 0) return Promise.reject(new TypeError('timeout must be a positive number of ms'));
    if (this.#pending.size >= this.#opts.maxPendingRequests) {
      return Promise.reject(new LimitError(`${this.#opts.maxPendingRequests} requests already pending`));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const retry = options.retry === true;
    const connected = port.connected;
    if (!connected && !retry) {
      return Promise.reject(new ClosedError('the link is down (reconnecting); pass { retry: true } to send it once it is back'));
    }
    let encoded: ReturnType<typeof encodeBody>;
    try {
      // A retried request keeps its own copy of the body (it may be written again after the
      // caller has reused a Uint8Array); others are written out at once.
      encoded = encodeBody(body, port.codec, !retry);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.#nextReq++;
    return new Promise<R>((resolve, reject) => {
      const p: PendingRequest = {
        id,
        resolve: resolve as (v: unknown) => void,
        reject,
        signal,
        onAbort: undefined,
        retry,
        sent: false,
        to: address,
        timeout,
        deadline: Date.now() + timeout,
        body: encoded.bytes,
        flags: encoded.codec,
      };
      this.#pending.set(id, p);
      if (signal) {
        p.onAbort = () => {
          this.#done(p);
          reject(signal.reason);
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#arm(p.deadline);
      if (connected) this.#send(id, p);
    });
  }

  /** The request is settled (or about to be): it is no longer pending. */
  #done(p: PendingRequest): void {
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    this.#pending.delete(p.id);
  }

  /** Makes sure the shared timer fires by `deadline`. */
  #arm(deadline: number): void {
    if (deadline >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, deadline - Date.now()));
  }

  /** Fails every request whose deadline has passed, and arms the timer for the next one. */
  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const p of this.#pending.values()) {
      if (p.deadline <= now) {
        this.#done(p);
        // Made when the deadline passes, not up front: capturing a stack costs ~8 µs, a
        // request's whole budget at c=1 is a few hundred. The message names the request.
        p.reject(new TimeoutError(`request to ${p.to} got no reply within ${p.timeout} ms`));
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity) this.#arm(next);
  }

  #send(id: number, p: PendingRequest): void {
    p.sent = true;
    // A retried request tells the responder only the time it has left.
    const timeout = Math.max(1, p.deadline - Date.now());
    this.#port.write(frame(Kind.Req, { to: p.to, from: '', id, timeout }, p.body, p.flags));
    const t = this.#port.tracer;
    if (t.on) t.emit({ type: 'send', kind: 'Req', id: String(id), to: p.to, size: p.body.length, at: Date.now() });
  }

  /**
   * A reply. Over the relay it is from the peer asked (the relay answers only what it forwarded);
   * over a direct path (`direct`) that is checked here: a peer that has seen this peer's request
   * ids must not answer a request that went to another.
   */
  onRep(f: FrameOf<typeof Kind.Rep>, direct = false): void {
    const p = this.#pending.get(f.id);
    if (!p) return; // timed out or aborted already
    if (direct && splitAddress(p.to).name !== f.from) return this.#port.tracer.drop('Rep', f, 'NOT_DESTINATION');
    this.#done(p);
    const t = this.#port.tracer;
    if (t.on) t.emit({ type: 'receive', kind: 'Rep', id: String(f.id), from: f.from, size: f.body.length, at: Date.now() });
    if (f.code === '') {
      try {
        p.resolve(decodeBody(f.body, f.flags));
      } catch (err) {
        p.reject(err);
      }
    } else {
      p.reject(errorFromWire(f.code, f.message));
    }
  }

  /**
   * A request; `direct` if it came over a direct path, where its reply then goes too. A handler
   * that returns a value (not a promise) is answered at once, without a promise hop.
   */
  onReq(f: FrameOf<typeof Kind.Req>, direct = false): void | Promise<void> {
    const port = this.#port;
    const box = splitAddress(f.to).port;
    const reply = (code: string, message: string, value?: unknown): void => {
      let bytes: Uint8Array;
      let codec: number;
      try {
        ({ bytes, codec } = encodeBody(value, port.codec, true));
      } catch (err) {
        code = remoteWireCode(err, 'ENCODE');
        message = `reply could not be encoded: ${messageOf(err)}`;
        bytes = new Uint8Array(0);
        codec = BodyCodec.None;
      }
      port.reply(frame(Kind.Rep, { to: f.from, from: '', id: f.id, code, message }, bytes, codec), direct);
    };
    if (box.charCodeAt(0) === 0x24) return this.#control(f, box, reply);
    const handler = this.#handlers.get(box);
    if (!handler) {
      port.tracer.drop('Req', f, 'NO_ROUTE');
      return reply(ErrorCode.NO_ROUTE, `no handler for "${box}" on ${port.label}`);
    }
    handler.stats.calls++;
    handler.stats.active++;
    const ctx = new HandlerContext(f.from, f.to, Date.now() + Math.min(f.timeout, MAX_TIMEOUT));
    this.#handling.add(ctx);
    const start = performance.now();
    const failed = (err: unknown): void => {
      handler.stats.errors++;
      if (ctx.live()) reply(remoteWireCode(err, err instanceof ProtocolError ? 'BAD_BODY' : handlerCode(err)), messageOf(err));
    };
    const finish = (): void => {
      handler.durations.add(performance.now() - start);
      handler.stats.active--;
      ctx.done();
      this.#handling.delete(ctx);
    };
    let result: unknown;
    try {
      const body = decodeBody(f.body, f.flags);
      const t = port.tracer;
      if (t.on) t.emit({ type: 'receive', kind: 'Req', id: String(f.id), from: f.from, to: f.to, size: f.body.length, at: Date.now() });
      result = handler.fn(body, ctx);
    } catch (err) {
      failed(err);
      return finish();
    }
    if (isThenable(result)) {
      return Promise.resolve(result).then(
        (value) => {
          if (ctx.live()) reply('', '', value);
          finish();
        },
        (err: unknown) => {
          failed(err);
          finish();
        },
      );
    }
    if (ctx.live()) reply('', '', result);
    finish();
  }

  /** A control request: only from the relay (`$relay`, a name no peer can have), only if the peer opted in. */
  async #control(f: FrameOf<typeof Kind.Req>, box: string, reply: (code: string, message: string, value?: unknown) => void): Promise<void> {
    const control = this.#opts.control;
    if (f.from !== RELAY_NAME) return reply(ErrorCode.AUTH, `"${box}" is a control port: only the relay may call it`);
    if (!control) return reply(ErrorCode.AUTH, `${this.#port.label} did not opt in to inspection (connect with inspect: true)`);
    try {
      const result = await control(box, decodeBody(f.body, f.flags));
      reply('', '', result);
    } catch (err) {
      reply(err instanceof MissiveError ? err.code : ErrorCode.REMOTE, messageOf(err));
    }
  }

  /** A new link: retried requests that did not go out on the old one go out now. */
  attached(): void {
    for (const [id, p] of this.#pending) if (!p.sent) this.#send(id, p);
  }

  linkLost(error: ClosedError): void {
    for (const [, p] of [...this.#pending]) {
      if (p.retry) p.sent = false;
      else {
        this.#done(p);
        p.reject(new ClosedError(`link closed before the reply came: ${error.message}`, { cause: error }));
      }
    }
    for (const ctx of this.#handling) ctx.abort(error);
  }

  closed(error: ClosedError): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    for (const p of [...this.#pending.values()]) {
      this.#done(p);
      p.reject(new ClosedError(`link closed before the reply came: ${error.message}`, { cause: error }));
    }
    for (const ctx of this.#handling) ctx.abort(error);
  }

  inspect(): { pending: number; maxPending: number; handling: number; handlers: ({ port: string; p50?: number; p99?: number } & HandlerStats)[] } {
    return {
      pending: this.#pending.size,
      maxPending: this.#opts.maxPendingRequests,
      handling: this.#handling.size,
      handlers: [...this.#handlers].map(([port, h]) => ({ port, ...h.stats, ...h.durations.percentiles() })),
    };
  }
}

/**
 * The context of one request being handled. Its `signal` is made only if the handler reads it:
 * most handlers never do, and an AbortController plus a deadline timer per request is the
 * largest cost of a small request at the responder. Without them, the deadline is checked when
 * the handler returns: past it, or after the peer closed, no reply is sent.
 */
class HandlerContext implements RequestContext {
  #ac: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #aborted: unknown;
  constructor(
    readonly from: string,
    readonly to: string,
    readonly deadline: number,
  ) {}

  get signal(): AbortSignal {
    if (!this.#ac) {
      const ac = (this.#ac = new AbortController());
      if (this.#aborted !== undefined) ac.abort(this.#aborted);
      else {
        this.#timer = setTimeout(() => ac.abort(new TimeoutError('requester deadline passed')), Math.max(0, this.deadline - Date.now()));
      }
    }
    return this.#ac.signal;
  }

  /** Whether a reply should still be sent. */
  live(): boolean {
    return this.#aborted === undefined && !this.#ac?.signal.aborted && Date.now() <= this.deadline;
  }

  abort(reason: unknown): void {
    this.#aborted = reason;
    this.#ac?.abort(reason);
  }

  done(): void {
    clearTimeout(this.#timer);
  }
}
