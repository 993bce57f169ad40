/**
 * The Redis fixture (fixtures/redis.ts) that the backplane's tests stand on: a real
 * redis-server on a free port that answers, restarts on the same port, and dies on SIGKILL.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { REDIS_MISSING, redisAvailable, startRedis, type RedisServer } from './fixtures/redis.js';

const servers: RedisServer[] = [];
const clients: Redis[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function start(): Promise<RedisServer> {
  const s = await startRedis();
  servers.push(s);
  return s;
}
function client(url: string, options: RedisOptions = {}): Redis {
  const c = new Redis(url, { lazyConnect: true, ...options });
  clients.push(c);
  return c;
}

describe.skipIf(!redisAvailable())(`redis fixture${redisAvailable() ? '' : ` (${REDIS_MISSING})`}`, () => {
  it('starts on a free port of 127.0.0.1 and answers PING through ioredis', async () => {
    const redis = await start();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const c = client(redis.url);
    await c.connect();
    await expect(c.ping()).resolves.toBe('PONG');
    await c.set('k', 'v');
    await expect(c.get('k')).resolves.toBe('v');
  });

  it('gives two servers two ports', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    expect(a.port).not.toBe(b.port);
  });

  it('restarts on the same port, empty (nothing saved)', async () => {
    const redis = await start();
    const port = redis.port;
    const c = client(redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
    c.on('error', () => {}); // refused reconnection attempts while it restarts
    await c.connect();
    await c.set('k', 'v');
    // Not events.once: it rejects on the 'error' events of those refused attempts.
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const ready = closed.then(() => new Promise<void>((resolve) => c.once('ready', () => resolve())));
    await redis.restart();
    expect(redis.port).toBe(port);
    await closed;
    await ready; // the client reconnected by itself to the same URL
    await expect(c.ping()).resolves.toBe('PONG');
    await expect(c.get('k')).resolves.toBeNull();
  });

  it('kill() ends it at once; connections are refused afterwards', async () => {
    const redis = await start();
    const c = client(redis.url);
    await c.connect();
    c.on('error', () => {}); // its reconnection attempts are refused
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await redis.kill();
    await closed;
    const socket = createConnection({ host: '127.0.0.1', port: redis.port });
    const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
    await redis.stop(); // a no-op on a dead server
  });
});
