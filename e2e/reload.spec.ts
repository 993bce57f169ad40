/**
 * What a page sent but was never acked survives a reload in its IndexedDB outbox, and is
 * delivered once each, in order, after it connects again.
 */
import { createRelay } from '@missive/node';
import { expect, reloadApp, test } from './fixtures.js';

test('reload - 100 unacked messages to an offline peer wait in IndexedDB and arrive once each, in order, after the page reconnects', async ({ openApp, relay }) => {
  test.setTimeout(60_000);
  const writer = await openApp();
  const sent = await writer.evaluate(async (url) => {
    const w = await window.missive.connect(url, { name: 'writer' });
    window.peers.writer = w;
    let delivered = 0;
    w.on('delivered', () => delivered++);
    const ids: string[] = [];
    // Each send resolves once its message is in the IndexedDB outbox.
    for (let i = 0; i < 100; i++) ids.push(await w.send('reader', { i }));
    return { ids, delivered };
  }, relay.url);
  expect(sent.ids).toHaveLength(100);
  expect(sent.delivered).toBe(0);

  // The page goes away with its peer still open (no close()): only the outbox remains.
  await reloadApp(writer);
  const stored = await writer.evaluate(async () => {
    const store = new window.missive.IdbStore('writer');
    const s = await store.open();
    await store.close();
    return s.entries.map((e) => e.id);
  });
  expect(stored).toEqual(sent.ids);

  // A fresh relay: the first one's holds cannot deliver anything, only the outbox can.
  await relay.close(2000);
  const relay2 = await createRelay({ host: '127.0.0.1', port: 0 });
  try {
    await writer.evaluate(async (url) => {
      const w = await window.missive.connect(url, { name: 'writer' });
      window.peers.writer = w;
      let delivered = 0;
      window.scratch = {
        allDelivered: new Promise<void>((resolve) => {
          w.on('delivered', () => {
            if (++delivered === 100) resolve();
          });
        }),
      };
    }, relay2.url);

    const reader = await openApp();
    const got = await reader.evaluate(async (url) => {
      const r = await window.missive.connect(url, { name: 'reader' });
      window.peers.reader = r;
      const out: { id: string; i: number }[] = [];
      for (let n = 0; n < 100; n++) {
        const m = await r.receive({ timeout: 10_000 });
        out.push({ id: m.id, i: (m.body as { i: number }).i });
      }
      return out;
    }, relay2.url);
    expect(got.map((m) => m.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(got.map((m) => m.id)).toEqual(sent.ids);

    // Every message acked: nothing is left to resend, so nothing more can arrive.
    await writer.evaluate(() => window.scratch!.allDelivered);
    const left = await reader.evaluate(() => window.peers.reader!.mailbox().stats());
    expect(left.depth).toBe(0);
    expect(left.received).toBe(100);
    const after = await writer.evaluate(async () => {
      await window.peers.writer!.close();
      const store = new window.missive.IdbStore('writer');
      const s = await store.open();
      await store.close();
      return { entries: s.entries.length, seqs: [...s.seqs] };
    });
    expect(after).toEqual({ entries: 0, seqs: [['reader', 100]] });
  } finally {
    await relay2.close(2000);
  }
});
