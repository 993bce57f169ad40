import { createPeer, memoryTransportPair, Router, type Peer, type PeerOptions, type RouterOptions } from '../src/index.js';

/** A Router with memory-transport peers; `close()` ends all of it. */
export class Net {
  readonly router: Router;
  readonly peers: Peer[] = [];
  constructor(options?: RouterOptions) {
    this.router = new Router(options);
  }
  async peer(options: PeerOptions = {}): Promise<Peer> {
    const [client, server] = memoryTransportPair();
    this.router.accept(server);
    const p = await createPeer(client, options);
    this.peers.push(p);
    return p;
  }
  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
    await this.router.close(1000);
  }
}

/** Resolves with the first event of `type`, rejects after `ms`. */
export function nextEvent<T>(on: (fn: (e: T) => void) => () => void, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('event did not come'));
    }, ms);
    const off = on((e) => {
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}
