import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClosedError, NoRouteError, RemoteError, TimeoutError, type RequestContext } from '../src/index.js';
import { Net } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

/** A handler that never answers on its own: it settles only when its signal aborts. */
const hang = (_body: unknown, ctx: RequestContext): Promise<never> =>
  new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));

describe('request/reply', () => {
  it('resolves with the handler\'s result', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle<{ a: number; b: number }, number>('add', (body) => body.a + body.b);
    await expect(alice.request('bob/add', { a: 1, b: 2 }, { timeout: 5000 })).resolves.toBe(3);
  });

  it('resolves with the value of an async handler and passes from, to and a deadline', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    let seen: Omit<RequestContext, 'signal'> | undefined;
    bob.handle('echo', async (body, ctx) => {
      seen = { from: ctx.from, to: ctx.to, deadline: ctx.deadline };
      await Promise.resolve();
      return { echoed: body };
    });
    const before = Date.now();
    await expect(alice.request('bob/echo', [1, 'two'], { timeout: 5000 })).resolves.toEqual({ echoed: [1, 'two'] });
    expect(seen).toMatchObject({ from: 'alice', to: 'bob/echo' });
    expect(seen!.deadline).toBeGreaterThanOrEqual(before + 5000);
    expect(seen!.deadline).toBeLessThanOrEqual(Date.now() + 5000);
  });

  it('carries an empty body and an empty reply as undefined', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const bodies: unknown[] = [];
    bob.handle('ping', (body) => {
      bodies.push(body);
    });
    await expect(alice.request('bob/ping')).resolves.toBeUndefined();
    expect(bodies).toEqual([undefined]);
  });

  it('answers many concurrent requests, each with its own reply', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle<number, number>('square', async (n) => {
      // Replies finish out of request order, so each must find its own caller.
      await new Promise((r) => setTimeout(r, n % 3));
      return n * n;
    });
    const replies = await Promise.all(Array.from({ length: 200 }, (_, n) => alice.request<number>('bob/square', n, { timeout: 5000 })));
    expect(replies).toEqual(Array.from({ length: 200 }, (_, n) => n * n));
  });

  it('reaches an anonymous peer by id, and the handler sees an anonymous requester by id', async () => {
    const anon = await net.peer();
    const server = await net.peer();
    server.handle('who', (_body, ctx) => ctx.from);
    await expect(anon.request(`${server.id}/who`, undefined, { timeout: 5000 })).resolves.toBe(anon.id);
  });
});

