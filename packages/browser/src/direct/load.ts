/**
 * Loads simple-peer on the first direct link, by a dynamic `import()`: a bundler puts it in a
 * chunk of its own, which an application that never goes direct never downloads.
 *
 * The module loaded is simple-peer's prebuilt browser bundle (`simplepeer.min.js`, browserify
 * output with its own `buffer`, `events`, `readable-stream` and `process`), so the application's
 * bundler needs no Node polyfill, `define` or shim. The same file runs in Node, given a `wrtc`.
 */
/// <reference path="./simple-peer-module.d.ts" />

/** simple-peer's constructor options that a direct link uses. */
export interface SimplePeerOptions {
  initiator: boolean;
  config: RTCConfiguration;
  trickle: boolean;
  objectMode: boolean;
  channelName: string;
  wrtc?: object;
}

/** The part of a simple-peer 9 instance a direct link uses. */
export interface SimplePeerInstance {
  signal(data: object): void;
  send(data: Uint8Array): void;
  destroy(): void;
  readonly destroyed: boolean;
  on(event: 'signal' | 'data', fn: (data: unknown) => void): unknown;
  on(event: 'connect' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error & { code?: string }) => void): unknown;
  on(event: 'iceStateChange', fn: (iceConnectionState: string, iceGatheringState: string) => void): unknown;
  /**
   * simple-peer 9's peer connection and data channel (set once `connect` fired). Not public API:
   * read for the channel's `bufferedamountlow` event and the SCTP max message size, which
   * simple-peer does not expose. The version is pinned; `openDirect` checks they exist.
   */
  readonly _pc?: RTCPeerConnection | null;
  readonly _channel?: RTCDataChannel | null;
}

export type SimplePeerConstructor = new (options: SimplePeerOptions) => SimplePeerInstance;

let loading: Promise<SimplePeerConstructor> | undefined;

/** simple-peer's constructor, imported once per page (a failed import is tried again next time). */
export function loadSimplePeer(): Promise<SimplePeerConstructor> {
  loading ??= import('simple-peer/simplepeer.min.js').then(
    (mod: { default: unknown }) => {
      // A CommonJS module: bundlers and Node give module.exports as `default`.
      const ctor: unknown = typeof mod.default === 'function' ? mod.default : mod;
      if (typeof ctor !== 'function') throw new TypeError('simple-peer/simplepeer.min.js did not export a constructor');
      return ctor as SimplePeerConstructor;
    },
    (err: unknown) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}
