/**
 * `webrtcConnector`: the Peer's DirectConnector over `openDirect`, so a Peer (`connect` passes
 * one under `direct: 'auto'`) upgrades traffic to another peer to a WebRTC data channel, the
 * relay carrying the signalling.
 *
 * `openDirect` itself (the link, its session and chunking) is imported on the first attempt, in
 * a chunk of its own next to simple-peer's, so an app that never goes direct ships only this glue.
 */
import { ClosedError, type DirectAttempt, type DirectConnector } from '@missive/core';
import type { DirectLinkOptions } from './config.js';
import type { DirectLink } from './open.js';

/** The options of every link a connector opens (`initiator` and `signal` are the Peer's). */
export type ConnectorOptions = Omit<DirectLinkOptions, 'initiator' | 'signal'>;

/** Signalling kept while `openDirect` loads; more than a negotiation sends is a flood, dropped. */
const MAX_EARLY_SIGNALS = 256;

/**
 * A DirectConnector opening each link with `openDirect(options)`. A function `iceServers` is
 * called on every attempt, so TURN credentials are fresh.
 */
export function webrtcConnector(options: ConnectorOptions = {}): DirectConnector {
  return {
    open(_remote, { initiator, signal }): DirectAttempt {
      let link: DirectLink | undefined;
      let given = false;
      const early: unknown[] = [];
      const ready = import('./open.js').then(({ openDirect }) => {
        if (given) throw new ClosedError('direct attempt given up');
        link = openDirect({ ...options, initiator, signal: (data) => signal(data) });
        for (const data of early.splice(0)) link.signal(data);
        return link.ready;
      });
      return {
        signal: (data) => {
          if (link) link.signal(data);
          else if (!given && early.length < MAX_EARLY_SIGNALS) early.push(data);
        },
        ready,
        close: () => {
          given = true;
          early.length = 0;
          link?.close({ code: 1000, reason: 'attempt given up' });
        },
      };
    },
  };
}
