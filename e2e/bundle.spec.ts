/**
 * Packaging: the test app is a plain Vite app built with Vite's default configuration, its
 * entry chunk is what a relay-only app ships (measured, and held under a budget), and the
 * built package refuses to load in Node with a clear message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { expect, test } from './fixtures.js';

const app = fileURLToPath(new URL('./app/', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
/** Gzipped bytes the entry chunk may reach before this test fails (measured: about 25 KB). */
const ENTRY_BUDGET = 32 * 1024;

test.describe('bundle', () => {
  test('the Vite test app has no Vite config, and its entry chunk (relay only) stays under the gzip budget without the test-only code', () => {
    expect(readdirSync(app).filter((f) => f.startsWith('vite.config'))).toEqual([]);
    const html = readFileSync(`${app}dist/index.html`, 'utf8');
    const src = /<script type="module"[^>]*src="\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(src, 'entry script in dist/index.html').toBeTruthy();
    const entry = readFileSync(`${app}dist/${src}`);
    const gzip = gzipSync(entry, { level: 9 }).length;
    test.info().annotations.push({ type: 'entry chunk', description: `${entry.length} bytes, ${gzip} gzip` });
    console.log(`relay-only entry chunk: ${(entry.length / 1024).toFixed(1)} KiB, ${(gzip / 1024).toFixed(1)} KiB gzip`);
    expect(gzip).toBeLessThan(ENTRY_BUDGET);
    const text = entry.toString('utf8');
    expect(text).toContain('missive-outbox'); // the IndexedDB store is in
    expect(text).not.toContain('transport compliance'); // the suite is a chunk of its own
    expect(text).not.toContain('relay shutting down'); // the Router is shaken out
  });

  test('Node - importing the built @missive/browser fails at import, naming what is missing and @missive/node', () => {
    expect(existsSync(`${root}packages/browser/dist/index.js`)).toBe(true);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('@missive/browser')"], { cwd: root, encoding: 'utf8', timeout: 10_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('@missive/browser runs in browsers');
    expect(r.stderr).toMatch(/no global (WebSocket and )?indexedDB/);
    expect(r.stderr).toContain('import @missive/node instead');
  });
});
