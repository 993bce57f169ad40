import { BODY_NEXT, decodeBatch, encodeBatch, type Frame } from '../src/internal.js';
import {
  CloseCode,
  createPeer,
  memoryTransportPair,
  Router,
  type CloseInfo,
  type Peer,
  type PeerEvents,
  type PeerOptions,
  type RouterOptions,
  type Transport,
  type TransportFactory,
  type TransportHandlers,
} from '../src/index.js';

/**
 * Rewrites the frames a peer sends (`out`, client → router) or receives (`in`, router → client).
 * Each function maps one frame to the frames to pass on: `[]` drops it, `[f, f]` duplicates it.
 */
export interface Tap {
  out?: (f: Frame) => Frame[];
  in?: (f: Frame) => Frame[];
}

/** A Router with memory-transport peers; `close()` ends all of it. */
export class Net {
  readonly router: Router;
  readonly peers: Peer[] = [];
  constructor(options?: RouterOptions) {
    this.router = new Router(options);
  }
  async peer(options: PeerOptions = {}, tap?: Tap): Promise<Peer> {
    return (await this.link(options, tap)).peer;
  }
  /** Like `peer`, but also returns the router's end of the link, to cut it from that side. */
  async link(options: PeerOptions = {}, tap?: Tap): Promise<{ peer: Peer; server: Transport }> {
    const [client, server] = memoryTransportPair();
    this.router.accept(server);
    const p = await createPeer(tap ? tapped(client, tap) : client, options);
    this.peers.push(p);
    return { peer: p, server };
  }
  /** A peer made from a transport factory (so it reconnects), with the factory's `Dial`. */
  async reconnecting(options: PeerOptions = {}, dial = new Dial(this.router)): Promise<{ peer: Peer; dial: Dial }> {
    const p = await createPeer(dial.factory, options);
    this.peers.push(p);
    return { peer: p, dial };
  }
  close = async (): Promise<void> => {
    await Promise.all(this.peers.map((p) => p.close()));
    await this.router.close(1000);
  };
}

/** Resolves with the first event of `type`, rejects after `ms`. */
export function nextEvent<T>(on: (fn: (e: T) => void) => () => void, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('event did not come'));
    }, ms);
    const off = on((e) => {
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

/** A promise the test resolves when it chooses (for `Dial.gate`, auth hooks, handlers). */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Every event of `type` the peer emits from now on, in order. */
export function record<K extends keyof PeerEvents>(peer: Peer, type: K): PeerEvents[K][] {
  const out: PeerEvents[K][] = [];
  peer.on(type, (e) => out.push(e));
  return out;
}

/** A transport that passes every batch through `tap`, frame by frame. */
export function tapped(inner: Transport, tap: Tap): Transport {
  // A frame flagged BODY_NEXT ends its batch and its body is the next message: passed as is if
  // the tap kept the head (as the last frame), dropped with it otherwise.
  const bodyNext = { in: undefined as boolean | undefined, out: undefined as boolean | undefined };
  const rewrite = (data: Uint8Array, fn: (f: Frame) => Frame[], dir: 'in' | 'out'): Uint8Array | undefined => {
    const pending = bodyNext[dir];
    if (pending !== undefined) {
      bodyNext[dir] = undefined;
      return pending ? data : undefined;
    }
    const frames: Frame[] = [];
    let head = false;
    decodeBatch(data, Number.MAX_SAFE_INTEGER, (f) => {
      if (f.flags & BODY_NEXT) head = true;
      frames.push(...fn(f));
    });
    if (head) bodyNext[dir] = frames.length > 0 && (frames.at(-1)!.flags & BODY_NEXT) !== 0;
    return frames.length > 0 ? encodeBatch(frames) : undefined;
  };
  return {
    get status() {
      return inner.status;
    },
    get bufferedAmount() {
      return inner.bufferedAmount;
    },
    send(data: Uint8Array): boolean {
      if (!tap.out) return inner.send(data);
      const batch = rewrite(data, tap.out, 'out');
      return batch ? inner.send(batch) : true;
    },
    listen(h: TransportHandlers): void {
      inner.listen({
        message: (data) => {
          if (!tap.in) return h.message(data);
          const batch = rewrite(data, tap.in, 'in');
          if (batch) h.message(batch);
        },
        drain: () => h.drain(),
        close: (info: CloseInfo) => h.close(info),
      });
    },
    pause: () => inner.pause(),
    resume: () => inner.resume(),
    close: (info?: Partial<CloseInfo>) => inner.close(info),
  };
}

/**
 * A client speaking raw frames to a Router (no Peer): it records every frame the Router sends
 * it and how its transport closed.
 */
export class RawClient {
  readonly frames: Frame[] = [];
  closeInfo: CloseInfo | undefined;
  readonly closed: Promise<CloseInfo>;
  readonly transport: Transport;
  #head: Frame | undefined;

  constructor(router: Router) {
    const [client, server] = memoryTransportPair();
    router.accept(server);
    this.transport = client;
    this.closed = new Promise((resolve) =>
      client.listen({
        message: (d) => {
          // A frame flagged BODY_NEXT gets the next message as its body.
          const head = this.#head;
          if (head) {
            this.#head = undefined;
            head.body = d;
            return;
          }
          decodeBatch(d, Number.MAX_SAFE_INTEGER, (f) => {
            this.frames.push(f);
            if (f.flags & BODY_NEXT) {
              f.flags &= ~BODY_NEXT;
              this.#head = f;
            }
          });
        },
        drain: () => {},
        close: (info) => {
          this.closeInfo = info;
          resolve(info);
        },
      }),
    );
  }

  send(...frames: Frame[]): void {
    this.transport.send(encodeBatch(frames));
  }

  /** Frames of one kind received so far. */
  of<K extends Frame['kind']>(kind: K): Extract<Frame, { kind: K }>[] {
    return this.frames.filter((f): f is Extract<Frame, { kind: K }> => f.kind === kind);
  }
}

/**
 * A transport factory over memory pairs to a Router, for peers that reconnect. It keeps every
 * router end it made (to cut a link from the relay's side) and can fail or wait on demand.
 */
export class Dial {
  /** The router end of each link made, oldest first. */
  readonly servers: Transport[] = [];
  /** How many times the factory was called. */
  calls = 0;
  /** While true, each call rejects (as a refused socket would). */
  failing = false;
  /** While set, each call waits for it first. */
  gate: Promise<void> | undefined;
  constructor(
    readonly router: Router,
    /** Wraps the client end the peer gets (a tap, a severable link); `n` counts calls from 1. */
    readonly wrap: (client: Transport, n: number) => Transport = (client) => client,
  ) {}

  readonly factory: TransportFactory = async () => {
    const n = ++this.calls;
    if (this.gate) await this.gate;
    if (this.failing) throw new Error(`dial ${n} refused`);
    const [client, server] = memoryTransportPair();
    this.router.accept(server);
    this.servers.push(server);
    return this.wrap(client, n);
  };

  /** Drops the newest link from the router's side, as a dead socket would. */
  cut(reason = 'cut'): void {
    this.servers.at(-1)!.close({ code: CloseCode.ABNORMAL, reason });
  }
}
