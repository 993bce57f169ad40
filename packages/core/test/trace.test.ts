import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Peer, Router, TraceEvent } from '../src/index.js';
import { Net, nextEvent } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

function traces(source: Peer | Router): TraceEvent[] {
  const out: TraceEvent[] = [];
  (source as Peer).on('trace', (e) => out.push(e));
  return out;
}

describe('trace events', () => {
  it('traces a send, its receive, the relay forwarding both ways, and the ack', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const ta = traces(alice);
    const tb = traces(bob);
    const tr = traces(net.router);
    const before = Date.now();
    const id = await alice.send('bob', { text: 'hi' }, { waitForDelivery: true });
    await expect.poll(() => tb.length).toBeGreaterThan(0);

    expect(ta).toEqual([
      { type: 'send', kind: 'Msg', id, to: 'bob', size: expect.any(Number), at: expect.any(Number) },
      { type: 'ack', kind: 'Ack', id, from: 'bob', to: 'bob', at: expect.any(Number) },
    ]);
    expect(ta[0]!.size).toBeGreaterThan(0);
    expect(ta[0]!.at).toBeGreaterThanOrEqual(before);
    expect(tb).toEqual([{ type: 'receive', kind: 'Msg', id, from: 'alice', to: 'bob', size: ta[0]!.size, at: expect.any(Number) }]);
    expect(tr).toEqual([
      expect.objectContaining({ type: 'forward', kind: 'Msg', from: 'alice', to: 'bob', size: ta[0]!.size }),
      expect.objectContaining({ type: 'forward', kind: 'Ack', from: 'bob', to: 'alice' }),
    ]);
    // The relay's id for the message names the same stream and sequence number.
    expect(id.startsWith(`${tr[0]!.id}:`)).toBe(true);
  });

  it('traces a request and its reply at both peers and the relay', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('add', (b: { a: number; b: number }) => b.a + b.b);
    const ta = traces(alice);
    const tb = traces(bob);
    const tr = traces(net.router);
    await alice.request('bob/add', { a: 1, b: 2 });
    expect(ta.map((e) => [e.type, e.kind])).toEqual([
      ['send', 'Req'],
      ['receive', 'Rep'],
    ]);
    expect(tb.map((e) => [e.type, e.kind, e.from])).toEqual([['receive', 'Req', 'alice']]);
    expect(tr.map((e) => [e.type, e.kind, e.from, e.to])).toEqual([
      ['forward', 'Req', 'alice', 'bob'],
      ['forward', 'Rep', 'bob', 'alice'],
    ]);
    expect(new Set([ta[0]!.id, ta[1]!.id, tb[0]!.id, tr[0]!.id, tr[1]!.id]).size).toBe(1);
  });

  it('traces a publish fanned out by the relay to each subscriber', async () => {
    const alice = await net.peer({ name: 'alice' });
    const subs = await Promise.all(['s1', 's2'].map((name) => net.peer({ name })));
    const got = subs.map((s) => traces(s));
    await Promise.all(subs.map((s) => s.subscribe('news.*', () => {}).ready));
    const ta = traces(alice);
    const tr = traces(net.router);
    alice.publish('news.today', 'x');
    for (const g of got) await expect.poll(() => g.map((e) => [e.type, e.kind, e.id, e.from])).toEqual([['receive', 'Pub', 'news.today', 'alice']]);
    expect(ta).toEqual([expect.objectContaining({ type: 'send', kind: 'Pub', id: 'news.today' })]);
    expect(tr).toEqual([expect.objectContaining({ type: 'forward', kind: 'Pub', from: 'alice', to: 'news.today (2)' })]);
  });

  it('traces drops: at the relay for an unknown peer, at the sender for the undeliverable message', async () => {
    // With holding off, a send to a name nobody holds is NO_ROUTE at once (see hold.test.ts for holding).
    await net.close();
    net = new Net({ limits: { holdTtl: 0 } });
    const alice = await net.peer({ name: 'alice' });
    const ta = traces(alice);
    const tr = traces(net.router);
    const undeliverable = nextEvent<{ id: string }>((fn) => alice.on('undeliverable', fn));
    const id = await alice.send('nobody', 1);
    await undeliverable;
    expect(tr).toEqual([expect.objectContaining({ type: 'drop', kind: 'Msg', from: 'alice', to: 'nobody', reason: 'NO_ROUTE' })]);
    expect(ta.map((e) => [e.type, e.kind, e.id, e.reason])).toEqual([
      ['send', 'Msg', id, undefined],
      ['drop', 'Msg', id, 'NO_ROUTE'],
    ]);
  });

  it('traces drops at the receiver: a missing mailbox port and a full mailbox', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob', mailboxCapacity: 1 });
    const tb = traces(bob);
    const undeliverable = nextEvent<{ id: string }>((fn) => alice.on('undeliverable', fn));
    await alice.send('bob/nowhere', 1);
    await undeliverable;
    expect(tb).toEqual([expect.objectContaining({ type: 'drop', kind: 'Msg', from: 'alice', to: 'bob/nowhere', reason: 'NO_ROUTE' })]);
    await alice.send('bob', 'fills it');
    await alice.send('bob', 'refused for now');
    await expect.poll(() => tb.filter((e) => e.type === 'drop' && e.reason === 'LIMIT').length).toBeGreaterThan(0);
    // Making room lets the refused message through.
    await bob.receive();
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'refused for now' });
  });

  it('traces relay drops of a publish nobody subscribed to and a request to nobody', async () => {
    const alice = await net.peer({ name: 'alice' });
    const tr = traces(net.router);
    alice.publish('void', 1);
    await expect(alice.request('nobody/x', 1, { timeout: 10_000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
    expect(tr.map((e) => [e.type, e.kind, e.to, e.reason])).toEqual([
      ['drop', 'Pub', 'void', 'NO_ROUTE'],
      ['drop', 'Req', 'nobody/x', 'NO_ROUTE'],
    ]);
  });

  it('costs nothing when nobody listens: untraced peers still work', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const off = alice.on('trace', () => {});
    off();
    expect(alice.listens('trace')).toBe(false);
    await alice.send('bob', 1, { waitForDelivery: true });
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 1 });
  });
});
