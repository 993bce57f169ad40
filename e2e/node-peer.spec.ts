/**
 * A browser page and a Node peer (`connect` from @missive/node, in the test process) talk both
 * ways through one relay: messages, requests and publishes, with different codecs.
 */
import { connect } from '@missive/node';
import { expect, test } from './fixtures.js';

test('browser and Node - messages, requests and publishes go both ways, across codecs (JSON in the page, msgpack in Node)', async ({ openApp, relay }) => {
  const node = await connect(relay.url, { name: 'node' });
  try {
    node.handle('double', (n: number, ctx) => ({ doubled: n * 2, from: ctx.from }));
    const fromPage: unknown[] = [];
    let published!: () => void;
    const pageTopic = new Promise<void>((resolve) => (published = resolve));
    await node.subscribe('web.>', (body, meta) => {
      fromPage.push({ body, topic: meta.topic, from: meta.from });
      published();
    }).ready;

    const page = await openApp();
    await page.evaluate(async (url) => {
      const web = await window.missive.connect(url, { name: 'web', codec: 'json' });
      window.peers.web = web;
      web.handle('upper', (s: string) => s.toUpperCase());
      const topics: unknown[] = [];
      window.scratch = { topics };
      await web.subscribe('node.news', (body, meta) => topics.push({ body, from: meta.from })).ready;
    }, relay.url);
    // Browser -> Node: a message, a binary body, a request and a publish.
    const pageSide = await page.evaluate(async () => {
      const web = window.peers.web!;
      await web.send('node', { hello: 'from the browser' }, { waitForDelivery: true });
      await web.send('node', new Uint8Array([1, 2, 3, 250]), { waitForDelivery: true });
      const reply = await web.request('node/double', 21, { timeout: 5000 });
      web.publish('web.status', { up: true });
      return { reply };
    });
    expect(pageSide.reply).toEqual({ doubled: 42, from: 'web' });
    const m1 = await node.receive({ timeout: 5000 });
    const m2 = await node.receive({ timeout: 5000 });
    expect({ from: m1.from, body: m1.body }).toEqual({ from: 'web', body: { hello: 'from the browser' } });
    expect(m2.body).toEqual(new Uint8Array([1, 2, 3, 250]));
    await pageTopic;
    expect(fromPage).toEqual([{ body: { up: true }, topic: 'web.status', from: 'web' }]);

    // Node -> browser: a message, a request and a publish.
    await node.send('web', { hello: 'from Node', n: [1, 2, 3] }, { waitForDelivery: true });
    expect(await node.request('web/upper', 'shout', { timeout: 5000 })).toBe('SHOUT');
    node.publish('node.news', { headline: 'relay works' });
    const browserSide = await page.evaluate(async () => {
      const web = window.peers.web!;
      const m = await web.receive({ timeout: 5000 });
      const topics = window.scratch!.topics as unknown[];
      if (topics.length === 0) await web.request('node/double', 0); // a barrier behind the publish
      return { from: m.from, body: m.body, topics };
    });
    expect(browserSide).toEqual({ from: 'node', body: { hello: 'from Node', n: [1, 2, 3] }, topics: [{ body: { headline: 'relay works' }, from: 'node' }] });
  } finally {
    await node.close();
  }
});
