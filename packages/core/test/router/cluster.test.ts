/**
 * Routers as one relay over a cluster bus (MemoryCluster: the same protocol a Redis backplane
 * carries, between Routers of one process): every feature between peers on different relays,
 * names unique across the cluster, and a relay that dies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createPeer, MemoryCluster, memoryTransportPair, Router, type Peer, type PeerOptions } from '../../src/index.js';
import { Board } from '../direct/connector.js';

let routers: Router[] = [];
let peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await Promise.all(routers.splice(0).map((r) => r.close(100)));
});

async function cluster(n: number): Promise<{ cluster: MemoryCluster; relays: Router[] }> {
  const cluster = new MemoryCluster();
  const relays: Router[] = [];
  for (let i = 0; i < n; i++) {
    const r = new Router({ cluster: cluster.bus(`relay${i}`) });
    await r.ready;
    relays.push(r);
    routers.push(r);
  }
  return { cluster, relays };
}

async function on(router: Router, options: PeerOptions = {}): Promise<Peer> {
  const p = await createPeer(
    async () => {
      const [c, s] = memoryTransportPair();
      router.accept(s);
      return c;
    },
    { reconnect: false, ...options },
  );
  peers.push(p);
  return p;
}

describe('a cluster of relays', () => {
  it('carries durable messages, acks and requests between peers on different relays', async () => {
    const { relays } = await cluster(3);
    const alice = await on(relays[0]!, { name: 'alice' });
    const bob = await on(relays[1]!, { name: 'bob' });
    bob.handle<number>('double', (n) => n * 2);
    await expect.poll(() => relays[0]!.inspect().registry.peers).toBe(2);
    const delivered = new Promise((resolve) => alice.once('delivered', resolve));
    const id = await alice.send('bob', { text: 'across' });
    await expect(bob.receive({ timeout: 2000 })).resolves.toMatchObject({ id, from: 'alice', body: { text: 'across' } });
    await delivered;
    await expect(alice.request('bob/double', 21, { timeout: 2000 })).resolves.toBe(42);
    await expect(alice.request('nobody/x', 1, { timeout: 2000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('keeps names unique across the cluster', async () => {
    const { relays } = await cluster(2);
    await on(relays[0]!, { name: 'alice' });
    await expect(on(relays[1]!, { name: 'alice' })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
  });

  it('load-balances a group request over members on every relay', async () => {
    const { relays } = await cluster(3);
    const answered: string[] = [];
    for (let i = 0; i < 3; i++) {
      const w = await on(relays[i]!, { name: `w${i}` });
      w.handle('work', () => answered.push(`w${i}`));
      await w.join('workers');
    }
    const client = await on(relays[0]!, { name: 'client' });
    await expect.poll(() => relays[0]!.inspect().registry.peers).toBe(4);
    for (let i = 0; i < 9; i++) await client.request('workers/work', i, { timeout: 2000 });
    expect(new Set(answered)).toEqual(new Set(['w0', 'w1', 'w2']));
  });

  it('publishes to subscribers on every relay, crossing to each relay once', async () => {
    const { relays } = await cluster(3);
    const got: string[] = [];
    for (let i = 1; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const s = await on(relays[i]!, { name: `s${i}${j}` });
        await s.subscribe('news.*', () => got.push(`s${i}${j}`)).ready;
      }
    }
    const pub = await on(relays[0]!, { name: 'pub' });
    await expect.poll(() => relays[0]!.inspect().cluster?.subscribedRelays).toBe(2);
    const before = relays[0]!.inspect().cluster!.sent;
    pub.publish('news.today', 'hello');
    await expect.poll(() => got.length).toBe(6);
    expect(relays[0]!.inspect().cluster!.sent - before).toBe(2);
  });

  it('broadcasts to group members on every relay and tells watchers on every relay who joins and leaves', async () => {
    const { relays } = await cluster(2);
    const a = await on(relays[0]!, { name: 'a' });
    const events: string[] = [];
    a.on('peer-join', ({ name }) => events.push(`join ${name}`));
    a.on('peer-leave', ({ name }) => events.push(`leave ${name}`));
    await expect.poll(() => a.inspect().registrations.registrations.find((r) => r.key === 'watch')?.confirmed).toBe(true);
    await a.join('room');
    const b = await on(relays[1]!, { name: 'b' });
    await b.join('room');
    await expect.poll(() => events).toContain('join b');
    await expect.poll(async () => (await a.peers()).map((p) => p.name).sort()).toEqual(['a', 'b']);
    a.broadcast('room', { hi: 1 });
    await expect(b.receive({ timeout: 2000 })).resolves.toMatchObject({ from: 'a', body: { hi: 1 } });
    await expect(a.receive({ timeout: 2000 })).resolves.toMatchObject({ from: 'a' });
    await b.close();
    await expect.poll(() => events).toContain('leave b');
  });

  it('carries a tunnel between peers on different relays, in order, within its window', async () => {
    const { relays } = await cluster(2);
    const a = await on(relays[0]!, { name: 'a' });
    const b = await on(relays[1]!, { name: 'b' });
    const received: Uint8Array[] = [];
    b.onTunnel('files', async (t) => {
      for await (const chunk of t.readable) received.push(chunk as Uint8Array);
      await t.close();
    });
    await expect.poll(() => relays[0]!.inspect().registry.peers).toBe(2);
    const t = await a.tunnel('b', 'files');
    const w = t.writable.getWriter();
    const total = 2 * 1024 * 1024;
    for (let i = 0; i < total / 16384; i++) await w.write(new Uint8Array(16384).fill(i % 251));
    await w.close();
    await expect.poll(() => received.reduce((n, c) => n + c.length, 0), { timeout: 10_000 }).toBe(total);
    const all = new Uint8Array(total);
    let at = 0;
    for (const c of received) all.set(c, (at += c.length) - c.length);
    const wrong = all.findIndex((byte, i) => byte !== Math.floor(i / 16384) % 251);
    expect(wrong).toBe(-1);
    await expect.poll(() => relays[0]!.inspect().tunnels + relays[1]!.inspect().tunnels).toBe(0);
  });

  it('ends tunnels whose far end was on a relay that died', async () => {
    const { cluster: c, relays } = await cluster(2);
    const a = await on(relays[0]!, { name: 'a' });
    const b = await on(relays[1]!, { name: 'b' });
    b.onTunnel('x', () => {});
    await expect.poll(() => relays[0]!.inspect().registry.peers).toBe(2);
    const t = await a.tunnel('b', 'x');
    await expect.poll(() => t.state).toBe('open');
    c.kill('relay1');
    await expect.poll(() => t.state).toBe('closed');
    await expect(t.writable.getWriter().write(new Uint8Array(1))).rejects.toMatchObject({ code: 'CLOSED' });
    expect(relays[0]!.inspect().tunnels).toBe(0);
  });

  it('carries direct-link signalling between peers on different relays, so they upgrade to a direct link', async () => {
    const { relays } = await cluster(2);
    const board = new Board();
    const direct = (name: string): PeerOptions => ({ name, direct: 'auto', directConnector: board.connector(name), directOptions: { stallTimeout: 300, retryMin: 50, retryMax: 400, attemptTimeout: 1000 } });
    const alice = await on(relays[0]!, direct('alice'));
    const bob = await on(relays[1]!, direct('bob'));
    bob.handle('ping', () => 'pong');
    await expect.poll(() => relays[0]!.inspect().registry.peers).toBe(2);
    await expect(alice.request('bob/ping', null, { timeout: 2000 })).resolves.toBe('pong');
    await expect.poll(() => [alice.linkTo('bob'), bob.linkTo('alice')]).toEqual(['direct', 'direct']);
    expect(board.pairs.length).toBeGreaterThan(0);
    const crossed = relays[0]!.inspect().cluster!.sent;
    await alice.send('bob', 'direct now');
    await expect(bob.receive({ timeout: 2000 })).resolves.toMatchObject({ body: 'direct now' });
    // The message went over the direct link: nothing more crossed between the relays.
    expect(relays[0]!.inspect().cluster!.sent).toBe(crossed);
  });

  it('frees the names of a relay that dies, and a peer that reconnects elsewhere gets everything sent meanwhile, once, in order', async () => {
    const { cluster: c, relays } = await cluster(2);
    const [r0, r1] = relays as [Router, Router];
    let current = r1;
    const bob = await createPeer(
      async () => {
        const [cl, s] = memoryTransportPair();
        current.accept(s);
        return cl;
      },
      { name: 'bob', reconnect: { initialDelay: 5, maxDelay: 20, maxAttempts: 100 } },
    );
    peers.push(bob);
    const alice = await on(r0, { name: 'alice', ackTimeout: 200 });
    await expect.poll(() => r0.inspect().registry.peers).toBe(2);
    for (let i = 0; i < 50; i++) await alice.send('bob', i);
    // Relay 1 dies: it is no longer heard, and its socket to bob breaks.
    c.kill('relay1');
    current = r0;
    const reconnected = new Promise((resolve) => bob.once('reconnected', resolve));
    await r1.close(10);
    for (let i = 50; i < 100; i++) await alice.send('bob', i);
    await reconnected;
    const got: number[] = [];
    while (got.length < 100) got.push((await bob.receive({ timeout: 5000 })).body as number);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(bob.mailbox().size).toBe(0);
  });
});

describe('bus messages', () => {
  it('round-trip, the data messages in their binary form, and junk decodes to nothing', async () => {
    const { encodeBus, encodeData, decodeBus, BusMsg } = await import('../../src/internal.js');
    const { frame, Kind, BodyCodec } = await import('../../src/codec/frames.js');
    const f = frame(Kind.Msg, { ref: 1, to: 'bob', from: 'alice', origin: 'o', seq: 3, base: 1, sentAt: 5 }, new Uint8Array([1, 2, 3]), BodyCodec.Raw);
    const data = encodeData(BusMsg.Frame, 'ns', '~id', f);
    expect(data[0]).toBe(0xc1);
    const m = decodeBus(data)!;
    expect(m.slice(0, 3)).toEqual([BusMsg.Frame, 'ns', '~id']);
    expect(decodeBus(encodeBus([BusMsg.Join, 'ns', 'g', '~id']))).toEqual([BusMsg.Join, 'ns', 'g', '~id']);
    const rng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const r = rng(3);
    for (let i = 0; i < 2000; i++) {
      const junk = Uint8Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256));
      if (r() < 0.3) junk[0] = 0xc1;
      expect(() => decodeBus(junk)).not.toThrow();
    }
  });
});
