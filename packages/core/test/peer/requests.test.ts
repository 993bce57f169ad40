/** Requests alone: pending requests and their deadlines, and handlers answering requests that come in. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BodyCodec, decodeBody, encodeBody, frame, Kind } from '../../src/internal.js';
import { ClosedError, LimitError, NoRouteError, RemoteError, TimeoutError } from '../../src/index.js';
import { Requests } from '../../src/peer/requests.js';
import { closePort, testPort, type TestPort } from './port.js';

const opts = { requestTimeout: 1000, maxPendingRequests: 10 };
const made: [Requests, TestPort][] = [];

function make(port = testPort(), options = opts): Requests {
  const r = new Requests(port, options);
  made.push([r, port]);
  return r;
}

function rep(id: number, value: unknown, code = '', message = '') {
  const { bytes, codec } = encodeBody(value, BodyCodec.Msgpack);
  return frame(Kind.Rep, { to: 'me', from: 'bob', id, code, message }, bytes, codec);
}

function req(id: number, to: string, value: unknown, timeout = 1000) {
  const { bytes, codec } = encodeBody(value, BodyCodec.Msgpack);
  return frame(Kind.Req, { to, from: 'alice', id, timeout }, bytes, codec);
}

describe('Requests', () => {
  afterEach(() => {
    for (const [r, port] of made.splice(0)) if (!port.closedError) r.closed(closePort(port));
    vi.useRealTimers();
  });

  it('resolves a request with the reply that carries its id', async () => {
    const port = testPort();
    const r = make(port);
    const p = r.request<number>('bob/add', [1, 2]);
    const sent = port.frames(Kind.Req)[0]!;
    expect(sent.to).toBe('bob/add');
    expect(decodeBody(sent.body, sent.flags)).toEqual([1, 2]);
    r.onRep(rep(sent.id + 1, 'not mine'));
    r.onRep(rep(sent.id, 3));
    await expect(p).resolves.toBe(3);
    expect(r.inspect().pending).toBe(0);
  });

  it('rejects with the remote error a reply names', async () => {
    const port = testPort();
    const r = make(port);
    const a = r.request('bob/x', 1);
    const b = r.request('bob/y', 1);
    const [fa, fb] = port.frames(Kind.Req);
    r.onRep(rep(fa!.id, null, 'NO_ROUTE', 'no handler'));
    r.onRep(rep(fb!.id, null, 'REMOTE:ENOENT', 'file missing'));
    await expect(a).rejects.toBeInstanceOf(NoRouteError);
    await expect(b).rejects.toBeInstanceOf(RemoteError);
    await expect(b).rejects.toMatchObject({ message: expect.stringContaining('file missing') });
  });

  it('times out, and a late reply is ignored', async () => {
    vi.useFakeTimers();
    const port = testPort();
    const r = make(port);
    const p = r.request('bob/slow', 1, { timeout: 200 });
    const outcome = expect(p).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(201);
    await outcome;
    r.onRep(rep(port.frames(Kind.Req)[0]!.id, 'late'));
    expect(r.inspect().pending).toBe(0);
  });

  it('times each request out at its own deadline, whatever the order and the timeouts of the others', async () => {
    vi.useFakeTimers();
    const port = testPort();
    const r = make(port);
    const settled: string[] = [];
    const track = (name: string, p: Promise<unknown>) =>
      p.then(
        () => settled.push(`${name} ok`),
        (e: unknown) => settled.push(`${name} ${e instanceof TimeoutError ? 'timeout' : String(e)}`),
      );
    const long = track('long', r.request('bob/a', 1, { timeout: 500 }));
    const short = track('short', r.request('bob/b', 1, { timeout: 100 }));
    const answered = track('answered', r.request('bob/c', 1, { timeout: 50 }));
    const mid = track('mid', r.request('bob/d', 1, { timeout: 300 }));
    r.onRep(rep(port.frames(Kind.Req)[2]!.id, 'fine'));
    await vi.advanceTimersByTimeAsync(99);
    expect(settled).toEqual(['answered ok']);
    await vi.advanceTimersByTimeAsync(2);
    expect(settled).toEqual(['answered ok', 'short timeout']);
    await vi.advanceTimersByTimeAsync(200);
    expect(settled).toEqual(['answered ok', 'short timeout', 'mid timeout']);
    expect(r.inspect().pending).toBe(1);
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all([long, short, answered, mid]);
    expect(settled).toEqual(['answered ok', 'short timeout', 'mid timeout', 'long timeout']);
    expect(r.inspect().pending).toBe(0);
    // Nothing pending: no timer is left behind.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses more than maxPendingRequests at once with LIMIT', async () => {
    const r = make(testPort(), { requestTimeout: 1000, maxPendingRequests: 2 });
    const pending = [r.request('bob/a', 1), r.request('bob/a', 2)];
    for (const p of pending) p.catch(() => {});
    await expect(r.request('bob/a', 3)).rejects.toBeInstanceOf(LimitError);
  });

  it('fails requests in flight when the link drops, but keeps retried ones and sends them on the next link', async () => {
    const port = testPort();
    const r = make(port);
    const plain = r.request('bob/a', 1);
    const retried = r.request<string>('bob/a', 2, { retry: true });
    port.connected = false;
    r.linkLost(new ClosedError('link closed'));
    await expect(plain).rejects.toBeInstanceOf(ClosedError);
    await expect(r.request('bob/a', 3)).rejects.toBeInstanceOf(ClosedError);
    port.connected = true;
    r.attached();
    const again = port.frames(Kind.Req);
    expect(again.map((f) => decodeBody(f.body, f.flags))).toEqual([1, 2, 2]);
    r.onRep(rep(again[2]!.id, 'ok'));
    await expect(retried).resolves.toBe('ok');
  });

  it('aborts a request through its signal', async () => {
    const r = make();
    const ac = new AbortController();
    const p = r.request('bob/a', 1, { signal: ac.signal });
    ac.abort(new Error('changed my mind'));
    await expect(p).rejects.toThrow('changed my mind');
    expect(r.inspect().pending).toBe(0);
  });

  it('answers a request with its handler and counts calls and errors', async () => {
    const port = testPort();
    const r = make(port);
    r.handle<number[], number>('add', ([a, b]) => a! + b!);
    r.handle('fail', () => {
      throw Object.assign(new Error('nope'), { code: 'EBAD' });
    });
    await r.onReq(req(7, 'me/add', [2, 3]));
    await r.onReq(req(8, 'me/fail', null));
    const [ok, failed] = port.frames(Kind.Rep);
    expect([ok!.id, ok!.to, ok!.code, decodeBody(ok!.body, ok!.flags)]).toEqual([7, 'alice', '', 5]);
    expect([failed!.id, failed!.code, failed!.message]).toEqual([8, 'REMOTE:EBAD', 'nope']);
    expect(r.inspect().handlers).toEqual([
      { port: 'add', calls: 1, errors: 0, active: 0, p50: expect.any(Number), p99: expect.any(Number) },
      { port: 'fail', calls: 1, errors: 1, active: 0, p50: expect.any(Number), p99: expect.any(Number) },
    ]);
  });

  it('answers NO_ROUTE for a mailbox without a handler', async () => {
    const port = testPort();
    const r = make(port);
    await r.onReq(req(1, 'me/none', null));
    expect(port.frames(Kind.Rep)[0]).toMatchObject({ id: 1, code: 'NO_ROUTE' });
  });

  it('sends no reply once the requester is gone, and aborts the handler', async () => {
    const port = testPort();
    const r = make(port);
    let seen: AbortSignal | undefined;
    let release!: () => void;
    r.handle('wait', async (_body, ctx) => {
      seen = ctx.signal;
      await new Promise<void>((res) => (release = res));
      return 'too late';
    });
    const handling = r.onReq(req(1, 'me/wait', null));
    await vi.waitFor(() => expect(seen).toBeDefined());
    port.connected = false;
    r.linkLost(new ClosedError('link closed'));
    expect(seen!.aborted).toBe(true);
    port.connected = true;
    release();
    await handling;
    expect(port.frames(Kind.Rep)).toHaveLength(0);
  });
});
