/** What `Peer.inspect()` returns: a plain, JSON-serialisable snapshot of each part. */
import type { TunnelSnapshot } from '../tunnel.js';
import type { DirectSnapshot } from './direct.js';
import type { InboxSnapshot } from './inbox.js';
import type { OutboxSnapshot } from './outbox.js';

export interface PeerSnapshot {
  session: {
    id: string;
    name: string | undefined;
    namespace: string;
    /**
     * Where the current link leads, when its transport says (`connect` in `@missive/node` and
     * `@missive/browser`: the relay's URL, the one in use among several); else undefined.
     */
    url: string | undefined;
    connected: boolean;
    reconnecting: boolean;
    /** The reconnection attempt under way (0 when connected). */
    attempts: number;
    bufferedAmount: number;
    maxFrame: number;
  };
  closed: boolean;
  inbox: InboxSnapshot;
  outbox: OutboxSnapshot;
  requests: { pending: number; maxPending: number; handling: number; handlers: { port: string; calls: number; errors: number; active: number; /** ms, over the last 256 calls */ p50?: number; p99?: number }[] };
  tunnels: { handlers: string[]; tunnels: TunnelSnapshot[] };
  pubsub: { received: number; subscriptions: { pattern: string; handlers: number }[] };
  groups: { groups: string[]; watching: boolean };
  registrations: { registrations: { key: string; confirmed: boolean }[]; pendingControls: number };
  direct: DirectSnapshot;
}
