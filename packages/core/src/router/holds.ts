/**
 * Durable messages held for named peers that are not connected, behind the `HoldStore`
 * interface. `MemoryHoldStore` is the default; a backplane keeps them in shared storage, so a
 * peer that reconnects to another relay still gets them.
 */
import type { RouterLimits } from './limits.js';

/**
 * Bytes of process memory a held message costs beyond its encoded frame in `MemoryHoldStore`
 * (its record, the Uint8Array and its backing store, array slots), measured on Node 20 x64 with
 * 200,000 small held messages (packages/node/test/hostile.test.ts checks it). Counting it makes
 * `holdMaxTotalBytes` a bound on real memory, not only on payload bytes.
 */
export const HELD_OVERHEAD = 400;

/** The limits a hold store enforces. */
export type HoldLimits = Pick<RouterLimits, 'holdMaxMessages' | 'holdMaxBytes' | 'holdMaxTotalBytes'>;

/**
 * What `hold` did: kept the message; found it already held (a resend after a reconnection: one
 * copy is kept); or refused it because a hold limit would be passed.
 */
export type HoldResult = 'held' | 'duplicate' | 'full';

/** A message to hold: its encoded MSG frame and what expiry and dedup need. */
export interface HeldMessage {
  /** `[u32 length][frame]`, `from` stamped: a buffer of its own, which the store may keep. */
  unit: Uint8Array;
  origin: string;
  seq: number;
  /** The sender's label (name, or id), told when the hold expires. */
  sender: string;
  /** When it arrived (ms since epoch). */
  at: number;
}

/** A held message whose hold ran out: its sender is told. */
export interface ExpiredHold {
  namespace: string;
  /** The offline name it was held for. */
  name: string;
  sender: string;
  origin: string;
  seq: number;
}

/** A plain snapshot of what is held, for `Router.inspect()`. */
export interface HoldSnapshot {
  messages: number;
  /** Counted bytes: encoded frames plus {@link HELD_OVERHEAD} each. */
  bytes: number;
  /** Each offline name with messages held: how many, their counted bytes, when the oldest came (ms since epoch). */
  names: { namespace: string; name: string; messages: number; bytes: number; since: number }[];
}

/**
 * Where held messages live. Each message counts `unit.length + HELD_OVERHEAD` bytes against the
 * limits. `hold` and `take` may answer with a promise (a store over the network); the Router
 * waits for it before it tells the sender or opens the receiver. `expire` runs in the Router's
 * sweep and reports synchronously what ran out (a remote store reports what it learnt since).
 */
export interface HoldStore {
  /** Messages held now (this relay's view). */
  readonly messages: number;
  /**
   * Shared by several relays (a backplane's): `expire` runs on every sweep, since what other
   * relays held may run out while this relay's view says nothing is held.
   */
  readonly shared?: boolean;
  /** Their counted bytes. */
  readonly bytes: number;
  /** Holds `m` for `name`. A message with the same (origin, seq) as one held for `name` is a resend: 'duplicate'. */
  hold(namespace: string, name: string, m: HeldMessage): HoldResult | PromiseLike<HoldResult>;
  /** Hands every message held for `name` to `deliver`, oldest first, and forgets them. */
  take(namespace: string, name: string, deliver: (unit: Uint8Array) => void): void | PromiseLike<void>;
  /** Forgets every message that arrived at or before `before` (ms since epoch), reporting each. */
  expire(before: number, expired: (m: ExpiredHold) => void): void;
  inspect(): HoldSnapshot;
  /** Forgets everything (the relay is closing; the senders still have the messages). */
  clear(): void;
}

interface Held extends HeldMessage {
  bytes: number;
}

/** The messages held for one offline name, in arrival order. */
interface Hold {
  namespace: string;
  name: string;
  msgs: Held[];
  bytes: number;
}

/** The hold store of a relay that runs alone: in this process's memory. */
export class MemoryHoldStore implements HoldStore {
  readonly #limits: HoldLimits;
  /** By `namespace\0name`. */
  readonly #holds = new Map<string, Hold>();
  #messages = 0;
  #bytes = 0;

  constructor(limits: HoldLimits) {
    this.#limits = limits;
  }

  get messages(): number {
    return this.#messages;
  }

  get bytes(): number {
    return this.#bytes;
  }

  hold(namespace: string, name: string, m: HeldMessage): HoldResult {
    const key = `${namespace}\u0000${name}`;
    let hold = this.#holds.get(key);
    if (hold?.msgs.some((h) => h.origin === m.origin && h.seq === m.seq)) return 'duplicate';
    const bytes = m.unit.length + HELD_OVERHEAD;
    const l = this.#limits;
    if ((hold?.msgs.length ?? 0) >= l.holdMaxMessages || (hold?.bytes ?? 0) + bytes > l.holdMaxBytes || this.#bytes + bytes > l.holdMaxTotalBytes) return 'full';
    if (!hold) this.#holds.set(key, (hold = { namespace, name, msgs: [], bytes: 0 }));
    hold.msgs.push({ unit: m.unit, origin: m.origin, seq: m.seq, sender: m.sender, at: m.at, bytes });
    hold.bytes += bytes;
    this.#bytes += bytes;
    this.#messages++;
    return 'held';
  }

  take(namespace: string, name: string, deliver: (unit: Uint8Array) => void): void {
    const key = `${namespace}\u0000${name}`;
    const hold = this.#holds.get(key);
    if (!hold) return;
    this.#holds.delete(key);
    this.#messages -= hold.msgs.length;
    this.#bytes -= hold.bytes;
    for (const h of hold.msgs) deliver(h.unit);
  }

  expire(before: number, expired: (m: ExpiredHold) => void): void {
    for (const [key, hold] of this.#holds) {
      let n = 0;
      while (n < hold.msgs.length && hold.msgs[n]!.at <= before) n++;
      if (n === 0) continue;
      for (const h of hold.msgs.splice(0, n)) {
        hold.bytes -= h.bytes;
        this.#bytes -= h.bytes;
        this.#messages--;
        expired({ namespace: hold.namespace, name: hold.name, sender: h.sender, origin: h.origin, seq: h.seq });
      }
      if (hold.msgs.length === 0) this.#holds.delete(key);
    }
  }

  inspect(): HoldSnapshot {
    const names: HoldSnapshot['names'] = [];
    for (const h of this.#holds.values()) names.push({ namespace: h.namespace, name: h.name, messages: h.msgs.length, bytes: h.bytes, since: h.msgs[0]!.at });
    return { messages: this.#messages, bytes: this.#bytes, names };
  }

  clear(): void {
    this.#holds.clear();
    this.#messages = 0;
    this.#bytes = 0;
  }
}
