import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AckStatus, Kind } from '../src/internal.js';
import { MemoryStore, type OutboxEntry } from '../src/index.js';
import { Net, nextEvent, record } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

describe('send and mailbox', () => {
  it('delivers a message to the named peer\'s inbox with from, to, body and sentAt', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const before = Date.now();
    const id = await alice.send('bob', { text: 'hi', n: [1, 2] });
    const msg = await bob.mailbox().receive({ timeout: 5000 });
    expect(msg).toEqual({ id, from: 'alice', to: 'bob', body: { text: 'hi', n: [1, 2] }, sentAt: msg.sentAt });
    expect(msg.sentAt).toBeGreaterThanOrEqual(before);
    expect(msg.sentAt).toBeLessThanOrEqual(Date.now());
  });

  it('fires delivered exactly once per message id', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push(await alice.send('bob', i));
    expect(new Set(ids).size).toBe(50);
    await expect.poll(() => delivered.length).toBe(50);
    // A later message's ack comes after any stray repeat of the earlier ones.
    const last = await alice.send('bob', 'last', { waitForDelivery: true });
    expect(delivered).toEqual([...ids, last].map((id) => ({ id, to: 'bob' })));
    expect(alice.outboxSize).toBe(0);
    expect(bob.mailbox().size).toBe(51);
  });

  it('delivers to a named port\'s mailbox, separate from the inbox', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const jobs = bob.mailbox<{ job: number }>('jobs');
    await alice.send('bob/jobs', { job: 1 });
    await alice.send('bob', 'for the inbox');
    await expect(jobs.receive({ timeout: 5000 })).resolves.toMatchObject({ to: 'bob/jobs', body: { job: 1 } });
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ to: 'bob', body: 'for the inbox' });
    expect(jobs.size).toBe(0);
  });

  it('reaches an anonymous peer by its id and names an anonymous sender by its id', async () => {
    const anon1 = await net.peer();
    const anon2 = await net.peer();
    expect(anon1.name).toBeUndefined();
    expect(anon1.id).not.toBe(anon2.id);
    const delivered = nextEvent<{ id: string }>((fn) => anon1.on('delivered', fn));
    const id = await anon1.send(anon2.id, 'psst');
    await expect(anon2.receive({ timeout: 5000 })).resolves.toMatchObject({ id, from: anon1.id, body: 'psst' });
    await expect(delivered).resolves.toMatchObject({ id });
  });

  it('keeps per-sender order under 10,000 messages from each of two senders', async () => {
    const alice = await net.peer({ name: 'alice' });
    const carol = await net.peer({ name: 'carol' });
    const bob = await net.peer({ name: 'bob' });
    const N = 10_000;
    const got = { alice: [] as number[], carol: [] as number[] };
    const reading = (async () => {
      for await (const m of bob.mailbox<number>()) {
        got[m.from as 'alice' | 'carol'].push(m.body);
        if (got.alice.length + got.carol.length === 2 * N) return;
      }
    })();
    // Interleaved, and each sender stays within its outbox (default capacity 10,000).
    for (let i = 0; i < N; i++) {
      await Promise.all([alice.send('bob', i), carol.send('bob', i)]);
    }
    await reading;
    const expected = Array.from({ length: N }, (_, i) => i);
    expect(got.alice).toEqual(expected);
    expect(got.carol).toEqual(expected);
    await expect.poll(() => alice.outboxSize + carol.outboxSize).toBe(0);
    expect(bob.mailbox().size).toBe(0);
  });

  it('keeps order when one sender writes more than its send window at once', async () => {
    const alice = await net.peer({ name: 'alice', sendWindow: 16 });
    const bob = await net.peer({ name: 'bob', mailboxCapacity: 2000 });
    await Promise.all(Array.from({ length: 1000 }, (_, i) => alice.send('bob', i)));
    await expect.poll(() => bob.mailbox().size).toBe(1000);
    expect(bob.mailbox<number>().peek(1000).map((m) => m.body)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});

describe('send - at most one copy lands (receiver dedup)', () => {
  it('puts a message in the mailbox once when the network duplicates it', async () => {
    // Every MSG frame alice sends reaches the router twice.
    const alice = await net.peer({ name: 'alice' }, { out: (f) => (f.kind === Kind.Msg ? [f, f] : [f]) });
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await alice.send('bob', i));
    await expect.poll(() => delivered.length).toBe(20);
    const last = await alice.send('bob', 'last', { waitForDelivery: true });
    expect(delivered.map((d) => d.id)).toEqual([...ids, last]);
    const box = bob.mailbox<number | string>();
    expect(box.peek(100).map((m) => m.body)).toEqual([...Array.from({ length: 20 }, (_, i) => i), 'last']);
    expect(box.stats().received).toBe(21);
  });

  it('puts a message in the mailbox once when the sender resends it after losing the ack', async () => {
    const store = new MemoryStore();
    // The first alice never hears bob's acks, so her outbox keeps all three messages.
    const alice1 = await net.peer({ name: 'alice', store }, { in: (f) => (f.kind === Kind.Ack ? [] : [f]) });
    const bob = await net.peer({ name: 'bob' });
    for (const n of [1, 2, 3]) await alice1.send('bob', n);
    for (const n of [1, 2, 3]) await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: n });
    expect(alice1.outboxSize).toBe(3);
    await alice1.close();

    // A restarted alice on the same store resends them; bob acks without delivering again.
    const alice2 = await net.peer({ name: 'alice', store });
    const delivered = record(alice2, 'delivered');
    expect(alice2.outboxSize).toBe(3);
    await expect.poll(() => delivered.length).toBe(3);
    expect(alice2.outboxSize).toBe(0);
    await alice2.send('bob', 4);
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 4 });
    expect(bob.mailbox().stats()).toMatchObject({ depth: 0, received: 4 });
  });
});

