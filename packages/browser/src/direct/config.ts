/** The options of `openDirect`, their defaults and their validation, in one place. */
import type { DirectSignal } from './signal.js';

/** ICE servers, or a function giving them (called on every attempt, so TURN credentials are fresh). */
export type IceServersOption = RTCIceServer[] | (() => RTCIceServer[] | Promise<RTCIceServer[]>);

/**
 * A WebRTC implementation for environments without one (Node): an object with the three
 * constructors simple-peer uses, such as the `@roamhq/wrtc` module.
 */
export interface WrtcImplementation {
  RTCPeerConnection: new (...args: never[]) => unknown;
  RTCSessionDescription: new (...args: never[]) => unknown;
  RTCIceCandidate: new (...args: never[]) => unknown;
}

export interface DirectLinkOptions {
  /** True on exactly one of the two ends: it creates the data channel and sends the offer. */
  initiator: boolean;
  /**
   * Called with each signalling message for the other end, to be handed to its
   * `link.signal(data)` in order. The messages are plain JSON-able objects. A throw or a rejected
   * promise ends the link (kind `error`).
   */
  signal: (data: DirectSignal) => void | Promise<void>;
  /**
   * STUN/TURN servers. Without any, only host candidates are tried (two ends on one machine or
   * one network). A function is called once per `openDirect`.
   * @default []
   */
  iceServers?: IceServersOption;
  /** A WebRTC implementation where there is no global `RTCPeerConnection` (Node: `@roamhq/wrtc`). */
  wrtc?: WrtcImplementation;
  /** ms from `openDirect` (ICE servers and simple-peer's loading included) until the channel must be open; 0 = no bound. @default 15000 */
  timeoutMs?: number;
  /** ms ICE may stay `disconnected` before the link is declared dead (it often comes back). @default 5000 */
  graceMs?: number;
  /** ms queued bytes may go without any of them leaving before the link is declared stalled; 0 = never. @default 10000 */
  stallMs?: number;
  /** ms without sending anything after which a ping is sent; 0 = never (the other end's `idleTimeoutMs` must then be 0 too). @default 5000 */
  keepaliveMs?: number;
  /** ms without receiving anything (data or ping) before the link is declared dead; 0 = never. @default 20000 */
  idleTimeoutMs?: number;
  /** Bytes queued (by the link and in the data channel) above which `send` returns false. @default 1048576 */
  highWaterMark?: number;
  /** Largest transport message sent or reassembled; a larger one announced by the other end closes the link (`too-big`). @default 16777216 */
  maxMessageBytes?: number;
  /** Largest data channel message this end sends, lowered to the channel's SCTP max message size. @default 65536 */
  chunkSize?: number;
}

/** The defaults of the optional DirectLinkOptions. */
export const DIRECT_LINK_DEFAULTS = {
  timeoutMs: 15_000,
  graceMs: 5_000,
  stallMs: 10_000,
  keepaliveMs: 5_000,
  idleTimeoutMs: 20_000,
  highWaterMark: 1024 * 1024,
  maxMessageBytes: 16 * 1024 * 1024,
  chunkSize: 64 * 1024,
} as const;

/** The smallest chunk accepted: a FIRST's 5-byte header must leave room for data. */
export const MIN_CHUNK = 64;

export type ResolvedLinkOptions = Required<Omit<DirectLinkOptions, 'wrtc' | 'iceServers'>> & Pick<DirectLinkOptions, 'wrtc'> & { iceServers: IceServersOption };

/** The options with defaults filled in; throws TypeError or RangeError for a bad one. */
export function resolveLinkOptions(options: DirectLinkOptions): ResolvedLinkOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('openDirect() needs an options object');
  if (typeof options.initiator !== 'boolean') throw new TypeError('initiator must be true or false');
  if (typeof options.signal !== 'function') throw new TypeError('signal must be a function that carries signalling data to the other end');
  const ice = options.iceServers ?? [];
  if (!Array.isArray(ice) && typeof ice !== 'function') throw new TypeError('iceServers must be an array of RTCIceServer or a function returning one');
  const wrtc = options.wrtc;
  if (wrtc !== undefined && (wrtc === null || typeof wrtc !== 'object' || typeof wrtc.RTCPeerConnection !== 'function')) {
    throw new TypeError('wrtc must be a WebRTC implementation with RTCPeerConnection, RTCSessionDescription and RTCIceCandidate (such as @roamhq/wrtc)');
  }
  const out: ResolvedLinkOptions = {
    initiator: options.initiator,
    signal: options.signal,
    iceServers: ice,
    timeoutMs: count('timeoutMs', options.timeoutMs, DIRECT_LINK_DEFAULTS.timeoutMs, 0),
    graceMs: count('graceMs', options.graceMs, DIRECT_LINK_DEFAULTS.graceMs, 0),
    stallMs: count('stallMs', options.stallMs, DIRECT_LINK_DEFAULTS.stallMs, 0),
    keepaliveMs: count('keepaliveMs', options.keepaliveMs, DIRECT_LINK_DEFAULTS.keepaliveMs, 0),
    idleTimeoutMs: count('idleTimeoutMs', options.idleTimeoutMs, DIRECT_LINK_DEFAULTS.idleTimeoutMs, 0),
    highWaterMark: count('highWaterMark', options.highWaterMark, DIRECT_LINK_DEFAULTS.highWaterMark, 0),
    maxMessageBytes: count('maxMessageBytes', options.maxMessageBytes, DIRECT_LINK_DEFAULTS.maxMessageBytes, 1, 0xffffffff),
    chunkSize: count('chunkSize', options.chunkSize, DIRECT_LINK_DEFAULTS.chunkSize, MIN_CHUNK),
  };
  if (wrtc) out.wrtc = wrtc;
  return out;
}

function count(name: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  return value;
}
