import { ADMIN_NAMESPACE, TRACE_TOPIC, type ClosedPeer, type PeerRow, type PeerSnapshot, type TraceEvent } from '@missive/core';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, createRelay, type Peer, type Relay } from '../src/index.js';

const ADMIN = 'admin-secret-token';
const READ = 'read-only-token';

let relay: Relay | undefined;
const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await relay?.close();
  relay = undefined;
});

async function peer(name: string | undefined, opts: Parameters<typeof connect>[1] = {}): Promise<Peer> {
  const p = await connect(relay!.url, { ...(name === undefined ? {} : { name }), ...opts });
  peers.push(p);
  return p;
}
const admin = (token = ADMIN): Promise<Peer> => peer(undefined, { namespace: ADMIN_NAMESPACE, token });

interface PeersAnswer {
  peers: PeerRow[];
  total: number;
  closed: ClosedPeer[];
}
interface PeerAnswer {
  connection: PeerRow;
  snapshot?: PeerSnapshot & { bodies: boolean; inbox: { mailboxes: { port: string; depth: number; messages: { id: string; body?: unknown; hidden?: boolean }[] }[] } };
  error?: string;
}

describe('the relay admin channel', () => {
  it('refuses an admin session with a wrong or missing token, with a clear message, and counts it', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    await expect(admin('wrong')).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('not the admin token') });
    await expect(admin('')).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('admin token is required') });
    expect(relay.router.metrics().adminRefused).toBe(2);
    const res = await fetch(`http://127.0.0.1:${relay.port}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(await res.text()).toContain('missive_admin_refused_total 2');
  });

  it('refuses admin sessions on a relay without an admin token', async () => {
    relay = await createRelay({ port: 0 });
    await expect(admin('anything')).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('no admin channel') });
  });

  it('lists peers with their mailbox depth, and shows an inspectable peer’s mailbox messages', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const alice = await peer('alice', { inspect: true });
    alice.mailbox();
    const bob = await peer('bob');
    await bob.send('alice', { text: 'first' });
    await bob.send('alice', { text: 'second' });
    await expect.poll(() => alice.mailbox().size).toBe(2);
    const dev = await admin();

    const list = await dev.request<PeersAnswer>('$relay/peers', {});
    const a = list.peers.find((p) => p.name === 'alice')!;
    const b = list.peers.find((p) => p.name === 'bob')!;
    expect(a).toMatchObject({ namespace: 'default', inspectable: true, mailbox: 2, outbox: 0 });
    expect(a.rtt).toBeGreaterThan(0);
    expect(a.bytesIn).toBeGreaterThan(0);
    expect(b).toMatchObject({ inspectable: false });
    expect(b.mailbox).toBeUndefined();

    const detail = await dev.request<PeerAnswer>('$relay/peer', { id: a.id });
    expect(detail.snapshot?.bodies).toBe(true);
    const inbox = detail.snapshot!.inbox.mailboxes.find((m) => m.port === 'inbox')!;
    expect(inbox.depth).toBe(2);
    expect(inbox.messages.map((m) => m.body)).toEqual([{ text: 'first' }, { text: 'second' }]);
    // Peeking takes nothing.
    expect(alice.mailbox().size).toBe(2);

    const other = await dev.request<PeerAnswer>('$relay/peer', { id: b.id });
    expect(other.snapshot).toBeUndefined();
    expect(other.error).toMatch(/did not opt in/);
    expect(other.connection.name).toBe('bob');
  });

  it('shows handler latency percentiles, subscriptions, groups and topic rates', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const dev = await admin();
    const alice = await peer('alice', { inspect: true });
    alice.handle<number>('double', (n) => n * 2);
    await alice.join('workers');
    await alice.subscribe('room.*', () => {}).ready;
    const bob = await peer('bob');
    for (let i = 0; i < 10; i++) await bob.request('alice/double', i);
    await bob.request('workers/double', 1);
    bob.publish('room.lobby', 'x');
    bob.publish('room.lobby', 'y');
    const list = await dev.request<PeersAnswer>('$relay/peers', {});
    const id = list.peers.find((p) => p.name === 'alice')!.id;
    const detail = await dev.request<PeerAnswer>('$relay/peer', { id });
    const h = detail.snapshot!.requests.handlers.find((x) => x.port === 'double')!;
    expect(h.calls).toBe(11);
    expect(h.p50).toBeGreaterThanOrEqual(0);
    expect(h.p99).toBeGreaterThanOrEqual(h.p50!);
    await expect.poll(async () => (await dev.request<{ rates: { key: string; count: number }[] }>('$relay/topics', {})).rates.find((r) => r.key === 'topic:room.lobby')?.count).toBe(2);
    const topics = await dev.request<{ topics: { pattern: string; subscribers: string[] }[]; groups: { name: string; members: string[] }[]; rates: { key: string; count: number }[] }>('$relay/topics', {});
    expect(topics.topics).toContainEqual(expect.objectContaining({ pattern: 'room.*', subscribers: ['alice'] }));
    expect(topics.groups).toContainEqual(expect.objectContaining({ name: 'workers', members: ['alice'] }));
    expect(topics.rates).toContainEqual(expect.objectContaining({ key: 'group:workers', count: 1 }));
  });

  it('streams filtered trace events to a subscribed admin session, in batches', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const dev = await admin();
    const events: TraceEvent[] = [];
    await dev.subscribe(TRACE_TOPIC, (b) => events.push(...(b as { events: TraceEvent[] }).events)).ready;
    await dev.request('$relay/trace', { kinds: ['Msg'] });
    const alice = await peer('alice');
    alice.mailbox();
    const bob = await peer('bob');
    bob.publish('nobody.listens', 1);
    await bob.send('alice', { text: 'traced' });
    await expect.poll(() => events.some((e) => e.type === 'forward' && e.kind === 'Msg' && e.from === 'bob' && e.to === 'alice')).toBe(true);
    expect(events.every((e) => e.kind === 'Msg')).toBe(true);
  });

  it('rate-limits the trace: a flood yields at most the rate, and says it was cut', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const dev = await admin();
    const batches: { events: TraceEvent[]; dropped: number; saturated: boolean }[] = [];
    await dev.subscribe(TRACE_TOPIC, (b) => batches.push(b as { events: TraceEvent[]; dropped: number; saturated: boolean })).ready;
    await dev.request('$relay/trace', { rate: 50 });
    const alice = await peer('alice');
    await alice.subscribe('flood', () => {}).ready;
    const bob = await peer('bob');
    for (let i = 0; i < 2000; i++) bob.publish('flood', i);
    await expect.poll(() => batches.some((b) => b.saturated)).toBe(true);
    // 50 a second in 100 ms windows: at most 5 events per batch.
    expect(Math.max(...batches.map((b) => b.events.length))).toBeLessThanOrEqual(5);
  });

  it('refuses admin operations to peers without admin rights, and control ports to everyone but the relay', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const alice = await peer('alice', { inspect: true });
    const mallory = await peer('mallory');
    await expect(mallory.request('$relay/peers', {})).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('admin session') });
    await expect(mallory.request('alice/$inspect', { peek: 10 })).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('control port') });
    await expect(mallory.request('alice/$purge', { mailbox: 'inbox' })).rejects.toMatchObject({ code: 'AUTH' });
    expect(() => alice.handle('$inspect', () => 1)).toThrow(/control ports/);
    await expect(mallory.subscribe(TRACE_TOPIC, () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    await expect(peer('$relay')).rejects.toThrow(/reserved for the relay/);
    await expect(peer('x', { namespace: '$other' })).rejects.toMatchObject({ code: 'PROTOCOL' });
  });

  it('lets a read-only token look but not act, and hides bodies from it', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN, adminReadToken: READ });
    const alice = await peer('alice', { inspect: true });
    alice.mailbox();
    const bob = await peer('bob');
    await bob.send('alice', { secret: 'do not show' });
    await expect.poll(() => alice.mailbox().size).toBe(1);
    const ro = await admin(READ);
    const overview = await ro.request<{ rights: { write: boolean; bodies: boolean } }>('$relay/overview', {});
    expect(overview.rights).toEqual({ write: false, bodies: false });
    const id = (await ro.request<PeersAnswer>('$relay/peers', {})).peers.find((p) => p.name === 'alice')!.id;
    const detail = await ro.request<PeerAnswer>('$relay/peer', { id });
    expect(detail.snapshot!.bodies).toBe(false);
    expect(JSON.stringify(detail)).not.toContain('do not show');
    await expect(ro.request('$relay/purge', { id, mailbox: 'inbox' })).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('read-only') });
    await expect(ro.request('$relay/disconnect', { id })).rejects.toMatchObject({ code: 'AUTH' });
    expect(alice.mailbox().size).toBe(1);
  });

  it('never sends bodies from a peer that opted in without them', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const alice = await peer('alice', { inspect: { bodies: false } });
    alice.mailbox();
    const bob = await peer('bob');
    await bob.send('alice', { card: '4111' });
    await expect.poll(() => alice.mailbox().size).toBe(1);
    const dev = await admin();
    const id = (await dev.request<PeersAnswer>('$relay/peers', {})).peers.find((p) => p.name === 'alice')!.id;
    const detail = await dev.request<PeerAnswer>('$relay/peer', { id });
    expect(detail.snapshot!.inbox.mailboxes[0]!.messages).toEqual([expect.objectContaining({ hidden: true })]);
    expect(JSON.stringify(detail)).not.toContain('4111');
  });

  it('purges a mailbox and disconnects a peer, which then shows in the closed list with its reason', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const alice = await peer('alice', { inspect: true });
    alice.mailbox();
    const bob = await peer('bob');
    for (let i = 0; i < 3; i++) await bob.send('alice', i);
    await expect.poll(() => alice.mailbox().size).toBe(3);
    const dev = await admin();
    const id = (await dev.request<PeersAnswer>('$relay/peers', {})).peers.find((p) => p.name === 'alice')!.id;
    await expect(dev.request('$relay/purge', { id, mailbox: 'inbox' })).resolves.toEqual({ purged: 3 });
    expect(alice.mailbox().size).toBe(0);
    await expect(dev.request('$relay/purge', { id, mailbox: 'nope' })).rejects.toMatchObject({ code: 'NO_ROUTE' });

    const closed = new Promise<unknown>((resolve) => alice.once('close', resolve));
    await expect(dev.request('$relay/disconnect', { id, reason: 'spamming' })).resolves.toEqual({ ok: true });
    await closed;
    const after = await dev.request<PeersAnswer>('$relay/peers', {});
    expect(after.peers.some((p) => p.name === 'alice')).toBe(false);
    expect(after.closed[0]).toMatchObject({ id, name: 'alice', code: 4007, reason: expect.stringContaining('spamming') });
    await expect(dev.request('$relay/peer', { id })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('answers malformed admin requests with clear errors and keeps the session', async () => {
    relay = await createRelay({ port: 0, adminToken: ADMIN });
    const dev = await admin();
    await expect(dev.request('$relay/nope', {})).rejects.toMatchObject({ code: 'NO_ROUTE', message: expect.stringContaining('no admin operation') });
    await expect(dev.request('$relay/peer', { id: 42 })).rejects.toMatchObject({ code: 'PROTOCOL' });
    await expect(dev.request('$relay/peer', [1, 2])).rejects.toMatchObject({ code: 'PROTOCOL' });
    await expect(dev.request('$relay/trace', { rate: 5 })).rejects.toMatchObject({ message: expect.stringContaining('subscribe') });
    const junk = [null, 0, 'x', true, { id: {} }, { id: '' }, { kinds: 'Msg' }, new Uint8Array([0xc1, 0xff])];
    for (const op of ['peer', 'purge', 'disconnect', 'trace', 'topics', 'overview', 'peers']) {
      for (const body of junk) await dev.request(`$relay/${op}`, body).catch(() => undefined);
    }
    // Random values of random shapes, to every operation: each gets an answer, none kills the session.
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const value = (depth: number): unknown => {
      switch (rand(depth > 2 ? 5 : 7)) {
        case 0: return rand(1000) - 500;
        case 1: return ['', 'id', '~x', '$relay', 'inbox', 'a'.repeat(rand(300))][rand(6)];
        case 2: return rand(2) === 0;
        case 3: return null;
        case 4: return new Uint8Array(rand(64)).map(() => rand(256));
        case 5: return Array.from({ length: rand(4) }, () => value(depth + 1));
        default: return Object.fromEntries(['id', 'mailbox', 'reason', 'peer', 'kinds', 'rate', 'x'].filter(() => rand(2) === 0).map((k) => [k, value(depth + 1)]));
      }
    };
    const ops = ['peer', 'purge', 'disconnect', 'trace', 'topics', 'overview', 'peers', 'nope'];
    const outcomes = await Promise.all(
      Array.from({ length: 300 }, () => dev.request(`$relay/${ops[rand(ops.length)]}`, value(0), { timeout: 5000 }).then(() => 'ok', (e: { code?: string }) => e.code ?? 'no code')),
    );
    expect(outcomes).not.toContain('TIMEOUT');
    expect(outcomes).not.toContain('no code');
    await expect(dev.request('$relay/overview', {})).resolves.toMatchObject({ connections: 1 });
  });

  it('serves a built app under its prefix, with index.html for client routes, and nothing outside it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'missive-static-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>app</title>');
    writeFileSync(join(dir, 'app.js'), 'console.log(1)');
    relay = await createRelay({ port: 0, serve: { '/devtools/': dir } });
    const base = `http://127.0.0.1:${relay.port}`;
    const index = await fetch(`${base}/devtools/`);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(await index.text()).toContain('<title>app</title>');
    expect((await fetch(`${base}/devtools/app.js`)).headers.get('content-type')).toContain('javascript');
    expect(await (await fetch(`${base}/devtools/peers/alice`)).text()).toContain('<title>app</title>');
    expect((await fetch(`${base}/devtools/missing.js`)).status).toBe(404);
    expect((await fetch(`${base}/devtools/..%2f..%2fetc%2fpasswd`)).status).toBe(403);
    expect((await fetch(`${base}/devtools`, { redirect: 'manual' })).headers.get('location')).toBe('/devtools/');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });
});
