/**
 * The handshake: HELLO, the auth hook, the name claim, WELCOME, then the messages held for the
 * name; and the two clocks of a session (the handshake deadline, the credentials' expiry). Also
 * what an auth grant allows.
 */
import { checkName } from '../address.js';
import { ADMIN_NAMESPACE, type AdminAuthHook, type AdminRights } from './admin.js';
import { frame, Kind, PROTOCOL_VERSION, type FrameOf } from '../codec/frames.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import { CloseCode } from '../transport/transport.js';
import type { Conn } from './conn.js';
import { timerDelay } from './limits.js';
import { isThenable, type RouterPart, type RouterPort } from './port.js';
import type { Claim, Registry } from './registry.js';

/** What a connecting peer presents. */
export interface AuthRequest {
  /** Requested name ('' for an anonymous peer). */
  name: string;
  namespace: string;
  /** Shared secret ('' if none). */
  secret: string;
  /** Signed token ('' if none). */
  token: string;
}

/**
 * What an auth hook grants. Omitted lists allow everything; patterns use topic wildcards
 * (`*` one token, `>` the rest).
 */
export interface AuthGrant {
  /** The name the peer gets (must equal a requested name, if one was requested). */
  name?: string;
  namespace?: string;
  /** Group names (patterns) the peer may join. */
  groups?: readonly string[];
  /** Topics (patterns) it may publish to. */
  publish?: readonly string[];
  /** Topic patterns it may subscribe with. */
  subscribe?: readonly string[];
  /** When the grant ends (ms since epoch); the session is then closed with an AUTH reason. */
  expiresAt?: number;
  /**
   * Admin rights: set only by the Router, for a session in the `$admin` namespace that the
   * `adminAuth` hook accepted (an auth hook's own value is ignored).
   */
  admin?: AdminRights;
}

/** Decides whether a peer may connect. Throw (ideally an AuthError) or reject to refuse. */
export type AuthHook = (request: AuthRequest) => AuthGrant | void | Promise<AuthGrant | void>;

/** The grant of a relay without an auth hook: everything. */
export const OPEN_GRANT: AuthGrant = Object.freeze({});

/** What the handshake needs besides the port. */
export interface HandshakeDeps {
  auth: AuthHook | undefined;
  /** Accepts or refuses admin sessions (HELLO in the `$admin` namespace); none: refused. */
  adminAuth: AdminAuthHook | undefined;
  /** Counts an admin session refused. */
  adminRefused(): void;
  registry: Registry<Conn>;
  /** Writes what was held for the connection's name (right after WELCOME). */
  deliverHeld(c: Conn): void | PromiseLike<void>;
  /** The handshake completed: the Router runs the parts' `opened` hooks. */
  opened(c: Conn): void;
  /** Closes a connection for breaking the protocol. */
  fail(c: Conn, err: ProtocolError): void;
}

export class Handshake implements RouterPart {
  /** HELLO is the Router's to hand over (it is the one frame of a connection still in its handshake). */
  readonly kinds = [] as const;
  readonly #port: RouterPort;
  readonly #deps: HandshakeDeps;
  /**
   * Each connection's clock: its handshake deadline, then its credentials' expiry (if they
   * expire). Kept here rather than on the connection: an open peer whose grant never expires,
   * the usual one, has none.
   */
  readonly #timers = new Map<Conn, ReturnType<typeof setTimeout>>();

  constructor(port: RouterPort, deps: HandshakeDeps) {
    this.#port = port;
    this.#deps = deps;
  }

  accepted(c: Conn): void {
    this.#timers.set(
      c,
      setTimeout(() => {
        this.#timers.delete(c);
        if (c.state === 'handshake') this.#port.kick(c, CloseCode.TIMEOUT, ErrorCode.TIMEOUT, 'handshake not completed in time');
      }, timerDelay(this.#port.limits.handshakeTimeout)),
    );
  }

  closed(c: Conn): void {
    this.#stopTimer(c);
  }

  #stopTimer(c: Conn): void {
    const timer = this.#timers.get(c);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#timers.delete(c);
  }

