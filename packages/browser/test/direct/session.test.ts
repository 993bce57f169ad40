/**
 * A direct link's session (session.ts) over a fake data channel, with fake timers: chunking,
 * backpressure with and without `bufferedamountlow`, the close handshake, and the failure checks
 * (grace period, stall, idle, open timeout, too-big, protocol). Real WebRTC runs in
 * direct-wrtc.test.ts (Node) and e2e/direct.spec.ts (Chromium).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pattern, sameBytes } from '@missive/core/testing';
import type { CloseInfo, TransportHandlers } from '@missive/core';
import { DIRECT_LINK_DEFAULTS } from '../../src/direct/config.js';
import { CLOSE_LINGER_MS, DirectSession, type DataChannelPort, type DirectCloseInfo, type SessionOptions } from '../../src/direct/session.js';
import { encodeFirst } from '../../src/direct/wire.js';

/**
 * One direction of a fake data channel: `send` buffers, and a timer (0 ms) hands the buffered
 * messages to the other session, unless `blocked`. `bufferedAmountLowThreshold` as a browser has
 * it, or none (`lowEvents: false`, as Node's wrtc).
 */
class FakeChannel implements DataChannelPort {
  remote: DirectSession | undefined;
  blocked = false;
  closed = false;
  sent: Uint8Array[] = [];
  #buffer: Uint8Array[] = [];
  #amount = 0;
  #threshold = 0;
  #onLow: (() => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(readonly lowEvents = true) {}

  get bufferedAmount(): number {
    return this.#amount;
  }
  send(m: Uint8Array): void {
    if (this.closed) throw new Error('InvalidStateError: the channel is closed');
    this.sent.push(m);
    this.#buffer.push(m);
    this.#amount += m.length;
    this.#schedule();
  }
  watchLow(threshold: number, onLow: () => void): boolean {
    if (!this.lowEvents) return false;
    this.#threshold = threshold;
    this.#onLow = onLow;
    return true;
  }
  unwatch(): void {
    this.#onLow = undefined;
  }
  unblock(): void {
    this.blocked = false;
    this.#schedule();
  }
  close(): void {
    this.closed = true;
    clearTimeout(this.#timer);
  }
  #schedule(): void {
    if (this.#timer === undefined && !this.blocked) this.#timer = setTimeout(this.#deliver, 0);
  }
  readonly #deliver = (): void => {
    this.#timer = undefined;
    while (this.#buffer.length > 0 && !this.blocked && !this.closed) {
      const m = this.#buffer.shift()!;
      const before = this.#amount;
      this.#amount -= m.length;
      this.remote?.message(m);
      if (before > this.#threshold && this.#amount <= this.#threshold) this.#onLow?.();
    }
  };
}

class Recorder implements TransportHandlers {
  messages: Uint8Array[] = [];
  drains = 0;
  closeInfo: CloseInfo | undefined;
  message(data: Uint8Array): void {
    this.messages.push(data);
  }
  drain(): void {
    this.drains++;
  }
  close(info: CloseInfo): void {
    if (this.closeInfo) throw new Error('close reported twice');
    this.closeInfo = info;
  }
}

interface End {
  s: DirectSession;
  ch: FakeChannel;
  r: Recorder;
  ended: DirectCloseInfo[];
}

type Tuning = Partial<Omit<SessionOptions, 'onEnd' | 'onOpen'>>;

/** Every session of the test, ended after it so that no timer outlives it. */
const live: DirectSession[] = [];

function session(tuning: Tuning, ended: DirectCloseInfo[], hangUp: () => void): DirectSession {
  const s = new DirectSession({
    ...DIRECT_LINK_DEFAULTS,
    ...tuning,
    onOpen: () => {},
    onEnd: (info) => {
      ended.push(info);
      hangUp();
    },
  });
  live.push(s);
  return s;
}

/**
 * Two sessions joined by fake channels, both open. Ending one destroys its connection: the other
 * hears the channel close one tick later, as with WebRTC.
 */
function pair(tuning: Tuning = {}, chunk = 1024, lowEvents = true): [End, End] {
  const mk = (): End => {
    const ended: DirectCloseInfo[] = [];
    const ch = new FakeChannel(lowEvents);
    const end = { ch, r: new Recorder(), ended } as End;
    end.s = session(tuning, ended, () => {
      ch.close();
      setTimeout(() => other(end).s.channelClosed(), 0);
    });
    return end;
  };
  const a = mk();
  const b = mk();
  const other = (e: End): End => (e === a ? b : a);
  a.ch.remote = b.s;
  b.ch.remote = a.s;
  for (const e of [a, b]) {
    e.s.opened(e.ch, chunk);
    e.s.listen(e.r);
  }
  return [a, b];
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
});
afterEach(() => {
  for (const s of live.splice(0)) s.fail('error', new Error('test over'));
  vi.clearAllTimers();
  vi.useRealTimers();
});

