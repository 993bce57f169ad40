/** Registrations alone: control requests answered by OK/ERR, and registrations re-sent on every new link. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { frame, Kind } from '../../src/internal.js';
import { ClosedError, LimitError, TimeoutError } from '../../src/index.js';
import { Registrations } from '../../src/peer/registrations.js';
import { closePort, testPort } from './port.js';

const sub = (pattern: string) => (ref: number) => frame(Kind.Sub, { ref, pattern });

describe('Registrations', () => {
  afterEach(() => vi.useRealTimers());

  it('resolves a control request with the OK that carries its ref', async () => {
    const port = testPort();
    const regs = new Registrations(port, 1000);
    const p = regs.control((ref) => frame(Kind.Peers, { ref }));
    const [sent] = port.frames(Kind.Peers);
    regs.onOk(frame(Kind.Ok, { ref: sent!.ref + 1 }, new Uint8Array([9])));
    regs.onOk(frame(Kind.Ok, { ref: sent!.ref }, new Uint8Array([1, 2])));
    const reply = await p;
    expect(Array.from(reply.body)).toEqual([1, 2]);
    expect(regs.inspect().pendingControls).toBe(0);
  });

  it('rejects a control request with the typed error its ERR names', async () => {
    const port = testPort();
    const regs = new Registrations(port, 1000);
    const p = regs.control(sub('a.b'));
    const ref = port.frames(Kind.Sub)[0]!.ref;
    expect(regs.onErr(frame(Kind.Err, { ref: ref + 100, code: 'LIMIT', message: 'x' }))).toBe(false);
    expect(regs.onErr(frame(Kind.Err, { ref, code: 'LIMIT', message: 'too many subscriptions' }))).toBe(true);
    await expect(p).rejects.toBeInstanceOf(LimitError);
  });

  it('times out a control request the relay never answers', async () => {
    vi.useFakeTimers();
    const regs = new Registrations(testPort(), 500);
    const p = regs.control(sub('a'));
    const outcome = expect(p).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(501);
    await outcome;
    expect(regs.inspect().pendingControls).toBe(0);
  });

  it('refuses a control request at once while the link is down', async () => {
    const port = testPort({ connected: false });
    await expect(new Registrations(port, 1000).control(sub('a'))).rejects.toBeInstanceOf(ClosedError);
    expect(port.written).toHaveLength(0);
  });

  it('sends a registration again on every new link until the peer closes', async () => {
    const port = testPort();
    const regs = new Registrations(port, 1000);
    const ready = regs.register('sub:a', sub('a'));
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Sub)[0]!.ref }));
    await ready;
    expect(regs.inspect().registrations).toEqual([{ key: 'sub:a', confirmed: true }]);
    // A second register of the same key is the same registration: nothing new is sent.
    await regs.register('sub:a', sub('a'));
    expect(port.frames(Kind.Sub)).toHaveLength(1);

    port.connected = false;
    regs.linkLost(new ClosedError('link closed'));
    port.connected = true;
    regs.attached();
    expect(port.frames(Kind.Sub).map((f) => f.pattern)).toEqual(['a', 'a']);

    const err = closePort(port);
    regs.closed(err);
    regs.attached();
    expect(port.frames(Kind.Sub)).toHaveLength(2);
    expect(regs.inspect().registrations).toEqual([]);
  });

  it('drops a registration the relay refuses, and tells its owner', async () => {
    const port = testPort();
    const regs = new Registrations(port, 1000);
    const refused = vi.fn();
    const ready = regs.register('sub:a', sub('a'), refused);
    regs.onErr(frame(Kind.Err, { ref: port.frames(Kind.Sub)[0]!.ref, code: 'LIMIT', message: 'too many' }));
    await expect(ready).rejects.toBeInstanceOf(LimitError);
    expect(refused).toHaveBeenCalledOnce();
    regs.attached();
    expect(port.frames(Kind.Sub)).toHaveLength(1);
  });

  it('reports as an error a refusal nobody waits for (a registration re-sent after a reconnection)', async () => {
    const port = testPort();
    const regs = new Registrations(port, 1000);
    const ready = regs.register('sub:a', sub('a'));
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Sub)[0]!.ref }));
    await ready;
    regs.linkLost(new ClosedError('link closed'));
    regs.attached();
    regs.onErr(frame(Kind.Err, { ref: port.frames(Kind.Sub)[1]!.ref, code: 'AUTH', message: 'no longer allowed' }));
    await vi.waitFor(() => expect(port.errors).toHaveLength(1));
    expect((port.errors[0] as Error).message).toContain('no longer allowed');
    expect(regs.inspect().registrations).toEqual([]);
  });

  it('keeps a registration made while the link is down and sends it on the next link', async () => {
    const port = testPort({ connected: false });
    const regs = new Registrations(port, 1000);
    const ready = regs.register('join:g', (ref) => frame(Kind.Join, { ref, group: 'g' }));
    expect(port.written).toHaveLength(0);
    port.connected = true;
    regs.attached();
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Join)[0]!.ref }));
    await ready;
  });

  it('unregistering cancels those still waiting for the relay', async () => {
    const port = testPort();
    const regs = new Registrations(port, 1000);
    const ready = regs.register('sub:a', sub('a'));
    const done = regs.unregister('sub:a', (ref) => frame(Kind.Unsub, { ref, pattern: 'a' }));
    await expect(ready).rejects.toBeInstanceOf(ClosedError);
    regs.onOk(frame(Kind.Ok, { ref: port.frames(Kind.Unsub)[0]!.ref }));
    await done;
    expect(regs.inspect().registrations).toEqual([]);
  });
});
