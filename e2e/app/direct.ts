/**
 * Direct links in the test page, loaded on demand (a chunk of its own, like an application's
 * code that goes direct only sometimes). Two uses:
 * - the core transport compliance suite over two direct links joined inside this page;
 * - one link of this page to another page, its signalling carried by the spec: what this end
 *   signals goes to `window.directOut` (a function the spec exposes), and the spec feeds the
 *   other page's signals in with `signal(data)`.
 */
import { openDirect, type DirectCloseInfo, type DirectLink, type DirectLinkOptions, type DirectSignal, type Transport } from '@missive/browser';
import { pattern, sameBytes, transportCompliance } from '@missive/core/testing';
import { allowHostCandidates } from './candidates.js';
import { inPageSuite } from './in-page-suite.js';

/** Options a spec may pass through `page.evaluate` (JSON-able: no functions). */
export type LinkOptions = Omit<DirectLinkOptions, 'initiator' | 'signal' | 'iceServers' | 'wrtc'> & { iceServers?: RTCIceServer[] };

// ---- the compliance suite over two links in this page ----

/** Two links of this page joined to each other; signalling crosses a JSON round trip and a task. */
export function pairInPage(options: LinkOptions = {}): [DirectLink, DirectLink] {
  const ends: DirectLink[] = [];
  const to = (i: number) => (data: DirectSignal) => {
    const copy: unknown = JSON.parse(JSON.stringify(data));
    setTimeout(() => ends[i]!.signal(copy), 0);
  };
  ends.push(openDirect({ ...options, initiator: true, signal: to(1) }), openDirect({ ...options, initiator: false, signal: to(0) }));
  return [ends[0]!, ends[1]!];
}

const suite = inPageSuite((api) =>
  transportCompliance('direct (WebRTC data channel)', api, async () => {
    await allowHostCandidates();
    const [a, b] = pairInPage();
    const [ta, tb] = await Promise.all([a.ready, b.ready]);
    return {
      a: ta,
      b: tb,
      cleanup: async () => {
        a.close();
        b.close();
        await Promise.all([a.closed, b.closed]);
      },
    };
  }),
);

/** Opens two links in this page, waits until both are open, and closes them: what each reported. */
export async function pairOnce(): Promise<DirectCloseInfo['kind'][]> {
  await allowHostCandidates();
  const [a, b] = pairInPage();
  await Promise.all([a.ready, b.ready]);
  a.close();
  return (await Promise.all([a.closed, b.closed])).map((info) => info.kind);
}

/** The names of the compliance cases registered in the page. */
export const names: string[] = suite.names;

/** Runs one compliance case by name. */
export const run = suite.run;

// ---- one link of this page to another page ----

let link: DirectLink | undefined;
let transport: Transport | undefined;
const received: Uint8Array[] = [];
let closeInfo: DirectCloseInfo | undefined;
/** Waiters of `until`, woken on each event of the link. */
const wakers = new Set<() => void>();
const wake = (): void => {
  for (const w of [...wakers]) w();
};

/** A close as it crosses back to the spec (the error reduced to its class, code and message). */
export interface ClosedView {
  code: number;
  reason: string;
  kind: string;
  error?: { name: string; code: string | undefined; message: string; cause?: string };
}

function view(info: DirectCloseInfo): ClosedView {
  const out: ClosedView = { code: info.code, reason: info.reason, kind: info.kind };
  const e = info.error as (Error & { code?: string }) | undefined;
  if (e) {
    out.error = { name: e.name, code: e.code, message: e.message };
    if (e.cause instanceof Error) out.error.cause = e.cause.message;
  }
  return out;
}

/** Starts this page's link; its signalling goes to `window.directOut`. */
export async function start(initiator: boolean, options: LinkOptions = {}): Promise<void> {
  if (link) throw new Error('this page has a link already');
  const out = window.directOut;
  if (!out) throw new Error('the spec did not expose directOut');
  await allowHostCandidates();
  const l = openDirect({ ...options, initiator, signal: (data) => out(data) });
  link = l;
  l.on('close', (info) => {
    closeInfo = info;
    wake();
  });
  void l.ready.then(
    (t) => {
      transport = t;
      t.listen({
        message: (m) => {
          received.push(m);
          wake();
        },
        drain: wake,
        close: () => {},
      });
    },
    () => {},
  );
}

/** Feeds one signalling message from the other page. */
export function signal(data: unknown): void {
  if (!link) throw new Error('no link in this page: call start() first');
  link.signal(data);
}

/** Resolves when `cond` holds, waking on each event of the link; rejects after `ms`. */
function until(cond: () => boolean, what: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      wakers.delete(check);
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const check = (): void => {
      if (!cond()) return;
      clearTimeout(timer);
      wakers.delete(check);
      resolve();
    };
    wakers.add(check);
    check();
  });
}

/** Waits until the link opens (or rejects with why it did not). */
export async function ready(): Promise<{ iceState: string; chunkSize: number }> {
  if (!link) throw new Error('no link');
  await link.ready;
  return { iceState: link.iceState, chunkSize: link.stats().chunkSize };
}

/** Sends messages of `sizes` bytes (each `pattern(size, seed + i)`), waiting for drain whenever `send` says so. */
export async function sendPatterns(sizes: number[], seed: number): Promise<{ refused: number }> {
  const t = transport;
  if (!t) throw new Error('the link is not open');
  let refused = 0;
  for (let i = 0; i < sizes.length; i++) {
    if (!t.send(pattern(sizes[i]!, seed + i))) {
      refused++;
      await until(() => t.bufferedAmount <= 1024 * 1024 || t.status !== 'open', 'drain', 20_000);
    }
  }
  return { refused };
}

/** Waits for `count` messages and checks each against `pattern(sizes[i], seed + i)`, in order. */
export async function expectPatterns(sizes: number[], seed: number, ms: number): Promise<{ ok: boolean[]; bytes: number; chunksIn: number }> {
  await until(() => received.length >= sizes.length || closeInfo !== undefined, `${sizes.length} messages`, ms);
  const got = received.splice(0, sizes.length);
  return {
    ok: sizes.map((n, i) => got[i] !== undefined && sameBytes(got[i]!, pattern(n, seed + i))),
    bytes: got.reduce((s, m) => s + m.length, 0),
    chunksIn: link!.stats().chunksIn,
  };
}

/** Closes this page's link with `code` and `reason`, and waits until it has closed. */
export async function close(code: number, reason: string): Promise<ClosedView> {
  if (!link) throw new Error('no link');
  link.close({ code, reason });
  return view(await link.closed);
}

/** Waits until the link has closed, for at most `ms`. */
export async function closed(ms: number): Promise<ClosedView> {
  await until(() => closeInfo !== undefined, 'the link to close', ms);
  return view(closeInfo!);
}
