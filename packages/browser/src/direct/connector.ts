/**
 * `webrtcConnector`: the Peer's DirectConnector over `openDirect`, so a Peer (`connect` passes
 * one under `direct: 'auto'`) upgrades traffic to another peer to a WebRTC data channel, the
 * relay carrying the signalling.
 */
import type { DirectAttempt, DirectConnector } from '@missive/core';
import type { DirectLinkOptions } from './config.js';
import { openDirect } from './open.js';

/** The options of every link a connector opens (`initiator` and `signal` are the Peer's). */
export type ConnectorOptions = Omit<DirectLinkOptions, 'initiator' | 'signal'>;

/**
 * A DirectConnector opening each link with `openDirect(options)`. A function `iceServers` is
 * called on every attempt, so TURN credentials are fresh.
 */
export function webrtcConnector(options: ConnectorOptions = {}): DirectConnector {
  return {
    open(_remote, { initiator, signal }): DirectAttempt {
      const link = openDirect({ ...options, initiator, signal: (data) => signal(data) });
      return {
        signal: (data) => link.signal(data),
        ready: link.ready,
        close: () => link.close({ code: 1000, reason: 'attempt given up' }),
      };
    },
  };
}
