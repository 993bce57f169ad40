/**
 * Evaluated first by the package entry: @missive/browser needs a browser (a window or a worker),
 * and the wrong platform fails here, at import, rather than at the first socket or store.
 *
 * The rule: both `WebSocket` and `indexedDB` must be globals. Node 20 has neither; Node 22,
 * Deno and Bun have a WebSocket but no IndexedDB. A test environment that provides both (jsdom
 * with fake-indexeddb) passes the check and is on its own.
 */
const g = globalThis as { WebSocket?: unknown; indexedDB?: unknown };
if (typeof g.WebSocket !== 'function' || typeof g.indexedDB !== 'object' || g.indexedDB === null) {
  const missing = [typeof g.WebSocket !== 'function' ? 'WebSocket' : '', typeof g.indexedDB !== 'object' || g.indexedDB === null ? 'indexedDB' : '']
    .filter(Boolean)
    .join(' and ');
  throw new Error(
    `@missive/browser runs in browsers (a page or a worker): this environment has no global ${missing}. ` +
      'In Node, import @missive/node instead (the same Peer API over the ws package, with a file outbox).',
  );
}

export {};
