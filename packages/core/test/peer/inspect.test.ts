/** peer.inspect(): one plain snapshot of every part, as the devtools will read it. */
import { afterEach, describe, expect, it } from 'vitest';
import { createPeer, memoryTransportPair, Router } from '../../src/index.js';
import { Net } from '../helpers.js';

describe('Peer.inspect', () => {
  let net: Net;
  afterEach(() => net.close());

  it('shows every part of a working peer in a JSON-serialisable snapshot', async () => {
    net = new Net();
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('echo', (x) => x);
    await bob.subscribe('news.>', () => {}).ready;
    await bob.join('team');
    await alice.send('bob', 'one');
    await alice.send('bob', 'two', { waitForDelivery: true });
    await alice.request('bob/echo', 1);
    await bob.mailbox().receive();

    const snap = bob.inspect({ peek: 5 });
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    expect(snap.session).toMatchObject({ name: 'bob', connected: true, reconnecting: false });
    expect(snap.closed).toBe(false);
    expect(snap.inbox.dedupStreams).toBe(1);
    expect(snap.inbox.mailboxes).toEqual([expect.objectContaining({ port: 'inbox', depth: 1, messages: [expect.objectContaining({ body: 'two', from: 'alice' })] })]);
    expect(snap.requests.handlers).toEqual([{ port: 'echo', calls: 1, errors: 0, active: 0, p50: expect.any(Number), p99: expect.any(Number) }]);
    expect(snap.pubsub.subscriptions).toEqual([{ pattern: 'news.>', handlers: 1 }]);
    expect(snap.groups.groups).toEqual(['team']);
    expect(snap.registrations.registrations.map((r) => r.key).sort()).toEqual(['join:team', 'sub:news.>']);

    const a = alice.inspect();
    expect(a.outbox).toMatchObject({ size: 0, destinations: [] });
    expect(a.inbox.mailboxes[0]!.messages).toEqual([]);
  });

  it('shows the URL of the link in use when its transport has one (Transport.url), else undefined', async () => {
    const router = new Router();
    try {
      const [c1, s1] = memoryTransportPair();
      router.accept(s1);
      Object.defineProperty(c1, 'url', { value: 'ws://relay-a.example/' });
      const withUrl = await createPeer(c1, { name: 'alice' });
      expect(withUrl.inspect().session.url).toBe('ws://relay-a.example/');
      const [c2, s2] = memoryTransportPair();
      router.accept(s2);
      const without = await createPeer(c2, { name: 'bob' });
      expect(without.inspect().session.url).toBeUndefined();
      await Promise.all([withUrl.close(), without.close()]);
    } finally {
      await router.close();
    }
  });

  it('shows unacked messages per destination while the receiver is away', async () => {
    net = new Net();
    const alice = await net.peer({ name: 'alice' });
    await alice.send('carol', 1);
    await alice.send('carol', 2);
    await expect.poll(() => alice.inspect().outbox.held).toBe(2);
    expect(alice.inspect().outbox.destinations).toEqual([expect.objectContaining({ dest: 'carol', unacked: 2, held: 2 })]);
    await alice.close();
    expect(alice.inspect().closed).toBe(true);
  });
});