describe('send - a full mailbox pushes back on the sender', () => {
  it('tells the sender LIMIT, retries later, and loses nothing and reorders nothing', async () => {
    const statuses: number[] = [];
    const alice = await net.peer({ name: 'alice' }, {
      in: (f) => {
        if (f.kind === Kind.Ack) statuses.push(f.status);
        return [f];
      },
    });
    const bob = await net.peer({ name: 'bob', mailboxCapacity: 5 });
    const delivered = record(alice, 'delivered');
    const undeliverable = record(alice, 'undeliverable');
    for (let i = 0; i < 20; i++) await alice.send('bob', i);

    const box = bob.mailbox<number>();
    await expect.poll(() => box.stats().refused).toBeGreaterThan(0);
    expect(statuses).toContain(AckStatus.Limit);
    expect(box.size).toBe(5);
    expect(delivered.length).toBeLessThan(20);

    const got: number[] = [];
    for (let i = 0; i < 20; i++) got.push((await box.receive({ timeout: 5000 })).body);
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await expect.poll(() => delivered.length).toBe(20);
    expect(undeliverable).toEqual([]);
    expect(alice.outboxSize).toBe(0);
    expect(box.stats()).toMatchObject({ received: 20, highWater: 5 });
    expect(box.size).toBe(0);
  });

  it('hands a message to a waiting receive even when the mailbox is full', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob', mailboxCapacity: 1 });
    await alice.send('bob', 'filler');
    await expect.poll(() => bob.mailbox().size).toBe(1);
    const urgent = bob.mailbox().receive({ match: (m) => m.body === 'urgent', timeout: 5000 });
    await alice.send('bob', 'urgent');
    await expect(urgent).resolves.toMatchObject({ body: 'urgent' });
  });
});

