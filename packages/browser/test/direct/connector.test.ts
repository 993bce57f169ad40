/**
 * webrtcConnector loads openDirect on the first attempt: signalling that arrives while it loads
 * is kept and handed over, and an attempt given up before it loads never opens a link.
 */
import wrtcModule from '@roamhq/wrtc';
import { describe, expect, it } from 'vitest';
import { webrtcConnector, type WrtcImplementation } from '@missive/browser/direct';
import type { DirectAttempt } from '@missive/core';

const wrtc: WrtcImplementation = wrtcModule;

describe('webrtcConnector', () => {
  it('opens a channel when each side signals the other at once, before openDirect has loaded', async () => {
    const connector = webrtcConnector({ wrtc });
    // The answerer's attempt starts on the offerer's first signal, which it is handed at once:
    // that signal reaches an attempt whose openDirect is still loading.
    let b: DirectAttempt | undefined;
    let early = 0;
    const answerer = (): DirectAttempt => (b ??= connector.open('a', { initiator: false, signal: (data) => a.signal(data) }));
    const a: DirectAttempt = connector.open('b', {
      initiator: true,
      signal: (data) => {
        if (!b) early++;
        answerer().signal(data);
      },
    });
    await expect.poll(() => early).toBe(1);
    const [ta, tb] = await Promise.all([a.ready, answerer().ready]);
    let closedB!: () => void;
    const closed = new Promise<void>((resolve) => (closedB = resolve));
    const got = new Promise<Uint8Array>((resolve) => tb.listen({ message: resolve, drain: () => undefined, close: () => closedB() }));
    ta.listen({ message: () => undefined, drain: () => undefined, close: () => undefined });
    ta.send(new Uint8Array([1, 2, 3]));
    expect([...(await got)]).toEqual([1, 2, 3]);
    ta.close({ code: 1000, reason: 'done' });
    await closed;
  }, 20_000);

  it('an attempt given up before openDirect loads rejects with CLOSED and opens nothing', async () => {
    const attempt = webrtcConnector({ wrtc }).open('b', { initiator: true, signal: () => expect.fail('an attempt given up must not signal') });
    attempt.signal({ type: 'offer', sdp: 'v=0' });
    attempt.close();
    await expect(attempt.ready).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
