/**
 * Two pages as peers with direct links (`direct: 'auto'`): their traffic moves to a WebRTC data
 * channel, which the relay's own counters prove, and back to the relay when the channel is
 * killed mid-stream, with nothing lost, duplicated or reordered.
 */
import type { Page } from '@playwright/test';
import type { Relay } from '@missive/node';
import { expect, test } from './fixtures.js';

/** Relay frame counters of the kinds that carry peer-to-peer traffic. */
const P2P_KINDS = ['Msg', 'Ack', 'Req', 'Rep', 'TOpen', 'TAccept', 'TData', 'TCredit', 'TEnd'] as const;
function p2pBytes(relay: Relay): Record<string, number> {
  const m = relay.router.metrics();
  return Object.fromEntries(P2P_KINDS.map((k) => [k, m.bytesIn[k] ?? 0]));
}

async function join(page: Page, url: string, name: string, direct: 'auto' | 'never'): Promise<void> {
  await page.evaluate(async ({ url, name, direct }) => {
    const { connectPeer } = await window.directPeers();
    await connectPeer(url, name, direct);
  }, { url, name, direct });
}

/** alice in page a sends bob in page b: 100 messages, 50 requests, a 5 MB tunnel; returns what bob saw. */
async function traffic(a: Page, b: Page) {
  await b.evaluate(() => {
    const bob = window.peers.bob!;
    bob.handle('double', (n: number) => n * 2);
    bob.onTunnel<Uint8Array>('sink', async (t) => {
      // Each byte is (its offset >> 16) & 0xff: check every 4096th, in order.
      let bytes = 0;
      let intact = true;
      for await (const chunk of t.readable) {
        for (let i = 0; i < chunk.length; i += 4096) if (chunk[i] !== (((bytes + i) >> 16) & 0xff)) intact = false;
        bytes += chunk.length;
      }
      if (!intact) bytes = -bytes;
      window.scratch = { ...window.scratch, tunnel: { bytes } };
      const w = t.writable.getWriter();
      await w.write(new TextEncoder().encode(`got ${bytes}`));
      await w.close();
    });
  });
  const sent = await a.evaluate(async () => {
    const alice = window.peers.alice!;
    for (let i = 0; i < 100; i++) await alice.send('bob', { i });
    const doubled = await Promise.all(Array.from({ length: 50 }, (_, i) => alice.request<number>('bob/double', i, { timeout: 10_000 })));
    const t = await alice.tunnel<Uint8Array>('bob/sink', 'sink');
    const w = t.writable.getWriter();
    const chunk = new Uint8Array(64 * 1024);
    for (let at = 0; at < 5 * 1024 * 1024; at += chunk.length) {
      chunk.fill((at >> 16) & 0xff);
      await w.write(chunk.slice());
    }
    await w.close();
    let answer = '';
    for await (const part of t.readable) answer += new TextDecoder().decode(part);
    return { doubled, answer };
  });
  const got = await b.evaluate(async () => {
    const out: number[] = [];
    for (let n = 0; n < 100; n++) out.push(((await window.peers.bob!.receive({ timeout: 10_000 })).body as { i: number }).i);
    return out;
  });
  return { ...sent, got };
}

test.describe('direct links between two pages', () => {
  for (const direct of ['never', 'auto'] as const) {
    test(`${direct === 'auto' ? 'direct' : 'relay only'} - messages, requests and a 5 MB tunnel arrive whole; the relay's counters ${direct === 'auto' ? 'do not move' : 'count them'}`, async ({ openApp, relay }) => {
      test.setTimeout(90_000);
      const [a, b] = [await openApp(), await openApp()];
      await join(a, relay.url, 'alice', direct);
      await join(b, relay.url, 'bob', direct);
      // Traffic starts the upgrade; wait until both ends use the channel.
      await b.evaluate(() => window.peers.bob!.handle('ping', () => 'pong'));
      const path = await a.evaluate(async () => {
        const { linked } = await window.directPeers();
        const alice = window.peers.alice!;
        await alice.request('bob/ping', null);
        if (alice.inspect().direct.mode === 'never') return alice.linkTo('bob');
        await linked(alice, 'bob', 'direct');
        return alice.linkTo('bob');
      });
      if (direct === 'auto') await b.evaluate(async () => (await window.directPeers()).linked(window.peers.bob!, 'alice', 'direct'));
      expect(path).toBe(direct === 'auto' ? 'direct' : 'relay');

      const before = p2pBytes(relay);
      const r = await traffic(a, b);
      expect(r.got).toEqual(Array.from({ length: 100 }, (_, i) => i));
      expect(r.doubled).toEqual(Array.from({ length: 50 }, (_, i) => 2 * i));
      expect(r.answer).toBe(`got ${5 * 1024 * 1024}`);
      const after = p2pBytes(relay);
      const moved = P2P_KINDS.reduce((n, k) => n + after[k]! - before[k]!, 0);
      if (direct === 'auto') expect(after).toEqual(before);
      else expect(moved).toBeGreaterThan(5 * 1024 * 1024);

      // Pub/sub is a fan-out through the relay whatever the links: it still works.
      await b.evaluate(() => {
        window.scratch = { news: [] };
        return window.peers.bob!.subscribe<string>('news.>', (body) => (window.scratch!.news as string[]).push(body)).ready;
      });
      await a.evaluate(() => window.peers.alice!.publish('news.today', 'hello'));
      await expect.poll(() => b.evaluate(() => window.scratch!.news)).toEqual(['hello']);
    });
  }

  test('fallback - killing the channel mid-stream moves the stream to the relay: every message once, in order', async ({ openApp, relay }) => {
    test.setTimeout(90_000);
    const [a, b] = [await openApp(), await openApp()];
    await join(a, relay.url, 'alice', 'auto');
    await join(b, relay.url, 'bob', 'auto');
    await b.evaluate(() => window.peers.bob!.handle('echo', (x: unknown) => x));
    const N = 3000;
    const result = await a.evaluate(async (N) => {
      const { linked, killChannels } = await window.directPeers();
      const alice = window.peers.alice!;
      await alice.request('bob/echo', 0);
      await linked(alice, 'bob', 'direct');
      const fellBack = linked(alice, 'bob', 'relay');
      const echoes: Promise<unknown>[] = [];
      let killed = 0;
      for (let i = 0; i < N; i++) {
        if (i === 1000) killed = killChannels('alice');
        await alice.send('bob', i);
        if (i % 100 === 0) echoes.push(alice.request('bob/echo', i, { timeout: 20_000 }));
      }
      const reason = await fellBack;
      return { killed, reason, echoes: await Promise.all(echoes), path: alice.linkTo('bob') };
    }, N);
    expect(result.killed).toBeGreaterThan(0);
    expect(result.reason).toMatch(/closed/);
    expect(result.echoes).toEqual(Array.from({ length: N / 100 }, (_, i) => i * 100));
    const got = await b.evaluate(async (N) => {
      const out: number[] = [];
      for (let n = 0; n < N; n++) out.push((await window.peers.bob!.receive<number>({ timeout: 20_000 })).body);
      return { out, left: window.peers.bob!.mailbox().stats().depth };
    }, N);
    expect(got.out).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(got.left).toBe(0);
  });
});