describe('send - acks go to the right message', () => {
  it('does not credit the ack of a peer addressed by its id to a message for another peer', async () => {
    const alice = await net.peer({ name: 'alice' });
    const carol = await net.peer({ name: 'carol', mailboxCapacity: 1 });
    const bob = await net.peer({ name: 'bob' });
    const filler = await net.peer({ name: 'filler' });
    await filler.send('carol', 'filler', { waitForDelivery: true });
    const delivered = record(alice, 'delivered');
    // Both are the first message of their stream, so both carry sequence number 1.
    const toCarol = await alice.send('carol', 'refused at first');
    const toBob = await alice.send(bob.id, 'hi bob');
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ id: toBob });
    await expect.poll(() => delivered.map((d) => d.id)).toEqual([toBob]);
    expect(carol.mailbox().stats().refused).toBeGreaterThan(0);
    // carol makes room: her message arrives after all, and only then counts as delivered.
    await expect(carol.receive()).resolves.toMatchObject({ body: 'filler' });
    await expect(carol.receive({ timeout: 5000 })).resolves.toMatchObject({ id: toCarol, body: 'refused at first' });
    await expect.poll(() => delivered.map((d) => d.id)).toEqual([toBob, toCarol]);
    expect(alice.outboxSize).toBe(0);
  });

  it('does not credit a repeated ack of an anonymous peer to a message for another anonymous peer', async () => {
    // Every ACK alice gets arrives twice; the repeat must not settle anything else.
    const alice = await net.peer({ name: 'alice' }, { in: (f) => (f.kind === Kind.Ack ? [f, f] : [f]) });
    const anon1 = await net.peer({ mailboxCapacity: 1 });
    const anon2 = await net.peer();
    const filler = await net.peer({ name: 'filler' });
    await filler.send(anon1.id, 'filler', { waitForDelivery: true });
    const delivered = record(alice, 'delivered');
    const to1 = await alice.send(anon1.id, 'refused at first');
    const to2 = await alice.send(anon2.id, 'hi');
    await expect.poll(() => delivered.map((d) => d.id)).toEqual([to2]);
    await expect(anon1.receive()).resolves.toMatchObject({ body: 'filler' });
    await expect(anon1.receive({ timeout: 5000 })).resolves.toMatchObject({ id: to1 });
    await expect.poll(() => delivered.map((d) => d.id)).toEqual([to2, to1]);
  });

  it('ignores an ack whose from is not the destination it names, even if a relay let it through', async () => {
    // A relay that does not check acks (an older one) stamps the acking peer's own name: here
    // every ACK alice gets claims to come from mallory. She must not settle anything on it.
    const alice = await net.peer({ name: 'alice' }, { in: (f) => (f.kind === Kind.Ack && f.status === AckStatus.Ok ? [{ ...f, from: 'mallory' }] : [f]) });
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const traces = record(alice, 'trace');
    await alice.send('bob', 'hi');
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'hi' });
    await expect.poll(() => traces.filter((t) => t.type === 'drop' && t.reason === 'NOT_DESTINATION').length).toBeGreaterThan(0);
    expect(delivered).toEqual([]);
    expect(alice.outboxSize).toBe(1);
  });
});

