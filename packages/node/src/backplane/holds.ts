/**
 * Held messages in Redis Streams (docs/scaling.md): a durable message for a name that is offline
 * everywhere is appended to that name's stream, so a peer that comes back on any relay gets it.
 * Every step is one Lua script, atomic across relays: `hold` checks the duplicate set and the
 * limits (per name, and `holdMaxTotalBytes` for the whole cluster) before `XADD`; `take` reads
 * and deletes the stream in one go, so two relays never both deliver it; `expire` removes what
 * ran out and reports each entry to exactly one relay, which tells its sender.
 */
import { HELD_OVERHEAD, type ExpiredHold, type HeldMessage, type HoldLimits, type HoldResult, type HoldSnapshot, type HoldStore } from '@missive/core';
import { Redis } from 'ioredis';

export interface RedisHoldStoreOptions {
  redis: string;
  prefix?: string;
  limits: HoldLimits & { holdTtl: number };
}

// KEYS: stream, ids set, bytes of the name, total bytes, names zset
// ARGV: unit, origin, seq, sender, at, id (origin:seq), counted bytes, maxMessages, maxBytes, maxTotal, member, ttl ms
const HOLD = `
if redis.call('SISMEMBER', KEYS[2], ARGV[6]) == 1 then return 'duplicate' end
local n = redis.call('XLEN', KEYS[1])
local b = tonumber(redis.call('GET', KEYS[3]) or '0')
local t = tonumber(redis.call('GET', KEYS[4]) or '0')
local add = tonumber(ARGV[7])
if n >= tonumber(ARGV[8]) or b + add > tonumber(ARGV[9]) or t + add > tonumber(ARGV[10]) then return 'full' end
redis.call('XADD', KEYS[1], '*', 'u', ARGV[1], 'o', ARGV[2], 'q', ARGV[3], 's', ARGV[4], 'a', ARGV[5], 'b', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[6])
redis.call('INCRBY', KEYS[3], add)
redis.call('INCRBY', KEYS[4], add)
if n == 0 then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[11]) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[12]) end
return 'held'
`;
// KEYS: stream, ids set, bytes of the name, total bytes, names zset; ARGV: member
const TAKE = `
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
local b = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if b > 0 then redis.call('DECRBY', KEYS[4], b) end
redis.call('ZREM', KEYS[5], ARGV[1])
local out = {}
for i, e in ipairs(entries) do
  local f = e[2]
  for j = 1, #f, 2 do if f[j] == 'u' then out[#out + 1] = f[j + 1] end end
end
return out
`;
// KEYS: stream, ids set, bytes of the name, total bytes, names zset; ARGV: before (ms), member
// Returns the expired entries' [origin, seq, sender] triples.
const EXPIRE = `
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
local out = {}
local freed = 0
local oldest = nil
for i, e in ipairs(entries) do
  local f = {}
  for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
  if tonumber(f['a']) <= tonumber(ARGV[1]) then
    redis.call('XDEL', KEYS[1], e[1])
    redis.call('SREM', KEYS[2], f['o'] .. ':' .. f['q'])
    freed = freed + tonumber(f['b'])
    out[#out + 1] = f['o']; out[#out + 1] = f['q']; out[#out + 1] = f['s']
  elseif not oldest then oldest = f['a'] end
end
if freed > 0 then
  redis.call('DECRBY', KEYS[3], freed)
  redis.call('DECRBY', KEYS[4], freed)
end
if oldest then redis.call('ZADD', KEYS[5], oldest, ARGV[2]) else
  redis.call('ZREM', KEYS[5], ARGV[2])
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
end
return out
`;

