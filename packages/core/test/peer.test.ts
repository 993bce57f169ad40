import { afterEach, describe, expect, it } from 'vitest';
import { Net } from './helpers.js';

let net: Net;
afterEach(async () => {
  await net?.close();
});

describe('send and mailbox', () => {
  it('delivers a message to the named peer\'s inbox and fires delivered once', async () => {
    net = new Net();
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    const delivered: string[] = [];
    alice.on('delivered', ({ id }) => delivered.push(id));
    const id = await alice.send('bob', { text: 'hi' });
    const msg = await bob.mailbox().receive({ timeout: 1000 });
    expect(msg).toMatchObject({ id, from: 'alice', to: 'bob', body: { text: 'hi' } });
    expect(typeof msg.sentAt).toBe('number');
    await expect.poll(() => delivered).toEqual([id]);
  });
});

describe('request/reply', () => {
  it('returns the handler result', async () => {
    net = new Net();
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    bob.handle<{ a: number; b: number }, number>('add', (body) => body.a + body.b);
    await expect(alice.request('bob/add', { a: 1, b: 2 }, { timeout: 1000 })).resolves.toBe(3);
  });
});
