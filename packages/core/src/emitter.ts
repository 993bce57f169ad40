/** A small typed event emitter (mitt-shaped). `on` returns the function that removes the listener. */
export type Listener<T> = (event: T) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(type: K, fn: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(fn as Listener<never>);
    this.listenerAdded(type);
    return () => this.off(type, fn);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof Events>(type: K, fn: Listener<Events[K]>): () => void {
    const off = this.on(type, (e) => {
      off();
      fn(e);
    });
    return off;
  }

  off<K extends keyof Events>(type: K, fn: Listener<Events[K]>): void {
    if (this.#listeners.get(type)?.delete(fn as Listener<never>)) this.listenerRemoved(type);
  }

  /** Whether anyone listens (so costly events are built only when wanted). */
  listens<K extends keyof Events>(type: K): boolean {
    const set = this.#listeners.get(type);
    return set !== undefined && set.size > 0;
  }

  protected emit<K extends keyof Events>(type: K, event: Events[K]): void {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) (fn as Listener<Events[K]>)(event);
  }

  /** Hook for subclasses that start work when the first listener of a type arrives. */
  protected listenerAdded(_type: keyof Events): void {}

  /** Hook for subclasses that stop work when listeners of a type go. */
  protected listenerRemoved(_type: keyof Events): void {}
}