describe('direct session', () => {
  it('send - a message larger than the chunk size crosses in chunks and arrives whole, in order with the rest', async () => {
    const [a, b] = pair({}, 1000);
    const big = pattern(10_000, 1);
    a.s.send(pattern(10, 0));
    a.s.send(big.slice());
    a.s.send(pattern(10, 2));
    await vi.advanceTimersByTimeAsync(1);
    expect(b.r.messages.length).toBe(3);
    expect(sameBytes(b.r.messages[1]!, big)).toBe(true);
    expect(sameBytes(b.r.messages[2]!, pattern(10, 2))).toBe(true);
    expect(a.ch.sent.length).toBe(1 + 11 + 1);
    expect(Math.max(...a.ch.sent.map((m) => m.length))).toBe(1000);
    expect(a.s.stats()).toMatchObject({ messagesOut: 3, chunksOut: 13, chunkSize: 1000 });
    expect(b.s.stats()).toMatchObject({ messagesIn: 3, chunksIn: 13 });
  });

  it('send - throws LIMIT above maxMessageBytes and CLOSED once closing', () => {
    const [a] = pair({ maxMessageBytes: 100 });
    expect(() => a.s.send(new Uint8Array(101))).toThrow(expect.objectContaining({ code: 'LIMIT' }));
    a.s.close();
    expect(a.s.status).toBe('closing');
    expect(() => a.s.send(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  for (const lowEvents of [true, false]) {
    it(`backpressure - send returns false above highWaterMark and drain follows ${lowEvents ? 'bufferedamountlow' : 'polling (no bufferedamountlow)'}`, async () => {
      const [a, b] = pair({ highWaterMark: 4096, stallMs: 0 }, 1024, lowEvents);
      a.ch.blocked = true;
      let accepted = 0;
      while (a.s.send(pattern(1000, accepted))) accepted++;
      expect(accepted).toBe(4);
      expect(a.s.bufferedAmount).toBeGreaterThan(4096);
      a.ch.unblock();
      await vi.advanceTimersByTimeAsync(50);
      expect(a.r.drains).toBe(1);
      expect(b.r.messages.length).toBe(accepted + 1);
      expect(a.s.bufferedAmount).toBe(0);
    });
  }

  it('close - the CLOSE follows the queued data; the other end reports code and reason, this end once it hung up', async () => {
    const [a, b] = pair();
    a.s.send(pattern(5000, 1));
    a.s.close({ code: 4003, reason: 'bye now' });
    expect(a.r.closeInfo).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(b.r.messages.length).toBe(1);
    expect(b.r.closeInfo).toEqual({ code: 4003, reason: 'bye now', kind: 'remote-closed' });
    await vi.advanceTimersByTimeAsync(1);
    expect(a.r.closeInfo).toEqual({ code: 4003, reason: 'bye now', kind: 'closed' });
    expect([a.s.status, b.s.status]).toEqual(['closed', 'closed']);
    expect([a.ended.length, b.ended.length]).toEqual([1, 1]);
  });

  it('close - a closing end whose other end never hangs up ends after the linger', async () => {
    const [a, b] = pair();
    b.ch.close(); // b's hang-up never reaches a
    b.s.message = () => {}; // and b never reads the CLOSE
    a.s.close();
    await vi.advanceTimersByTimeAsync(CLOSE_LINGER_MS - 10);
    expect(a.r.closeInfo).toBeUndefined();
    await vi.advanceTimersByTimeAsync(20);
    expect(a.r.closeInfo).toMatchObject({ code: 1000, kind: 'closed' });
  });

  it('close - both ends closing at once each report their own close', async () => {
    const [a, b] = pair();
    a.s.close({ code: 4000, reason: 'a' });
    b.s.close({ code: 4001, reason: 'b' });
    await vi.advanceTimersByTimeAsync(5);
    expect(a.r.closeInfo).toMatchObject({ code: 4000, kind: 'closed' });
    expect(b.r.closeInfo).toMatchObject({ code: 4001, kind: 'closed' });
  });

  it('grace - ICE disconnected for less than graceMs keeps the link; longer ends it as ice-disconnected (1006)', async () => {
    const [a, b] = pair({ graceMs: 5000 });
    a.s.ice('connected');
    a.s.ice('disconnected');
    await vi.advanceTimersByTimeAsync(4000);
    a.s.ice('connected');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(a.s.state).toBe('open');
    a.s.send(pattern(3, 3));
    await vi.advanceTimersByTimeAsync(1);
    expect(b.r.messages.length).toBe(1);
    a.s.ice('disconnected');
    await vi.advanceTimersByTimeAsync(4999);
    expect(a.s.state).toBe('open');
    await vi.advanceTimersByTimeAsync(1);
    expect(a.r.closeInfo).toMatchObject({ code: 1006, kind: 'ice-disconnected' });
    expect(a.r.closeInfo!.error).toMatchObject({ code: 'TIMEOUT' });
    await vi.advanceTimersByTimeAsync(1);
    expect(b.r.closeInfo).toMatchObject({ code: 1006, kind: 'channel-closed' });
  });

  it('ice - failed ends the link at once', () => {
    const [a] = pair();
    a.s.ice('failed');
    expect(a.r.closeInfo).toMatchObject({ code: 1006, kind: 'ice-failed' });
    expect(a.r.closeInfo!.error!.message).toMatch(/ICE failed/);
  });

  it('stall - queued bytes that do not leave for stallMs end the link as stalled (4005); a slow channel that moves does not', async () => {
    const [a] = pair({ stallMs: 2000, idleTimeoutMs: 0 });
    // Slow: one delivery a second, for 6 s.
    a.ch.blocked = true;
    for (let i = 0; i < 6; i++) a.s.send(pattern(100, i));
    for (let i = 0; i < 6; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      a.ch.unblock();
      await vi.advanceTimersByTimeAsync(0);
      a.ch.blocked = true;
      a.s.send(pattern(100, i));
    }
    expect(a.s.state).toBe('open');
    await vi.advanceTimersByTimeAsync(2600);
    expect(a.r.closeInfo).toMatchObject({ code: 4005, kind: 'stalled' });
    expect(a.r.closeInfo!.reason).toMatch(/^stalled: \d+ bytes queued and none sent for \d+ ms$/);
  });

  it('idle - pings keep a quiet link open; nothing received for idleTimeoutMs ends it as idle (4005)', async () => {
    const [a, b] = pair({ keepaliveMs: 1000, idleTimeoutMs: 4000 });
    await vi.advanceTimersByTimeAsync(20_000);
    expect([a.s.state, b.s.state]).toEqual(['open', 'open']);
    expect(a.ch.sent.filter((m) => m.length === 1 && m[0] === 4).length).toBeGreaterThanOrEqual(15);
    b.ch.blocked = true; // b's pings stop reaching a
    await vi.advanceTimersByTimeAsync(4300);
    expect(a.r.closeInfo).toMatchObject({ code: 4005, kind: 'idle' });
    expect(a.r.closeInfo!.reason).toMatch(/^nothing received for \d+ ms$/);
  });

  it('timeout - a link that does not open within timeoutMs ends as timeout, with a TimeoutError', async () => {
    const ended: DirectCloseInfo[] = [];
    const s = session({ timeoutMs: 3000 }, ended, () => {});
    await vi.advanceTimersByTimeAsync(2999);
    expect(s.state).toBe('connecting');
    await vi.advanceTimersByTimeAsync(1);
    expect(ended).toEqual([expect.objectContaining({ kind: 'timeout', code: 4005, error: expect.objectContaining({ code: 'TIMEOUT' }) })]);
    expect(s.state).toBe('closed');
  });

  it('too-big - a FIRST announcing more than maxMessageBytes closes both ends with 1009, LIMIT at the receiver', async () => {
    const [a, b] = pair({ maxMessageBytes: 1000 });
    a.ch.send(encodeFirst(1001, new Uint8Array(10)));
    await vi.advanceTimersByTimeAsync(5);
    expect(b.r.closeInfo).toMatchObject({ code: 1009, kind: 'too-big', error: expect.objectContaining({ code: 'LIMIT' }) });
    expect(b.r.closeInfo!.reason).toBe('a message of 1001 bytes exceeds maxMessageBytes (1000)');
    expect(a.r.closeInfo).toMatchObject({ code: 1009, kind: 'remote-closed', reason: 'a message of 1001 bytes exceeds maxMessageBytes (1000)' });
    expect(b.r.messages.length).toBe(0);
  });

  it('protocol - text or an unknown message type closes with 1002', async () => {
    const [a, b] = pair();
    b.s.message('hello');
    await vi.advanceTimersByTimeAsync(5);
    expect(b.r.closeInfo).toMatchObject({ code: 1002, kind: 'protocol', error: expect.objectContaining({ code: 'PROTOCOL' }) });
    expect(a.r.closeInfo).toMatchObject({ code: 1002, kind: 'remote-closed' });
    const [c, d] = pair();
    c.ch.send(Uint8Array.of(9));
    await vi.advanceTimersByTimeAsync(5);
    expect(d.r.closeInfo).toMatchObject({ code: 1002, kind: 'protocol', reason: 'protocol error: unknown data channel message type 9' });
  });

  it('receive - messages that arrive before listen or while paused are held, then delivered in order', async () => {
    const ended: DirectCloseInfo[] = [];
    const a = session({}, ended, () => {});
    const b = session({}, [], () => {});
    const ch = new FakeChannel();
    ch.remote = b;
    a.opened(ch, 1024);
    a.send(pattern(3000, 1));
    a.send(pattern(10, 2));
    await vi.advanceTimersByTimeAsync(1);
    const r = new Recorder();
    b.listen(r);
    expect(r.messages.length).toBe(2);
    b.pause();
    a.send(pattern(10, 3));
    await vi.advanceTimersByTimeAsync(1);
    expect(r.messages.length).toBe(2);
    b.resume();
    expect(r.messages.map((m) => m.length)).toEqual([3000, 10, 10]);
  });

  it('channel - a channel that closes without a CLOSE ends the link as channel-closed (1006)', () => {
    const [a] = pair();
    a.s.channelClosed(new Error('User-Initiated Abort'));
    expect(a.r.closeInfo).toMatchObject({ code: 1006, kind: 'channel-closed' });
    expect(a.r.closeInfo!.error!.cause).toBeInstanceOf(Error);
  });
});