describe('request - failures', () => {
  it('rejects with NO_ROUTE for an unknown peer, long before its deadline', async () => {
    const alice = await net.peer({ name: 'alice' });
    // With a 10 s deadline, a TIMEOUT would show up as a failing test (vitest gives up first).
    const err = await alice.request('nobody/add', 1, { timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoRouteError);
    expect(err).toMatchObject({ code: 'NO_ROUTE' });
  });

  it('rejects with NO_ROUTE for a port with no handler', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('add', () => 0);
    await expect(alice.request('bob/subtract', 1, { timeout: 10_000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('rejects with NO_ROUTE once the handler is removed', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const remove = bob.handle('add', () => 0);
    await expect(alice.request('bob/add', 1)).resolves.toBe(0);
    remove();
    await expect(alice.request('bob/add', 1, { timeout: 10_000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('rejects with a RemoteError carrying the handler\'s code and message but not its stack', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('parse', () => {
      throw Object.assign(new Error('field "x" must be a number'), { code: 'BAD_INPUT' });
    });
    const err = await alice.request('bob/parse', { x: 'y' }, { timeout: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ code: 'REMOTE', remoteCode: 'BAD_INPUT', message: 'field "x" must be a number' });
    const { message, stack } = err as RemoteError;
    expect(message).not.toMatch(/\bat\b.*:\d+/);
    expect(message).not.toContain('requests.test');
    // The local error's stack shows its own message, not a remote stack trace.
    expect(stack).toContain('field "x" must be a number');
  });

  it('rejects with a RemoteError with remoteCode ERROR when the handler throws without a code', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('a', () => {
      throw new Error('plain');
    });
    bob.handle('b', async () => {
      throw 'a string';
    });
    bob.handle('c', () => {
      throw Object.assign(new Error('numeric code'), { code: 42 });
    });
    await expect(alice.request('bob/a')).rejects.toMatchObject({ code: 'REMOTE', remoteCode: 'ERROR', message: 'plain' });
    await expect(alice.request('bob/b')).rejects.toMatchObject({ code: 'REMOTE', remoteCode: 'ERROR', message: 'a string' });
    await expect(alice.request('bob/c')).rejects.toMatchObject({ code: 'REMOTE', remoteCode: 'ERROR', message: 'numeric code' });
  });

  it('rejects with TIMEOUT when no reply comes, and aborts the handler\'s signal at the deadline', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const handlerSignals: AbortSignal[] = [];
    bob.handle('slow', (body, ctx) => {
      handlerSignals.push(ctx.signal);
      return hang(body, ctx);
    });
    const err = await alice.request('bob/slow', 1, { timeout: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toMatchObject({ code: 'TIMEOUT' });
    expect(handlerSignals).toHaveLength(1);
    await expect.poll(() => handlerSignals[0]!.aborted).toBe(true);
    expect(handlerSignals[0]!.reason).toMatchObject({ code: 'TIMEOUT' });
  });

  it('uses the peer\'s requestTimeout when the call gives none', async () => {
    const alice = await net.peer({ name: 'alice', requestTimeout: 50 });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('slow', hang);
    await expect(alice.request('bob/slow')).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('ignores a reply that comes after the deadline', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    let release!: () => void;
    const late = new Promise<void>((r) => (release = r));
    let answered = false;
    bob.handle('late', async () => {
      await late;
      answered = true;
      return 'too late';
    });
    const errors: Error[] = [];
    alice.on('error', (e) => errors.push(e));
    await expect(alice.request('bob/late', undefined, { timeout: 30 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    release();
    await expect.poll(() => answered).toBe(true);
    // The link still works and nothing was reported for the stray reply.
    bob.handle('ok', () => 'ok');
    await expect(alice.request('bob/ok')).resolves.toBe('ok');
    expect(errors).toEqual([]);
  });

  it('rejects with the signal\'s reason when aborted', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const started: string[] = [];
    bob.handle('slow', (body, ctx) => {
      started.push('slow');
      return hang(body, ctx);
    });
    const ac = new AbortController();
    const reason = new Error('user cancelled');
    const pending = alice.request('bob/slow', 1, { timeout: 10_000, signal: ac.signal });
    await expect.poll(() => started).toEqual(['slow']);
    ac.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });

  it('rejects at once with the reason of an already aborted signal', async () => {
    const alice = await net.peer({ name: 'alice' });
    const reason = new Error('already');
    await expect(alice.request('bob/x', 1, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it('rejects with LIMIT beyond maxPendingRequests', async () => {
    const alice = await net.peer({ name: 'alice', maxPendingRequests: 2 });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('slow', hang);
    const a = alice.request('bob/slow', 1, { timeout: 10_000 });
    const b = alice.request('bob/slow', 2, { timeout: 10_000 });
    await expect(alice.request('bob/slow', 3)).rejects.toMatchObject({ code: 'LIMIT' });
    const closing = Promise.allSettled([a, b]);
    await alice.close();
    expect((await closing).map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('rejects a bad address or timeout with a TypeError without sending', async () => {
    const alice = await net.peer({ name: 'alice' });
    await expect(alice.request('', 1)).rejects.toBeInstanceOf(TypeError);
    await expect(alice.request('bob/x', 1, { timeout: 0 })).rejects.toBeInstanceOf(TypeError);
    await expect(alice.request('bob/x', 1, { timeout: Number.NaN })).rejects.toBeInstanceOf(TypeError);
  });
});

describe('request - closing', () => {
  it('rejects pending requests with CLOSED when the requester closes', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('slow', hang);
    const pending = [1, 2, 3].map((n) => alice.request('bob/slow', n, { timeout: 10_000 }));
    const settled = Promise.allSettled(pending);
    await alice.close();
    for (const r of await settled) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ClosedError);
    }
    await expect(alice.request('bob/slow', 4)).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('rejects pending requests with CLOSED when the relay closes the link', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const signals: AbortSignal[] = [];
    bob.handle('slow', (body, ctx) => {
      signals.push(ctx.signal);
      return hang(body, ctx);
    });
    const pending = alice.request('bob/slow', 1, { timeout: 10_000 });
    const check = expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
    await expect.poll(() => signals.length).toBe(1);
    await net.router.close(1000);
    await check;
    // The handler's signal is aborted on the other side's link loss too.
    await expect.poll(() => signals[0]!.aborted).toBe(true);
  });

  it('rejects pending requests with CLOSED when the link drops from the relay\'s end', async () => {
    const { peer: alice, server } = await net.link({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle('slow', hang);
    const pending = alice.request('bob/slow', 1, { timeout: 10_000 });
    const check = expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
    // Let the request reach bob before the link goes.
    await expect.poll(() => net.router.connections().length).toBe(2);
    server.close({ code: 1006, reason: 'link lost' });
    await check;
    expect(alice.connected).toBe(false);
  });

  it('aborts a running handler\'s signal when its own peer closes', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const signals: AbortSignal[] = [];
    bob.handle('slow', (body, ctx) => {
      signals.push(ctx.signal);
      return hang(body, ctx);
    });
    const pending = alice.request('bob/slow', 1, { timeout: 10_000 }).catch((e: unknown) => e);
    await expect.poll(() => signals.length).toBe(1);
    await bob.close();
    expect(signals[0]!.aborted).toBe(true);
    expect(signals[0]!.reason).toMatchObject({ code: 'CLOSED' });
    await alice.close();
    await expect(pending).resolves.toMatchObject({ code: 'CLOSED' });
  });
});

describe('request/reply across sessions', () => {
  it('does not give a reconnected peer the late reply to its previous session\'s request', async () => {
    const bob = await net.peer({ name: 'bob' });
    const answers: (() => void)[] = [];
    bob.handle('slow', (body: string) => new Promise<string>((resolve) => answers.push(() => resolve(`answer to ${body}`))));
    const first = await net.peer({ name: 'alice' });
    const lost = first.request('bob/slow', 'old session', { timeout: 10_000 }).catch((e: unknown) => e);
    await expect.poll(() => answers.length).toBe(1);
    await first.close();
    await expect(lost).resolves.toMatchObject({ code: 'CLOSED' });
    const second = await net.peer({ name: 'alice' });
    const reply = second.request('bob/slow', 'new session', { timeout: 10_000 });
    await expect.poll(() => answers.length).toBe(2);
    answers[0]!(); // bob answers the old session's request first
    answers[1]!();
    await expect(reply).resolves.toBe('answer to new session');
  });
});
