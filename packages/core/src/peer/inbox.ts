/**
 * The receiving side of delivery: mailboxes, and for durable messages the dedup check (each
 * message lands once, in order per sender and mailbox) and the acks back to the sender. Group
 * broadcasts land in the same mailboxes, best-effort.
 */
import { DEFAULT_PORT, splitAddress } from '../address.js';
import { decodeBody } from '../codec/body.js';
import { AckStatus, frame, Kind, type FrameOf } from '../codec/frames.js';
import type { ClosedError } from '../errors.js';
import { Mailbox, type MailboxStats, type Message } from '../mailbox.js';
import type { OutboxStore } from '../store/outbox.js';
import type { DedupTable } from '../store/dedup.js';
import { macrotask } from '../schedule.js';
import type { PeerPart, PeerPort } from './port.js';

/** A stream that accepted messages this tick (see Inbox.#accepted). */
interface Accepted {
  seq: number;
  /** The sender, as the relay named it on the newest message. */
  to: string;
  dest: string;
  origin: string;
}

export class Inbox implements PeerPart {
  readonly #port: PeerPort;
  readonly #store: OutboxStore;
  readonly #dedup: DedupTable;
  readonly #capacity: number;
  readonly #mailboxes = new Map<string, Mailbox>();
  #nextBcast = 0;
  /**
   * OK acks waiting for the end of the tick, one per stream (origin, destination): the highest
   * sequence number accepted. The sender settles every message of the stream up to it (acks are
   * cumulative, since a stream is accepted only in sequence), so a batch of messages costs one
   * ack instead of one each.
   */
  readonly #oks = new Map<string, FrameOf<typeof Kind.Ack>>();
  #oksScheduled = false;
  /**
   * Streams that accepted messages this tick, with the highest sequence number accepted: at the
   * end of the tick each gets one dedup write to the store and, once that is durable, one OK.
   * Per message, acceptance is then a few field writes (no promise, no ack frame of its own).
   */
  readonly #accepted = new Map<string, Accepted>();
  #acceptedScheduled = false;

  constructor(port: PeerPort, store: OutboxStore, dedup: DedupTable, capacity: number) {
    this.#port = port;
    this.#store = store;
    this.#dedup = dedup;
    this.#capacity = capacity;
    this.#mailboxes.set(DEFAULT_PORT, new Mailbox(DEFAULT_PORT, capacity));
  }

  /** See `Peer.mailbox`. */
  mailbox<T>(port: string, capacity = this.#capacity): Mailbox<T> {
    let m = this.#mailboxes.get(port);
    if (!m) {
      m = new Mailbox(port, capacity);
      const closed = this.#port.closedError;
      if (closed) m.close(closed);
      this.#mailboxes.set(port, m);
    }
    return m as Mailbox<T>;
  }

  #ok(key: string, a: FrameOf<typeof Kind.Ack>): void {
    const waiting = this.#oks.get(key);
    if (waiting === undefined || a.seq > waiting.seq) this.#oks.set(key, a);
    if (this.#oksScheduled) return;
    this.#oksScheduled = true;
    macrotask(() => {
      this.#oksScheduled = false;
      for (const k of [...this.#oks.keys()]) this.#flushOk(k);
    });
  }

  #accept(key: string, f: FrameOf<typeof Kind.Msg>, dest: string): void {
    const a = this.#accepted.get(key);
    if (a !== undefined) {
      a.seq = f.seq;
      a.to = f.from;
    } else this.#accepted.set(key, { seq: f.seq, to: f.from, dest, origin: f.origin });
    if (this.#acceptedScheduled) return;
    this.#acceptedScheduled = true;
    macrotask(() => this.#persistAccepted());
  }

  /** One dedup write per stream accepted this tick; its OK goes once the write is durable. */
  #persistAccepted(): void {
    this.#acceptedScheduled = false;
    const port = this.#port;
    if (port.closedError) return this.#accepted.clear();
    for (const [key, a] of this.#accepted) {
      const ok = frame(Kind.Ack, { to: a.to, from: '', dest: a.dest, origin: a.origin, seq: a.seq, status: AckStatus.Ok });
      this.#store.setDedup(key, a.seq).then(
        () => port.write(ok),
        (err: unknown) => port.error(err),
      );
    }
    this.#accepted.clear();
  }

  /** Answers a message that is not accepted now (a duplicate, or refused). */
  #answer(key: string, f: FrameOf<typeof Kind.Msg>, dest: string, status: number): void {
    // A duplicate of a stream that accepted messages this tick: the OK coming for those covers it.
    if (status === AckStatus.Ok && this.#accepted.has(key)) return;
    const a = frame(Kind.Ack, { to: f.from, from: '', dest, origin: f.origin, seq: f.seq, status });
    if (status === AckStatus.Ok) return this.#ok(key, a);
    // Any other answer goes after the OKs of its stream that wait (the sender reads them in order).
    this.#flushOk(key);
    this.#port.write(a);
  }

  /** Writes the OK waiting for a stream, if any. */
  #flushOk(key: string): void {
    const a = this.#oks.get(key);
    if (a === undefined) return;
    this.#oks.delete(key);
    this.#port.write(a);
  }

