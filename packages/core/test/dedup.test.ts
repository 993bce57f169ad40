/** DedupTable: the one bounded model of a receiver's dedup state (Peer and every store use it). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_DEDUP_STREAMS, DedupTable } from '../src/internal.js';

describe('DedupTable', () => {
  it('get - is 0 for an unknown stream and the last mark set for a known one', () => {
    const t = new DedupTable();
    expect(t.get('a\u0000me')).toBe(0);
    expect(t.has('a\u0000me')).toBe(false);
    t.set('a\u0000me', 3);
    t.set('a\u0000me', 5);
    expect(t.get('a\u0000me')).toBe(5);
    expect(t.has('a\u0000me')).toBe(true);
    expect(t.size).toBe(1);
  });

  it('set - beyond max forgets the least recently updated stream and returns its key', () => {
    const t = new DedupTable(3);
    expect([t.set('a', 1), t.set('b', 1), t.set('c', 1)]).toEqual([undefined, undefined, undefined]);
    // Updating `a` makes it the most recent, so `b` is the one forgotten next.
    expect(t.set('a', 2)).toBeUndefined();
    expect(t.set('d', 1)).toBe('b');
    expect([...t.entries()]).toEqual([['c', 1], ['a', 2], ['d', 1]]);
    expect(t.size).toBe(3);
    expect(t.get('b')).toBe(0);
  });

  it('constructor - takes initial marks oldest first, keeping only the newest max of them', () => {
    const t = new DedupTable(2, new Map([['x', 1], ['y', 2], ['z', 3]]));
    expect([...t.entries()]).toEqual([['y', 2], ['z', 3]]);
    expect(t.max).toBe(2);
  });

  it('max - defaults to 10,000 and holds after 50,000 distinct streams', () => {
    const t = new DedupTable();
    expect(t.max).toBe(DEFAULT_DEDUP_STREAMS);
    expect(DEFAULT_DEDUP_STREAMS).toBe(10_000);
    for (let i = 0; i < 50_000; i++) t.set(`o${i}\u0000me`, 1);
    expect(t.size).toBe(10_000);
    expect(t.entries().next().value).toEqual(['o40000\u0000me', 1]);
  });

  it('constructor - throws RangeError for a bound that is not a positive integer', () => {
    for (const max of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new DedupTable(max)).toThrow(RangeError);
  });
});
