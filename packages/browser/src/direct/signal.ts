/**
 * Signalling messages of a direct link: what one end's `signal` callback produces and the other
 * end's `link.signal(data)` takes. Plain JSON-able objects (they travel through whatever channel
 * the application chooses, later as missive frames over the relay), checked field by field when
 * they come in, since they come from the network.
 */
import { ProtocolError } from '@missive/core';

/** An SDP offer (from the initiator) or answer (from the other end). */
export interface DirectSdpSignal {
  type: 'offer' | 'answer';
  sdp: string;
}

/** One trickled ICE candidate (`candidate: ''` marks the end of a generation's candidates). */
export interface DirectCandidateSignal {
  type: 'candidate';
  candidate: {
    candidate: string;
    sdpMLineIndex: number | null;
    sdpMid: string | null;
  };
}

/** One signalling message. JSON round trips leave it unchanged. */
export type DirectSignal = DirectSdpSignal | DirectCandidateSignal;

/** Bounds on incoming signalling: a data-only SDP is about 1 KB, a candidate line under 300 bytes. */
export const MAX_SDP_CHARS = 64 * 1024;
export const MAX_CANDIDATE_CHARS = 1024;

/**
 * A fresh DirectSignal holding only the known fields of `data`, or a ProtocolError saying what is
 * wrong with it. `expectSdp` is the SDP type this end may receive (`answer` for the initiator,
 * `offer` for the other end).
 */
export function readSignal(data: unknown, expectSdp: 'offer' | 'answer'): DirectSignal | ProtocolError {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return new ProtocolError('signal data is not an object');
  const d = data as Record<string, unknown>;
  if (d.type === 'offer' || d.type === 'answer') {
    if (d.type !== expectSdp) return new ProtocolError(`unexpected ${d.type}: this end takes an ${expectSdp}`);
    if (typeof d.sdp !== 'string' || d.sdp.length === 0 || d.sdp.length > MAX_SDP_CHARS) {
      return new ProtocolError(`${d.type} needs an sdp string of 1 to ${MAX_SDP_CHARS} characters`);
    }
    return { type: d.type, sdp: d.sdp };
  }
  if (d.type === 'candidate') {
    const c = d.candidate;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) return new ProtocolError('candidate signal has no candidate object');
    const { candidate, sdpMLineIndex, sdpMid } = c as Record<string, unknown>;
    if (typeof candidate !== 'string' || candidate.length > MAX_CANDIDATE_CHARS) {
      return new ProtocolError(`candidate needs a candidate string of at most ${MAX_CANDIDATE_CHARS} characters`);
    }
    if (sdpMLineIndex !== null && sdpMLineIndex !== undefined && !(Number.isInteger(sdpMLineIndex) && (sdpMLineIndex as number) >= 0 && (sdpMLineIndex as number) < 1024)) {
      return new ProtocolError('candidate sdpMLineIndex must be a small integer or null');
    }
    if (sdpMid !== null && sdpMid !== undefined && !(typeof sdpMid === 'string' && sdpMid.length <= 64)) {
      return new ProtocolError('candidate sdpMid must be a short string or null');
    }
    return { type: 'candidate', candidate: { candidate, sdpMLineIndex: (sdpMLineIndex as number | null | undefined) ?? null, sdpMid: (sdpMid as string | null | undefined) ?? null } };
  }
  return new ProtocolError(`unknown signal type ${JSON.stringify(typeof d.type === 'string' ? d.type.slice(0, 32) : d.type ?? null)}`);
}

/** What simple-peer emitted, copied into a DirectSignal (its objects are plain already; this pins the shape). */
export function toSignal(data: unknown): DirectSignal {
  const d = data as { type?: unknown; sdp?: unknown; candidate?: { candidate?: unknown; sdpMLineIndex?: unknown; sdpMid?: unknown } };
  if ((d.type === 'offer' || d.type === 'answer') && typeof d.sdp === 'string') return { type: d.type, sdp: d.sdp };
  if (d.type === 'candidate' && d.candidate && typeof d.candidate.candidate === 'string') {
    const { candidate, sdpMLineIndex, sdpMid } = d.candidate;
    return {
      type: 'candidate',
      candidate: { candidate, sdpMLineIndex: typeof sdpMLineIndex === 'number' ? sdpMLineIndex : null, sdpMid: typeof sdpMid === 'string' ? sdpMid : null },
    };
  }
  // simple-peer emits other kinds only for media renegotiation, which a data-only link never does.
  throw new TypeError(`simple-peer emitted a signal this link does not carry: ${JSON.stringify(d.type ?? null)}`);
}
