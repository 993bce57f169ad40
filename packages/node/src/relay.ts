/**
 * `createRelay(options)`: the core Router behind `ws` on an HTTP(S) server, with `/healthz`.
 */
import { AuthError, DEFAULT_LIMITS, Router, type AdminAuthHook, type AuthHook, type ClusterBus, type RouterLimits } from '@missive/core';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createAuth, safeEqual, type RelayAuthOptions } from './auth.js';
import { silentLogger, type Logger } from './logger.js';
import { renderMetrics } from './metrics.js';
import { staticHandler } from './static.js';
import { ServerSockets } from './ws-transport.js';

export interface RelayTlsOptions {
  /** PEM certificate chain. */
  cert: string | Buffer;
  /** PEM private key. */
  key: string | Buffer;
}

export interface RelayOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default 8787 */
  port?: number;
  /** WebSocket path. @default '/' */
  path?: string;
  /**
   * Who may connect and what they may do: secrets, JWT and/or a custom function (see
   * docs/relay.md), or a Router auth hook. Omitted: an open relay (any name), which is refused
   * on a non-loopback host unless `insecure` is set.
   */
  auth?: RelayAuthOptions | AuthHook;
  /** Allow an open relay (no auth) on a non-loopback address. @default false */
  insecure?: boolean;
  /**
   * Token for the relay's admin surface: admin sessions (the devtools) that present it get
   * read and write rights and see message bodies; `GET /metrics` then requires
   * `Authorization: Bearer <adminToken>` (or the read token). See docs/devtools.md.
   */
  adminToken?: string;
  /** A read-only admin token: admin sessions that present it can look, not act, and see no bodies. */
  adminReadToken?: string;
  /**
   * Decides admin sessions yourself (instead of, or besides, the tokens): return rights, throw
   * to refuse. Runs only when the presented token is neither admin token.
   */
  adminAuth?: AdminAuthHook;
  /**
   * Built web apps to serve over HTTP, by URL prefix: `{ '/devtools/': 'apps/devtools/dist' }`.
   * A path with no file behind it gets the app's index.html.
   */
  serve?: Record<string, string>;
  limits?: Partial<RouterLimits>;
  /** Serve `wss://` and `https://` with this certificate. */
  tls?: RelayTlsOptions;
  /**
   * Ping every connection this often (ms); one that has not answered the previous ping is
   * terminated, so a dead peer is detected within twice this and its `peer-leave` published.
   * @default 10000
   */
  heartbeatInterval?: number;
  /** Where the relay logs. @default silent */
  logger?: Logger;
  /**
   * Many relays as one (docs/scaling.md): `{ redis: 'redis://…' }` shares names, groups,
   * subscriptions, presence and routing with every relay on the same Redis (ioredis, loaded only
   * then), or a `ClusterBus` of your own. Without it the relay runs alone.
   */
  backplane?: { redis: string; prefix?: string; lease?: number; relayId?: string; maxPendingBytes?: number } | ClusterBus;
}

export interface Relay {
  /** `ws://host:port/path` (or `wss://`). */
  readonly url: string;
  readonly port: number;
  readonly router: Router;
  readonly server: Server;
  /**
   * Graceful shutdown: stops accepting, tells every peer the relay is going away (close code
   * 1001), waits for in-flight frames to flush, bounded by `timeout` ms; then closes the server.
   */
  close(timeout?: number): Promise<void>;
}

