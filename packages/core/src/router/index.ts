/** The Router and the interfaces of its replaceable parts (see router.ts). */
export { Router } from './router.js';
export type { RouterOptions, RouterEvents, RouterSnapshot, ConnectionSnapshot } from './router.js';
export type { ConnectionInfo } from './conn.js';
export { patternCovers } from './handshake.js';
export type { AuthHook, AuthRequest, AuthGrant } from './handshake.js';
export { DEFAULT_LIMITS } from './limits.js';
export type { RouterLimits } from './limits.js';
export { DropReason, LATENCY_BOUNDS } from './metrics.js';
export type { RouterMetrics } from './metrics.js';
export { HELD_OVERHEAD, MemoryHoldStore } from './holds.js';
export type { HoldStore, HoldLimits, HoldResult, HeldMessage, ExpiredHold, HoldSnapshot } from './holds.js';
export { MemoryRegistry } from './registry.js';
export type { Registry, RegistryFactory, Space, LocalPeer, RemotePeer, Route, Claim, RegistrySizes } from './registry.js';
export type { FlowSnapshot } from './flow.js';
export type { RequestsSnapshot } from './forwarding.js';
export type { TunnelSnapshot as RouterTunnelSnapshot } from './tunnels.js';
export { ADMIN_NAMESPACE, TRACE_TOPIC, CLOSED_KEEP, CONTROL_MAX, TRACE_RATE, TRACE_RATE_MAX, STATS_KEYS, PEERS_MAX, SUMMARY_MAX } from './admin.js';
export type { AdminRights, AdminAuthHook, ClosedPeer, PeerRow } from './admin.js';
