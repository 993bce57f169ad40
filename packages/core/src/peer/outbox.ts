/**
 * The sending side of durable delivery: every `send` waits in the outbox (and its store) until
 * the receiver's end-to-end ack. Per destination, up to `sendWindow` messages are in flight; a
 * refusal (LIMIT, GAP) rewinds the stream and retransmits in order with backoff; an ack timeout
 * retransmits what waited too long, or probes with the oldest message while the relay holds
 * them for an offline receiver.
 */
import { checkAddress, splitAddress } from '../address.js';
import { encodeBody } from '../codec/body.js';
import { AckStatus, frame, Kind, type FrameOf } from '../codec/frames.js';
import { ClosedError, errorFromCode, LimitError, NoRouteError, type MissiveError } from '../errors.js';
import type { OutboxEntry, OutboxStore } from '../store/outbox.js';
import type { PeerPart, PeerPort } from './port.js';
import type { SendOptions } from './types.js';

/** An unacked entry and what the outbox knows of it (plain fields: no map per message). */
interface Pending {
  e: OutboxEntry;
  /** The ref of its MSG frames (0 until first sent; one ref across retransmissions). */
  ref: number;
  /** The relay holds it for an offline receiver: on ack timeout only the oldest is probed. */
  held: boolean;
}

interface DestQueue {
  /** Unacked entries in seq order. */
  entries: Pending[];
  /** How many leading entries were transmitted in the current round. */
  sent: number;
  /** Set while waiting to retransmit after a refusal. */
  retry: ReturnType<typeof setTimeout> | undefined;
  backoff: number;
  /** When the oldest unacked entry was last sent, or an ack last made progress. */
  progressAt: number;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export interface OutboxOptions {
  outboxCapacity: number;
  sendWindow: number;
  ackTimeout: number;
}

/** What a store's `open()` gave the sender side. */
export interface OutboxStart {
  origin: string;
  entries: OutboxEntry[];
  seqs: Map<string, number>;
}

const RETRY_MIN = 20;
const RETRY_MAX = 1000;

export class Outbox implements PeerPart {
  readonly #port: PeerPort;
  readonly #store: OutboxStore;
  readonly #opts: OutboxOptions;
  readonly origin: string;
  readonly #seqs: Map<string, number>;
  readonly #dests = new Map<string, DestQueue>();
  readonly #deliveryWaiters = new Map<string, Waiter>();
  #expiredIds: string[] = [];
  #size = 0;
  readonly #ackTimer: ReturnType<typeof setInterval>;

  constructor(port: PeerPort, store: OutboxStore, start: OutboxStart, options: OutboxOptions) {
    this.#port = port;
    this.#store = store;
    this.#opts = options;
    this.origin = start.origin;
    this.#seqs = start.seqs;
    for (const e of start.entries) this.#enqueue(e);
    // Restored entries count against the outbox like new ones (each ack decrements it).
    this.#size = start.entries.length;
    this.#ackTimer = setInterval(() => this.#checkAcks(), Math.max(50, Math.min(1000, options.ackTimeout / 4)));
  }

  /** Unacknowledged messages. */
  get size(): number {
    return this.#size;
  }

