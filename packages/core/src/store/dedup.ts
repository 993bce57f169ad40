/**
 * The receiver's dedup state as one bounded model, shared by the Peer and every outbox store, so
 * the bound and the order in which streams are forgotten are the same wherever the state lives.
 */

/** Streams a receiver remembers by default (docs/stores.md promises this bound). */
export const DEFAULT_DEDUP_STREAMS = 10_000;

/**
 * Receiver dedup: per stream key (`origin\u0000dest`), the highest sequence number accepted in
 * order. At most `max` streams; the least recently updated is forgotten first. A forgotten
 * stream is safe: its sender's `base` restarts it where the sender's unsettled messages begin
 * (docs/guarantees.md).
 */
export class DedupTable {
  readonly #max: number;
  /** Map order is update order: the first key is the least recently updated. */
  readonly #marks = new Map<string, number>();
  /** The key updated last (the map's last key). */
  #newest: string | undefined;

  /**
   * @param max streams kept, a positive integer. @default 10000
   * @param entries initial marks, oldest first (beyond `max`, the oldest are forgotten).
   */
  constructor(max: number = DEFAULT_DEDUP_STREAMS, entries?: Iterable<readonly [string, number]>) {
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) throw new RangeError(`dedup bound must be a positive integer, not ${String(max)}`);
    this.#max = max;
    if (entries) for (const [key, seq] of entries) this.set(key, seq);
  }

  /** The highest sequence number accepted in order on `key`; 0 when unknown. */
  get(key: string): number {
    return this.#marks.get(key) ?? 0;
  }

  /** True if `key` is remembered. */
  has(key: string): boolean {
    return this.#marks.has(key);
  }

  /**
   * Sets the mark of `key` and makes it the most recently updated; beyond `max`, forgets the
   * least recently updated stream. Returns the key it forgot, if any (a store deletes its
   * record), so callers that do not persist can ignore it.
   */
  set(key: string, seq: number): string | undefined {
    const marks = this.#marks;
    // The stream updated last is already last in the map's order: a set keeps its place. (The
    // common case: a run of messages of one stream.)
    if (key === this.#newest) {
      marks.set(key, seq);
      return undefined;
    }
    this.#newest = key;
    marks.delete(key);
    marks.set(key, seq);
    if (marks.size <= this.#max) return undefined;
    const oldest = marks.keys().next().value!;
    marks.delete(oldest);
    return oldest;
  }

  /** Streams remembered. */
  get size(): number {
    return this.#marks.size;
  }

  /** The bound. */
  get max(): number {
    return this.#max;
  }

  /** `[key, seq]` pairs, least recently updated first (the order a store persists them in). */
  entries(): IterableIterator<[string, number]> {
    return this.#marks.entries();
  }

  /** Forgets every stream. */
  clear(): void {
    this.#marks.clear();
    this.#newest = undefined;
  }
}