describe('send - undeliverable messages', () => {
  it('reports NO_ROUTE through undeliverable for a mailbox port that was never opened', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const event = nextEvent<{ id: string; to: string; error: Error & { code?: string } }>((fn) => alice.on('undeliverable', fn));
    const id = await alice.send('bob/nowhere', 'lost');
    const e = await event;
    expect(e).toMatchObject({ id, to: 'bob/nowhere' });
    expect(e.error.code).toBe('NO_ROUTE');
    expect(alice.outboxSize).toBe(0);
    // The stream to bob is not stuck behind the refused message.
    const next = await alice.send('bob', 'found', { waitForDelivery: true });
    expect(delivered).toEqual([{ id: next, to: 'bob' }]);
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'found' });
  });

  it('delivers messages sent right behind one to a missing port', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const undeliverable = record(alice, 'undeliverable');
    const [lost, a, b] = await Promise.all([alice.send('bob/nowhere', 0), alice.send('bob', 1), alice.send('bob', 2)]);
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ id: a, body: 1 });
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ id: b, body: 2 });
    await expect.poll(() => undeliverable.map((u) => [u.id, u.error.code])).toEqual([[lost, 'NO_ROUTE']]);
    expect(bob.mailbox().size).toBe(0);
  });

  it('delivers a resent message whose NO_ROUTE answer was lost once the port exists', async () => {
    const store = new MemoryStore();
    // The first alice never hears bob's answers, so the message stays in her outbox.
    const alice1 = await net.peer({ name: 'alice', store }, { in: (f) => (f.kind === Kind.Ack ? [] : [f]) });
    const bob = await net.peer({ name: 'bob' });
    const trace = record(bob, 'trace');
    const id = await alice1.send('bob/later', 'eventually');
    await expect.poll(() => trace.map((e) => [e.type, e.reason])).toEqual([['drop', 'NO_ROUTE']]);
    await alice1.close();
    const later = bob.mailbox('later');
    // Restarted on the same store, alice resends; the port is open now, so it lands.
    const alice2 = await net.peer({ name: 'alice', store });
    const delivered = record(alice2, 'delivered');
    await expect(later.receive({ timeout: 5000 })).resolves.toMatchObject({ id, body: 'eventually' });
    await expect.poll(() => delivered.map((d) => d.id)).toEqual([id]);
  });

  it('reports NO_ROUTE through undeliverable promptly for an unknown peer when the relay does not hold', async () => {
    // With holding off, a send to a name nobody holds is NO_ROUTE at once (see hold.test.ts for holding).
    await net.close();
    net = new Net({ limits: { holdTtl: 0 } });
    const alice = await net.peer({ name: 'alice' });
    const event = nextEvent<{ id: string; to: string; error: Error & { code?: string } }>((fn) => alice.on('undeliverable', fn), 2000);
    const id = await alice.send('nobody', 'hello?');
    const e = await event;
    expect(e).toMatchObject({ id, to: 'nobody', error: { code: 'NO_ROUTE' } });
    expect(alice.outboxSize).toBe(0);
  });

  it('rejects send with waitForDelivery with NO_ROUTE for an unknown peer when the relay does not hold', async () => {
    // With holding off, a send to a name nobody holds is NO_ROUTE at once (see hold.test.ts for holding).
    await net.close();
    net = new Net({ limits: { holdTtl: 0 } });
    const alice = await net.peer({ name: 'alice' });
    await expect(alice.send('nobody', 1, { waitForDelivery: true })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('resolves send with waitForDelivery only after the receiver acked', async () => {
    const alice = await net.peer({ name: 'alice' });
    await net.peer({ name: 'bob' });
    const delivered = record(alice, 'delivered');
    const id = await alice.send('bob', 1, { waitForDelivery: true });
    expect(delivered).toEqual([{ id, to: 'bob' }]);
  });
});

describe('send - refusals', () => {
  it('rejects with CLOSED after close', async () => {
    const alice = await net.peer({ name: 'alice' });
    await net.peer({ name: 'bob' });
    await alice.close();
    await expect(alice.send('bob', 'too late')).rejects.toMatchObject({ code: 'CLOSED' });
    expect(alice.connected).toBe(false);
  });

  it('rejects with LIMIT when the outbox holds outboxCapacity unacknowledged messages', async () => {
    const alice = await net.peer({ name: 'alice', outboxCapacity: 2 });
    const bob = await net.peer({ name: 'bob' });
    const first = alice.send('bob', 1);
    const second = alice.send('bob', 2);
    await expect(alice.send('bob', 3)).rejects.toMatchObject({ code: 'LIMIT' });
    await Promise.all([first, second]);
    await expect.poll(() => alice.outboxSize).toBe(0);
    // Once acked, there is room again.
    await alice.send('bob', 4, { waitForDelivery: true });
    expect(bob.mailbox().peek().map((m) => m.body)).toEqual([1, 2, 4]);
  });

  it('rejects a bad address or an unencodable body with a TypeError', async () => {
    const alice = await net.peer({ name: 'alice', codec: 'json' });
    await expect(alice.send('', 1)).rejects.toBeInstanceOf(TypeError);
    await expect(alice.send('a b', 1)).rejects.toBeInstanceOf(TypeError);
    await expect(alice.send('bob', 10n)).rejects.toBeInstanceOf(TypeError);
    expect(alice.outboxSize).toBe(0);
  });

  it('rejects with the store\'s error when it cannot keep the message, leaving nothing pending', async () => {
    class FailingStore extends MemoryStore {
      override async append(_entry: OutboxEntry): Promise<void> {
        throw new Error('disk full');
      }
    }
    const alice = await net.peer({ name: 'alice', store: new FailingStore() });
    await expect(alice.send('bob', 1, { waitForDelivery: true })).rejects.toThrow('disk full');
    await expect(alice.send('bob', 2)).rejects.toThrow('disk full');
    expect(alice.outboxSize).toBe(0);
    // Closing must not reject anything left behind by the failed sends (no unhandled rejection).
    await alice.close();
  });
});

describe('mailbox - closing the peer', () => {
  it('rejects a waiting receive with CLOSED when the peer closes', async () => {
    const bob = await net.peer({ name: 'bob' });
    const waiting = expect(bob.receive({ timeout: 10_000 })).rejects.toMatchObject({ code: 'CLOSED' });
    const other = expect(bob.mailbox('jobs').receive()).rejects.toMatchObject({ code: 'CLOSED' });
    await bob.close();
    await waiting;
    await other;
    await expect(bob.mailbox('opened-after-close').receive()).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('rejects a waiting receive with CLOSED when the relay goes away', async () => {
    const bob = await net.peer({ name: 'bob' });
    const waiting = expect(bob.receive({ timeout: 10_000 })).rejects.toMatchObject({ code: 'CLOSED' });
    const closed = nextEvent<{ code: number; error?: Error }>((fn) => bob.on('close', fn));
    await net.router.close(1000);
    await waiting;
    await expect(closed).resolves.toMatchObject({ error: { code: 'CLOSED' } });
  });
});
