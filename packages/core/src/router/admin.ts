/**
 * The relay's admin channel (docs/devtools.md). An admin session is a peer that connected in the
 * reserved namespace `$admin` with credentials the `adminAuth` hook accepts; it talks to the
 * relay, addressed as `$relay`, by request/reply (`$relay/peers`, `$relay/peer`, …) and gets
 * the live trace as publications on `$relay.trace`. The relay asks peers that opted in
 * (`inspect: true`) for their snapshots with control requests to their `$inspect` port; only the
 * relay can send those (it stamps `from`, and `$` names are its own).
 *
 * Bounds: at most `CONTROL_MAX` control requests in flight, each with a deadline; the closed
 * list keeps the last `CLOSED_KEEP`; each trace session gets at most its `rate` events a second
 * (batched every `TRACE_FLUSH_MS`), and nothing while its socket is over its buffer cap; the
 * per-topic and per-group counters keep `STATS_KEYS` keys and count only while an admin
 * session is open.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { RELAY_NAME, splitAddress } from '../address.js';
import { decodeBody } from '../codec/body.js';
import { BodyCodec, frame, Kind, type FrameOf } from '../codec/frames.js';
import { ErrorCode, messageOf } from '../errors.js';
import type { TraceEvent } from '../trace.js';
import { CloseCode, type CloseInfo } from '../transport/transport.js';
import type { Conn } from './conn.js';
import type { AuthRequest } from './handshake.js';
import type { RouterMetrics } from './metrics.js';
import type { RouterPart, RouterPort } from './port.js';

/** The namespace admin sessions connect in. */
export const ADMIN_NAMESPACE = '$admin';
/** The topic the live trace is published on, to each admin session that subscribed. */
export const TRACE_TOPIC = '$relay.trace';

/** What an admin session may do. */
export interface AdminRights {
  /** Disconnect peers and purge mailboxes. */
  write: boolean;
  /** See message bodies in peeked mailboxes (the relay asks peers for bodies only then). */
  bodies: boolean;
}

/** Decides whether a HELLO in the `$admin` namespace is an admin: return its rights, or throw to refuse. */
export type AdminAuthHook = (request: AuthRequest) => AdminRights | Promise<AdminRights>;

/** A peer whose connection ended, as the admin channel lists it. */
export interface ClosedPeer {
  id: string;
  name?: string;
  namespace: string;
  connectedAt: number;
  closedAt: number;
  code: number;
  reason: string;
}

/** Recently closed connections kept for the devtools. */
export const CLOSED_KEEP = 100;
/** Control requests to peers in flight at once (beyond: refused LIMIT). */
export const CONTROL_MAX = 1024;
/** How long the relay waits for a peer's snapshot. */
export const CONTROL_TIMEOUT = 2000;
/** Peers asked for a summary per `$relay/peers` call. */
export const SUMMARY_MAX = 500;
/** Rows per `$relay/peers` answer. */
export const PEERS_MAX = 2000;
/** Trace events per second per admin session: default and ceiling. */
export const TRACE_RATE = 2000;
export const TRACE_RATE_MAX = 20_000;
export const TRACE_FLUSH_MS = 100;
/** Topic and group keys counted for rates. */
export const STATS_KEYS = 1024;
/** Messages peeked per mailbox in `$relay/peer`. */
export const PEEK = 20;

interface TraceFilter {
  peer?: string;
  address?: string;
  kinds?: Set<string>;
}

interface TraceSession {
  filter: TraceFilter;
  rate: number;
  /** Events left in the current window. */
  tokens: number;
  events: TraceEvent[];
  /** Events that matched but found no budget or no room, since the last batch. */
  dropped: number;
  /**
   * The window's budget ran out: once every session's has, the Router stops building events
   * until the next window, so what it skipped then is not counted in `dropped`.
   */
  saturated: boolean;
}

