import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClosedError, Mailbox, TimeoutError, type Message } from '../src/index.js';

let seq = 0;
function msg<T>(body: T, from = 'alice'): Message<T> {
  seq++;
  return { id: `m${seq}`, from, to: 'bob', body, sentAt: Date.now() };
}

/** Offers `bodies` in order and asserts each was accepted. */
function fill<T>(box: Mailbox<T>, bodies: T[]): void {
  for (const b of bodies) expect(box.offer(msg(b))).toBe(true);
}

const bodies = <T>(list: Message<T>[]): T[] => list.map((m) => m.body);

afterEach(() => {
  vi.useRealTimers();
});

describe('Mailbox - receive', () => {
  it('takes messages in arrival order', async () => {
    const box = new Mailbox<number>('inbox');
    fill(box, [1, 2, 3]);
    expect((await box.receive()).body).toBe(1);
    expect((await box.receive()).body).toBe(2);
    expect((await box.receive()).body).toBe(3);
    expect(box.size).toBe(0);
  });

  it('hands a message straight to a receive that is already waiting', async () => {
    const box = new Mailbox<string>('inbox');
    const waiting = box.receive();
    expect(box.offer(msg('hello'))).toBe(true);
    await expect(waiting).resolves.toMatchObject({ body: 'hello', from: 'alice', to: 'bob' });
    expect(box.stats()).toMatchObject({ depth: 0, received: 1 });
  });

  it('leaves non-matching messages in order on selective receive', async () => {
    const box = new Mailbox<{ kind: string; n: number }>('inbox');
    fill(box, [
      { kind: 'a', n: 1 },
      { kind: 'b', n: 2 },
      { kind: 'a', n: 3 },
      { kind: 'c', n: 4 },
      { kind: 'b', n: 5 },
    ]);
    const got = await box.receive({ match: (m) => m.body.kind === 'c' });
    expect(got.body.n).toBe(4);
    const b = await box.receive({ match: (m) => m.body.kind === 'b' });
    expect(b.body.n).toBe(2);
    expect(box.peek(10).map((m) => m.body.n)).toEqual([1, 3, 5]);
    expect((await box.receive()).body.n).toBe(1);
    expect((await box.receive()).body.n).toBe(3);
    expect((await box.receive()).body.n).toBe(5);
  });

  it('waits on selective receive until a matching message arrives, queueing the others', async () => {
    const box = new Mailbox<string>('inbox');
    const waiting = box.receive({ match: (m) => m.body === 'wanted' });
    fill(box, ['x', 'y', 'wanted', 'z']);
    await expect(waiting).resolves.toMatchObject({ body: 'wanted' });
    expect(bodies(box.peek())).toEqual(['x', 'y', 'z']);
  });

  it('serves waiting receives first come, first served, each by its own match', async () => {
    const box = new Mailbox<number>('inbox');
    const even = box.receive({ match: (m) => m.body % 2 === 0 });
    const any1 = box.receive();
    const any2 = box.receive();
    fill(box, [1, 2, 3]);
    await expect(even).resolves.toMatchObject({ body: 2 });
    await expect(any1).resolves.toMatchObject({ body: 1 });
    await expect(any2).resolves.toMatchObject({ body: 3 });
  });

  it('rejects with TIMEOUT when no message comes in time, and forgets the waiter', async () => {
    vi.useFakeTimers();
    const box = new Mailbox<string>('inbox');
    const waiting = box.receive({ timeout: 100 });
    const check = expect(waiting).rejects.toMatchObject({ code: 'TIMEOUT' });
    await vi.advanceTimersByTimeAsync(100);
    await check;
    await expect(waiting).rejects.toBeInstanceOf(TimeoutError);
    // The timed-out receive no longer takes messages.
    expect(box.offer(msg('later'))).toBe(true);
    expect(bodies(box.peek())).toEqual(['later']);
  });

  it('resolves before the timeout when a message arrives in time', async () => {
    vi.useFakeTimers();
    const box = new Mailbox<string>('inbox');
    const waiting = box.receive({ timeout: 100 });
    await vi.advanceTimersByTimeAsync(50);
    box.offer(msg('in time'));
    await expect(waiting).resolves.toMatchObject({ body: 'in time' });
    await vi.advanceTimersByTimeAsync(100);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with the signal\'s reason when aborted while waiting', async () => {
    const box = new Mailbox<string>('inbox');
    const ac = new AbortController();
    const reason = new Error('user gave up');
    const waiting = box.receive({ signal: ac.signal, timeout: 10_000 });
    ac.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(box.offer(msg('after abort'))).toBe(true);
    expect(box.size).toBe(1);
  });

  it('rejects at once with the reason of an already aborted signal', async () => {
    const box = new Mailbox<string>('inbox');
    fill(box, ['queued']);
    const reason = new Error('already');
    await expect(box.receive({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(box.size).toBe(1);
  });

  it('rejects a receive whose match throws and keeps the message for other receivers', async () => {
    const box = new Mailbox<string>('inbox');
    const boom = new Error('bad matcher');
    const throwing = (): boolean => {
      throw boom;
    };
    // Against a queued message: the promise rejects (no synchronous throw), the message stays.
    fill(box, ['kept']);
    await expect(box.receive({ match: throwing })).rejects.toBe(boom);
    expect(bodies(box.peek())).toEqual(['kept']);
    await expect(box.receive()).resolves.toMatchObject({ body: 'kept' });
    // Against an arriving message: that waiter rejects, the message goes to the next one.
    const waiting = box.receive({ match: throwing });
    const other = box.receive();
    expect(box.offer(msg('next'))).toBe(true);
    await expect(waiting).rejects.toBe(boom);
    await expect(other).resolves.toMatchObject({ body: 'next' });
    expect(box.size).toBe(0);
  });

  it('takes a matching message without waiting through tryReceive', () => {
    const box = new Mailbox<number>('inbox');
    expect(box.tryReceive()).toBeUndefined();
    fill(box, [1, 2, 3]);
    expect(box.tryReceive((m) => m.body === 2)?.body).toBe(2);
    expect(box.tryReceive((m) => m.body === 9)).toBeUndefined();
    expect(bodies(box.peek())).toEqual([1, 3]);
  });
});

describe('Mailbox - async iteration', () => {
  it('yields messages in order, including ones that arrive while iterating', async () => {
    const box = new Mailbox<number>('inbox');
    fill(box, [1, 2]);
    const seen: number[] = [];
    for await (const m of box) {
      seen.push(m.body);
      if (m.body === 2) box.offer(msg(3));
      if (m.body === 3) break;
    }
    expect(seen).toEqual([1, 2, 3]);
  });

  it('ends the loop when the mailbox closes', async () => {
    const box = new Mailbox<number>('inbox');
    const seen: number[] = [];
    const loop = (async () => {
      for await (const m of box) seen.push(m.body);
      return 'ended';
    })();
    fill(box, [1, 2]);
    await expect.poll(() => seen).toEqual([1, 2]);
    box.close();
    await expect(loop).resolves.toBe('ended');
  });

  it('throws out of the loop when the mailbox closes with an error other than CLOSED', async () => {
    const box = new Mailbox<number>('inbox');
    const loop = (async () => {
      for await (const _ of box) {
        // nothing arrives
      }
    })();
    const fatal = new Error('fatal');
    box.close(fatal);
    await expect(loop).rejects.toBe(fatal);
  });
});

describe('Mailbox - peek and stats', () => {
  it('peek(n) shows the oldest n waiting messages without removing them', () => {
    const box = new Mailbox<number>('inbox');
    fill(box, [1, 2, 3, 4, 5]);
    expect(bodies(box.peek(3))).toEqual([1, 2, 3]);
    expect(bodies(box.peek(3))).toEqual([1, 2, 3]);
    expect(bodies(box.peek(100))).toEqual([1, 2, 3, 4, 5]);
    expect(box.peek(0)).toEqual([]);
    expect(box.size).toBe(5);
    expect(box.tryReceive()?.body).toBe(1);
    expect(bodies(box.peek(2))).toEqual([2, 3]);
  });

  it('peek skips messages taken by selective receive', () => {
    const box = new Mailbox<number>('inbox');
    fill(box, [1, 2, 3, 4]);
    box.tryReceive((m) => m.body === 2);
    box.tryReceive((m) => m.body === 1);
    expect(bodies(box.peek())).toEqual([3, 4]);
  });

  it('reports depth, highWater, oldestAge, received and refused', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const box = new Mailbox<number>('inbox', 3);
    expect(box.stats()).toEqual({ depth: 0, highWater: 0, oldestAge: 0, received: 0, refused: 0, capacity: 3 });
    box.offer(msg(1));
    vi.advanceTimersByTime(250);
    box.offer(msg(2));
    box.offer(msg(3));
    expect(box.offer(msg(4))).toBe(false);
    vi.advanceTimersByTime(50);
    expect(box.stats()).toEqual({ depth: 3, highWater: 3, oldestAge: 300, received: 3, refused: 1, capacity: 3 });
    box.tryReceive();
    // The oldest is now message 2, which arrived 50 ms ago.
    expect(box.stats()).toMatchObject({ depth: 2, highWater: 3, oldestAge: 50 });
    box.tryReceive();
    box.tryReceive();
    expect(box.stats()).toEqual({ depth: 0, highWater: 3, oldestAge: 0, received: 3, refused: 1, capacity: 3 });
  });

  it('counts a message handed to a waiting receive as received without raising depth', async () => {
    const box = new Mailbox<number>('inbox', 1);
    const waiting = box.receive();
    expect(box.offer(msg(1))).toBe(true);
    await waiting;
    expect(box.stats()).toMatchObject({ depth: 0, highWater: 0, received: 1, refused: 0 });
  });
});

describe('Mailbox - capacity', () => {
  it('refuses with offer() === false when full and loses nothing already queued', async () => {
    const box = new Mailbox<number>('inbox', 3);
    fill(box, [1, 2, 3]);
    expect(box.hasRoom).toBe(false);
    expect(box.offer(msg(4))).toBe(false);
    expect(box.offer(msg(5))).toBe(false);
    expect(box.stats()).toMatchObject({ depth: 3, refused: 2, received: 3 });
    expect(bodies(box.peek())).toEqual([1, 2, 3]);
    expect((await box.receive()).body).toBe(1);
    expect(box.hasRoom).toBe(true);
    expect(box.offer(msg(6))).toBe(true);
    expect(bodies(box.peek())).toEqual([2, 3, 6]);
  });

  it('accepts a message into a full mailbox when a waiting receive takes it', async () => {
    const box = new Mailbox<number>('inbox', 1);
    fill(box, [1]);
    const waiting = box.receive({ match: (m) => m.body === 2 });
    expect(box.hasRoom).toBe(true);
    expect(box.offer(msg(2))).toBe(true);
    await expect(waiting).resolves.toMatchObject({ body: 2 });
    expect(bodies(box.peek())).toEqual([1]);
  });

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => new Mailbox('inbox', 0)).toThrow(RangeError);
    expect(() => new Mailbox('inbox', 1.5)).toThrow(RangeError);
  });
});