  /**
   * Runs the handshake of `c` from its HELLO. Synchronous up to the first hook that returns a
   * promise (auth, a remote claim or hold store): without them, the peer is open before the
   * next frame of the same batch is handled.
   */
  async hello(c: Conn, f: FrameOf<typeof Kind.Hello>): Promise<void> {
    c.hello = true;
    const { kick, limits } = this.#port;
    const { auth, registry, fail } = this.#deps;
    if (f.version !== PROTOCOL_VERSION) {
      return fail(c, new ProtocolError(`unsupported protocol version ${f.version} (relay speaks ${PROTOCOL_VERSION})`));
    }
    let grant: AuthGrant = OPEN_GRANT;
    if (f.namespace === ADMIN_NAMESPACE) {
      // An admin session: only the admin hook decides, whatever the peers' auth is.
      const refuse = (message: string): void => {
        this.#deps.adminRefused();
        this.#port.emit('auth-failure', { id: c.id, name: f.name, message });
        kick(c, CloseCode.AUTH, ErrorCode.AUTH, message);
      };
      const { adminAuth } = this.#deps;
      if (!adminAuth) return refuse('this relay has no admin channel (start it with an admin token)');
      try {
        const rights = await adminAuth({ name: f.name, namespace: f.namespace, secret: f.secret, token: f.token });
        grant = { admin: { write: rights.write === true, bodies: rights.bodies === true } };
      } catch (err) {
        return refuse((err instanceof Error ? err.message : String(err)) || 'not an admin');
      }
      if (gone(c)) return;
    } else if (auth) {
      try {
        grant = (await auth({ name: f.name, namespace: f.namespace, secret: f.secret, token: f.token })) ?? {};
        if (grant.admin !== undefined) {
          const { admin: _ignored, ...rest } = grant;
          grant = rest;
        }
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#port.emit('auth-failure', { id: c.id, name: f.name, message });
        return kick(c, CloseCode.AUTH, ErrorCode.AUTH, message || 'not authorized');
      }
      // Kicked while the hook ran (handshake timeout, a frame before WELCOME): go no further.
      if (gone(c)) return;
    }
    const name = grant.name ?? (f.name || undefined);
    if (f.name && grant.name !== undefined && grant.name !== f.name) {
      this.#port.emit('auth-failure', { id: c.id, name: f.name, message: `granted name ${grant.name}` });
      return kick(c, CloseCode.AUTH, ErrorCode.AUTH, `may not claim name "${f.name}"`);
    }
    if (name !== undefined) {
      const bad = checkName(name);
      if (bad) return fail(c, new ProtocolError(bad));
    }
    const ns = grant.admin ? ADMIN_NAMESPACE : (grant.namespace ?? (f.namespace || 'default'));
    const badNs = ns === ADMIN_NAMESPACE ? undefined : checkName(ns, 'namespace');
    if (badNs) return fail(c, new ProtocolError(badNs));
    if (registry.count(ns) >= limits.maxPeersPerNamespace) {
      return kick(c, CloseCode.LIMIT, ErrorCode.LIMIT, `namespace "${ns}" is at its ${limits.maxPeersPerNamespace}-peer limit`);
    }
    // Before any takeover: expired credentials must not even replace an old session.
    if (grant.expiresAt !== undefined && grant.expiresAt <= Date.now()) return kick(c, CloseCode.AUTH, ErrorCode.AUTH, 'credentials expired');
    c.namespace = ns;
    c.session = f.session;
    c.grant = grant;
    if (name !== undefined) {
      c.name = name;
      let claimed = this.#claim(c, ns, name);
      if (typeof claimed !== 'boolean') {
        try {
          claimed = await claimed;
        } catch (err) {
          // A shared registry that cannot answer (a cluster's backplane down): try again later.
          if (!gone(c)) kick(c, CloseCode.UNAVAILABLE, ErrorCode.LIMIT, `cannot claim a name now: ${err instanceof Error ? err.message : String(err)}`);
          return;
        }
      }
      if (!claimed) return;
    }
    this.#open(c, ns, name, grant);
    if (name !== undefined) {
      const taking = this.#deps.deliverHeld(c);
      if (taking !== undefined) {
        await taking;
        if (gone(c)) return;
      }
    }
    this.#deps.opened(c);
  }