interface Control {
  c: Conn;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** An error answered to an admin request, with its wire code. */
class AdminError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the admin channel reads from the Router besides its port. */
export interface AdminDeps {
  relayId: string;
  metrics(): RouterMetrics;
  /** The Router's snapshot of one connection (flow, requests, tunnels). */
  connection(c: Conn): Record<string, unknown>;
}

export class Admin implements RouterPart {
  readonly kinds = [] as const;
  readonly #port: RouterPort;
  readonly #deps: AdminDeps;
  readonly #startedAt = Date.now();
  readonly #controls = new Map<number, Control>();
  #nextControl = 1;
  readonly #closed: ClosedPeer[] = [];
  readonly #tracers = new Map<Conn, TraceSession>();
  #flushTimer: ReturnType<typeof setInterval> | undefined;
  /** Whether some trace session has budget left in this window: the Router builds events only then. */
  tracing = false;
  /** Open admin sessions; topic and group counters run only while there is one. */
  #admins = 0;
  readonly #topicCounts = new Map<string, Map<string, number>>();
  readonly #groupCounts = new Map<string, Map<string, number>>();
  #countKeys = 0;
  /** Admin sessions refused at the handshake. */
  refused = 0;

  constructor(port: RouterPort, deps: AdminDeps) {
    this.#port = port;
    this.#deps = deps;
  }

  /** Whether the topic and group counters run. */
  get active(): boolean {
    return this.#admins > 0;
  }

  opened(c: Conn): void {
    c.openedAt = Date.now();
    if (c.grant.admin) this.#admins++;
  }

