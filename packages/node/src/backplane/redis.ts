/**
 * The Redis backplane (docs/scaling.md): a `ClusterBus` over Redis, so that relays sharing one
 * Redis act as one relay. Loaded only when `createRelay({ backplane })` asks for it.
 *
 * - Messages: each relay subscribes to its own channel and to one shared channel, and publishes
 *   to them from one connection, so what a relay sends arrives in order.
 * - Names: one key per claimed name, `SET NX` with a lease the owning relay renews; a claim by the
 *   same session takes the name over at once (a peer that moved to another relay), and a relay
 *   that dies stops renewing, so its names lapse.
 * - Relays: each renews its entry in a sorted set (score: when its lease ends); the others see
 *   an entry past its lease as a dead relay.
 * - Redis down: the bus says so (`healthy` false, the `health` callback), refuses what needs it
 *   at once (no offline queue), and rejoins when Redis is back.
 */
import type { BusClaim, ClusterBus, ClusterHandler, NameOwner } from '@missive/core';
import { BusMsg, encodeBus, randomToken } from '@missive/core/internal';
import { Redis, type RedisOptions } from 'ioredis';

/** Asks every relay for its state (a relay's first message, and after a gap). */
const HELLO = encodeBus([BusMsg.Hello]);

export interface RedisBackplaneOptions {
  /** `redis://host:port/db`. */
  redis: string;
  /** Prefix of every key and channel. @default 'missive' */
  prefix?: string;
  /** How long a name or a relay outlives its last renewal (ms). @default 6000 */
  lease?: number;
  /** This relay's id in the cluster. @default random */
  relayId?: string;
  /**
   * Bytes sent to Redis that it has not acknowledged yet, at most: past it, what would go to
   * another relay is refused (dropped as for a slow consumer; a `send` waits in its sender's
   * outbox, a request fails with LIMIT) instead of piling up in this process. @default 16 MiB
   */
  maxPendingBytes?: number;
  /** Told when Redis is lost or back. */
  log?: (level: 'info' | 'warn', message: string, fields: Record<string, unknown>) => void;
}

