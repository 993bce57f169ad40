/** Tunnels alone: opening and accepting, data both ways through the port, and failure when the link drops. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { frame, Kind } from '../../src/internal.js';
import { ClosedError, NoRouteError, TimeoutError, type Tunnel } from '../../src/index.js';
import { Tunnels, type TunnelLink } from '../../src/peer/tunnels.js';
import { closePort, testPort, type TestPort } from './port.js';

const link: TunnelLink = { maxFrame: () => 64 * 1024, congested: () => false };
const made: [Tunnels, TestPort][] = [];

function make(port = testPort()): Tunnels {
  const t = new Tunnels(port, link, 1000);
  made.push([t, port]);
  return t;
}

describe('Tunnels', () => {
  afterEach(() => {
    for (const [t, port] of made.splice(0)) if (!port.closedError) t.closed(closePort(port));
    vi.useRealTimers();
  });

  it('opens a tunnel with TOPEN, resolves on TACCEPT and writes data as TDATA', async () => {
    const port = testPort();
    const tunnels = make(port);
    const opening = tunnels.open('bob/files', 'files');
    const open = port.frames(Kind.TOpen)[0]!;
    expect(open.to).toBe('bob/files');
    tunnels.onFrame(frame(Kind.TAccept, { to: 'me', from: 'bob', tid: open.tid, window: 1 << 16 }));
    const t = await opening;
    expect(t.state).toBe('open');
    const w = t.writable.getWriter();
    await w.write(new Uint8Array([1, 2, 3]));
    const data = port.frames(Kind.TData)[0]!;
    expect([data.to, data.tid, data.dir, Array.from(data.body)]).toEqual(['bob', open.tid, 0, [1, 2, 3]]);
    expect(tunnels.inspect().tunnels).toHaveLength(1);
  });

  it('rejects an open the other side refuses, with the error it names', async () => {
    const port = testPort();
    const tunnels = make(port);
    const opening = tunnels.open('bob/files', 'files');
    const { tid } = port.frames(Kind.TOpen)[0]!;
    tunnels.onFrame(frame(Kind.TClose, { to: 'me', from: 'bob', tid, dir: 1, code: 'NO_ROUTE', message: 'no tunnel handler' }));
    await expect(opening).rejects.toBeInstanceOf(NoRouteError);
    expect(tunnels.inspect().tunnels).toEqual([]);
  });

  it('rejects an open nobody answers within the timeout', async () => {
    vi.useFakeTimers();
    const tunnels = make();
    const opening = tunnels.open('bob/files', 'files', { timeout: 100 });
    const outcome = expect(opening).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(101);
    await outcome;
  });

  it('accepts a tunnel for a registered protocol and hands it to the handler', async () => {
    const port = testPort();
    const tunnels = make(port);
    let accepted: Tunnel | undefined;
    tunnels.onTunnel<Uint8Array>('files', (t) => {
      accepted = t;
    });
    tunnels.onOpen(frame(Kind.TOpen, { to: 'me/files', from: 'alice', tid: 5, window: 1 << 16 }));
    expect(port.frames(Kind.TAccept)[0]).toMatchObject({ to: 'alice', tid: 5 });
    expect(accepted?.remote).toBe('alice');
    const reader = accepted!.readable.getReader();
    tunnels.onFrame(frame(Kind.TData, { to: 'me', from: 'alice', tid: 5, dir: 0, eom: 1 }, new Uint8Array([7, 8])));
    expect(Array.from((await reader.read()).value!)).toEqual([7, 8]);
  });

  it('refuses a tunnel for a protocol without a handler, or whose handler throws', () => {
    const port = testPort();
    const tunnels = make(port);
    tunnels.onOpen(frame(Kind.TOpen, { to: 'me/none', from: 'alice', tid: 1, window: 1 << 16 }));
    tunnels.onTunnel('bad', () => {
      throw new Error('not today');
    });
    tunnels.onOpen(frame(Kind.TOpen, { to: 'me/bad', from: 'alice', tid: 2, window: 1 << 16 }));
    expect(port.frames(Kind.TClose).map((f) => [f.tid, f.dir, f.code])).toEqual([
      [1, 1, 'NO_ROUTE'],
      [2, 1, expect.stringMatching(/^REMOTE:/)],
    ]);
    expect(tunnels.inspect().tunnels).toEqual([]);
  });

  it('fails every tunnel and pending open when the link drops', async () => {
    const port = testPort();
    const tunnels = make(port);
    const opening = tunnels.open('bob/a', 'a');
    let accepted: Tunnel | undefined;
    tunnels.onTunnel<Uint8Array>('b', (t) => {
      accepted = t;
    });
    tunnels.onOpen(frame(Kind.TOpen, { to: 'me/b', from: 'alice', tid: 9, window: 1 << 16 }));
    port.connected = false;
    tunnels.linkLost(new ClosedError('link closed'));
    await expect(opening).rejects.toBeInstanceOf(ClosedError);
    await expect(accepted!.readable.getReader().read()).rejects.toBeInstanceOf(ClosedError);
    expect(accepted!.state).toBe('closed');
    expect(tunnels.inspect().tunnels).toEqual([]);
    await expect(tunnels.open('bob/a', 'a')).rejects.toBeInstanceOf(ClosedError);
  });
});
