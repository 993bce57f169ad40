/**
 * The core transport compliance suite, registered in the page over the browser WebSocket
 * transport. Both ends of each pair are browser transports in this page, joined by the e2e
 * bridge (e2e/bridge.ts): a Node server that pairs two sockets and forwards their messages and
 * closes. The spec learns the case names from the same suite and runs each one here by name.
 */
import { openWsTransport } from '@missive/browser';
import { transportCompliance, type SuiteApi } from '@missive/core/testing';

type Case = () => Promise<void>;
const cases = new Map<string, Case>();
let bridgeUrl = '';

const collect: SuiteApi = {
  describe: (_name, fn) => fn(),
  it: (name, fn) => {
    cases.set(name, fn);
  },
};

transportCompliance('browser WebSocket', collect, async () => {
  if (!bridgeUrl) throw new Error('no bridge URL: call run(name, bridgeUrl)');
  const pair = `${bridgeUrl}/${crypto.randomUUID()}`;
  const [a, b] = await Promise.all([openWsTransport(pair), openWsTransport(pair)]);
  return { a, b };
});

/** The names of the cases registered in the page. */
export const names: string[] = [...cases.keys()];

/** Runs one compliance case by name, pairing sockets through the bridge at `bridge`. */
export async function run(name: string, bridge: string): Promise<void> {
  const c = cases.get(name);
  if (!c) throw new Error(`no compliance case named "${name}" in the page`);
  bridgeUrl = bridge;
  await c();
}
