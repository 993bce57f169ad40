/** A Node `Duplex` over a bytes-mode tunnel, so tunnels plug into `pipeline()`. */
import type { Tunnel } from '@missive/core';
import { Duplex } from 'node:stream';
import type { ReadableStream as NodeReadableStream, WritableStream as NodeWritableStream } from 'node:stream/web';

/**
 * Wraps a bytes-mode tunnel as a Node Duplex: what is written goes out through the tunnel
 * (with its flow control: writes wait for credit), and what arrives is readable. Ending the
 * Duplex half-closes the tunnel; destroying it aborts the tunnel.
 *
 * ```ts
 * await pipeline(fs.createReadStream(file), toDuplex(await peer.tunnel('bob', 'file')));
 * ```
 */
export function toDuplex(tunnel: Tunnel<Uint8Array>): Duplex {
  if (tunnel.mode !== 'bytes') throw new TypeError('toDuplex needs a bytes-mode tunnel');
  return Duplex.fromWeb({
    readable: tunnel.readable as unknown as NodeReadableStream<Uint8Array>,
    writable: tunnel.writable as unknown as NodeWritableStream<Uint8Array>,
  });
}
