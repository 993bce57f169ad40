/**
 * The browser benchmark (part of `npm run bench`): two Chromium pages of the e2e test app, each
 * a peer, measure request/reply latency (c=1) and tunnel throughput, over the relay
 * (`direct: 'never'`) and over a direct WebRTC link (`direct: 'auto'`), in interleaved rounds.
 * The relay path is the baseline of the same run; the table is written to bench/results.md
 * between the browser-results markers. Needs the packages built and the app built
 * (`vite build e2e/app`), as `npm run bench` does.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from '@playwright/test';
import { createRelay } from '@missive/node';
import config from '../playwright.config.js';
import { serveStatic } from './static-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = `${ROOT}bench/results.md`;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REQUESTS = 1000;
const TUNNEL_BYTES = 32 * 1024 * 1024;

interface Figures {
  p50: number;
  p99: number;
  mbps: number;
}

const log = (s: string): void => console.error(`[browser bench] ${s}`);
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const median = (xs: number[]): number => quantile(xs, 0.5);

async function round(browser: Browser, appUrl: string, direct: 'auto' | 'never'): Promise<Figures> {
  const relay = await createRelay({ host: '127.0.0.1', port: 0 });
  const context = await browser.newContext();
  try {
    const open = async (): Promise<Page> => {
      const page = await context.newPage();
      await page.goto(appUrl);
      await page.waitForFunction(() => window.e2eReady === true);
      return page;
    };
    const [a, b] = [await open(), await open()];
    for (const [page, name] of [[a, 'alice'], [b, 'bob']] as const) {
      await page.evaluate(async ({ url, name, direct }) => {
        const m = await window.directPeers();
        const peer = await m.connectPeer(url, name, direct);
        m.serveBench(peer);
      }, { url: relay.url, name, direct });
    }
    return await a.evaluate(async ({ direct, REQUESTS, TUNNEL_BYTES }) => {
      const m = await window.directPeers();
      const alice = window.peers.alice!;
      await alice.request('bob/echo', 0);
      if (direct === 'auto') await m.linked(alice, 'bob', 'direct');
      await m.benchRequests(alice, 'bob', 100); // warm-up
      const times = await m.benchRequests(alice, 'bob', REQUESTS);
      const mbps = await m.benchTunnel(alice, 'bob', TUNNEL_BYTES);
      if (alice.linkTo('bob') !== (direct === 'auto' ? 'direct' : 'relay')) throw new Error(`the path changed during the run: ${alice.linkTo('bob')}`);
      const sorted = [...times].sort((x, y) => x - y);
      return { p50: sorted[Math.floor(0.5 * sorted.length)]!, p99: sorted[Math.floor(0.99 * sorted.length)]!, mbps };
    }, { direct, REQUESTS, TUNNEL_BYTES });
  } finally {
    await context.close();
    await relay.close(2000);
  }
}

const dist = `${ROOT}e2e/app/dist`;
if (!existsSync(`${dist}/index.html`)) throw new Error('e2e/app/dist is missing: run `npx vite build e2e/app` first (npm run bench does)');
const server = await serveStatic(dist);
const browser = await chromium.launch({ ...config.use?.launchOptions, headless: true });
const version = browser.version();
const runs: Record<'relay' | 'direct', Figures[]> = { relay: [], direct: [] };
try {
  for (let r = 1; r <= ROUNDS; r++) {
    for (const path of r % 2 ? (['relay', 'direct'] as const) : (['direct', 'relay'] as const)) {
      log(`round ${r}/${ROUNDS}: ${path}…`);
      runs[path].push(await round(browser, server.url, path === 'direct' ? 'auto' : 'never'));
    }
  }
} finally {
  await browser.close();
  await server.close();
}

const pick = (path: 'relay' | 'direct', k: keyof Figures): number => median(runs[path].map((f) => f[k]));
const rows: [string, string, keyof Figures, boolean][] = [
  ['request/reply c=1, p50', 'ms', 'p50', false],
  ['request/reply c=1, p99', 'ms', 'p99', false],
  [`tunnel throughput, ${TUNNEL_BYTES / 2 ** 20} MiB in 64 KiB writes`, 'MB/s', 'mbps', true],
];
const lines = [
  '| browser ↔ browser (Chromium, two pages) | unit | relay | direct | direct/relay |',
  '|---|---|---:|---:|---:|',
  ...rows.map(([name, unit, k]) => {
    const relay = pick('relay', k);
    const direct = pick('direct', k);
    const digits = unit === 'ms' ? 3 : 1;
    return `| ${name} | ${unit} | ${relay.toFixed(digits)} | ${direct.toFixed(digits)} | ${(direct / relay).toFixed(2)}× |`;
  }),
];
const table = lines.join('\n');
console.log(`\nbrowser to browser, over the relay and over a direct link (same run)\n\n${table}\n`);
if (!process.env.BENCH_QUICK) {
  const measured = `Median of ${ROUNDS} interleaved rounds, measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Chromium ${version} headless, by \`npm run bench\`. ${REQUESTS} sequential requests; one tunnel per round.\n\n${table}\n`;
  const START = '<!-- browser-results:start -->';
  const END = '<!-- browser-results:end -->';
  const old = readFileSync(RESULTS, 'utf8');
  const i = old.indexOf(START);
  const j = old.indexOf(END);
  writeFileSync(RESULTS, i >= 0 && j > i ? `${old.slice(0, i + START.length)}\n${measured}${old.slice(j)}` : `${old}\n## Browser to browser\n\n${START}\n${measured}${END}\n`);
  log(`written to ${RESULTS}`);
}