  /** Records a closed connection (called by the Router with its close code and reason). */
  record(c: Conn, wasOpen: boolean, info: CloseInfo): void {
    if (wasOpen && c.grant.admin) this.#admins--;
    for (const [id, ctl] of this.#controls) {
      if (ctl.c !== c) continue;
      this.#controls.delete(id);
      clearTimeout(ctl.timer);
      ctl.reject(new AdminError(ErrorCode.CLOSED, `${c.label} disconnected before answering`));
    }
    if (this.#tracers.delete(c)) this.#retrace();
    if (!wasOpen) return;
    const entry: ClosedPeer = { id: c.id, namespace: c.namespace, connectedAt: c.openedAt, closedAt: Date.now(), code: info.code, reason: info.reason };
    if (c.name !== undefined) entry.name = c.name;
    this.#closed.unshift(entry);
    if (this.#closed.length > CLOSED_KEEP) this.#closed.pop();
  }

  /**
   * Counts a publish to a topic (`group` false) or a request or broadcast to a group, only while
   * an admin session is open. Keyed by namespace, then by the name itself: no string is built.
   */
  count(namespace: string, name: string, group: boolean): void {
    const byNs = group ? this.#groupCounts : this.#topicCounts;
    let m = byNs.get(namespace);
    if (m === undefined) {
      if (this.#countKeys >= STATS_KEYS) return;
      byNs.set(namespace, (m = new Map()));
    }
    const n = m.get(name);
    if (n !== undefined) m.set(name, n + 1);
    else if (this.#countKeys < STATS_KEYS) {
      m.set(name, 1);
      this.#countKeys++;
    }
  }

  // ---- the live trace ----

  /** One trace event from the Router: to every trace session whose filter it matches. */
  trace(e: TraceEvent): void {
    let spent = false;
    for (const [c, s] of this.#tracers) {
      if (!matches(s.filter, e)) continue;
      if (s.tokens <= 0 || s.events.length >= s.rate) {
        s.dropped++;
        continue;
      }
      if (!this.#port.flow.hasRoom(c)) {
        s.dropped++;
        continue;
      }
      s.events.push(e);
      if (--s.tokens === 0) {
        s.saturated = true;
        spent = true;
      }
    }
    if (spent) this.#retrace();
  }

  /** SUB or UNSUB of the trace topic by an admin session. */
  subscribeTrace(c: Conn, on: boolean): void {
    if (!on) {
      if (this.#tracers.delete(c)) this.#retrace();
      return;
    }
    if (!this.#tracers.has(c)) this.#tracers.set(c, { filter: {}, rate: TRACE_RATE, tokens: TRACE_RATE / (1000 / TRACE_FLUSH_MS), events: [], dropped: 0, saturated: false });
    this.#retrace();
  }

  #retrace(): void {
    let on = false;
    for (const s of this.#tracers.values()) if (s.tokens > 0) on = true;
    this.tracing = on;
    if (this.#tracers.size > 0) {
      this.#flushTimer ??= setInterval(() => this.#flush(), TRACE_FLUSH_MS);
      // Node: the trace must not keep a process alive on its own.
      (this.#flushTimer as { unref?: () => void }).unref?.();
    } else if (this.#flushTimer !== undefined) {
      clearInterval(this.#flushTimer);
      this.#flushTimer = undefined;
    }
  }

  #flush(): void {
    for (const [c, s] of this.#tracers) {
      s.tokens = Math.max(1, Math.round(s.rate / (1000 / TRACE_FLUSH_MS)));
      if (s.events.length === 0 && s.dropped === 0) continue;
      const body = msgpackEncode({ events: s.events, dropped: s.dropped, saturated: s.saturated });
      s.events = [];
      s.dropped = 0;
      s.saturated = false;
      if (body.length > this.#port.limits.maxFrameBytes) continue;
      this.#port.flow.send(c, frame(Kind.Pub, { topic: TRACE_TOPIC, from: RELAY_NAME }, body, BodyCodec.Msgpack), c);
    }
    this.#retrace();
  }

  // ---- control requests to peers ----

  /** Sends a control request to a peer's `$`-port; resolves with its decoded reply. */
  call(c: Conn, port: string, body: unknown, timeout = CONTROL_TIMEOUT): Promise<unknown> {
    if (this.#controls.size >= CONTROL_MAX) return Promise.reject(new AdminError(ErrorCode.LIMIT, `${CONTROL_MAX} control requests already in flight`));
    if (c.state !== 'open') return Promise.reject(new AdminError(ErrorCode.NO_ROUTE, `${c.label} is not connected`));
    const id = this.#nextControl++;
    if (this.#nextControl > 0x7fffffff) this.#nextControl = 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#controls.delete(id);
        reject(new AdminError(ErrorCode.TIMEOUT, `${c.label} did not answer within ${timeout} ms`));
      }, timeout);
      this.#controls.set(id, { c, resolve, reject, timer });
      const sent = this.#port.flow.send(c, frame(Kind.Req, { to: `${c.label}/${port}`, from: RELAY_NAME, id, timeout }, msgpackEncode(body), BodyCodec.Msgpack), c);
      if (!sent) {
        clearTimeout(timer);
        this.#controls.delete(id);
        reject(new AdminError(ErrorCode.LIMIT, `${c.label} is not keeping up (its buffer is full)`));
      }
    });
  }

  /** A REP addressed to the relay: the answer to one of its control requests. */
  reply(c: Conn, f: FrameOf<typeof Kind.Rep>): void {
    const ctl = this.#controls.get(f.id);
    // Only the peer it was sent to may answer it.
    if (!ctl || ctl.c !== c) return;
    this.#controls.delete(f.id);
    clearTimeout(ctl.timer);
    if (f.code !== '') return ctl.reject(new AdminError(f.code, f.message));
    try {
      ctl.resolve(decodeBody(f.body, f.flags));
    } catch (err) {
      ctl.reject(new AdminError(ErrorCode.PROTOCOL, `${c.label} answered with a malformed body: ${messageOf(err)}`));
    }
  }

  // ---- admin requests ----

  /** A REQ to `$relay/<op>`: answered here, never forwarded. */
  request(c: Conn, f: FrameOf<typeof Kind.Req>): void {
    const answer = (code: string, message: string, value?: unknown): void => {
      let body: Uint8Array = new Uint8Array(0);
      let codec: number = BodyCodec.None;
      if (code === '' && value !== undefined) {
        body = msgpackEncode(value, { ignoreUndefined: true });
        codec = BodyCodec.Msgpack;
        if (body.length > this.#port.limits.maxFrameBytes) {
          code = ErrorCode.LIMIT;
          message = `the answer (${body.length} bytes) is larger than the relay's frame limit`;
          body = new Uint8Array(0);
          codec = BodyCodec.None;
        }
      }
      if (c.state === 'open') this.#port.flow.send(c, frame(Kind.Rep, { to: c.label, from: RELAY_NAME, id: f.id, code, message }, body, codec), c);
    };
    const rights = c.grant.admin;
    const op = splitAddress(f.to).port;
    if (!rights) {
      this.#port.emit('auth-failure', { id: c.id, name: c.name ?? '', message: `$relay/${op} needs an admin session` });
      return answer(ErrorCode.AUTH, `the relay's admin channel needs an admin session (connect in namespace "${ADMIN_NAMESPACE}" with an admin token)`);
    }
    let body: Record<string, unknown>;
    try {
      const v = f.body.length === 0 ? {} : decodeBody(f.body, f.flags);
      if (v === undefined || v === null) body = {};
      else if (typeof v !== 'object' || Array.isArray(v)) throw new Error('expected an object');
      else body = v as Record<string, unknown>;
    } catch (err) {
      return answer(ErrorCode.PROTOCOL, `$relay/${op}: bad request body: ${messageOf(err)}`);
    }
    let result: unknown;
    try {
      result = this.#op(c, op, body, rights);
    } catch (err) {
      return answer(err instanceof AdminError ? err.code : ErrorCode.PROTOCOL, messageOf(err));
    }
    if (result instanceof Promise) {
      result.then(
        (v) => answer('', '', v),
        (err: unknown) => answer(err instanceof AdminError ? err.code : ErrorCode.PROTOCOL, messageOf(err)),
      );
    } else answer('', '', result);
  }

  #op(c: Conn, op: string, body: Record<string, unknown>, rights: AdminRights): unknown {
    switch (op) {
      case 'overview':
        return this.#overview(rights);
      case 'peers':
        return this.#peers(body);
      case 'peer':
        return this.#peer(body, rights);
      case 'topics':
        return this.#topics();
      case 'trace':
        return this.#setTrace(c, body);
      case 'disconnect':
        return this.#disconnect(body, rights);
      case 'purge':
        return this.#purge(body, rights);
      default:
        throw new AdminError(ErrorCode.NO_ROUTE, `the relay has no admin operation "${op}" (overview, peers, peer, topics, trace, disconnect, purge)`);
    }
  }

  #overview(rights: AdminRights): unknown {
    const m = this.#deps.metrics();
    const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
    return {
      relay: { id: this.#deps.relayId, startedAt: this.#startedAt, uptime: Date.now() - this.#startedAt },
      rights: { write: rights.write, bodies: rights.bodies },
      connections: m.connections,
      peers: Object.fromEntries(m.peers),
      framesIn: sum(m.framesIn),
      framesOut: sum(m.framesOut),
      bytesIn: sum(m.bytesIn),
      bytesOut: sum(m.bytesOut),
      drops: m.drops,
      slowConsumerDisconnects: m.slowConsumerDisconnects,
      authFailures: m.authFailures,
      adminRefused: this.refused,
      protocolErrors: m.protocolErrors,
      held: m.held,
      requests: m.requests,
      limits: { ...this.#port.limits },
      cluster: m.cluster,
    };
  }

  #row(c: Conn): PeerRow {
    const s = c.connection.stats;
    const row: PeerRow = {
      id: c.id,
      namespace: c.namespace,
      connectedAt: c.openedAt,
      inspectable: c.inspectable === true,
      framesIn: s.framesIn,
      framesOut: s.framesOut,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      buffered: c.connection.bufferedAmount,
      groups: c.space?.groupsOf(c) ?? [],
      subscriptions: c.space?.patternsOf(c) ?? [],
      tunnels: c.tunnels.size,
      awaiting: c.requests.size,
      serving: c.serving.size,
    };
    if (c.name !== undefined) row.name = c.name;
    if (c.grant.admin) row.admin = true;
    return row;
  }

  async #peers(body: Record<string, unknown>): Promise<unknown> {
    const rows: PeerRow[] = [];
    const asks: Promise<void>[] = [];
    let total = 0;
    for (const c of this.#port.conns) {
      if (c.state !== 'open') continue;
      total++;
      if (rows.length >= PEERS_MAX) continue;
      const row = this.#row(c);
      rows.push(row);
      // A summary from each peer that may be inspectable (unknown until it first answers).
      if (body.summaries !== false && !c.grant.admin && c.inspectable !== false && asks.length < SUMMARY_MAX) {
        const start = performance.now();
        asks.push(
          this.call(c, '$inspect', { summary: true }, 1000).then(
            (v) => {
              c.inspectable = true;
              row.inspectable = true;
              row.rtt = Math.round((performance.now() - start) * 100) / 100;
              const s = v as { mailbox?: unknown; outbox?: unknown; direct?: unknown };
              if (typeof s.mailbox === 'number') row.mailbox = s.mailbox;
              if (typeof s.outbox === 'number') row.outbox = s.outbox;
              if (typeof s.direct === 'number') row.direct = s.direct;
            },
            (err: unknown) => {
              if (err instanceof AdminError && (err.code === ErrorCode.AUTH || err.code === ErrorCode.NO_ROUTE)) c.inspectable = false;
            },
          ),
        );
      }
    }
    await Promise.all(asks);
    return { peers: rows, total, closed: this.#closed };
  }

  #find(body: Record<string, unknown>): Conn {
    const id = body.id;
    if (typeof id !== 'string') throw new AdminError(ErrorCode.PROTOCOL, 'expected { id: string } (a peer id)');
    for (const c of this.#port.conns) if (c.id === id && c.state === 'open') return c;
    throw new AdminError(ErrorCode.NO_ROUTE, `no connected peer with id "${id}"`);
  }

  async #peer(body: Record<string, unknown>, rights: AdminRights): Promise<unknown> {
    const c = this.#find(body);
    const connection = { ...this.#row(c), ...this.#deps.connection(c) };
    if (c.grant.admin || c.inspectable === false) return { connection, error: c.grant.admin ? 'an admin session' : 'this peer did not opt in to inspection' };
    try {
      const snapshot = await this.call(c, '$inspect', { peek: rights.bodies ? PEEK : 0 });
      c.inspectable = true;
      return { connection: { ...connection, inspectable: true }, snapshot };
    } catch (err) {
      if (err instanceof AdminError && (err.code === ErrorCode.AUTH || err.code === ErrorCode.NO_ROUTE)) c.inspectable = false;
      return { connection, error: messageOf(err) };
    }
  }

  #topics(): unknown {
    const topics = new Map<string, { namespace: string; pattern: string; subscribers: string[] }>();
    const groups = new Map<string, { namespace: string; name: string; members: string[] }>();
    for (const c of this.#port.conns) {
      if (c.state !== 'open' || !c.space) continue;
      for (const p of c.space.patternsOf(c)) {
        const k = `${c.namespace}\u0000${p}`;
        let t = topics.get(k);
        if (!t) topics.set(k, (t = { namespace: c.namespace, pattern: p, subscribers: [] }));
        t.subscribers.push(c.label);
      }
      for (const g of c.space.groupsOf(c)) {
        const k = `${c.namespace}\u0000${g}`;
        let e = groups.get(k);
        if (!e) groups.set(k, (e = { namespace: c.namespace, name: g, members: [] }));
        e.members.push(c.label);
      }
    }
    const rates: { namespace: string; key: string; count: number }[] = [];
    for (const [prefix, byNs] of [['topic:', this.#topicCounts], ['group:', this.#groupCounts]] as const) {
      for (const [namespace, m] of byNs) for (const [name, count] of m) rates.push({ namespace, key: prefix + name, count });
    }
    return { topics: [...topics.values()], groups: [...groups.values()], rates };
  }

  #setTrace(c: Conn, body: Record<string, unknown>): unknown {
    const s = this.#tracers.get(c);
    if (!s) throw new AdminError(ErrorCode.PROTOCOL, `subscribe to "${TRACE_TOPIC}" first: the trace is published there`);
    const filter: TraceFilter = {};
    if (body.peer !== undefined && body.peer !== '') {
      if (typeof body.peer !== 'string') throw new AdminError(ErrorCode.PROTOCOL, 'peer must be a string');
      filter.peer = body.peer;
    }
    if (body.address !== undefined && body.address !== '') {
      if (typeof body.address !== 'string') throw new AdminError(ErrorCode.PROTOCOL, 'address must be a string');
      filter.address = body.address;
    }
    if (body.kinds !== undefined) {
      if (!Array.isArray(body.kinds) || !body.kinds.every((k) => typeof k === 'string')) throw new AdminError(ErrorCode.PROTOCOL, 'kinds must be a list of strings');
      if (body.kinds.length > 0) filter.kinds = new Set(body.kinds as string[]);
    }
    let rate = TRACE_RATE;
    if (body.rate !== undefined) {
      if (typeof body.rate !== 'number' || !(body.rate >= 1)) throw new AdminError(ErrorCode.PROTOCOL, 'rate must be a number of events per second, at least 1');
      rate = Math.min(Math.floor(body.rate), TRACE_RATE_MAX);
    }
    s.filter = filter;
    s.rate = rate;
    s.tokens = Math.max(1, Math.round(rate / (1000 / TRACE_FLUSH_MS)));
    this.#retrace();
    return { ok: true, rate };
  }

  #disconnect(body: Record<string, unknown>, rights: AdminRights): unknown {
    if (!rights.write) throw new AdminError(ErrorCode.AUTH, 'this admin session is read-only: disconnecting a peer needs write rights');
    const c = this.#find(body);
    const reason = typeof body.reason === 'string' && body.reason !== '' ? body.reason.slice(0, 80) : 'no reason given';
    this.#port.kick(c, CloseCode.KICKED, ErrorCode.CLOSED, `disconnected by an admin: ${reason}`);
    return { ok: true };
  }

  async #purge(body: Record<string, unknown>, rights: AdminRights): Promise<unknown> {
    if (!rights.write) throw new AdminError(ErrorCode.AUTH, 'this admin session is read-only: purging a mailbox needs write rights');
    const c = this.#find(body);
    if (typeof body.mailbox !== 'string' || body.mailbox === '') throw new AdminError(ErrorCode.PROTOCOL, 'expected { id, mailbox: string }');
    if (c.inspectable === false) throw new AdminError(ErrorCode.AUTH, `${c.label} did not opt in to inspection`);
    return this.call(c, '$purge', { mailbox: body.mailbox });
  }
}

/** One row of `$relay/peers`. */
export interface PeerRow {
  id: string;
  name?: string;
  namespace: string;
  connectedAt: number;
  inspectable: boolean;
  admin?: boolean;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  buffered: number;
  groups: string[];
  subscriptions: string[];
  tunnels: number;
  awaiting: number;
  serving: number;
  /** From the peer's own summary (inspectable peers only). */
  mailbox?: number;
  outbox?: number;
  direct?: number;
  /** Ms for the relay's summary request to come back. */
  rtt?: number;
}

function matches(f: TraceFilter, e: TraceEvent): boolean {
  if (f.kinds && !f.kinds.has(e.kind)) return false;
  if (f.peer !== undefined && e.from !== f.peer && e.to !== f.peer) return false;
  if (f.address !== undefined && (e.to === undefined || !e.to.includes(f.address))) return false;
  return true;
}
