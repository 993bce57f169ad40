/**
 * The relay's admin channel as the devtools use it: one admin session (a peer in the `$admin`
 * namespace) and the shapes of each `$relay/<op>` reply (packages/core/src/router/admin.ts,
 * docs/devtools.md): the rows are the server's own types, re-exported by `@missive/browser`.
 */
import { connect, type ClosedPeer, type ClusterSnapshot, type Peer, type PeerRow, type PeerSnapshot, type TunnelSnapshot, type TraceEvent } from '@missive/browser';

export type { PeerRow, PeerSnapshot, TunnelSnapshot, TraceEvent };
/** A closed connection as `$relay/peers` lists it. */
export type ClosedRow = ClosedPeer;

export interface Rights {
  /** Disconnect peers and purge mailboxes. */
  write: boolean;
  /** See message bodies in peeked mailboxes. */
  bodies?: boolean;
  /** The namespaces this token may see, or null/absent for all of them. */
  namespaces?: string[] | null;
}

export interface Overview {
  relay: { id: string; startedAt: number; uptime: number };
  rights: Rights;
  connections: number;
  peers: Record<string, number>;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  drops: Record<string, number>;
  slowConsumerDisconnects: number;
  authFailures: number;
  adminRefused: number;
  protocolErrors: number;
  held: { messages: number; bytes: number };
  requests: number;
  /** This relay's cluster, when it is one of many (a Redis backplane). */
  cluster?: ClusterSnapshot;
}

export interface PeersReply {
  peers: PeerRow[];
  /** Newest first. */
  closed: ClosedRow[];
}

/** A tunnel as the relay sees it: its two ends and the credit each may still send. */
export interface RelayTunnel {
  tid: number;
  opener: string;
  acceptor: string;
  credit: [number, number];
  /** Ends that have closed (0, 1 or 2). */
  ends: number;
}

/** A peeked message: its body only when the peer and the admin's rights allow it (else `hidden`). */
export interface PeekedMessage {
  id: string;
  from: string;
  to: string;
  sentAt: number;
  body?: unknown;
  hidden?: boolean;
}

export type InspectedSnapshot = Omit<PeerSnapshot, 'inbox'> & {
  /** Whether peeked messages carry their bodies. */
  bodies?: boolean;
  inbox: Omit<PeerSnapshot['inbox'], 'mailboxes'> & {
    mailboxes: (Omit<PeerSnapshot['inbox']['mailboxes'][number], 'messages'> & { messages: PeekedMessage[] })[];
  };
};

export interface PeerReply {
  connection: PeerRow & {
    state?: string;
    flow?: Record<string, unknown>;
    requests?: Record<string, unknown>;
    tunnels?: RelayTunnel[] | number;
  };
  snapshot?: InspectedSnapshot;
  /** Why the snapshot is missing although the peer is inspectable (it did not answer, …). */
  error?: string;
}

export interface TopicsReply {
  topics: { namespace: string; pattern: string; subscribers: string[] }[];
  groups: { namespace: string; name: string; members: string[] }[];
  /** Cumulative counts: rates come from their deltas. */
  rates: { namespace: string; key: string; count: number }[];
}

export interface TraceFilter {
  peer?: string;
  address?: string;
  kinds?: string[];
  rate?: number;
}

export interface TraceBatch {
  events: TraceEvent[];
  /** Events the relay skipped since the last batch (its rate limit). */
  dropped: number;
  /** The session's budget ran out in some window (events beyond it were not even built). */
  saturated?: boolean;
}

/** The topic on which the relay streams trace batches to an admin session that subscribed. */
export const TRACE_TOPIC = '$relay.trace';

/** @default 5000 ms */
export const REQUEST_TIMEOUT = 5000;

export class AdminClient {
  constructor(
    readonly peer: Peer,
    readonly url: string,
  ) {}

  request<T>(op: string, body: object = {}, timeout = REQUEST_TIMEOUT): Promise<T> {
    return this.peer.request<T>(`$relay/${op}`, body, { timeout });
  }

  overview(): Promise<Overview> {
    return this.request('overview');
  }
  peers(): Promise<PeersReply & { total?: number }> {
    return this.request('peers');
  }
  inspectPeer(id: string): Promise<PeerReply> {
    return this.request('peer', { id });
  }
  topics(): Promise<TopicsReply> {
    return this.request('topics');
  }
  trace(filter: TraceFilter): Promise<{ ok: true; rate?: number }> {
    return this.request('trace', filter);
  }
  disconnect(id: string, reason?: string): Promise<{ ok: true }> {
    return this.request('disconnect', reason ? { id, reason } : { id });
  }
  purge(id: string, mailbox: string): Promise<{ purged: number }> {
    return this.request('purge', { id, mailbox });
  }

  close(): Promise<void> {
    return this.peer.close();
  }
}

/** Opens an admin session; rejects with the relay's reason (an AuthError for a wrong token). */
export async function openAdmin(url: string, token: string): Promise<AdminClient> {
  const peer = await connect(url, { namespace: '$admin', token, store: 'memory', direct: 'never' });
  return new AdminClient(peer, url);
}

/**
 * The relay URL a page served by the relay itself talks to: the page's own host. Under the Vite
 * dev server (`npm run dev`), the relay `npm start` runs instead.
 */
export function defaultRelayUrl(loc: Location = window.location): string {
  if (import.meta.env.DEV) return 'ws://127.0.0.1:8787/';
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/`;
}

/** An error as the UI shows it: its message, and its stable code when it has one. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && code !== '' && !err.message.includes(code) ? `${err.message} (${code})` : err.message || err.name;
  }
  return String(err);
}
