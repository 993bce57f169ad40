/**
 * A DirectConnector over in-memory transport pairs, for testing direct links without WebRTC:
 * the signalling is real (SIGNAL frames through the Router), the channel a memory pair. The
 * board lets a test refuse attempts (as failed ICE would), cut a link, or make it swallow
 * frames (a stalled channel).
 */
import { memoryTransportPair, type CloseInfo, type DirectAttempt, type DirectConnector, type Transport, type TransportHandlers } from '../../src/index.js';

interface Offer {
  id: number;
}

export class Board {
  /** While true, attempts fail (the responder answers nothing; the initiator's attempt rejects). */
  failing = false;
  /** While true, the initiator reports its end open only 50 ms after the channel exists (the other end writes first). */
  slowOpen = false;
  /** Every channel end opened, newest last, by owner name. */
  readonly ends: { owner: string; remote: string; end: Lossy }[] = [];
  readonly #pending = new Map<number, Transport>();
  #next = 1;
  attempts = 0;
  /** The owner of each attempt that initiated (made the offer), in order. */
  readonly initiators: string[] = [];
  /** Each attempt as `owner->remote`, in order. */
  readonly pairs: string[] = [];

  connector(owner: string): DirectConnector {
    return {
      open: (remote, { initiator, signal }): DirectAttempt => {
        this.attempts++;
        this.pairs.push(`${owner}->${remote}`);
        let resolve!: (t: Transport) => void;
        let reject!: (err: Error) => void;
        const ready = new Promise<Transport>((res, rej) => ((resolve = res), (reject = rej)));
        ready.catch(() => {});
        let closed = false;
        let opened: Transport | undefined;
        const open = (t: Transport): void => {
          if (closed) return t.close({ code: 1000, reason: 'attempt closed' });
          const end = new Lossy(t);
          this.ends.push({ owner, remote, end });
          opened = end;
          // A WebRTC end may receive before its own side reports open: let data arrive first.
          if (this.slowOpen && initiator) setTimeout(() => resolve(end), 50);
          else resolve(end);
        };
        if (initiator) this.initiators.push(owner);
        if (initiator) {
          if (this.failing) queueMicrotask(() => reject(new Error('ICE failed')));
          else signal({ id: this.#next++ } satisfies Offer);
        }
        return {
          signal: (data) => {
            const { id } = data as Offer;
            if (initiator) {
              const t = this.#pending.get(id);
              this.#pending.delete(id);
              if (t) open(t);
            } else {
              if (this.failing) return;
              const [mine, theirs] = memoryTransportPair();
              this.#pending.set(id, theirs);
              open(mine);
              signal({ id });
            }
          },
          ready,
          close: () => {
            closed = true;
            opened?.close({ code: 1000, reason: 'attempt closed' });
            reject(new Error('attempt closed'));
          },
        };
      },
    };
  }

  /** The newest channel end `owner` opened to `remote`. */
  end(owner: string, remote: string): Lossy {
    const e = [...this.ends].reverse().find((x) => x.owner === owner && x.remote === remote);
    if (!e) throw new Error(`no channel from ${owner} to ${remote}`);
    return e.end;
  }
}

/**
 * A transport that can be made to swallow what is sent on it (a stalled channel). Like the
 * browser's data channel transport, it takes messages from the moment the channel exists, holds
 * them until `listen`, and hands the held ones over synchronously inside `listen` (unless paused).
 */
export class Lossy implements Transport {
  swallow = false;
  sent = 0;
  #handlers: TransportHandlers | undefined;
  #held: Uint8Array[] = [];
  #paused = false;
  #closed: CloseInfo | undefined;

  constructor(readonly inner: Transport) {
    inner.listen({
      message: (data) => {
        if (this.#handlers && !this.#paused && this.#held.length === 0) this.#handlers.message(data);
        else this.#held.push(data);
      },
      drain: () => this.#handlers?.drain(),
      close: (info) => {
        this.#closed = info;
        if (this.#handlers) this.#flush();
        this.#handlers?.close(info);
      },
    });
  }
  get status() {
    return this.inner.status;
  }
  get bufferedAmount() {
    return this.inner.bufferedAmount;
  }
  send(data: Uint8Array): boolean {
    this.sent += data.length;
    return this.swallow ? true : this.inner.send(data);
  }
  listen(h: TransportHandlers): void {
    this.#handlers = h;
    this.#flush();
    if (this.#closed) h.close(this.#closed);
  }
  /** Messages received and not yet handed over (before `listen`, or while paused). */
  get queued(): number {
    return this.#held.length;
  }
  // A browser cannot stop reading a data channel: a pause holds what arrives, and `resume`
  // hands it over at once.
  pause(): void {
    this.#paused = true;
  }
  resume(): void {
    this.#paused = false;
    this.#flush();
  }
  close(info?: Partial<CloseInfo>): void {
    this.inner.close(info);
  }
  #flush(): void {
    while (this.#handlers && !this.#paused && this.#held.length > 0) this.#handlers.message(this.#held.shift()!);
  }
}
