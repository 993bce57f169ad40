/**
 * Type tests for direct links in @missive/browser (and its `./direct` entry). Checked by
 * `tsc -p packages/browser/tsconfig.json` (strict); never run. Each `@ts-expect-error` marks a
 * misuse the types must reject.
 */
import {
  directSupported,
  openDirect,
  DIRECT_LINK_DEFAULTS,
  type DirectCloseInfo,
  type DirectCloseKind,
  type DirectLink,
  type DirectLinkOptions,
  type DirectLinkState,
  type DirectLinkStats,
  type DirectSignal,
  type Transport,
} from '@missive/browser';
import { openDirect as openDirectInNode, type WrtcImplementation } from '@missive/browser/direct';

export async function links(fromTheOtherEnd: unknown, wrtc: WrtcImplementation): Promise<void> {
  const sent: DirectSignal[] = [];
  const link: DirectLink = openDirect({ initiator: true, signal: (data) => void sent.push(data) });
  link.signal(fromTheOtherEnd);
  const t: Transport = await link.ready;
  const info: DirectCloseInfo = await link.closed;
  const kind: DirectCloseKind = info.kind;
  const code: number = info.code;
  const state: DirectLinkState = link.state;
  const stats: DirectLinkStats = link.stats();
  const off: () => void = link.on('ice', (s: string) => void s);
  link.on('close', (i) => void i.kind);
  off();
  void [t, kind, code, state, stats];

  const options: DirectLinkOptions = {
    initiator: false,
    signal: async (data) => {
      if (data.type === 'candidate') void data.candidate.candidate;
      else void data.sdp;
    },
    iceServers: async () => [{ urls: 'turn:turn.example:3478', username: 'u', credential: 'c' }],
    timeoutMs: DIRECT_LINK_DEFAULTS.timeoutMs,
    graceMs: 5000,
    stallMs: 0,
    keepaliveMs: 5000,
    idleTimeoutMs: 20_000,
    highWaterMark: 1 << 20,
    maxMessageBytes: 16 << 20,
    chunkSize: 16 * 1024,
  };
  openDirect(options).close({ code: 4000, reason: 'no longer needed' });
  openDirectInNode({ initiator: true, signal: () => {}, wrtc, iceServers: [] });
  const can: boolean = directSupported(wrtc) || directSupported();
  void can;

  // @ts-expect-error initiator is required
  openDirect({ signal: () => {} });
  // @ts-expect-error signal is required
  openDirect({ initiator: true });
  // @ts-expect-error ICE servers are RTCIceServer objects
  openDirect({ initiator: true, signal: () => {}, iceServers: ['stun:stun.example'] });
  // @ts-expect-error a wrtc is a WebRTC implementation, not any object
  openDirect({ initiator: true, signal: () => {}, wrtc: {} });
  // @ts-expect-error the transport comes from ready, not from the link itself
  link.send(new Uint8Array(1));
  // @ts-expect-error no such event
  link.on('message', () => {});
}
