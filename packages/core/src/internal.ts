/**
 * @missive/core/internal — pieces that `@missive/node` and `@missive/browser` build on
 * (framing, codecs, connection). Not a stable public API: applications use the main entry.
 */
export * from './codec/frames.js';
export { ByteReader, ByteWriter, varuintSize } from './codec/bytes.js';
export { encodeBody, decodeBody, codecFlag } from './codec/body.js';
export { Connection, DEFAULT_MAX_FRAME, LARGE_BODY } from './connection.js';
export type { ConnectionOptions, ConnectionHandlers } from './connection.js';
export { Emitter } from './emitter.js';
export { TopicTrie, checkTopic, checkPattern } from './topics.js';
export { splitAddress, checkAddress, checkName, DEFAULT_PORT, ID_PREFIX } from './address.js';
export { macrotask } from './schedule.js';
export { randomToken, randomHex, randomStart } from './store/ids.js';
export { DedupTable, DEFAULT_DEDUP_STREAMS } from './store/dedup.js';
export { invalidEntry, invalidDedup, invalidAck } from './store/outbox.js';
export { StoreLifecycle } from './store/lifecycle.js';
export type { StoreLifecycleHooks, StoreStatus } from './store/lifecycle.js';
export { encodeBus, encodeData, decodeBus, BusMsg, ClusterRegistry } from './router/index.js';
export type { BusMessage } from './router/index.js';
export { relayUrlList, connectToList, withoutCredentials } from './relay-list.js';
