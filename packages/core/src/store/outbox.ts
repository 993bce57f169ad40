/**
 * The outbox keeps every `send` until the receiver's end-to-end ack; the store behind it is an
 * interface so Node (file) and the browser (IndexedDB) can make it durable. It also keeps the
 * receiver-side dedup state, so a peer restarted on a persistent store neither loses nor
 * re-delivers. The input checks every store applies live here too, so a bad entry is refused
 * the same way by all of them (the store compliance suite holds them to it).
 */
import { ClosedError } from '../errors.js';
import { DEFAULT_DEDUP_STREAMS, DedupTable } from './dedup.js';
import { randomToken } from './ids.js';

/** One unacknowledged message. */
export interface OutboxEntry {
  /** Message id, `origin:seq:dest`. */
  id: string;
  /** Full address it was sent to. */
  to: string;
  /** Destination peer (the name part of `to`): sequence numbers count per destination. */
  dest: string;
  seq: number;
  sentAt: number;
  /** Encoded body and its codec flag. */
  body: Uint8Array;
  flags: number;
}

/** What a store holds when opened. */
export interface OutboxState {
  /** This sender's stable identity; a new store makes a new random one. */
  origin: string;
  /** Unacked entries, in send order. */
  entries: OutboxEntry[];
  /** Last sequence number used per destination (survives acks, so numbers are never reused). */
  seqs: Map<string, number>;
  /** Receiver dedup: highest in-order sequence accepted per `origin\u0000dest` stream. */
  dedup: Map<string, number>;
}

/** Storage behind a Peer's outbox and dedup state. Each method resolves once the change is durable. */
export interface OutboxStore {
  open(): Promise<OutboxState>;
  append(entry: OutboxEntry): Promise<void>;
  /** Removes an entry (acked, or settled as undeliverable). */
  ack(id: string): Promise<void>;
  /** Records that stream `key` has accepted every sequence number up to `seq`. */
  setDedup(key: string, seq: number): Promise<void>;
  close(): Promise<void>;
}

/** Why `e` is not a valid outbox entry, or undefined if it is. Stores reject such an entry with a TypeError. */
export function invalidEntry(e: unknown): string | undefined {
  if (e === null || typeof e !== 'object') return 'entry must be an object';
  const x = e as Partial<Record<keyof OutboxEntry, unknown>>;
  if (typeof x.id !== 'string' || x.id === '') return 'entry.id must be a non-empty string';
  if (typeof x.to !== 'string' || x.to === '') return 'entry.to must be a non-empty string';
  if (typeof x.dest !== 'string' || x.dest === '') return 'entry.dest must be a non-empty string';
  if (!Number.isSafeInteger(x.seq) || (x.seq as number) < 1) return 'entry.seq must be an integer >= 1';
  if (typeof x.sentAt !== 'number' || !Number.isFinite(x.sentAt)) return 'entry.sentAt must be a finite number';
  if (!(x.body instanceof Uint8Array)) return 'entry.body must be a Uint8Array';
  // The file store writes flags as a u32.
  if (!Number.isInteger(x.flags) || (x.flags as number) < 0 || (x.flags as number) > 0xffffffff) return 'entry.flags must be an integer in [0, 2^32)';
  return undefined;
}

/** Why `(key, seq)` is not a valid dedup mark, or undefined if it is. */
export function invalidDedup(key: unknown, seq: unknown): string | undefined {
  if (typeof key !== 'string' || key === '') return 'setDedup: key must be a non-empty string';
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) return 'setDedup: seq must be an integer >= 0';
  return undefined;
}

/** Why `id` cannot be acked, or undefined (an unknown id is fine: acking it changes nothing). */
export function invalidAck(id: unknown): string | undefined {
  return typeof id === 'string' ? undefined : 'ack: id must be a string';
}

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Receiver dedup streams kept (the least recently updated is forgotten first). @default 10000 */
  maxDedupStreams?: number;
}

/**
 * The default store: memory only, so nothing survives the process. Like the durable stores it
 * must be opened before use and refuses changes after `close()` (ClosedError); `open()` after
 * `close()` gives back the same state, as a reopened file would.
 */
export class MemoryStore implements OutboxStore {
  readonly #origin = randomToken(2);
  readonly #entries = new Map<string, OutboxEntry>();
  readonly #seqs = new Map<string, number>();
  readonly #dedup: DedupTable;
  #open = false;

  constructor(options: MemoryStoreOptions = {}) {
    const max = options.maxDedupStreams ?? DEFAULT_DEDUP_STREAMS;
    if (!Number.isInteger(max) || max < 1) throw new TypeError('maxDedupStreams must be a positive integer');
    this.#dedup = new DedupTable(max);
  }

  async open(): Promise<OutboxState> {
    this.#open = true;
    return { origin: this.#origin, entries: [...this.#entries.values()], seqs: new Map(this.#seqs), dedup: new Map(this.#dedup.entries()) };
  }

  /** Records an unacked entry; an entry with an id already held replaces it in place. */
  async append(entry: OutboxEntry): Promise<void> {
    this.#check();
    const bad = invalidEntry(entry);
    if (bad) throw new TypeError(`append: ${bad}`);
    this.#entries.set(entry.id, entry);
    // Only ever raised: a number once used is never handed out again.
    if (entry.seq > (this.#seqs.get(entry.dest) ?? 0)) this.#seqs.set(entry.dest, entry.seq);
  }

  /** Removes an entry (acked, or settled as undeliverable); an unknown id changes nothing. */
  async ack(id: string): Promise<void> {
    this.#check();
    const bad = invalidAck(id);
    if (bad) throw new TypeError(bad);
    this.#entries.delete(id);
  }

  /** Records that stream `key` has accepted every sequence number up to `seq`. */
  async setDedup(key: string, seq: number): Promise<void> {
    this.#check();
    const bad = invalidDedup(key, seq);
    if (bad) throw new TypeError(bad);
    this.#dedup.set(key, seq);
  }

  /** Refuses further changes until the next `open()`; the state stays. Idempotent. */
  async close(): Promise<void> {
    this.#open = false;
  }

  #check(): void {
    if (!this.#open) throw new ClosedError('memory store is not open (open() it first, again after close())');
  }
}
