/**
 * A PeerPort for testing one part of the Peer alone: it records every frame written, event
 * emitted and error reported, and lets the test say whether the link is up.
 */
import { BodyCodec, type Frame } from '../../src/internal.js';
import { ClosedError, type PeerEvents, type TraceEvent } from '../../src/index.js';
import type { PeerPort } from '../../src/peer/port.js';
import { Tracer } from '../../src/peer/tracer.js';

export interface TestPort extends PeerPort {
  connected: boolean;
  closedError: ClosedError | undefined;
  /** Frames written, in order, with their bodies as they were at the write (only while `connected`; a write while down returns false). */
  readonly written: Frame[];
  readonly events: { type: keyof PeerEvents; event: unknown }[];
  readonly errors: unknown[];
  readonly traces: TraceEvent[];
  /** Events of one type, in order. */
  of<K extends keyof PeerEvents>(type: K): PeerEvents[K][];
  /** Frames of one kind written so far. */
  frames<K extends Frame['kind']>(kind: K): Extract<Frame, { kind: K }>[];
}

export function testPort(options: { connected?: boolean; label?: string; codec?: BodyCodec } = {}): TestPort {
  const traces: TraceEvent[] = [];
  const tracer = new Tracer((e) => traces.push(e));
  tracer.on = true;
  let ref = 1;
  const port: TestPort = {
    connected: options.connected ?? true,
    closedError: undefined,
    written: [],
    events: [],
    errors: [],
    traces,
    tracer,
    codec: options.codec ?? BodyCodec.Msgpack,
    label: options.label ?? 'me',
    id: '~me',
    write(f) {
      if (!port.connected) return false;
      // The real link encodes a frame as it is written, so a body the caller reuses later (a
      // transient one) is read now: keep a copy, as the wire would.
      port.written.push({ ...f, body: f.body.slice() });
      return true;
    },
    reply(f) {
      return port.write(f);
    },
    nextRef: () => ref++,
    error: (err) => port.errors.push(err),
    emit: (type, event) => port.events.push({ type, event }),
    of: <K extends keyof PeerEvents>(type: K) => port.events.filter((e) => e.type === type).map((e) => e.event as PeerEvents[K]),
    frames: <K extends Frame['kind']>(kind: K) => port.written.filter((f): f is Extract<Frame, { kind: K }> => f.kind === kind),
  };
  return port;
}

/** Marks the port closed, as the Peer does before calling `closed()` on its parts. */
export function closePort(port: TestPort, message = 'peer closed'): ClosedError {
  port.closedError = new ClosedError(message);
  port.connected = false;
  return port.closedError;
}
