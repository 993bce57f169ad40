/**
 * The store compliance suite (exported by `@missive/core/testing`): what every `OutboxStore`
 * must do, so MemoryStore, FileStore (Node) and IdbStore (Chromium) are held to one contract.
 * It asserts with plain thrown Errors (no test library), so it runs under vitest and inside a
 * browser page alike.
 */
import type { SuiteApi } from '../testing.js';
import { DEFAULT_DEDUP_STREAMS } from './dedup.js';
import type { OutboxEntry, OutboxState, OutboxStore } from './outbox.js';

/** What the suite may ask of a fixture's store. */
export interface StoreFixtureOptions {
  /** The store's dedup bound; undefined means its default (10,000). */
  maxDedupStreams?: number;
}

/** A store over fresh, empty storage, and how to come back to that storage. */
export interface StoreFixture {
  /** Not yet opened. */
  store: OutboxStore;
  /**
   * Another store object over the same storage, made with the same options: what a restarted
   * process would open. (For storage that lives in the object, such as MemoryStore's, return the
   * same object.) The suite closes the previous one first.
   */
  reopen(): OutboxStore;
  /** Removes the storage; called once every store the case used is closed. */
  cleanup?: () => Promise<void> | void;
}

/** One case's fixtures: every store it opens is closed, and every fixture cleaned up, after it. */
interface Ctx {
  fresh(options?: StoreFixtureOptions): Promise<{ store: OutboxStore; reopen(): OutboxStore }>;
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(`store compliance: ${message}`);
}

/** State in a comparable form: bodies as byte arrays, seqs sorted (their order is not part of the contract). */
function plain(s: OutboxState): unknown {
  return {
    origin: s.origin,
    entries: s.entries.map(plainEntry),
    seqs: byKey(s.seqs),
    // Dedup order is: least recently updated first.
    dedup: [...s.dedup],
  };
}

