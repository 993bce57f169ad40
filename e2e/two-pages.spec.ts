/**
 * Two browser pages, each a peer, talk through a relay: mailboxes, request/reply, pub/sub and
 * a 5 MB tunnel, with the Peer API that Node peers have.
 */
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures.js';

/** Connects a peer named `name` in `page` (kept as `window.peers[name]`). */
async function join(page: Page, url: string, name: string): Promise<void> {
  await page.evaluate(
    async ({ url, name }) => {
      window.peers[name] = await window.missive.connect(url, { name });
    },
    { url, name },
  );
}

test.describe('two pages through the relay', () => {
  test('send - messages arrive in the other page in order, and the sender hears they were delivered', async ({ openApp, relay }) => {
    const [a, b] = [await openApp(), await openApp()];
    await join(a, relay.url, 'alice');
    await join(b, relay.url, 'bob');
    const delivered = await a.evaluate(async () => {
      const alice = window.peers.alice!;
      const ids: string[] = [];
      const done = new Set<string>();
      const all = new Promise<void>((resolve) => {
        alice.on('delivered', ({ id }) => {
          done.add(id);
          if (done.size === 20) resolve();
        });
      });
      for (let i = 0; i < 20; i++) ids.push(await alice.send('bob', { i, text: `hello ${i}` }));
      await all;
      return ids.every((id) => done.has(id));
    });
    expect(delivered).toBe(true);
    const got = await b.evaluate(async () => {
      const out: { from: string; i: number }[] = [];
      for (let n = 0; n < 20; n++) {
        const m = await window.peers.bob!.receive({ timeout: 5000 });
        out.push({ from: m.from, i: (m.body as { i: number }).i });
      }
      return { out, left: window.peers.bob!.mailbox().stats().depth };
    });
    expect(got.out).toEqual(Array.from({ length: 20 }, (_, i) => ({ from: 'alice', i })));
    expect(got.left).toBe(0);
  });

  test('request - a handler in one page answers the other; a throwing handler gives REMOTE, no handler NO_ROUTE', async ({ openApp, relay }) => {
    const [a, b] = [await openApp(), await openApp()];
    await join(a, relay.url, 'client');
    await join(b, relay.url, 'server');
    await b.evaluate(() => {
      const server = window.peers.server!;
      server.handle('add', (body: { a: number; b: number }, ctx) => ({ sum: body.a + body.b, from: ctx.from }));
      server.handle('fail', () => {
        throw Object.assign(new Error('no such thing'), { code: 'ENOENT' });
      });
    });
    const r = await a.evaluate(async () => {
      const client = window.peers.client!;
      const code = (p: Promise<unknown>): Promise<unknown> => p.then(
        () => 'resolved',
        (e: { code?: string; remoteCode?: string; message: string }) => ({ code: e.code, remoteCode: e.remoteCode, message: e.message }),
      );
      return {
        add: await client.request('server/add', { a: 2, b: 40 }, { timeout: 5000 }),
        many: await Promise.all(Array.from({ length: 50 }, (_, i) => client.request<{ sum: number }>('server/add', { a: i, b: i }).then((x) => x.sum))),
        fail: await code(client.request('server/fail', null, { timeout: 5000 })),
        noHandler: await code(client.request('server/missing', null, { timeout: 5000 })),
        noPeer: await code(client.request('nobody/add', null, { timeout: 5000 })),
      };
    });
    expect(r.add).toEqual({ sum: 42, from: 'client' });
    expect(r.many).toEqual(Array.from({ length: 50 }, (_, i) => 2 * i));
    expect(r.fail).toEqual({ code: 'REMOTE', remoteCode: 'ENOENT', message: 'no such thing' });
    expect(r.noHandler).toMatchObject({ code: 'NO_ROUTE' });
    expect(r.noPeer).toMatchObject({ code: 'NO_ROUTE' });
  });

  test('publish - a subscriber in the other page gets matching topics in order, and nothing after unsubscribe', async ({ openApp, relay }) => {
    const [a, b] = [await openApp(), await openApp()];
    await join(a, relay.url, 'pub');
    await join(b, relay.url, 'sub');
    await b.evaluate(async () => {
      const got: { topic: string; n: number; from: string }[] = [];
      window.scratch = { got };
      const sub = window.peers.sub!.subscribe<{ n: number }>('room.*', (body, meta) => got.push({ topic: meta.topic, n: body.n, from: meta.from }));
      window.scratch.sub = sub;
      await sub.ready;
    });
    await a.evaluate(() => {
      const pub = window.peers.pub!;
      pub.publish('room.lobby', { n: 1 });
      pub.publish('other.lobby', { n: 2 });
      pub.publish('room.kitchen', { n: 3 });
      pub.publish('room.lobby.deep', { n: 4 });
      pub.publish('room.lobby', { n: 5 });
    });
    await b.waitForFunction(() => (window.scratch!.got as unknown[]).length >= 3);
    // A barrier: a request round trip from the publisher after its publishes, so anything
    // wrongly delivered would have arrived by now.
    await b.evaluate(() => window.peers.sub!.handle('ping', () => 'pong'));
    expect(await a.evaluate(() => window.peers.pub!.request('sub/ping'))).toBe('pong');
    expect(await b.evaluate(() => window.scratch!.got)).toEqual([
      { topic: 'room.lobby', n: 1, from: 'pub' },
      { topic: 'room.kitchen', n: 3, from: 'pub' },
      { topic: 'room.lobby', n: 5, from: 'pub' },
    ]);

    await b.evaluate(async () => {
      (window.scratch!.sub as { unsubscribe(): void }).unsubscribe();
      await window.peers.sub!.peers(); // a round trip: the relay has the unsubscribe
    });
    await a.evaluate(async () => {
      window.peers.pub!.publish('room.lobby', { n: 6 });
      await window.peers.pub!.request('sub/ping');
    });
    expect(await b.evaluate(() => (window.scratch!.got as unknown[]).length)).toBe(3);
  });

  test('tunnel - 5 MB cross from one page to the other intact (SHA-256 equal) and in order', async ({ openApp, relay }) => {
    test.setTimeout(60_000);
    const [a, b] = [await openApp(), await openApp()];
    await join(a, relay.url, 'upload');
    await join(b, relay.url, 'download');
    await b.evaluate(() => {
      window.scratch = {
        received: new Promise<{ bytes: number; chunks: number; hash: string }>((resolve, reject) => {
          window.peers.download!.onTunnel('file', async (t) => {
            try {
              const parts: Uint8Array[] = [];
              let bytes = 0;
              for await (const chunk of t.readable) {
                parts.push(chunk);
                bytes += chunk.length;
              }
              const all = new Uint8Array(bytes);
              let at = 0;
              for (const p of parts) {
                all.set(p, at);
                at += p.length;
              }
              const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', all))].map((x) => x.toString(16).padStart(2, '0')).join('');
              resolve({ bytes, chunks: parts.length, hash });
            } catch (err) {
              reject(err);
            }
          });
        }),
      };
    });
    const sent = await a.evaluate(async () => {
      const size = 5 * 1024 * 1024;
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
      const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', data))].map((x) => x.toString(16).padStart(2, '0')).join('');
      const t = await window.peers.upload!.tunnel('download', 'file');
      const w = t.writable.getWriter();
      // Writes of uneven sizes, so chunking and reassembly are exercised.
      for (let at = 0, n = 1; at < size; n = (n * 7) % 300_001) {
        const len = Math.min(size - at, 1000 + n);
        await w.write(data.subarray(at, at + len));
        at += len;
      }
      await w.close();
      return { bytes: size, hash };
    });
    const received = await b.evaluate(() => window.scratch!.received as Promise<{ bytes: number; chunks: number; hash: string }>);
    expect(received.bytes).toBe(sent.bytes);
    expect(received.hash).toBe(sent.hash);
    expect(received.chunks).toBeGreaterThan(1);
  });
});
