/**
 * Tunnels of a Peer: the ones it opened or accepted, the handlers that accept them by protocol,
 * and the wire each tunnel writes through. Tunnels are not resumed across links: when the link
 * drops, every tunnel fails.
 */
import { checkAddress, checkName, splitAddress } from '../address.js';
import { EMPTY_BODY, frame, Kind, type FrameOf } from '../codec/frames.js';
import { ClosedError, errorFromWire, ErrorCode, messageOf, remoteWireCode, TimeoutError, WireCode } from '../errors.js';
import { Tunnel, type TunnelOpenOptions, type TunnelOptions, type TunnelWire } from '../tunnel.js';
import type { PeerPart, PeerPort } from './port.js';
import { MAX_TIMEOUT } from './requests.js';
import type { TunnelHandler } from './types.js';

/** What tunnels need to know of the link to a remote peer. */
export interface TunnelLink {
  /** Largest frame the path to `remote` carries (tunnel chunks stay under it). */
  maxFrame(remote: string): number;
  /** Whether the path to `remote` is over its high-water mark (writers wait for a drain). */
  congested(remote: string): boolean;
}

type TunnelFrame = FrameOf<typeof Kind.TAccept> | FrameOf<typeof Kind.TData> | FrameOf<typeof Kind.TCredit> | FrameOf<typeof Kind.TEnd> | FrameOf<typeof Kind.TClose>;

export class Tunnels implements PeerPart {
  readonly #port: PeerPort;
  readonly #link: TunnelLink;
  readonly #timeout: number;
  /** Tunnels by `o:tid` (opened here) or `a:remote:tid` (accepted here). */
  readonly #tunnels = new Map<string, Tunnel<unknown>>();
  readonly #handlers = new Map<string, { handler: TunnelHandler<never>; options: TunnelOptions }>();
  /** Tunnels opened here waiting for TACCEPT. */
  readonly #opening = new Map<number, { resolve(): void; reject(err: Error): void }>();
  #nextTid = 1;

  constructor(port: PeerPort, link: TunnelLink, timeout: number) {
    this.#port = port;
    this.#link = link;
    this.#timeout = timeout;
  }

  /** See `Peer.onTunnel`. */
  onTunnel<T>(protocol: string, handler: TunnelHandler<T>, options: TunnelOptions = {}): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const entry = { handler: handler as TunnelHandler<never>, options };
    this.#handlers.set(protocol, entry);
    return () => {
      if (this.#handlers.get(protocol) === entry) this.#handlers.delete(protocol);
    };
  }

