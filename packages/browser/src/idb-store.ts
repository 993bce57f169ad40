/**
 * `IdbStore`: a durable `OutboxStore` in IndexedDB (through idb-keyval), so a page that is
 * reloaded or closed resends what was never acked when it connects again, and does not
 * re-deliver what it already received.
 *
 * One IndexedDB database per outbox, named `<database>/<namespace>/<name>` (each part
 * URI-encoded), holding one object store `outbox` with these records:
 *
 *   'meta'             { format: 'missive-outbox', version: 1, origin }
 *   ['e', n]           an unacked entry; n counts up, so key order is send order
 *   ['s', dest]        the last sequence number used towards `dest`
 *   ['d', stream]      [seq, n]: a receiver dedup mark; n orders the marks by last update
 *
 * Two tabs of one origin share IndexedDB, so an outbox is held under a Web Lock of the same
 * name while it is open: a second tab opening it is refused (NameTakenError) instead of
 * sending the same messages twice. Changes made in one tick share one transaction.
 */
import { ClosedError, NameTakenError, ProtocolError, type OutboxEntry, type OutboxState, type OutboxStore } from '@missive/core';
import { DEFAULT_DEDUP_STREAMS, DedupTable, invalidAck, invalidDedup, invalidEntry, randomToken, StoreLifecycle } from '@missive/core/internal';
import { createStore, promisifyRequest, type UseStore } from 'idb-keyval';

/** Options of {@link IdbStore}. */
export interface IdbStoreOptions {
  /** The peer's namespace: peers of one name in two namespaces have separate outboxes. @default 'default' */
  namespace?: string;
  /** First part of the IndexedDB database name (and of the Web Lock's). @default 'missive' */
  database?: string;
  /** Receiver dedup streams kept (the least recently updated is forgotten first). @default 10000 */
  maxDedupStreams?: number;
}

/** A snapshot of an IdbStore, for diagnostics and tests. */
export interface IdbStoreStats {
  /** The IndexedDB database (and Web Lock) name. */
  database: string;
  /** Unacked entries. */
  entries: number;
  /** Receiver dedup streams. */
  dedupStreams: number;
  /** Destinations with a sequence number. */
  destinations: number;
  /** Readwrite transactions committed since this object was created. */
  transactions: number;
}

const FORMAT = 'missive-outbox';
const VERSION = 1;
const OBJECT_STORE = 'outbox';
const META = 'meta';

type Change = (store: IDBObjectStore) => void;

interface Batch {
  changes: Change[];
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * An `OutboxStore` in IndexedDB: `connect(url, { name })` in the browser uses one by default.
 *
 * ```ts
 * const peer = await connect(url, { name: 'alice', store: new IdbStore('alice', { database: 'chat' }) });
 * ```
 *
 * `append`, `ack` and `setDedup` resolve once their IndexedDB transaction has committed: the
 * change survives a reload, a closed tab and a browser crash (the browser's own durability
 * decides what survives a machine crash). `close()` waits for queued changes and releases the
 * outbox for another tab; `open()` after `close()` reads it back.
 */
export class IdbStore implements OutboxStore {
  /** The IndexedDB database (and Web Lock) name. */
  readonly database: string;
  readonly #name: string;

  readonly #life: StoreLifecycle<OutboxState>;
  #idb: UseStore | undefined;
  #db: IDBDatabase | undefined;
  #releaseLock: (() => void) | undefined;

  #origin = '';
  /** Unacked entries by id, in send order, with their record key counter. */
  readonly #entries = new Map<string, { n: number; entry: OutboxEntry }>();
  readonly #seqs = new Map<string, number>();
  /** Dedup marks, least recently updated first (persisted with `#nextDedup` to keep that order). */
  readonly #dedup: DedupTable;
  #nextEntry = 0;
  #nextDedup = 0;

  #batch: Batch | undefined;
  readonly #inflight = new Set<Promise<void>>();
  #transactions = 0;

