/**
 * The session alone, over the memory transport to a real Router: it attaches a link, redials
 * with backoff when the link drops, and ends for good when reconnecting cannot help.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { frame, Kind, type Frame } from '../../src/internal.js';
import { openLink, type HelloFields } from '../../src/link.js';
import { ClosedError, CloseCode, Router, type CloseInfo, type MissiveError, type PeerEvents, type TransportFactory } from '../../src/index.js';
import { Session, type SessionEvents } from '../../src/peer/session.js';
import { Dial } from '../helpers.js';

/** Links of one name with one session token: a newer one replaces the older (a reconnection). */
const hello = (name: string): HelloFields => ({ name, namespace: '', secret: '', token: '', session: `${name}-session` });

interface Log {
  frames: Frame[];
  attached: number[];
  lost: ClosedError[];
  ended: { error: MissiveError; info: CloseInfo }[];
  emitted: { type: string; event: unknown }[];
  waitFor(what: () => boolean): Promise<void>;
}

function events(): { events: SessionEvents; log: Log } {
  const waiters = new Set<() => void>();
  const poke = (): void => {
    for (const w of [...waiters]) w();
  };
  const log: Log = {
    frames: [],
    attached: [],
    lost: [],
    ended: [],
    emitted: [],
    waitFor: (what) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('waited 5 s in vain')), 5000);
        const check = (): void => {
          if (!what()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
  };
  const events: SessionEvents = {
    frame: (f) => (log.frames.push(f), poke()),
    protocolError: () => {},
    drain: () => {},
    attached: (attempt) => (log.attached.push(attempt), poke()),
    lost: (error) => (log.lost.push(error), poke()),
    ended: (error, info) => (log.ended.push({ error, info }), poke()),
    linkClosed: () => poke(),
    emit: <K extends 'disconnected' | 'reconnecting'>(type: K, event: PeerEvents[K]) => (log.emitted.push({ type, event }), poke()),
  };
  return { events, log };
}

describe('Session', () => {
  let router: Router;
  const sessions: Session[] = [];
  afterEach(async () => {
    for (const s of sessions.splice(0)) {
      s.end();
      s.close();
    }
    await router?.close(1000);
  });

  async function start(name: string, factory: TransportFactory | undefined, dial: Dial, reconnect = { initialDelay: 5, maxDelay: 20 }) {
    const { events: ev, log } = events();
    const s = new Session({ hello: hello(name), factory, reconnect, connectTimeout: 2000 }, ev);
    sessions.push(s);
    s.attach(await openLink(await dial.factory(), hello(name), 2000));
    return { s, log };
  }

  it('attaches a link: frames flow both ways and it reports who the relay says it is', async () => {
    router = new Router();
    const dial = new Dial(router);
    const { s, log } = await start('alice', undefined, dial);
    expect(log.attached).toEqual([0]);
    expect(s.connected).toBe(true);
    expect(s.name).toBe('alice');
    expect(s.id).toMatch(/^~/);
    expect(s.write(frame(Kind.Ping, { nonce: 7 }))).toBe(true);
    await log.waitFor(() => log.frames.some((f) => f.kind === Kind.Pong));
  });

  it('redials with backoff when the link drops, and attaches the new link', async () => {
    router = new Router();
    const dial = new Dial(router);
    const { s, log } = await start('alice', dial.factory, dial);
    dial.failing = true;
    dial.cut();
    await log.waitFor(() => log.emitted.filter((e) => e.type === 'reconnecting').length >= 2);
    expect(s.connected).toBe(false);
    expect(log.lost).toHaveLength(1);
    expect(log.emitted[0]).toMatchObject({ type: 'disconnected', event: { code: CloseCode.ABNORMAL } });
    dial.failing = false;
    await log.waitFor(() => log.attached.length === 2);
    expect(log.attached[1]).toBeGreaterThanOrEqual(2);
    expect(s.connected).toBe(true);
    expect(s.inspect()).toMatchObject({ connected: true, reconnecting: false, attempts: 0 });
  });

  it('ends without redialling when it has no factory', async () => {
    router = new Router();
    const dial = new Dial(router);
    const { log } = await start('alice', undefined, dial);
    dial.cut();
    await log.waitFor(() => log.ended.length === 1);
    expect(log.ended[0]!.error).toBeInstanceOf(ClosedError);
    expect(dial.calls).toBe(1);
  });

  it('ends without redialling when a newer session of its name replaces it', async () => {
    router = new Router();
    const dial = new Dial(router);
    const { log } = await start('alice', dial.factory, dial);
    const other = await openLink(await dial.factory(), hello('alice'), 2000);
    await log.waitFor(() => log.ended.length === 1);
    expect(log.ended[0]!.info.code).toBe(CloseCode.REPLACED);
    expect(dial.calls).toBe(2);
    other.conn.close(CloseCode.NORMAL, 'done');
  });

  it('stops redialling once ended', async () => {
    router = new Router();
    const dial = new Dial(router);
    const { s, log } = await start('alice', dial.factory, dial, { initialDelay: 50, maxDelay: 50 });
    dial.cut();
    await log.waitFor(() => log.emitted.some((e) => e.type === 'reconnecting'));
    s.end();
    const calls = dial.calls;
    await new Promise((r) => setTimeout(r, 120));
    expect(dial.calls).toBe(calls);
    expect(log.attached).toEqual([0]);
  });
});
