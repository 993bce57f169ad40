/** MemoryRegistry on its own: claims, routes, round-robin, memberships and what `remove` frees. */
import { describe, expect, it } from 'vitest';
import { MemoryRegistry, type LocalPeer } from '../../src/index.js';

const peer = (id: string, name?: string, session = ''): LocalPeer => ({ kind: 'local', id: `~${id}`, name, session });

describe('MemoryRegistry', () => {
  it('claim - a free name is claimed; another peer is refused; the same session gets the holder to replace', () => {
    const r = new MemoryRegistry();
    const a = peer('a', 'alice', 's1');
    expect(r.claim('ns', a, 'alice')).toEqual({ status: 'claimed' });
    r.add('ns', a);
    expect(r.claim('ns', peer('b', 'alice', 's2'), 'alice')).toEqual({ status: 'taken' });
    expect(r.claim('ns', peer('c', 'alice', ''), 'alice')).toEqual({ status: 'taken' });
    expect(r.claim('ns', peer('d', 'alice', 's1'), 'alice')).toEqual({ status: 'replace', holder: a });
    // Namespaces are separate.
    expect(r.claim('other', peer('e', 'alice'), 'alice')).toEqual({ status: 'claimed' });
  });

  it('route - by name and by id; remove frees both, and the namespace once empty', () => {
    const r = new MemoryRegistry();
    const a = peer('a', 'alice');
    r.claim('ns', a, 'alice');
    const space = r.add('ns', a);
    expect(space.route('alice')).toBe(a);
    expect(space.route('~a')).toBe(a);
    expect(r.count('ns')).toBe(1);
    r.remove('ns', a);
    expect(space.route('alice')).toBeUndefined();
    expect(r.space('ns')).toBeUndefined();
    expect(r.namespaces().size).toBe(0);
    r.remove('ns', a); // twice: nothing happens
  });

  it('groups - pick goes round-robin in join order; leaving keeps the rotation within bounds', () => {
    const r = new MemoryRegistry();
    const [a, b, c] = [peer('a', 'a'), peer('b', 'b'), peer('c', 'c')];
    const s = r.add('ns', a);
    r.add('ns', b);
    r.add('ns', c);
    for (const p of [a, b, c]) s.join(p, 'workers');
    s.join(a, 'workers'); // once only
    expect([1, 2, 3, 4].map(() => s.pick('workers')?.id)).toEqual(['~a', '~b', '~c', '~a']);
    s.leave(b, 'workers');
    expect(s.members('workers')).toEqual([a, c]);
    s.leave(a, 'workers');
    s.leave(c, 'workers');
    expect(s.members('workers')).toBeUndefined();
    expect(s.pick('workers')).toBeUndefined();
  });

  it('subscriptions and watchers - matched once each, counted per peer, all freed by remove', () => {
    const r = new MemoryRegistry();
    const [a, b] = [peer('a', 'a'), peer('b', 'b')];
    const s = r.add('ns', a);
    r.add('ns', b);
    s.subscribe(a, 'chat.*');
    s.subscribe(a, 'chat.>');
    s.subscribe(b, 'chat.room');
    s.watch(b, true);
    expect(s.subscriptionCount(a)).toBe(2);
    expect(s.isSubscribed(a, 'chat.>')).toBe(true);
    expect([...s.subscribers('chat.room', new Set())].map((p) => p.id).sort()).toEqual(['~a', '~b']);
    expect(r.sizes()).toMatchObject({ peers: 2, subscriptions: 3, watchers: 1 });
    r.remove('ns', a);
    r.remove('ns', b);
    expect(r.sizes()).toEqual({ namespaces: 0, peers: 0, names: 0, groups: 0, subscriptions: 0, watchers: 0 });
  });
});
