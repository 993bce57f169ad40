/**
 * What an inspectable peer (`inspect: true`) answers to the relay's control requests: `$inspect`
 * (a summary for the peers table, or the whole snapshot with the first messages of each
 * mailbox) and `$purge` (empty a mailbox). Requests.ts lets only the relay call them. A body
 * leaves the peer only if the peer allows bodies and the relay asked for them (`peek` > 0, which
 * it does only for an admin whose rights include bodies); large bodies are cut, and the answer
 * is made to fit in one frame.
 */
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { ErrorCode, MissiveError } from '../errors.js';
import type { Mailbox, Message } from '../mailbox.js';
import type { ControlHandler } from './requests.js';
import type { PeerSnapshot } from './snapshot.js';
import type { InspectOptions } from './types.js';

/** Most messages peeked per mailbox, whatever the relay asks. */
export const PEEK_MAX = 50;
/** A peeked body larger than this (encoded) is replaced by a note of its size; binary is cut to it. */
export const PEEK_BODY_MAX = 4096;

export interface InspectionDeps {
  snapshot(peek: number): PeerSnapshot;
  /** The mailbox on `port`, if the peer has one. */
  mailbox(port: string): Mailbox | undefined;
  /** The largest frame the link takes. */
  maxFrame(): number;
}

/** A body as the devtools show it: itself, or a cut or a note when it is large. */
function shown(body: unknown): unknown {
  if (body instanceof Uint8Array) return body.length <= PEEK_BODY_MAX ? body : { truncated: true, bytes: body.length, head: body.slice(0, PEEK_BODY_MAX) };
  let size: number;
  try {
    size = msgpackEncode(body, { ignoreUndefined: true }).length;
  } catch {
    return { unencodable: true };
  }
  return size <= PEEK_BODY_MAX ? body : { truncated: true, bytes: size };
}

export function inspectionControl(options: true | InspectOptions, deps: InspectionDeps): ControlHandler {
  const bodies = options === true || options.bodies !== false;
  return (port, body) => {
    const args = (body ?? {}) as { summary?: unknown; peek?: unknown; mailbox?: unknown };
    if (port === '$inspect') {
      if (args.summary === true) {
        const s = deps.snapshot(0);
        return {
          mailbox: s.inbox.mailboxes.reduce((n, m) => n + m.depth, 0),
          outbox: s.outbox.size,
          direct: s.direct.remotes.filter((r) => r.link === 'direct').length,
        };
      }
      const asked = typeof args.peek === 'number' && args.peek > 0 ? Math.min(Math.floor(args.peek), PEEK_MAX) : 0;
      // Headers always; bodies only when both sides allow them.
      const snap = deps.snapshot(asked);
      const withBodies = bodies && asked > 0;
      const view = (m: Message): Record<string, unknown> => {
        const v: Record<string, unknown> = { id: m.id, from: m.from, to: m.to, sentAt: m.sentAt };
        if (withBodies) v.body = shown(m.body);
        else v.hidden = true;
        return v;
      };
      let keep = asked;
      // Halve the peek until the answer fits in one frame (with room for its header).
      for (;;) {
        const out = { ...snap, bodies: withBodies, inbox: { ...snap.inbox, mailboxes: snap.inbox.mailboxes.map((m) => ({ ...m, messages: m.messages.slice(0, keep).map(view) })) } };
        if (keep === 0 || msgpackEncode(out, { ignoreUndefined: true }).length <= deps.maxFrame() - 1024) return out;
        keep = Math.floor(keep / 2);
      }
    }
    if (port === '$purge') {
      if (typeof args.mailbox !== 'string') throw new MissiveError(ErrorCode.PROTOCOL, 'expected { mailbox: string }');
      const m = deps.mailbox(args.mailbox);
      if (!m) throw new MissiveError(ErrorCode.NO_ROUTE, `no mailbox "${args.mailbox}"`);
      return { purged: m.purge() };
    }
    throw new MissiveError(ErrorCode.NO_ROUTE, `no control port "${port}"`);
  };
}
