/**
 * Groups and presence at the peer: joining and leaving groups (memberships the relay restores
 * after a reconnection), broadcasting to a group, the list of named peers, and the presence
 * watch behind the `peer-join` / `peer-leave` events.
 */
import { decode as msgpackDecode } from '@msgpack/msgpack';
import { checkAddress, checkName } from '../address.js';
import { encodeBody } from '../codec/body.js';
import { BodyCodec, frame, Kind, PresenceEvent, type FrameOf } from '../codec/frames.js';
import { ClosedError, ProtocolError } from '../errors.js';
import type { PeerPart, PeerPort } from './port.js';
import type { Registrations } from './registrations.js';
import type { PeerInfo } from './types.js';

export class Groups implements PeerPart {
  readonly #port: PeerPort;
  readonly #regs: Registrations;
  readonly #joined = new Set<string>();
  #watching = false;

  constructor(port: PeerPort, regs: Registrations) {
    this.#port = port;
    this.#regs = regs;
  }

  /** See `Peer.join`. */
  join(group: string): Promise<void> {
    const bad = checkName(group, 'group');
    if (bad) return Promise.reject(new TypeError(bad));
    this.#joined.add(group);
    return this.#regs.register(`join:${group}`, (ref) => frame(Kind.Join, { ref, group }), () => this.#joined.delete(group));
  }

  /** See `Peer.leave`. */
  leave(group: string): Promise<void> {
    const bad = checkName(group, 'group');
    if (bad) return Promise.reject(new TypeError(bad));
    this.#joined.delete(group);
    return this.#regs.unregister(`join:${group}`, (ref) => frame(Kind.Leave, { ref, group }));
  }

  /** See `Peer.broadcast`. */
  broadcast(group: string, body: unknown): void {
    const bad = checkAddress(group);
    if (bad) throw new TypeError(bad);
    const port = this.#port;
    if (port.closedError) throw new ClosedError('peer is closed');
    const { bytes, codec } = encodeBody(body, port.codec, true);
    port.write(frame(Kind.Bcast, { ref: 0, to: group, from: '' }, bytes, codec));
    const t = port.tracer;
    if (t.on) t.emit({ type: 'send', kind: 'Bcast', to: group, size: bytes.length, at: Date.now() });
  }

  /** See `Peer.peers`. */
  async peers(): Promise<PeerInfo[]> {
    const { body, flags } = await this.#regs.control((ref) => frame(Kind.Peers, { ref }));
    const list = flags === BodyCodec.Msgpack ? msgpackDecode(body) : undefined;
    if (!Array.isArray(list)) throw new ProtocolError('PEERS reply is not a list');
    return list as PeerInfo[];
  }

  /** Asks the relay for presence events (once; restored after reconnections). */
  watch(): void {
    this.#watching = true;
    this.#regs.register('watch', (ref) => frame(Kind.Watch, { ref, on: 1 })).catch(() => {});
  }

  onPresence(f: FrameOf<typeof Kind.Presence>): void {
    const e = { name: f.name, id: f.id };
    if (f.event === PresenceEvent.Join) this.#port.emit('peer-join', e);
    else if (f.event === PresenceEvent.Leave) this.#port.emit('peer-leave', e);
  }

  inspect(): { groups: string[]; watching: boolean } {
    return { groups: [...this.#joined], watching: this.#watching };
  }
}
