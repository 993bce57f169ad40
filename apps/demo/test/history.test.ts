import { afterEach, describe, expect, it } from 'vitest';
import { connect, createRelay, type Peer, type Relay } from '@missive/node';
import { startHistory, type HistoryService } from '../server/history.js';
import type { RecentReply, RoomsReply, StoredMessage } from '../shared/protocol.js';

let relay: Relay | undefined;
const open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((p) => p.close()));
  await relay?.close(2000);
  relay = undefined;
});

async function setup(): Promise<string> {
  relay = await createRelay({ host: '127.0.0.1', port: 0 });
  return relay.url;
}

async function history(url: string, id: string, limit?: number): Promise<HistoryService> {
  const errors: Error[] = [];
  const h = await startHistory({ url, id, ...(limit ? { limit } : {}), onError: (e) => errors.push(e) });
  open.push({ close: async () => { await h.close(); expect(errors).toEqual([]); } });
  return h;
}

async function user(url: string, name: string): Promise<Peer> {
  const p = await connect(url, { name });
  open.push(p);
  return p;
}

/** Publishes `n` messages to `room` and waits until every service holds the last one. */
async function say(p: Peer, room: string, texts: string[], services: HistoryService[]): Promise<void> {
  let last = '';
  for (const text of texts) {
    last = `${p.name}-${Math.random().toString(36).slice(2)}`;
    p.publish(`room.${room}`, { id: last, text, at: Date.now() });
  }
  await expect.poll(() => services.every((s) => s.messages(room).some((m) => m.id === last)), { timeout: 5000 }).toBe(true);
}

describe('history service', () => {
  it('history - two instances share the load of history/recent and both hold every message', async () => {
    const url = await setup();
    const h1 = await history(url, 'history-1');
    const h2 = await history(url, 'history-2');
    const alice = await user(url, 'alice');
    await say(alice, 'lobby', ['one', 'two', 'three'], [h1, h2]);

    const served = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await alice.request<RecentReply>('history/recent', { room: 'lobby' });
      expect(r.messages.map((m: StoredMessage) => [m.from, m.text])).toEqual([['alice', 'one'], ['alice', 'two'], ['alice', 'three']]);
      served.add(r.servedBy);
    }
    expect([...served].sort()).toEqual(['history-1', 'history-2']);
  });

  it('history - keeps the last `limit` messages per room, in order, and `from` is the relay stamp', async () => {
    const url = await setup();
    const h = await history(url, 'h', 5);
    const bob = await user(url, 'bob');
    bob.publish('room.dev', { id: 'x1', text: 'spoofed?', at: 1, from: 'mallory' });
    await say(bob, 'dev', Array.from({ length: 8 }, (_, i) => `m${i}`), [h]);
    const r = await bob.request<RecentReply>('history/recent', { room: 'dev', limit: 100 });
    expect(r.messages.map((m) => m.text)).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
    expect(new Set(r.messages.map((m) => m.from))).toEqual(new Set(['bob']));
    const few = await bob.request<RecentReply>('history/recent', { room: 'dev', limit: 2 });
    expect(few.messages.map((m) => m.text)).toEqual(['m6', 'm7']);
  });

  it('history - ignores malformed bodies and bad room names, and refuses a bad request with a code', async () => {
    const url = await setup();
    const h = await history(url, 'h');
    const carol = await user(url, 'carol');
    carol.publish('room.lobby', 'just a string');
    carol.publish('room.lobby', { id: 'no-text', at: 1 });
    carol.publish('room.Not_Valid', { id: 'bad-room', text: 'x', at: 1 });
    await say(carol, 'lobby', ['fine'], [h]);
    expect(h.messages('lobby').map((m) => m.text)).toEqual(['fine']);
    await expect(carol.request('history/recent', { room: '../etc' })).rejects.toMatchObject({ code: 'REMOTE', remoteCode: 'BAD_ROOM' });
  });

  it('history - rooms lists the default rooms, rooms written in and rooms announced on the rooms topic', async () => {
    const url = await setup();
    const h = await history(url, 'h');
    const dan = await user(url, 'dan');
    dan.publish('rooms', { name: 'book-club' });
    await say(dan, 'games', ['gg'], [h]);
    await expect.poll(async () => (await dan.request<RoomsReply>('history/rooms', {})).rooms).toEqual(['book-club', 'games', 'lobby', 'random']);
  });

  it('history - an instance started later takes a snapshot from a running one', async () => {
    const url = await setup();
    const h1 = await history(url, 'history-1');
    const erin = await user(url, 'erin');
    await say(erin, 'lobby', ['before'], [h1]);
    const h2 = await history(url, 'history-2');
    expect(h2.messages('lobby').map((m) => m.text)).toEqual(['before']);
    await say(erin, 'lobby', ['after'], [h1, h2]);
    expect(h2.messages('lobby').map((m) => m.text)).toEqual(['before', 'after']);
  });

  it('history - survives a relay restart on the same port: it rejoins the group and resubscribes', async () => {
    const url = await setup();
    const port = relay!.port;
    const h = await history(url, 'h');
    const f = await user(url, 'frank');
    await say(f, 'lobby', ['one'], [h]);
    await relay!.close(2000);
    relay = await createRelay({ host: '127.0.0.1', port });
    await expect.poll(() => h.peer.connected, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => f.connected, { timeout: 10_000 }).toBe(true);
    await h.peer.peers(); // a barrier: the re-registrations are confirmed
    await f.peers();
    await say(f, 'lobby', ['two'], [h]);
    const r = await f.request<RecentReply>('history/recent', { room: 'lobby' }, { retry: true });
    expect(r.messages.map((m) => m.text)).toEqual(['one', 'two']);
  });
});
