/** MemoryHoldStore on its own: order, resends, the three bounds, expiry and take. */
import { describe, expect, it } from 'vitest';
import { HELD_OVERHEAD, MemoryHoldStore, type ExpiredHold } from '../../src/index.js';

const unit = (n: number): Uint8Array => new Uint8Array(n);
const limits = { holdMaxMessages: 3, holdMaxBytes: 10_000, holdMaxTotalBytes: 20_000 };

describe('MemoryHoldStore', () => {
  it('hold and take - messages come back once, in arrival order; a resend is kept once', () => {
    const s = new MemoryHoldStore(limits);
    expect(s.hold('ns', 'bob', { unit: unit(10), origin: 'o', seq: 1, sender: 'alice', at: 1 })).toBe('held');
    expect(s.hold('ns', 'bob', { unit: unit(20), origin: 'o', seq: 2, sender: 'alice', at: 2 })).toBe('held');
    expect(s.hold('ns', 'bob', { unit: unit(10), origin: 'o', seq: 1, sender: 'alice', at: 3 })).toBe('duplicate');
    expect(s.messages).toBe(2);
    expect(s.bytes).toBe(30 + 2 * HELD_OVERHEAD);
    const got: number[] = [];
    s.take('ns', 'bob', (u) => got.push(u.length));
    expect(got).toEqual([10, 20]);
    expect(s.messages).toBe(0);
    expect(s.bytes).toBe(0);
    s.take('ns', 'bob', () => expect.fail('taken twice'));
  });

  it('bounds - per-name count, per-name bytes and total bytes each refuse with full, changing nothing', () => {
    const s = new MemoryHoldStore(limits);
    for (let i = 0; i < 3; i++) expect(s.hold('ns', 'a', { unit: unit(1), origin: 'o', seq: i, sender: 'x', at: 0 })).toBe('held');
    expect(s.hold('ns', 'a', { unit: unit(1), origin: 'o', seq: 9, sender: 'x', at: 0 })).toBe('full');
    expect(s.hold('ns', 'b', { unit: unit(10_000), origin: 'o', seq: 1, sender: 'x', at: 0 })).toBe('full');
    expect(s.hold('ns', 'b', { unit: unit(9_000), origin: 'o', seq: 1, sender: 'x', at: 0 })).toBe('held');
    expect(s.hold('ns', 'c', { unit: unit(9_000), origin: 'o', seq: 1, sender: 'x', at: 0 })).toBe('full'); // total
    expect(s.messages).toBe(4);
    expect(s.inspect().names.map((n) => [n.name, n.messages])).toEqual([
      ['a', 3],
      ['b', 1],
    ]);
  });

  it('expire - forgets what arrived at or before the cutoff, oldest first, reporting each to tell its sender', () => {
    const s = new MemoryHoldStore(limits);
    s.hold('ns', 'bob', { unit: unit(5), origin: 'o', seq: 1, sender: 'alice', at: 100 });
    s.hold('ns', 'bob', { unit: unit(5), origin: 'o', seq: 2, sender: 'carol', at: 200 });
    const expired: ExpiredHold[] = [];
    s.expire(150, (e) => expired.push(e));
    expect(expired).toEqual([{ namespace: 'ns', name: 'bob', sender: 'alice', origin: 'o', seq: 1 }]);
    expect(s.inspect()).toEqual({ messages: 1, bytes: 5 + HELD_OVERHEAD, names: [{ namespace: 'ns', name: 'bob', messages: 1, bytes: 5 + HELD_OVERHEAD, since: 200 }] });
    s.expire(200, (e) => expired.push(e));
    expect(expired).toHaveLength(2);
    expect(s.inspect().names).toEqual([]);
  });
});
