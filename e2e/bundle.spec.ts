/**
 * Packaging: the test app is a plain Vite app built with Vite's default configuration, its
 * entry chunk is what an app using connect() ships (measured, and held under a budget), an app that
 * goes direct keeps simple-peer in a chunk of its own (measured too), and the built package
 * refuses to load in Node with a clear message.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { expect, test } from './fixtures.js';

const app = fileURLToPath(new URL('./app/', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
/** Gzipped bytes the entry chunk may reach before this test fails (measured: 31.7 KiB, with the Peer's direct-link negotiation; openDirect, its options code and simple-peer are lazy chunks). */
const ENTRY_BUDGET = 32 * 1024;
/** Gzipped bytes openDirect may add to an entry chunk (measured: about 4.9 KiB, its options code included)... */
const DIRECT_CODE_BUDGET = 8 * 1024;
/** ...and simple-peer's chunk may reach (measured: about 27 KiB). */
const SIMPLE_PEER_BUDGET = 36 * 1024;
/** Strings only simple-peer's code and only openDirect's code hold. */
const SIMPLE_PEER_MARK = 'No WebRTC support';
const DIRECT_MARK = 'the direct link did not open within';

const gz = (b: Buffer): number => gzipSync(b, { level: 9 }).length;
const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;

/** The entry chunk named by a built app's index.html, and every JS chunk of its assets. */
function chunksOf(dist: string): { entry: string; files: Map<string, Buffer> } {
  const html = readFileSync(`${dist}/index.html`, 'utf8');
  const entry = /<script type="module"[^>]*src="\/assets\/([^"]+\.js)"/.exec(html)?.[1];
  if (!entry) throw new Error(`no entry script in ${dist}/index.html`);
  const files = new Map(readdirSync(`${dist}/assets`).filter((f) => f.endsWith('.js')).map((f) => [f, readFileSync(`${dist}/assets/${f}`)] as const));
  return { entry, files };
}

test.describe('bundle', () => {
  test('the Vite test app has no Vite config, and its entry chunk (connect, with the direct link code and simple-peer left to lazy chunks) stays under the gzip budget without the test-only code', () => {
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
    expect(text.includes(DIRECT_MARK), 'openDirect in the entry').toBe(false); // in the page's lazy chunk only
    expect(text.includes(SIMPLE_PEER_MARK), 'simple-peer in the entry').toBe(false);
  });

  test('direct links - an app importing openDirect builds with the default config; simple-peer stays out of its entry, in a chunk openDirect imports on demand', () => {
    test.setTimeout(60_000);
    const out = `${root}.tmp/direct-app-dist`;
    const r = spawnSync('npx', ['vite', 'build', 'e2e/direct-app', '--outDir', out, '--emptyOutDir', '--logLevel', 'warn'], { cwd: root, encoding: 'utf8', timeout: 50_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(`${root}e2e/direct-app`).filter((f) => f.startsWith('vite.config'))).toEqual([]);
    const { entry, files } = chunksOf(out);
    const entryText = files.get(entry)!.toString('utf8');
    expect(entryText.includes(DIRECT_MARK), 'openDirect in the entry').toBe(true);
    expect(entryText.includes(SIMPLE_PEER_MARK), 'simple-peer in the entry').toBe(false);
    const sp = [...files].filter(([, b]) => b.toString('utf8').includes(SIMPLE_PEER_MARK));
    expect(sp.length, 'chunks holding simple-peer').toBe(1);
    const [spName, spBytes] = sp[0]!;
    expect(spBytes.toString('utf8').includes(DIRECT_MARK), 'openDirect in the simple-peer chunk').toBe(false);
    // The entry names simple-peer's chunk only in a dynamic import(), never in a static import.
    expect(entryText.includes(spName), 'the entry names the simple-peer chunk').toBe(true);
    expect(entryText).not.toMatch(new RegExp(`(^|;)\\s*import[^;()]*["']\\./${spName.replace(/[.]/g, '\\.')}["']`, 'm'));
    const relay = chunksOf(`${app}dist`);
    const relayGzip = gz(relay.files.get(relay.entry)!);
    const directGzip = gz(files.get(entry)!);
    const spGzip = gz(spBytes);
    const line = `relay-only entry ${kib(relayGzip)} gzip; entry with openDirect ${kib(directGzip)} gzip (+${kib(directGzip - relayGzip)}); simple-peer chunk ${kib(spBytes.length)}, ${kib(spGzip)} gzip, loaded on the first link`;
    test.info().annotations.push({ type: 'direct bundle', description: line });
    console.log(line);
    expect(directGzip - relayGzip).toBeLessThan(DIRECT_CODE_BUDGET);
    expect(spGzip).toBeLessThan(SIMPLE_PEER_BUDGET);
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
