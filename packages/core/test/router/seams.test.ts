/**
 * The Router over replaceable parts: a registry whose claims answer asynchronously, a hold
 * store that answers asynchronously, a route to a peer on another relay (no route here), and
 * `router.inspect()`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryHoldStore, MemoryRegistry, type Claim, type HoldLimits, type HoldResult, type HoldStore, type LocalPeer, type Registry, type RemotePeer, type Route, type Space } from '../../src/index.js';
import { Net } from '../helpers.js';

const later = <T>(v: () => T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(v()), 5));

/** A MemoryRegistry whose claims resolve a few ms later, as one over the network would. */
function slowRegistry<P extends LocalPeer>(counter: { claims: number }): Registry<P> {
  const inner = new MemoryRegistry<P>();
  return {
    count: (ns) => inner.count(ns),
    claim: (ns, peer, name): Promise<Claim<P>> => {
      counter.claims++;
      return later(() => inner.claim(ns, peer, name));
    },
    add: (ns, peer) => inner.add(ns, peer),
    remove: (ns, peer) => inner.remove(ns, peer),
    space: (ns) => inner.space(ns),
    namespaces: () => inner.namespaces(),
    sizes: () => inner.sizes(),
  };
}

/** A MemoryHoldStore whose hold and take resolve a few ms later. */
function slowHolds(limits: HoldLimits): HoldStore {
  const inner = new MemoryHoldStore(limits);
  return {
    get messages() {
      return inner.messages;
    },
    get bytes() {
      return inner.bytes;
    },
    hold: (ns, name, m): Promise<HoldResult> => later(() => inner.hold(ns, name, m)),
    take: (ns, name, deliver): Promise<void> => later(() => inner.take(ns, name, deliver)),
    expire: (before, expired) => inner.expire(before, expired),
    inspect: () => inner.inspect(),
    clear: () => inner.clear(),
  };
}

let net: Net | undefined;
afterEach(async () => {
  await net?.close();
  net = undefined;
});

describe('Router seams', () => {
  it('an asynchronous registry - names are claimed through it, NAME_TAKEN still refuses, and routing works', async () => {
    const counter = { claims: 0 };
    net = new Net({ registry: () => slowRegistry(counter) });
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    await expect(net.peer({ name: 'alice' })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
    expect(counter.claims).toBe(3);
    bob.handle('echo', (x) => x);
    expect(await alice.request('bob/echo', 'hi')).toBe('hi');
  });

  it('an asynchronous hold store - a message to an offline name is held, then delivered once when it comes', async () => {
    net = new Net({ holds: slowHolds({ holdMaxMessages: 10, holdMaxBytes: 1 << 20, holdMaxTotalBytes: 1 << 20 }) });
    const alice = await net.peer({ name: 'alice' });
    void alice.send('carol', { n: 1 });
    await expect.poll(() => net!.router.inspect().held.messages).toBe(1);
    const carol = await net.peer({ name: 'carol' });
    expect((await carol.receive()).body).toEqual({ n: 1 });
    expect(net.router.inspect().held.messages).toBe(0);
  });

  it('a route to a peer on another relay is no route on a relay without a backplane', async () => {
    const remote: RemotePeer = { kind: 'remote', relay: 'r2', id: '~remote', name: 'far' };
    class WithRemote<P extends LocalPeer> extends MemoryRegistry<P> {
      override add(namespace: string, peer: P): Space<P> {
        const space = super.add(namespace, peer);
        const route = space.route.bind(space);
        space.route = (nameOrId: string): Route<P> | undefined => (nameOrId === 'far' ? remote : route(nameOrId));
        return space;
      }
    }
    net = new Net({ registry: () => new WithRemote(), limits: { holdTtl: 0 } });
    const alice = await net.peer({ name: 'alice' });
    await expect(alice.request('far/x', 1, { timeout: 2000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
    await expect(alice.tunnel('far', 'files')).rejects.toMatchObject({ code: 'NO_ROUTE' });
    // Handled as a route, not a crash: alice's connection is still open.
    expect(net.router.connections().map((c) => c.name)).toEqual(['alice']);
  });

  it('inspect - connections with their flow, requests and tunnels; registry sizes; what is held', async () => {
    net = new Net();
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    await bob.join('workers');
    await bob.subscribe('chat.*', () => undefined);
    let release!: () => void;
    bob.handle('slow', () => new Promise<void>((resolve) => (release = resolve)));
    const pending = alice.request('bob/slow', null);
    await expect.poll(() => net!.router.inspect().connections.find((c) => c.name === 'bob')?.requests.serving).toBe(1);
    const snap = net.router.inspect();
    const b = snap.connections.find((c) => c.name === 'bob')!;
    expect(b).toMatchObject({ state: 'open', namespace: 'default', groups: ['workers'], subscriptions: ['chat.*'], requests: { awaiting: 0, serving: 1 }, tunnels: [] });
    expect(b.flow.bufferedBytes).toBeGreaterThanOrEqual(0);
    expect(snap.connections.find((c) => c.name === 'alice')?.requests.awaiting).toBe(1);
    expect(snap.registry).toMatchObject({ namespaces: 1, peers: 2, names: 2, groups: 1, subscriptions: 1 });
    expect(snap.held.messages).toBe(0);
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    release();
    await pending;
  });
});
