/**
 * Whether direct links can open here. A module of its own: `connect()` asks it in every app's
 * entry chunk, while the options code in config.ts is only needed by `openDirect`, a lazy chunk
 * (a module shared by both would be pulled whole into the entry).
 */
import type { WrtcImplementation } from './config.js';

/**
 * Whether this environment can open direct links: it has a global `RTCPeerConnection`, or `wrtc`
 * is given. A browser with WebRTC disabled (some enterprise policies) answers false.
 */
export function directSupported(wrtc?: WrtcImplementation): boolean {
  return (wrtc !== undefined && typeof wrtc.RTCPeerConnection === 'function') || typeof (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection === 'function';
}
