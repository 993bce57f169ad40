/**
 * A bounded mailbox: messages wait here until `receive` takes them. `receive({ match })` is
 * Erlang's selective receive: it takes the first message that matches and leaves the others in
 * order. A full mailbox refuses new messages (the sender is told LIMIT and retries later)
 * rather than growing.
 */
import { ClosedError, TimeoutError } from './errors.js';

/** A message as it lands in a mailbox. */
export interface Message<T = unknown> {
  /** Unique message id (as returned by `send`; for broadcasts, assigned by the receiver). */
  id: string;
  /** Name of the sender, or its relay-assigned id if it has no name. */
  from: string;
  /** The address it was sent to (`name`, `name/port`, or the group for a broadcast). */
  to: string;
  body: T;
  /** Sender's clock, milliseconds since the epoch. */
  sentAt: number;
}

export interface ReceiveOptions<T = unknown> {
  /** Take the first message for which this returns true; others stay, in order. */
  match?: (msg: Message<T>) => boolean;
  /** Milliseconds to wait before rejecting with TimeoutError. Waits forever if omitted. */
  timeout?: number;
  /** Rejects with the signal's reason when aborted. */
  signal?: AbortSignal;
}

export interface MailboxStats {
  /** Messages waiting now. */
  depth: number;
  /** Most messages ever waiting at once. */
  highWater: number;
  /** Age in ms of the oldest waiting message (0 when empty). */
  oldestAge: number;
  /** Messages accepted since the mailbox was created. */
  received: number;
  /** Messages refused because the mailbox was full. */
  refused: number;
  capacity: number;
}

interface Waiter<T> {
  match: ((msg: Message<T>) => boolean) | undefined;
  resolve(msg: Message<T>): void;
  reject(err: unknown): void;
}

/** Default mailbox capacity in messages. */
export const DEFAULT_MAILBOX_CAPACITY = 1000;

export class Mailbox<T = unknown> implements AsyncIterable<Message<T>> {
  readonly name: string;
  readonly capacity: number;
  // A ring-free queue: `head` advances on take from the front; compacted when half is dead.
  #items: (Message<T> | undefined)[] = [];
  #arrived: number[] = [];
  #head = 0;
  #waiters: Waiter<T>[] = [];
  #highWater = 0;
  #received = 0;
  #refused = 0;
  #closed: Error | undefined;

  constructor(name: string, capacity = DEFAULT_MAILBOX_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('mailbox capacity must be a positive integer');
    this.name = name;
    this.capacity = capacity;
  }

  /** Messages waiting. */
  get size(): number {
    return this.#items.length - this.#head - this.#holes;
  }
  #holes = 0;

  /** Whether one more message would be accepted now. */
  get hasRoom(): boolean {
    return this.#waiters.length > 0 || this.size < this.capacity;
  }

