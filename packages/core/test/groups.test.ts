import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Peer } from '../src/index.js';
import { Net, nextEvent } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

/** Named peers that join `group` in order and answer `work` with their own name. */
async function workers(names: string[], group = 'workers'): Promise<Peer[]> {
  const out: Peer[] = [];
  for (const name of names) {
    const p = await net.peer({ name });
    p.handle('work', () => name);
    await p.join(group);
    out.push(p);
  }
  return out;
}

function tally(names: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}

describe('groups - requests', () => {
  it('spreads requests evenly over the members, round-robin in join order', async () => {
    await workers(['w1', 'w2', 'w3']);
    const client = await net.peer({ name: 'client' });
    const inOrder: string[] = [];
    for (let i = 0; i < 6; i++) inOrder.push(await client.request<string>('workers/work', i, { timeout: 5000 }));
    expect(inOrder).toEqual(['w1', 'w2', 'w3', 'w1', 'w2', 'w3']);
    const concurrent = await Promise.all(Array.from({ length: 30 }, (_, i) => client.request<string>('workers/work', i, { timeout: 5000 })));
    expect(tally(concurrent)).toEqual({ w1: 10, w2: 10, w3: 10 });
  });

  it('stops sending requests to a member that left', async () => {
    const [, w2] = await workers(['w1', 'w2', 'w3']);
    const client = await net.peer({ name: 'client' });
    await w2!.leave('workers');
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.request<string>('workers/work', i, { timeout: 5000 })));
    expect(tally(replies)).toEqual({ w1: 10, w3: 10 });
  });

  it('stops sending requests to a member that disconnected', async () => {
    const [w1] = await workers(['w1', 'w2']);
    const client = await net.peer({ name: 'client' });
    await w1!.close();
    const replies = await Promise.all(Array.from({ length: 4 }, () => client.request<string>('workers/work', 0, { timeout: 5000 })));
    expect(replies).toEqual(['w2', 'w2', 'w2', 'w2']);
  });

  it('rejects with NO_ROUTE once the last member left', async () => {
    const [w1] = await workers(['w1']);
    const client = await net.peer({ name: 'client' });
    await expect(client.request('workers/work', 0, { timeout: 5000 })).resolves.toBe('w1');
    await w1!.leave('workers');
    await expect(client.request('workers/work', 0, { timeout: 10_000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('counts a member once however often it joins', async () => {
    const [w1] = await workers(['w1', 'w2']);
    await w1!.join('workers');
    const client = await net.peer({ name: 'client' });
    const replies = await Promise.all(Array.from({ length: 4 }, () => client.request<string>('workers/work', 0, { timeout: 5000 })));
    expect(tally(replies)).toEqual({ w1: 2, w2: 2 });
  });

  it('lists the groups a peer joined in the relay\'s connection info', async () => {
    const [w1] = await workers(['w1']);
    await w1!.join('auditors');
    expect(net.router.connections().find((c) => c.name === 'w1')?.groups.sort()).toEqual(['auditors', 'workers']);
    await w1!.leave('auditors');
    expect(net.router.connections().find((c) => c.name === 'w1')?.groups).toEqual(['workers']);
  });

  it('rejects join and leave with a TypeError for an invalid group name', async () => {
    const p = await net.peer({ name: 'p' });
    await expect(p.join('')).rejects.toBeInstanceOf(TypeError);
    await expect(p.join('a/b')).rejects.toBeInstanceOf(TypeError);
    await expect(p.leave('~x')).rejects.toBeInstanceOf(TypeError);
  });
});

describe('groups - broadcast', () => {
  it('reaches every member\'s inbox', async () => {
    const members = await workers(['w1', 'w2', 'w3']);
    const outsider = await net.peer({ name: 'outsider' });
    const sender = await net.peer({ name: 'sender' });
    sender.broadcast('workers', { cmd: 'reload' });
    for (const m of members) {
      await expect(m.receive({ timeout: 5000 })).resolves.toMatchObject({ from: 'sender', to: 'workers', body: { cmd: 'reload' } });
    }
    // Anything more would come before this direct message; nothing did, and the outsider got nothing.
    for (const m of [...members, outsider]) {
      await sender.send(m.name!, 'barrier');
      await expect(m.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'barrier' });
      expect(m.mailbox().size).toBe(0);
    }
  });

  it('gives each member\'s copy its own id', async () => {
    const members = await workers(['w1', 'w2']);
    const sender = await net.peer({ name: 'sender' });
    sender.broadcast('workers', 1);
    sender.broadcast('workers', 2);
    const ids: string[] = [];
    for (const m of members) {
      const a = await m.receive({ timeout: 5000 });
      const b = await m.receive({ timeout: 5000 });
      expect([a.body, b.body]).toEqual([1, 2]);
      ids.push(a.id, b.id);
    }
    expect(new Set(ids).size).toBe(4);
  });

  it('delivers to the named port of every member that opened it', async () => {
    const members = await workers(['w1', 'w2']);
    for (const m of members) m.mailbox('control');
    const sender = await net.peer({ name: 'sender' });
    sender.broadcast('workers/control', 'stop');
    for (const m of members) {
      await expect(m.mailbox('control').receive({ timeout: 5000 })).resolves.toMatchObject({ to: 'workers/control', body: 'stop' });
    }
  });

  it('no longer reaches a member that left', async () => {
    const [w1, w2] = await workers(['w1', 'w2']);
    const sender = await net.peer({ name: 'sender' });
    await w1!.leave('workers');
    sender.broadcast('workers', 'after leave');
    await expect(w2!.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'after leave' });
    await sender.send('w1', 'barrier');
    await expect(w1!.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'barrier' });
  });

  it('reports NO_ROUTE through the error event for an unknown group', async () => {
    const sender = await net.peer({ name: 'sender' });
    const error = nextEvent<Error & { code?: string }>((fn) => sender.on('error', fn));
    sender.broadcast('ghosts', 'boo');
    await expect(error).resolves.toMatchObject({ code: 'NO_ROUTE' });
    // The link stays usable.
    const other = await net.peer({ name: 'other' });
    await sender.send('other', 'still here', { waitForDelivery: true });
    await expect(other.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'still here' });
  });

  it('throws CLOSED synchronously after close', async () => {
    const sender = await net.peer({ name: 'sender' });
    await sender.close();
    expect(() => sender.broadcast('workers', 1)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });
});
