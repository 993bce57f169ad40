/**
 * MemoryStore beyond the store compliance suite: its dedup state stays within the bound that
 * docs/stores.md promises, however many senders a receiver has heard from.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/index.js';

describe('MemoryStore - dedup bound', () => {
  it('setDedup - after 50,000 distinct senders keeps the 10,000 most recently updated streams', async () => {
    const store = new MemoryStore();
    await store.open();
    for (let i = 0; i < 50_000; i++) await store.setDedup(`o${i}\u0000me`, 1);
    const { dedup } = await store.open();
    expect(dedup.size).toBe(10_000);
    const keys = [...dedup.keys()];
    expect(keys[0]).toBe('o40000\u0000me');
    expect(keys[keys.length - 1]).toBe('o49999\u0000me');
    await store.close();
  });
});
