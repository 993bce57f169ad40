import { encodeBatch, frame, Kind, PROTOCOL_VERSION } from '@missive/core/internal';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, createRelay, type Peer, type Relay } from '../src/index.js';

let relay: Relay | undefined;
const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await relay?.close();
  relay = undefined;
});
async function peer(name: string, opts: Parameters<typeof connect>[1] = {}): Promise<Peer> {
  const p = await connect(relay!.url, { name, ...opts });
  peers.push(p);
  return p;
}

describe('relay over ws', () => {
  it('picks a free port and reports its url', async () => {
    relay = await createRelay({ port: 0 });
    expect(relay.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/$/);
    expect(relay.port).toBeGreaterThan(0);
  });

  it('carries send, request and publish between two Node peers', async () => {
    relay = await createRelay({ port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    bob.handle<{ a: number; b: number }>('add', ({ a, b }) => a + b);
    const id = await alice.send('bob', { text: 'hi' });
    await expect(bob.receive({ timeout: 2000 })).resolves.toMatchObject({ id, from: 'alice', body: { text: 'hi' } });
    await expect(alice.request('bob/add', { a: 2, b: 3 }, { timeout: 2000 })).resolves.toBe(5);
    const got: unknown[] = [];
    const sub = bob.subscribe('room.*', (body) => got.push(body));
    await sub.ready;
    alice.publish('room.lobby', { text: 'yo' });
    await expect.poll(() => got).toEqual([{ text: 'yo' }]);
  });

  it('answers /healthz', async () => {
    relay = await createRelay({ port: 0 });
    const res = await fetch(`http://127.0.0.1:${relay.port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });

  it('rejects connect to an unreachable relay with CLOSED carrying the cause', async () => {
    relay = await createRelay({ port: 0 });
    const url = relay.url;
    await relay.close();
    relay = undefined;
    const err = await connect(url, { name: 'x' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CLOSED' });
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it('rejects a second claim of a name with NAME_TAKEN', async () => {
    relay = await createRelay({ port: 0 });
    await peer('alice');
    await expect(connect(relay.url, { name: 'alice' })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
  });

  it('tells connected peers it is going away when it closes', async () => {
    relay = await createRelay({ port: 0 });
    const alice = await peer('alice', { reconnect: false });
    const closed = new Promise<{ code: number; reason: string }>((resolve) => alice.on('close', resolve));
    const pending = alice.request('alice/never', undefined, { timeout: 10_000 }).catch((e: unknown) => e);
    alice.handle('never', () => new Promise(() => {}));
    await relay.close();
    relay = undefined;
    expect((await closed).code).toBe(1001);
    expect(await pending).toMatchObject({ code: 'CLOSED' });
  });
});

describe('relay heartbeats', () => {
  it('detects a dead peer by its missed heartbeat and publishes peer-leave', async () => {
    relay = await createRelay({ port: 0, heartbeatInterval: 100 });
    const watcher = await peer('watcher');
    const left = new Promise<{ name: string }>((resolve) => watcher.on('peer-leave', resolve));
    await watcher.peers(); // the WATCH for presence is in place once the relay answered this
    // A client that completes the handshake, then never answers a ping, as a dead host would.
    const ghost = new WebSocket(relay.url, { autoPong: false });
    await once(ghost, 'open');
    ghost.send(encodeBatch([frame(Kind.Hello, { version: PROTOCOL_VERSION, name: 'ghost', namespace: '', secret: '', token: '', session: '' })]));
    await once(ghost, 'message');
    const closed = once(ghost, 'close');
    await expect(left).resolves.toMatchObject({ name: 'ghost' });
    await closed;
  });

  it('keeps a peer that answers its pings', async () => {
    relay = await createRelay({ port: 0, heartbeatInterval: 50 });
    const alice = await peer('alice', { reconnect: false });
    let closed = false;
    alice.on('close', () => (closed = true));
    await new Promise((r) => setTimeout(r, 400));
    expect(closed).toBe(false);
    expect(relay.router.connectionCount).toBe(1);
  });

  it("answers a client's pings with pongs carrying the same data", async () => {
    relay = await createRelay({ port: 0 });
    const ws = new WebSocket(relay.url);
    await once(ws, 'open');
    const pong = once(ws, 'pong');
    ws.ping(Buffer.from('are you there'));
    const [data] = (await pong) as [Buffer];
    expect(data.toString()).toBe('are you there');
    ws.terminate();
  });

  it('closes with sockets still open: each is cut, and close() resolves', async () => {
    relay = await createRelay({ port: 0 });
    // One socket that never says HELLO, one that completed its handshake and ignores BYE.
    const idle = new WebSocket(relay.url);
    await once(idle, 'open');
    const open = new WebSocket(relay.url);
    await once(open, 'open');
    open.send(encodeBatch([frame(Kind.Hello, { version: PROTOCOL_VERSION, name: 'stubborn', namespace: '', secret: '', token: '', session: '' })]));
    await once(open, 'message');
    const closes = [once(idle, 'close'), once(open, 'close')];
    await relay.close(100);
    relay = undefined;
    await Promise.all(closes);
  });
});
