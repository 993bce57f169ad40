/**
 * `createRelay(options)`: the core Router behind `ws` on an HTTP(S) server, with `/healthz`.
 */
import { Router, type AuthHook, type RouterLimits } from '@missive/core';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { createAuth, type RelayAuthOptions } from './auth.js';
import { wsTransport } from './ws-transport.js';

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
  limits?: Partial<RouterLimits>;
  /** Serve `wss://` and `https://` with this certificate. */
  tls?: RelayTlsOptions;
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
  const router = new Router(routerOptions);

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://relay');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', connections: router.connectionCount }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  };
  const server: Server = options.tls
    ? (createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest) as unknown as Server)
    : createHttpServer(onRequest);

  const maxFrame = router.limits.maxFrameBytes;
  const wss = new WebSocketServer({
    server,
    path,
    perMessageDeflate: false,
    // A batch holds up to 64 KiB of frames plus one frame of up to maxFrame bytes.
    maxPayload: maxFrame + 64 * 1024 + 1024,
  });
  wss.on('connection', (socket) => router.accept(wsTransport(socket)));
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

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    router,
    server,
    close(timeout = 5000) {
      closing ??= (async () => {
        server.close();
        await router.close(timeout);
        for (const ws of wss.clients) ws.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        server.closeAllConnections();
        await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      })();
      return closing;
    },
  };
}

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
