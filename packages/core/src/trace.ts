/** Trace events: every send, receive, forward, drop and ack, from a Peer or the Router. */

export type TraceType = 'send' | 'receive' | 'forward' | 'drop' | 'ack';

export interface TraceEvent {
  type: TraceType;
  /** Frame kind name: `Msg`, `Req`, `Rep`, `Pub`, `Bcast`, `Ack`. */
  kind: string;
  /** Message id (`send`), request id, or topic. */
  id?: string;
  from?: string;
  to?: string;
  /** Body bytes. */
  size?: number;
  /** Why a frame was dropped, as an error code (`NO_ROUTE`, `LIMIT`, …). */
  reason?: string;
  /** Milliseconds since the epoch. */
  at: number;
}
