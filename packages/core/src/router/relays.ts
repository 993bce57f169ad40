/**
 * The relay's side of a cluster (docs/scaling.md): it joins the bus, keeps the registry's
 * replica of the other relays current, carries frames for peers on other relays, and hands the
 * frames other relays send here to the part that owns their kind.
 */
import { decodeFrame, Kind, type Frame } from '../codec/frames.js';
import { ErrorCode } from '../errors.js';
import { CloseCode } from '../transport/transport.js';
import { decodeBus, encodeBus, encodeData, Msg, type ClusterBus, type ClusterRegistry } from './cluster.js';
import type { Conn } from './conn.js';
import type { Forwarding } from './forwarding.js';
import type { RouterPart, RouterPort } from './port.js';
import type { PubSub } from './pubsub.js';
import type { Tunnels } from './tunnels.js';
import type { RemotePeer } from './registry.js';

/** A relay's view of its cluster (`Router.inspect().cluster`). */
export interface ClusterSnapshot {
  /** This relay's id. */
  relay: string;
  /** Whether the backplane is reachable. */
  healthy: boolean;
  /** Frames, publishes and broadcasts carried to other relays, and received from them. */
  sent: number;
  received: number;
  /** Peers on each other relay, as this relay's replica knows them. */
  peersByRelay: Record<string, number>;
  /** Other relays with at least one subscription. */
  subscribedRelays: number;
}

/** What the cluster part reaches of the Router besides its port. */
export interface RelaysDeps {
  forwarding: Forwarding;
  pubsub: PubSub;
  tunnels: Tunnels;
  /** The cluster's health changed (logged, and shown in /healthz). */
  health(ok: boolean, reason: string): void;
}

export class Relays implements RouterPart {
  readonly kinds = [] as const;
  readonly #port: RouterPort;
  readonly #bus: ClusterBus;
  readonly #registry: ClusterRegistry<Conn>;
  readonly #deps: RelaysDeps;
  /** Frames and publishes carried to other relays, and received from them. */
  sent = 0;
  received = 0;

  constructor(port: RouterPort, bus: ClusterBus, registry: ClusterRegistry<Conn>, deps: RelaysDeps) {
    this.#port = port;
    this.#bus = bus;
    this.#registry = registry;
    this.#deps = deps;
  }

  get relay(): string {
    return this.#bus.relay;
  }

  get healthy(): boolean {
    return this.#bus.healthy;
  }

  start(): Promise<void> {
    return this.#bus.start({
      message: (from, data) => this.#message(from, data),
      relayDown: (relay) => {
        this.#registry.relayDown(relay);
        this.#deps.tunnels.relayDown(relay);
      },
      health: (ok, reason) => this.#deps.health(ok, reason),
      rejoined: () => void this.#bus.broadcast(encodeBus(this.#registry.state())),
      nameLost: (ns, name, id) => {
        const c = this.#registry.localSpace(ns)?.route(id);
        if (c && c.kind === 'local') this.#port.kick(c, CloseCode.NAME_TAKEN, ErrorCode.NAME_TAKEN, `name "${name}" was taken over by another relay while this relay was cut off from the backplane`);
      },
    });
  }

  /** Carries `f` (its `from` stamped) to `to` on its relay. False when the bus cannot take it. */
  forward(namespace: string, to: RemotePeer, f: Frame): boolean {
    const ok = this.#bus.send(to.relay, encodeData(Msg.Frame, namespace, to.id, f));
    if (ok) this.sent++;
    return ok;
  }

  /** A publish, once to each relay with a subscriber for its topic. */
  publish(namespace: string, relays: Iterable<string>, f: Frame): number {
    let unit: Uint8Array | undefined;
    let n = 0;
    for (const relay of relays) {
      unit ??= encodeData(Msg.Pub, namespace, '', f);
      if (this.#bus.send(relay, unit)) n++;
    }
    this.sent += n;
    return n;
  }

  /** A broadcast, once to each relay with a member of the group. */
  broadcast(namespace: string, group: string, relays: Iterable<string>, f: Frame): number {
    let unit: Uint8Array | undefined;
    let n = 0;
    for (const relay of relays) {
      unit ??= encodeData(Msg.Bcast, namespace, group, f);
      if (this.#bus.send(relay, unit)) n++;
    }
    this.sent += n;
    return n;
  }

  #message(from: string, data: Uint8Array): void {
    const m = decodeBus(data);
    if (!m) return;
    this.received++;
    try {
      switch (m[0]) {
        case Msg.Hello:
          this.#bus.send(from, encodeBus(this.#registry.state()));
          return;
        case Msg.Frame: {
          const [, ns, id, unit] = m;
          const f = decodeFrame(unit, 4, unit.length);
          if (f.kind >= Kind.TOpen && f.kind <= Kind.TClose) return this.#deps.tunnels.inbound(from, ns, id, f, unit);
          return this.#deps.forwarding.inbound(from, ns, id, f, unit);
        }
        case Msg.Pub: {
          const [, ns, unit] = m;
          return this.#deps.pubsub.inboundPub(ns, decodeFrame(unit, 4, unit.length));
        }
        case Msg.Bcast: {
          const [, ns, group, unit] = m;
          return this.#deps.pubsub.inboundBcast(ns, group, decodeFrame(unit, 4, unit.length));
        }
        case Msg.Kick: {
          const [, ns, id, reason] = m;
          const c = this.#registry.localSpace(ns)?.route(id);
          if (c && c.kind === 'local') this.#port.kick(c, CloseCode.REPLACED, ErrorCode.CLOSED, reason);
          return;
        }
        default:
          this.#registry.apply(from, m);
      }
    } catch {
      // A malformed message from another relay is dropped; it cannot reach a peer.
    }
  }

  /** The cluster as this relay sees it, for `Router.inspect()`. */
  inspect(): ClusterSnapshot {
    return {
      relay: this.#bus.relay,
      healthy: this.#bus.healthy,
      sent: this.sent,
      received: this.received,
      peersByRelay: Object.fromEntries(this.#registry.remotePeers()),
      subscribedRelays: this.#registry.subscribedRelays(),
    };
  }

  close(): Promise<void> {
    return this.#bus.close();
  }
}
