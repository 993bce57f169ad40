/**
 * Several relay URLs for one peer (relays that form one cluster). The first connect tries them
 * in order until one takes the peer; each reconnection then moves on to the next one,
 * round-robin, so a peer whose relay died lands on another. Both `connect`s (`@missive/node`,
 * `@missive/browser`) use it with their own socket.
 */
import { ClosedError, ErrorCode } from './errors.js';
import { createPeer, type Peer } from './peer/peer.js';
import type { PeerOptions } from './peer/types.js';
import type { Transport } from './transport/transport.js';

/** One relay URL, or several (`ws://` or `wss://`) of relays serving the same peers. */
export type RelayUrls = string | URL | readonly (string | URL)[];

/** The URLs of `urls` as strings, or a TypeError saying what is wrong with them. */
export function relayUrlList(urls: RelayUrls): string[] {
  const value: unknown = urls;
  if (typeof value !== 'string' && !(value instanceof URL) && !Array.isArray(value)) {
    throw new TypeError(`connect needs a relay URL (ws:// or wss://) or a list of them, not ${value === null ? 'null' : typeof value}`);
  }
  const items: readonly unknown[] = Array.isArray(value) ? value : [value];
  if (items.length === 0) throw new TypeError('connect needs at least one relay URL: the list is empty');
  return items.map((item, i) => {
    const where = items.length > 1 ? ` (item ${i} of the list)` : '';
    if (typeof item !== 'string' && !(item instanceof URL)) throw new TypeError(`a relay URL must be a string or a URL, not ${typeof item}${where}`);
    let url: URL;
    try {
      url = item instanceof URL ? item : new URL(item);
    } catch {
      throw new TypeError(`not a URL: ${JSON.stringify(item)}${where}`);
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`a relay URL starts with ws:// or wss://, not ${url.protocol}// (${JSON.stringify(String(item))}${where})`);
    return typeof item === 'string' ? item : item.href;
  });
}

/** Refusals another relay may not repeat: unreachable, no answer in time, full. */
const NEXT_RELAY = new Set<string>([ErrorCode.CLOSED, ErrorCode.TIMEOUT, ErrorCode.LIMIT]);

/**
 * `createPeer` over a transport factory that rotates through `urls`: the first connection tries
 * them in order (moving on when one is unreachable, does not answer in time or is full, and
 * stopping at once on any other refusal, such as AUTH or NAME_TAKEN); each call the session makes
 * to reconnect dials the URL after the one used last.
 */
export async function connectToList(urls: readonly string[], open: (url: string) => Promise<Transport>, options: PeerOptions): Promise<Peer> {
  let next = 0;
  const factory = (): Promise<Transport> => {
    const url = urls[next]!;
    next = (next + 1) % urls.length;
    return open(url);
  };
  const errors: Error[] = [];
  for (let i = 0; i < urls.length; i++) {
    next = i;
    try {
      return await createPeer(factory, options);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (urls.length === 1 || typeof code !== 'string' || !NEXT_RELAY.has(code)) throw err;
      errors.push(err as Error);
    }
  }
  const why = urls.map((url, i) => `${url}: ${errors[i]!.message}`).join('; ');
  throw new ClosedError(`no relay took the connection (${why})`, { cause: errors[errors.length - 1] });
}

/** `url` with any user name and password taken out (a transport's `url` is for diagnostics). */
export function withoutCredentials(url: string): string {
  if (!url.includes('@')) return url;
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.href;
  } catch {
    return url;
  }
}
