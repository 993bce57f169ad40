/**
 * `connect(url, options)` in the browser: a core Peer over the browser's WebSocket, with the
 * reconnection and outbox behaviour of `@missive/node`'s `connect`, and an IndexedDB outbox by
 * default so unacked messages survive a reload.
 */
import { createPeer, MemoryStore, type OutboxStore, type Peer, type PeerOptions } from '@missive/core';
import { IdbStore } from './idb-store.js';
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
  // Direct browser-to-browser links (`direct`, `iceServers`) come with the WebRTC link; until
  // then connect() rejects them rather than ignore them.
}

/** Options that belong to direct links, which this version does not have yet. */
const NOT_YET = ['direct', 'iceServers'] as const;

/**
 * Opens a WebSocket to the relay at `url` and completes the missive handshake. The peer
 * reconnects by itself when the link drops (`reconnect` option; `false` turns it off) and then
 * resends its unacked messages in order. The first connection is not retried: it rejects at
 * once with a typed error: AuthError (`AUTH`), NameTakenError (`NAME_TAKEN`: the name is held on
 * the relay, or this peer's IndexedDB outbox is open in another tab), LimitError (`LIMIT`),
 * TimeoutError, or ClosedError (`CLOSED`, with the reason as `cause`) when the relay cannot be
 * reached.
 */
export async function connect(url: string | URL, options: ConnectOptions = {}): Promise<Peer> {
  for (const key of NOT_YET) {
    if (key in options) throw new TypeError(`connect: the "${key}" option belongs to direct links, which @missive/browser does not have yet`);
  }
  const { store, database, highWaterMark, ...peerOptions } = options;
  const outbox = outboxFor(store, options, database);
  const timeout = options.connectTimeout ?? 10_000;
  const wsOptions = { timeout, ...(highWaterMark === undefined ? {} : { highWaterMark }) };
  return createPeer(() => openWsTransport(url, wsOptions), { ...peerOptions, store: outbox });
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
