/**
 * The core transport compliance suite over the browser WebSocket transport, in Chromium. The
 * suite is registered here only to learn its case names (and time limits); each case then runs
 * in the page, where the same suite is registered over real browser transports (app/compliance.ts)
 * whose two ends are paired by the bridge.
 */
import { transportCompliance } from '@missive/core/testing';
import { expect, test } from './fixtures.js';
import { inPageOnly, suiteCases } from './suite-cases.js';

const cases = suiteCases((api) => transportCompliance('browser WebSocket', api, inPageOnly));

test.describe('transport compliance: browser WebSocket', () => {
  test('the page registers exactly the cases of the core suite', async ({ openApp }) => {
    const page = await openApp();
    const inPage = await page.evaluate(async () => (await window.compliance()).names);
    expect(inPage).toEqual(cases.map((c) => c.name));
    expect(cases.length).toBeGreaterThanOrEqual(6);
  });

  for (const c of cases) {
    test(c.name, async ({ openApp, bridgeUrl }) => {
      test.setTimeout(c.timeout + 20_000);
      const page = await openApp();
      await page.evaluate(async ({ name, bridge }) => (await window.compliance()).run(name, bridge), { name: c.name, bridge: bridgeUrl });
    });
  }
});
