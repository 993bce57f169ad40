/** What the test page puts on `window` for the specs (see main.ts). */
import type { connect, IdbStore, openWsTransport, Peer, wsTransport } from '@missive/browser';

declare global {
  interface Window {
    /** The parts of @missive/browser the page imported. */
    missive: { connect: typeof connect; IdbStore: typeof IdbStore; openWsTransport: typeof openWsTransport; wsTransport: typeof wsTransport };
    /** Peers a spec connected in this page, by a key the spec chooses. */
    peers: Record<string, Peer>;
    /** Loads the compliance chunk. */
    compliance(): Promise<typeof import('./compliance.js')>;
    /** Loads the direct link chunk (direct.ts). */
    direct(): Promise<typeof import('./direct.js')>;
    /** Loads the chunk of peers with direct links (direct-peers.ts). */
    directPeers(): Promise<typeof import('./direct-peers.js')>;
    /** Set by a spec: carries this page's direct link signalling to the other page. */
    directOut?: (data: unknown) => Promise<void>;
    /** Loads the store compliance chunk (the core store suite over IdbStore). */
    storeCompliance(): Promise<typeof import('./store-compliance.js')>;
    /** Anything else a spec keeps in the page between two evaluate calls. */
    scratch?: Record<string, unknown>;
    e2eReady: boolean;
  }
}
