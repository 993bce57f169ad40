/**
 * The IndexedDB outbox store (`IdbStore`) in Chromium: the OutboxStore semantics of core's
 * MemoryStore and Node's FileStore (stable origin, entries in send order, seqs never reused,
 * dedup bounded, reopen after close), its bad input, and the one-tab-per-outbox Web Lock.
 */
import { expect, test, type PageError } from './fixtures.js';

test.describe('IdbStore', () => {
  test('open - a new outbox gets a random origin that a reopen keeps; another name gets another', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      const { IdbStore } = window.missive;
      const a = new IdbStore('alice');
      const first = await a.open();
      await a.close();
      const again = await a.open();
      await a.close();
      const reopened = await new IdbStore('alice').open();
      const other = new IdbStore('bob');
      const b = await other.open();
      await other.close();
      return { first: first.origin, again: again.origin, reopened: reopened.origin, bob: b.origin, empty: first.entries.length + first.seqs.size + first.dedup.size };
    });
    expect(r.first).toMatch(/^[0-9a-z]{2,14}$/);
    expect(r.again).toBe(r.first);
    expect(r.reopened).toBe(r.first);
    expect(r.bob).not.toBe(r.first);
    expect(r.empty).toBe(0);
  });

  test('append, ack and setDedup - survive close and reopen, entries in send order without the acked ones', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      const store = new window.missive.IdbStore('writer');
      const { origin } = await store.open();
      const entry = (seq: number, dest: string) => ({ id: `${origin}:${seq}:${dest}`, to: `${dest}/inbox`, dest, seq, sentAt: 1000 + seq, body: new Uint8Array([seq, 1, 2]), flags: 1 });
      // Interleaved destinations, some appended in one tick and some in later ones.
      await Promise.all([1, 2, 3].map((s) => store.append(entry(s, 'bob'))));
      await store.append(entry(1, 'carol'));
      await store.append(entry(4, 'bob'));
      await store.append(entry(2, 'carol'));
      await Promise.all([store.ack(`${origin}:2:bob`), store.ack(`${origin}:1:carol`), store.ack('no-such-id')]);
      await store.setDedup(`x\u0000writer`, 7);
      await store.setDedup(`y\u0000writer`, 3);
      await store.setDedup(`x\u0000writer`, 9);
      await store.close();
      const s = await store.open();
      await store.close();
      return {
        origin,
        ids: s.entries.map((e) => e.id),
        first: s.entries[0] && { ...s.entries[0], body: [...s.entries[0].body] },
        seqs: [...s.seqs],
        dedup: [...s.dedup],
      };
    });
    const o = r.origin;
    expect(r.ids).toEqual([`${o}:1:bob`, `${o}:3:bob`, `${o}:4:bob`, `${o}:2:carol`]);
    expect(r.first).toEqual({ id: `${o}:1:bob`, to: 'bob/inbox', dest: 'bob', seq: 1, sentAt: 1001, body: [1, 1, 2], flags: 1 });
    expect(r.seqs).toEqual(expect.arrayContaining([['bob', 4], ['carol', 2]]));
    expect(r.seqs).toHaveLength(2);
    // Least recently updated first: y (3) was updated after x's first mark, x again last.
    expect(r.dedup).toEqual([[`y\u0000writer`, 3], [`x\u0000writer`, 9]]);
  });

  test('seqs - survive acks of every entry, so sequence numbers are never reused', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      const store = new window.missive.IdbStore('seqs');
      const { origin } = await store.open();
      for (let seq = 1; seq <= 5; seq++) {
        const id = `${origin}:${seq}:bob`;
        await store.append({ id, to: 'bob', dest: 'bob', seq, sentAt: 0, body: new Uint8Array(0), flags: 0 });
        await store.ack(id);
      }
      await store.close();
      const s = await store.open();
      await store.close();
      return { entries: s.entries.length, seqs: [...s.seqs] };
    });
    expect(r).toEqual({ entries: 0, seqs: [['bob', 5]] });
  });

  test('append - keeps only the bytes of a body that is a view into a larger buffer', async ({ openApp }) => {
    const page = await openApp();
    const body = await page.evaluate(async () => {
      const store = new window.missive.IdbStore('views');
      const { origin } = await store.open();
      const big = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
      await store.append({ id: `${origin}:1:bob`, to: 'bob', dest: 'bob', seq: 1, sentAt: 0, body: big.subarray(10, 14), flags: 0 });
      await store.close();
      const s = await store.open();
      await store.close();
      const b = s.entries[0]!.body;
      return { bytes: [...b], bufferBytes: b.buffer.byteLength };
    });
    expect(body).toEqual({ bytes: [10, 11, 12, 13], bufferBytes: 4 });
  });

  test('dedup - keeps at most 10,000 streams, forgetting the least recently updated, also across a reopen', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      const store = new window.missive.IdbStore('dedup');
      await store.open();
      const marks: Promise<void>[] = [];
      for (let i = 0; i < 10_000; i++) marks.push(store.setDedup(`o${i}\u0000dedup`, i + 1));
      await Promise.all(marks);
      // Touch the oldest stream, then add 50 more: o1..o50 go, o0 (touched) stays.
      await store.setDedup(`o0\u0000dedup`, 99);
      const more: Promise<void>[] = [];
      for (let i = 10_000; i < 10_050; i++) more.push(store.setDedup(`o${i}\u0000dedup`, 1));
      await Promise.all(more);
      const open = await store.open();
      const stats = store.stats();
      await store.close();
      const s = await store.open();
      await store.close();
      const keys = [...s.dedup.keys()];
      return {
        whileOpen: open.dedup.size,
        statsStreams: stats.dedupStreams,
        size: s.dedup.size,
        has0: s.dedup.get(`o0\u0000dedup`),
        has1: s.dedup.has(`o1\u0000dedup`),
        has50: s.dedup.has(`o50\u0000dedup`),
        has51: s.dedup.has(`o51\u0000dedup`),
        oldest: keys[0],
        newest: keys[keys.length - 1],
        transactions: stats.transactions,
      };
    });
    expect(r).toMatchObject({ whileOpen: 10_000, statsStreams: 10_000, size: 10_000, has0: 99, has1: false, has50: false, has51: true });
    expect(r.oldest).toBe(`o51\u0000dedup`);
    expect(r.newest).toBe(`o10049\u0000dedup`);
    // Changes made in one tick share a transaction: 10,051 marks took a handful, not thousands.
    expect(r.transactions).toBeLessThan(10);
  });

  test('open - called again while open resolves with the current state; close is idempotent and open reopens', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      const store = new window.missive.IdbStore('again');
      const { origin } = await store.open();
      const pending = store.append({ id: `${origin}:1:bob`, to: 'bob', dest: 'bob', seq: 1, sentAt: 0, body: new Uint8Array([7]), flags: 0 });
      const during = await store.open();
      await pending;
      await Promise.all([store.close(), store.close()]);
      await store.close();
      const after = await store.open();
      await store.close();
      return { during: during.entries.map((e) => e.id), after: after.entries.map((e) => e.id), same: after.origin === origin };
    });
    expect(r.during).toHaveLength(1);
    expect(r.after).toEqual(r.during);
    expect(r.same).toBe(true);
  });

  test('bad input - append, ack and setDedup reject with TypeError and change nothing; CLOSED before open and after close', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      const { IdbStore } = window.missive;
      const err = (p: Promise<unknown>): Promise<string> => p.then(
        () => 'resolved',
        (e: { name: string; code?: string }) => e.code ?? e.name,
      );
      const ctor = (f: () => unknown): string => {
        try {
          f();
          return 'constructed';
        } catch (e) {
          return (e as Error).name;
        }
      };
      const store = new IdbStore('bad');
      const good = { id: 'o:1:bob', to: 'bob', dest: 'bob', seq: 1, sentAt: 0, body: new Uint8Array(1), flags: 0 };
      const before = await err(store.append(good));
      await store.open();
      type Entry = Parameters<typeof store.append>[0];
      const bad = (patch: Record<string, unknown>): Promise<string> => err(store.append({ ...good, ...patch } as unknown as Entry));
      const results = {
        before,
        ctorEmpty: ctor(() => new IdbStore('')),
        ctorDedup: ctor(() => new IdbStore('x', { maxDedupStreams: 0 })),
        notObject: await err(store.append(null as unknown as Entry)),
        noId: await bad({ id: '' }),
        seqZero: await bad({ seq: 0 }),
        seqFraction: await bad({ seq: 1.5 }),
        bodyString: await bad({ body: 'text' }),
        badFlags: await bad({ flags: -1 }),
        badSentAt: await bad({ sentAt: Number.NaN }),
        ackNumber: await err(store.ack(5 as unknown as string)),
        dedupKey: await err(store.setDedup(7 as unknown as string, 1)),
        dedupSeq: await err(store.setDedup('k', -1)),
        entries: (await store.open()).entries.length,
        good: await err(store.append(good)),
      };
      await store.close();
      return { ...results, after: await err(store.ack('o:1:bob')), afterDedup: await err(store.setDedup('k', 1)) };
    });
    expect(r).toEqual({
      before: 'CLOSED',
      ctorEmpty: 'TypeError',
      ctorDedup: 'TypeError',
      notObject: 'TypeError',
      noId: 'TypeError',
      seqZero: 'TypeError',
      seqFraction: 'TypeError',
      bodyString: 'TypeError',
      badFlags: 'TypeError',
      badSentAt: 'TypeError',
      ackNumber: 'TypeError',
      dedupKey: 'TypeError',
      dedupSeq: 'TypeError',
      entries: 0,
      good: 'resolved',
      after: 'CLOSED',
      afterDedup: 'CLOSED',
    });
  });

  test('open - refuses a database that is not a missive outbox with PROTOCOL and leaves it untouched', async ({ openApp }) => {
    const page = await openApp();
    const r = await page.evaluate(async () => {
      // A database of the outbox's name written by something else.
      const name = 'missive/default/stranger';
      await new Promise<void>((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onupgradeneeded = () => req.result.createObjectStore('outbox').put('hello', 'greeting');
        req.onsuccess = () => {
          req.result.close();
          resolve();
        };
        req.onerror = () => reject(req.error);
      });
      const store = new window.missive.IdbStore('stranger');
      const e = await store.open().then(
        () => undefined,
        (err: { name: string; code?: string; message: string }) => ({ name: err.name, code: err.code, message: err.message }),
      );
      // Refused, the outbox is not held: a second attempt is refused the same way, not NAME_TAKEN.
      const again = await store.open().then(
        () => 'opened',
        (err: { code?: string }) => err.code,
      );
      const kept = await new Promise<unknown>((resolve, reject) => {
        const req = indexedDB.open(name);
        req.onsuccess = () => {
          const get = req.result.transaction('outbox').objectStore('outbox').get('greeting');
          get.onsuccess = () => {
            req.result.close();
            resolve(get.result);
          };
        };
        req.onerror = () => reject(req.error);
      });
      return { e, again, kept };
    });
    expect(r.e).toMatchObject({ code: 'PROTOCOL' });
    expect(r.e!.message).toContain('not a missive outbox');
    expect(r.again).toBe('PROTOCOL');
    expect(r.kept).toBe('hello');
  });

  test('two tabs - a second page opening the same outbox gets NAME_TAKEN (connect too) until the first closes it', async ({ openApp, relay }) => {
    let upgrades = 0;
    relay.server.on('upgrade', () => upgrades++);
    const first = await openApp();
    const second = await openApp();
    await first.evaluate(async (url) => {
      window.peers.me = await window.missive.connect(url, { name: 'shared' });
    }, relay.url);

    const refused = await second.evaluate(async (url) => {
      const asError = (e: { name: string; code?: string; message: string }): PageError => ({ name: e.name, code: e.code, message: e.message });
      const { IdbStore, connect } = window.missive;
      const store = await new IdbStore('shared').open().then(() => undefined, asError);
      const peer = await connect(url, { name: 'shared' }).then(() => undefined, asError);
      // Other names, the same name in another namespace, and a memory outbox are not affected.
      const other = await connect(url, { name: 'other' });
      await other.close();
      const ns = new IdbStore('shared', { namespace: 'elsewhere' });
      await ns.open();
      await ns.close();
      return { store, peer };
    }, relay.url);
    expect(refused.store).toMatchObject({ code: 'NAME_TAKEN' });
    expect(refused.store!.message).toContain('open in another tab');
    expect(refused.peer).toMatchObject({ code: 'NAME_TAKEN' });
    expect(refused.peer!.message).toContain('open in another tab');
    // Refused by the lock, before the relay was asked: only the first tab and "other" opened sockets.
    expect(upgrades).toBe(2);

    await first.evaluate(async () => window.peers.me!.close());
    const name = await second.evaluate(async (url) => {
      const peer = await window.missive.connect(url, { name: 'shared' });
      await peer.close();
      return peer.name;
    }, relay.url);
    expect(name).toBe('shared');
  });
});