  /** See `Peer.send`. */
  send(to: string, body: unknown, options: SendOptions = {}): Promise<string> {
    const closed = this.#port.closedError;
    if (closed) return Promise.reject(new ClosedError('peer is closed', { cause: closed }));
    const bad = checkAddress(to);
    if (bad) return Promise.reject(new TypeError(bad));
    if (this.#size >= this.#opts.outboxCapacity) {
      return Promise.reject(new LimitError(`outbox full (${this.#opts.outboxCapacity} unacknowledged messages)`));
    }
    // Not transient: the outbox keeps its own bytes, sent again after a LIMIT nack or a
    // reconnect, when the caller may have reused a Uint8Array.
    let encoded: ReturnType<typeof encodeBody>;
    try {
      encoded = encodeBody(body, this.#port.codec);
    } catch (err) {
      return Promise.reject(err);
    }
    const dest = splitAddress(to).name;
    const seq = (this.#seqs.get(dest) ?? 0) + 1;
    this.#seqs.set(dest, seq);
    const entry: OutboxEntry = { id: `${this.origin}:${seq}:${dest}`, to, dest, seq, sentAt: Date.now(), body: encoded.bytes, flags: encoded.codec };
    this.#size++;
    const delivered = options.waitForDelivery ? this.#waitDelivery(entry.id) : undefined;
    // Awaited below; until then (the store may take a while) a rejection is not unhandled.
    delivered?.catch(() => {});
    const undo = (): void => {
      // Give the sequence number back if no later send took one (else `base` closes the gap).
      if (this.#seqs.get(dest) === seq) this.#seqs.set(dest, seq - 1);
      this.#size--;
      this.#deliveryWaiters.delete(entry.id);
    };
    let appended: Promise<void>;
    try {
      appended = this.#store.append(entry);
    } catch (err) {
      undo();
      return Promise.reject(err);
    }
    // One reaction per send, not an async function's own promise and an await on top.
    return appended.then(() => {
      this.#enqueue(entry);
      this.#pump(dest);
      return delivered ? delivered.then(() => entry.id) : entry.id;
    }, (err: unknown) => {
      undo();
      throw err;
    });
  }

  #waitDelivery(id: string): Promise<void> {
    return new Promise<void>((resolve, reject) => this.#deliveryWaiters.set(id, { resolve, reject }));
  }

  #enqueue(entry: OutboxEntry): void {
    let q = this.#dests.get(entry.dest);
    if (!q) this.#dests.set(entry.dest, (q = { entries: [], sent: 0, retry: undefined, backoff: RETRY_MIN, progressAt: Date.now() }));
    q.entries.push({ e: entry, ref: 0, held: false });
  }

  /** Transmits entries for `dest` up to the window. */
  #pump(dest: string): void {
    const q = this.#dests.get(dest);
    if (!q || q.retry !== undefined || !this.#port.connected) return;
    const limit = Math.min(q.entries.length, this.#opts.sendWindow);
    if (q.sent === 0 && limit > 0) q.progressAt = Date.now();
    while (q.sent < limit) this.#transmit(q.entries[q.sent++]!, q.entries[0]!.e.seq);
  }

  #transmit(p: Pending, base: number): void {
    const e = p.e;
    const ref = p.ref === 0 ? (p.ref = this.#port.nextRef()) : p.ref;
    // Outbox bodies are the outbox's own (copied at send, or read back from a store): stable.
    this.#port.write(frame(Kind.Msg, { ref, to: e.to, from: '', origin: this.origin, seq: e.seq, base, sentAt: e.sentAt }, e.body, e.flags), true);
    const t = this.#port.tracer;
    if (t.on) t.emit({ type: 'send', kind: 'Msg', id: e.id, to: e.to, size: e.body.length, at: Date.now() });
  }

  /** Removes an entry from the outbox (acked or settled). Returns it, or undefined if it was not there. */
  #settle(dest: string, seq: number): OutboxEntry | undefined {
    const q = this.#dests.get(dest);
    if (!q) return undefined;
    // Acks nearly always settle the oldest entry: shift() is O(1) there, unlike splice.
    const i = q.entries[0]?.e.seq === seq ? 0 : q.entries.findIndex((p) => p.e.seq === seq);
    if (i < 0) return undefined;
    const p = i === 0 ? q.entries.shift()! : q.entries.splice(i, 1)[0]!;
    if (i < q.sent) q.sent--;
    if (q.entries.length === 0 && q.retry === undefined) this.#dests.delete(dest);
    this.#size--;
    this.#store.ack(p.e.id).catch(this.#storeError);
    return p.e;
  }

  readonly #storeError = (err: unknown): void => this.#port.error(err);

  /** ACK from the receiver (or from the relay on its behalf: held, expired, refused). */
  onAck(f: FrameOf<typeof Kind.Ack>): void {
    if (f.origin !== this.origin) return;
    // The relay stamps an ack's `from` as the peer that sent it (in the form of `dest`, by name
    // or id), or as `dest` when the relay itself answers for it (held, expired). Any other ack
    // was not sent by the destination: a third peer must not settle messages it never received.
    if (f.from !== f.dest) return this.#port.tracer.drop('Ack', f, 'NOT_DESTINATION');
    const dest = this.#destOf(f);
    if (dest === undefined) return; // a duplicate ack: the message was already settled
    if (f.status === AckStatus.Ok) {
      // Cumulative: the receiver accepts each stream only in sequence, so an OK for `seq` says
      // every message of this stream up to it is in its mailbox (a receiver may ack once for a
      // run of them). They settle oldest first, each with its `delivered`.
      const q = this.#dests.get(dest)!;
      let settled = 0;
      for (;;) {
        const oldest = q.entries[0];
        if (!oldest || oldest.e.seq > f.seq) break;
        // The receiver has what the relay said it held: the hold was flushed to it, so nothing
        // else of this stream is held any more (ack timeout must cover it again, in case the
        // flush went into a link that died).
        if (oldest.held) for (const x of q.entries) x.held = false;
        const e = this.#settle(dest, oldest.e.seq)!;
        settled++;
        const t = this.#port.tracer;
        if (t.on) t.emit({ type: 'ack', kind: 'Ack', id: e.id, from: f.from, to: e.to, at: Date.now() });
        this.#port.emit('delivered', { id: e.id, to: e.to });
        if (this.#deliveryWaiters.size > 0) {
          this.#deliveryWaiters.get(e.id)?.resolve();
          this.#deliveryWaiters.delete(e.id);
        }
      }
      if (settled === 0) return; // a duplicate ack: already settled
      q.backoff = RETRY_MIN;
      q.progressAt = Date.now();
      this.#pump(dest);
    } else if (f.status === AckStatus.NoRoute) {
      const e = this.#settle(dest, f.seq);
      if (e) this.#undeliverable(e, new NoRouteError(`no mailbox "${splitAddress(e.to).port}" on "${e.dest}"`));
    } else if (f.status === AckStatus.Held) {
      // The relay keeps it for the offline receiver: not sent again on ack timeout, only probed.
      const p = this.#dests.get(dest)?.entries.find((x) => x.e.seq === f.seq);
      if (p) p.held = true;
    } else if (f.status === AckStatus.Expired) {
      const e = this.#settle(dest, f.seq);
      if (e) this.#expire(e);
    } else {
      // LIMIT (mailbox full) or GAP (an earlier message was refused): retransmit in order later.
      this.#rewind(dest);
    }
  }

  /** ERR naming a MSG's ref: the relay settled it undelivered (no such peer). False if no MSG has that ref. */
  onErr(f: FrameOf<typeof Kind.Err>): boolean {
    const entry = this.#byRef(f.ref);
    if (!entry) return false;
    const e = this.#settle(entry.dest, entry.seq);
    if (e) this.#undeliverable(e, errorFromCode(f.code, f.message));
    return true;
  }

  /** The entry whose MSG frames carry `ref`. Rare (an ERR): a scan, not a map kept per message. */
  #byRef(ref: number): OutboxEntry | undefined {
    // Refs start at 1: 0 marks an entry never sent.
    if (ref === 0) return undefined;
    for (const q of this.#dests.values()) for (const p of q.entries) if (p.ref === ref) return p.e;
    return undefined;
  }

  /** The destination queue an ack belongs to: the ack names it (`dest`, as we addressed it). */
  #destOf(f: FrameOf<typeof Kind.Ack>): string | undefined {
    const q = this.#dests.get(f.dest);
    if (!q) return undefined;
    // Nearly always the oldest entry; otherwise a stale ack for an entry settled earlier.
    return q.entries[0]?.e.seq === f.seq || q.entries.some((p) => p.e.seq === f.seq) ? f.dest : undefined;
  }

  #rewind(dest: string): void {
    const q = this.#dests.get(dest);
    if (!q || q.retry !== undefined) return;
    q.sent = 0;
    const delay = q.backoff;
    q.backoff = Math.min(q.backoff * 2, RETRY_MAX);
    q.retry = setTimeout(() => {
      q.retry = undefined;
      if (q.entries.length === 0) this.#dests.delete(dest);
      else this.#pump(dest);
    }, delay);
  }

