/**
 * One tracer per Peer: parts ask `on` before building a trace event (most peers have no trace
 * listener, and an event object per frame is the cost of tracing), and `emit` hands it on.
 */
import type { TraceEvent } from '../trace.js';

export class Tracer {
  /** Whether anyone listens; kept up to date by the Peer as `trace` listeners come and go. */
  on = false;
  readonly #emit: (e: TraceEvent) => void;

  constructor(emit: (e: TraceEvent) => void) {
    this.#emit = emit;
  }

  emit(e: TraceEvent): void {
    if (this.on) this.#emit(e);
  }

  /** A `drop` event for a frame that arrived here and was not delivered. */
  drop(kind: string, f: { from: string; to?: string; body: Uint8Array }, reason: string): void {
    if (this.on) this.#emit({ type: 'drop', kind, from: f.from, to: f.to ?? '', reason, size: f.body.length, at: Date.now() });
  }
}
