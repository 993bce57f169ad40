/** The inbox alone: each durable message lands once and in order, with the right ack back. */
import { describe, expect, it } from 'vitest';
import { AckStatus, BodyCodec, encodeBody, frame, Kind } from '../../src/internal.js';
import { ClosedError, MemoryStore } from '../../src/index.js';
import { Inbox } from '../../src/peer/inbox.js';
import { DedupTable } from '../../src/store/dedup.js';
import { closePort, testPort, type TestPort } from './port.js';

function msg(seq: number, options: { origin?: string; to?: string; base?: number; body?: unknown } = {}) {
  const { bytes, codec } = encodeBody(options.body ?? seq, BodyCodec.Msgpack);
  return frame(Kind.Msg, { ref: 0, to: options.to ?? 'me', from: 'alice', origin: options.origin ?? 'a1', seq, base: options.base ?? 1, sentAt: 1 }, bytes, codec);
}

/** Acks written, as [seq, status]; acks for delivered messages follow the store's setDedup. */
async function acks(port: TestPort): Promise<[number, number][]> {
  await new Promise((r) => setTimeout(r, 0));
  return port.frames(Kind.Ack).map((a) => [a.seq, a.status]);
}

function make(capacity = 100, dedup = new DedupTable()): { port: TestPort; inbox: Inbox; store: MemoryStore } {
  const port = testPort();
  const store = new MemoryStore();
  // The Peer opens its store before it makes the parts.
  void store.open();
  return { port, inbox: new Inbox(port, store, dedup, capacity), store };
}

describe('Inbox', () => {
  it('delivers in order once each, acking duplicates again without delivering them, one cumulative OK per stream and tick', async () => {
    const { port, inbox } = make();
    const box = inbox.mailbox<number>('inbox');
    inbox.onMsg(msg(1));
    inbox.onMsg(msg(2));
    inbox.onMsg(msg(1));
    expect(box.size).toBe(2);
    // One OK for the stream, for the highest accepted: it settles 1 and 2 at the sender.
    expect(await acks(port)).toEqual([[2, AckStatus.Ok]]);
    // A duplicate alone is acked again.
    inbox.onMsg(msg(1));
    expect(await acks(port)).toEqual([
      [2, AckStatus.Ok],
      [1, AckStatus.Ok],
    ]);
    // Two streams: one OK each.
    inbox.onMsg(msg(1, { origin: 'b1' }));
    inbox.onMsg(msg(3));
    inbox.onMsg(msg(2, { origin: 'b1' }));
    expect((await acks(port)).slice(2).sort()).toEqual([
      [2, AckStatus.Ok],
      [3, AckStatus.Ok],
    ]);
    expect(Array.from({ length: 5 }, () => box.tryReceive()?.body)).toEqual([1, 2, 1, 3, 2]);
    const a = port.frames(Kind.Ack)[0]!;
    expect([a.to, a.dest, a.origin]).toEqual(['alice', 'me', 'a1']);
  });

  it('answers GAP to a message past a hole, and takes a stream that starts at its base', async () => {
    const { port, inbox } = make();
    const box = inbox.mailbox('inbox');
    inbox.onMsg(msg(3));
    expect(await acks(port)).toEqual([[3, AckStatus.Gap]]);
    inbox.onMsg(msg(5, { base: 5 }));
    expect(box.size).toBe(1);
    expect(await acks(port)).toEqual([
      [3, AckStatus.Gap],
      [5, AckStatus.Ok],
    ]);
  });

  it('answers NO_ROUTE for a mailbox nobody opened', async () => {
    const { port, inbox } = make();
    inbox.onMsg(msg(1, { to: 'me/nobox' }));
    expect(await acks(port)).toEqual([[1, AckStatus.NoRoute]]);
    expect(port.traces).toContainEqual(expect.objectContaining({ type: 'drop', reason: 'NO_ROUTE' }));
  });

  it('answers LIMIT when the mailbox is full and takes the message once there is room', async () => {
    const { port, inbox } = make(1);
    const box = inbox.mailbox<number>('inbox');
    inbox.onMsg(msg(1));
    inbox.onMsg(msg(2));
    // A refusal is answered at once; an acceptance once the store has the dedup mark.
    expect(await acks(port)).toEqual([
      [2, AckStatus.Limit],
      [1, AckStatus.Ok],
    ]);
    expect(box.tryReceive()?.body).toBe(1);
    inbox.onMsg(msg(2));
    expect(box.tryReceive()?.body).toBe(2);
  });

  it('settles an undecodable body as NO_ROUTE, so the stream goes on', async () => {
    const { port, inbox } = make();
    inbox.mailbox('inbox');
    inbox.onMsg(frame(Kind.Msg, { ref: 0, to: 'me', from: 'alice', origin: 'a1', seq: 1, base: 1, sentAt: 1 }, new Uint8Array([0xc1]), BodyCodec.Msgpack));
    inbox.onMsg(msg(2));
    expect(await acks(port)).toEqual([
      [1, AckStatus.NoRoute],
      [2, AckStatus.Ok],
    ]);
    expect(port.errors).toHaveLength(1);
  });

  it('keeps dedup state for at most its bound of streams', async () => {
    const { port, inbox } = make(100, new DedupTable(3));
    inbox.mailbox('inbox');
    for (let i = 0; i < 10; i++) inbox.onMsg(msg(1, { origin: `o${i}` }));
    await acks(port);
    expect(inbox.inspect().dedupStreams).toBe(3);
  });

  it('delivers broadcasts best-effort and closes every mailbox when closed', async () => {
    const { port, inbox } = make();
    const box = inbox.mailbox<string>('inbox');
    const { bytes, codec } = encodeBody('hi', BodyCodec.Msgpack);
    inbox.onBcast(frame(Kind.Bcast, { ref: 0, to: 'me', from: 'alice' }, bytes, codec));
    expect(box.tryReceive()?.body).toBe('hi');
    inbox.closed(closePort(port));
    await expect(inbox.mailbox('later').receive()).rejects.toBeInstanceOf(ClosedError);
    expect(inbox.inspect(1).mailboxes.map((m) => m.port).sort()).toEqual(['inbox', 'later']);
  });
});
