/**
 * Direct links: a WebRTC data channel to one other end, through simple-peer (loaded on demand),
 * as a missive Transport. Signalling is the caller's: each end hands the other what its `signal`
 * callback gives. Also the `@missive/browser/direct` entry, which runs in Node given a `wrtc`.
 */
export { openDirect } from './open.js';
export { directSupported } from './support.js';
export { webrtcConnector } from './connector.js';
export type { ConnectorOptions } from './connector.js';
export type { DirectLink, DirectLinkEvents } from './open.js';
export { DIRECT_LINK_DEFAULTS } from './config.js';
export type { DirectLinkOptions, IceServersOption, WrtcImplementation } from './config.js';
export type { DirectCloseInfo, DirectCloseKind, DirectLinkState, DirectLinkStats } from './session.js';
export type { DirectSignal, DirectSdpSignal, DirectCandidateSignal } from './signal.js';