  /**
   * Offers a message: hands it to the first waiting `receive` that matches, else queues it.
   * Returns false (and keeps nothing) when the mailbox is full or closed.
   */
  offer(msg: Message<T>): boolean {
    if (this.#closed) return false;
    for (let i = 0; i < this.#waiters.length; i++) {
      const w = this.#waiters[i]!;
      let matched: boolean;
      try {
        matched = w.match === undefined || w.match(msg);
      } catch (err) {
        // A throwing match fails its own receive; the message goes on to the others.
        this.#waiters.splice(i--, 1);
        w.reject(err);
        continue;
      }
      if (matched) {
        this.#waiters.splice(i, 1);
        this.#received++;
        w.resolve(msg);
        return true;
      }
    }
    if (this.size >= this.capacity) {
      this.#refused++;
      return false;
    }
    this.#items.push(msg);
    this.#arrived.push(Date.now());
    this.#received++;
    if (this.size > this.#highWater) this.#highWater = this.size;
    return true;
  }

  /** Takes the first (matching) message, waiting for one if needed. */
  receive(options: ReceiveOptions<T> = {}): Promise<Message<T>> {
    const { match, timeout, signal } = options;
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(signal.reason);
    let found: Message<T> | undefined;
    try {
      found = this.#take(match);
    } catch (err) {
      return Promise.reject(err);
    }
    if (found) return Promise.resolve(found);
    return new Promise<Message<T>>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
      };
      const onAbort = (): void => {
        cleanup();
        reject(signal!.reason);
      };
      const waiter: Waiter<T> = {
        match,
        resolve: (m) => {
          cleanup();
          resolve(m);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      this.#waiters.push(waiter);
      if (timeout !== undefined) {
        // The error is made when the deadline passes: capturing a stack costs microseconds, and
        // a consumer that waits for each message would pay it every time.
        timer = setTimeout(() => {
          cleanup();
          reject(new TimeoutError(`no message in mailbox "${this.name}" within ${timeout} ms`));
        }, timeout);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Takes the first (matching) message if one is waiting, without waiting. */
  tryReceive(match?: (msg: Message<T>) => boolean): Message<T> | undefined {
    return this.#take(match);
  }

  /**
   * Removes every waiting message (receivers that wait keep waiting) and returns how many.
   * They were acked to their senders when they arrived: purged, they are gone.
   */
  purge(): number {
    const n = this.size;
    this.#items = [];
    this.#arrived = [];
    this.#head = 0;
    this.#holes = 0;
    return n;
  }

  /** Up to `n` waiting messages, oldest first, without taking them. */
  peek(n = 10): Message<T>[] {
    const out: Message<T>[] = [];
    for (let i = this.#head; i < this.#items.length && out.length < n; i++) {
      const m = this.#items[i];
      if (m) out.push(m);
    }
    return out;
  }

  stats(): MailboxStats {
    let oldest = 0;
    for (let i = this.#head; i < this.#items.length; i++) {
      if (this.#items[i]) {
        oldest = Date.now() - this.#arrived[i]!;
        break;
      }
    }
    return {
      depth: this.size,
      highWater: this.#highWater,
      oldestAge: oldest,
      received: this.#received,
      refused: this.#refused,
      capacity: this.capacity,
    };
  }

  /** Receives messages forever, until the mailbox closes (then the loop ends). */
  [Symbol.asyncIterator](): AsyncIterator<Message<T>> {
    // By hand rather than an async generator: one promise per message (receive's), where a
    // generator's `yield await` adds its own queue and promise hops to every step.
    let done = false;
    const end: IteratorResult<Message<T>> = { value: undefined, done: true };
    return {
      next: (): Promise<IteratorResult<Message<T>>> => {
        if (done) return Promise.resolve(end);
        return this.receive().then(
          (value) => ({ value, done: false }),
          (err: unknown) => {
            done = true;
            if (err instanceof ClosedError) return end;
            throw err;
          },
        );
      },
      return: (): Promise<IteratorResult<Message<T>>> => {
        done = true;
        return Promise.resolve(end);
      },
    };
  }

  /** Rejects every waiting `receive` with `error`; later calls reject too. Queued messages stay readable by `peek`. */
  close(error: Error = new ClosedError(`mailbox "${this.name}" closed`)): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }

  #take(match: ((msg: Message<T>) => boolean) | undefined): Message<T> | undefined {
    for (let i = this.#head; i < this.#items.length; i++) {
      const m = this.#items[i];
      if (!m) continue;
      if (match !== undefined && !match(m)) continue;
      if (i === this.#head) {
        this.#items[i] = undefined;
        this.#head++;
        // Skip holes left by earlier selective takes.
        while (this.#head < this.#items.length && this.#items[this.#head] === undefined) {
          this.#head++;
          this.#holes--;
        }
      } else {
        this.#items[i] = undefined;
        this.#holes++;
      }
      this.#compact();
      return m;
    }
    return undefined;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#arrived = this.#arrived.slice(this.#head);
      this.#head = 0;
    }
    if (this.#holes > 1024 && this.#holes * 2 > this.#items.length - this.#head) {
      const items: (Message<T> | undefined)[] = [];
      const arrived: number[] = [];
      for (let i = this.#head; i < this.#items.length; i++) {
        if (this.#items[i]) {
          items.push(this.#items[i]);
          arrived.push(this.#arrived[i]!);
        }
      }
      this.#items = items;
      this.#arrived = arrived;
      this.#head = 0;
      this.#holes = 0;
    }
  }
}
