/**
 * `connect(urls, options)`: a core Peer over a ws transport, to one relay URL or several. Connect
 * errors are typed: AUTH and NAME_TAKEN from the relay, CLOSED (with the socket error as `cause`)
 * when unreachable.
 */
import { ClosedError, type Peer, type PeerOptions, type RelayUrls, type Transport } from '@missive/core';
import { randomBytes } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import WebSocket from 'ws';
import { connectToList, relayUrlList } from '@missive/core/internal';
import { wsTransport } from './ws-transport.js';

export interface ConnectOptions extends PeerOptions {
  /** TLS options for `wss://` (e.g. `ca` for a private certificate authority). */
  tls?: SecureContextOptions & { rejectUnauthorized?: boolean };
}

/**
 * Opens a WebSocket to a relay and completes the missive handshake. `urls` is one relay URL
 * (`ws://` or `wss://`) or a list of relays serving the same peers: the first connection tries
 * them in order (each bounded by `connectTimeout`) until one takes the peer, and every
 * reconnection moves on to the next one, round-robin, so a peer whose relay died lands on
 * another; `peer.inspect().session.url` says which one is in use. An empty list or a bad URL
 * throws a TypeError. The peer reconnects by itself when the link drops (`reconnect` option;
 * `false` turns it off); the first connection is not retried: it rejects with a typed error
 * (with several URLs, when none took it: ClosedError naming each one's error).
 */
export async function connect(urls: RelayUrls, options: ConnectOptions = {}): Promise<Peer> {
  const list = relayUrlList(urls);
  const { tls, ...peerOptions } = options;
  const timeout = options.connectTimeout ?? 10_000;
  return connectToList(list, (url) => openSocket(url, timeout, tls), peerOptions);
}

/** A ws transport to `url`, or ClosedError (with the socket error as cause) if unreachable. */
async function openSocket(url: string, timeout: number, tls: ConnectOptions['tls']): Promise<Transport> {
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeout, maxPayload: 0, generateMask, ...tls });
  // The transport listens from now on, not after `open`: a relay that refuses at once (a BYE
  // saying LIMIT, then close) may send its first frames in the same read as the upgrade
  // response, and ws emits them before an `open` continuation could add a listener. The
  // transport keeps them until the Peer's handshake listens.
  // No compression and never an all-zero mask: ws copies every message while masking it.
  const transport = wsTransport(ws, { copiesOnSend: true });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      ws.off('open', onOpen);
      reject(new ClosedError(`cannot reach relay at ${url}: ${err.message}`, { cause: err }));
    };
    const onOpen = (): void => {
      ws.off('error', onError);
      resolve();
    };
    ws.once('error', onError);
    ws.once('open', onOpen);
  });
  return transport;
}

/** Random bytes drawn ahead, as ws does itself, for the masks. */
let maskPool = Buffer.alloc(0);
let maskAt = 0;

/**
 * Fills a WebSocket frame mask with random bytes, never all zero: ws sends a frame with a zero
 * mask without copying it, and `copiesOnSend` relies on that copy.
 */
function generateMask(mask: Buffer): void {
  if (maskAt + 4 > maskPool.length) {
    maskPool = randomBytes(8192);
    maskAt = 0;
  }
  mask[0] = maskPool[maskAt++]!;
  mask[1] = maskPool[maskAt++]!;
  mask[2] = maskPool[maskAt++]!;
  mask[3] = maskPool[maskAt++]!;
  if ((mask[0] | mask[1] | mask[2] | mask[3]) === 0) mask[0] = 1;
}
