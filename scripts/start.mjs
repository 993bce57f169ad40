#!/usr/bin/env node
// `npm start`: the chat demo and the devtools, on one relay, in one command.
//
// 1. Builds what is not built: the packages (packages/*/dist), the devtools (apps/devtools/dist)
//    and the demo (apps/demo/dist). A build is skipped when its output is newer than every one
//    of its sources (the apps count the package sources they bundle as theirs).
// 2. Starts a relay (createRelay from @missive/node) serving the demo at / and the devtools at
//    /devtools/, with an admin token: MISSIVE_ADMIN_TOKEN, or a fresh random one.
// 3. Starts the demo's history service twice (apps/demo/server/main.ts, two processes in the
//    group `history`), and waits until both are ready.
// 4. Prints the chat URL, the devtools URL carrying the token, and the token.
// SIGINT (Ctrl-C) or SIGTERM stops the history processes and the relay, then exits 0; another
// signal a second or more later exits at once with 1. Host and port: --host/--port, or HOST/PORT (default 127.0.0.1:8787).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const HELP = `Usage: npm start [-- options]

Builds what is not built, then runs the missive chat demo: a relay serving the chat at / and the
devtools at /devtools/, and two instances of the demo's history service.

  --host <address>   address to bind (default 127.0.0.1)  [HOST]
  --port <port>      port, 0 for a free one (default 8787)  [PORT]
  --insecure         allow an open relay on a non-loopback address (anyone who reaches it may
                     take any nickname)
  --help             show this help

The admin token for the devtools is MISSIVE_ADMIN_TOKEN if set, else a new random one.`;

let opts;
try {
  opts = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      insecure: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }).values;
} catch (err) {
  console.error(`${err.message}\n\n${HELP}`);
  process.exit(2);
}
if (opts.help) {
  console.log(HELP);
  process.exit(0);
}
const host = opts.host ?? process.env.HOST ?? '127.0.0.1';
const port = Number(opts.port ?? process.env.PORT ?? 8787);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`start: the port must be an integer from 0 to 65535, not ${opts.port ?? process.env.PORT}`);
  process.exit(2);
}

// --- 1. builds ------------------------------------------------------------------------------

/** The newest modification time under `path` (a file or a directory), skipping node_modules. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = 0;
  for (const entry of readdirSync(path)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    max = Math.max(max, newest(join(path, entry)));
  }
  return max;
}

/** The newest time under a dist directory, or 0 when it is missing or has no index. */
function built(dist, marker) {
  if (!existsSync(join(dist, marker))) return 0;
  let max = 0;
  const walk = (p) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      if (e.isDirectory()) walk(full);
      else max = Math.max(max, statSync(full).mtimeMs);
    }
  };
  walk(dist);
  return max;
}

const pkgSources = (name) => [`packages/${name}/src`, `packages/${name}/package.json`, `packages/${name}/tsconfig.json`, `packages/${name}/tsconfig.build.json`];
const builds = [
  {
    what: 'the packages',
    args: ['run', 'build'],
    outputs: [['packages/core/dist', 'index.js', pkgSources('core')], ['packages/node/dist', 'index.js', pkgSources('node')], ['packages/browser/dist', 'index.js', pkgSources('browser')]],
  },
  {
    what: 'the devtools',
    args: ['run', 'build', '-w', 'apps/devtools', '--', '--logLevel', 'warn'],
    outputs: [['apps/devtools/dist', 'index.html', ['apps/devtools/src', 'apps/devtools/index.html', 'apps/devtools/vite.config.ts', 'apps/devtools/package.json', 'packages/core/src', 'packages/browser/src']]],
  },
  {
    what: 'the chat demo',
    args: ['run', 'build', '-w', 'apps/demo', '--', '--logLevel', 'warn'],
    outputs: [['apps/demo/dist', 'index.html', ['apps/demo/src', 'apps/demo/shared', 'apps/demo/index.html', 'apps/demo/vite.config.ts', 'apps/demo/package.json', 'packages/core/src', 'packages/browser/src']]],
  },
];

for (const b of builds) {
  const stale = b.outputs.some(([dist, marker, sources]) => {
    const out = built(join(root, dist), marker);
    return out === 0 || sources.some((s) => newest(join(root, s)) > out);
  });
  if (!stale) {
    console.log(`start: ${b.what}: up to date`);
    continue;
  }
  console.log(`start: building ${b.what} (npm ${b.args.join(' ')})`);
  const r = spawnSync('npm', b.args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    console.error(`start: building ${b.what} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

// --- 2. the relay ---------------------------------------------------------------------------

const { createRelay, createLogger } = await import('@missive/node');
const token = process.env.MISSIVE_ADMIN_TOKEN || randomBytes(18).toString('base64url');
let relay;
try {
  relay = await createRelay({
    host,
    port,
    insecure: opts.insecure,
    adminToken: token,
    // A chat's direct messages to someone offline wait longer than the relay's default minute.
    limits: { holdTtl: 10 * 60_000 },
    serve: { '/devtools/': join(root, 'apps/devtools/dist'), '/': join(root, 'apps/demo/dist') },
    logger: createLogger({ level: 'warn' }),
  });
} catch (err) {
  const hint = err.code === 'EADDRINUSE' ? ` (another program uses port ${port}: try --port ${port + 1}, or --port 0 for any free port)` : '';
  console.error(`start: cannot start the relay on ${host}:${port}: ${err.message}${hint}`);
  process.exit(1);
}

// --- 3. the history service, twice ---------------------------------------------------------

const children = new Set();
let stopping = false;

function startHistory(id) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/demo/server/main.ts', '--relay', relay.url, '--id', id], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    children.add(child);
    let ready = false;
    const prefix = (stream, out) => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          out.write(`  ${line}\n`);
          if (!ready && line.includes(': ready')) {
            ready = true;
            resolve(child);
          }
        }
      });
    };
    prefix(child.stdout, process.stdout);
    prefix(child.stderr, process.stderr);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (!ready) reject(new Error(`${id} exited before it was ready (${code ?? signal})`));
      else if (!stopping) console.error(`start: ${id} stopped unexpectedly (${code ?? signal}); room history is served by the other instance`);
    });
  });
}

// --- 4. stopping --------------------------------------------------------------------------

let stoppingSince = 0;
async function stop(signal) {
  if (stopping) {
    // Ctrl-C under npm arrives twice (from the terminal, and forwarded by npm): only a signal a
    // second or more after the first means "stop now".
    if (stoppingSince && Date.now() - stoppingSince < 1000) return;
    console.error(`start: ${signal} again, exiting now`);
    process.exit(1);
  }
  stopping = true;
  stoppingSince = Date.now();
  console.log(`\nstart: ${signal}: stopping the history service and the relay`);
  const exits = [...children].map(
    (child) =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  );
  await Promise.all(exits);
  await relay.close(3000);
  console.log('start: stopped');
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

try {
  await Promise.all([startHistory('history-1'), startHistory('history-2')]);
} catch (err) {
  console.error(`start: the history service did not start: ${err.message}`);
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  await relay.close(2000);
  process.exit(1);
}

// --- 5. what to open ------------------------------------------------------------------------

const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
const http = `http://${shownHost}:${relay.port}`;
console.log(`
missive is running
  chat:        ${http}/
  devtools:    ${http}/devtools/?token=${encodeURIComponent(token)}
  relay:       ws://${shownHost}:${relay.port}/
  admin token: ${token}
  history:     2 instances in the group "history"
Open the chat in two browser windows (or one private window) to talk to yourself. Ctrl-C stops everything.
`);
