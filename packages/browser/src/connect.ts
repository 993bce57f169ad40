/**
 * `connect(url, options)` in the browser: a core Peer over the browser's WebSocket, with the
 * reconnection and outbox behaviour of `@missive/node`'s `connect`, and an IndexedDB outbox by
 * default so unacked messages survive a reload.
 */
import { MemoryStore, type OutboxStore, type Peer, type PeerOptions, type RelayUrls } from '@missive/core';
import { webrtcConnector, type ConnectorOptions } from './direct/connector.js';
import type { IceServersOption } from './direct/config.js';
import { directSupported } from './direct/support.js';
import { IdbStore } from './idb-store.js';
import { connectToList, relayUrlList } from '@missive/core/internal';
import { openWsTransport } from './ws-transport.js';

/**
 * Where the outbox lives: `'indexeddb'` (an {@link IdbStore} for this peer's namespace and name),
 * `'memory'` (gone with the page), or any `OutboxStore`.
 */
export type StoreOption = 'indexeddb' | 'memory' | OutboxStore;

export interface ConnectOptions extends Omit<PeerOptions, 'store'> {
  /**
   * The outbox. A named peer keeps it in IndexedDB by default: messages not yet acked when the
   * page is reloaded or closed are sent when it connects again. An anonymous peer has no name
   * to key a durable outbox by, so its default is `'memory'` (and `'indexeddb'` needs a name).
   * @default 'indexeddb' with a name, 'memory' without
   */
  store?: StoreOption;
  /** With `store: 'indexeddb'`: the first part of the IndexedDB database name. @default 'missive' */
  database?: string;
  /** Bytes queued in the WebSocket above which the peer holds back. @default 1048576 */
  highWaterMark?: number;
  /**
   * Direct links: under `'auto'`, traffic with another peer that also allows them moves to a
   * WebRTC data channel (simple-peer, loaded only then), and back to the relay if it fails,
   * nothing lost, duplicated or reordered. Needs a name. Where WebRTC is missing, the peer stays
   * on the relay. @default 'auto'
   */
  direct?: 'auto' | 'never';
  /**
   * STUN/TURN servers for direct links, or a function giving them, called on every attempt (so
   * TURN credentials are fresh). Without any, only host candidates: peers on one machine or LAN.
   */
  iceServers?: IceServersOption;
  /** Further options of each direct link (timeouts, grace period, chunk size; see `openDirect`). */
  directLink?: Omit<ConnectorOptions, 'iceServers'>;
}

/**
 * Opens a WebSocket to a relay and completes the missive handshake. `urls` is one relay URL
 * (`ws://` or `wss://`) or a list of relays serving the same peers: the first connection tries
 * them in order (each bounded by `connectTimeout`) until one takes the peer, and every
 * reconnection moves on to the next one, round-robin, so a peer whose relay died lands on
 * another; `peer.inspect().session.url` says which one is in use. An empty list or a bad URL
 * throws a TypeError. The peer reconnects by itself when the link drops (`reconnect` option;
 * `false` turns it off) and then resends its unacked messages in order. The first connection is
 * not retried: it rejects with a typed error: AuthError (`AUTH`), NameTakenError (`NAME_TAKEN`:
 * the name is held on the relay, or this peer's IndexedDB outbox is open in another tab),
 * LimitError (`LIMIT`), TimeoutError, or ClosedError (`CLOSED`, with the reason as `cause`) when
 * the relay cannot be reached (with several URLs, when none took it: ClosedError naming each
 * one's error).
 */
export async function connect(urls: RelayUrls, options: ConnectOptions = {}): Promise<Peer> {
  const list = relayUrlList(urls);
  const { store, database, highWaterMark, iceServers, directLink, ...peerOptions } = options;
  const direct = options.direct ?? 'auto';
  if (direct !== 'auto' && direct !== 'never') throw new TypeError(`direct must be 'auto' or 'never', not ${String(direct)}`);
  if (iceServers !== undefined && !Array.isArray(iceServers) && typeof iceServers !== 'function') {
    throw new TypeError('iceServers must be an array of RTCIceServer or a function returning one');
  }
  peerOptions.direct = direct;
  if (direct === 'auto' && peerOptions.directConnector === undefined && directSupported(directLink?.wrtc)) {
    peerOptions.directConnector = webrtcConnector({ ...directLink, ...(iceServers === undefined ? {} : { iceServers }) });
  }
  const outbox = outboxFor(store, options, database);
  const timeout = options.connectTimeout ?? 10_000;
  const wsOptions = { timeout, ...(highWaterMark === undefined ? {} : { highWaterMark }) };
  return connectToList(list, (url) => openWsTransport(url, wsOptions), { ...peerOptions, store: outbox });
}

function outboxFor(store: StoreOption | undefined, options: ConnectOptions, database: string | undefined): OutboxStore {
  const choice = store ?? (options.name === undefined ? 'memory' : 'indexeddb');
  if (choice === 'memory') return new MemoryStore();
  if (choice === 'indexeddb') {
    if (options.name === undefined) throw new TypeError('store "indexeddb" needs a name to keep the outbox under (or pass an IdbStore)');
    return new IdbStore(options.name, {
      ...(options.namespace ? { namespace: options.namespace } : {}),
      ...(database === undefined ? {} : { database }),
    });
  }
  if (typeof choice === 'object' && choice !== null && typeof choice.open === 'function') return choice;
  throw new TypeError(`store must be 'indexeddb', 'memory' or an OutboxStore, not ${String(choice)}`);
}
