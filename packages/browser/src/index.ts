/**
 * @missive/browser — missive in the browser: `connect` over the browser's WebSocket, the
 * IndexedDB outbox (`IdbStore`), the WebSocket transport, and direct WebRTC links (`openDirect`;
 * simple-peer is loaded on the first one). The Peer API is core's, the same as in Node;
 * everything `@missive/core` exports is re-exported here.
 */
// First: outside a browser, the import fails here with a clear message.
import './platform.js';

export { connect } from './connect.js';
export type { ConnectOptions, StoreOption } from './connect.js';
export type { RelayUrls } from '@missive/core';
export { IdbStore } from './idb-store.js';
export type { IdbStoreOptions, IdbStoreStats } from './idb-store.js';
export { wsTransport, openWsTransport } from './ws-transport.js';
export type { WsTransportOptions, OpenWsTransportOptions } from './ws-transport.js';
export { openDirect, directSupported, webrtcConnector, DIRECT_LINK_DEFAULTS } from './direct/index.js';
export type {
  ConnectorOptions,
  DirectLink,
  DirectLinkEvents,
  DirectLinkOptions,
  IceServersOption,
  WrtcImplementation,
  DirectCloseInfo,
  DirectCloseKind,
  DirectLinkState,
  DirectLinkStats,
  DirectSignal,
  DirectSdpSignal,
  DirectCandidateSignal,
} from './direct/index.js';
export * from '@missive/core';
