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

// ---- the browser benchmark (e2e/bench.ts) ----

/** On the receiving peer: answers `echo` requests, and sinks `sink` tunnels, answering their byte count. */
export function serveBench(peer: Peer): void {
  peer.handle('echo', (x: unknown) => x);
  peer.onTunnel<Uint8Array>('sink', async (t) => {
    let bytes = 0;
    for await (const chunk of t.readable) bytes += chunk.length;
    const w = t.writable.getWriter();
    await w.write(new TextEncoder().encode(String(bytes)));
    await w.close();
  });
}

/** `n` requests one after another (c=1) with a small body: each round trip in ms. */
export async function benchRequests(peer: Peer, to: string, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await peer.request(`${to}/echo`, i);
    times.push(performance.now() - t0);
  }
  return times;
}

/** A tunnel of `bytes` in 64 KiB writes, timed until the receiver says it has them all: MB/s. */
export async function benchTunnel(peer: Peer, to: string, bytes: number): Promise<number> {
  const chunk = new Uint8Array(64 * 1024).fill(7);
  const t0 = performance.now();
  const t = await peer.tunnel<Uint8Array>(`${to}/sink`, 'sink');
  const w = t.writable.getWriter();
  for (let at = 0; at < bytes; at += chunk.length) await w.write(chunk.slice());
  await w.close();
  let answer = '';
  for await (const part of t.readable) answer += new TextDecoder().decode(part);
  if (Number(answer) !== bytes) throw new Error(`the receiver got ${answer} bytes, not ${bytes}`);
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}
