/**
 * @missive/core — the public API. Transport-agnostic: no Node built-ins, no DOM-only APIs.
 * Node and browser entry points (`@missive/node`, `@missive/browser`) add real transports.
 */
export {
  MissiveError,
  TimeoutError,
  ClosedError,
  NoRouteError,
  RemoteError,
  AuthError,
  NameTakenError,
  LimitError,
  ProtocolError,
  ErrorCode,
  errorFromCode,
} from './errors.js';
export { Peer, createPeer } from './peer/peer.js';
export type {
  PeerOptions,
  PeerEvents,
  PeerInfo,
  RequestContext,
  RequestOptions,
  SendOptions,
  PublishMeta,
  Subscription,
  ReconnectOptions,
  TransportFactory,
  TunnelHandler,
  LinkKind,
  LinkEvent,
  InspectOptions,
} from './peer/types.js';
export { DIRECT_DEFAULTS } from './peer/direct.js';
export type { DirectConnector, DirectAttempt, DirectOptions, DirectSnapshot } from './peer/direct.js';
export type { PeerSnapshot } from './peer/snapshot.js';
export type { OutboxSnapshot } from './peer/outbox.js';
export type { InboxSnapshot } from './peer/inbox.js';
export { Tunnel, DEFAULT_TUNNEL_WINDOW, DEFAULT_TUNNEL_MAX_WINDOW, DEFAULT_CHUNK_SIZE } from './tunnel.js';
export type { TunnelMode, TunnelOptions, TunnelOpenOptions, TunnelState, TunnelSnapshot } from './tunnel.js';
export { Mailbox, DEFAULT_MAILBOX_CAPACITY } from './mailbox.js';
export type { Message, ReceiveOptions, MailboxStats } from './mailbox.js';
export {
  Router,
  patternCovers,
  LATENCY_BOUNDS,
  DropReason,
  HELD_OVERHEAD,
  MemoryHoldStore,
  MemoryRegistry,
  DEFAULT_LIMITS,
  ADMIN_NAMESPACE,
  TRACE_TOPIC,
  CLOSED_KEEP,
  CONTROL_MAX,
  TRACE_RATE,
  TRACE_RATE_MAX,
  MemoryCluster,
} from './router/index.js';
export type {
  RouterOptions,
  RouterLimits,
  RouterEvents,
  RouterMetrics,
  RouterSnapshot,
  ConnectionSnapshot,
  AuthHook,
  AuthRequest,
  AuthGrant,
  ConnectionInfo,
  HoldStore,
  HoldLimits,
  HoldResult,
  HeldMessage,
  ExpiredHold,
  HoldSnapshot,
  Registry,
  RegistryFactory,
  Space,
  LocalPeer,
  RemotePeer,
  Route,
  Claim,
  RegistrySizes,
  FlowSnapshot,
  RequestsSnapshot,
  RouterTunnelSnapshot,
  AdminRights,
  AdminAuthHook,
  ClosedPeer,
  PeerRow,
  ClusterBus,
  ClusterHandler,
  ClusterSnapshot,
  NameOwner,
  BusClaim,
} from './router/index.js';
export { RELAY_NAME } from './address.js';
export type { RelayUrls } from './relay-list.js';
export { MemoryStore } from './store/outbox.js';
export type { OutboxStore, OutboxEntry, OutboxState } from './store/outbox.js';
export { memoryTransportPair } from './transport/memory.js';
export type { MemoryTransportOptions } from './transport/memory.js';
export { CloseCode } from './transport/transport.js';
export type { Transport, TransportHandlers, TransportStatus, CloseInfo } from './transport/transport.js';
export { matchTopic } from './topics.js';
export type { TraceEvent, TraceType } from './trace.js';
export type { CodecName } from './codec/body.js';
export { PROTOCOL_VERSION } from './codec/frames.js';