function byKey(m: Map<string, number>): [string, number][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function plainEntry(e: OutboxEntry): unknown {
  return { id: e.id, to: e.to, dest: e.dest, seq: e.seq, sentAt: e.sentAt, flags: e.flags, body: Array.from(e.body) };
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}:\n  expected ${e}\n  got      ${a}`);
}

/** A deterministic entry: its body's bytes depend on seq and dest, its length on seq. */
function entry(origin: string, dest: string, seq: number): OutboxEntry {
  const body = new Uint8Array(1 + (seq % 7));
  for (let i = 0; i < body.length; i++) body[i] = (seq * 31 + dest.charCodeAt(0) + i) & 0xff;
  return { id: `${origin}:${seq}:${dest}`, to: `${dest}/inbox`, dest, seq, sentAt: 1_700_000_000_000 + seq, body, flags: seq % 2 };
}

/** How a promise settled: 'resolved', or the rejection's `name` and `code`. */
function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (err: unknown) => {
      const e = err as { name?: unknown; code?: unknown } | null;
      return `${String(e?.name)}${typeof e?.code === 'string' ? ` ${e.code}` : ''}`;
    },
  );
}

/**
 * Registers the compliance tests for one OutboxStore. `open` makes a fixture over fresh storage
 * with the options given (a small `maxDedupStreams` for the bound test).
 *
 * ```ts
 * storeCompliance('MemoryStore', { describe, it }, async (o) => {
 *   const store = new MemoryStore(o);
 *   return { store, reopen: () => store };
 * });
 * ```
 */
export function storeCompliance(name: string, api: SuiteApi, open: (options: StoreFixtureOptions) => Promise<StoreFixture>): void {
  const run = (fn: (t: Ctx) => Promise<void>) => async () => {
    const stores = new Set<OutboxStore>();
    const fixtures: StoreFixture[] = [];
    const ctx: Ctx = {
      async fresh(options = {}) {
        const f = await open(options);
        fixtures.push(f);
        stores.add(f.store);
        return {
          store: f.store,
          reopen: () => {
            const s = f.reopen();
            stores.add(s);
            return s;
          },
        };
      },
    };
    try {
      await fn(ctx);
    } finally {
      await Promise.all([...stores].map((s) => s.close().catch(() => {})));
      for (const f of fixtures) await f.cleanup?.();
    }
  };

  /** Closes `store` and opens the storage again through `reopen`: the state a restart sees. */
  const restart = async (store: OutboxStore, reopen: () => OutboxStore): Promise<[OutboxStore, OutboxState]> => {
    await store.close();
    const next = reopen();
    return [next, await next.open()];
  };

  api.describe(`store compliance: ${name}`, () => {
    api.it('open - a new store starts empty with a random origin that a reopen keeps; another store gets another', run(async (t) => {
      const a = await t.fresh();
      const first = await a.store.open();
      same(plain(first), { origin: first.origin, entries: [], seqs: [], dedup: [] }, 'a new store is not empty');
      check(typeof first.origin === 'string' && /^[0-9a-z]{2,}$/.test(first.origin), `origin "${first.origin}" is not a base-36 token`);
      const [, again] = await restart(a.store, a.reopen);
      check(again.origin === first.origin, `origin changed across a reopen: ${first.origin} then ${again.origin}`);
      const b = await t.fresh();
      const other = await b.store.open();
      check(other.origin !== first.origin, `two stores share the origin ${first.origin}`);
    }));

    api.it('append - entries come back whole and in send order, while open and after a reopen', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      const sent = [entry(origin, 'bob', 1), entry(origin, 'carol', 1), entry(origin, 'bob', 2), entry(origin, 'carol', 2), entry(origin, 'bob', 3)];
      for (const e of sent) await store.append(e);
      // A body that is a view into a larger buffer: only its own bytes are the body.
      const big = new Uint8Array(64).map((_, i) => i);
      const view = { ...entry(origin, 'dave', 1), body: big.subarray(10, 14) };
      await store.append(view);
      sent.push({ ...view, body: new Uint8Array([10, 11, 12, 13]) });
      const expected = { origin, entries: sent.map(plainEntry), seqs: [['bob', 3], ['carol', 2], ['dave', 1]], dedup: [] };
      same(plain(await store.open()), expected, 'state while open');
      const [, state] = await restart(store, reopen);
      same(plain(state), expected, 'state after a reopen');
    }));

    api.it('ack - removes exactly that entry; an unknown id changes nothing', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      const sent = [1, 2, 3, 4].map((seq) => entry(origin, 'bob', seq));
      for (const e of sent) await store.append(e);
      await store.ack(sent[1]!.id);
      await store.ack('no-such-id');
      await store.ack(`${origin}:9:bob`);
      await store.ack(sent[1]!.id);
      const ids = (s: OutboxState): string[] => s.entries.map((e) => e.id);
      same(ids(await store.open()), [sent[0]!.id, sent[2]!.id, sent[3]!.id], 'entries after acks, while open');
      await store.ack(sent[0]!.id);
      const [, state] = await restart(store, reopen);
      same(ids(state), [sent[2]!.id, sent[3]!.id], 'entries after acks and a reopen');
    }));

    api.it('append - an entry whose id is already held replaces it in place', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      const [a, b] = [entry(origin, 'bob', 1), entry(origin, 'bob', 2)];
      await store.append(a);
      await store.append(b);
      const a2 = { ...a, sentAt: a.sentAt + 1000, body: new Uint8Array([42]) };
      await store.append(a2);
      const [, state] = await restart(store, reopen);
      same(state.entries.map(plainEntry), [plainEntry(a2), plainEntry(b)], 'entries after re-appending an id');
    }));

    api.it('seqs - survive acks of every entry and a reopen, and never go down, so numbers are never reused', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      for (let seq = 1; seq <= 3; seq++) {
        await store.append(entry(origin, 'bob', seq));
        await store.ack(entry(origin, 'bob', seq).id);
      }
      await store.append(entry(origin, 'carol', 5));
      await store.append(entry(origin, 'carol', 2));
      const [again, state] = await restart(store, reopen);
      same(plain(state), { origin, entries: [entry(origin, 'carol', 5), entry(origin, 'carol', 2)].map(plainEntry), seqs: [['bob', 3], ['carol', 5]], dedup: [] }, 'state after acks and a reopen');
      await again.ack(entry(origin, 'carol', 5).id);
      await again.ack(entry(origin, 'carol', 2).id);
      const [, later] = await restart(again, reopen);
      same(plain(later), { origin, entries: [], seqs: [['bob', 3], ['carol', 5]], dedup: [] }, 'seqs after every entry was acked and another reopen');
    }));

    api.it('setDedup - marks survive a reopen, least recently updated first', run(async (t) => {
      const { store, reopen } = await t.fresh();
      await store.open();
      await store.setDedup('x\u0000me', 7);
      await store.setDedup('y\u0000me', 3);
      await store.setDedup('x\u0000me', 9);
      await store.setDedup('z\u0000me', 0);
      const expected = [['y\u0000me', 3], ['x\u0000me', 9], ['z\u0000me', 0]];
      same([...(await store.open()).dedup], expected, 'dedup while open');
      const [, state] = await restart(store, reopen);
      same([...state.dedup], expected, 'dedup after a reopen');
    }));

    api.it('setDedup - keeps at most maxDedupStreams, forgetting the least recently updated, also across a reopen', run(async (t) => {
      const { store, reopen } = await t.fresh({ maxDedupStreams: 3 });
      await store.open();
      for (const [key, seq] of [['a', 1], ['b', 1], ['c', 1], ['a', 2], ['d', 1]] as const) await store.setDedup(key, seq);
      const expected = [['c', 1], ['a', 2], ['d', 1]];
      same([...(await store.open()).dedup], expected, 'dedup while open (bound 3)');
      const [again, state] = await restart(store, reopen);
      same([...state.dedup], expected, 'dedup after a reopen (bound 3)');
      // The order survived the reopen: the next new stream forgets `c`, then `a`.
      await again.setDedup('e', 1);
      await again.setDedup('f', 1);
      const [, later] = await restart(again, reopen);
      same([...later.dedup], [['d', 1], ['e', 1], ['f', 1]], 'dedup after two more streams and a reopen');
    }));

    api.it(`setDedup - keeps at most ${DEFAULT_DEDUP_STREAMS} streams by default`, run(async (t) => {
      const { store, reopen } = await t.fresh();
      await store.open();
      const marks: Promise<void>[] = [];
      for (let i = 0; i < DEFAULT_DEDUP_STREAMS + 50; i++) marks.push(store.setDedup(`o${i}\u0000me`, i + 1));
      await Promise.all(marks);
      const open = await store.open();
      check(open.dedup.size === DEFAULT_DEDUP_STREAMS, `${open.dedup.size} streams kept while open, not ${DEFAULT_DEDUP_STREAMS}`);
      const [, state] = await restart(store, reopen);
      const keys = [...state.dedup.keys()];
      check(keys.length === DEFAULT_DEDUP_STREAMS, `${keys.length} streams kept after a reopen, not ${DEFAULT_DEDUP_STREAMS}`);
      same([keys[0], keys[keys.length - 1]], ['o50\u0000me', `o${DEFAULT_DEDUP_STREAMS + 49}\u0000me`], 'oldest and newest stream kept');
    }), 60_000);

    api.it('append, ack and setDedup - calls made together keep call order', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      const model = new Map<string, OutboxEntry>();
      const seqs = new Map<string, number>();
      const ops: Promise<void>[] = [];
      let seq = 0;
      // Rounds of calls in one tick, some rounds a tick apart, none awaited before the end.
      for (let round = 0; round < 5; round++) {
        for (let i = 0; i < 40; i++) {
          const e = entry(origin, i % 3 ? 'bob' : 'carol', ++seq);
          model.set(e.id, e);
          seqs.set(e.dest, seq);
          ops.push(store.append(e));
          if (seq % 4 === 1) {
            model.delete(e.id);
            ops.push(store.ack(e.id));
          }
          ops.push(store.setDedup(`r${round % 2}\u0000me`, seq));
        }
        if (round % 2) await Promise.resolve();
      }
      await Promise.all(ops);
      const expected = { origin, entries: [...model.values()].map(plainEntry), seqs: byKey(seqs), dedup: [['r1\u0000me', 160], ['r0\u0000me', 200]] };
      same(plain(await store.open()), expected, 'state while open');
      const [, state] = await restart(store, reopen);
      same(plain(state), expected, 'state after a reopen');
    }));

    api.it('open - called again while open resolves with the current state, including changes not yet awaited', run(async (t) => {
      const { store } = await t.fresh();
      const { origin } = await store.open();
      const e = entry(origin, 'bob', 1);
      const pending = store.append(e);
      const during = await store.open();
      await pending;
      check(during.origin === origin, 'origin changed on a second open()');
      same(during.entries.map(plainEntry), [plainEntry(e)], 'entries from open() while an append was pending');
    }));

    api.it('close - is idempotent, writes what is still queued, and open() afterwards gives back the same state', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      const appends = [1, 2, 3].map((seq) => store.append(entry(origin, 'bob', seq)));
      const mark = store.setDedup('s\u0000me', 4);
      await Promise.all([store.close(), store.close()]);
      await store.close();
      same(await Promise.all([...appends, mark].map(outcome)), ['resolved', 'resolved', 'resolved', 'resolved'], 'changes made before close()');
      const expected = { origin, entries: [1, 2, 3].map((seq) => plainEntry(entry(origin, 'bob', seq))), seqs: [['bob', 3]], dedup: [['s\u0000me', 4]] };
      same(plain(await store.open()), expected, 'the same store object opened again after close()');
      const [, state] = await restart(store, reopen);
      same(plain(state), expected, 'the storage reopened by a new store object');
    }));

    api.it('bad input - rejects with TypeError or RangeError and changes nothing', run(async (t) => {
      const { store, reopen } = await t.fresh();
      const { origin } = await store.open();
      const good = entry(origin, 'bob', 1);
      await store.append(good);
      await store.setDedup('k\u0000me', 2);
      const before = plain(await store.open());
      const bad = (patch: Record<string, unknown>): Promise<void> => store.append({ ...good, ...patch } as unknown as OutboxEntry);
      const calls: [string, () => Promise<void>][] = [
        ['append(null)', () => store.append(null as unknown as OutboxEntry)],
        ['append("entry")', () => store.append('entry' as unknown as OutboxEntry)],
        ['empty id', () => bad({ id: '' })],
        ['numeric id', () => bad({ id: 5 })],
        ['empty to', () => bad({ to: '' })],
        ['empty dest', () => bad({ dest: '' })],
        ['seq 0', () => bad({ seq: 0 })],
        ['negative seq', () => bad({ seq: -1 })],
        ['fractional seq', () => bad({ seq: 1.5 })],
        ['NaN seq', () => bad({ seq: Number.NaN })],
        ['string seq', () => bad({ seq: '2' })],
        ['NaN sentAt', () => bad({ sentAt: Number.NaN })],
        ['string body', () => bad({ body: 'text' })],
        ['array body', () => bad({ body: [1, 2] })],
        ['ArrayBuffer body', () => bad({ body: new ArrayBuffer(2) })],
        ['negative flags', () => bad({ flags: -1 })],
        ['fractional flags', () => bad({ flags: 0.5 })],
        ['flags over u32', () => bad({ flags: 2 ** 32 })],
        ['ack(5)', () => store.ack(5 as unknown as string)],
        ['ack(undefined)', () => store.ack(undefined as unknown as string)],
        ['setDedup(7, 1)', () => store.setDedup(7 as unknown as string, 1)],
        ['setDedup("", 1)', () => store.setDedup('', 1)],
        ['setDedup(k, -1)', () => store.setDedup('k\u0000me', -1)],
        ['setDedup(k, 1.5)', () => store.setDedup('k\u0000me', 1.5)],
        ['setDedup(k, NaN)', () => store.setDedup('k\u0000me', Number.NaN)],
        ['setDedup(k, "3")', () => store.setDedup('k\u0000me', '3' as unknown as number)],
      ];
      for (const [what, call] of calls) {
        let result: string;
        try {
          result = await outcome(call());
        } catch (err) {
          result = `threw synchronously: ${String(err)}`;
        }
        check(result === 'TypeError' || result === 'RangeError', `${what}: ${result}, expected a TypeError or RangeError rejection`);
      }
      same(plain(await store.open()), before, 'state after bad input, while open');
      const [, state] = await restart(store, reopen);
      same(plain(state), before, 'state after bad input and a reopen');
    }));

    api.it('closed - append, ack and setDedup reject with ClosedError before open() and after close()', run(async (t) => {
      const { store } = await t.fresh();
      const e = entry('o', 'bob', 1);
      const calls = (): Promise<string>[] => [store.append(e), store.ack(e.id), store.setDedup('k\u0000me', 1)].map(outcome);
      same(await Promise.all(calls()), ['ClosedError CLOSED', 'ClosedError CLOSED', 'ClosedError CLOSED'], 'before open()');
      await store.open();
      await store.close();
      same(await Promise.all(calls()), ['ClosedError CLOSED', 'ClosedError CLOSED', 'ClosedError CLOSED'], 'after close()');
      same(await outcome(store.close()), 'resolved', 'close() of a closed store');
    }));
  });
}