  /** See `Peer.tunnel`. */
  open<T>(address: string, protocol: string, options: TunnelOpenOptions = {}): Promise<Tunnel<T>> {
    const port = this.#port;
    const timeout = Math.min(options.timeout ?? this.#timeout, MAX_TIMEOUT);
    const timeoutError = new TimeoutError(`tunnel to ${address} (${protocol}) was not accepted within ${timeout} ms`);
    if (port.closedError) return Promise.reject(new ClosedError('peer is closed', { cause: port.closedError }));
    if (!port.connected) return Promise.reject(new ClosedError('the link is down (reconnecting)'));
    const bad = checkAddress(address) ?? (checkName(protocol, 'protocol') ? `bad protocol "${protocol}"` : undefined);
    if (bad) return Promise.reject(new TypeError(bad));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const remote = splitAddress(address).name;
    const tid = this.#nextTid++;
    const key = `o:${tid}`;
    let t: Tunnel<T>;
    try {
      t = new Tunnel<T>(protocol, remote, this.#wire(key, remote, tid, 0), options);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#tunnels.set(key, t as Tunnel<unknown>);
    return new Promise<Tunnel<T>>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#opening.delete(tid);
      };
      const giveUp = (err: unknown): void => {
        settle();
        t.abort(err);
        reject(err);
      };
      const onAbort = (): void => giveUp(signal!.reason);
      const timer = setTimeout(() => giveUp(timeoutError), timeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#opening.set(tid, {
        resolve: () => {
          settle();
          resolve(t);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      port.write(frame(Kind.TOpen, { to: `${remote}/${protocol}`, from: '', tid, window: t.window }));
    });
  }

  #wire(key: string, remote: string, tid: number, dir: number): TunnelWire {
    const port = this.#port;
    const link = this.#link;
    return {
      codec: port.codec,
      // Room for a TDATA header (two names of at most 128 characters, tid, dir, eom) in the
      // smaller of the relay's frame limit and what this link accepts (the other end's is the same).
      maxChunk: link.maxFrame(remote) - 1024,
      congested: () => link.congested(remote),
      send: (kind, fields, body, flags) => {
        if (!port.connected) return false;
        const to = remote;
        if (kind === 'data') return port.write(frame(Kind.TData, { to, from: '', tid, dir, eom: fields.eom ?? 1 }, body ?? EMPTY_BODY, flags ?? 0));
        if (kind === 'credit') return port.write(frame(Kind.TCredit, { to, from: '', tid, dir, bytes: fields.bytes ?? 0 }));
        if (kind === 'end') return port.write(frame(Kind.TEnd, { to, from: '', tid, dir }));
        return port.write(frame(Kind.TClose, { to, from: '', tid, dir, code: fields.code ?? WireCode.NORMAL, message: fields.message ?? '' }));
      },
      done: () => this.#tunnels.delete(key),
    };
  }

  onOpen(f: FrameOf<typeof Kind.TOpen>): void {
    const port = this.#port;
    const protocol = splitAddress(f.to).port;
    const refuse = (code: string, message: string): void => {
      port.write(frame(Kind.TClose, { to: f.from, from: '', tid: f.tid, dir: 1, code, message }));
    };
    const entry = this.#handlers.get(protocol);
    if (!entry) return refuse(ErrorCode.NO_ROUTE, `no tunnel handler for "${protocol}" on ${port.label}`);
    const key = `a:${f.from}:${f.tid}`;
    let t: Tunnel<unknown>;
    try {
      t = new Tunnel(protocol, f.from, this.#wire(key, f.from, f.tid, 1), entry.options);
    } catch (err) {
      return refuse(remoteWireCode(err), messageOf(err));
    }
    this.#tunnels.set(key, t);
    t.opened(f.window);
    let result: unknown;
    try {
      result = entry.handler(t as Tunnel<never>);
    } catch (err) {
      this.#tunnels.delete(key);
      return refuse(remoteWireCode(err), messageOf(err));
    }
    port.write(frame(Kind.TAccept, { to: f.from, from: '', tid: f.tid, window: t.window }));
    if (result instanceof Promise) result.catch((err: unknown) => t.abort(err));
  }

  onFrame(f: TunnelFrame): void {
    const opened = f.kind === Kind.TAccept || f.dir === 1;
    const key = opened ? `o:${f.tid}` : `a:${f.from}:${f.tid}`;
    const t = this.#tunnels.get(key);
    if (!t) return;
    switch (f.kind) {
      case Kind.TAccept:
        t.opened(f.window);
        this.#opening.get(f.tid)?.resolve();
        return;
      case Kind.TData:
        return t.onData(f);
      case Kind.TCredit:
        return t.onCredit(f.bytes);
      case Kind.TEnd:
        return t.onEnd();
      case Kind.TClose: {
        const opening = opened ? this.#opening.get(f.tid) : undefined;
        t.onClose(f.code, f.message);
        if (opening) opening.reject(errorFromWire(f.code === WireCode.NORMAL || f.code === WireCode.ABORTED ? ErrorCode.CLOSED : f.code, f.message));
        return;
      }
    }
  }

  /** The link drained: writers waiting on congestion go on. */
  onDrain(): void {
    for (const t of this.#tunnels.values()) t.onDrain();
  }

  /** These tunnels' path is gone (a direct link failed): they fail; opens in progress reject. */
  fail(keys: string[], error: Error): void {
    for (const key of keys) {
      const t = this.#tunnels.get(key);
      if (key.startsWith('o:')) this.#opening.get(Number(key.slice(2)))?.reject(error);
      t?.fail(error);
      this.#tunnels.delete(key);
    }
  }

  linkLost(error: ClosedError): void {
    this.#failAll(error);
  }

  closed(error: ClosedError): void {
    this.#failAll(error);
  }

  /** Every tunnel fails (they are not resumed across links); opens in progress reject. */
  #failAll(err: Error): void {
    for (const o of [...this.#opening.values()]) o.reject(err);
    for (const t of [...this.#tunnels.values()]) t.fail(err);
    this.#tunnels.clear();
  }

  inspect(): { handlers: string[]; tunnels: ReturnType<Tunnel<unknown>['inspect']>[] } {
    return { handlers: [...this.#handlers.keys()], tunnels: [...this.#tunnels.values()].map((t) => t.inspect()) };
  }
}
