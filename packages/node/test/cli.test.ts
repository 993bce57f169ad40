/**
 * The real `missive-relay` bin (packages/node/bin/missive-relay.mjs), run as a child process
 * against the built package (dist/). The build runs first if dist is missing or older than the
 * sources. Every test awaits output lines or exits, never a fixed delay, and every child is
 * killed after its test.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseOptions } from '../src/cli.js';
import { connect, Router, type Peer, type RouterLimits } from '../src/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'packages/node/bin/missive-relay.mjs');
const LISTENING = /^missive relay listening on (ws:\/\/127\.0\.0\.1:(\d+)\/)$/;

/** Newest modification time of the files under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) t = Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  const built = ['packages/core/dist/index.js', 'packages/node/dist/cli.js'].map((f) => join(ROOT, f));
  const stale =
    built.some((f) => !existsSync(f)) ||
    Math.max(newest(join(ROOT, 'packages/core/src')), newest(join(ROOT, 'packages/node/src'))) > Math.min(...built.map((f) => statSync(f).mtimeMs));
  if (stale) execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'ignore' });
}, 180_000);

/** Lines of a child's output, with a way to await one. */
class Lines {
  readonly lines: string[] = [];
  #partial = '';
  #waiters = new Set<{ test: (l: string) => boolean; resolve: (l: string) => void }>();

  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop()!;
      for (const line of parts) {
        this.lines.push(line);
        for (const w of this.#waiters) {
          if (w.test(line)) {
            this.#waiters.delete(w);
            w.resolve(line);
          }
        }
      }
    });
  }

  /** The first line (seen already or still to come) that passes `test`; rejects if `exited` settles first. */
  next(test: RegExp | ((l: string) => boolean), exited: Promise<unknown>): Promise<string> {
    const t = typeof test === 'function' ? test : (l: string) => test.test(l);
    const seen = this.lines.find(t);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { test: t, resolve };
      this.#waiters.add(w);
      void exited.then(() => {
        if (this.#waiters.delete(w)) reject(new Error(`exited before a line matching ${String(test)}; got:\n${this.lines.join('\n')}`));
      });
    });
  }
}

interface Run {
  child: ChildProcess;
  stdout: Lines;
  stderr: Lines;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
const peers: Peer[] = [];
let tmp: string | undefined;
afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await Promise.all(
    [...running].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = once(child, 'exit');
        child.kill('SIGKILL');
        await gone;
      }
    }),
  );
  running.clear();
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Runs the bin with `args`; the environment holds no MISSIVE_* variable but those in `env`. */
function run(args: string[], env: Record<string, string> = {}): Run {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MISSIVE_')));
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: new Lines(child.stdout!), stderr: new Lines(child.stderr!), exited };
}

/** Runs the bin until it prints its listening line; resolves with its url and port. */
async function listening(args: string[], env?: Record<string, string>): Promise<Run & { url: string; port: number }> {
  const r = run(args, env);
  const line = await r.stdout.next(LISTENING, r.exited);
  const m = LISTENING.exec(line)!;
  return { ...r, url: m[1]!, port: Number(m[2]) };
}

/** Every flag of the CLI and its environment variable. */
const FLAGS: Record<string, string> = {
  host: 'MISSIVE_HOST',
  port: 'MISSIVE_PORT',
  path: 'MISSIVE_PATH',
  'admin-token': 'MISSIVE_ADMIN_TOKEN',
  'admin-read-token': 'MISSIVE_ADMIN_READ_TOKEN',
  serve: 'MISSIVE_SERVE',
  redis: 'MISSIVE_REDIS',
  'relay-id': 'MISSIVE_RELAY_ID',
  secrets: 'MISSIVE_SECRETS',
  'jwt-secret': 'MISSIVE_JWT_SECRET',
  'jwt-public-key': 'MISSIVE_JWT_PUBLIC_KEY',
  'jwt-issuer': 'MISSIVE_JWT_ISSUER',
  'jwt-audience': 'MISSIVE_JWT_AUDIENCE',
  'max-frame': 'MISSIVE_MAX_FRAME',
  'max-connections': 'MISSIVE_MAX_CONNECTIONS',
  'max-peers-per-namespace': 'MISSIVE_MAX_PEERS_PER_NAMESPACE',
  'max-pending-requests': 'MISSIVE_MAX_PENDING_REQUESTS',
  'rate-limit': 'MISSIVE_RATE_LIMIT',
  'max-buffered': 'MISSIVE_MAX_BUFFERED',
  'slow-consumer-timeout': 'MISSIVE_SLOW_CONSUMER_TIMEOUT',
  'handshake-timeout': 'MISSIVE_HANDSHAKE_TIMEOUT',
  'hold-ttl': 'MISSIVE_HOLD_TTL',
  'hold-max-messages': 'MISSIVE_HOLD_MAX_MESSAGES',
  'hold-max-bytes': 'MISSIVE_HOLD_MAX_BYTES',
  'hold-max-total-bytes': 'MISSIVE_HOLD_MAX_TOTAL_BYTES',
  'max-tunnels': 'MISSIVE_MAX_TUNNELS',
  'max-subscriptions': 'MISSIVE_MAX_SUBSCRIPTIONS',
  'max-pattern-tokens': 'MISSIVE_MAX_PATTERN_TOKENS',
  heartbeat: 'MISSIVE_HEARTBEAT',
  'tls-cert': 'MISSIVE_TLS_CERT',
  'tls-key': 'MISSIVE_TLS_KEY',
  'log-level': 'MISSIVE_LOG_LEVEL',
  'log-format': 'MISSIVE_LOG_FORMAT',
  insecure: 'MISSIVE_INSECURE',
};

