/** The outbox alone: the send window, acks bound to their destination, rewinds, resends on a new link. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AckStatus, decodeBody, frame, Kind, type FrameOf } from '../../src/internal.js';
import { ClosedError, LimitError, MemoryStore, NoRouteError } from '../../src/index.js';
import { Outbox, type OutboxOptions } from '../../src/peer/outbox.js';
import type { OutboxEntry } from '../../src/store/outbox.js';
import { closePort, testPort, type TestPort } from './port.js';

const ORIGIN = 'o1';
const opts: OutboxOptions = { outboxCapacity: 100, sendWindow: 3, ackTimeout: 10_000 };
const outboxes: Outbox[] = [];

function make(port: TestPort, options: Partial<OutboxOptions> = {}, entries: OutboxEntry[] = [], store = new MemoryStore()): Outbox {
  // The Peer opens its store before it makes the parts; so does each test.
  void store.open();
  const o = new Outbox(port, store, { origin: ORIGIN, entries, seqs: new Map(entries.map((e) => [e.dest, e.seq])) }, { ...opts, ...options });
  outboxes.push(o);
  return o;
}

function ack(seq: number, status: number = AckStatus.Ok, from = 'bob', dest = 'bob'): FrameOf<typeof Kind.Ack> {
  return frame(Kind.Ack, { to: '', from, dest, origin: ORIGIN, seq, status });
}

const sentSeqs = (port: TestPort) => port.frames(Kind.Msg).map((f) => f.seq);

describe('Outbox', () => {
  afterEach(() => {
    for (const o of outboxes.splice(0)) o.closed(new ClosedError('test over'));
    vi.useRealTimers();
  });

  it('keeps at most sendWindow messages in flight per destination and sends the next on each ack', async () => {
    const port = testPort();
    const out = make(port);
    await Promise.all([1, 2, 3, 4, 5].map((n) => out.send('bob', n)));
    expect(sentSeqs(port)).toEqual([1, 2, 3]);
    expect(port.frames(Kind.Msg).map((f) => decodeBody(f.body, f.flags))).toEqual([1, 2, 3]);
    out.onAck(ack(1));
    expect(sentSeqs(port)).toEqual([1, 2, 3, 4]);
    expect(port.of('delivered')).toEqual([{ id: `${ORIGIN}:1:bob`, to: 'bob' }]);
    expect(out.size).toBe(4);
    expect(out.inspect().destinations).toMatchObject([{ dest: 'bob', unacked: 4, inFlight: 3 }]);
  });

  it('takes an OK as cumulative: it settles every message of the stream up to its seq, oldest first', async () => {
    const port = testPort();
    const out = make(port);
    const ids = await Promise.all([1, 2, 3].map((n) => out.send('bob', n)));
    out.onAck(ack(2));
    expect(port.of('delivered')).toEqual([
      { id: ids[0], to: 'bob' },
      { id: ids[1], to: 'bob' },
    ]);
    expect(out.inspect().size).toBe(1);
    out.onAck(ack(1)); // late, already settled: nothing
    expect(port.of('delivered')).toHaveLength(2);
    out.onAck(ack(3));
    expect(port.of('delivered').map((d) => (d as { id: string }).id)).toEqual(ids);
    expect(out.inspect().size).toBe(0);
  });

  it('ignores an ack that does not come from the destination it names', async () => {
    const port = testPort();
    const out = make(port);
    await out.send('bob', 'x');
    out.onAck(ack(1, AckStatus.Ok, 'mallory', 'bob'));
    expect(out.size).toBe(1);
    expect(port.of('delivered')).toEqual([]);
    expect(port.traces).toContainEqual(expect.objectContaining({ type: 'drop', kind: 'Ack', reason: 'NOT_DESTINATION' }));
    out.onAck(ack(1));
    expect(out.size).toBe(0);
  });

  it('ignores acks for another origin and duplicate acks', async () => {
    const port = testPort();
    const out = make(port);
    await out.send('bob', 'x');
    out.onAck(frame(Kind.Ack, { to: '', from: 'bob', dest: 'bob', origin: 'other', seq: 1, status: AckStatus.Ok }));
    expect(out.size).toBe(1);
    out.onAck(ack(1));
    out.onAck(ack(1));
    expect(port.of('delivered')).toHaveLength(1);
  });

  it('rewinds on LIMIT and sends the stream again in order after a backoff', async () => {
    vi.useFakeTimers();
    const port = testPort();
    const out = make(port);
    await Promise.all([1, 2, 3].map((n) => out.send('bob', n)));
    out.onAck(ack(1, AckStatus.Limit));
    expect(out.inspect().destinations[0]!.retrying).toBe(true);
    await vi.advanceTimersByTimeAsync(25);
    expect(sentSeqs(port)).toEqual([1, 2, 3, 1, 2, 3]);
    // Each retransmission of one message keeps its ref.
    const refs = port.frames(Kind.Msg).map((f) => f.ref);
    expect(refs.slice(3)).toEqual(refs.slice(0, 3));
  });

  it('settles NO_ROUTE and EXPIRED acks with their events', async () => {
    const port = testPort();
    const out = make(port);
    await out.send('bob/nobox', 1);
    await out.send('bob/nobox', 2);
    out.onAck(ack(1, AckStatus.NoRoute));
    expect(port.of('undeliverable')[0]).toMatchObject({ id: `${ORIGIN}:1:bob`, to: 'bob/nobox' });
    expect(port.of('undeliverable')[0]!.error).toBeInstanceOf(NoRouteError);
    out.onAck(ack(2, AckStatus.Expired));
    await Promise.resolve();
    expect(port.of('expired')).toEqual([{ ids: [`${ORIGIN}:2:bob`] }]);
    expect(out.size).toBe(0);
  });

  it('probes only the oldest held message when acks time out', async () => {
    vi.useFakeTimers();
    const port = testPort();
    const out = make(port, { ackTimeout: 200 });
    await Promise.all([1, 2, 3].map((n) => out.send('bob', n)));
    for (const seq of [1, 2, 3]) out.onAck(ack(seq, AckStatus.Held));
    expect(out.inspect().held).toBe(3);
    await vi.advanceTimersByTimeAsync(260);
    expect(sentSeqs(port)).toEqual([1, 2, 3, 1]);
  });

  it('sends every stream again from its oldest message on a new link', async () => {
    const port = testPort();
    const out = make(port);
    await out.send('bob', 1);
    await out.send('carol', 2);
    port.connected = false;
    await out.send('bob', 3);
    expect(sentSeqs(port)).toEqual([1, 1]);
    port.connected = true;
    out.attached();
    expect(port.frames(Kind.Msg).slice(2).map((f) => [f.to, f.seq])).toEqual([
      ['bob', 1],
      ['bob', 2],
      ['carol', 1],
    ]);
  });

  it('sends entries restored from the store once attached, counting them in its size', () => {
    const port = testPort({ connected: false });
    const restored: OutboxEntry[] = [1, 2].map((seq) => ({ id: `${ORIGIN}:${seq}:bob`, to: 'bob', dest: 'bob', seq, sentAt: 1, body: new Uint8Array([seq]), flags: 0 }));
    const out = make(port, {}, restored);
    expect(out.size).toBe(2);
    port.connected = true;
    out.attached();
    expect(sentSeqs(port)).toEqual([1, 2]);
    out.onAck(ack(1));
    out.onAck(ack(2));
    // The next send continues the restored stream.
    return out.send('bob', 3).then(() => expect(sentSeqs(port)).toEqual([1, 2, 3]));
  });

  it('refuses a send past its capacity with LIMIT and bad addresses with TypeError', async () => {
    const port = testPort();
    const out = make(port, { outboxCapacity: 2 });
    await out.send('bob', 1);
    await out.send('bob', 2);
    await expect(out.send('bob', 3)).rejects.toBeInstanceOf(LimitError);
    await expect(out.send('bad name', 3)).rejects.toBeInstanceOf(TypeError);
    expect(out.size).toBe(2);
  });

  it('gives the sequence number back when the store refuses an entry', async () => {
    const port = testPort();
    const store = new MemoryStore();
    const out = make(port, {}, [], store);
    await out.send('bob', 1);
    const append = vi.spyOn(store, 'append').mockRejectedValueOnce(new Error('disk full'));
    await expect(out.send('bob', 2)).rejects.toThrow('disk full');
    append.mockRestore();
    await out.send('bob', 3);
    expect(sentSeqs(port)).toEqual([1, 2]);
    expect(out.size).toBe(2);
  });

  it('rejects waitForDelivery sends when closed', async () => {
    const port = testPort();
    const out = make(port);
    const p = out.send('bob', 1, { waitForDelivery: true });
    await vi.waitFor(() => expect(sentSeqs(port)).toEqual([1]));
    out.closed(closePort(port));
    await expect(p).rejects.toBeInstanceOf(ClosedError);
  });

  it('shows up to n unacked messages per destination in peek', async () => {
    const port = testPort();
    const out = make(port);
    for (const n of [1, 2, 3]) await out.send('bob', n);
    await out.send('carol', 4);
    expect(out.peek(2).map((m) => m.id)).toEqual([`${ORIGIN}:1:bob`, `${ORIGIN}:2:bob`, `${ORIGIN}:1:carol`]);
  });
});
