/**
 * Publish/subscribe at the peer: local subscriptions by pattern (one relay registration per
 * pattern, however many local handlers share it), publishes out, and dispatch of the publishes
 * that come in to the handlers whose patterns match.
 */
import { decodeBody, encodeBody } from '../codec/body.js';
import { frame, Kind, type FrameOf } from '../codec/frames.js';
import { ClosedError } from '../errors.js';
import { checkPattern, checkTopic, matchTopic } from '../topics.js';
import type { PeerPart, PeerPort } from './port.js';
import type { Registrations } from './registrations.js';
import type { PublishMeta, Subscription } from './types.js';

interface SubEntry {
  subs: Set<LocalSub>;
  ready: Promise<void>;
}

interface LocalSub {
  pattern: string;
  handler: (body: unknown, meta: PublishMeta) => void;
}

export class PubSub implements PeerPart {
  readonly #port: PeerPort;
  readonly #regs: Registrations;
  readonly #subs = new Map<string, SubEntry>();
  /** Topic → matching entries of #subs; cleared whenever #subs changes. */
  readonly #matchCache = new Map<string, SubEntry[]>();
  #received = 0;

  constructor(port: PeerPort, regs: Registrations) {
    this.#port = port;
    this.#regs = regs;
  }

  /** See `Peer.subscribe`. */
  subscribe<T>(pattern: string, handler: (body: T, meta: PublishMeta) => void): Subscription {
    const bad = checkPattern(pattern);
    if (bad) throw new TypeError(bad);
    if (this.#port.closedError) throw new ClosedError('peer is closed');
    const local: LocalSub = { pattern, handler: handler as LocalSub['handler'] };
    let entry = this.#subs.get(pattern);
    if (!entry) {
      const created: SubEntry = { subs: new Set(), ready: Promise.resolve() };
      created.ready = this.#regs.register(`sub:${pattern}`, (ref) => frame(Kind.Sub, { ref, pattern }), () => {
        if (this.#subs.get(pattern) === created) this.#changed().delete(pattern);
      });
      // A refused subscription is reported through `ready`; do not also make it unhandled.
      created.ready.catch(() => {});
      entry = created;
      this.#changed().set(pattern, entry);
    }
    entry.subs.add(local);
    const e = entry;
    return {
      pattern,
      ready: e.ready,
      unsubscribe: () => {
        if (!e.subs.delete(local) || e.subs.size > 0 || this.#subs.get(pattern) !== e) return;
        this.#changed().delete(pattern);
        this.#regs.unregister(`sub:${pattern}`, (ref) => frame(Kind.Unsub, { ref, pattern })).catch(() => {});
      },
    };
  }

  /** See `Peer.publish`. */
  publish(topic: string, body: unknown): void {
    const bad = checkTopic(topic);
    if (bad) throw new TypeError(bad);
    const port = this.#port;
    if (port.closedError) throw new ClosedError('peer is closed');
    const { bytes, codec } = encodeBody(body, port.codec, true);
    port.write({ kind: Kind.Pub, flags: codec, topic, from: '', body: bytes });
    const t = port.tracer;
    if (t.on) t.emit({ type: 'send', kind: 'Pub', id: topic, size: bytes.length, at: Date.now() });
  }

  /** The subscription entries matching `topic`, cached until the subscriptions change. */
  #matching(topic: string): SubEntry[] {
    let list = this.#matchCache.get(topic);
    if (list === undefined) {
      list = [];
      for (const [pattern, entry] of this.#subs) if (matchTopic(pattern, topic)) list.push(entry);
      if (this.#matchCache.size >= 1024) this.#matchCache.clear();
      this.#matchCache.set(topic, list);
    }
    return list;
  }

  /** Returns #subs for a change, dropping the match cache first. */
  #changed(): Map<string, SubEntry> {
    this.#matchCache.clear();
    return this.#subs;
  }

  onPub(f: FrameOf<typeof Kind.Pub>): void {
    const port = this.#port;
    let body: unknown;
    let decoded = false;
    const meta: PublishMeta = { topic: f.topic, from: f.from };
    for (const entry of this.#matching(f.topic)) {
      if (!decoded) {
        try {
          body = decodeBody(f.body, f.flags);
        } catch (err) {
          return port.error(err);
        }
        decoded = true;
        this.#received++;
        const t = port.tracer;
        if (t.on) t.emit({ type: 'receive', kind: 'Pub', id: f.topic, from: f.from, size: f.body.length, at: Date.now() });
      }
      for (const s of entry.subs) {
        try {
          s.handler(body, meta);
        } catch (err) {
          port.error(err);
        }
      }
    }
  }

  inspect(): { received: number; subscriptions: { pattern: string; handlers: number }[] } {
    return { received: this.#received, subscriptions: [...this.#subs].map(([pattern, e]) => ({ pattern, handlers: e.subs.size })) };
  }
}
