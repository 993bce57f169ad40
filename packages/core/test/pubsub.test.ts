import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Peer, PublishMeta } from '../src/index.js';
import { Net } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

/** Subscribes and records [topic, body] of everything received. */
function collect(peer: Peer, pattern: string): { got: [string, unknown][]; sub: ReturnType<Peer['subscribe']> } {
  const got: [string, unknown][] = [];
  const sub = peer.subscribe(pattern, (body, meta) => got.push([meta.topic, body]));
  return { got, sub };
}

/**
 * Publishes to a topic only `barrier` subscribers see, and waits for it: everything `pub`
 * published earlier that was going to reach `sub` has arrived by then.
 */
async function settle(pub: Peer, sub: Peer): Promise<void> {
  const token = `t${Math.random().toString(36).slice(2)}`;
  const s = sub.subscribe(`barrier.${token}`, () => {});
  await s.ready;
  const seen = new Promise<void>((resolve) => {
    const s2 = sub.subscribe(`barrier.${token}`, () => {
      s2.unsubscribe();
      resolve();
    });
  });
  pub.publish(`barrier.${token}`, 1);
  await seen;
  s.unsubscribe();
}

describe('publish/subscribe', () => {
  it('delivers a publish made after ready, with the topic and the publisher\'s name', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const received: [unknown, PublishMeta][] = [];
    const sub = bob.subscribe('room.lobby', (body, meta) => received.push([body, meta]));
    expect(sub.pattern).toBe('room.lobby');
    await sub.ready;
    alice.publish('room.lobby', { text: 'yo' });
    await expect.poll(() => received).toEqual([[{ text: 'yo' }, { topic: 'room.lobby', from: 'alice' }]]);
  });

  it('delivers by `*` one token and by `>` the rest, and nothing else', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const star = collect(bob, 'room.*');
    const rest = collect(bob, 'room.>');
    const mid = collect(bob, 'room.*.typing');
    await Promise.all([star.sub.ready, rest.sub.ready, mid.sub.ready]);
    for (const topic of ['room', 'room.lobby', 'room.lobby.typing', 'room.a.b.c', 'hall.lobby', 'rooms.lobby']) {
      alice.publish(topic, topic);
    }
    await settle(alice, bob);
    expect(star.got.map(([t]) => t)).toEqual(['room.lobby']);
    expect(rest.got.map(([t]) => t)).toEqual(['room.lobby', 'room.lobby.typing', 'room.a.b.c']);
    expect(mid.got.map(([t]) => t)).toEqual(['room.lobby.typing']);
  });

  it('delivers to every subscriber, in publish order', async () => {
    const alice = await net.peer({ name: 'alice' });
    const subs = await Promise.all(['s1', 's2', 's3'].map((name) => net.peer({ name })));
    const cs = subs.map((s) => collect(s, 'news.>'));
    await Promise.all(cs.map((c) => c.sub.ready));
    for (let i = 0; i < 100; i++) alice.publish('news.tick', i);
    for (const c of cs) await expect.poll(() => c.got.length).toBe(100);
    for (const c of cs) expect(c.got.map(([, b]) => b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('delivers one copy to a subscriber whose two patterns both match', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const frames: string[] = [];
    bob.on('trace', (e) => e.type === 'receive' && e.kind === 'Pub' && frames.push(e.id!));
    const star = collect(bob, 'room.*');
    const rest = collect(bob, 'room.>');
    await Promise.all([star.sub.ready, rest.sub.ready]);
    alice.publish('room.lobby', 'once');
    await settle(alice, bob);
    expect(frames.filter((t) => t === 'room.lobby')).toEqual(['room.lobby']);
    expect(star.got).toEqual([['room.lobby', 'once']]);
    expect(rest.got).toEqual([['room.lobby', 'once']]);
  });

  it('calls each of two handlers on the same pattern once, and shares one ready', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const a = collect(bob, 'x.y');
    const b = collect(bob, 'x.y');
    expect(a.sub.ready).toBe(b.sub.ready);
    await a.sub.ready;
    alice.publish('x.y', 1);
    await settle(alice, bob);
    expect(a.got).toEqual([['x.y', 1]]);
    expect(b.got).toEqual([['x.y', 1]]);
  });

  it('stops delivery after unsubscribe, at the subscriber and at the relay', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const c = collect(bob, 'room.*');
    await c.sub.ready;
    alice.publish('room.a', 'before');
    await expect.poll(() => c.got.length).toBe(1);
    c.sub.unsubscribe();
    alice.publish('room.a', 'after');
    await settle(alice, bob);
    expect(c.got).toEqual([['room.a', 'before']]);
    await expect.poll(() => net.router.connections().find((x) => x.name === 'bob')?.subscriptions).toEqual([]);
    // Unsubscribing twice is harmless.
    c.sub.unsubscribe();
  });

  it('keeps delivering to the other handler when one of two on a pattern unsubscribes', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const a = collect(bob, 'room.*');
    const b = collect(bob, 'room.*');
    await a.sub.ready;
    a.sub.unsubscribe();
    alice.publish('room.a', 1);
    await settle(alice, bob);
    expect(a.got).toEqual([]);
    expect(b.got).toEqual([['room.a', 1]]);
    await expect.poll(() => net.router.connections().find((x) => x.name === 'bob')?.subscriptions).toEqual(['room.*']);
  });

  it('delivers again after unsubscribing and subscribing to the same pattern', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const first = collect(bob, 'room.*');
    await first.sub.ready;
    first.sub.unsubscribe();
    const second = collect(bob, 'room.*');
    await second.sub.ready;
    alice.publish('room.a', 2);
    await expect.poll(() => second.got).toEqual([['room.a', 2]]);
    expect(first.got).toEqual([]);
  });

  it('delivers a peer\'s own publish to its own subscription', async () => {
    const alice = await net.peer({ name: 'alice' });
    const c = collect(alice, 'self.>');
    await c.sub.ready;
    alice.publish('self.talk', 'echo');
    await expect.poll(() => c.got).toEqual([['self.talk', 'echo']]);
  });

  it('reports a throwing subscriber through the error event and keeps delivering', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const boom = new Error('handler broke');
    const errors: Error[] = [];
    bob.on('error', (e) => errors.push(e));
    const sub = bob.subscribe('t', () => {
      throw boom;
    });
    const c = collect(bob, 't');
    await sub.ready;
    alice.publish('t', 1);
    alice.publish('t', 2);
    await expect.poll(() => c.got.length).toBe(2);
    expect(errors).toEqual([boom, boom]);
  });

  it('does not deliver to subscribers in another namespace', async () => {
    const alice = await net.peer({ name: 'alice', namespace: 'one' });
    const bob = await net.peer({ name: 'bob', namespace: 'two' });
    const carol = await net.peer({ name: 'carol', namespace: 'one' });
    const b = collect(bob, '>');
    const c = collect(carol, '>');
    await Promise.all([b.sub.ready, c.sub.ready]);
    alice.publish('news', 'hi');
    await expect.poll(() => c.got).toEqual([['news', 'hi']]);
    await settle(alice, carol);
    // The relay handled alice's publish before dave existed, so a copy leaked to bob would
    // reach him ahead of dave's.
    const dave = await net.peer({ name: 'dave', namespace: 'two' });
    dave.publish('news', 'two only');
    await expect.poll(() => b.got.length).toBe(1);
    expect(b.got).toEqual([['news', 'two only']]);
  });

  it('throws a TypeError for a bad pattern or topic, and CLOSED after close', async () => {
    const alice = await net.peer({ name: 'alice' });
    expect(() => alice.subscribe('a..b', () => {})).toThrow(TypeError);
    expect(() => alice.subscribe('>.a', () => {})).toThrow(TypeError);
    expect(() => alice.publish('a.*', 1)).toThrow(TypeError);
    expect(() => alice.publish('', 1)).toThrow(TypeError);
    await alice.close();
    expect(() => alice.publish('a', 1)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    expect(() => alice.subscribe('a', () => {})).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it('rejects ready with CLOSED when the peer closes before the relay answered', async () => {
    const alice = await net.peer({ name: 'alice' });
    const sub = alice.subscribe('late.>', () => {});
    const check = expect(sub.ready).rejects.toMatchObject({ code: 'CLOSED' });
    await alice.close();
    await check;
  });

  it('drops a publish with no subscriber silently', async () => {
    const alice = await net.peer({ name: 'alice' });
    const errors: Error[] = [];
    alice.on('error', (e) => errors.push(e));
    alice.publish('nobody.listens', 1);
    const c = collect(alice, 'after');
    await c.sub.ready;
    alice.publish('after', 2);
    await expect.poll(() => c.got).toEqual([['after', 2]]);
    expect(errors).toEqual([]);
  });
});
