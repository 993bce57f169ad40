/**
 * The e2e "bridge": a WebSocket server that pairs two browser sockets opened on the same path
 * and joins them, so both ends of a browser transport pair live in one page. Every message of
 * one socket goes to the other as it came (binary or text), and a close is passed on with its
 * code and reason (an abnormal close, 1006, as a dropped connection). Messages sent before the
 * partner arrives wait for it. A socket left without a partner for `pairTimeout` ms is closed.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

export interface Bridge {
  /** `ws://127.0.0.1:port`: open two sockets on `${url}/<same id>` to get a pair. */
  readonly url: string;
  close(): Promise<void>;
}

interface Waiting {
  ws: WebSocket;
  early: { data: RawData; isBinary: boolean }[];
  closed?: { code: number; reason: Buffer };
  timer: ReturnType<typeof setTimeout>;
  onMessage: (data: RawData, isBinary: boolean) => void;
  onClose: (code: number, reason: Buffer) => void;
}

export async function startBridge(pairTimeout = 10_000): Promise<Bridge> {
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, maxPayload: 0 });
  const waiting = new Map<string, Waiting>();
  const sockets = new Set<WebSocket>();

  wss.on('connection', (ws, req) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('error', () => {}); // a reset shows as the close that follows: passed on as 1006
    const id = req.url ?? '/';
    const first = waiting.get(id);
    if (!first) {
      const w: Waiting = {
        ws,
        early: [],
        timer: setTimeout(() => giveUp(id), pairTimeout),
        onMessage: (data, isBinary) => w.early.push({ data, isBinary }),
        onClose: (code, reason) => (w.closed = { code, reason }),
      };
      waiting.set(id, w);
      ws.on('message', w.onMessage);
      ws.on('close', w.onClose);
      return;
    }
    waiting.delete(id);
    clearTimeout(first.timer);
    first.ws.off('message', first.onMessage);
    first.ws.off('close', first.onClose);
    for (const m of first.early) ws.send(m.data, { binary: m.isBinary });
    if (first.closed) {
      passClose(ws, first.closed.code, first.closed.reason);
      return;
    }
    join(first.ws, ws);
    join(ws, first.ws);
  });

  function giveUp(id: string): void {
    const w = waiting.get(id);
    if (!w) return;
    waiting.delete(id);
    w.ws.close(4000, 'bridge: no partner came');
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    async close() {
      for (const w of waiting.values()) clearTimeout(w.timer);
      waiting.clear();
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** Forwards `from`'s messages and close to `to`. */
function join(from: WebSocket, to: WebSocket): void {
  from.on('message', (data, isBinary) => {
    if (to.readyState === to.OPEN) to.send(data, { binary: isBinary });
  });
  from.on('close', (code, reason) => passClose(to, code, reason));
}

function passClose(to: WebSocket, code: number, reason: Buffer): void {
  if (to.readyState === to.CLOSED || to.readyState === to.CLOSING) return;
  if (code === 1006) to.terminate();
  else if (code === 1005) to.close();
  else to.close(code, reason);
}
