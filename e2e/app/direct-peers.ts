/**
 * Peers with direct links in the test page (a lazy chunk): `connect` with `direct: 'auto'` and
 * a connector that records each channel it opens, so a spec can kill the direct path mid-stream
 * (as a dying network would) and watch the traffic go on through the relay.
 */
import { connect, webrtcConnector, type DirectConnector, type Peer, type Transport } from '@missive/browser';
import { allowHostCandidates } from './candidates.js';

/** Channels opened by the peers of this page, by peer name. */
const channels = new Map<string, Transport[]>();

function recording(name: string): DirectConnector {
  const inner = webrtcConnector();
  return {
    open(remote, options) {
      const attempt = inner.open(remote, options);
      void attempt.ready.then(
        (t) => {
          const list = channels.get(name) ?? [];
          list.push(t);
          channels.set(name, list);
        },
        () => {},
      );
      return attempt;
    },
  };
}

/** Connects `name` with direct links allowed (`direct: 'auto'`), or not (`'never'`). */
export async function connectPeer(url: string, name: string, direct: 'auto' | 'never'): Promise<Peer> {
  if (direct === 'auto') await allowHostCandidates();
  const peer = await connect(url, { name, store: 'memory', direct, ...(direct === 'auto' ? { directConnector: recording(name) } : {}) });
  window.peers[name] = peer;
  return peer;
}

/** Resolves once `peer`'s traffic to `other` goes over `link` (at once if it already does). */
export function linked(peer: Peer, other: string, link: 'direct' | 'relay', ms = 20_000): Promise<string | undefined> {
  if (peer.linkTo(other) === link) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${other} not on ${link} within ${ms} ms (last error: ${String(peer.inspect().direct.remotes.find((r) => r.name === other)?.lastError)})`));
    }, ms);
    const off = peer.on('link', (e) => {
      if (e.name !== other || e.link !== link) return;
      clearTimeout(timer);
      off();
      resolve(e.reason);
    });
  });
}

/** Closes every direct channel `name` opened or accepted: the direct path is gone. */
export function killChannels(name: string): number {
  const list = channels.get(name) ?? [];
  channels.delete(name);
  for (const t of list) t.close({ code: 1006, reason: 'killed by the test' });
  return list.length;
}
