/**
 * The e2e test page: a plain Vite app (built with Vite's default configuration, no define,
 * polyfill or shim) that imports @missive/browser the way an application would, and hands what
 * it imported to the Playwright specs through `window`. The compliance suites are loaded on
 * demand, each in a chunk of its own, so the entry chunk is what a relay-only app ships.
 */
import { connect, IdbStore, openWsTransport, wsTransport } from '@missive/browser';

window.missive = { connect, IdbStore, openWsTransport, wsTransport };
window.peers = {};
window.compliance = () => import('./compliance.js');
window.direct = () => import('./direct.js');
window.directPeers = () => import('./direct-peers.js');
window.storeCompliance = () => import('./store-compliance.js');
window.e2eReady = true;
