/**
 * Three relay processes over one real Redis (fixtures/redis.ts), peers spread over them: every
 * feature between peers on different relays, a relay SIGKILLed mid-stream, Redis restarted.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, createRelay, type Peer, type Relay } from '../src/index.js';
import { Child, killChildren } from './fixtures/child.js';
import { redisAvailable, REDIS_MISSING, startRedis, type RedisServer } from './fixtures/redis.js';

const enabled = redisAvailable();
if (!enabled) console.warn(REDIS_MISSING);

let redis: RedisServer;
const peers: Peer[] = [];
const relays: Relay[] = [];

beforeAll(async () => {
  if (enabled) redis = await startRedis();
});
afterAll(async () => {
  await killChildren();
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await Promise.all(relays.splice(0).map((r) => r.close(200)));
  await killChildren();
});

/** A relay process on a free port joined to the test's Redis, under a prefix of the test's own. */
async function relayProcess(prefix: string): Promise<{ child: Child; url: string }> {
  const [child, { url }] = await Child.start<{ url: string }>('relay-process.ts', { port: 0, backplane: { redis: redis.url, prefix, lease: 1500 } });
  return { child, url };
}

async function peer(url: string | string[], name: string, opts: Parameters<typeof connect>[1] = {}): Promise<Peer> {
  const p = await connect(url as string, { name, ...opts });
  peers.push(p);
  return p;
}

let nextPrefix = 0;
const prefix = (): string => `t${process.pid}-${nextPrefix++}`;

