/**
 * GET /metrics: the Router's counters in the Prometheus text exposition format (0.0.4), checked
 * with a strict parser (fixtures/prometheus.ts) after known traffic over real sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { AuthError, connect, createRelay, DropReason, type Peer, type Relay, type RelayOptions } from '../src/index.js';
import { parseExposition, sample, type Exposition } from './fixtures/prometheus.js';
import { RawClient } from './fixtures/raw-client.js';

let relay: Relay | undefined;
const peers: Peer[] = [];
const raws: RawClient[] = [];
afterEach(async () => {
  for (const c of raws.splice(0)) c.terminate();
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await relay?.close();
  relay = undefined;
});

async function start(options: RelayOptions = {}): Promise<Relay> {
  relay = await createRelay({ port: 0, ...options });
  return relay;
}
async function peer(opts: Parameters<typeof connect>[1]): Promise<Peer> {
  const p = await connect(relay!.url, opts);
  peers.push(p);
  return p;
}
async function scrape(headers: Record<string, string> = {}): Promise<Exposition> {
  const res = await fetch(`http://127.0.0.1:${relay!.port}/metrics`, { headers });
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

const METRICS: Record<string, string> = {
  missive_connections: 'gauge',
  missive_peers: 'gauge',
  missive_frames_in_total: 'counter',
  missive_bytes_in_total: 'counter',
  missive_frames_out_total: 'counter',
  missive_bytes_out_total: 'counter',
  missive_drops_total: 'counter',
  missive_held_messages: 'gauge',
  missive_held_bytes: 'gauge',
  missive_requests_total: 'counter',
  missive_request_duration_seconds: 'histogram',
  missive_slow_consumer_disconnects_total: 'counter',
  missive_auth_failures_total: 'counter',
  missive_admin_refused_total: 'counter',
  missive_protocol_errors_total: 'counter',
};

describe('drop reasons', () => {
  it('are listed in docs/relay.md exactly as the relay emits them', () => {
    const doc = readFileSync(new URL('../../../docs/relay.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('### Drop reasons'), doc.indexOf('\n## ', doc.indexOf('### Drop reasons')));
    const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual(Object.values(DropReason));
  });
});

describe('/metrics', () => {
  it('serves the Prometheus text format with HELP and TYPE for every metric', async () => {
    await start();
    const res = await fetch(`http://127.0.0.1:${relay!.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    const e = parseExposition(await res.text());
    expect(Object.fromEntries(e.types)).toEqual(METRICS);
    for (const name of Object.keys(METRICS)) expect(e.help.get(name)).toMatch(/\S/);
    // A fresh relay: zero counters, an empty histogram.
    expect(sample(e, 'missive_connections')).toBe(0);
    expect(sample(e, 'missive_requests_total')).toBe(0);
    expect(sample(e, 'missive_request_duration_seconds_count')).toBe(0);
    expect(sample(e, 'missive_request_duration_seconds_bucket', { le: '+Inf' })).toBe(0);
  });

  it('counts frames and bytes in and out by kind after traffic', async () => {
    await start();
    const alice = await peer({ name: 'alice' });
    const bob = await peer({ name: 'bob' });
    bob.handle('echo', (b) => b);
    const got: unknown[] = [];
    await bob.subscribe('news', (b) => got.push(b)).ready;
    for (let i = 0; i < 3; i++) await alice.request('bob/echo', i);
    for (let i = 0; i < 2; i++) await alice.send('bob', `m${i}`, { waitForDelivery: true });
    const body = 'x'.repeat(100);
    for (let i = 0; i < 4; i++) alice.publish('news', body);
    await expect.poll(() => got.length).toBe(4);

    const e = await scrape();
    const framesIn = (kind: string): number | undefined => sample(e, 'missive_frames_in_total', { kind });
    const framesOut = (kind: string): number | undefined => sample(e, 'missive_frames_out_total', { kind });
    expect(framesIn('Hello')).toBe(2);
    expect(framesOut('Welcome')).toBe(2);
    expect([framesIn('Req'), framesOut('Req'), framesIn('Rep'), framesOut('Rep')]).toEqual([3, 3, 3, 3]);
    expect([framesIn('Msg'), framesOut('Msg'), framesIn('Ack'), framesOut('Ack')]).toEqual([2, 2, 2, 2]);
    expect([framesIn('Pub'), framesOut('Pub')]).toEqual([4, 4]);
    expect([framesIn('Sub'), framesOut('Ok')]).toEqual([1, 1]);
    // Kinds that did not occur have no series.
    expect(framesIn('Bcast')).toBeUndefined();

    // Bytes are whole frame units. The relay forwards each PUB with `from` filled in ("alice",
    // one length byte plus five), so each one leaves 5 bytes bigger than it came.
    const bytesIn = sample(e, 'missive_bytes_in_total', { kind: 'Pub' })!;
    const bytesOut = sample(e, 'missive_bytes_out_total', { kind: 'Pub' })!;
    expect(bytesIn).toBeGreaterThan(4 * body.length);
    expect(bytesOut).toBe(bytesIn + 4 * 'alice'.length);
    expect(sample(e, 'missive_bytes_out_total', { kind: 'Req' })).toBe(sample(e, 'missive_bytes_in_total', { kind: 'Req' })! + 3 * 'alice'.length);
    expect(sample(e, 'missive_requests_total')).toBe(3);
  });

  it('reports connections, and peers by namespace', async () => {
    await start();
    await peer({ name: 'a' });
    const b = await peer({ name: 'b' });
    for (const name of ['x', 'y', 'z']) await peer({ name, namespace: 'blue' });
    const pending = new RawClient(relay!.url); // connected, handshake not done
    raws.push(pending);
    await pending.opened;
    await expect.poll(() => relay!.router.connectionCount).toBe(6);

    let e = await scrape();
    expect(sample(e, 'missive_connections')).toBe(6);
    expect(sample(e, 'missive_peers', { namespace: 'default' })).toBe(2);
    expect(sample(e, 'missive_peers', { namespace: 'blue' })).toBe(3);

    await b.close();
    pending.terminate();
    await expect.poll(() => relay!.router.connectionCount).toBe(4);
    e = await scrape();
    expect(sample(e, 'missive_connections')).toBe(4);
    expect(sample(e, 'missive_peers', { namespace: 'default' })).toBe(1);
  });

  it('records request round trips in a cumulative histogram', async () => {
    await start();
    const alice = await peer({ name: 'alice' });
    const bob = await peer({ name: 'bob' });
    bob.handle<number>('wait', (ms) => new Promise((resolve) => setTimeout(() => resolve(ms), ms)));
    await Promise.all([0, 0, 0, 60, 120].map((ms) => alice.request('bob/wait', ms)));
    await expect(alice.request('nobody/wait', 0)).rejects.toMatchObject({ code: 'NO_ROUTE' });

    const e = await scrape();
    const buckets = e.samples.filter((s) => s.name === 'missive_request_duration_seconds_bucket');
    const bounds = buckets.map((s) => (s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le'])));
    expect(bounds.every((b) => !Number.isNaN(b))).toBe(true);
    expect(bounds.at(-1)).toBe(Infinity);
    expect(bounds).toEqual([...bounds].sort((x, y) => x - y));
    const counts = buckets.map((s) => s.value);
    expect(counts).toEqual([...counts].sort((x, y) => x - y)); // cumulative
    expect(sample(e, 'missive_request_duration_seconds_count')).toBe(5);
    expect(sample(e, 'missive_request_duration_seconds_bucket', { le: '+Inf' })).toBe(5);
    expect(sample(e, 'missive_request_duration_seconds_bucket', { le: '0.05' })).toBe(3);
    expect(sample(e, 'missive_request_duration_seconds_bucket', { le: '0.1' })).toBe(4);
    expect(sample(e, 'missive_request_duration_seconds_sum')).toBeGreaterThanOrEqual(0.18);
    // The unroutable request was dropped, not forwarded.
    expect(sample(e, 'missive_requests_total')).toBe(5);
    expect(sample(e, 'missive_drops_total', { reason: 'NO_ROUTE' })).toBe(1);
  });

  it('counts auth failures and protocol errors', async () => {
    await start({
      auth: {
        secrets: { alice: 'pw' },
        custom: (_req, grant) => {
          if (!grant) throw new AuthError('credentials required');
          return { ...grant, groups: ['team'] };
        },
      },
    });
    await expect(connect(relay!.url, { name: 'alice', secret: 'wrong' })).rejects.toMatchObject({ code: 'AUTH' });
    await expect(connect(relay!.url, { name: 'mallory', secret: 'pw' })).rejects.toMatchObject({ code: 'AUTH' });
    await expect(connect(relay!.url, { name: 'anon' })).rejects.toMatchObject({ code: 'AUTH' });
    const alice = await peer({ name: 'alice', secret: 'pw' });
    await expect(alice.join('admins')).rejects.toMatchObject({ code: 'AUTH' });
    await alice.join('team');

    const bad = new RawClient(relay!.url);
    raws.push(bad);
    await bad.opened;
    bad.send(Uint8Array.of(1, 2, 3));
    expect((await bad.closed).code).toBe(1002);

    const e = await scrape();
    expect(sample(e, 'missive_auth_failures_total')).toBe(4);
    expect(sample(e, 'missive_protocol_errors_total')).toBe(1);
  });

  it('requires Authorization: Bearer <adminToken> when an admin token is set', async () => {
    await start({ adminToken: 'let-me-in' });
    const get = (path: string, headers: Record<string, string> = {}): Promise<Response> => fetch(`http://127.0.0.1:${relay!.port}${path}`, { headers });

    const none = await get('/metrics');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(await none.text()).not.toMatch(/missive_/);
    for (const authorization of ['Bearer wrong', 'Bearer let-me-i', 'Bearer let-me-in-too', 'let-me-in', 'Basic bGV0LW1lLWlu']) {
      const res = await get('/metrics', { authorization });
      expect(res.status, authorization).toBe(401);
      await res.text();
    }
    const ok = await get('/metrics', { authorization: 'Bearer let-me-in' });
    expect(ok.status).toBe(200);
    parseExposition(await ok.text());
    // /healthz stays open.
    expect((await get('/healthz')).status).toBe(200);
  });

  it('serves /metrics without a token when no admin token is set', async () => {
    await start();
    await scrape();
  });
});
