/**
 * Node peers on direct links: `connect()` with `direct: 'auto'` and a WebRTC connector from
 * `@missive/browser/direct` over `@roamhq/wrtc`, through a real relay. Without a connector a Node
 * peer stays on the relay, and a peer that has one then stays there with it.
 */
import wrtcModule from '@roamhq/wrtc';
import { afterEach, describe, expect, it } from 'vitest';
import { webrtcConnector, type WrtcImplementation } from '@missive/browser/direct';
import type { LinkEvent, Peer } from '@missive/core';
import { connect, createRelay, type Relay } from '@missive/node';

const wrtc: WrtcImplementation = wrtcModule;

function linked(peer: Peer, name: string, link: LinkEvent['link']): Promise<LinkEvent> {
  if (peer.linkTo(name) === link) return Promise.resolve({ name, link });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${link} link to ${name} within 20 s: ${JSON.stringify(peer.inspect().direct)}`)), 20_000);
    const off = peer.on('link', (e) => {
      if (e.name !== name || e.link !== link) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

describe('Node peers with direct links (@roamhq/wrtc)', () => {
  let relay: Relay;
  const peers: Peer[] = [];
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
    await relay.close(2000);
  });

  async function peer(name: string, direct: 'auto' | 'never' = 'auto', withConnector = true): Promise<Peer> {
    const p = await connect(relay.url, { name, direct, ...(withConnector ? { directConnector: webrtcConnector({ wrtc }) } : {}) });
    peers.push(p);
    return p;
  }

  it('two Node peers upgrade to a data channel; the relay carries none of their messages after that', async () => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    bob.handle('double', (n: number) => n * 2);
    expect(await alice.request('bob/double', 1)).toBe(2);
    await Promise.all([linked(alice, 'bob', 'direct'), linked(bob, 'alice', 'direct')]);
    const before = relay.router.metrics().framesIn;
    for (let i = 0; i < 200; i++) await alice.send('bob', i);
    const got: number[] = [];
    for (let i = 0; i < 200; i++) got.push((await bob.receive<number>()).body);
    expect(got).toEqual([...Array(200).keys()]);
    expect(await Promise.all([1, 2, 3].map((n) => alice.request('bob/double', n)))).toEqual([2, 4, 6]);
    await expect.poll(() => alice.outboxSize).toBe(0);
    const after = relay.router.metrics().framesIn;
    for (const k of ['Msg', 'Ack', 'Req', 'Rep']) expect(after[k] ?? 0).toBe(before[k] ?? 0);
  }, 60_000);

  it('a Node peer without a connector stays on the relay, and so does the one that asked', async () => {
    relay = await createRelay({ host: '127.0.0.1', port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob', 'auto', false);
    bob.handle('echo', (x: unknown) => x);
    for (let i = 0; i < 5; i++) expect(await alice.request('bob/echo', i)).toBe(i);
    await expect.poll(() => alice.inspect().direct.remotes[0]?.lastError).toMatch(/no direct links/);
    expect(alice.linkTo('bob')).toBe('relay');
    expect(bob.inspect().direct.available).toBe(false);
  }, 30_000);
});
