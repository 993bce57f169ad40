/**
 * Direct links over real WebRTC in Node: `@missive/browser/direct` with `@roamhq/wrtc` (an
 * optional dependency of the repo, installed with prebuilt binaries on linux-x64/arm64 and
 * macOS). The core transport compliance suite runs over two ends in this process, plus what is
 * particular to direct links: chunking of a large message, signalling checks, ICE servers as a
 * function, a link that never gets its answer.
 */
import wrtcModule from '@roamhq/wrtc';
import { describe, expect, it } from 'vitest';
import { pattern, sameBytes, transportCompliance } from '@missive/core/testing';
import type { CloseInfo } from '@missive/core';
import { directSupported, openDirect, type DirectLink, type DirectLinkOptions, type DirectSignal, type WrtcImplementation } from '@missive/browser/direct';

const wrtc: WrtcImplementation = wrtcModule;

/** Two ends joined in this process; signalling goes through a JSON round trip, as over a relay. */
function linkPair(options: Partial<DirectLinkOptions> = {}): { a: DirectLink; b: DirectLink } {
  const ends: { a?: DirectLink; b?: DirectLink } = {};
  const relay = (to: 'a' | 'b') => (data: DirectSignal) => {
    const copy: unknown = JSON.parse(JSON.stringify(data));
    setTimeout(() => ends[to]!.signal(copy), 0);
  };
  ends.a = openDirect({ wrtc, ...options, initiator: true, signal: relay('b') });
  ends.b = openDirect({ wrtc, ...options, initiator: false, signal: relay('a') });
  return { a: ends.a, b: ends.b };
}

async function closeBoth(...links: DirectLink[]): Promise<void> {
  for (const l of links) l.close();
  await Promise.all(links.map((l) => l.closed));
}

transportCompliance('direct (Node, @roamhq/wrtc)', { describe, it }, async () => {
  const { a, b } = linkPair();
  const [ta, tb] = await Promise.all([a.ready, b.ready]);
  return { a: ta, b: tb, cleanup: () => closeBoth(a, b) };
});

describe('direct links in Node (@roamhq/wrtc)', () => {
  it('directSupported - Node has no RTCPeerConnection of its own; with wrtc it can', () => {
    expect(directSupported()).toBe(false);
    expect(directSupported(wrtc)).toBe(true);
  });

  it('without wrtc - the link ends at once with kind error, naming wrtc', async () => {
    const link = openDirect({ initiator: true, signal: () => {} });
    await expect(link.ready).rejects.toMatchObject({ code: 'CLOSED' });
    const info = await link.closed;
    expect(info.kind).toBe('error');
    expect(info.reason).toMatch(/no WebRTC here.*wrtc/);
  });

  it('chunking - a 5 MB message crosses in chunks of the negotiated size and arrives intact', async () => {
    const { a, b } = linkPair();
    const [ta, tb] = await Promise.all([a.ready, b.ready]);
    const got = new Promise<Uint8Array>((resolve, reject) => {
      tb.listen({ message: resolve, drain: () => {}, close: (i: CloseInfo) => reject(new Error(`closed: ${i.reason}`)) });
    });
    ta.listen({ message: () => {}, drain: () => {}, close: () => {} });
    const big = pattern(5 * 1024 * 1024, 5);
    ta.send(big.slice());
    const m = await got;
    expect(sameBytes(m, big)).toBe(true);
    const stats = a.stats();
    expect(stats.chunkSize).toBe(64 * 1024);
    expect(stats.chunksOut).toBeGreaterThanOrEqual(Math.ceil(big.length / stats.chunkSize));
    expect(b.stats().messagesIn).toBe(1);
    await closeBoth(a, b);
  }, 30_000);

  it('iceServers - a function is called once per attempt, and what it gives is used', async () => {
    let calls = 0;
    const iceServers = async (): Promise<RTCIceServer[]> => {
      calls++;
      return [];
    };
    for (let i = 0; i < 2; i++) {
      const { a, b } = linkPair({ iceServers });
      await Promise.all([a.ready, b.ready]);
      await closeBoth(a, b);
    }
    expect(calls).toBe(4);
  }, 30_000);

  it('iceServers - a function that throws ends the attempt with kind error, its error as cause', async () => {
    const boom = new Error('TURN credentials unavailable');
    const link = openDirect({ wrtc, initiator: true, signal: () => {}, iceServers: () => Promise.reject(boom) });
    const info = await link.closed;
    expect(info.kind).toBe('error');
    expect(info.error?.cause).toBe(boom);
  });

  it('signal - malformed data, or an offer sent to the initiator, ends the link with kind protocol', async () => {
    const x = openDirect({ wrtc, initiator: true, signal: () => {} });
    x.signal({ type: 'offer', sdp: 'v=0' });
    expect(await x.closed).toMatchObject({ kind: 'protocol', code: 1002, reason: 'protocol error: unexpected offer: this end takes an answer' });
    const y = openDirect({ wrtc, initiator: false, signal: () => {} });
    y.signal({ type: 'candidate', candidate: { candidate: 42 } });
    expect(await y.closed).toMatchObject({ kind: 'protocol' });
    const z = openDirect({ wrtc, initiator: false, signal: () => {} });
    z.signal('{"type":"offer"}');
    expect(await z.closed).toMatchObject({ kind: 'protocol', reason: 'protocol error: signal data is not an object' });
  });

  it('timeout - an initiator whose answer never comes ends as timeout within timeoutMs', async () => {
    const signals: DirectSignal[] = [];
    const started = performance.now();
    const link = openDirect({ wrtc, initiator: true, signal: (d) => void signals.push(d), timeoutMs: 1500 });
    const err: unknown = await link.ready.catch((e: unknown) => e);
    const took = performance.now() - started;
    expect(err).toMatchObject({ code: 'CLOSED', cause: expect.objectContaining({ code: 'TIMEOUT' }) });
    expect((await link.closed).kind).toBe('timeout');
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(3000);
    expect(signals[0]?.type).toBe('offer');
    expect(JSON.parse(JSON.stringify(signals))).toEqual(signals);
  });

  it('close - before the channel opens, close() gives the attempt up at once (kind closed)', async () => {
    const link = openDirect({ wrtc, initiator: true, signal: () => {} });
    link.close({ code: 4000, reason: 'changed my mind' });
    expect(await link.closed).toEqual({ code: 4000, reason: 'changed my mind', kind: 'closed' });
    await expect(link.ready).rejects.toMatchObject({ code: 'CLOSED' });
    expect(link.transport).toBeUndefined();
  });

  it('events - open, the ICE states and close are reported, and the transport stays readable after close', async () => {
    const { a, b } = linkPair();
    const seen: string[] = [];
    a.on('ice', (s) => seen.push(`ice:${s}`));
    a.on('open', () => seen.push('open'));
    a.on('close', (i) => seen.push(`close:${i.kind}`));
    const [t] = await Promise.all([a.ready, b.ready]);
    expect(a.transport).toBe(t);
    expect(a.state).toBe('open');
    b.close({ code: 4001, reason: 'done' });
    const info = await a.closed;
    expect(info).toEqual({ code: 4001, reason: 'done', kind: 'remote-closed' });
    await b.closed;
    expect(seen).toContain('open');
    expect(seen).toContain('ice:connected');
    expect(seen.at(-1)).toBe('close:remote-closed');
    expect(a.transport?.status).toBe('closed');
  }, 20_000);
});
