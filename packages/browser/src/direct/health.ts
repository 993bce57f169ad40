/**
 * How a direct link notices that its path died when nothing closes it: a grace period for ICE
 * `disconnected`, a stall check on outgoing bytes, and an idle check on incoming traffic (kept
 * alive by pings). Handed a narrow port, so it is tested with fake timers and no WebRTC.
 */

/** The checks that end a link; each surfaces as a close of that kind. */
export type HealthFailure = 'ice-disconnected' | 'stalled' | 'idle';

export interface HealthOptions {
  /** ms ICE may stay `disconnected` before the link is declared dead; 0 = at once. */
  graceMs: number;
  /** ms queued bytes may go without any of them leaving before the link is declared stalled; 0 = never. */
  stallMs: number;
  /** ms without sending anything after which a ping is sent; 0 = never. */
  keepaliveMs: number;
  /** ms without receiving anything before the link is declared dead; 0 = never. */
  idleTimeoutMs: number;
}

export interface HealthPort {
  /** Bytes the data channel has sent so far (taken by the channel minus still buffered in it). */
  sentBytes(): number;
  /** Bytes waiting to leave: queued before the channel and buffered in it. */
  queuedBytes(): number;
  /** Sends a ping now, if the link can (nothing half-sent in the way). */
  ping(): void;
  fail(kind: HealthFailure, message: string): void;
}

/** The periodic check runs at a quarter of the shortest bound, within these limits (ms). */
const MIN_TICK = 25;
const MAX_TICK = 1000;

export class LinkHealth {
  readonly #o: HealthOptions;
  readonly #port: HealthPort;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #tick: ReturnType<typeof setInterval> | undefined;
  #lastSentAt = 0;
  #lastReceivedAt = 0;
  #lastProgressAt = 0;
  #lastSentBytes = 0;
  #stopped = false;

  constructor(options: HealthOptions, port: HealthPort) {
    this.#o = options;
    this.#port = port;
  }

  /** Feeds each ICE connection state. `disconnected` starts the grace period; `connected` or `completed` ends it. */
  iceState(state: string): void {
    if (this.#stopped) return;
    if (state === 'disconnected') {
      if (this.#graceTimer !== undefined) return;
      const ms = this.#o.graceMs;
      this.#graceTimer = setTimeout(() => {
        this.#graceTimer = undefined;
        this.#port.fail('ice-disconnected', `ICE stayed disconnected for ${ms} ms`);
      }, ms);
    } else if (state === 'connected' || state === 'completed') {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
    }
  }

  /** Whether a grace period is running. */
  get inGrace(): boolean {
    return this.#graceTimer !== undefined;
  }

  /** Something came in from the remote. */
  received(): void {
    this.#lastReceivedAt = performance.now();
  }

  /** Something was handed to the channel. */
  sent(): void {
    this.#lastSentAt = performance.now();
  }

  /** Starts the stall and idle checks (when the channel opens). */
  start(): void {
    if (this.#stopped || this.#tick !== undefined) return;
    const now = performance.now();
    this.#lastSentAt = this.#lastReceivedAt = this.#lastProgressAt = now;
    this.#lastSentBytes = this.#port.sentBytes();
    const bounds = [this.#o.stallMs, this.#o.keepaliveMs, this.#o.idleTimeoutMs].filter((ms) => ms > 0);
    if (bounds.length === 0) return;
    const period = Math.min(MAX_TICK, Math.max(MIN_TICK, Math.min(...bounds) / 4));
    this.#tick = setInterval(this.#check, period);
  }

  /** Stops every timer; nothing is reported afterwards. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#graceTimer);
    clearInterval(this.#tick);
    this.#graceTimer = this.#tick = undefined;
  }

  readonly #check = (): void => {
    const now = performance.now();
    const { stallMs, keepaliveMs, idleTimeoutMs } = this.#o;
    if (stallMs > 0) {
      const sent = this.#port.sentBytes();
      const queued = this.#port.queuedBytes();
      if (sent !== this.#lastSentBytes || queued === 0) {
        this.#lastSentBytes = sent;
        this.#lastProgressAt = now;
      } else if (now - this.#lastProgressAt >= stallMs) {
        this.#port.fail('stalled', `stalled: ${queued} bytes queued and none sent for ${Math.round(now - this.#lastProgressAt)} ms`);
        return;
      }
    }
    if (idleTimeoutMs > 0 && now - this.#lastReceivedAt >= idleTimeoutMs) {
      this.#port.fail('idle', `nothing received for ${Math.round(now - this.#lastReceivedAt)} ms`);
      return;
    }
    if (keepaliveMs > 0 && now - this.#lastSentAt >= keepaliveMs) this.#port.ping();
  };
}
