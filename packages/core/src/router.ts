/**
 * The Router is the relay's logic, independent of sockets: it accepts transports, runs the
 * handshake and the auth hook, keeps the name registry, groups and subscriptions of each
 * namespace, and forwards frames. It routes on frame headers only: bodies are copied through
 * untouched, never decoded. Nothing a connection sends can make it throw: a malformed frame
 * closes that connection alone with a PROTOCOL reason.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { checkName, ID_PREFIX, splitAddress } from './address.js';
import { ByteWriter } from './codec/bytes.js';
import {
  BodyCodec,
  frame,
  FrameTooLargeError,
  Kind,
  kindName,
  PresenceEvent,
  PROTOCOL_VERSION,
  writeFramed,
  type Frame,
  type FrameOf,
} from './codec/frames.js';
import { Connection, DEFAULT_MAX_FRAME } from './connection.js';
import { Emitter } from './emitter.js';
import { ErrorCode, ProtocolError, type ErrorCode as Code } from './errors.js';
import { checkPattern, checkTopic, matchTopic, TopicTrie } from './topics.js';
import type { TraceEvent } from './trace.js';
import type { CloseInfo, Transport } from './transport/transport.js';
import { CloseCode } from './transport/transport.js';

/** What a connecting peer presents. */
export interface AuthRequest {
  /** Requested name ('' for an anonymous peer). */
  name: string;
  namespace: string;
  /** Shared secret ('' if none). */
  secret: string;
  /** Signed token ('' if none). */
  token: string;
}

/**
 * What an auth hook grants. Omitted lists allow everything; patterns use topic wildcards
 * (`*` one token, `>` the rest).
 */
export interface AuthGrant {
  /** The name the peer gets (must equal a requested name, if one was requested). */
  name?: string;
  namespace?: string;
  /** Group names (patterns) the peer may join. */
  groups?: readonly string[];
  /** Topics (patterns) it may publish to. */
  publish?: readonly string[];
  /** Topic patterns it may subscribe with. */
  subscribe?: readonly string[];
  /** When the grant ends (ms since epoch); the session is then closed with an AUTH reason. */
  expiresAt?: number;
}

/** Decides whether a peer may connect. Throw (ideally an AuthError) or reject to refuse. */
export type AuthHook = (request: AuthRequest) => AuthGrant | void | Promise<AuthGrant | void>;

export interface RouterLimits {
  /** Largest frame accepted. @default 1048576 */
  maxFrameBytes: number;
  /** A connection must complete its handshake within this many ms. @default 10000 */
  handshakeTimeout: number;
}

export interface RouterOptions {
  auth?: AuthHook;
  limits?: Partial<RouterLimits>;
}

/** Connection summary used in events and `connections()`. */
export interface ConnectionInfo {
  id: string;
  name: string | undefined;
  namespace: string;
  groups: string[];
  subscriptions: string[];
}

export interface RouterEvents {
  trace: TraceEvent;
  /** A peer finished its handshake. */
  connect: ConnectionInfo;
  /** A peer's connection ended. */
  disconnect: ConnectionInfo & { code: number; reason: string };
  /** A connection broke the protocol and was closed. */
  'protocol-error': { id: string; error: ProtocolError };
  /** An auth hook refused a connection or an action. */
  'auth-failure': { id: string; name: string; message: string };
}

interface Group {
  members: Conn[];
  next: number;
}

interface Namespace {
  name: string;
  byName: Map<string, Conn>;
  byId: Map<string, Conn>;
  groups: Map<string, Group>;
  topics: TopicTrie<Conn>;
  watchers: Set<Conn>;
}

type ConnState = 'handshake' | 'open' | 'closed';

class Conn {
  state: ConnState = 'handshake';
  name: string | undefined;
  /** The `from` stamped on what this peer sends: its name, else its id. */
  label: string;
  ns: Namespace | undefined;
  readonly groups = new Set<string>();
  readonly patterns = new Set<string>();
  grant: AuthGrant = {};
  timer: ReturnType<typeof setTimeout> | undefined;
  connection!: Connection;
  /** Set by `Router.close` to learn when this connection is gone. */
  onClosed: (() => void) | undefined;
  constructor(readonly id: string) {
    this.label = id;
  }
}

