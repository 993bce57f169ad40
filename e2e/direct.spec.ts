/**
 * Direct links (`openDirect`) in Chromium: the core transport compliance suite over two links in
 * one page, and two pages linked directly, their signalling carried by this spec (no relay): a
 * 5 MB transfer in chunks, a close from either side, a page that goes away, and attempts that
 * cannot connect. See playwright.config.ts for the flags that let WebRTC connect on a host whose
 * only interface is loopback.
 */
import type { Page } from '@playwright/test';
import { transportCompliance } from '@missive/core/testing';
import { expect, test } from './fixtures.js';
import { inPageOnly, suiteCases } from './suite-cases.js';
import type { LinkOptions } from './app/direct.js';

const cases = suiteCases((api) => transportCompliance('direct (WebRTC data channel)', api, inPageOnly));

test.describe('transport compliance: direct (WebRTC data channel)', () => {
  test('the page registers exactly the cases of the core suite', async ({ openApp }) => {
    const page = await openApp();
    const inPage = await page.evaluate(async () => (await window.direct()).names);
    expect(inPage).toEqual(cases.map((c) => c.name));
    expect(cases.length).toBeGreaterThanOrEqual(6);
  });

  for (const c of cases) {
    test(c.name, async ({ openApp }) => {
      test.setTimeout(c.timeout + 20_000);
      const page = await openApp();
      await page.evaluate(async (name) => (await window.direct()).run(name), c.name);
    });
  }
});

/** A signalling message on its way from one page to the other; returning undefined drops it. */
type Filter = (data: unknown) => unknown;

/**
 * Starts a link in each page (`a` initiates) and carries their signalling, in order, through
 * `page.evaluate`. `filter` may change or drop what `a` and `b` send.
 */
async function linkPages(a: Page, b: Page, options: LinkOptions = {}, filter: { a?: Filter; b?: Filter } = {}): Promise<void> {
  const carry = async (from: Page, to: Page, f: Filter | undefined): Promise<void> => {
    let chain = Promise.resolve();
    await from.exposeFunction('directOut', (data: unknown) => {
      const d = f ? f(data) : data;
      if (d === undefined) return;
      // One after another, so the other end gets them in the order they were produced. A page
      // closed by the test drops what is still on its way.
      chain = chain.then(() => to.evaluate(async (s) => (await window.direct()).signal(s), d)).catch(() => {});
    });
  };
  await carry(a, b, filter.a);
  await carry(b, a, filter.b);
  await b.evaluate(async (o) => (await window.direct()).start(false, o), options);
  await a.evaluate(async (o) => (await window.direct()).start(true, o), options);
}

async function openBoth(a: Page, b: Page): Promise<{ chunkSize: number }> {
  const [ra] = await Promise.all([a.evaluate(async () => (await window.direct()).ready()), b.evaluate(async () => (await window.direct()).ready())]);
  return ra;
}

test.describe('direct links: loading', () => {
  test('simple-peer is fetched when the first link starts, not with the page or with the code that may go direct', async ({ openApp, context }) => {
    const page = await context.newPage();
    const fetched: string[] = [];
    page.on('request', (r) => fetched.push(new URL(r.url()).pathname));
    await openApp(page);
    await page.evaluate(async () => void (await window.direct()));
    const simplePeer = (): string[] => fetched.filter((p) => p.includes('simplepeer'));
    expect(simplePeer()).toEqual([]);
    expect(await page.evaluate(async () => (await window.direct()).pairOnce())).toEqual(['closed', 'remote-closed']);
    expect(simplePeer()).toHaveLength(1);
    expect(await page.evaluate(async () => (await window.direct()).pairOnce())).toEqual(['closed', 'remote-closed']);
    expect(simplePeer()).toHaveLength(1);
  });
});

