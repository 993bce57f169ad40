/**
 * Serves built web apps (the devtools, the chat demo) from directories, under URL prefixes of
 * the relay's HTTP server. GET and HEAD only; a path that leaves its directory is refused; a
 * path with no file behind it gets the app's `index.html` (client-side routes); hashed assets
 * are cached for a year, the rest revalidated.
 */
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** A directory served under a prefix. */
interface Mount {
  prefix: string;
  root: string;
}

/**
 * Makes a handler for `mounts` (URL prefix → directory). It returns false for a request no
 * mount covers, so the caller can answer it.
 */
export function staticHandler(mounts: Record<string, string>): (req: IncomingMessage, res: ServerResponse, pathname: string) => boolean {
  const list: Mount[] = Object.entries(mounts).map(([prefix, dir]) => {
    if (!prefix.startsWith('/')) throw new TypeError(`serve: prefix "${prefix}" must start with "/"`);
    const root = resolve(dir);
    let isDir = false;
    try {
      isDir = statSync(root).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw new TypeError(`serve: ${root} (for ${prefix}) is not a directory; build the app first`);
    return { prefix: prefix.endsWith('/') ? prefix : `${prefix}/`, root };
  });
  // Longest prefix first: /devtools/ wins over /.
  list.sort((a, b) => b.prefix.length - a.prefix.length);

  return (req, res, pathname) => {
    // `/devtools` without its slash: relative asset URLs need it.
    const bare = list.find((m) => m.prefix !== '/' && pathname === m.prefix.slice(0, -1));
    if (bare && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(301, { location: bare.prefix + (req.url?.includes('?') ? req.url.slice(req.url.indexOf('?')) : '') });
      res.end();
      return true;
    }
    const mount = list.find((m) => pathname.startsWith(m.prefix));
    if (!mount) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return true;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(pathname.slice(mount.prefix.length));
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad path\n');
      return true;
    }
    const file = resolve(join(mount.root, rel));
    if (file !== mount.root && !file.startsWith(mount.root + sep)) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('forbidden\n');
      return true;
    }
    let target = file;
    let size = -1;
    try {
      const st = statSync(target);
      if (st.isFile()) size = st.size;
    } catch {
      // not there
    }
    // No such file: a path without an extension is a client-side route of the app.
    if (size < 0 && (rel === '' || extname(rel) === '')) {
      target = join(mount.root, 'index.html');
      try {
        size = statSync(target).size;
      } catch {
        size = -1;
      }
    }
    if (size < 0) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return true;
    }
    const hashed = /[-.][A-Za-z0-9_-]{8,}\.(js|css|woff2|png|svg)$/.test(target) && target.includes(`${sep}assets${sep}`);
    res.writeHead(200, {
      'content-type': TYPES[extname(target)] ?? 'application/octet-stream',
      'content-length': size,
      'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(target).on('error', () => res.destroy()).pipe(res);
    return true;
  };
}
