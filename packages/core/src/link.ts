/**
 * A link is one Connection to a Router after a completed handshake. `openLink` sends HELLO and
 * resolves at WELCOME; frames that arrive with or right after WELCOME (held messages, for
 * example) are kept until the owner attaches, so none is lost between the two.
 */
import { frame, Kind, kindName, PROTOCOL_VERSION, type Frame, type FrameOf } from './codec/frames.js';
import { Connection } from './connection.js';
import { ClosedError, errorFromCode, ProtocolError, TimeoutError } from './errors.js';
import type { CloseInfo, Transport } from './transport/transport.js';
import { CloseCode } from './transport/transport.js';

/** What the owner of a link is told once attached. */
export interface LinkSink {
  frame(f: Frame): void;
  protocolError(err: ProtocolError): void;
  drain(): void;
  close(info: CloseInfo, bye: { code: string; message: string } | undefined): void;
}

export interface HelloFields {
  name: string;
  namespace: string;
  secret: string;
  token: string;
  session: string;
}

export interface Link {
  conn: Connection;
  welcome: FrameOf<typeof Kind.Welcome>;
  /** Starts delivering to `sink` (first whatever arrived since WELCOME). */
  attach(sink: LinkSink): void;
}

/**
 * Handshakes over `transport`. Rejects with AuthError, NameTakenError, LimitError,
 * ProtocolError (from the relay's BYE), TimeoutError, or ClosedError with the cause.
 */
export function openLink(transport: Transport, hello: HelloFields, timeout: number): Promise<Link> {
  return new Promise<Link>((resolve, reject) => {
    let sink: LinkSink | undefined;
    let welcomed = false;
    let bye: { code: string; message: string } | undefined;
    const early: Frame[] = [];
    let closedEarly: CloseInfo | undefined;
    const fail = (err: Error): void => {
      clearTimeout(timer);
      conn.close(CloseCode.NORMAL, 'handshake failed');
      reject(err);
    };
    const timer = setTimeout(() => fail(new TimeoutError('handshake timed out')), timeout);
    const conn: Connection = new Connection(transport, {
      frame: (f) => {
        // The relay's BYE says why it is about to close: kept for the close that follows.
        if (f.kind === Kind.Bye) bye = { code: f.code, message: f.message };
        if (sink) return sink.frame(f);
        if (welcomed) {
          early.push(f);
          return;
        }
        if (f.kind === Kind.Welcome) {
          welcomed = true;
          clearTimeout(timer);
          resolve({
            conn,
            welcome: f,
            attach(s) {
              sink = s;
              for (const e of early.splice(0)) s.frame(e);
              if (closedEarly) s.close(closedEarly, bye);
            },
          });
        } else if (f.kind !== Kind.Bye) fail(new ProtocolError(`${kindName(f.kind)} before WELCOME`));
      },
      protocolError: (err) => (sink ? sink.protocolError(err) : welcomed ? conn.close(CloseCode.PROTOCOL, err.reason.slice(0, 120)) : fail(err)),
      drain: () => sink?.drain(),
      close: (info) => {
        if (sink) return sink.close(info, bye);
        if (welcomed) {
          closedEarly = info;
          return;
        }
        clearTimeout(timer);
        reject(bye ? errorFromCode(bye.code, bye.message) : new ClosedError(`connection closed during handshake: ${info.reason || info.code}`, { cause: info.error }));
      },
    });
    conn.write(frame(Kind.Hello, { version: PROTOCOL_VERSION, ...hello }));
  });
}