describe('missive-relay CLI', () => {
  it('--help lists every flag with its environment variable and exits 0', async () => {
    const r = run(['--help']);
    expect(await r.exited).toEqual({ code: 0, signal: null });
    const out = r.stdout.lines;
    expect(out[0]).toMatch(/^Usage: missive-relay/);
    const flagLines = out.filter((l) => /^\s+--/.test(l));
    const listed = flagLines.map((l) => /^\s+--([a-z-]+)/.exec(l)![1]!);
    expect(listed.sort()).toEqual([...Object.keys(FLAGS), 'help'].sort());
    for (const [flag, env] of Object.entries(FLAGS)) {
      const line = flagLines.find((l) => l.trimStart().startsWith(`--${flag} `) || l.trim() === `--${flag}`)!;
      expect(line, flag).toContain(`[${env}]`);
    }
    expect(r.stderr.lines).toEqual([]);
  });

  it('sets every Router limit from a flag or its environment variable', () => {
    const limitFlags: Record<string, keyof RouterLimits> = {
      'max-frame': 'maxFrameBytes',
      'max-connections': 'maxConnections',
      'max-peers-per-namespace': 'maxPeersPerNamespace',
      'max-pending-requests': 'maxPendingRequests',
      'rate-limit': 'rateLimit',
      'max-buffered': 'maxBufferedBytes',
      'slow-consumer-timeout': 'slowConsumerTimeout',
      'handshake-timeout': 'handshakeTimeout',
      'hold-ttl': 'holdTtl',
      'hold-max-messages': 'holdMaxMessages',
      'hold-max-bytes': 'holdMaxBytes',
      'hold-max-total-bytes': 'holdMaxTotalBytes',
      'max-tunnels': 'maxTunnels',
      'max-subscriptions': 'maxSubscriptions',
      'max-pattern-tokens': 'maxPatternTokens',
    };
    // Every limit the Router has is settable: a new limit without a flag fails here.
    expect(Object.values(limitFlags).sort()).toEqual(Object.keys(new Router().limits).sort());
    const argv = Object.keys(limitFlags).flatMap((flag, i) => [`--${flag}`, String(i + 1)]);
    const { options } = parseOptions(argv, {});
    expect(options.limits).toEqual(Object.fromEntries(Object.values(limitFlags).map((key, i) => [key, i + 1])));
    const fromEnv = parseOptions([], { MISSIVE_HOLD_TTL: '0', MISSIVE_HOLD_MAX_TOTAL_BYTES: '1000' });
    expect(fromEnv.options.limits).toEqual({ holdTtl: 0, holdMaxTotalBytes: 1000 });
  });

  it('reads the admin tokens and the apps to serve', () => {
    const { options } = parseOptions(['--admin-token', 'a', '--admin-read-token', 'r', '--serve', '/devtools/=apps/devtools/dist,/=apps/demo/dist'], {});
    expect(options).toMatchObject({ adminToken: 'a', adminReadToken: 'r', serve: { '/devtools/': 'apps/devtools/dist', '/': 'apps/demo/dist' } });
    expect(parseOptions([], { MISSIVE_SERVE: '/x/=dir' }).options.serve).toEqual({ '/x/': 'dir' });
    expect(() => parseOptions(['--serve', 'devtools=dir'], {})).toThrow(/PREFIX=DIR/);
    expect(() => parseOptions(['--serve', '/devtools/='], {})).toThrow(/PREFIX=DIR/);
  });

  it('reads the Redis backplane and the relay id', () => {
    expect(parseOptions(['--redis', 'redis://127.0.0.1:6379', '--relay-id', 'eu1'], {}).options.backplane).toEqual({ redis: 'redis://127.0.0.1:6379', relayId: 'eu1' });
    expect(parseOptions([], { MISSIVE_REDIS: 'redis://r:1' }).options.backplane).toEqual({ redis: 'redis://r:1' });
    expect(() => parseOptions(['--redis', 'localhost:6379'], {})).toThrow(/redis:\/\//);
  });

  it('exits 2 with a message and the usage for a bad flag or value', async () => {
    for (const [args, message] of [
      [['--bogus'], /bogus/],
      [['--port', 'eighty'], /--port must be a non-negative integer, got "eighty"/],
      [['--log-level', 'loud'], /--log-level must be/],
      [['--tls-cert', 'cert.pem'], /--tls-cert and --tls-key go together/],
    ] as const) {
      const r = run([...args]);
      expect(await r.exited, args.join(' ')).toEqual({ code: 2, signal: null });
      const err = r.stderr.lines.join('\n');
      expect(err).toMatch(/^missive-relay: /);
      expect(err).toMatch(message);
      expect(err).toMatch(/Usage: missive-relay/);
      expect(r.stdout.lines).toEqual([]);
    }
  });

  it('--port 0 prints the url it listens on and serves /healthz', async () => {
    const r = await listening(['--port', '0']);
    expect(r.port).toBeGreaterThan(0);
    const res = await fetch(`http://127.0.0.1:${r.port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', connections: 0 });
  });

  it('honours MISSIVE_* environment variables and logs one JSON object per line on stderr', async () => {
    const r = await listening([], { MISSIVE_PORT: '0', MISSIVE_LOG_LEVEL: 'debug', MISSIVE_LOG_FORMAT: 'json' });
    const p = await connect(r.url, { name: 'envy' });
    peers.push(p);
    await r.stderr.next((l) => l.includes('"peer connected"'), r.exited);
    const logs = r.stderr.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const entry of logs) {
      expect(entry).toMatchObject({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), level: expect.stringMatching(/^(debug|info|warn|error)$/), msg: expect.any(String) });
    }
    expect(logs).toContainEqual(expect.objectContaining({ level: 'info', msg: 'relay listening', url: r.url }));
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/auth is off/) }));
    expect(logs).toContainEqual(expect.objectContaining({ level: 'debug', msg: 'peer connected', name: 'envy', namespace: 'default' }));
  });

  it('lets a flag win over its environment variable', async () => {
    const r = await listening(['--port', '0', '--log-level', 'warn'], { MISSIVE_PORT: 'not-a-port', MISSIVE_LOG_LEVEL: 'debug', MISSIVE_LOG_FORMAT: 'json' });
    const p = await connect(r.url, { name: 'quiet' });
    peers.push(p);
    r.child.kill('SIGTERM');
    expect(await r.exited).toEqual({ code: 0, signal: null });
    const levels = r.stderr.lines.map((l) => (JSON.parse(l) as { level: string }).level);
    expect(levels.length).toBeGreaterThan(0); // the "auth is off" warning
    expect(levels.filter((l) => l === 'debug' || l === 'info')).toEqual([]);
  });

  it('--secrets file.json makes the relay require a secret', async () => {
    tmp ??= mkdtempSync(join(tmpdir(), 'missive-cli-'));
    const secrets = join(tmp, 'secrets.json');
    writeFileSync(secrets, JSON.stringify({ alice: 's3cret' }));
    const r = await listening(['--port', '0', '--secrets', secrets, '--log-format', 'json']);
    await expect(connect(r.url, { name: 'alice' })).rejects.toMatchObject({ code: 'AUTH' });
    await expect(connect(r.url, { name: 'alice', secret: 'wrong' })).rejects.toMatchObject({ code: 'AUTH' });
    const alice = await connect(r.url, { name: 'alice', secret: 's3cret' });
    peers.push(alice);
    expect(alice.name).toBe('alice');
    // Auth is on, so there is no "auth is off" warning; the refusals were logged.
    const logs = r.stderr.lines.map((l) => JSON.parse(l) as { msg: string });
    expect(logs.filter((l) => /auth is off/.test(l.msg))).toEqual([]);
    expect(logs.filter((l) => l.msg === 'auth refused')).toHaveLength(2);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`shuts down gracefully on ${signal}: peers see 1001 and the process exits 0`, async () => {
      const r = await listening(['--port', '0', '--log-format', 'json']);
      // reconnect: false — this peer should see the relay go away, not come back to it.
      const p = await connect(r.url, { name: 'stayer', reconnect: false });
      peers.push(p);
      const closed = new Promise<{ code: number; reason: string }>((resolve) => p.on('close', resolve));
      r.child.kill(signal);
      expect(await closed).toMatchObject({ code: 1001 });
      expect(await r.exited).toEqual({ code: 0, signal: null });
      const logs = r.stderr.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logs).toContainEqual(expect.objectContaining({ msg: 'shutting down', signal }));
      expect(logs).toContainEqual(expect.objectContaining({ msg: 'relay closed' }));
    });
  }

  it('refuses --host 0.0.0.0 without auth or --insecure, exiting non-zero with a clear message', async () => {
    const r = run(['--host', '0.0.0.0', '--port', '0', '--log-format', 'pretty']);
    const { code } = await r.exited;
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(r.stderr.lines.join('\n')).toMatch(/refusing to serve an open relay on 0\.0\.0\.0: configure auth, or set insecure \(--insecure\)/);
    expect(r.stdout.lines.filter((l) => LISTENING.test(l) || /listening/.test(l))).toEqual([]);
  });
});