describe('a relay without a backplane', () => {
  it('loads no Redis code', async () => {
    // A process of its own: the test process may have loaded ioredis for other tests.
    const { execFileSync } = await import('node:child_process');
    const script = [
      "import { createRequire } from 'node:module';",
      "const { createRelay } = await import('@missive/node');",
      'const relay = await createRelay({ port: 0 });',
      'const cache = createRequire(import.meta.url).cache;',
      "console.log(JSON.stringify(Object.keys(cache).filter((k) => k.includes('ioredis'))));",
      'await relay.close();',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual([]);
    // …and one with a backplane does load it (the check can fail).
    const withRedis = script.replace('createRelay({ port: 0 })', "createRelay({ port: 0, backplane: { redis: 'redis://127.0.0.1:1' } }).catch(() => ({ close: async () => {} }))");
    const out2 = execFileSync(process.execPath, ['--input-type=module', '-e', withRedis], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
    expect(JSON.parse(out2.trim().split('\n').pop()!).length).toBeGreaterThan(0);
  });
});

describe.skipIf(!enabled)('relays over Redis', () => {
  it('carries every feature between peers on three relays', async () => {
    const p = prefix();
    const [r0, r1, r2] = await Promise.all([relayProcess(p), relayProcess(p), relayProcess(p)]);
    const alice = await peer(r0.url, 'alice');
    const bob = await peer(r1.url, 'bob');
    const carol = await peer(r2.url, 'carol');
    // Everyone sees everyone through the backplane.
    await expect.poll(async () => (await alice.peers()).map((x) => x.name).sort(), { timeout: 5000 }).toEqual(['alice', 'bob', 'carol']);

    // NAME_TAKEN across relays.
    await expect(connect(r2.url, { name: 'bob' })).rejects.toMatchObject({ code: 'NAME_TAKEN' });

    // Durable send, acked end to end.
    const delivered = new Promise((resolve) => alice.once('delivered', resolve));
    await alice.send('bob', { n: 1 });
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ from: 'alice', body: { n: 1 } });
    await delivered;

    // A request to a group whose members are on the two other relays: both answer in turn.
    bob.handle('who', () => 'bob');
    carol.handle('who', () => 'carol');
    await bob.join('team');
    await carol.join('team');
    await expect.poll(async () => (await alice.request('team/who', null, { timeout: 2000 }).catch(() => 'none')) as string, { timeout: 5000 }).not.toBe('none');
    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) answers.add(await alice.request<string>('team/who', null, { timeout: 2000 }));
    expect(answers).toEqual(new Set(['bob', 'carol']));

    // Pub/sub and broadcast across relays.
    const news: string[] = [];
    await bob.subscribe('news', (b) => news.push(`bob:${b as string}`)).ready;
    await carol.subscribe('news', (b) => news.push(`carol:${b as string}`)).ready;
    await expect
      .poll(
        () => {
          alice.publish('news', 'x');
          return news.length;
        },
        { timeout: 5000, interval: 200 },
      )
      .toBeGreaterThanOrEqual(2);
    expect(news.some((n) => n.startsWith('bob:')) && news.some((n) => n.startsWith('carol:'))).toBe(true);
    alice.broadcast('team', 'all hands');
    await expect(bob.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'all hands' });
    await expect(carol.receive({ timeout: 5000 })).resolves.toMatchObject({ body: 'all hands' });

    // Presence: alice hears carol leave, from another relay.
    const left = new Promise((resolve) => alice.on('peer-leave', (e) => e.name === 'dave' && resolve(e)));
    const joined = new Promise((resolve) => alice.on('peer-join', (e) => e.name === 'dave' && resolve(e)));
    await expect.poll(() => alice.inspect().registrations.registrations.find((r) => r.key === 'watch')?.confirmed).toBe(true);
    const dave = await connect(r2.url, { name: 'dave' });
    await joined;
    await dave.close();
    await left;

    // A tunnel across relays, 1 MiB intact.
    let got = 0;
    const done = new Promise<void>((resolve) =>
      carol.onTunnel('bytes', async (t) => {
        for await (const chunk of t.readable) got += (chunk as Uint8Array).length;
        resolve();
      }),
    );
    const t = await alice.tunnel('carol', 'bytes');
    const w = t.writable.getWriter();
    for (let i = 0; i < 64; i++) await w.write(new Uint8Array(16384).fill(i));
    await w.close();
    await done;
    expect(got).toBe(1024 * 1024);

    // Held for an offline name in Redis: zoe comes online on another relay and gets them at
    // once, in order (not at the sender's next probe: its ackTimeout is 60 s).
    const sender = await peer(r0.url, 'sender', { ackTimeout: 60_000 });
    const held = await Promise.all([sender.send('zoe', 'first'), sender.send('zoe', 'second')]);
    await expect.poll(() => sender.inspect().outbox.held, { timeout: 5000 }).toBe(2);
    const zoe = await peer(r2.url, 'zoe');
    const a = await zoe.receive({ timeout: 5000 });
    const b = await zoe.receive({ timeout: 5000 });
    expect([a.id.split(':').slice(0, 2).join(':'), b.body]).toEqual([held[0]!.split(':').slice(0, 2).join(':'), 'second']);
    expect(a.body).toBe('first');
    await expect.poll(() => sender.outboxSize, { timeout: 5000 }).toBe(0);
  });

  it('loses nothing of a 10,000-message stream when the receiver’s relay is SIGKILLed mid-stream', async () => {
    const p = prefix();
    const [r0, r1, r2] = await Promise.all([relayProcess(p), relayProcess(p), relayProcess(p)]);
    const alice = await peer(r0.url, 'alice', { ackTimeout: 500 });
    // Bob knows two relays: when the first dies he moves to the other.
    const bob = await peer([r1.url, r2.url], 'bob', { reconnect: { initialDelay: 50, maxDelay: 200, maxAttempts: 200 } });
    await expect.poll(async () => (await alice.peers()).map((x) => x.name).sort(), { timeout: 5000 }).toEqual(['alice', 'bob']);
    const N = 10_000;
    const got: number[] = [];
    const reader = (async () => {
      for await (const m of bob.mailbox()) {
        got.push(m.body as number);
        if (got.length === N) return;
      }
    })();
    const sending = (async () => {
      for (let i = 0; i < N; i++) {
        await alice.send('bob', i);
        while (alice.outboxSize > 2000) await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await expect.poll(() => got.length, { timeout: 10_000, interval: 5 }).toBeGreaterThan(2000);
    r1.child.process.kill('SIGKILL');
    await sending;
    await reader;
    expect(got).toEqual(Array.from({ length: N }, (_, i) => i));
    await expect.poll(() => alice.outboxSize, { timeout: 10_000 }).toBe(0);
  });

  it('closes a peer whose name another relay took while this relay could not renew it', async () => {
    const p = prefix();
    const a = await createRelay({ port: 0, backplane: { redis: redis.url, prefix: p, lease: 600 } });
    relays.push(a);
    const alice = await peer(a.url, 'alice', { reconnect: false });
    const closed = new Promise<{ error?: unknown }>((resolve) => alice.once('close', resolve));
    // Another relay's claim, as if alice's lease had lapsed and someone else took the name.
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    await r.set(`${p}:{default}:name:alice`, 'rother|~x|other-session', 'PX', 60_000);
    await r.quit();
    const e = await closed;
    expect(e.error).toMatchObject({ message: expect.stringContaining('was taken over by another relay'), cause: { code: 'NAME_TAKEN' } });
  });

  it('keeps serving peers on the same relay while Redis is down, refuses what needs it clearly, and recovers', async () => {
    const p = prefix();
    const a = await createRelay({ port: 0, backplane: { redis: redis.url, prefix: p, lease: 1500 } });
    relays.push(a);
    const b = await createRelay({ port: 0, backplane: { redis: redis.url, prefix: p, lease: 1500 } });
    relays.push(b);
    const alice = await peer(a.url, 'alice');
    const amy = await peer(a.url, 'amy');
    const bob = await peer(b.url, 'bob');
    await expect.poll(async () => (await alice.peers()).length, { timeout: 5000 }).toBe(3);
    const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${a.port}/metrics`)).text();
    const relayA = a.router.inspect().cluster!.relay;
    const relayB = b.router.inspect().cluster!.relay;
    expect(await metrics()).toContain(`missive_cluster_backplane_up{relay="${relayA}"} 1`);
    expect(await metrics()).toContain(`missive_cluster_peers{relay="${relayB}"} 1`);
    const down = new Promise((resolve) => a.router.once('cluster', resolve));
    await redis.kill();
    await down;
    const health = (await (await fetch(`http://127.0.0.1:${a.port}/healthz`)).json()) as { status: string; cluster: { backplane: string } };
    expect(health).toMatchObject({ status: 'degraded', cluster: { backplane: 'unreachable' } });
    expect(await metrics()).toContain(`missive_cluster_backplane_up{relay="${relayA}"} 0`);
    // Same relay: still works.
    await alice.send('amy', 'local');
    await expect(amy.receive({ timeout: 2000 })).resolves.toMatchObject({ body: 'local' });
    // Across relays: a request fails loudly, not silently.
    await expect(alice.request('bob/x', 1, { timeout: 2000 })).rejects.toMatchObject({ code: 'LIMIT', message: expect.stringContaining('backplane') });
    // A new named peer cannot claim its name now: refused with the reason.
    await expect(connect(a.url, { name: 'newcomer', reconnect: false })).rejects.toMatchObject({ code: 'LIMIT', message: expect.stringContaining('unreachable') });
    // A durable send across waits in the outbox and arrives once Redis is back.
    await alice.send('bob', 'after the gap');
    const up = new Promise<void>((resolve) => a.router.on('cluster', (e) => e.ok && resolve()));
    await redis.restart();
    await up;
    await expect(bob.receive({ timeout: 20_000 })).resolves.toMatchObject({ from: 'alice', body: 'after the gap' });
    expect(((await (await fetch(`http://127.0.0.1:${a.port}/healthz`)).json()) as { status: string }).status).toBe('ok');
  });
});
