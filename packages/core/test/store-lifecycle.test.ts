/**
 * StoreLifecycle: the open/close rules FileStore and IdbStore share, over hooks whose opening,
 * closing and writing the test settles by hand.
 */
import { describe, expect, it } from 'vitest';
import { StoreLifecycle, type StoreLifecycleHooks } from '../src/internal.js';

interface Gate {
  promise: Promise<void>;
  open(): void;
  fail(err: unknown): void;
}

function gate(): Gate {
  let open!: () => void;
  let fail!: (err: unknown) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/** A lifecycle whose every open, close and idle waits for a gate the test opens; `log` records the calls. */
function fixture() {
  const log: string[] = [];
  const gates = { open: [] as Gate[], close: [] as Gate[], idle: [] as Gate[] };
  let state = 0;
  const call = (what: keyof typeof gates) => (): Promise<void> => {
    log.push(what);
    const g = gate();
    gates[what].push(g);
    return g.promise;
  };
  const hooks: StoreLifecycleHooks<number> = { open: call('open'), close: call('close'), idle: call('idle'), snapshot: () => state };
  const life = new StoreLifecycle('test store', hooks);
  return { life, log, gates, setState: (n: number) => (state = n) };
}

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('StoreLifecycle', () => {
  it('open - one open at a time: a second call during opening gets the same promise', async () => {
    const { life, log, gates, setState } = fixture();
    const a = life.open();
    const b = life.open();
    expect(b).toBe(a);
    expect(life.status).toBe('opening');
    setState(7);
    gates.open[0]!.open();
    expect(await a).toBe(7);
    expect(life.status).toBe('open');
    expect(log).toEqual(['open']);
  });

  it('open - while open resolves with the state once pending changes are written', async () => {
    const { life, log, gates, setState } = fixture();
    const opening = life.open();
    gates.open[0]!.open();
    await opening;
    const again = life.open();
    let settled = false;
    void again.then(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    setState(3);
    gates.idle[0]!.open();
    expect(await again).toBe(3);
    expect(log).toEqual(['open', 'idle']);
  });

  it('open - a failed open leaves the store closed, and the next open tries again', async () => {
    const { life, gates } = fixture();
    const first = life.open();
    gates.open[0]!.fail(new RangeError('no'));
    await expect(first).rejects.toThrow(RangeError);
    expect(life.status).toBe('closed');
    expect(life.notOpen()).toMatchObject({ name: 'ClosedError', code: 'CLOSED', message: 'test store is closed' });
    const second = life.open();
    gates.open[1]!.open();
    await second;
    expect(life.status).toBe('open');
  });

  it('close - during a close, open waits for it and opens again; close is idempotent', async () => {
    const { life, log, gates } = fixture();
    const opening = life.open();
    gates.open[0]!.open();
    await opening;
    const closing = life.close();
    expect(life.close()).toBe(closing);
    const reopening = life.open();
    await tick();
    expect(log).toEqual(['open', 'close']);
    gates.close[0]!.open();
    await closing;
    await tick();
    expect(log).toEqual(['open', 'close', 'open']);
    gates.open[1]!.open();
    await reopening;
    expect(life.status).toBe('open');
    const last = life.close();
    gates.close[1]!.open();
    await last;
    await life.close();
    expect(log).toEqual(['open', 'close', 'open', 'close']);
  });

  it('close - during opening waits for the open, then closes; after a failed open it only resolves', async () => {
    const { life, log, gates } = fixture();
    const opening = life.open();
    const closing = life.close();
    gates.open[0]!.open();
    await opening;
    await tick();
    expect(life.status).toBe('closing');
    gates.close[0]!.open();
    await closing;
    expect(life.status).toBe('closed');

    const failing = life.open();
    const closing2 = life.close();
    gates.open[1]!.fail(new RangeError('no'));
    await expect(failing).rejects.toThrow(RangeError);
    await closing2;
    expect(log).toEqual(['open', 'close', 'open']);
  });

  it('close - a failed close still leaves the store closed, and rejects with its error', async () => {
    const { life, gates } = fixture();
    const opening = life.open();
    gates.open[0]!.open();
    await opening;
    const closing = life.close();
    gates.close[0]!.fail(new RangeError('disk'));
    await expect(closing).rejects.toThrow('disk');
    expect(life.status).toBe('closed');
  });

  it('notOpen - ClosedError before open, while opening and after close; undefined while open', async () => {
    const { life, gates } = fixture();
    expect(life.notOpen()).toMatchObject({ code: 'CLOSED', message: 'test store is not open (await open() first)' });
    const opening = life.open();
    expect(life.notOpen()).toMatchObject({ code: 'CLOSED' });
    gates.open[0]!.open();
    await opening;
    expect(life.notOpen()).toBeUndefined();
    const closing = life.close();
    expect(life.notOpen()).toMatchObject({ code: 'CLOSED', message: 'test store is closed' });
    gates.close[0]!.open();
    await closing;
    expect(life.notOpen()).toMatchObject({ code: 'CLOSED', message: 'test store is closed' });
  });
});
