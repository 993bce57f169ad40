import { afterEach, describe, expect, it } from 'vitest';
import { AuthError, CloseCode, type AuthGrant, type AuthRequest, type RouterOptions } from '../src/index.js';
import { Net, nextEvent } from './helpers.js';

let net: Net | undefined;
afterEach(async () => {
  await net?.close();
  net = undefined;
});

function start(options: RouterOptions): Net {
  net = new Net(options);
  return net;
}

const secrets: Record<string, string> = { alice: 'a-secret', bob: 'b-secret' };

describe('auth hook - connecting', () => {
  it('rejects createPeer with AUTH when the hook refuses', async () => {
    const n = start({
      auth: () => {
        throw new AuthError('nobody gets in');
      },
    });
    const failure = nextEvent<{ name: string; message: string }>((fn) => n.router.on('auth-failure', fn));
    const err = await n.peer({ name: 'alice' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err).toMatchObject({ code: 'AUTH', message: 'nobody gets in' });
    await expect(failure).resolves.toMatchObject({ name: 'alice', message: 'nobody gets in' });
    expect(n.router.connections()).toEqual([]);
  });

  it('rejects with AUTH when an async hook rejects', async () => {
    const n = start({ auth: async () => Promise.reject(new Error('database says no')) });
    await expect(n.peer({ name: 'alice' })).rejects.toMatchObject({ code: 'AUTH', message: 'database says no' });
  });

  it('lets a peer in with the right secret and keeps it out with a wrong one', async () => {
    const seen: AuthRequest[] = [];
    const n = start({
      auth: (req) => {
        seen.push(req);
        if (secrets[req.name] !== req.secret) throw new AuthError('bad secret');
      },
    });
    await expect(n.peer({ name: 'alice', secret: 'wrong' })).rejects.toMatchObject({ code: 'AUTH' });
    const alice = await n.peer({ name: 'alice', secret: 'a-secret', namespace: 'team', token: 'tok' });
    expect(alice.name).toBe('alice');
    expect(seen[1]).toEqual({ name: 'alice', namespace: 'team', secret: 'a-secret', token: 'tok' });
  });

  it('refuses a requested name other than the one granted', async () => {
    const n = start({ auth: () => ({ name: 'alice' }) });
    await expect(n.peer({ name: 'mallory' })).rejects.toMatchObject({ code: 'AUTH' });
    // An anonymous request takes the granted name.
    const p = await n.peer();
    expect(p.name).toBe('alice');
  });

  it('places the peer in the granted namespace', async () => {
    const n = start({ auth: (req) => ({ namespace: `tenant-${req.name}` }) });
    const p = await n.peer({ name: 'alice', namespace: 'ignored' });
    expect(p.namespace).toBe('tenant-alice');
  });

  it('refuses credentials that already expired and ends a session when its grant expires', async () => {
    const n = start({ auth: (req) => ({ expiresAt: req.name === 'old' ? Date.now() - 1 : Date.now() + 100 }) });
    await expect(n.peer({ name: 'old' })).rejects.toMatchObject({ code: 'AUTH' });
    const p = await n.peer({ name: 'brief' });
    const closed = nextEvent<{ code: number; reason: string; error?: Error }>((fn) => p.on('close', fn));
    await expect(closed).resolves.toMatchObject({ code: CloseCode.AUTH, error: { code: 'CLOSED' } });
    expect(p.connected).toBe(false);
  });
});

describe('auth hook - a limited grant', () => {
  const grant: AuthGrant = { publish: ['chat.>'], subscribe: ['chat.*'], groups: ['readers', 'team.*'] };

  async function setup() {
    const n = start({ auth: (req) => (req.name === 'limited' ? grant : {}) });
    const limited = await n.peer({ name: 'limited' });
    const free = await n.peer({ name: 'free' });
    return { n, limited, free };
  }

  it('rejects subscribe ready with AUTH outside the grant and allows the rest', async () => {
    const { limited, free } = await setup();
    await expect(limited.subscribe('secret.*', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    // A wider pattern than granted is refused too, even though it overlaps.
    await expect(limited.subscribe('chat.>', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    await expect(limited.subscribe('>', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    const got: unknown[] = [];
    const ok = limited.subscribe('chat.*', (b) => got.push(b));
    await expect(ok.ready).resolves.toBeUndefined();
    const narrow = limited.subscribe('chat.lobby', () => {});
    await expect(narrow.ready).resolves.toBeUndefined();
    free.publish('chat.lobby', 'hello');
    await expect.poll(() => got).toEqual(['hello']);
  });

  it('rejects join with AUTH outside the grant and allows the rest', async () => {
    const { limited, free } = await setup();
    await expect(limited.join('admins')).rejects.toMatchObject({ code: 'AUTH' });
    await expect(limited.join('team')).rejects.toMatchObject({ code: 'AUTH' });
    await limited.join('readers');
    await limited.join('team.blue');
    limited.handle('work', () => 'done');
    await expect(free.request('readers/work', 1, { timeout: 5000 })).resolves.toBe('done');
    await expect(free.request('admins/work', 1, { timeout: 10_000 })).rejects.toMatchObject({ code: 'NO_ROUTE' });
  });

  it('reports a refused publish through the error event with AUTH, and delivers allowed ones', async () => {
    const { n, limited, free } = await setup();
    const got: [string, unknown][] = [];
    await free.subscribe('>', (b, m) => got.push([m.topic, b])).ready;
    const failures: { message: string }[] = [];
    n.router.on('auth-failure', (e) => failures.push(e));
    const error = nextEvent<Error & { code?: string }>((fn) => limited.on('error', fn));
    limited.publish('secret.plans', 'leak');
    await expect(error).resolves.toMatchObject({ code: 'AUTH' });
    expect(failures).toEqual([expect.objectContaining({ message: expect.stringContaining('secret.plans') })]);
    limited.publish('chat.lobby.deep', 'fine');
    await expect.poll(() => got).toEqual([['chat.lobby.deep', 'fine']]);
  });

  it('keeps the connection usable after refusals', async () => {
    const { limited, free } = await setup();
    const errors: Error[] = [];
    limited.on('error', (e) => errors.push(e));
    await expect(limited.join('admins')).rejects.toMatchObject({ code: 'AUTH' });
    await expect(limited.subscribe('x', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    limited.publish('x', 1);
    await expect.poll(() => errors.length).toBe(1);
    expect(limited.connected).toBe(true);
    // Messages, requests and presence are not limited by the grant.
    await limited.send('free', 'still here', { waitForDelivery: true });
    await expect(free.receive({ timeout: 5000 })).resolves.toMatchObject({ from: 'limited', body: 'still here' });
    free.handle('ping', () => 'pong');
    await expect(limited.request('free/ping')).resolves.toBe('pong');
    expect((await limited.peers()).map((p) => p.name).sort()).toEqual(['free', 'limited']);
  });

  it('gives an unlimited grant to everything', async () => {
    const { free } = await setup();
    await free.join('admins');
    await free.subscribe('>', () => {}).ready;
    const errors: Error[] = [];
    free.on('error', (e) => errors.push(e));
    free.publish('secret.plans', 1);
    const got: unknown[] = [];
    await free.subscribe('after', (b) => got.push(b)).ready;
    free.publish('after', 2);
    await expect.poll(() => got).toEqual([2]);
    expect(errors).toEqual([]);
  });
});
