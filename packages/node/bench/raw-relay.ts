/**
 * The baseline: the fastest simple relay we know how to write on `ws`. One ws message per
 * frame; the first byte is the length of the target name, then the name, then the payload. The
 * message is forwarded as is (no parse beyond the header, no copy) to the socket registered
 * under that name, or to every member of that group. Backpressure is honoured: a source is
 * paused while any target it wrote to is above the high-water mark.
 *
 * Registration: a client's first message is text `name` or `name@group`.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const HWM = 1024 * 1024;

export async function startRawRelay(port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const byName = new Map<string, WebSocket>();
  const groups = new Map<string, WebSocket[]>();
  const blocked = new Map<WebSocket, Set<WebSocket>>(); // target -> paused sources
  const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  await new Promise<void>((r) => wss.once('listening', () => r()));

  const release = (target: WebSocket): void => {
    if (target.bufferedAmount > HWM) return;
    const sources = blocked.get(target);
    if (!sources) return;
    blocked.delete(target);
    for (const s of sources) s.resume();
  };
  const forward = (source: WebSocket, target: WebSocket, data: Buffer): void => {
    target.send(data, { binary: true }, () => release(target));
    if (target.bufferedAmount > HWM) {
      let set = blocked.get(target);
      if (!set) blocked.set(target, (set = new Set()));
      set.add(source);
      source.pause();
    }
  };

  wss.on('connection', (ws) => {
    let registered = false;
    ws.on('message', (data: Buffer, isBinary) => {
      if (!registered) {
        const [name, group] = data.toString().split('@');
        byName.set(name!, ws);
        if (group) {
          let g = groups.get(group);
          if (!g) groups.set(group, (g = []));
          g.push(ws);
        }
        registered = true;
        ws.send('ok');
        return;
      }
      if (!isBinary) return;
      const len = data[0]!;
      const name = data.toString('latin1', 1, 1 + len);
      const target = byName.get(name);
      if (target) return forward(ws, target, data);
      const g = groups.get(name);
      if (g) for (const t of g) forward(ws, t, data);
    });
    ws.on('close', () => {
      for (const [n, s] of byName) if (s === ws) byName.delete(n);
      for (const g of groups.values()) {
        const i = g.indexOf(ws);
        if (i >= 0) g.splice(i, 1);
      }
    });
  });
  return {
    port: (wss.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}