const DEFAULT_LIMITS: RouterLimits = { maxFrameBytes: DEFAULT_MAX_FRAME, handshakeTimeout: 10_000 };

/** Client-to-relay frame kinds; anything else from a client is a protocol error. */
const FROM_CLIENT = new Set<number>([
  Kind.Hello, Kind.Bye, Kind.Ping, Kind.Msg, Kind.Ack, Kind.Req, Kind.Rep, Kind.Pub, Kind.Bcast,
  Kind.Sub, Kind.Unsub, Kind.Join, Kind.Leave, Kind.Peers, Kind.Watch,
]);

export class Router extends Emitter<RouterEvents> {
  readonly limits: RouterLimits;
  readonly #auth: AuthHook | undefined;
  readonly #namespaces = new Map<string, Namespace>();
  readonly #conns = new Set<Conn>();
  readonly #fanout = new ByteWriter(4096);
  // Ids are unique per router instance; the random part keeps ids from an earlier relay run
  // from naming a different peer after a restart.
  readonly #idBase = `${ID_PREFIX}${randomToken(4)}`;
  #nextId = 0;
  #closing = false;

  constructor(options: RouterOptions = {}) {
    super();
    this.#auth = options.auth;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    // The limit travels in WELCOME as a varuint and frame lengths are u32: it must fit both.
    const { maxFrameBytes, handshakeTimeout } = this.limits;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`limits.maxFrameBytes must be an integer from 1 to 2^32-1, got ${maxFrameBytes}`);
    }
    if (!(handshakeTimeout > 0)) throw new RangeError(`limits.handshakeTimeout must be a positive number of ms, got ${handshakeTimeout}`);
  }

  /** Number of open transports (including those still in their handshake). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Takes ownership of a transport: runs the handshake, then routes its frames. */
  accept(transport: Transport): void {
    if (this.#closing) {
      transport.close({ code: CloseCode.GOING_AWAY, reason: 'relay shutting down' });
      return;
    }
    const c = new Conn(`${this.#idBase}${(this.#nextId++).toString(36)}`);
    this.#conns.add(c);
    c.connection = new Connection(
      transport,
      {
        frame: (f) => this.#onFrame(c, f),
        protocolError: (err) => this.#fail(c, err),
        drain: () => {},
        close: (info) => this.#onClose(c, info),
      },
      { maxFrameBytes: this.limits.maxFrameBytes },
    );
    c.timer = setTimeout(() => {
      c.timer = undefined;
      if (c.state === 'handshake') this.#kick(c, CloseCode.TIMEOUT, ErrorCode.TIMEOUT, 'handshake not completed in time');
    }, this.limits.handshakeTimeout);
  }

  /** Named and anonymous peers of a namespace (or all namespaces). */
  connections(namespace?: string): ConnectionInfo[] {
    const out: ConnectionInfo[] = [];
    for (const c of this.#conns) {
      if (c.state !== 'open' || (namespace !== undefined && c.ns!.name !== namespace)) continue;
      out.push(info(c));
    }
    return out;
  }

  /** Peer counts by namespace. */
  namespaces(): Map<string, number> {
    const out = new Map<string, number>();
    for (const ns of this.#namespaces.values()) out.set(ns.name, ns.byId.size);
    return out;
  }

  /**
   * Stops accepting, tells every peer the relay is going away, and closes every connection.
   * Resolves when all transports have closed, or after `timeout` ms (then the rest are cut).
   */
  async close(timeout = 5000): Promise<void> {
    this.#closing = true;
    const pending: Promise<void>[] = [];
    for (const c of this.#conns) {
      pending.push(new Promise<void>((resolve) => (c.onClosed = resolve)));
      this.#kick(c, CloseCode.GOING_AWAY, ErrorCode.CLOSED, 'relay shutting down');
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(pending),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout))),
    ]);
    clearTimeout(timer);
    for (const c of this.#conns) this.#onClose(c, { code: CloseCode.GOING_AWAY, reason: 'relay shut down' });
  }

  // ---- frames -------------------------------------------------------------------------------

  #onFrame(c: Conn, f: Frame): void {
    if (c.state === 'closed') return;
    try {
      if (!FROM_CLIENT.has(f.kind)) throw new ProtocolError(`${kindName(f.kind)} frames are sent by the relay, not to it`);
      if (c.state === 'handshake') {
        if (f.kind !== Kind.Hello || c.ns !== undefined) throw new ProtocolError(`${kindName(f.kind)} before WELCOME`);
        this.#hello(c, f).catch((err: unknown) => this.#fail(c, new ProtocolError(`internal error handling Hello: ${String(err)}`)));
        return;
      }
      switch (f.kind) {
        case Kind.Hello:
          throw new ProtocolError('second HELLO');
        case Kind.Bye:
          c.connection.close(CloseCode.NORMAL, 'bye');
          return;
        case Kind.Ping:
          c.connection.write(frame(Kind.Pong, { nonce: f.nonce }));
          return;
        case Kind.Msg:
          return this.#msg(c, f);
        case Kind.Ack:
          return this.#direct(c, f, f.to);
        case Kind.Req:
          return this.#req(c, f);
        case Kind.Rep:
          return this.#direct(c, f, f.to);
        case Kind.Pub:
          return this.#pub(c, f);
        case Kind.Bcast:
          return this.#bcast(c, f);
        case Kind.Sub:
        case Kind.Unsub:
          return this.#sub(c, f);
        case Kind.Join:
        case Kind.Leave:
          return this.#join(c, f);
        case Kind.Peers:
          return this.#peers(c, f);
        case Kind.Watch:
          if (f.on) c.ns!.watchers.add(c);
          else c.ns!.watchers.delete(c);
          this.#ok(c, f.ref);
          return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) this.#fail(c, err);
      else this.#fail(c, new ProtocolError(`internal error handling ${kindName(f.kind)}: ${String(err)}`));
    }
  }

  async #hello(c: Conn, f: FrameOf<typeof Kind.Hello>): Promise<void> {
    c.ns = PLACEHOLDER_NS; // marks the HELLO as seen while auth runs
    if (f.version !== PROTOCOL_VERSION) {
      return this.#fail(c, new ProtocolError(`unsupported protocol version ${f.version} (relay speaks ${PROTOCOL_VERSION})`));
    }
    let grant: AuthGrant = {};
    if (this.#auth) {
      try {
        grant = (await this.#auth({ name: f.name, namespace: f.namespace, secret: f.secret, token: f.token })) ?? {};
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.emit('auth-failure', { id: c.id, name: f.name, message });
        return this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, message || 'not authorized');
      }
      // Kicked while the hook ran (handshake timeout, a frame before WELCOME): go no further.
      if (c.state === 'closed' || !c.connection.open) return;
    }
    const name = grant.name ?? (f.name || undefined);
    if (f.name && grant.name !== undefined && grant.name !== f.name) {
      this.emit('auth-failure', { id: c.id, name: f.name, message: `granted name ${grant.name}` });
      return this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, `may not claim name "${f.name}"`);
    }
    if (name !== undefined) {
      const bad = checkName(name);
      if (bad) return this.#fail(c, new ProtocolError(bad));
    }
    const nsName = grant.namespace ?? (f.namespace || 'default');
    const badNs = checkName(nsName, 'namespace');
    if (badNs) return this.#fail(c, new ProtocolError(badNs));
    const ns = this.#namespace(nsName);
    if (name !== undefined && ns.byName.has(name)) {
      return this.#kick(c, CloseCode.NAME_TAKEN, ErrorCode.NAME_TAKEN, `name "${name}" is taken in namespace "${nsName}"`);
    }
    if (grant.expiresAt !== undefined && grant.expiresAt <= Date.now()) {
      return this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, 'credentials expired');
    }
    clearTimeout(c.timer);
    c.timer = undefined;
    c.state = 'open';
    c.ns = ns;
    c.grant = grant;
    c.name = name;
    c.label = name ?? c.id;
    ns.byId.set(c.id, c);
    if (name !== undefined) ns.byName.set(name, c);
    if (grant.expiresAt !== undefined) {
      // setTimeout overflows past 2^31-1 ms; far expiries are re-armed in steps.
      const arm = (): void => {
        const left = grant.expiresAt! - Date.now();
        c.timer = setTimeout(() => {
          if (left > 0x7fffffff) return arm();
          this.#kick(c, CloseCode.AUTH, ErrorCode.AUTH, 'credentials expired');
        }, Math.min(left, 0x7fffffff));
      };
      arm();
    }
    c.connection.write(frame(Kind.Welcome, { id: c.id, name: name ?? '', namespace: nsName, maxFrame: this.limits.maxFrameBytes }));
    if (name !== undefined) this.#presence(ns, c, PresenceEvent.Join);
    this.emit('connect', info(c));
  }

  #msg(c: Conn, f: FrameOf<typeof Kind.Msg>): void {
    const target = this.#peer(c.ns!, splitAddress(f.to).name);
    if (!target) {
      this.#drop(c, f, f.to, ErrorCode.NO_ROUTE);
      c.connection.write(frame(Kind.Err, { ref: f.ref, code: ErrorCode.NO_ROUTE, message: `no peer "${splitAddress(f.to).name}"` }));
      return;
    }
    this.#forward(c, target, { ...f, from: c.label });
  }

  #req(c: Conn, f: FrameOf<typeof Kind.Req>): void {
    const name = splitAddress(f.to).name;
    const target = this.#peer(c.ns!, name) ?? this.#pickMember(c.ns!, name);
    if (!target) {
      this.#drop(c, f, f.to, ErrorCode.NO_ROUTE);
      c.connection.write(
        frame(Kind.Rep, { to: c.label, from: '', id: f.id, code: ErrorCode.NO_ROUTE, message: `no peer or group "${name}"` }),
      );
      return;
    }
    this.#forward(c, target, { ...f, from: c.label });
  }

  /** Acks and replies go to the peer named (or id'd) in `to`; if it is gone they are dropped. */
  #direct(c: Conn, f: FrameOf<typeof Kind.Ack> | FrameOf<typeof Kind.Rep>, to: string): void {
    const target = this.#peer(c.ns!, to);
    if (!target) return this.#drop(c, f, to, ErrorCode.NO_ROUTE);
    this.#forward(c, target, { ...f, from: c.label });
  }

  #pub(c: Conn, f: FrameOf<typeof Kind.Pub>): void {
    const bad = checkTopic(f.topic);
    if (bad) return this.#refuse(c, 0, ErrorCode.PROTOCOL, bad);
    if (!allowed(c.grant.publish, (p) => matchTopic(p, f.topic))) {
      return this.#refuse(c, 0, ErrorCode.AUTH, `may not publish to "${f.topic}"`);
    }
    const subs = c.ns!.topics.match(f.topic, new Set());
    if (subs.size === 0) return this.#drop(c, f, f.topic, ErrorCode.NO_ROUTE);
    this.#fanOut(c, subs, { ...f, from: c.label }, f.topic);
  }

  #bcast(c: Conn, f: FrameOf<typeof Kind.Bcast>): void {
    const group = c.ns!.groups.get(splitAddress(f.to).name);
    if (!group) {
      this.#drop(c, f, f.to, ErrorCode.NO_ROUTE);
      c.connection.write(frame(Kind.Err, { ref: f.ref, code: ErrorCode.NO_ROUTE, message: `no group "${f.to}"` }));
      return;
    }
    this.#fanOut(c, group.members, { ...f, from: c.label }, f.to);
  }

  #sub(c: Conn, f: FrameOf<typeof Kind.Sub> | FrameOf<typeof Kind.Unsub>): void {
    const bad = checkPattern(f.pattern);
    if (bad) return this.#refuse(c, f.ref, ErrorCode.PROTOCOL, bad);
    const ns = c.ns!;
    if (f.kind === Kind.Unsub) {
      if (c.patterns.delete(f.pattern)) ns.topics.remove(f.pattern, c);
      return this.#ok(c, f.ref);
    }
    if (!allowed(c.grant.subscribe, (p) => patternCovers(p, f.pattern))) {
      return this.#refuse(c, f.ref, ErrorCode.AUTH, `may not subscribe to "${f.pattern}"`);
    }
    if (!c.patterns.has(f.pattern)) {
      c.patterns.add(f.pattern);
      ns.topics.add(f.pattern, c);
    }
    this.#ok(c, f.ref);
  }

  #join(c: Conn, f: FrameOf<typeof Kind.Join> | FrameOf<typeof Kind.Leave>): void {
    const bad = checkName(f.group, 'group');
    if (bad) return this.#refuse(c, f.ref, ErrorCode.PROTOCOL, bad);
    if (f.kind === Kind.Leave) {
      this.#leaveGroup(c, f.group);
      return this.#ok(c, f.ref);
    }
    if (!allowed(c.grant.groups, (p) => matchTopic(p, f.group))) {
      return this.#refuse(c, f.ref, ErrorCode.AUTH, `may not join group "${f.group}"`);
    }
    if (!c.groups.has(f.group)) {
      c.groups.add(f.group);
      let g = c.ns!.groups.get(f.group);
      if (!g) c.ns!.groups.set(f.group, (g = { members: [], next: 0 }));
      g.members.push(c);
    }
    this.#ok(c, f.ref);
  }

  #peers(c: Conn, f: FrameOf<typeof Kind.Peers>): void {
    const list: { name: string; id: string }[] = [];
    for (const [name, p] of c.ns!.byName) list.push({ name, id: p.id });
    c.connection.write(frame(Kind.Ok, { ref: f.ref }, msgpackEncode(list), BodyCodec.Msgpack));
  }

  // ---- helpers ------------------------------------------------------------------------------

  #namespace(name: string): Namespace {
    let ns = this.#namespaces.get(name);
    if (!ns) {
      ns = { name, byName: new Map(), byId: new Map(), groups: new Map(), topics: new TopicTrie(), watchers: new Set() };
      this.#namespaces.set(name, ns);
    }
    return ns;
  }

  #peer(ns: Namespace, name: string): Conn | undefined {
    return name.startsWith(ID_PREFIX) ? ns.byId.get(name) : ns.byName.get(name);
  }

  /** Round-robin over the group's members, in join order. */
  #pickMember(ns: Namespace, group: string): Conn | undefined {
    const g = ns.groups.get(group);
    if (!g || g.members.length === 0) return undefined;
    const member = g.members[g.next % g.members.length]!;
    g.next = (g.next + 1) % g.members.length;
    return member;
  }

  #forward(c: Conn, target: Conn, f: Frame): void {
    target.connection.write(f);
    if (this.listens('trace')) this.#trace('forward', f, c.label, target.label);
  }

  #fanOut(c: Conn, targets: Iterable<Conn>, f: Frame, to: string): void {
    // Encoded once; each subscriber's batch gets a copy of the same bytes.
    const w = this.#fanout;
    writeFramed(w, f);
    const unit = w.buf.subarray(0, w.pos);
    let n = 0;
    for (const t of targets) {
      t.connection.writeEncoded(unit);
      n++;
    }
    w.pos = 0;
    if (this.listens('trace')) {
      this.emit('trace', { type: 'forward', kind: kindName(f.kind), from: c.label, to: `${to} (${n})`, size: f.body.length, at: Date.now() });
    }
  }

  #ok(c: Conn, ref: number): void {
    c.connection.write(frame(Kind.Ok, { ref }));
  }

  #refuse(c: Conn, ref: number, code: Code, message: string): void {
    if (code === ErrorCode.AUTH) this.emit('auth-failure', { id: c.id, name: c.name ?? '', message });
    c.connection.write(frame(Kind.Err, { ref, code, message }));
  }

  #drop(c: Conn, f: Frame, to: string, reason: Code): void {
    if (this.listens('trace')) this.#trace('drop', f, c.label, to, reason);
  }

  #trace(type: TraceEvent['type'], f: Frame, from: string, to: string, reason?: string): void {
    const e: TraceEvent = { type, kind: kindName(f.kind), from, to, size: f.body.length, at: Date.now() };
    if (f.kind === Kind.Msg || f.kind === Kind.Ack) e.id = `${f.origin}:${f.seq}`;
    else if (f.kind === Kind.Req || f.kind === Kind.Rep) e.id = String(f.id);
    if (reason !== undefined) e.reason = reason;
    this.emit('trace', e);
  }

  #presence(ns: Namespace, c: Conn, event: number): void {
    if (ns.watchers.size === 0) return;
    const f = frame(Kind.Presence, { event, name: c.name!, id: c.id });
    for (const w of ns.watchers) if (w !== c) w.connection.write(f);
  }

  #leaveGroup(c: Conn, name: string): void {
    if (!c.groups.delete(name)) return;
    const ns = c.ns!;
    const g = ns.groups.get(name);
    if (!g) return;
    const i = g.members.indexOf(c);
    if (i >= 0) g.members.splice(i, 1);
    if (g.members.length === 0) ns.groups.delete(name);
    else if (g.next >= g.members.length) g.next = 0;
  }

  /** Closes one connection for breaking the protocol; others are unaffected. */
  #fail(c: Conn, err: ProtocolError): void {
    if (c.state === 'closed') return;
    this.emit('protocol-error', { id: c.id, error: err });
    if (err instanceof FrameTooLargeError) this.#kick(c, CloseCode.TOO_BIG, ErrorCode.LIMIT, err.reason);
    else this.#kick(c, CloseCode.PROTOCOL, ErrorCode.PROTOCOL, err.reason);
  }

  /** Tells the peer why (BYE) and closes its transport. */
  #kick(c: Conn, closeCode: number, code: Code, message: string): void {
    if (c.state === 'closed' || !c.connection.open) return;
    c.connection.write(frame(Kind.Bye, { code, message }));
    c.connection.close(closeCode, `${code}: ${message}`.slice(0, 120));
  }

  #onClose(c: Conn, closeInfo: CloseInfo): void {
    if (c.state === 'closed') return;
    const wasOpen = c.state === 'open';
    c.state = 'closed';
    clearTimeout(c.timer);
    this.#conns.delete(c);
    const ns = c.ns;
    if (ns && ns !== PLACEHOLDER_NS) {
      const summary = info(c);
      ns.byId.delete(c.id);
      if (c.name !== undefined && ns.byName.get(c.name) === c) ns.byName.delete(c.name);
      for (const g of [...c.groups]) this.#leaveGroup(c, g);
      for (const p of c.patterns) ns.topics.remove(p, c);
      c.patterns.clear();
      ns.watchers.delete(c);
      if (c.name !== undefined) this.#presence(ns, c, PresenceEvent.Leave);
      if (ns.byId.size === 0) this.#namespaces.delete(ns.name);
      if (wasOpen) this.emit('disconnect', { ...summary, code: closeInfo.code, reason: closeInfo.reason });
    }
    c.onClosed?.();
  }
}