  /**
   * @param name the peer's name: the outbox belongs to it (with `namespace`).
   */
  constructor(name: string, options: IdbStoreOptions = {}) {
    if (typeof name !== 'string' || name === '') throw new TypeError('IdbStore needs the peer name it keeps the outbox of');
    const namespace = options.namespace ?? 'default';
    const database = options.database ?? 'missive';
    if (typeof namespace !== 'string' || namespace === '') throw new TypeError('namespace must be a non-empty string');
    if (typeof database !== 'string' || database === '') throw new TypeError('database must be a non-empty string');
    const max = options.maxDedupStreams ?? DEFAULT_DEDUP_STREAMS;
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) throw new TypeError('maxDedupStreams must be a positive integer');
    this.#name = name;
    this.#dedup = new DedupTable(max);
    this.database = [database, namespace, name].map(encodeURIComponent).join('/');
    this.#life = new StoreLifecycle('IndexedDB store', {
      open: () => this.#doOpen(),
      close: () => this.#doClose(),
      idle: () => this.#whenIdle(),
      snapshot: () => this.#snapshot(),
    });
  }

  /**
   * Takes the outbox's Web Lock and reads the database (creating it with a new random origin if
   * needed): the origin, unacked entries in send order, the last sequence number per
   * destination and the dedup marks. Rejects with NameTakenError if another tab or window of
   * this origin has the outbox open; with a DOMException `NotSupportedError` where the Web
   * Locks API is missing (an insecure context: serve the page over https or from localhost);
   * with ProtocolError if the database holds something that is not a missive outbox; with
   * IndexedDB's own error otherwise. Called again while open, it resolves with the current
   * state once queued changes are written.
   */
  open(): Promise<OutboxState> {
    return this.#life.open();
  }

  /** Records an unacked entry; an entry with an id already held replaces it in place. */
  append(entry: OutboxEntry): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    const bad = invalidEntry(entry);
    if (bad) return Promise.reject(new TypeError(`append: ${bad}`));
    // Structured clone stores a view's whole buffer: keep only the body's bytes.
    const body = entry.body.byteOffset === 0 && entry.body.byteLength === entry.body.buffer.byteLength ? entry.body : entry.body.slice();
    const record: OutboxEntry = { id: entry.id, to: entry.to, dest: entry.dest, seq: entry.seq, sentAt: entry.sentAt, body, flags: entry.flags };
    const n = this.#entries.get(entry.id)?.n ?? this.#nextEntry++;
    this.#entries.set(entry.id, { n, entry: record });
    const raised = entry.seq > (this.#seqs.get(entry.dest) ?? 0);
    if (raised) this.#seqs.set(entry.dest, entry.seq);
    return this.#change((s) => {
      s.put(record, ['e', n]);
      if (raised) s.put(entry.seq, ['s', entry.dest]);
    });
  }

  /** Removes an entry (acked, or settled as undeliverable); an unknown id changes nothing. */
  ack(id: string): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    const bad = invalidAck(id);
    if (bad) return Promise.reject(new TypeError(bad));
    const held = this.#entries.get(id);
    if (!held) return Promise.resolve();
    this.#entries.delete(id);
    return this.#change((s) => s.delete(['e', held.n]));
  }

  /** Records that receiver stream `key` has accepted every sequence number up to `seq`. */
  setDedup(key: string, seq: number): Promise<void> {
    const closed = this.#unusable();
    if (closed) return Promise.reject(closed);
    const bad = invalidDedup(key, seq);
    if (bad) return Promise.reject(new TypeError(bad));
    const n = this.#nextDedup++;
    const forgotten = this.#dedup.set(key, seq);
    return this.#change((s) => {
      s.put([seq, n], ['d', key]);
      if (forgotten !== undefined) s.delete(['d', forgotten]);
    });
  }

  /**
   * Waits for queued changes, closes the database and releases the outbox for another tab.
   * Idempotent. Changes requested after `close()` reject with CLOSED.
   */
  close(): Promise<void> {
    return this.#life.close();
  }

  /** Counts, for diagnostics and tests. */
  stats(): IdbStoreStats {
    return {
      database: this.database,
      entries: this.#entries.size,
      dedupStreams: this.#dedup.size,
      destinations: this.#seqs.size,
      transactions: this.#transactions,
    };
  }

  // ---- open / close -------------------------------------------------------------------------

  async #doOpen(): Promise<void> {
    this.#releaseLock = await takeLock(this.database, this.#name);
    try {
      const idb = createStore(this.database, OBJECT_STORE);
      this.#idb = idb;
      this.#reset();
      await idb('readwrite', async (s) => {
        this.#db = s.transaction.db;
        // One transaction reads everything and, for a new outbox, writes its meta record.
        const [keys, values] = await Promise.all([promisifyRequest(s.getAllKeys()), promisifyRequest(s.getAll())]);
        try {
          this.#load(keys, values as unknown[], s);
        } catch (err) {
          s.transaction.abort();
          throw err;
        }
        return promisifyRequest(s.transaction);
      });
    } catch (err) {
      this.#db?.close();
      this.#db = undefined;
      this.#idb = undefined;
      this.#reset();
      this.#releaseLock();
      this.#releaseLock = undefined;
      throw err;
    }
  }

  /** Rebuilds the in-memory state from every record; writes the meta record of a new outbox. */
  #load(keys: IDBValidKey[], values: unknown[], s: IDBObjectStore): void {
    const entries: { n: number; entry: OutboxEntry }[] = [];
    const dedup: { key: string; seq: number; n: number }[] = [];
    let meta: unknown;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const value = values[i];
      if (key === META) {
        meta = value;
        continue;
      }
      const bad = (why: string): ProtocolError => new ProtocolError(`IndexedDB database "${this.database}" is not a missive outbox: record ${JSON.stringify(key)} ${why}`);
      if (!Array.isArray(key) || key.length !== 2) throw bad('has an unknown key');
      const [kind, k] = key as [unknown, unknown];
      if (kind === 'e' && typeof k === 'number') {
        const why = invalidEntry(value);
        if (why) throw bad(why);
        entries.push({ n: k, entry: value as OutboxEntry });
      } else if (kind === 's' && typeof k === 'string') {
        if (typeof value !== 'number') throw bad('is not a number');
        this.#noteSeq(k, value);
      } else if (kind === 'd' && typeof k === 'string') {
        if (!Array.isArray(value) || typeof value[0] !== 'number' || typeof value[1] !== 'number') throw bad('is not [seq, n]');
        dedup.push({ key: k, seq: value[0], n: value[1] });
      } else throw bad('has an unknown key');
    }
    if (meta === undefined) {
      if (keys.length > 0) throw new ProtocolError(`IndexedDB database "${this.database}" is not a missive outbox: it has records but no meta record`);
      this.#origin = randomToken(2);
      s.put({ format: FORMAT, version: VERSION, origin: this.#origin }, META);
    } else {
      const m = meta as { format?: unknown; version?: unknown; origin?: unknown };
      if (m === null || typeof m !== 'object' || m.format !== FORMAT || typeof m.origin !== 'string' || m.origin === '') {
        throw new ProtocolError(`IndexedDB database "${this.database}" is not a missive outbox (bad meta record)`);
      }
      if (m.version !== VERSION) throw new ProtocolError(`IndexedDB database "${this.database}": unsupported outbox version ${String(m.version)}`);
      this.#origin = m.origin;
    }
    // Record keys sort numbers numerically, so `entries` is already in send order.
    for (const { n, entry } of entries) {
      this.#entries.set(entry.id, { n, entry });
      this.#noteSeq(entry.dest, entry.seq);
    }
    this.#nextEntry = entries.length > 0 ? entries[entries.length - 1]!.n + 1 : 0;
    dedup.sort((a, b) => a.n - b.n);
    for (const d of dedup) {
      // More marks than the bound (it was lowered since): the oldest are forgotten now.
      const forgotten = this.#dedup.set(d.key, d.seq);
      if (forgotten !== undefined) s.delete(['d', forgotten]);
    }
    this.#nextDedup = dedup.length > 0 ? dedup[dedup.length - 1]!.n + 1 : 0;
  }

  #noteSeq(dest: string, seq: number): void {
    if (seq > (this.#seqs.get(dest) ?? 0)) this.#seqs.set(dest, seq);
  }

  async #doClose(): Promise<void> {
    // A change that failed was already reported to its caller: close() only waits for it.
    await this.#whenIdle();
    this.#db?.close();
    this.#db = undefined;
    this.#idb = undefined;
    this.#reset();
    this.#releaseLock?.();
    this.#releaseLock = undefined;
  }

  #reset(): void {
    this.#origin = '';
    this.#entries.clear();
    this.#seqs.clear();
    this.#dedup.clear();
    this.#nextEntry = 0;
    this.#nextDedup = 0;
  }

  #snapshot(): OutboxState {
    return {
      origin: this.#origin,
      entries: [...this.#entries.values()].map((e) => e.entry),
      seqs: new Map(this.#seqs),
      dedup: new Map(this.#dedup.entries()),
    };
  }

  #unusable(): ClosedError | undefined {
    return this.#life.notOpen();
  }

  // ---- writes: the changes of one tick share one readwrite transaction ---------------------

  #change(change: Change): Promise<void> {
    let b = this.#batch;
    if (!b) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      b = this.#batch = { changes: [], promise, resolve, reject };
      queueMicrotask(() => this.#commit());
    }
    b.changes.push(change);
    return b.promise;
  }

  /** Writes the current batch in one transaction; its changes resolve when it commits. */
  #commit(): void {
    const b = this.#batch;
    if (!b) return;
    this.#batch = undefined;
    const idb = this.#idb;
    const write = idb
      ? idb('readwrite', (s) => {
          for (const c of b.changes) c(s);
          return promisifyRequest(s.transaction);
        })
      : Promise.reject(new ClosedError('IndexedDB store is closed'));
    // The batch's callers get the outcome; `settled` (which never rejects) is what close() and
    // open() wait for.
    const settled = write.then(
      () => {
        this.#transactions++;
        b.resolve();
      },
      (err: unknown) => b.reject(err ?? new ClosedError('IndexedDB transaction aborted')),
    );
    this.#inflight.add(settled);
    void settled.then(() => this.#inflight.delete(settled));
  }

  /** Resolves once every change requested so far is written (or has failed). */
  async #whenIdle(): Promise<void> {
    this.#commit();
    await Promise.all([...this.#inflight]);
  }
}

/**
 * Takes the Web Lock named `name` if no one holds it, and resolves with its release function;
 * rejects with NameTakenError if another tab, window or worker of this origin holds it. The
 * browser releases it by itself when the page goes away (reload, close, crash).
 */
function takeLock(name: string, peer: string): Promise<() => void> {
  const locks = (globalThis.navigator as Navigator | undefined)?.locks;
  if (!locks) {
    return Promise.reject(
      new DOMException(
        'the IndexedDB outbox needs the Web Locks API (navigator.locks), which browsers give only to secure contexts (https, localhost): serve the page from one, or connect with store: "memory"',
        'NotSupportedError',
      ),
    );
  }
  return new Promise<() => void>((resolve, reject) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          reject(new NameTakenError(`the outbox of "${peer}" (${name}) is open in another tab or window of this origin: one peer name, one tab`));
          return undefined;
        }
        // The lock is held until this promise settles, that is until close() releases it.
        return new Promise<void>((release) => resolve(() => release()));
      })
      .catch(reject);
  });
}
