/**
 * Relay authentication: a secret per name, signed tokens (JWT via jose, HS256 or ES256), or a
 * custom async function, combinable. See docs/relay.md ("Auth").
 */
import { AuthError, type AuthGrant, type AuthHook, type AuthRequest } from '@missive/core';
import { errors as joseErrors, importSPKI, jwtVerify, type CryptoKey, type JWTPayload, type KeyObject } from 'jose';
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface JwtOptions {
  /** Shared secret for HS256 tokens. */
  secret?: string | Uint8Array;
  /** Public key for ES256 tokens: PEM (SPKI) text, or a key object. */
  publicKey?: string | CryptoKey | KeyObject;
  /** Required `iss` claim, if set. */
  issuer?: string;
  /** Required `aud` claim, if set. */
  audience?: string;
}

/** The claims missive reads from a token. `exp` is required. */
export interface TokenClaims extends JWTPayload {
  /** The name the peer may claim (`sub` is used when absent). */
  name?: string;
  namespace?: string;
  /** Group patterns the peer may join. */
  groups?: string[];
  /** Topic patterns it may publish to. */
  publish?: string[];
  /** Topic patterns it may subscribe with. */
  subscribe?: string[];
}

/**
 * A custom check. Runs after any secret or token check that applied (their grant is passed in)
 * or alone when the peer presented credentials no built-in method handles. Return a grant to
 * accept (it replaces the built-in one), throw to refuse.
 */
export type CustomAuth = (request: AuthRequest, grant: AuthGrant | undefined) => AuthGrant | void | Promise<AuthGrant | void>;

export interface RelayAuthOptions {
  /** Secret per name: an object, or the path of a JSON file `{ "name": "secret" }`. */
  secrets?: Record<string, string> | string;
  jwt?: JwtOptions;
  custom?: CustomAuth;
}

/** Builds the Router auth hook for the given methods. */
export function createAuth(options: RelayAuthOptions): AuthHook {
  const secrets = typeof options.secrets === 'string' ? loadSecrets(options.secrets) : options.secrets;
  const verifyToken = options.jwt ? tokenVerifier(options.jwt) : undefined;
  const { custom } = options;
  if (!secrets && !verifyToken && !custom) throw new TypeError('auth needs at least one of secrets, jwt or custom');

  return async (req) => {
    let grant: AuthGrant | undefined;
    if (req.token) {
      if (!verifyToken) throw new AuthError('this relay does not accept tokens');
      grant = await verifyToken(req.token);
      if (req.name && grant.name !== undefined && grant.name !== req.name) {
        throw new AuthError(`token is for "${grant.name}", not "${req.name}"`);
      }
    } else if (req.secret) {
      if (!secrets) throw new AuthError('this relay does not accept secrets');
      const expected = Object.prototype.hasOwnProperty.call(secrets, req.name) ? secrets[req.name] : undefined;
      if (!req.name || expected === undefined || !safeEqual(expected, req.secret)) throw new AuthError('bad name or secret');
      grant = { name: req.name };
    }
    if (custom) {
      const g = await custom(req, grant);
      return g ?? grant ?? {};
    }
    if (!grant) throw new AuthError('credentials required (a secret or a token)');
    return grant;
  };
}

function tokenVerifier(opts: JwtOptions): (token: string) => Promise<AuthGrant> {
  const keys: { alg: 'HS256' | 'ES256'; key: Promise<Uint8Array | CryptoKey | KeyObject> }[] = [];
  if (opts.secret !== undefined) {
    const s = typeof opts.secret === 'string' ? new TextEncoder().encode(opts.secret) : opts.secret;
    keys.push({ alg: 'HS256', key: Promise.resolve(s) });
  }
  if (opts.publicKey !== undefined) {
    const k = opts.publicKey;
    keys.push({ alg: 'ES256', key: typeof k === 'string' ? importSPKI(k, 'ES256') : Promise.resolve(k) });
  }
  if (keys.length === 0) throw new TypeError('jwt auth needs a secret (HS256) or a publicKey (ES256)');

  return async (token) => {
    const alg = headerAlg(token);
    const entry = keys.find((k) => k.alg === alg);
    if (!entry) throw new AuthError(`token algorithm ${alg ?? 'unknown'} is not accepted`);
    let payload: TokenClaims;
    try {
      const verifyOptions: Parameters<typeof jwtVerify>[2] = { algorithms: [entry.alg], requiredClaims: ['exp'] };
      if (opts.issuer !== undefined) verifyOptions.issuer = opts.issuer;
      if (opts.audience !== undefined) verifyOptions.audience = opts.audience;
      ({ payload } = await jwtVerify<TokenClaims>(token, await entry.key, verifyOptions));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new AuthError('token expired', { cause: err });
      throw new AuthError(`invalid token: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return claimsToGrant(payload);
  };
}

function claimsToGrant(c: TokenClaims): AuthGrant {
  const grant: AuthGrant = {};
  const name = c.name ?? c.sub;
  if (name !== undefined) grant.name = stringClaim(name, 'name');
  if (c.namespace !== undefined) grant.namespace = stringClaim(c.namespace, 'namespace');
  if (c.groups !== undefined) grant.groups = listClaim(c.groups, 'groups');
  if (c.publish !== undefined) grant.publish = listClaim(c.publish, 'publish');
  if (c.subscribe !== undefined) grant.subscribe = listClaim(c.subscribe, 'subscribe');
  if (typeof c.exp === 'number') grant.expiresAt = c.exp * 1000;
  return grant;
}

function stringClaim(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new AuthError(`token claim "${what}" must be a non-empty string`);
  return v;
}

function listClaim(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new AuthError(`token claim "${what}" must be a list of strings`);
  return v as string[];
}

function headerAlg(token: string): string | undefined {
  try {
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { alg?: unknown };
    return typeof header.alg === 'string' ? header.alg : undefined;
  } catch {
    return undefined;
  }
}

/** Whether two strings are equal, in time that does not depend on where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Reads a secrets file: a JSON object of name → secret. */
export function loadSecrets(path: string): Record<string, string> {
  const data = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (data === null || typeof data !== 'object' || Array.isArray(data) || !Object.values(data).every((v) => typeof v === 'string')) {
    throw new TypeError(`${path}: expected a JSON object of name → secret strings`);
  }
  return data as Record<string, string>;
}