test.describe('direct links between two pages', () => {
  test('transfer - 5 MB in messages of 1 B to 2 MiB crosses in 64 KiB chunks, intact and in order, with backpressure', async ({ openApp }) => {
    const [a, b] = [await openApp(), await openApp()];
    await linkPages(a, b);
    const { chunkSize } = await openBoth(a, b);
    expect(chunkSize).toBe(64 * 1024);
    const sizes = [1, 100, 65_530, 65_531, 65_532, 65_536, 131_072, 2 * 1024 * 1024, 7, 1024 * 1024 + 3];
    while (sizes.reduce((s, n) => s + n, 0) < 5 * 1024 * 1024) sizes.push(100_000 + sizes.length * 1111);
    const total = sizes.reduce((s, n) => s + n, 0);
    const [sent, got] = await Promise.all([
      a.evaluate(async (s) => (await window.direct()).sendPatterns(s, 1000), sizes),
      b.evaluate(async (s) => (await window.direct()).expectPatterns(s, 1000, 25_000), sizes),
    ]);
    expect(got.ok).toEqual(sizes.map(() => true));
    expect(got.bytes).toBe(total);
    expect(total).toBeGreaterThanOrEqual(5 * 1024 * 1024);
    // Every message over one chunk was split: far more channel messages than transport messages.
    expect(got.chunksIn).toBeGreaterThanOrEqual(Math.ceil(total / chunkSize));
    test.info().annotations.push({ type: 'transfer', description: `${sizes.length} messages, ${total} bytes, ${got.chunksIn} chunks, send refused ${sent.refused} times (backpressure)` });
    // And back the other way.
    const back = [3, 70_000];
    const [, reply] = await Promise.all([b.evaluate(async (s) => (await window.direct()).sendPatterns(s, 5), back), a.evaluate(async (s) => (await window.direct()).expectPatterns(s, 5, 10_000), back)]);
    expect(reply.ok).toEqual([true, true]);
  });

  test('close - closing on one side surfaces the code and reason on the other (remote-closed), after the data sent before it', async ({ openApp }) => {
    const [a, b] = [await openApp(), await openApp()];
    await linkPages(a, b);
    await openBoth(a, b);
    const sizes = [10, 300_000];
    await a.evaluate(async (s) => (await window.direct()).sendPatterns(s, 1), sizes);
    const [closedA, got, closedB] = await Promise.all([
      a.evaluate(async () => (await window.direct()).close(4000, 'done here')),
      b.evaluate(async (s) => (await window.direct()).expectPatterns(s, 1, 10_000), sizes),
      b.evaluate(async () => (await window.direct()).closed(10_000)),
    ]);
    expect(got.ok).toEqual([true, true]);
    expect(closedA).toEqual({ code: 4000, reason: 'done here', kind: 'closed' });
    expect(closedB).toEqual({ code: 4000, reason: 'done here', kind: 'remote-closed' });
  });

  test('close - a page that goes away tells the other page (pagehide), which closes at once', async ({ openApp }) => {
    const [a, b] = [await openApp(), await openApp()];
    await linkPages(a, b);
    await openBoth(a, b);
    const started = Date.now();
    await b.close({ runBeforeUnload: false });
    const closedA = await a.evaluate(async () => (await window.direct()).closed(5000));
    const took = Date.now() - started;
    // The CLOSE it sends on pagehide arrives (1001), or the connection it destroys is seen to close.
    if (closedA.kind === 'remote-closed') expect(closedA).toEqual({ code: 1001, reason: 'the page went away', kind: 'remote-closed' });
    else expect(closedA).toMatchObject({ kind: 'channel-closed', code: 1006 });
    expect(took).toBeLessThan(5000);
    test.info().annotations.push({ type: 'page gone', description: `${closedA.kind} after ${took} ms` });
  });

  test('ICE - an initiator whose signalling stops (its answer never comes) fails as timeout within timeoutMs', async ({ openApp }) => {
    const [a, b] = [await openApp(), await openApp()];
    const started = Date.now();
    await linkPages(a, b, { timeoutMs: 3000 }, { b: () => undefined });
    const [closedA, closedB] = await Promise.all([a.evaluate(async () => (await window.direct()).closed(6000)), b.evaluate(async () => (await window.direct()).closed(6000))]);
    const took = Date.now() - started;
    expect(closedA).toMatchObject({ kind: 'timeout', code: 4005, error: { name: 'TimeoutError', code: 'TIMEOUT' } });
    expect(closedA.reason).toBe('the direct link did not open within 3000 ms');
    expect(closedB.kind).toBe('timeout');
    expect(took).toBeLessThan(6000);
  });

  test('ICE - with only a bogus candidate on each side no pair connects (Chromium keeps checking), and the attempt ends within timeoutMs', async ({ openApp }) => {
    const [a, b] = [await openApp(), await openApp()];
    // Each side's real candidates are dropped; the other side gets one that answers nothing
    // (TEST-NET-3, RFC 5737) instead of the first.
    let bogusSent = { a: false, b: false };
    const bogus = (side: 'a' | 'b'): Filter => (data) => {
      const d = data as { type: string; candidate?: { sdpMid: string | null; sdpMLineIndex: number | null } };
      if (d.type !== 'candidate') return data;
      if (bogusSent[side]) return undefined;
      bogusSent = { ...bogusSent, [side]: true };
      return { type: 'candidate', candidate: { candidate: 'candidate:1 1 udp 2122260223 203.0.113.7 9 typ host generation 0', sdpMid: d.candidate?.sdpMid ?? '0', sdpMLineIndex: d.candidate?.sdpMLineIndex ?? 0 } };
    };
    const started = Date.now();
    await linkPages(a, b, { timeoutMs: 4000 }, { a: bogus('a'), b: bogus('b') });
    const closedA = await a.evaluate(async () => (await window.direct()).closed(8000));
    const took = Date.now() - started;
    expect(bogusSent).toEqual({ a: true, b: true });
    expect(['ice-failed', 'timeout']).toContain(closedA.kind);
    expect(took).toBeLessThan(6000);
    test.info().annotations.push({ type: 'bogus candidates', description: `${closedA.kind} after ${took} ms: ${closedA.reason}` });
  });
});
