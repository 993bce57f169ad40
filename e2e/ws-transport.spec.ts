/**
 * What the browser WebSocket transport does beyond the compliance suite: text refused, close
 * codes browsers cannot send, reasons cut to 123 bytes, a dropped connection, and opening.
 */
import { WebSocketServer } from 'ws';
import type { AddressInfo } from 'node:net';
import { expect, test } from './fixtures.js';

test.describe('browser WebSocket transport', () => {
  test('a text message is not delivered: the transport closes, reporting 1003, and the sender sees 1000 with the reason', async ({ openApp, bridgeUrl }) => {
    const page = await openApp();
    const r = await page.evaluate(async (bridge) => {
      const pair = `${bridge}/${crypto.randomUUID()}`;
      const raw = new WebSocket(pair);
      const [t] = await Promise.all([window.missive.openWsTransport(pair), new Promise((resolve) => raw.addEventListener('open', resolve, { once: true }))]);
      const messages: number[] = [];
      const local = new Promise<{ code: number; reason: string }>((resolve) =>
        t.listen({ message: (m) => messages.push(m.length), drain: () => {}, close: (info) => resolve({ code: info.code, reason: info.reason }) }),
      );
      const remote = new Promise<{ code: number; reason: string }>((resolve) => raw.addEventListener('close', (ev) => resolve({ code: ev.code, reason: ev.reason }), { once: true }));
      raw.send(new Uint8Array([1, 2]));
      raw.send('not binary');
      raw.send(new Uint8Array([3]));
      return { local: await local, remote: await remote, messages, status: t.status };
    }, bridgeUrl);
    expect(r.messages).toEqual([2]);
    expect(r.local).toEqual({ code: 1003, reason: 'PROTOCOL: text messages are not accepted' });
    expect(r.remote).toEqual({ code: 1000, reason: 'PROTOCOL: text messages are not accepted' });
    expect(r.status).toBe('closed');
  });

  test('close - a code browsers refuse (1002) goes out as 1000 and is reported as asked; a reason over 123 bytes is cut on a character boundary', async ({ openApp, bridgeUrl }) => {
    const page = await openApp();
    const r = await page.evaluate(async (bridge) => {
      const pair = `${bridge}/${crypto.randomUUID()}`;
      const [a, b] = await Promise.all([window.missive.openWsTransport(pair), window.missive.openWsTransport(pair)]);
      const closed = (t: typeof a): Promise<{ code: number; reason: string }> =>
        new Promise((resolve) => t.listen({ message: () => {}, drain: () => {}, close: (info) => resolve({ code: info.code, reason: info.reason }) }));
      const [ca, cb] = [closed(a), closed(b)];
      // 61 two-byte characters: 122 bytes; a three-byte one after them would pass 123.
      const reason = `${'é'.repeat(61)}€ and more`;
      a.close({ code: 1002, reason });
      return { a: await ca, b: await cb };
    }, bridgeUrl);
    const cut = 'é'.repeat(61);
    expect(r.a).toEqual({ code: 1002, reason: cut });
    expect(r.b).toEqual({ code: 1000, reason: cut });
    expect(Buffer.byteLength(r.b.reason)).toBeLessThanOrEqual(123);
  });

  test('a connection dropped by the other side closes with 1006 and an error', async ({ openApp }) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    wss.on('connection', (ws) => ws.once('message', () => ws.terminate()));
    try {
      const page = await openApp();
      const r = await page.evaluate(async (url) => {
        const t = await window.missive.openWsTransport(url);
        const closed = new Promise<{ code: number; error: string | undefined }>((resolve) =>
          t.listen({ message: () => {}, drain: () => {}, close: (info) => resolve({ code: info.code, error: info.error?.message }) }),
        );
        t.send(new Uint8Array([1]));
        const info = await closed;
        let thrown: string | undefined;
        try {
          t.send(new Uint8Array([2]));
        } catch (e) {
          thrown = (e as { code?: string }).code;
        }
        return { ...info, thrown };
      }, `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
      expect(r.code).toBe(1006);
      expect(r.error).toContain('failed');
      expect(r.thrown).toBe('CLOSED');
    } finally {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });

  test('opening - CLOSED with a cause when nothing listens, SyntaxError for a bad URL; wsTransport() wants an open socket', async ({ openApp, bridgeUrl }) => {
    const page = await openApp();
    // A port that was free a moment ago: nothing listens there.
    const probe = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => probe.once('listening', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await page.evaluate(
      async ({ dead, bridge }) => {
        const { openWsTransport } = window.missive;
        const unreachable = await openWsTransport(dead).then(
          () => undefined,
          (e: Error & { code?: string }) => ({ code: e.code, message: e.message, cause: (e.cause as Error | undefined)?.message }),
        );
        const badUrl = await openWsTransport('ftp://127.0.0.1/').then(
          () => undefined,
          (e: Error) => e.name,
        );
        const badTimeout = await openWsTransport(bridge, { timeout: 0 }).then(
          () => undefined,
          (e: Error) => e.name,
        );
        const ws = new WebSocket(bridge);
        let connecting: string | undefined;
        try {
          window.missive.wsTransport(ws);
        } catch (e) {
          connecting = (e as Error).name;
        }
        await new Promise((resolve) => ws.addEventListener('open', resolve, { once: true }));
        const t = window.missive.wsTransport(ws);
        const wrapped = { status: t.status, binaryType: ws.binaryType, copiesOnSend: t.copiesOnSend };
        t.close();
        return { unreachable, badUrl, badTimeout, connecting, wrapped };
      },
      { dead: `ws://127.0.0.1:${port}`, bridge: `${bridgeUrl}/unused` },
    );
    expect(r.unreachable).toMatchObject({ code: 'CLOSED' });
    expect(r.unreachable!.message).toContain(`ws://127.0.0.1:${port}`);
    expect(r.unreachable!.cause).toContain('1006');
    expect(r.badUrl).toBe('SyntaxError');
    expect(r.badTimeout).toBe('TypeError');
    expect(r.connecting).toBe('TypeError');
    expect(r.wrapped).toEqual({ status: 'open', binaryType: 'arraybuffer', copiesOnSend: true });
  });
});
