/**
 * The outbox keeps every `send` until the receiver's end-to-end ack; the store behind it is an
 * interface so Node (file) and the browser (IndexedDB) can make it durable. It also keeps the
 * receiver-side dedup state, so a peer restarted on a persistent store neither loses nor
 * re-delivers.
 */
import { randomToken } from './store/ids.js';

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

/** The default store: memory only, so nothing survives the process. */
export class MemoryStore implements OutboxStore {
  readonly #state: OutboxState = { origin: randomToken(2), entries: [], seqs: new Map(), dedup: new Map() };
  readonly #byId = new Map<string, OutboxEntry>();

  async open(): Promise<OutboxState> {
    const s = this.#state;
    return { origin: s.origin, entries: [...this.#byId.values()], seqs: new Map(s.seqs), dedup: new Map(s.dedup) };
  }

  async append(entry: OutboxEntry): Promise<void> {
    this.#byId.set(entry.id, entry);
    this.#state.seqs.set(entry.dest, entry.seq);
  }

  async ack(id: string): Promise<void> {
    this.#byId.delete(id);
  }

  async setDedup(key: string, seq: number): Promise<void> {
    this.#state.dedup.set(key, seq);
  }

  async close(): Promise<void> {}
}