/** A HoldStore over Redis Streams, shared by every relay of a cluster. */
export function redisHoldStore(options: RedisHoldStoreOptions): HoldStore & { close(): Promise<void> } {
  const prefix = options.prefix ?? 'missive';
  const l = options.limits;
  const ttl = Math.max(l.holdTtl * 2, 10_000);
  const redis = new Redis(options.redis, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(50 * 2 ** Math.min(n, 6), 2000) });
  redis.on('error', () => {});
  // Until the first connection is up, operations wait for it (bounded); later, while Redis is
  // down, they fail at once.
  let first: Promise<void> | undefined = new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 5000);
    t.unref();
    redis.once('ready', () => {
      clearTimeout(t);
      first = undefined;
      resolve();
    });
  });
  const up = async (): Promise<void> => {
    if (first) await first;
  };
  const namesKey = `${prefix}:held:names`;
  const totalKey = `${prefix}:held:bytes`;
  const keys = (ns: string, name: string): string[] => {
    const base = `${prefix}:{${ns}}:held:${name}`;
    return [base, `${base}:ids`, `${base}:bytes`, totalKey, namesKey];
  };
  const member = (ns: string, name: string): string => `${ns}\u0000${name}`;
  // This relay's view, refreshed by the sweep.
  let messages = 0;
  let bytes = 0;
  let names: HoldSnapshot['names'] = [];
  let learnt: ExpiredHold[] = [];
  let running = false;
  let lastRun = 0;
  // Messages this relay held since the last refresh, so `messages` never reads 0 while some are
  // held (the Router keeps its sweep running while it is not).
  let pending = 0;

  const refresh = async (before: number): Promise<void> => {
    const due = await redis.zrangebyscore(namesKey, '-inf', before);
    for (const m of due) {
      const i = m.indexOf('\u0000');
      const ns = m.slice(0, i);
      const name = m.slice(i + 1);
      const out = (await redis.eval(EXPIRE, 5, ...keys(ns, name), before, m)) as string[];
      for (let j = 0; j + 2 < out.length; j += 3) learnt.push({ namespace: ns, name, origin: out[j]!, seq: Number(out[j + 1]), sender: out[j + 2]! });
    }
    const all = await redis.zrange(namesKey, 0, 999, 'WITHSCORES');
    // One round trip for every name's count and bytes, and the total.
    const p = redis.pipeline();
    const held: { namespace: string; name: string; since: number }[] = [];
    for (let j = 0; j + 1 < all.length; j += 2) {
      const m = all[j]!;
      const i = m.indexOf('\u0000');
      const namespace = m.slice(0, i);
      const name = m.slice(i + 1);
      const [k, , bk] = keys(namespace, name);
      p.xlen(k!).get(bk!);
      held.push({ namespace, name, since: Number(all[j + 1]) });
    }
    p.get(totalKey);
    const results = (await p.exec()) ?? [];
    const value = (i: number): unknown => results[i]?.[1];
    names = held.map((h, i) => ({ ...h, messages: Number(value(2 * i) ?? 0), bytes: Number(value(2 * i + 1) ?? 0) }));
    messages = names.reduce((n, h) => n + h.messages, 0);
    bytes = Number(value(2 * held.length) ?? 0);
    pending = 0;
  };

  return {
    shared: true,
    get messages() {
      return messages + pending;
    },
    get bytes() {
      return bytes;
    },
    async hold(ns, name, m: HeldMessage): Promise<HoldResult> {
      await up();
      const counted = m.unit.length + HELD_OVERHEAD;
      const r = (await redis.eval(
        HOLD,
        5,
        ...keys(ns, name),
        Buffer.from(m.unit.buffer, m.unit.byteOffset, m.unit.length),
        m.origin,
        m.seq,
        m.sender,
        m.at,
        `${m.origin}:${m.seq}`,
        counted,
        l.holdMaxMessages,
        l.holdMaxBytes,
        l.holdMaxTotalBytes,
        member(ns, name),
        ttl,
      )) as HoldResult;
      if (r === 'held') pending++;
      return r;
    },
    async take(ns, name, deliver) {
      await up();
      const units = (await redis.callBuffer('EVAL', TAKE, 5, ...keys(ns, name), member(ns, name))) as Buffer[];
      for (const u of units) deliver(new Uint8Array(u.buffer, u.byteOffset, u.length));
    },
    expire(before, expired) {
      // Report what the last run learnt; start another at most once a second.
      const done = learnt;
      learnt = [];
      for (const e of done) expired(e);
      const now = Date.now();
      if (running || now - lastRun < 1000) return;
      running = true;
      lastRun = now;
      up()
        .then(() => refresh(before))
        .catch(() => {})
        .finally(() => (running = false));
    },
    inspect() {
      return { messages: messages + pending, bytes, names };
    },
    clear() {
      // Shared with the other relays: a relay that closes leaves them for the others.
    },
    async close() {
      redis.disconnect();
    },
  };
}
