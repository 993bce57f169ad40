import { transportCompliance } from '@missive/core/testing';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { wsTransport } from '../src/ws-transport.js';

transportCompliance('ws', { describe, it }, async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 0 });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false, maxPayload: 0 });
  await once(client, 'open');
  const [server] = await accepted;
  return {
    a: wsTransport(client, { highWaterMark: 256 * 1024 }),
    b: wsTransport(server, { highWaterMark: 256 * 1024 }),
    cleanup: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
});
