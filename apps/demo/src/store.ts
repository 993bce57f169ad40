/** A tiny external store for React's useSyncExternalStore: immutable state, replaced on update. */
export class Store<S> {
  #state: S;
  readonly #listeners = new Set<() => void>();

  constructor(initial: S) {
    this.#state = initial;
  }

  get = (): S => this.#state;

  subscribe = (fn: () => void): (() => void) => {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  };

  update(fn: (s: S) => S): void {
    const next = fn(this.#state);
    if (next === this.#state) return;
    this.#state = next;
    for (const l of this.#listeners) l();
  }
}