describe('Mailbox - close', () => {
  it('rejects every waiting receive with CLOSED, and later ones too', async () => {
    const box = new Mailbox<number>('inbox');
    const a = box.receive();
    const b = box.receive({ match: (m) => m.body === 1, timeout: 10_000 });
    box.close();
    await expect(a).rejects.toBeInstanceOf(ClosedError);
    await expect(b).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(box.receive()).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('refuses offers after close but keeps queued messages visible to peek', () => {
    const box = new Mailbox<number>('inbox');
    fill(box, [1, 2]);
    box.close();
    expect(box.offer(msg(3))).toBe(false);
    expect(bodies(box.peek())).toEqual([1, 2]);
  });
});

describe('Mailbox - a long mixed workload', () => {
  it('keeps the same contents and order as a plain array under many selective takes', () => {
    // Enough traffic to make the mailbox compact its storage several times.
    const box = new Mailbox<number>('inbox', 5000);
    const model: number[] = [];
    let next = 0;
    let rnd = 12345;
    const random = (n: number): number => {
      rnd = (rnd * 1103515245 + 12345) % 2 ** 31;
      return rnd % n;
    };
    for (let round = 0; round < 20_000; round++) {
      const op = random(10);
      if (op < 5) {
        const accepted = box.offer(msg(next));
        expect(accepted).toBe(model.length < 5000);
        if (accepted) model.push(next);
        next++;
      } else if (op < 8) {
        // Selective: take the first multiple of k.
        const k = 2 + random(5);
        const got = box.tryReceive((m) => m.body % k === 0)?.body;
        const i = model.findIndex((b) => b % k === 0);
        expect(got).toBe(i < 0 ? undefined : model[i]);
        if (i >= 0) model.splice(i, 1);
      } else {
        expect(box.tryReceive()?.body).toBe(model.shift());
      }
      if (round % 1000 === 0) {
        expect(box.size).toBe(model.length);
        expect(bodies(box.peek(50))).toEqual(model.slice(0, 50));
      }
    }
    expect(box.size).toBe(model.length);
    expect(bodies(box.peek(model.length + 1))).toEqual(model);
    expect(box.stats().depth).toBe(model.length);
  });
});
