/**
 * The Router's record of one connection: who it is and where, plus one slot per part that keeps
 * state per connection (each written only by the part named). Groups, subscriptions and the
 * presence watch live in the registry, not here.
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

/** flow.ts: the token bucket of `rateLimit` and the buffer cap's clock. */
export class FlowState {
  tokens = 0;
  refilled = 0;
  /** When the outgoing buffer went over `maxBufferedBytes` (0: it is not over). */
  overSince = 0;
  /** When the last rate-limit ERR went out (at most one a second). */
  rateErrAt = 0;
}

export class Conn implements LocalPeer {
  readonly kind = 'local';
  state: ConnState = 'handshake';
  /** handshake.ts: its HELLO arrived (the handshake runs from then on). */
  hello = false;
  name: string | undefined;
  /** The `from` stamped on what this peer sends: its name, else its id. */
  label: string;
  /** The namespace it asked for or was granted ('' until its HELLO is checked). */
  namespace = '';
  /** Its namespace in the registry once open: where its lookups go. */
  space: Space<Conn> | undefined;
  grant: AuthGrant = OPEN_GRANT;
  /** The peer's session token from HELLO ('' if none): a reconnect with it may take the name back. */
  session = '';
  /** handshake.ts: the handshake deadline, then the credentials' expiry. */
  timer: ReturnType<typeof setTimeout> | undefined;
  connection!: Connection<Conn>;
  /** Set by `Router.close` to learn when this connection's transport has closed. */
  onClosed: (() => void) | undefined;
  readonly flow = new FlowState();
  /** forwarding.ts: requests this peer sent that await a reply, by request id. */
  requests: Map<number, InFlight> = NO_REQUESTS;
  /** forwarding.ts: requests routed to this peer that it has not answered. */
  serving: Set<InFlight> = NO_SERVING;
  /** admin.ts: when its handshake completed (ms since epoch). */
  openedAt = 0;
  /** admin.ts: whether it answers the relay's inspection (undefined until it first answers). */
  inspectable: boolean | undefined;
  /** tunnels.ts: tunnels this peer is an end of. */
  tunnels: Set<TunnelRecord> = NO_TUNNELS;

  constructor(readonly id: string) {
    this.label = id;
  }

  /** Gives `requests` a map of its own, if it still has the shared empty one. */
  ownRequests(): Map<number, InFlight> {
    if (this.requests === NO_REQUESTS) this.requests = new Map();
    return this.requests;
  }

  ownServing(): Set<InFlight> {
    if (this.serving === NO_SERVING) this.serving = new Set();
    return this.serving;
  }

  ownTunnels(): Set<TunnelRecord> {
    if (this.tunnels === NO_TUNNELS) this.tunnels = new Set();
    return this.tunnels;
  }

  info(): ConnectionInfo {
    const s = this.space;
    return { id: this.id, name: this.name, namespace: this.namespace, groups: s?.groupsOf(this) ?? [], subscriptions: s?.patternsOf(this) ?? [] };
  }
}
