/**
 * Every failure missive reports is one of these classes. Match on `code`, never on `message`:
 * codes are stable across releases and cross the wire; messages are for humans.
 */

/** The stable error codes. */
export const ErrorCode = {
  TIMEOUT: 'TIMEOUT',
  CLOSED: 'CLOSED',
  NO_ROUTE: 'NO_ROUTE',
  REMOTE: 'REMOTE',
  AUTH: 'AUTH',
  NAME_TAKEN: 'NAME_TAKEN',
  LIMIT: 'LIMIT',
  PROTOCOL: 'PROTOCOL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Base class of every missive error. Each class sets its `name` explicitly (not from the
 * constructor's name, which a minifier renames).
 */
export class MissiveError extends Error {
  override name = 'MissiveError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A deadline passed: a request got no reply, or a `receive` found no message in time. */
export class TimeoutError extends MissiveError {
  override name = 'TimeoutError';
  constructor(message = 'timed out', options?: ErrorOptions) {
    super(ErrorCode.TIMEOUT, message, options);
  }
}

/** The link or the peer closed while the operation was pending, or before it started. */
export class ClosedError extends MissiveError {
  override name = 'ClosedError';
  constructor(message = 'closed', options?: ErrorOptions) {
    super(ErrorCode.CLOSED, message, options);
  }
}

/** No peer, group, handler or mailbox answers to that address. */
export class NoRouteError extends MissiveError {
  override name = 'NoRouteError';
  constructor(message = 'no route', options?: ErrorOptions) {
    super(ErrorCode.NO_ROUTE, message, options);
  }
}

/**
 * A request handler on the other side threw. `remoteCode` is the handler's own error code
 * (its `code` property if it was a string, else `ERROR`); no stack crosses the wire.
 */
export class RemoteError extends MissiveError {
  override name = 'RemoteError';
  readonly remoteCode: string;
  constructor(remoteCode: string, message: string, options?: ErrorOptions) {
    super(ErrorCode.REMOTE, message, options);
    this.remoteCode = remoteCode;
  }
}

/** The relay refused: bad credentials, expired token, or an action outside what was granted. */
export class AuthError extends MissiveError {
  override name = 'AuthError';
  constructor(message = 'not authorized', options?: ErrorOptions) {
    super(ErrorCode.AUTH, message, options);
  }
}

/** Another connected peer already holds that name in the namespace. */
export class NameTakenError extends MissiveError {
  override name = 'NameTakenError';
  constructor(message = 'name taken', options?: ErrorOptions) {
    super(ErrorCode.NAME_TAKEN, message, options);
  }
}

/** A bound was reached: mailbox full, frame too large, too many pending requests, rate. */
export class LimitError extends MissiveError {
  override name = 'LimitError';
  constructor(message = 'limit reached', options?: ErrorOptions) {
    super(ErrorCode.LIMIT, message, options);
  }
}

/** Bytes on the wire did not follow the protocol; `reason` says which rule broke. */
export class ProtocolError extends MissiveError {
  override name = 'ProtocolError';
  readonly reason: string;
  constructor(reason: string, options?: ErrorOptions) {
    super(ErrorCode.PROTOCOL, `protocol error: ${reason}`, options);
    this.reason = reason;
  }
}

const byCode: Record<ErrorCode, (message: string) => MissiveError> = {
  TIMEOUT: (m) => new TimeoutError(m),
  CLOSED: (m) => new ClosedError(m),
  NO_ROUTE: (m) => new NoRouteError(m),
  REMOTE: (m) => new RemoteError('ERROR', m),
  AUTH: (m) => new AuthError(m),
  NAME_TAKEN: (m) => new NameTakenError(m),
  LIMIT: (m) => new LimitError(m),
  PROTOCOL: (m) => new ProtocolError(m),
};

/** True if `code` is one of the stable codes. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(byCode, code);
}

/** Builds the error class for a code received on the wire (unknown codes become PROTOCOL). */
export function errorFromCode(code: string, message: string): MissiveError {
  return isErrorCode(code) ? byCode[code](message) : new ProtocolError(`unknown error code ${code}: ${message}`);
}

/**
 * Wire error codes beyond the stable ones. A handler's error crosses as `REMOTE:<its code>` (REP
 * and TCLOSE); a tunnel closes with `NORMAL` (an orderly end) or `ABORTED` (`abort()` at the
 * other end). Built and parsed only by the helpers below.
 */
export const WireCode = { NORMAL: 'NORMAL', ABORTED: 'ABORTED' } as const;
const REMOTE_PREFIX = 'REMOTE:';

/** The handler code of `err`: its `code` property if a non-empty string (at most 64 characters), else `ERROR`. */
export function handlerCode(err: unknown): string {
  if (err !== null && typeof err === 'object' && 'code' in err && typeof err.code === 'string' && err.code.length > 0) {
    return err.code.slice(0, 64);
  }
  return 'ERROR';
}

/** The wire code for a handler's failure: `REMOTE:<code>`; `code` defaults to {@link handlerCode} of `err`. */
export function remoteWireCode(err: unknown, code = handlerCode(err)): string {
  return `${REMOTE_PREFIX}${code}`;
}

/** The handler code inside a wire code (`REMOTE:x` → `x`, bare `REMOTE` → `ERROR`), or undefined when it is not remote. */
export function remoteCodeOf(wire: string): string | undefined {
  if (wire === ErrorCode.REMOTE) return 'ERROR';
  return wire.startsWith(REMOTE_PREFIX) ? wire.slice(REMOTE_PREFIX.length) || 'ERROR' : undefined;
}

/**
 * The error for a code received on the wire: RemoteError for `REMOTE:x`, the stable class for a
 * stable code, and ProtocolError for anything else.
 */
export function errorFromWire(code: string, message: string): MissiveError {
  const remote = remoteCodeOf(code);
  return remote !== undefined ? new RemoteError(remote, message) : errorFromCode(code, message);
}

/** A thrown value's message, for the wire. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
