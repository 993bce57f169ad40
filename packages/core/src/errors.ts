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

/** Base class of every missive error. */
export class MissiveError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A deadline passed: a request got no reply, or a `receive` found no message in time. */
export class TimeoutError extends MissiveError {
  constructor(message = 'timed out', options?: ErrorOptions) {
    super(ErrorCode.TIMEOUT, message, options);
  }
}

/** The link or the peer closed while the operation was pending, or before it started. */
export class ClosedError extends MissiveError {
  constructor(message = 'closed', options?: ErrorOptions) {
    super(ErrorCode.CLOSED, message, options);
  }
}

/** No peer, group, handler or mailbox answers to that address. */
export class NoRouteError extends MissiveError {
  constructor(message = 'no route', options?: ErrorOptions) {
    super(ErrorCode.NO_ROUTE, message, options);
  }
}

/**
 * A request handler on the other side threw. `remoteCode` is the handler's own error code
 * (its `code` property if it was a string, else `ERROR`); no stack crosses the wire.
 */
export class RemoteError extends MissiveError {
  readonly remoteCode: string;
  constructor(remoteCode: string, message: string, options?: ErrorOptions) {
    super(ErrorCode.REMOTE, message, options);
    this.remoteCode = remoteCode;
  }
}

/** The relay refused: bad credentials, expired token, or an action outside what was granted. */
export class AuthError extends MissiveError {
  constructor(message = 'not authorized', options?: ErrorOptions) {
    super(ErrorCode.AUTH, message, options);
  }
}

/** Another connected peer already holds that name in the namespace. */
export class NameTakenError extends MissiveError {
  constructor(message = 'name taken', options?: ErrorOptions) {
    super(ErrorCode.NAME_TAKEN, message, options);
  }
}

/** A bound was reached: mailbox full, frame too large, too many pending requests, rate. */
export class LimitError extends MissiveError {
  constructor(message = 'limit reached', options?: ErrorOptions) {
    super(ErrorCode.LIMIT, message, options);
  }
}

/** Bytes on the wire did not follow the protocol; `reason` says which rule broke. */
export class ProtocolError extends MissiveError {
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
