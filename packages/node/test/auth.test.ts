import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthError, connect, createRelay, type Peer, type Relay } from '../src/index.js';

let relay: Relay | undefined;
const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await relay?.close();
  relay = undefined;
});
async function peer(opts: Parameters<typeof connect>[1]): Promise<Peer> {
  const p = await connect(relay!.url, opts);
  peers.push(p);
  return p;
}
const HS = 'a-test-secret-of-at-least-32-bytes!!';
function hs256(claims: Record<string, unknown>, exp: number | string = '1h'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(HS));
}

describe('auth: secrets', () => {
  it('accepts the right secret and refuses a wrong one with AUTH', async () => {
    relay = await createRelay({ port: 0, auth: { secrets: { alice: 's3cret' } } });
    const alice = await peer({ name: 'alice', secret: 's3cret' });
    expect(alice.name).toBe('alice');
    await expect(connect(relay.url, { name: 'alice', secret: 'nope' })).rejects.toMatchObject({ code: 'AUTH' });
    await expect(connect(relay.url, { name: 'mallory', secret: 's3cret' })).rejects.toMatchObject({ code: 'AUTH' });
    await expect(connect(relay.url, { name: 'anon' })).rejects.toBeInstanceOf(AuthError);
  });
});

describe('auth: tokens', () => {
  it('accepts an HS256 token and takes the name from its claims', async () => {
    relay = await createRelay({ port: 0, auth: { jwt: { secret: HS } } });
    const p = await peer({ token: await hs256({ name: 'carol' }) });
    expect(p.name).toBe('carol');
  });

  it('accepts an ES256 token signed by the configured key', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    relay = await createRelay({ port: 0, auth: { jwt: { publicKey: await exportSPKI(publicKey) } } });
    const token = await new SignJWT({ name: 'dave' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('1h').sign(privateKey);
    expect((await peer({ token })).name).toBe('dave');
    const forged = await hs256({ name: 'dave' });
    await expect(connect(relay.url, { token: forged })).rejects.toMatchObject({ code: 'AUTH' });
  });

  it('refuses an expired token at connect', async () => {
    relay = await createRelay({ port: 0, auth: { jwt: { secret: HS } } });
    const token = await hs256({ name: 'erin' }, Math.floor(Date.now() / 1000) - 60);
    const err = await connect(relay.url, { token }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'AUTH' });
    expect((err as Error).message).toMatch(/expired/);
  });

  it('refuses a token for another name than the one claimed', async () => {
    relay = await createRelay({ port: 0, auth: { jwt: { secret: HS } } });
    await expect(connect(relay.url, { name: 'frank', token: await hs256({ name: 'erin' }) })).rejects.toMatchObject({ code: 'AUTH' });
  });

  it('ends the session with an AUTH reason when the token expires while connected', async () => {
    relay = await createRelay({ port: 0, auth: { jwt: { secret: HS } } });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const p = await peer({ token: await hs256({ name: 'gina' }, exp) });
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => p.on('close', resolve));
    expect(closed.code).toBe(4001);
    expect(closed.reason).toMatch(/AUTH: credentials expired/);
  }, 10_000);

  it('keeps a peer inside its granted groups and topics, and the connection usable', async () => {
    relay = await createRelay({ port: 0, auth: { jwt: { secret: HS } } });
    const token = await hs256({ name: 'hal', groups: ['workers.*'], publish: ['room.>'], subscribe: ['room.*'] });
    const hal = await peer({ token });
    const other = await peer({ token: await hs256({ name: 'ivy' }) });
    await expect(hal.join('admins')).rejects.toMatchObject({ code: 'AUTH' });
    await expect(hal.subscribe('secret.>', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' });
    await expect(hal.subscribe('room.>', () => {}).ready).rejects.toMatchObject({ code: 'AUTH' }); // wider than room.*
    const errors: Error[] = [];
    hal.on('error', (e) => errors.push(e));
    const seen: unknown[] = [];
    await other.subscribe('secret.x', (b) => seen.push(b)).ready;
    hal.publish('secret.x', 'leak');
    await expect.poll(() => errors.map((e) => (e as AuthError).code)).toEqual(['AUTH']);
    // What is allowed still works on the same connection.
    await hal.join('workers.eu');
    const got: unknown[] = [];
    await hal.subscribe('room.*', (b) => got.push(b)).ready;
    other.publish('room.lobby', 'hello');
    hal.publish('room.lobby', 'from hal');
    await expect.poll(() => got).toEqual(['hello', 'from hal']);
    expect(seen).toEqual([]);
  });
});

describe('auth: custom and combined', () => {
  it('runs a custom function alone, and after a secret check with its grant', async () => {
    const calls: (string | undefined)[] = [];
    relay = await createRelay({
      port: 0,
      auth: {
        secrets: { alice: 'pw' },
        custom: async (req, grant) => {
          calls.push(grant?.name);
          if (req.name === 'blocked') throw new AuthError('blocked by policy');
          return grant ? { ...grant, groups: ['team'] } : { name: `guest-${req.namespace || 'x'}` };
        },
      },
    });
    const alice = await peer({ name: 'alice', secret: 'pw' });
    await expect(alice.join('other')).rejects.toMatchObject({ code: 'AUTH' });
    await alice.join('team');
    const guest = await peer({ namespace: 'lobby' });
    expect(guest.name).toBe('guest-lobby');
    await expect(connect(relay.url, { name: 'blocked' })).rejects.toMatchObject({ code: 'AUTH', message: 'blocked by policy' });
    expect(calls).toEqual(['alice', undefined, undefined]);
  });

  it('refuses to run open on a non-loopback address without insecure', async () => {
    await expect(createRelay({ port: 0, host: '0.0.0.0' })).rejects.toThrow(/insecure/);
  });
});
