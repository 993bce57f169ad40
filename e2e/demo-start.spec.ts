/**
 * `npm start` as a newcomer runs it: a child process on a free port, its printed URLs, the chat
 * and the devtools loaded from them (the chat signed in, with room history from the history
 * service; the devtools listing that user), then Ctrl-C (SIGINT to the process group, as a
 * terminal sends it): everything stops and npm exits 0, the port freed.
 */
import { expect, test } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = netConnect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** A started script: everything it printed so far, and a wait for some text that fails as soon as it exits. */
function watch(child: ChildProcess) {
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: string) => {
    out += d;
    for (const w of waiters) w();
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  child.on('exit', () => {
    for (const w of waiters) w();
  });
  return {
    get out() {
      return out;
    },
    until(text: string | RegExp, timeout: number): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (typeof text === 'string' ? out.includes(text) : text.test(out)) done(resolve);
          else if (child.exitCode !== null || child.signalCode !== null) done(() => reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before printing ${String(text)}:\n${out}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`no ${String(text)} within ${timeout} ms:\n${out}`))), timeout);
        const done = (fn: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

test('npm start - builds what is missing, prints the chat and devtools URLs, serves both, and stops cleanly on Ctrl-C', async ({ browser }) => {
  test.setTimeout(150_000);
  const port = await freePort();
  const env = { ...process.env };
  delete env.MISSIVE_ADMIN_TOKEN;
  // Its own process group, so the test can send SIGINT to all of it like a terminal's Ctrl-C.
  const child: ChildProcess = spawn('npm', ['start', '--', '--port', String(port)], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const run = watch(child);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    await run.until(/devtools: +http\S+/, 120_000);
    const out = run.out;
    const chat = /chat: +(http\S+)/.exec(out)![1]!;
    const devtools = /devtools: +(http\S+)/.exec(out)![1]!;
    const token = /admin token: +(\S+)/.exec(out)![1]!;
    expect(chat).toBe(`http://127.0.0.1:${port}/`);
    expect(devtools).toBe(`http://127.0.0.1:${port}/devtools/?token=${token}`);
    expect(token.length).toBeGreaterThanOrEqual(20);
    expect(out).toContain('history-1: ready');
    expect(out).toContain('history-2: ready');

    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(chat);
      await page.getByLabel('Nickname').fill('newcomer');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expect(page.getByRole('status', { name: 'Connection' })).toHaveText('Connected');
      // The history service answered (no "history is unavailable" alert).
      await expect(page.getByRole('log').getByText(/^Earlier messages from history-[12]$/)).toBeVisible();
      await expect(page.getByRole('alert')).toHaveCount(0);

      const dev = await context.newPage();
      dev.on('pageerror', (e) => errors.push(e.message));
      await dev.goto(devtools);
      const table = dev.getByRole('table', { name: /connected peers/i });
      await expect(table.getByRole('button', { name: 'newcomer', exact: true })).toBeVisible();
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }

    process.kill(-child.pid!, 'SIGINT');
    const [code, signal] = await exited;
    // npm re-raises a SIGINT it received once its script has exited (the script's own exit is
    // the "start: stopped" line, printed just before it exits 0; a failing script makes npm
    // print "npm error").
    expect(code === 0 || signal === 'SIGINT', `npm exited ${code ?? signal}`).toBe(true);
    const end = run.out;
    expect(end).toContain('start: stopped');
    expect(end).not.toContain('npm error');
    expect(end).toMatch(/history-1: stopped/);
    expect(end).toMatch(/history-2: stopped/);
    expect(end).not.toContain('exiting now');
    expect(await portOpen(port)).toBe(false);
  } finally {
    kill(child);
  }
});

function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

test('npm start - PORT and MISSIVE_ADMIN_TOKEN from the environment, SIGTERM exits 0, a port in use is a clear error', async () => {
  test.setTimeout(120_000);
  const port = await freePort();
  const env = { ...process.env, PORT: String(port), MISSIVE_ADMIN_TOKEN: 'demo-token-from-env' };
  const child = spawn(process.execPath, ['scripts/start.mjs'], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const run = watch(child);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    await run.until(`devtools:    http://127.0.0.1:${port}/devtools/?token=demo-token-from-env`, 100_000);
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);

    // A second one on the same port says why it cannot start, and exits 1.
    const second = spawn(process.execPath, ['scripts/start.mjs', '--port', String(port), '--host', '127.0.0.1'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    second.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const [code2] = (await once(second, 'exit')) as [number | null];
    expect(code2).toBe(1);
    expect(err).toContain(`cannot start the relay on 127.0.0.1:${port}`);
    expect(err).toContain('--port 0 for any free port');

    child.kill('SIGTERM');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(run.out).toContain('start: SIGTERM: stopping');
    expect(run.out).toContain('start: stopped');
    expect(await portOpen(port)).toBe(false);
  } finally {
    kill(child);
  }
});