  /**
   * Claims the name; true once it is the peer's, false if the peer was refused (and kicked). A
   * promise only when the registry answers with one.
   */
  #claim(c: Conn, ns: string, name: string, replaced = false): boolean | Promise<boolean> {
    const claim = this.#deps.registry.claim(ns, c, name);
    if (!isThenable(claim)) return this.#claimed(c, ns, name, claim, replaced);
    return Promise.resolve(claim).then((r) => {
      if (gone(c)) {
        // It closed while the claim ran: the name it got must not stay with a dead connection.
        this.#deps.registry.remove(ns, c);
        return false;
      }
      return this.#claimed(c, ns, name, r, replaced);
    });
  }

  #claimed(c: Conn, ns: string, name: string, claim: Claim<Conn>, replaced: boolean): boolean | Promise<boolean> {
    if (claim.status === 'claimed') return true;
    if (claim.status === 'taken' || replaced) {
      this.#port.kick(c, CloseCode.NAME_TAKEN, ErrorCode.NAME_TAKEN, `name "${name}" is taken in namespace "${ns}"`);
      return false;
    }
    // The same peer reconnecting (its old link not yet seen dead) takes its name back.
    this.#port.kick(claim.holder, CloseCode.REPLACED, ErrorCode.CLOSED, 'replaced by a new session of the same peer');
    return this.#claim(c, ns, name, true);
  }

  #open(c: Conn, ns: string, name: string | undefined, grant: AuthGrant): void {
    this.#stopTimer(c);
    c.state = 'open';
    // Its label is its name from now on (its id if it has none).
    c.labelled();
    c.space = this.#deps.registry.add(ns, c);
    if (grant.expiresAt !== undefined) {
      // setTimeout overflows past 2^31-1 ms; far expiries are re-armed in steps.
      const arm = (): void => {
        const left = grant.expiresAt! - Date.now();
        this.#timers.set(
          c,
          setTimeout(() => {
            if (left > 0x7fffffff) return arm();
            this.#timers.delete(c);
            this.#port.kick(c, CloseCode.AUTH, ErrorCode.AUTH, 'credentials expired');
          }, timerDelay(left)),
        );
      };
      arm();
    }
    c.connection.write(frame(Kind.Welcome, { id: c.id, name: name ?? '', namespace: ns, maxFrame: this.#port.limits.maxFrameBytes }));
  }
}

/** Whether the connection was closed or kicked (while a hook ran). */
function gone(c: Conn): boolean {
  return c.state === 'closed' || !c.connection.open;
}

/** Whether a grant's list allows something (`undefined`: everything). */
export function allowed(patterns: readonly string[] | undefined, test: (p: string) => boolean): boolean {
  return patterns === undefined || patterns.some(test);
}

/** Whether every topic matched by `requested` is matched by `allowed`. */
export function patternCovers(allowedPattern: string, requested: string): boolean {
  const a = allowedPattern.split('.');
  const r = requested.split('.');
  for (let i = 0; i < a.length; i++) {
    const at = a[i]!;
    if (at === '>') return r.length > i;
    if (i >= r.length) return false;
    const rt = r[i]!;
    if (rt === '>') return false;
    if (at !== '*' && (rt === '*' || rt !== at)) return false;
  }
  return a.length === r.length;
}