  /** Reports expired entries in one `expired` event per tick. */
  #expire(e: OutboxEntry): void {
    const t = this.#port.tracer;
    if (t.on) t.emit({ type: 'drop', kind: 'Msg', id: e.id, to: e.to, reason: 'EXPIRED', at: Date.now() });
    this.#deliveryWaiters.get(e.id)?.reject(new NoRouteError(`the relay's hold for "${e.dest}" expired before it connected`));
    this.#deliveryWaiters.delete(e.id);
    if (this.#expiredIds.push(e.id) === 1) {
      queueMicrotask(() => {
        const ids = this.#expiredIds;
        this.#expiredIds = [];
        this.#port.emit('expired', { ids });
      });
    }
    this.#pump(e.dest);
  }

  /**
   * Sends again, in order, what has waited too long for an ack. If the relay holds the oldest,
   * only that one is sent again: while still held the relay answers HELD once more; if the hold
   * was flushed into a link that died before the receiver read it, this probe reaches the
   * receiver, whose ack clears the stream's other held marks (see onAck), so the next timeout
   * resends them.
   */
  #checkAcks(): void {
    if (!this.#port.connected) return;
    const now = Date.now();
    for (const [dest, q] of this.#dests) {
      const oldest = q.entries[0];
      if (q.sent === 0 || q.retry !== undefined || !oldest) continue;
      if (now - q.progressAt >= this.#opts.ackTimeout) {
        q.progressAt = now;
        if (oldest.held) this.#transmit(oldest, oldest.e.seq);
        else this.#rewind(dest);
      }
    }
  }

