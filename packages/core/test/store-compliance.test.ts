/** MemoryStore runs the store compliance suite; its storage is the object, so reopen returns it. */
import { describe, it } from 'vitest';
import { MemoryStore } from '../src/index.js';
import { storeCompliance } from '../src/testing.js';

storeCompliance('MemoryStore', { describe, it }, async (options) => {
  const store = new MemoryStore(options);
  return { store, reopen: () => store };
});
