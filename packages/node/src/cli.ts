/**
 * `missive-relay`: the relay as a process. Every flag has an environment variable; flags win.
 * SIGTERM and SIGINT shut down gracefully.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { RouterLimits } from '@missive/core';
import type { RelayAuthOptions } from './auth.js';
import { createLogger, isLogLevel, type Logger, type LogLevel } from './logger.js';
import { createRelay, type RelayOptions } from './relay.js';

interface Flag {
  env: string;
  help: string;
  type: 'string' | 'boolean';
}

const flags = {
  host: { env: 'MISSIVE_HOST', type: 'string', help: 'address to bind (default 127.0.0.1)' },
  port: { env: 'MISSIVE_PORT', type: 'string', help: 'port, 0 for a free one (default 8787)' },
  path: { env: 'MISSIVE_PATH', type: 'string', help: 'WebSocket path (default /)' },
  'admin-token': { env: 'MISSIVE_ADMIN_TOKEN', type: 'string', help: 'admin token: devtools sessions (read and write) and /metrics (Authorization: Bearer …)' },
  'admin-read-token': { env: 'MISSIVE_ADMIN_READ_TOKEN', type: 'string', help: 'read-only admin token: devtools sessions that look but cannot act or see bodies' },
  redis: { env: 'MISSIVE_REDIS', type: 'string', help: 'Redis URL of the cluster backplane: relays on the same Redis act as one (docs/scaling.md)' },
  'relay-id': { env: 'MISSIVE_RELAY_ID', type: 'string', help: "this relay's id in its cluster (default random)" },
  serve: { env: 'MISSIVE_SERVE', type: 'string', help: 'built web apps to serve, PREFIX=DIR[,PREFIX=DIR…] (e.g. /devtools/=apps/devtools/dist)' },
  secrets: { env: 'MISSIVE_SECRETS', type: 'string', help: 'JSON file of name → secret; peers authenticate with { name, secret }' },
  'jwt-secret': { env: 'MISSIVE_JWT_SECRET', type: 'string', help: 'shared secret for HS256 tokens' },
  'jwt-public-key': { env: 'MISSIVE_JWT_PUBLIC_KEY', type: 'string', help: 'PEM file of the ES256 public key for tokens' },
  'jwt-issuer': { env: 'MISSIVE_JWT_ISSUER', type: 'string', help: 'required token issuer (iss)' },
  'jwt-audience': { env: 'MISSIVE_JWT_AUDIENCE', type: 'string', help: 'required token audience (aud)' },
  'max-frame': { env: 'MISSIVE_MAX_FRAME', type: 'string', help: 'largest frame in bytes (default 1048576)' },
  'max-connections': { env: 'MISSIVE_MAX_CONNECTIONS', type: 'string', help: 'most connections at once (default 10000)' },
  'max-peers-per-namespace': { env: 'MISSIVE_MAX_PEERS_PER_NAMESPACE', type: 'string', help: 'most peers in one namespace (default 10000)' },
  'max-pending-requests': { env: 'MISSIVE_MAX_PENDING_REQUESTS', type: 'string', help: 'requests awaiting a reply per peer (default 1000)' },
  'rate-limit': { env: 'MISSIVE_RATE_LIMIT', type: 'string', help: 'frames per second per connection, bursts up to 2x (default 100000)' },
  'max-buffered': { env: 'MISSIVE_MAX_BUFFERED', type: 'string', help: 'outgoing bytes buffered per connection before best-effort frames drop (default 8388608)' },
  'slow-consumer-timeout': { env: 'MISSIVE_SLOW_CONSUMER_TIMEOUT', type: 'string', help: 'ms over the buffer cap before a peer is disconnected (default 5000)' },
  'handshake-timeout': { env: 'MISSIVE_HANDSHAKE_TIMEOUT', type: 'string', help: 'ms to finish the handshake (default 10000)' },
  'hold-ttl': { env: 'MISSIVE_HOLD_TTL', type: 'string', help: 'ms to hold sends for an offline name, 0 = off (default 60000)' },
  'hold-max-messages': { env: 'MISSIVE_HOLD_MAX_MESSAGES', type: 'string', help: 'messages held per offline name (default 1000)' },
  'hold-max-bytes': { env: 'MISSIVE_HOLD_MAX_BYTES', type: 'string', help: 'bytes held per offline name (default 1048576)' },
  'hold-max-total-bytes': { env: 'MISSIVE_HOLD_MAX_TOTAL_BYTES', type: 'string', help: 'bytes held for all offline names (default 67108864)' },
  'max-tunnels': { env: 'MISSIVE_MAX_TUNNELS', type: 'string', help: 'open tunnels per connection (default 1000)' },
  'max-subscriptions': { env: 'MISSIVE_MAX_SUBSCRIPTIONS', type: 'string', help: 'subscription patterns per connection (default 1000)' },
  'max-pattern-tokens': { env: 'MISSIVE_MAX_PATTERN_TOKENS', type: 'string', help: 'tokens in one subscription pattern (default 32)' },
  heartbeat: { env: 'MISSIVE_HEARTBEAT', type: 'string', help: 'ping interval in ms; dead peers go within twice this (default 10000)' },
  'tls-cert': { env: 'MISSIVE_TLS_CERT', type: 'string', help: 'PEM certificate file: serve wss:// and https://' },
  'tls-key': { env: 'MISSIVE_TLS_KEY', type: 'string', help: 'PEM private key file' },
  'log-level': { env: 'MISSIVE_LOG_LEVEL', type: 'string', help: 'debug | info | warn | error | silent (default info)' },
  'log-format': { env: 'MISSIVE_LOG_FORMAT', type: 'string', help: 'json | pretty (default pretty on a TTY, else json)' },
  insecure: { env: 'MISSIVE_INSECURE', type: 'boolean', help: 'allow an open relay (no auth) on a non-loopback address' },
  help: { env: '', type: 'boolean', help: 'show this help' },
} satisfies Record<string, Flag>;
type FlagName = keyof typeof flags;

export function usage(): string {
  const lines = ['Usage: missive-relay [options]', '', 'Runs a missive relay. Every option can also be set by the environment variable shown.', ''];
  for (const [name, f] of Object.entries(flags) as [FlagName, Flag][]) {
    const left = `  --${name}${f.type === 'string' ? ' <value>' : ''}`;
    lines.push(`${left.padEnd(36)}${f.help}${f.env ? `  [${f.env}]` : ''}`);
  }
  return lines.join('\n');
}

class UsageError extends Error {}

function num(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) throw new UsageError(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

/** Builds relay options from argv and the environment. Exported for tests. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): { options: RelayOptions; logLevel: LogLevel; logFormat: string | undefined; help: boolean } {
  const parsed = parseArgs({
    args: argv,
    options: Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type }])) as Record<FlagName, { type: 'string' | 'boolean' }>,
    strict: true,
    allowPositionals: false,
  }).values as Partial<Record<FlagName, string | boolean>>;
  const get = (name: FlagName): string | undefined => {
    const v = parsed[name];
    if (typeof v === 'string') return v;
    const e = flags[name].env ? env[flags[name].env] : undefined;
    return e === '' ? undefined : e;
  };
  const bool = (name: FlagName): boolean => parsed[name] === true || ['1', 'true', 'yes'].includes((flags[name].env && env[flags[name].env]) || '');

  const options: RelayOptions = { host: get('host') ?? '127.0.0.1', port: num('port', get('port')) ?? 8787 };
  const path = get('path');
  if (path) options.path = path;
  const adminToken = get('admin-token');
  if (adminToken) options.adminToken = adminToken;
  const adminReadToken = get('admin-read-token');
  if (adminReadToken) options.adminReadToken = adminReadToken;
  const redis = get('redis');
  if (redis) {
    if (!/^rediss?:\/\//.test(redis)) throw new UsageError(`--redis expects a redis:// or rediss:// URL, got "${redis}"`);
    options.backplane = { redis };
    const relayId = get('relay-id');
    if (relayId) options.backplane.relayId = relayId;
  }
  const serve = get('serve');
  if (serve) {
    options.serve = {};
    for (const part of serve.split(',')) {
      const i = part.indexOf('=');
      if (i <= 0 || i === part.length - 1 || !part.startsWith('/')) throw new UsageError(`--serve expects PREFIX=DIR with PREFIX starting with "/", got "${part}"`);
      options.serve[part.slice(0, i)] = part.slice(i + 1);
    }
  }
  options.insecure = bool('insecure');

  const auth: RelayAuthOptions = {};
  const secrets = get('secrets');
  if (secrets) auth.secrets = secrets;
  const jwtSecret = get('jwt-secret');
  const jwtKey = get('jwt-public-key');
  if (jwtSecret || jwtKey) {
    auth.jwt = {};
    if (jwtSecret) auth.jwt.secret = jwtSecret;
    if (jwtKey) auth.jwt.publicKey = readFileSync(jwtKey, 'utf8');
    const iss = get('jwt-issuer');
    const aud = get('jwt-audience');
    if (iss) auth.jwt.issuer = iss;
    if (aud) auth.jwt.audience = aud;
  }
  if (auth.secrets || auth.jwt) options.auth = auth;

  const limits: Partial<RouterLimits> = {};
  const set = (key: keyof RouterLimits, flag: FlagName): void => {
    const v = num(flag, get(flag));
    if (v !== undefined) limits[key] = v;
  };
  set('maxFrameBytes', 'max-frame');
  set('maxConnections', 'max-connections');
  set('maxPeersPerNamespace', 'max-peers-per-namespace');
  set('maxPendingRequests', 'max-pending-requests');
  set('rateLimit', 'rate-limit');
  set('maxBufferedBytes', 'max-buffered');
  set('slowConsumerTimeout', 'slow-consumer-timeout');
  set('handshakeTimeout', 'handshake-timeout');
  set('holdTtl', 'hold-ttl');
  set('holdMaxMessages', 'hold-max-messages');
  set('holdMaxBytes', 'hold-max-bytes');
  set('holdMaxTotalBytes', 'hold-max-total-bytes');
  set('maxTunnels', 'max-tunnels');
  set('maxSubscriptions', 'max-subscriptions');
  set('maxPatternTokens', 'max-pattern-tokens');
  if (Object.keys(limits).length > 0) options.limits = limits;
  const hb = num('heartbeat', get('heartbeat'));
  if (hb !== undefined) options.heartbeatInterval = hb;

  const cert = get('tls-cert');
  const key = get('tls-key');
  if (!!cert !== !!key) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert && key) options.tls = { cert: readFileSync(cert), key: readFileSync(key) };

  const logLevel = get('log-level') ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be debug, info, warn, error or silent, got "${logLevel}"`);
  const logFormat = get('log-format');
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'pretty') throw new UsageError('--log-format must be json or pretty');
  return { options, logLevel, logFormat, help: parsed.help === true };
}

/** Runs the relay until SIGTERM/SIGINT. Resolves with the process exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv, env);
  } catch (err) {
    process.stderr.write(`missive-relay: ${err instanceof Error ? err.message : String(err)}\n\n${usage()}\n`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const log: Logger = createLogger({ level: parsed.logLevel, ...(parsed.logFormat ? { pretty: parsed.logFormat === 'pretty' } : {}) });
  let relay: Awaited<ReturnType<typeof createRelay>>;
  try {
    relay = await createRelay({ ...parsed.options, logger: log });
  } catch (err) {
    log.error('relay failed to start', { error: err instanceof Error ? err.message : String(err) });
    return 1;
  }
  if (!parsed.options.auth) log.warn('auth is off: any peer may claim any name (configure --secrets or --jwt-secret)', {});
  process.stdout.write(`missive relay listening on ${relay.url}\n`);
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      log.info('shutting down', { signal });
      relay.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error('shutdown failed', { error: String(err) });
          resolve(1);
        },
      );
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
