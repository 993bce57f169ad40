/**
 * Tunnels over real sockets through a relay on 127.0.0.1: a large transfer verified by hash, a
 * file piped through `toDuplex`, and link loss mid-transfer (cut by a TCP proxy).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, connect, createRelay, toDuplex, type ConnectOptions, type Peer, type Relay, type Tunnel } from '../src/index.js';
import { TcpProxy } from './fixtures/fault-proxy.js';

let relay: Relay | undefined;
let proxy: TcpProxy | undefined;
let dir: string | undefined;
const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await proxy?.close();
  proxy = undefined;
  await relay?.close();
  relay = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function peer(name: string, options: ConnectOptions = {}, url = relay!.url): Promise<Peer> {
  const p = await connect(url, { name, ...options });
  peers.push(p);
  return p;
}

/** The first tunnel `peer` accepts for `protocol`. */
function firstTunnel(peer: Peer, protocol: string): Promise<Tunnel> {
  return new Promise((resolve) => peer.onTunnel(protocol, (t) => resolve(t)));
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads until the stream ends (undefined) or fails (its error). */
async function readToError(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<unknown> {
  try {
    while (!(await reader.read()).done);
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('tunnels through a relay over ws', () => {
  it('carries 50 MiB intact: the sha256 of what was sent equals that of what arrived', async () => {
    relay = await createRelay({ port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    const received = new Promise<{ bytes: number; digest: string }>((resolve, reject) => {
      bob.onTunnel('sink', async (t) => {
        try {
          const hash = createHash('sha256');
          let bytes = 0;
          for await (const chunk of t.readable) {
            hash.update(chunk);
            bytes += chunk.length;
          }
          resolve({ bytes, digest: hash.digest('hex') });
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    const t = await alice.tunnel('bob', 'sink', { timeout: 5000 });
    const TOTAL = 50 * 1024 * 1024;
    const CHUNK = 1024 * 1024;
    const sent = createHash('sha256');
    const w = t.writable.getWriter();
    for (let off = 0; off < TOTAL; off += CHUNK) {
      const chunk = randomBytes(CHUNK);
      sent.update(chunk);
      await w.write(chunk);
    }
    await w.close();
    expect(await received).toEqual({ bytes: TOTAL, digest: sent.digest('hex') });
    expect(t.bytesOut).toBe(TOTAL);
    // The relay's buffer for bob never needed more than about a window per tunnel.
    expect(relay.router.metrics().slowConsumerDisconnects).toBe(0);
  });

  it('pipes a file through toDuplex on both sides, byte for byte', async () => {
    relay = await createRelay({ port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    dir = await mkdtemp(join(tmpdir(), 'missive-tunnel-'));
    const src = join(dir, 'src.bin');
    const dst = join(dir, 'dst.bin');
    await writeFile(src, randomBytes(4 * 1024 * 1024 + 12_345));
    const stored = firstTunnel(bob, 'file').then((t) => pipeline(toDuplex(t), createWriteStream(dst)));
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    await pipeline(createReadStream(src), toDuplex(t));
    await stored;
    expect((await stat(dst)).size).toBe((await stat(src)).size);
    expect(sha256(await readFile(dst))).toBe(sha256(await readFile(src)));
    // Each Duplex ended its side, so the tunnel closed at both ends.
    await expect.poll(() => t.state).toBe('closed');
  });

  it('toDuplex refuses a messages-mode tunnel', async () => {
    relay = await createRelay({ port: 0 });
    const alice = await peer('alice');
    const bob = await peer('bob');
    bob.onTunnel('rpc', () => {}, { mode: 'messages' });
    const t = await alice.tunnel('bob', 'rpc', { mode: 'messages', timeout: 5000 });
    expect(() => toDuplex(t as unknown as Tunnel)).toThrow(TypeError);
  });

  it.each(['writer', 'reader'] as const)('both ends fail with CLOSED when the %s\'s socket is cut mid-transfer', async (cut) => {
    relay = await createRelay({ port: 0 });
    proxy = await TcpProxy.start(relay.port);
    // The side to cut reaches the relay through the proxy.
    const alice = await peer('alice', { reconnect: false }, cut === 'writer' ? proxy.url : relay.url);
    const bob = await peer('bob', { reconnect: false }, cut === 'reader' ? proxy.url : relay.url);
    const accepted = firstTunnel(bob, 'file');
    const t = await alice.tunnel('bob', 'file', { timeout: 5000 });
    const theirs = await accepted;
    const chunk = randomBytes(64 * 1024);
    const writing = (async () => {
      const w = t.writable.getWriter();
      for (;;) await w.write(chunk);
    })();
    const reader = theirs.readable.getReader();
    let read = 0;
    while (read < 1024 * 1024) read += (await reader.read()).value!.length;
    expect(proxy.cut()).toBe(1);
    const writeErr = await writing.catch((err: unknown) => err);
    expect(writeErr).toBeInstanceOf(ClosedError);
    expect(writeErr).toMatchObject({ code: 'CLOSED' });
    const readErr = await readToError(reader);
    expect(readErr).toBeInstanceOf(ClosedError);
    expect([t.state, theirs.state]).toEqual(['closed', 'closed']);
  });
});