// KEYS[1] name key; ARGV: value, session, lease
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return ''
end
local sess = string.match(v, '^[^|]*|[^|]*|(.*)$')
if ARGV[2] ~= '' and sess == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return v
end
return false
`;
// KEYS[1] name key; ARGV: value
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
// KEYS[1] name key; ARGV: value, lease. 1 renewed, 0 lost to another, 2 re-taken after a lapse.
const RENEW = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
`;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Makes the bus for one relay. */
export function redisBackplane(options: RedisBackplaneOptions): ClusterBus & { readonly pendingBytes: number } {
  const prefix = options.prefix ?? 'missive';
  const lease = options.lease ?? 6000;
  const relay = options.relayId ?? `r${randomToken(2)}`;
  if (relay.includes('|')) throw new TypeError('relayId may not contain "|"');
  const log = options.log ?? (() => {});
  const relaysKey = `${prefix}:relays`;
  const allChannel = `${prefix}:all`;
  const ownChannel = `${prefix}:relay:${relay}`;
  const nameKey = (ns: string, name: string): string => `${prefix}:{${ns}}:name:${name}`;
  const value = (o: NameOwner): string => `${o.relay}|${o.id}|${o.session}`;
  const redisOptions: RedisOptions = {
    // Fail fast while Redis is down: what needs it is refused with a clear error, not queued.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: true,
  };
  const cmd = new Redis(options.redis, redisOptions);
  const sub = new Redis(options.redis, { ...redisOptions, enableOfflineQueue: true, maxRetriesPerRequest: null });
  for (const c of [cmd, sub]) c.on('error', () => {}); // reported through 'close'/'ready'
  const held = new Map<string, string>(); // name key → our value
  const heldNames = new Map<string, { namespace: string; name: string; id: string }>(); // name key → whose
  let handler: ClusterHandler | undefined;
  let healthy = false;
  let wasDown = false;
  let closed = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  // One PUBLISH carries a batch: [id length][relay id] then ([u32 length][message])*. Frames,
  // publishes and broadcasts (the data) wait for the end of the tick in one batch per channel;
  // any other message (a change of the registry) first flushes every batch, then goes alone,
  // so everything this relay sends still arrives in the order it was sent.
  const id = enc.encode(relay);
  const batches = new Map<string, Uint8Array[]>();
  let batchBytes = 0;
  let flushing: ReturnType<typeof setImmediate> | undefined;
  const maxPending = options.maxPendingBytes ?? 16 * 1024 * 1024;
  // Bytes of PUBLISHes Redis has not answered yet: what this relay holds for the backplane.
  let pending = 0;
  const emit = (channel: string, msgs: readonly Uint8Array[]): void => {
    let size = 1 + id.length;
    for (const m of msgs) size += 4 + m.length;
    const out = Buffer.allocUnsafe(size);
    out[0] = id.length;
    out.set(id, 1);
    let at = 1 + id.length;
    for (const m of msgs) {
      out.writeUInt32BE(m.length, at);
      out.set(m, at + 4);
      at += 4 + m.length;
    }
    pending += out.length;
    const settle = (): void => void (pending -= out.length);
    cmd.publish(channel, out).then(settle, settle);
  };
  const flush = (): void => {
    if (flushing) clearImmediate(flushing);
    flushing = undefined;
    if (batches.size === 0) return;
    if (healthy && !closed) for (const [channel, msgs] of batches) emit(channel, msgs);
    batches.clear();
    batchBytes = 0;
  };
  // A data message (a frame, publish or broadcast) starts with 0xc1 (core's encodeData), a byte
  // no msgpack message starts with.
  const isData = (data: Uint8Array): boolean => data[0] === 0xc1;
  const publish = (channel: string, data: Uint8Array): boolean => {
    if (!healthy || closed) return false;
    // A Redis that does not keep up: refuse rather than hold without bound.
    if (pending + batchBytes + data.length > maxPending && isData(data)) return false;
    if (!isData(data)) {
      flush();
      emit(channel, [data]);
      return true;
    }
    let list = batches.get(channel);
    if (!list) batches.set(channel, (list = []));
    // Not changed after the call (the ClusterBus contract): kept as is until the flush.
    list.push(data);
    batchBytes += data.length;
    if (batchBytes >= 256 * 1024) flush();
    else flushing ??= setImmediate(flush);
    return true;
  };

  const setHealth = (ok: boolean, reason: string): void => {
    if (ok === healthy) return;
    healthy = ok;
    log(ok ? 'info' : 'warn', ok ? 'backplane reachable' : 'backplane unreachable', { relay, reason });
    handler?.health?.(ok, reason);
  };

  const beat = async (): Promise<void> => {
    if (closed || !healthy) return;
    const now = Date.now();
    try {
      await cmd.zadd(relaysKey, now + lease, relay);
      const dead = await cmd.zrangebyscore(relaysKey, '-inf', now);
      for (const r of dead) {
        if (r === relay) continue;
        await cmd.zrem(relaysKey, r);
        handler?.relayDown(r);
      }
      if (held.size > 0) {
        const p = cmd.pipeline();
        const keys = [...held];
        for (const [k, v] of keys) p.eval(RENEW, 1, k, v, lease);
        const results = (await p.exec()) ?? [];
        // 0: another relay holds the name now (ours lapsed during a gap, and it claimed it):
        // our peer must not go on using it.
        results.forEach(([err, r], i) => {
          if (err || r !== 0) return;
          const [k, v] = keys[i]!;
          if (held.get(k) !== v) return;
          held.delete(k);
          const who = heldNames.get(k);
          heldNames.delete(k);
          if (who) handler?.nameLost?.(who.namespace, who.name, who.id);
        });
      }
    } catch (err) {
      setHealth(false, err instanceof Error ? err.message : String(err));
    }
  };

  cmd.on('close', () => {
    if (!closed) {
      wasDown = true;
      setHealth(false, 'connection to Redis lost');
    }
  });
  cmd.on('ready', () => {
    setHealth(true, 'connected');
    if (wasDown) {
      wasDown = false;
      // Back after a gap: renew at once, and tell the others everything again (they may have
      // taken this relay for dead).
      void beat().then(() => {
        publish(allChannel, HELLO);
        handler?.rejoined?.();
      });
    }
  });

  sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
    const n = message[0] ?? 0;
    if (message.length < 1 + n) return;
    const from = dec.decode(message.subarray(1, 1 + n));
    if (from === relay) return;
    for (let at = 1 + n; at + 4 <= message.length; ) {
      const len = message.readUInt32BE(at);
      if (at + 4 + len > message.length) return; // a torn batch: drop the rest
      handler?.message(from, new Uint8Array(message.buffer, message.byteOffset + at + 4, len));
      at += 4 + len;
    }
  });

  return {
    relay,
    get healthy() {
      return healthy;
    },
    /** Bytes waiting for Redis (published, not yet answered, plus this tick's batches). */
    get pendingBytes() {
      return pending + batchBytes;
    },
    async start(h) {
      handler = h;
      await Promise.all([cmd.connect(), sub.connect()]);
      await sub.subscribe(allChannel, ownChannel);
      healthy = true;
      await beat();
      timer = setInterval(() => void beat(), Math.max(100, Math.floor(lease / 3)));
      timer.unref();
      // Everyone: send me your state.
      publish(allChannel, HELLO);
    },
    send(to, data) {
      return publish(`${prefix}:relay:${to}`, data);
    },
    broadcast(data) {
      return publish(allChannel, data);
    },
    async claim(ns, name, owner) {
      if (!healthy) throw new Error('the cluster backplane (Redis) is unreachable: names cannot be claimed now');
      const k = nameKey(ns, name);
      const v = value(owner);
      const r = (await cmd.eval(CLAIM, 1, k, v, owner.session, lease)) as string | null;
      if (r === null) return { status: 'taken' } satisfies BusClaim;
      held.set(k, v);
      heldNames.set(k, { namespace: ns, name, id: owner.id });
      if (r === '') return { status: 'claimed' };
      const [prelay = '', pid = '', psession = ''] = r.split('|');
      return { status: 'claimed', previous: { relay: prelay, id: pid, session: psession } };
    },
    release(ns, name, owner) {
      const k = nameKey(ns, name);
      const v = value(owner);
      if (held.get(k) === v) {
        held.delete(k);
        heldNames.delete(k);
      }
      if (healthy) cmd.eval(RELEASE, 1, k, v).catch(() => {});
    },
    async close() {
      if (closed) return;
      flush();
      clearInterval(timer);
      // Leave cleanly: names and the relay entry go now, not at the end of their lease.
      try {
        if (healthy) {
          const p = cmd.pipeline();
          for (const [k, v] of held) p.eval(RELEASE, 1, k, v);
          p.zrem(relaysKey, relay);
          await p.exec();
        }
      } catch {
        // Redis is gone: the leases lapse.
      }
      closed = true;
      healthy = false;
      held.clear();
      heldNames.clear();
      cmd.disconnect();
      sub.disconnect();
    },
  };
}
