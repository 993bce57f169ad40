/**
 * The live trace, outside React: the `$relay.trace` subscription, this session's filter on the
 * relay, and a bounded list of events. Batches from the relay are merged into the list at most
 * once per animation frame, so thousands of events a second cost one render per frame.
 */
import { describeError, TRACE_TOPIC, type AdminClient, type TraceBatch, type TraceEvent, type TraceFilter } from './api.js';

export interface TraceRow extends TraceEvent {
  /** Position in the stream, for keys. */
  seq: number;
}

/** Events kept in memory (older ones are forgotten). @default 5000 */
export const TRACE_LIMIT = 5000;

export type TraceState = 'idle' | 'starting' | 'live' | 'error';

interface Subscription {
  ready: Promise<void>;
  unsubscribe(): void;
}

export class TraceStore {
  events: TraceRow[] = [];
  /** Events the relay skipped (rate limit), summed over batches. */
  dropped = 0;
  received = 0;
  /** When a batch last said the session's budget ran out (skipped events then go uncounted). */
  saturatedAt: number | undefined;
  paused = false;
  /** Events that arrived while paused, shown on resume (bounded as well). */
  waiting = 0;
  state: TraceState = 'idle';
  error: string | undefined;
  filter: TraceFilter = {};
  /** The rate the relay accepted for this session (events per second). */
  rate: number | undefined;
  version = 0;

  readonly #client: AdminClient;
  #sub: Subscription | undefined;
  #incoming: TraceRow[] = [];
  #frame: number | undefined;
  #seq = 0;
  #listeners = new Set<() => void>();

  constructor(client: AdminClient) {
    this.#client = client;
  }

  /** For useSyncExternalStore. */
  listen = (fn: () => void): (() => void) => {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  };
  snapshot = (): number => this.version;

  /** Subscribes (which starts the relay's stream) and then sends the filter. */
  async start(): Promise<void> {
    if (this.#sub) return;
    this.#set('starting');
    const sub = this.#client.peer.subscribe<TraceBatch>(TRACE_TOPIC, (batch) => this.#receive(batch));
    this.#sub = sub;
    try {
      await sub.ready;
      this.rate = (await this.#client.trace(this.filter)).rate;
      if (this.#sub === sub) this.#set('live');
    } catch (err) {
      if (this.#sub === sub) this.#set('error', describeError(err));
    }
  }

  /** Sends a new filter to the relay; rejects (and keeps the old filter) when it refuses. */
  async setFilter(filter: TraceFilter): Promise<void> {
    this.rate = (await this.#client.trace(filter)).rate;
    this.filter = filter;
    this.#set('live');
  }

  /** After a reconnection the relay has a new session: send the filter again. */
  resume(): void {
    if (!this.#sub) return;
    this.#client.trace(this.filter).then(
      () => this.#set('live'),
      (err: unknown) => this.#set('error', describeError(err)),
    );
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.#schedule();
    this.#bump();
  }

  clear(): void {
    this.events = [];
    this.#incoming = [];
    this.waiting = 0;
    this.dropped = 0;
    this.received = 0;
    this.saturatedAt = undefined;
    this.#bump();
  }

  stop(): void {
    this.#sub?.unsubscribe();
    this.#sub = undefined;
    if (this.#frame !== undefined) cancelAnimationFrame(this.#frame);
    this.#frame = undefined;
    this.state = 'idle';
  }

  #receive(batch: TraceBatch): void {
    const events = Array.isArray(batch?.events) ? batch.events : [];
    this.dropped += typeof batch?.dropped === 'number' ? batch.dropped : 0;
    if (batch?.saturated === true) this.saturatedAt = Date.now();
    this.received += events.length;
    for (const e of events) this.#incoming.push({ ...e, seq: this.#seq++ });
    if (this.#incoming.length > TRACE_LIMIT) this.#incoming.splice(0, this.#incoming.length - TRACE_LIMIT);
    if (this.paused) {
      this.waiting = this.#incoming.length;
      this.#bump();
      return;
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#frame !== undefined) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = undefined;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.paused || this.#incoming.length === 0) return;
    const merged = this.events.concat(this.#incoming);
    this.events = merged.length > TRACE_LIMIT ? merged.slice(merged.length - TRACE_LIMIT) : merged;
    this.#incoming = [];
    this.waiting = 0;
    this.#bump();
  }

  #set(state: TraceState, error?: string): void {
    this.state = state;
    this.error = error;
    this.#bump();
  }

  #bump(): void {
    this.version++;
    for (const fn of this.#listeners) fn();
  }
}
