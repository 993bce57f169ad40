import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NameTakenError, type Peer, type PeerInfo } from '../src/index.js';
import { Net, nextEvent, record } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

const byName = (list: PeerInfo[]): PeerInfo[] => [...list].sort((a, b) => a.name.localeCompare(b.name));

/** Starts watching presence and waits until the relay has the watch (PEERS is answered after it). */
async function watch(peer: Peer): Promise<{ joins: PeerInfo[]; leaves: PeerInfo[] }> {
  const joins = record(peer, 'peer-join');
  const leaves = record(peer, 'peer-leave');
  await peer.peers();
  return { joins, leaves };
}

describe('presence', () => {
  it('lists the named peers of the namespace, itself included, with their ids', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    await net.peer(); // anonymous: not listed
    await net.peer({ name: 'zed', namespace: 'elsewhere' });
    expect(byName(await alice.peers())).toEqual([
      { name: 'alice', id: alice.id },
      { name: 'bob', id: bob.id },
    ]);
  });

  it('emits peer-join when a named peer connects and peer-leave when it goes', async () => {
    const alice = await net.peer({ name: 'alice' });
    const { joins, leaves } = await watch(alice);
    const bob = await net.peer({ name: 'bob' });
    await expect.poll(() => joins).toEqual([{ name: 'bob', id: bob.id }]);
    const bobId = bob.id;
    await bob.close();
    await expect.poll(() => leaves).toEqual([{ name: 'bob', id: bobId }]);
    expect(byName(await alice.peers())).toEqual([{ name: 'alice', id: alice.id }]);
  });

  it('emits peer-leave when a named peer\'s link drops', async () => {
    const alice = await net.peer({ name: 'alice' });
    const { leaves } = await watch(alice);
    const { peer: bob, server } = await net.link({ name: 'bob' });
    server.close({ code: 1006, reason: 'gone' });
    await expect.poll(() => leaves).toEqual([{ name: 'bob', id: bob.id }]);
  });

  it('says nothing about anonymous peers or peers of other namespaces', async () => {
    const alice = await net.peer({ name: 'alice' });
    const { joins, leaves } = await watch(alice);
    const anon = await net.peer();
    const other = await net.peer({ name: 'bob', namespace: 'elsewhere' });
    await anon.close();
    await other.close();
    // The next event is about carol: nothing came before it.
    const carol = await net.peer({ name: 'carol' });
    await expect.poll(() => joins.length).toBe(1);
    expect(joins).toEqual([{ name: 'carol', id: carol.id }]);
    expect(leaves).toEqual([]);
  });

  it('does not tell a peer about its own arrival', async () => {
    await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const { joins } = await watch(bob);
    await net.peer({ name: 'carol' });
    await expect.poll(() => joins.map((j) => j.name)).toEqual(['carol']);
  });

  it('delivers presence to every watcher', async () => {
    const watchers = await Promise.all(['w1', 'w2'].map((name) => net.peer({ name })));
    const seen = await Promise.all(watchers.map(watch));
    const first = nextEvent<PeerInfo>((fn) => watchers[0]!.on('peer-join', fn));
    const carol = await net.peer({ name: 'carol' });
    await expect(first).resolves.toEqual({ name: 'carol', id: carol.id });
    for (const s of seen) await expect.poll(() => s.joins).toEqual([{ name: 'carol', id: carol.id }]);
  });
});

describe('names', () => {
  it('rejects a second claim of a name with NAME_TAKEN', async () => {
    const alice = await net.peer({ name: 'alice' });
    const err = await net.peer({ name: 'alice' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NameTakenError);
    expect(err).toMatchObject({ code: 'NAME_TAKEN' });
    // The first holder is unaffected.
    expect(alice.connected).toBe(true);
    expect(byName(await alice.peers())).toEqual([{ name: 'alice', id: alice.id }]);
  });

  it('frees a name when its holder goes, so it can be claimed again', async () => {
    const first = await net.peer({ name: 'alice' });
    await first.close();
    const second = await net.peer({ name: 'alice' });
    expect(second.name).toBe('alice');
    expect(second.id).not.toBe(first.id);
  });

  it('allows the same name in different namespaces', async () => {
    const a = await net.peer({ name: 'alice', namespace: 'one' });
    const b = await net.peer({ name: 'alice', namespace: 'two' });
    expect([a.namespace, b.namespace]).toEqual(['one', 'two']);
  });

  it('puts a peer in the default namespace unless it asks for another', async () => {
    const a = await net.peer({ name: 'alice' });
    expect(a.namespace).toBe('default');
  });

  it('keeps messages inside the namespace: the same name elsewhere is another peer', async () => {
    // With holding off, a send to a name nobody holds is NO_ROUTE at once (see hold.test.ts for holding).
    await net.close();
    net = new Net({ limits: { holdTtl: 0 } });
    const sender = await net.peer({ name: 'sender', namespace: 'one' });
    const here = await net.peer({ name: 'bob', namespace: 'one' });
    const there = await net.peer({ name: 'bob', namespace: 'two' });
    await sender.send('bob', 'hi', { waitForDelivery: true });
    await expect(here.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'hi' });
    expect(there.mailbox().size).toBe(0);
    await expect(sender.send('carol', 'x', { waitForDelivery: true })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('rejects an invalid name with a TypeError before connecting', async () => {
    await expect(net.peer({ name: '~reserved' })).rejects.toBeInstanceOf(TypeError);
    await expect(net.peer({ name: 'has space' })).rejects.toBeInstanceOf(TypeError);
    await expect(net.peer({ name: 'a/b' })).rejects.toBeInstanceOf(TypeError);
  });
});