  #undeliverable(e: OutboxEntry, error: MissiveError): void {
    const t = this.#port.tracer;
    if (t.on) t.emit({ type: 'drop', kind: 'Msg', id: e.id, to: e.to, reason: error.code, at: Date.now() });
    this.#port.emit('undeliverable', { id: e.id, to: e.to, error });
    this.#deliveryWaiters.get(e.id)?.reject(error);
    this.#deliveryWaiters.delete(e.id);
    this.#pump(e.dest);
  }

  /** A new link: the relay's held marks are void, and every stream is sent again from its oldest. */
  attached(): void {
    for (const q of this.#dests.values()) {
      q.sent = 0;
      for (const p of q.entries) p.held = false;
    }
    for (const dest of this.#dests.keys()) this.#pump(dest);
  }

  closed(error: ClosedError): void {
    clearInterval(this.#ackTimer);
    for (const w of this.#deliveryWaiters.values()) w.reject(new ClosedError(error.message, { cause: error }));
    this.#deliveryWaiters.clear();
    for (const q of this.#dests.values()) clearTimeout(q.retry);
    this.#dests.clear();
  }

  inspect(): OutboxSnapshot {
    const now = Date.now();
    const destinations = [...this.#dests].map(([dest, q]) => ({
      dest,
      unacked: q.entries.length,
      inFlight: q.sent,
      held: q.entries.reduce((n, p) => n + (p.held ? 1 : 0), 0),
      retrying: q.retry !== undefined,
      oldestAge: q.entries[0] ? now - q.entries[0].e.sentAt : 0,
    }));
    const held = destinations.reduce((n, d) => n + d.held, 0);
    return { origin: this.origin, size: this.#size, capacity: this.#opts.outboxCapacity, sendWindow: this.#opts.sendWindow, held, destinations };
  }

  /** Up to `n` unacked messages per destination, oldest first, with their state (for diagnostics). */
  peek(n: number): { id: string; to: string; seq: number; sentAt: number; held: boolean; size: number; body: Uint8Array; flags: number }[] {
    const out = [];
    for (const q of this.#dests.values()) {
      for (const { e, held } of q.entries.slice(0, n)) out.push({ id: e.id, to: e.to, seq: e.seq, sentAt: e.sentAt, held, size: e.body.length, body: e.body, flags: e.flags });
    }
    return out;
  }
}

/** What `Outbox.inspect()` returns. */
export interface OutboxSnapshot {
  origin: string;
  size: number;
  capacity: number;
  sendWindow: number;
  held: number;
  destinations: { dest: string; unacked: number; inFlight: number; held: number; retrying: boolean; oldestAge: number }[];
}
