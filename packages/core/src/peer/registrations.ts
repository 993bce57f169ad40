/**
 * Control requests to the relay (SUB, JOIN, WATCH, PEERS…, answered by OK or ERR with the same
 * ref) and the registrations the relay must know of this peer (subscriptions, group
 * memberships, the presence watch), which are sent again after every reconnection.
 */
import { kindName, type Frame, type FrameOf, type Kind } from '../codec/frames.js';
import { ClosedError, errorFromCode, TimeoutError } from '../errors.js';
import type { PeerPart, PeerPort } from './port.js';

interface Control {
  resolve(body: Uint8Array, flags: number): void;
  reject(err: Error): void;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

interface Registration {
  build(ref: number): Frame;
  done: boolean;
  waiters: Waiter[];
  /** Called when the relay refuses it for good (AUTH, PROTOCOL, LIMIT). */
  refused?: () => void;
}

/** The relay's answer to a control frame: the OK's body and its codec flags. */
export interface ControlReply {
  body: Uint8Array;
  flags: number;
}

export class Registrations implements PeerPart {
  readonly #port: PeerPort;
  readonly #timeout: number;
  readonly #controls = new Map<number, Control>();
  readonly #regs = new Map<string, Registration>();

  constructor(port: PeerPort, timeout: number) {
    this.#port = port;
    this.#timeout = timeout;
  }

  /**
   * Sends a control frame built with a fresh ref and resolves with the relay's OK; rejects with
   * the ERR's error, TimeoutError after the request timeout, or ClosedError when the link is down.
   */
  control(build: (ref: number) => Frame): Promise<ControlReply> {
    const port = this.#port;
    if (port.closedError) return Promise.reject(new ClosedError('peer is closed', { cause: port.closedError }));
    if (!port.connected) return Promise.reject(new ClosedError('the link is down (reconnecting)'));
    const ref = port.nextRef();
    const f = build(ref);
    const timeoutError = new TimeoutError(`relay did not answer ${kindName(f.kind)}`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#controls.delete(ref);
        reject(timeoutError);
      }, this.#timeout);
      this.#controls.set(ref, {
        resolve: (body, flags) => {
          clearTimeout(timer);
          resolve({ body, flags });
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      port.write(f);
    });
  }

  /** OK: settles the control request with this ref. */
  onOk(f: FrameOf<typeof Kind.Ok>): void {
    const c = this.#controls.get(f.ref);
    this.#controls.delete(f.ref);
    c?.resolve(f.body, f.flags);
  }

  /** ERR: rejects the control request with this ref. Returns false when no control has it. */
  onErr(f: FrameOf<typeof Kind.Err>): boolean {
    const c = this.#controls.get(f.ref);
    if (!c) return false;
    this.#controls.delete(f.ref);
    c.reject(errorFromCode(f.code, f.message));
    return true;
  }

  /**
   * Records a registration (subscription, membership, presence watch) and sends it if the link
   * is up; it is sent again after every reconnection. Resolves once the relay has it; rejects
   * if the relay refuses it (the registration is then dropped) or the peer closes.
   */
  register(key: string, build: (ref: number) => Frame, refused?: () => void): Promise<void> {
    const closed = this.#port.closedError;
    if (closed) return Promise.reject(new ClosedError('peer is closed', { cause: closed }));
    let reg = this.#regs.get(key);
    if (!reg) {
      reg = { build, done: false, waiters: [] };
      if (refused) reg.refused = refused;
      this.#regs.set(key, reg);
      if (this.#port.connected) this.#send(key, reg);
    }
    if (reg.done) return Promise.resolve();
    const r = reg;
    return new Promise<void>((resolve, reject) => r.waiters.push({ resolve, reject }));
  }

  /** Drops a registration and tells the relay (if the link is up). */
  unregister(key: string, build: (ref: number) => Frame): Promise<void> {
    const reg = this.#regs.get(key);
    this.#regs.delete(key);
    for (const w of reg?.waiters.splice(0) ?? []) w.reject(new ClosedError('cancelled by a later leave or unsubscribe'));
    if (!this.#port.connected) return Promise.resolve();
    return this.control(build).then(() => undefined);
  }

  #send(key: string, reg: Registration): void {
    this.control(reg.build).then(
      () => {
        if (this.#regs.get(key) !== reg) return;
        reg.done = true;
        for (const w of reg.waiters.splice(0)) w.resolve();
      },
      (err: unknown) => {
        if (this.#regs.get(key) !== reg) return;
        // The link dropped: it is sent again on reconnection. Anything else is a refusal.
        if (err instanceof ClosedError && !this.#port.closedError) return;
        this.#regs.delete(key);
        reg.refused?.();
        if (reg.waiters.length === 0) this.#port.error(err);
        for (const w of reg.waiters.splice(0)) w.reject(err as Error);
      },
    );
  }

  attached(): void {
    for (const [key, reg] of this.#regs) this.#send(key, reg);
  }

  linkLost(error: ClosedError): void {
    this.#rejectControls(error);
  }

  closed(error: ClosedError): void {
    for (const reg of this.#regs.values()) for (const w of reg.waiters.splice(0)) w.reject(new ClosedError(error.message, { cause: error }));
    this.#regs.clear();
    this.#rejectControls(error);
  }

  #rejectControls(error: ClosedError): void {
    const controls = [...this.#controls.values()];
    this.#controls.clear();
    for (const c of controls) c.reject(new ClosedError(error.message, { cause: error }));
  }

  inspect(): { registrations: { key: string; confirmed: boolean }[]; pendingControls: number } {
    return {
      registrations: [...this.#regs].map(([key, reg]) => ({ key, confirmed: reg.done })),
      pendingControls: this.#controls.size,
    };
  }
}