export async function createRelay(options: RelayOptions = {}): Promise<Relay> {
  const host = options.host ?? '127.0.0.1';
  const path = options.path ?? '/';
  if (!options.auth && !options.insecure && !isLoopback(host)) {
    throw new TypeError(`refusing to serve an open relay on ${host}: configure auth, or set insecure (--insecure)`);
  }
  const routerOptions: ConstructorParameters<typeof Router>[0] = {};
  if (options.auth) routerOptions.auth = typeof options.auth === 'function' ? options.auth : createAuth(options.auth);
  if (options.limits) routerOptions.limits = options.limits;
  const adminAuth = adminAuthFor(options);
  if (adminAuth) routerOptions.adminAuth = adminAuth;
  const log = options.logger ?? silentLogger;
  let closeHolds: (() => Promise<void>) | undefined;
  if (options.backplane) {
    const bp = options.backplane;
    if ('redis' in bp) {
      // Only a relay that asks for Redis loads the Redis client.
      const [{ redisBackplane }, { redisHoldStore }] = await Promise.all([import('./backplane/redis.js'), import('./backplane/holds.js')]);
      routerOptions.cluster = redisBackplane({ ...bp, log: (level, message, fields) => log[level](message, fields) });
      // Held messages live in Redis too, so a peer that comes back on another relay gets them.
      const holds = redisHoldStore({ redis: bp.redis, ...(bp.prefix !== undefined ? { prefix: bp.prefix } : {}), limits: { ...DEFAULT_LIMITS, ...options.limits } });
      routerOptions.holds = holds;
      closeHolds = () => holds.close();
    } else routerOptions.cluster = bp;
  }
  const router = new Router(routerOptions);
  if (routerOptions.cluster) {
    router.on('cluster', (e) => (e.ok ? log.info('cluster backplane ok', { reason: e.reason }) : log.warn('cluster backplane lost: serving local peers only', { reason: e.reason })));
    try {
      await router.ready;
    } catch (err) {
      await router.close(0);
      await closeHolds?.();
      throw new Error(`cannot join the cluster: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  const serveStatic = options.serve ? staticHandler(options.serve) : undefined;

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://relay');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      const cluster = router.inspect().cluster;
      res.writeHead(200, { 'content-type': 'application/json' });
      const body: Record<string, unknown> = { status: cluster && !cluster.healthy ? 'degraded' : 'ok', connections: router.connectionCount };
      if (cluster) body.cluster = { relay: cluster.relay, backplane: cluster.healthy ? 'ok' : 'unreachable', peersByRelay: cluster.peersByRelay };
      res.end(JSON.stringify(body));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      const { adminToken, adminReadToken } = options;
      const auth = req.headers.authorization;
      const locked = adminToken !== undefined || adminReadToken !== undefined;
      if (locked && !(adminToken !== undefined && bearerIs(auth, adminToken)) && !(adminReadToken !== undefined && bearerIs(auth, adminReadToken))) {
        res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' });
        res.end('admin token required\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(renderMetrics(router.metrics()));
      return;
    }
    if (serveStatic?.(req, res, url.pathname)) return;
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  };
  // A socket that never finishes its HTTP request (a WebSocket upgrade included) is cut within
  // about handshakeTimeout as well, instead of Node's 60 s headersTimeout: it holds a socket the
  // Router does not count yet. The check runs at a quarter of that period.
  const headersTimeout = Math.ceil(Math.min(router.limits.handshakeTimeout, 60_000));
  const httpOptions = { headersTimeout, connectionsCheckingInterval: Math.max(50, Math.ceil(headersTimeout / 4)) };
  const server: Server = options.tls
    ? (createHttpsServer({ ...httpOptions, cert: options.tls.cert, key: options.tls.key }, onRequest) as unknown as Server)
    : createHttpServer(httpOptions, onRequest);

  const maxFrame = router.limits.maxFrameBytes;
  // The sockets are tracked (for the heartbeat and shutdown) and pings answered by `sockets`,
  // for less memory per socket than ws's own `clientTracking` and `autoPong` take (ws-transport.ts).
  const sockets = new ServerSockets();
  const wss = new WebSocketServer({
    server,
    path,
    perMessageDeflate: false,
    // A batch holds up to 64 KiB of frames plus one frame of up to maxFrame bytes.
    maxPayload: maxFrame + 64 * 1024 + 1024,
    WebSocket: ServerSockets.WebSocket,
    clientTracking: false,
    autoPong: false,
  });
  wss.on('connection', (socket: WebSocket, req) => {
    // Reading remoteAddress makes Node keep an object on every socket: only when it is logged.
    if (log.debugEnabled) log.debug('socket open', { remote: req.socket.remoteAddress });
    router.accept(sockets.accept(socket));
  });
  // Each socket that has not answered the previous ping is terminated; the others are pinged.
  const missed = (): void => log.info('peer missed its heartbeat; terminating', {});
  const heartbeat = setInterval(() => sockets.heartbeat(missed), options.heartbeatInterval ?? 10_000);
  heartbeat.unref();
  // Only when they are logged: the Router builds these events' objects only for listeners.
  if (log.debugEnabled) {
    router.on('connect', (c) => log.debug('peer connected', { id: c.id, name: c.name, namespace: c.namespace }));
    router.on('disconnect', (c) => log.debug('peer disconnected', { id: c.id, name: c.name, code: c.code, reason: c.reason }));
  }
  router.on('auth-failure', (e) => log.warn('auth refused', { id: e.id, name: e.name, reason: e.message }));
  router.on('protocol-error', (e) => log.warn('protocol error; connection closed', { id: e.id, reason: e.error.reason }));
  // Errors on individual sockets are reported through their close events.
  wss.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8787, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `${options.tls ? 'wss' : 'ws'}://${urlHost}:${port}${path}`;
  log.info('relay listening', { url, auth: options.auth ? 'on' : 'open (any name)' });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    router,
    server,
    close(timeout = 5000) {
      closing ??= (async () => {
        clearInterval(heartbeat);
        server.close();
        await router.close(timeout);
        await closeHolds?.();
        // Every socket closed before the server's close completes (as with ws's own tracking).
        await sockets.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        server.closeAllConnections();
        await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
        log.info('relay closed', {});
      })();
      return closing;
    },
  };
}

/** The admin hook for the relay's options: the tokens first, then the custom hook. */
function adminAuthFor(options: RelayOptions): AdminAuthHook | undefined {
  const { adminToken, adminReadToken, adminAuth } = options;
  if (adminToken === undefined && adminReadToken === undefined && !adminAuth) return undefined;
  return async (req) => {
    if (adminToken !== undefined && safeEqual(req.token, adminToken)) return { write: true, bodies: true };
    if (adminReadToken !== undefined && safeEqual(req.token, adminReadToken)) return { write: false, bodies: false };
    if (adminAuth) return adminAuth(req);
    throw new AuthError(req.token === '' ? 'an admin token is required' : 'not the admin token');
  };
}

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function bearerIs(header: string | undefined, token: string): boolean {
  return safeEqual(header?.startsWith('Bearer ') ? header.slice(7) : '', token);
}
