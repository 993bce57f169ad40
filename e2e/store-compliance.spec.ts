/**
 * The core store compliance suite over IdbStore, in Chromium: each case is its own test, run in
 * the page by name (suite-cases.ts), where the same suite is registered over IdbStore
 * (app/store-compliance.ts), every fixture in an IndexedDB database of its own that the case
 * deletes when it ends.
 */
import { storeCompliance } from '@missive/core/testing';
import { expect, test } from './fixtures.js';
import { inPageOnly, suiteCases } from './suite-cases.js';

const cases = suiteCases((api) => storeCompliance('IdbStore', api, inPageOnly));

test.describe('store compliance: IdbStore', () => {
  test('the page registers exactly the cases of the core suite', async ({ openApp }) => {
    const page = await openApp();
    const inPage = await page.evaluate(async () => (await window.storeCompliance()).names);
    expect(inPage).toEqual(cases.map((c) => c.name));
    expect(cases.length).toBeGreaterThanOrEqual(10);
  });

  for (const c of cases) {
    test(c.name, async ({ openApp }) => {
      test.setTimeout(c.timeout + 20_000);
      const page = await openApp();
      await page.evaluate(async (name) => (await window.storeCompliance()).run(name), c.name);
      // Every fixture deleted its database.
      const left = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
      expect(left).toEqual([]);
    });
  }
});
