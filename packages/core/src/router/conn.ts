/**
 * The Router's record of one connection: who it is and where, plus what the parts keep per
 * connection (each written only by the part named). Groups, subscriptions and the presence
 * watch live in the registry, not here.
 *
 * A relay holds one of these per idle peer, tens of thousands of them: every field costs 8
 * bytes per peer, every object 24 and up, a time kept as a plain double a boxed heap number
 * (16 more). So the small states share one integer (`#bits`); times are kept as milliseconds
 * since `EPOCH`, small integers stored in the field itself; `kind` and `label` are derived; and
 * what only some connections ever need lives elsewhere: the collections of requests and
 * tunnels in one object made on first use, the handshake and expiry timers in handshake.ts,
 * when it went over its buffer cap and when it was last told of the rate limit in flow.ts,
 * what waits for its transport to close in router.ts (only while the Router closes).
 */
import type { Connection } from '../connection.js';
import type { InFlight } from './forwarding.js';
import { OPEN_GRANT, type AuthGrant } from './handshake.js';
import type { LocalPeer, Space } from './registry.js';
import type { TunnelRecord } from './tunnels.js';

export type ConnState = 'handshake' | 'open' | 'closed';

/** Connection summary used in events and `connections()`. */
export interface ConnectionInfo {
  id: string;
  name: string | undefined;
  namespace: string;
  groups: string[];
  subscriptions: string[];
}

// Shared empties (never added to): an idle connection, most of them, holds no collection. Only
// the owning part replaces them with the connection's own on first add.
const NO_REQUESTS = new Map<number, InFlight>();
const NO_SERVING = new Set<InFlight>();
const NO_TUNNELS = new Set<TunnelRecord>();

/**
 * Times on a Conn are kept as ms since this instant: integers that fit a small integer for
 * about 24 days after the module loads, which V8 stores in the field itself (an epoch-based
 * Date.now() would be a heap number of its own). Past that they are heap numbers again: only
 * the memory differs.
 */
const EPOCH = Date.now();
/** Now, in ms since `EPOCH` (the clock of `Conn.refilled`). */
export const clock = (): number => small(Date.now() - EPOCH);
/**
 * The same number, as a small integer when it is one: a difference of two doubles is a double
 * (a heap number once stored) even when whole; `| 0` makes it a small integer.
 */
const small = (n: number): number => ((n | 0) === n ? n | 0 : n);

// #bits: the state (two bits), then flags.
const STATES: readonly ConnState[] = ['handshake', 'open', 'closed'];
const STATE = 3;
const HELLO = 4;
/** Its handshake completed once: its label is its name (if it has one) from then on. */
const LABELLED = 8;
/** `inspectable` is known (it answered, or refused, the relay's inspection) … */
const INSPECT_KNOWN = 16;
/** … and it is true. */
const INSPECT_YES = 32;

/** forwarding.ts and tunnels.ts: the collections a connection owns once it has used them. */
class Owned {
  requests: Map<number, InFlight> = NO_REQUESTS;
  serving: Set<InFlight> = NO_SERVING;
  tunnels: Set<TunnelRecord> = NO_TUNNELS;
}

export class Conn implements LocalPeer {
  declare readonly kind: 'local';
  name: string | undefined = undefined;
  /** The namespace it asked for or was granted ('' until its HELLO is checked). */
  namespace = '';
  /** Its namespace in the registry once open: where its lookups go. */
  space: Space<Conn> | undefined = undefined;
  grant: AuthGrant = OPEN_GRANT;
  /** The peer's session token from HELLO ('' if none): a reconnect with it may take the name back. */
  session = '';
  connection!: Connection<Conn>;
  /** flow.ts: the token bucket of `rateLimit`: frames it may still send at once … */
  tokens = 0;
  /** … and when it was last refilled (`clock()`). */
  refilled = 0;
  #bits = 0;
  /** openedAt as `clock()` time; undefined until set. */
  #opened: number | undefined = undefined;
  #owned: Owned | undefined = undefined;

  constructor(readonly id: string) {}

  get state(): ConnState {
    return STATES[this.#bits & STATE]!;
  }

  set state(s: ConnState) {
    this.#bits = (this.#bits & ~STATE) | (s === 'open' ? 1 : s === 'closed' ? 2 : 0);
  }

  /** handshake.ts: its HELLO arrived (the handshake runs from then on). */
  get hello(): boolean {
    return (this.#bits & HELLO) !== 0;
  }

  set hello(on: boolean) {
    this.#bits = on ? this.#bits | HELLO : this.#bits & ~HELLO;
  }

  /** The `from` stamped on what this peer sends: its name, else its id (its id until its handshake completes). */
  get label(): string {
    return (this.#bits & LABELLED) !== 0 ? (this.name ?? this.id) : this.id;
  }

  /** handshake.ts: the handshake completed: its label is its name from now on. */
  labelled(): void {
    this.#bits |= LABELLED;
  }

  /** admin.ts: when its handshake completed (ms since epoch; 0 until then). */
  get openedAt(): number {
    const at = this.#opened;
    return at === undefined ? 0 : at + EPOCH;
  }

  set openedAt(at: number) {
    this.#opened = small(at - EPOCH);
  }

  /** admin.ts: whether it answers the relay's inspection (undefined until it first answers). */
  get inspectable(): boolean | undefined {
    const b = this.#bits;
    return (b & INSPECT_KNOWN) === 0 ? undefined : (b & INSPECT_YES) !== 0;
  }

  set inspectable(on: boolean | undefined) {
    const b = this.#bits & ~(INSPECT_KNOWN | INSPECT_YES);
    this.#bits = on === undefined ? b : b | INSPECT_KNOWN | (on ? INSPECT_YES : 0);
  }

  /** forwarding.ts: requests this peer sent that await a reply, by request id. */
  get requests(): Map<number, InFlight> {
    return this.#owned?.requests ?? NO_REQUESTS;
  }

  /** forwarding.ts: requests routed to this peer that it has not answered. */
  get serving(): Set<InFlight> {
    return this.#owned?.serving ?? NO_SERVING;
  }

  /** tunnels.ts: tunnels this peer is an end of. */
  get tunnels(): Set<TunnelRecord> {
    return this.#owned?.tunnels ?? NO_TUNNELS;
  }

  /** Gives `requests` a map of its own, if it still has the shared empty one. */
  ownRequests(): Map<number, InFlight> {
    const o = (this.#owned ??= new Owned());
    if (o.requests === NO_REQUESTS) o.requests = new Map();
    return o.requests;
  }

  ownServing(): Set<InFlight> {
    const o = (this.#owned ??= new Owned());
    if (o.serving === NO_SERVING) o.serving = new Set();
    return o.serving;
  }

  ownTunnels(): Set<TunnelRecord> {
    const o = (this.#owned ??= new Owned());
    if (o.tunnels === NO_TUNNELS) o.tunnels = new Set();
    return o.tunnels;
  }

  info(): ConnectionInfo {
    const s = this.space;
    return { id: this.id, name: this.name, namespace: this.namespace, groups: s?.groupsOf(this) ?? [], subscriptions: s?.patternsOf(this) ?? [] };
  }
}
// On the prototype, not in every instance.
Object.defineProperty(Conn.prototype, 'kind', { value: 'local' });
