import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BodyCodec, Kind } from '../src/internal.js';
import type { CodecName, Peer } from '../src/index.js';
import { Net } from './helpers.js';

let net: Net;
beforeEach(() => {
  net = new Net();
});
afterEach(() => net.close());

const body = { text: 'héllo ✓', n: 42, pi: 3.5, neg: -7, ok: true, none: null, list: [1, 'two', { three: 3 }], nested: { a: { b: [] } } };

/** A peer whose outgoing body codecs are recorded from the frames it actually sends. */
async function peerWithCodec(name: string, codec: CodecName): Promise<{ peer: Peer; sent: number[] }> {
  const sent: number[] = [];
  const peer = await net.peer({ name, codec }, {
    out: (f) => {
      if (f.body.length > 0) sent.push(f.flags & 0x03);
      return [f];
    },
  });
  return { peer, sent };
}

describe('codecs interoperate', () => {
  for (const [from, to] of [
    ['json', 'msgpack'],
    ['msgpack', 'json'],
  ] as const) {
    it(`carries send, request/reply, publish and broadcast from a ${from} peer to a ${to} peer`, async () => {
      const a = await peerWithCodec('a', from);
      const b = await peerWithCodec('b', to);
      b.peer.handle('echo', (req) => ({ got: req }));
      await b.peer.join('g');
      const pubs: unknown[] = [];
      const sub = b.peer.subscribe('news', (x) => pubs.push(x));
      await sub.ready;

      await a.peer.send('b', body);
      await expect(b.peer.receive({ timeout: 5000 })).resolves.toMatchObject({ from: 'a', body });
      await expect(a.peer.request('b/echo', body, { timeout: 5000 })).resolves.toEqual({ got: body });
      a.peer.publish('news', body);
      await expect.poll(() => pubs).toEqual([body]);
      a.peer.broadcast('g', body);
      await expect(b.peer.receive({ timeout: 5000 })).resolves.toMatchObject({ to: 'g', body });

      // Each side really encoded with its own codec.
      const flag = (c: CodecName): number => (c === 'json' ? BodyCodec.Json : BodyCodec.Msgpack);
      expect(new Set(a.sent)).toEqual(new Set([flag(from)]));
      expect(new Set(b.sent)).toEqual(new Set([flag(to)]));
    });
  }

  it('passes binary bodies between msgpack peers as bytes', async () => {
    const a = await net.peer({ name: 'a' });
    const b = await net.peer({ name: 'b' });
    await a.send('b', { data: new Uint8Array([0, 1, 254, 255]) });
    const msg = await b.receive<{ data: Uint8Array }>({ timeout: 5000 });
    expect(msg.body.data).toBeInstanceOf(Uint8Array);
    expect([...msg.body.data]).toEqual([0, 1, 254, 255]);
  });

  it('forwards the body bytes through the relay untouched', async () => {
    const received: Uint8Array[] = [];
    const a = await net.peer({ name: 'a', codec: 'json' });
    await net.peer({ name: 'b' }, {
      in: (f) => {
        if (f.kind === Kind.Msg) received.push(f.body.slice());
        return [f];
      },
    });
    await a.send('b', { k: 'v' }, { waitForDelivery: true });
    expect(new TextDecoder().decode(received[0])).toBe('{"k":"v"}');
  });
});

describe('binary bodies', () => {
  for (const codec of ['json', 'msgpack'] as const) {
    it(`sends a Uint8Array body as raw bytes from a ${codec} peer, and the receiver gets a Uint8Array`, async () => {
      const { peer: alice, sent } = await peerWithCodec('alice', codec);
      const bob = await net.peer({ name: 'bob', codec: codec === 'json' ? 'msgpack' : 'json' });
      const bytes = Uint8Array.from([0, 1, 2, 250, 255]);
      bob.handle('len', (b: Uint8Array) => b.length);
      await expect(alice.request('bob/len', bytes)).resolves.toBe(5);
      await alice.send('bob', bytes);
      const msg = await bob.receive({ timeout: 2000 });
      expect(msg.body).toBeInstanceOf(Uint8Array);
      expect([...(msg.body as Uint8Array)]).toEqual([0, 1, 2, 250, 255]);
      expect(sent).toEqual([BodyCodec.Raw, BodyCodec.Raw]);
    });
  }

  it('still carries binary nested inside objects with msgpack', async () => {
    const alice = await net.peer({ name: 'alice' });
    const bob = await net.peer({ name: 'bob' });
    await alice.send('bob', { file: Uint8Array.from([9, 8]) });
    const msg = await bob.receive<{ file: Uint8Array }>({ timeout: 2000 });
    expect([...msg.body.file]).toEqual([9, 8]);
  });
});
