/**
 * Type tests for the public API of @missive/browser. Checked by
 * `tsc -p packages/browser/tsconfig.json` (strict); never run: the code sits in functions nobody
 * calls. Each `@ts-expect-error` marks a misuse the types must reject.
 */
import {
  connect,
  IdbStore,
  MemoryStore,
  openWsTransport,
  wsTransport,
  type ConnectOptions,
  type IdbStoreStats,
  type OutboxState,
  type Peer,
  type StoreOption,
  type Transport,
} from '@missive/browser';

export async function connectOptions(): Promise<void> {
  const peer: Peer = await connect('ws://127.0.0.1:8787', { name: 'alice', secret: 's', namespace: 'chat', codec: 'json' });
  await connect(new URL('ws://127.0.0.1:8787'), { name: 'bob', token: 't', store: 'memory' });
  await connect('ws://127.0.0.1:8787', { name: 'carol', store: new MemoryStore(), reconnect: false });
  await connect('ws://127.0.0.1:8787', { name: 'dave', store: new IdbStore('dave', { database: 'app' }), highWaterMark: 1 << 20 });
  const store: StoreOption = 'indexeddb';
  const options: ConnectOptions = { name: 'erin', store, database: 'app' };
  await connect('ws://127.0.0.1:8787', options);
  await connect('ws://127.0.0.1:8787', { name: 'x', direct: 'never' });
  await connect('ws://127.0.0.1:8787', { name: 'x', iceServers: [{ urls: 'stun:stun.example.org' }] });
  await connect('ws://127.0.0.1:8787', { name: 'x', iceServers: async () => [{ urls: 'turn:t.example.org', username: 'u', credential: 'c' }], directLink: { graceMs: 3000 } });
  // @ts-expect-error direct is 'auto' or 'never'
  await connect('ws://127.0.0.1:8787', { name: 'x', direct: 'always' });
  // @ts-expect-error ICE servers are RTCIceServer objects
  await connect('ws://127.0.0.1:8787', { name: 'x', iceServers: ['stun:x'] });
  // @ts-expect-error an unknown store kind
  await connect('ws://127.0.0.1:8787', { name: 'x', store: 'disk' });
  // @ts-expect-error a store is an OutboxStore, not any object
  await connect('ws://127.0.0.1:8787', { name: 'x', store: {} });
  await peer.close();
}

export async function idbStore(): Promise<void> {
  const s = new IdbStore('alice', { namespace: 'chat', maxDedupStreams: 100 });
  const state: OutboxState = await s.open();
  const stats: IdbStoreStats = s.stats();
  const db: string = s.database;
  void [state, stats, db];
  // @ts-expect-error the peer name is required
  new IdbStore();
  // @ts-expect-error options are typed
  new IdbStore('a', { maxDedupStreams: '10' });
  await s.close();
}

export async function transports(socket: WebSocket): Promise<void> {
  const t: Transport = await openWsTransport('ws://127.0.0.1:8787', { timeout: 1000, highWaterMark: 1024, protocols: ['missive'] });
  const u: Transport = wsTransport(socket, { highWaterMark: 0 });
  // @ts-expect-error a transport wraps a browser WebSocket, not a URL
  wsTransport('ws://127.0.0.1:8787');
  t.close();
  u.close();
}
