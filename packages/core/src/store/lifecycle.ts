/**
 * The open/close lifecycle of a store whose storage takes time to open and close (a file, an
 * IndexedDB database), written once so FileStore and IdbStore behave alike where the store
 * compliance suite looks: one open or close at a time; `open()` while open resolves with the
 * current state once the changes asked for so far are written; `open()` during a close waits for
 * it and opens again; `close()` is idempotent and waits for an open under way; and changes are
 * refused with ClosedError outside `open`.
 */
import { ClosedError } from '../errors.js';

/** Where a store is in its lifecycle. */
export type StoreStatus = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/** What the lifecycle asks of its store. */
export interface StoreLifecycleHooks<S> {
  /** Opens the storage and loads its state; when it rejects, it has left nothing open. */
  open(): Promise<void>;
  /** Writes what is queued and closes the storage; it is closed even when this rejects. */
  close(): Promise<void>;
  /** Resolves once every change asked for so far is written (or has failed). */
  idle(): Promise<void>;
  /** The state `open()` resolves with. */
  snapshot(): S;
}

/** Runs a store's `open()` and `close()` (see the module comment for the rules). */
export class StoreLifecycle<S> {
  readonly #what: string;
  readonly #hooks: StoreLifecycleHooks<S>;
  #status: StoreStatus = 'new';
  #opening: Promise<S> | undefined;
  #closing: Promise<void> | undefined;

  /** @param what the store's name in ClosedError messages, e.g. `file store`. */
  constructor(what: string, hooks: StoreLifecycleHooks<S>) {
    this.#what = what;
    this.#hooks = hooks;
  }

  get status(): StoreStatus {
    return this.#status;
  }

  /** The store's `open()`. */
  open(): Promise<S> {
    switch (this.#status) {
      case 'opening':
        return this.#opening!;
      case 'open':
        return this.#hooks.idle().then(() => this.#hooks.snapshot());
      case 'closing':
        return this.#closing!.then(
          () => this.open(),
          () => this.open(),
        );
      default: {
        this.#status = 'opening';
        const opening = this.#hooks.open().then(
          () => {
            this.#status = 'open';
            this.#opening = undefined;
            return this.#hooks.snapshot();
          },
          (err: unknown) => {
            this.#status = 'closed';
            this.#opening = undefined;
            throw err;
          },
        );
        this.#opening = opening;
        return opening;
      }
    }
  }

  /** The store's `close()`. */
  close(): Promise<void> {
    switch (this.#status) {
      case 'closing':
        return this.#closing!;
      case 'opening':
        return this.#opening!.then(
          () => this.close(),
          () => undefined,
        );
      case 'open': {
        this.#status = 'closing';
        const closing = this.#hooks.close().finally(() => {
          this.#status = 'closed';
          this.#closing = undefined;
        });
        this.#closing = closing;
        return closing;
      }
      default:
        return Promise.resolve();
    }
  }

  /** The ClosedError a change gets unless the store is open; undefined when it is. */
  notOpen(): ClosedError | undefined {
    if (this.#status === 'new' || this.#status === 'opening') return new ClosedError(`${this.#what} is not open (await open() first)`);
    if (this.#status !== 'open') return new ClosedError(`${this.#what} is closed`);
    return undefined;
  }
}
