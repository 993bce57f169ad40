/** @missive/node — the relay server, the Node client, the ws transport and the file outbox store. */
export { createRelay } from './relay.js';
export type { Relay, RelayOptions, RelayTlsOptions } from './relay.js';
export { createAuth, loadSecrets } from './auth.js';
export type { RelayAuthOptions, JwtOptions, TokenClaims, CustomAuth } from './auth.js';
export { createLogger, silentLogger, isLogLevel } from './logger.js';
export type { Logger, LogLevel, LoggerOptions } from './logger.js';
export { connect } from './connect.js';
export type { ConnectOptions } from './connect.js';
export type { RelayUrls } from '@missive/core';
export { FileStore } from './file-store.js';
export type { FileStoreOptions, FileStoreStats, FsyncMode } from './file-store.js';
export { toDuplex } from './duplex.js';
export { wsTransport } from './ws-transport.js';
export type { WsTransportOptions } from './ws-transport.js';
export * from '@missive/core';