const PLACEHOLDER_NS: Namespace = {
  name: '',
  byName: new Map(),
  byId: new Map(),
  groups: new Map(),
  topics: new TopicTrie(),
  watchers: new Set(),
};

function info(c: Conn): ConnectionInfo {
  return { id: c.id, name: c.name, namespace: c.ns?.name ?? '', groups: [...c.groups], subscriptions: [...c.patterns] };
}

function allowed(patterns: readonly string[] | undefined, test: (p: string) => boolean): boolean {
  return patterns === undefined || patterns.some(test);
}

/** Whether every topic matched by `requested` is matched by `allowed`. */
export function patternCovers(allowedPattern: string, requested: string): boolean {
  const a = allowedPattern.split('.');
  const r = requested.split('.');
  for (let i = 0; i < a.length; i++) {
    const at = a[i]!;
    if (at === '>') return r.length > i;
    if (i >= r.length) return false;
    const rt = r[i]!;
    if (rt === '>') return false;
    if (at !== '*' && (rt === '*' || rt !== at)) return false;
  }
  return a.length === r.length;
}

/** A random base-36 token of about 5 characters per `words`, from crypto.getRandomValues. */
export function randomToken(words = 2): string {
  const a = new Uint32Array(words);
  crypto.getRandomValues(a);
  return [...a].map((n) => n.toString(36)).join('');
}

