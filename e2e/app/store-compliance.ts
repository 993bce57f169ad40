/**
 * The core store compliance suite, registered in the page over IdbStore (real IndexedDB and Web
 * Locks in Chromium). Each fixture is an outbox in an IndexedDB database of its own, reopened by
 * a new IdbStore over the same database, and deleted by its cleanup. The spec learns the case
 * names from the same suite and runs each one here by name (as app/compliance.ts does for the
 * transport suite).
 */
import { IdbStore } from '@missive/browser';
import { storeCompliance, type SuiteApi } from '@missive/core/testing';

type Case = () => Promise<void>;
const cases = new Map<string, Case>();

const collect: SuiteApi = {
  describe: (_name, fn) => fn(),
  it: (name, fn) => {
    cases.set(name, fn);
  },
};

/** Deletes an IndexedDB database; every connection to it is closed by then. */
function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase(name);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error ?? new Error(`could not delete IndexedDB database ${name}`));
    req.onblocked = () => reject(new Error(`IndexedDB database ${name} is still open: a store was not closed`));
  });
}

storeCompliance('IdbStore', collect, async (options) => {
  const database = `store-compliance-${crypto.randomUUID()}`;
  const make = (): IdbStore => new IdbStore('me', { ...options, database });
  const store = make();
  return { store, reopen: make, cleanup: () => deleteDatabase(store.database) };
});

/** The names of the cases registered in the page. */
export const names: string[] = [...cases.keys()];

/** Runs one compliance case by name. */
export async function run(name: string): Promise<void> {
  const c = cases.get(name);
  if (!c) throw new Error(`no store compliance case named "${name}" in the page`);
  await c();
}
