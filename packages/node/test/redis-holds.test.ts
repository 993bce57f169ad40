/** The Redis Streams hold store over a real redis-server: limits, duplicates, take, expiry reported once. */
import type { ExpiredHold, HeldMessage } from '@missive/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisHoldStore } from '../src/backplane/holds.js';
import { redisAvailable, REDIS_MISSING, startRedis, type RedisServer } from './fixtures/redis.js';

const enabled = redisAvailable();
if (!enabled) console.warn(REDIS_MISSING);
let redis: RedisServer;
beforeAll(async () => {
  if (enabled) redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const limits = { holdMaxMessages: 3, holdMaxBytes: 1_000_000, holdMaxTotalBytes: 1_000_000, holdTtl: 60_000 };
const msg = (seq: number, at = Date.now()): HeldMessage => ({ unit: new Uint8Array([0, 0, 0, 1, seq]), origin: 'o1', seq, sender: 'alice', at });
let n = 0;

describe.skipIf(!enabled)('the Redis hold store', () => {
  it('holds up to its limits, keeps one copy of a resend, and hands them over once, in order', async () => {
    const prefix = `h${n++}`;
    const a = redisHoldStore({ redis: redis.url, prefix, limits });
    const b = redisHoldStore({ redis: redis.url, prefix, limits });
    try {
      expect(await a.hold('ns', 'bob', msg(1))).toBe('held');
      expect(await b.hold('ns', 'bob', msg(1))).toBe('duplicate');
      expect(await b.hold('ns', 'bob', msg(2))).toBe('held');
      expect(await a.hold('ns', 'bob', msg(3))).toBe('held');
      expect(await a.hold('ns', 'bob', msg(4))).toBe('full');
      const got: number[] = [];
      await b.take('ns', 'bob', (u) => got.push(u[4]!));
      expect(got).toEqual([1, 2, 3]);
      const again: number[] = [];
      await a.take('ns', 'bob', (u) => again.push(u[4]!));
      expect(again).toEqual([]);
      expect(await a.hold('ns', 'bob', msg(1))).toBe('held');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('expires what ran out, each entry reported by exactly one relay, and frees its bytes', async () => {
    const prefix = `h${n++}`;
    const stores = [redisHoldStore({ redis: redis.url, prefix, limits }), redisHoldStore({ redis: redis.url, prefix, limits })];
    try {
      const old = Date.now() - 120_000;
      await stores[0]!.hold('ns', 'carol', msg(1, old));
      await stores[0]!.hold('ns', 'carol', msg(2, old));
      await stores[1]!.hold('ns', 'carol', msg(3));
      const reported: ExpiredHold[] = [];
      await expect
        .poll(
          () => {
            for (const s of stores) s.expire(Date.now() - 60_000, (e) => reported.push(e));
            return reported.length;
          },
          { timeout: 10_000, interval: 300 },
        )
        .toBe(2);
      expect(reported.map((e) => e.seq).sort()).toEqual([1, 2]);
      expect(reported[0]).toMatchObject({ namespace: 'ns', name: 'carol', sender: 'alice', origin: 'o1' });
      const left: number[] = [];
      await stores[1]!.take('ns', 'carol', (u) => left.push(u[4]!));
      expect(left).toEqual([3]);
      await expect.poll(() => {
        stores[0]!.expire(0, () => {});
        return stores[0]!.bytes;
      }, { timeout: 5000, interval: 300 }).toBe(0);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});

describe.skipIf(!enabled)('the Redis bus', () => {
  it('holds at most maxPendingBytes for a Redis that stalls, refusing the rest, and carries on when it answers again', async () => {
    const { redisBackplane } = await import('../src/backplane/redis.js');
    const { encodeData, BusMsg, Kind, BodyCodec } = await import('@missive/core/internal');
    const bus = redisBackplane({ redis: redis.url, prefix: `bus${n++}`, maxPendingBytes: 1024 * 1024 });
    await bus.start({ message: () => {}, relayDown: () => {} });
    const frame = encodeData(BusMsg.Pub, 'ns', '', { kind: Kind.Pub, flags: BodyCodec.Raw, topic: 't', from: 'a', body: new Uint8Array(64 * 1024) });
    try {
      redis.pause();
      let accepted = 0;
      let refused = 0;
      for (let i = 0; i < 100; i++) {
        if (bus.send('other', frame)) accepted++;
        else refused++;
        await new Promise((r) => setImmediate(r));
      }
      expect(refused).toBeGreaterThan(0);
      expect(bus.pendingBytes).toBeLessThanOrEqual(1024 * 1024);
      expect(accepted * frame.length).toBeLessThanOrEqual(1024 * 1024 + 64);
      redis.resume();
      await expect.poll(() => bus.pendingBytes, { timeout: 5000 }).toBe(0);
      expect(bus.send('other', frame)).toBe(true);
    } finally {
      redis.resume();
      await bus.close();
    }
  });
});