  /** The mailbox on `port`, if it was made. */
  existing(port: string): Mailbox | undefined {
    return this.#mailboxes.get(port);
  }

  onMsg(f: FrameOf<typeof Kind.Msg>): void {
    const port = this.#port;
    const { name: dest, port: box } = splitAddress(f.to);
    const key = `${f.origin}\u0000${dest}`;
    const accepted = this.#dedup.get(key);
    // The sender says every sequence number below `base` is settled, so a stream we have no
    // state for (or whose gap was abandoned) restarts at `base`.
    const hwm = Math.max(accepted, f.base - 1);
    if (f.seq <= accepted) return this.#answer(key, f, dest, AckStatus.Ok); // duplicate: ack again, deliver nothing
    if (f.seq !== hwm + 1) return this.#answer(key, f, dest, AckStatus.Gap);
    const mailbox = this.#mailboxes.get(box);
    if (!mailbox) {
      port.tracer.drop('Msg', f, 'NO_ROUTE');
      return this.#answer(key, f, dest, AckStatus.NoRoute);
    }
    let body: unknown;
    try {
      body = decodeBody(f.body, f.flags);
    } catch (err) {
      // An undecodable body can never be delivered: settle it so the stream does not stall.
      port.error(err);
      this.#dedup.set(key, f.seq);
      return this.#answer(key, f, dest, AckStatus.NoRoute);
    }
    const msg: Message = { id: `${f.origin}:${f.seq}:${dest}`, from: f.from, to: f.to, body, sentAt: f.sentAt };
    if (!mailbox.offer(msg)) {
      port.tracer.drop('Msg', f, 'LIMIT');
      return this.#answer(key, f, dest, AckStatus.Limit);
    }
    this.#dedup.set(key, f.seq);
    const t = port.tracer;
    if (t.on) t.emit({ type: 'receive', kind: 'Msg', id: msg.id, from: f.from, to: f.to, size: f.body.length, at: Date.now() });
    this.#accept(key, f, dest);
  }

  onBcast(f: FrameOf<typeof Kind.Bcast>): void {
    const port = this.#port;
    const mailbox = this.#mailboxes.get(splitAddress(f.to).port);
    if (!mailbox) return port.tracer.drop('Bcast', f, 'NO_ROUTE');
    let body: unknown;
    try {
      body = decodeBody(f.body, f.flags);
    } catch (err) {
      return port.error(err);
    }
    const msg: Message = { id: `bcast:${port.id}:${this.#nextBcast++}`, from: f.from, to: f.to, body, sentAt: Date.now() };
    if (!mailbox.offer(msg)) return port.tracer.drop('Bcast', f, 'LIMIT');
    const t = port.tracer;
    if (t.on) t.emit({ type: 'receive', kind: 'Bcast', id: msg.id, from: f.from, to: f.to, size: f.body.length, at: Date.now() });
  }

  closed(error: ClosedError): void {
    for (const m of this.#mailboxes.values()) m.close(error);
  }

  /** Every mailbox's stats and its first `peek` messages (0: none). */
  inspect(peek = 0): InboxSnapshot {
    return {
      dedupStreams: this.#dedup.size,
      mailboxes: [...this.#mailboxes].map(([port, m]) => ({ port, ...m.stats(), messages: peek > 0 ? m.peek(peek) : [] })),
    };
  }
}

/** What `Inbox.inspect()` returns. */
export interface InboxSnapshot {
  dedupStreams: number;
  mailboxes: (MailboxStats & { port: string; messages: Message[] })[];
}
