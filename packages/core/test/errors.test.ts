import { describe, expect, it } from 'vitest';
import {
  AuthError,
  ClosedError,
  LimitError,
  MissiveError,
  NameTakenError,
  NoRouteError,
  ProtocolError,
  RemoteError,
  TimeoutError,
} from '../src/index.js';
import { errorFromWire, handlerCode, remoteCodeOf, remoteWireCode } from '../src/errors.js';

describe('error classes', () => {
  it.each([
    [new TimeoutError(), 'TimeoutError', 'TIMEOUT'],
    [new ClosedError(), 'ClosedError', 'CLOSED'],
    [new NoRouteError(), 'NoRouteError', 'NO_ROUTE'],
    [new RemoteError('X', 'm'), 'RemoteError', 'REMOTE'],
    [new AuthError(), 'AuthError', 'AUTH'],
    [new NameTakenError(), 'NameTakenError', 'NAME_TAKEN'],
    [new LimitError(), 'LimitError', 'LIMIT'],
    [new ProtocolError('r'), 'ProtocolError', 'PROTOCOL'],
  ] as const)('%o has a name set by hand (minifiers rename classes) and its stable code', (err, name, code) => {
    expect(err).toBeInstanceOf(MissiveError);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(String(err)).toMatch(new RegExp(`^${name}: `));
  });
});

describe('wire error codes', () => {
  it('builds REMOTE:<code> from a thrown value, ERROR when it has no string code', () => {
    expect(remoteWireCode(Object.assign(new Error('x'), { code: 'BAD_INPUT' }))).toBe('REMOTE:BAD_INPUT');
    expect(remoteWireCode(new Error('x'))).toBe('REMOTE:ERROR');
    expect(remoteWireCode('a string')).toBe('REMOTE:ERROR');
    expect(remoteWireCode({ code: 42 })).toBe('REMOTE:ERROR');
    expect(remoteWireCode({ code: '' })).toBe('REMOTE:ERROR');
    expect(handlerCode({ code: 'X'.repeat(100) })).toHaveLength(64);
    expect(remoteWireCode(null, 'ENCODE')).toBe('REMOTE:ENCODE');
  });

  it('parses what it builds, and nothing else as remote', () => {
    expect(remoteCodeOf('REMOTE:BAD_INPUT')).toBe('BAD_INPUT');
    expect(remoteCodeOf('REMOTE')).toBe('ERROR');
    expect(remoteCodeOf('REMOTE:')).toBe('ERROR');
    expect(remoteCodeOf('NO_ROUTE')).toBeUndefined();
    expect(remoteCodeOf('REMOTELY')).toBeUndefined();
  });

  it('turns wire codes into the error classes, unknown codes into PROTOCOL', () => {
    expect(errorFromWire('REMOTE:X', 'm')).toMatchObject({ name: 'RemoteError', code: 'REMOTE', remoteCode: 'X', message: 'm' });
    expect(errorFromWire('NO_ROUTE', 'm')).toBeInstanceOf(NoRouteError);
    expect(errorFromWire('LIMIT', 'm')).toBeInstanceOf(LimitError);
    expect(errorFromWire('WHAT', 'm')).toMatchObject({ code: 'PROTOCOL', message: expect.stringContaining('unknown error code WHAT') });
  });
});
